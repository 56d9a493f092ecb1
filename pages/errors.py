"""Errors: where one run goes wrong, from its stored test evaluation and its answer for every test image."""

import streamlit as st

from convnets.calibration import reliability
from convnets.compare import cell
from convnets.reporting import data_label
from convnets.store import RunStore
from dashboard import common, downloads, explaining, figures, samples

GALLERY_SCALE = 4
SHOWN = 40  # images of a confusion-matrix cell

st.title("Errors")
rows = common.finished_or_stop("Train a model to see its confusion matrix and its most confident mistakes.")

summary = common.pick_run(rows)
run = RunStore().require(summary["run_id"])
evaluation = run.evaluation() or {}
if "confusion_matrix" not in evaluation:
    st.warning("This run has no stored evaluation; re-evaluate it with `python -m convnets eval "
               f"{run.run_id}`.")
    st.stop()

classes = evaluation["classes"]
data = f"{common.dataset_label(summary['dataset'])} ({data_label(summary['dataset'], summary['data_copy'])})"
st.caption(f"Test accuracy {common.pct(evaluation['test_accuracy'])} on {evaluation['test_images']:,} test images of "
           f"{data}.")
downloads.export_button(run.run_id)
left, right = st.columns([3, 2])
with left:
    st.subheader("Confusion matrix")
    normalised = st.toggle("Share of each true class", help="Divide each row by the number of images of that class")
    st.plotly_chart(figures.confusion(evaluation["confusion_matrix"], classes, normalised))
with right:
    st.subheader("Accuracy per class")
    st.plotly_chart(figures.per_class_accuracy(evaluation["per_class_accuracy"]))

st.subheader("The images of one cell")
# Chosen with two select boxes: Streamlit receives no selection from clicks on a Plotly heatmap (streamlit#8760).
predictions = common.stored_predictions(summary)
if predictions is not None:
    matrix = evaluation["confusion_matrix"]
    worst = max(((t, p) for t in range(len(classes)) for p in range(len(classes)) if t != p),
                key=lambda tp: matrix[tp[0]][tp[1]])  # the most frequent confusion, to start with
    true_column, predicted_column = st.columns(2)
    true = true_column.selectbox("True class", range(len(classes)), index=worst[0], format_func=classes.__getitem__,
                                 key="cell_true")
    predicted = predicted_column.selectbox("Predicted as", range(len(classes)), index=worst[1],
                                           format_func=classes.__getitem__, key="cell_predicted")
    found = cell(predictions, true, predicted)
    st.caption(f"{common.plural(len(found), 'test image')} of class {classes[true]} predicted as {classes[predicted]}"
               + (f"; the {SHOWN} most confident:" if len(found) > SHOWN else ":"))
    test_images, why = samples.test_images(summary["dataset"], summary["data_copy"], predictions, common.data_dir())
    if test_images is None:
        st.info(why, icon=":material/image_not_supported:")
    elif len(found):
        common.gallery([test_images[i].transpose(1, 2, 0) for i in found[:SHOWN]],
                       [f"#{i} · {float(predictions.confidence[i]):.0%}" for i in found[:SHOWN]], GALLERY_SCALE)

st.subheader("Most confident mistakes")
images, records = run.mistakes()
if not records:
    st.success("No mistakes on the test split.")
else:
    captions = [f"{classes[r['true']]} → **{classes[r['predicted']]}** ({r['confidence']:.0%})" for r in records]
    common.gallery(images[: len(records)], captions, GALLERY_SCALE)
    st.caption("Each image: its true class → what the model said, with the model's confidence.")
    pick, go = st.columns([2, 1], vertical_alignment="bottom")
    number = pick.selectbox("Look inside the net on mistake", range(len(records)),
                            format_func=lambda i: f"{i + 1}: {captions[i].replace('**', '')}")
    with go:
        explaining.link_inside("mistake", "Where each model looks",
                               **{common.RUN_PARAM: run.run_id, explaining.MISTAKE_PARAM: str(number)})

if predictions is not None:
    st.subheader("Calibration")
    calibration = reliability(predictions.confidence, predictions.correct)
    st.metric("Expected calibration error", common.pct(calibration["ece"]), help="15 equal-width confidence bins: the "
              "gap between confidence and accuracy, averaged over the test images")
    st.plotly_chart(figures.reliability([(summary["model"], calibration)]))
    st.caption("On the diagonal a model is right exactly as often as it is sure; below it, over-confident; above "
               "it, under-confident. Below: test images per confidence bin.")
