"""Errors: where one run goes wrong, from its stored test evaluation and its answer for every test image."""

import streamlit as st

from convnets.calibration import reliability
from convnets.compare import cell
from convnets.models import net_name
from convnets.reporting import data_label
from convnets.store import RunStore
from dashboard import common, downloads, explaining, figures, samples

GALLERY_SCALE = 4
SHOWN = 40  # images of a confusion-matrix cell
CELL = ("cell_true", "cell_predicted")  # the chosen cell's select boxes, which a click on the matrix sets too
CELL_RUN = "cell_run"  # the run whose cell they choose
MATRIX = "confusion_matrix"  # the matrix chart's key: its selection state
MATRIX_WIDTH, BARS_WIDTH = 500, 400  # pixels: both side by side on a wide page, one above the other on a laptop

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
matrix = evaluation["confusion_matrix"]
worst = max(((t, p) for t in range(len(classes)) for p in range(len(classes)) if t != p),
            key=lambda tp: matrix[tp[0]][tp[1]])  # the most frequent confusion, to start with
if st.session_state.get(CELL_RUN) != run.run_id:  # another run: its own most frequent confusion first
    st.session_state.update({CELL_RUN: run.run_id, **dict(zip(CELL, worst))})


def choose_clicked_cell() -> None:
    """A click on a cell of the matrix chooses it, as the two select boxes below do."""
    clicked = figures.clicked_cell(st.session_state[MATRIX].selection, len(classes))
    if clicked is not None:
        st.session_state.update(zip(CELL, clicked))


# Side by side where the page is wide enough for both, the matrix above the bars where it is not.
with st.container(horizontal=True, wrap=True, gap="medium"):
    with st.container(width=MATRIX_WIDTH):
        st.subheader("Confusion matrix")
        normalised = st.toggle("Share of each true class", help="Divide each row by the number of images of that "
                               "class")
        st.plotly_chart(figures.confusion(matrix, classes, normalised, tuple(st.session_state[k] for k in CELL)),
                        key=MATRIX, on_select=choose_clicked_cell, selection_mode="points")
        st.caption("Click a cell to see its images below.")
    with st.container(width=BARS_WIDTH):
        st.subheader("Accuracy per class")
        st.plotly_chart(figures.per_class_accuracy(evaluation["per_class_accuracy"]))

st.subheader("The images of one cell")
predictions = common.stored_predictions(summary)
if predictions is not None:
    true_column, predicted_column = st.columns(2)
    true = true_column.selectbox("True class", range(len(classes)), format_func=classes.__getitem__, key=CELL[0])
    predicted = predicted_column.selectbox("Predicted as", range(len(classes)), format_func=classes.__getitem__,
                                           key=CELL[1])
    found = cell(predictions, true, predicted)
    st.caption(f"{common.plural(len(found), 'test image')} of class {classes[true]} predicted as {classes[predicted]}"
               + (f"; the {SHOWN} most confident:" if len(found) > SHOWN else ":"))
    test_images, why = samples.test_images(summary["dataset"], summary["data_copy"], predictions, common.data_dir())
    if test_images is None:
        st.info(why, icon=":material/image_not_supported:")
    elif len(found):
        common.gallery(list(test_images.take(found[:SHOWN]).transpose(0, 2, 3, 1)),
                       [f"#{i} · {float(predictions.confidence[i]):.0%}" for i in found[:SHOWN]], GALLERY_SCALE)

st.subheader("Most confident mistakes")
images, records = run.mistakes()
if not records:
    st.success("No mistakes on the test split.")
else:
    captions = [f"{classes[r['true']]} → **{classes[r['predicted']]}** ({r['confidence']:.0%})" for r in records]
    common.gallery(images[: len(records)], captions, GALLERY_SCALE)
    st.caption("Each image: its true class → what the model said, with the model's confidence.")
    # The link beside the choice at its own width: a third of a laptop's page cut it.
    with st.container(horizontal=True, vertical_alignment="bottom"):
        number = st.selectbox("Look inside the net on mistake", range(len(records)),
                              format_func=lambda i: f"{i + 1}: {captions[i].replace('**', '')}")
        explaining.link_inside("mistake", "Where each model looks",
                               **{common.RUN_PARAM: run.run_id, explaining.MISTAKE_PARAM: str(number)})

if predictions is not None:
    st.subheader("Calibration")
    calibration = reliability(predictions.confidence, predictions.correct)
    st.metric("Expected calibration error", common.pct(calibration["ece"]), help="15 equal-width confidence bins: the "
              "gap between confidence and accuracy, averaged over the test images")
    st.plotly_chart(figures.reliability([(net_name(summary["model"]), calibration)]))
    st.caption("On the diagonal a model is right exactly as often as it is sure; below it, over-confident; above "
               "it, under-confident. Below: test images per confidence bin.")
