"""Errors: where one run goes wrong, from its stored test evaluation."""

import streamlit as st

from convnets.store import RunStore
from dashboard import common, explaining, figures

GALLERY_SCALE = 4

st.title("Errors")
rows = common.finished(common.dataset_filter())
if not rows:
    common.empty_state("No finished runs yet. Train a model to see its confusion matrix and its most confident "
                       "mistakes.")
    st.stop()

summary = common.pick_run(rows)
run = RunStore().require(summary["run_id"])
evaluation = run.evaluation() or {}
if "confusion_matrix" not in evaluation:
    st.warning("This run has no stored evaluation; re-evaluate it with `python -m convnets eval "
               f"{run.run_id}`.")
    st.stop()

classes = evaluation["classes"]
st.caption(f"Test accuracy {common.pct(evaluation['test_accuracy'])} on {evaluation['test_images']:,} test images.")
left, right = st.columns([3, 2])
with left:
    st.subheader("Confusion matrix")
    normalised = st.toggle("Share of each true class", help="Divide each row by the number of images of that class")
    st.plotly_chart(figures.confusion(evaluation["confusion_matrix"], classes, normalised))
with right:
    st.subheader("Accuracy per class")
    st.plotly_chart(figures.per_class_accuracy(evaluation["per_class_accuracy"]))

st.subheader("Most confident mistakes")
images, records = run.mistakes()
if not records:
    st.success("No mistakes on the test split.")
else:
    shown = [common.enlarged(image, GALLERY_SCALE) for image in images[: len(records)]]
    captions = [f"{classes[r['true']]} → **{classes[r['predicted']]}** ({r['confidence']:.0%})" for r in records]
    st.image(shown, caption=captions, width=shown[0].shape[1])  # one size for all, whatever the caption
    st.caption("Each image: its true class → what the model said, with the model's confidence.")
    pick, go = st.columns([2, 1], vertical_alignment="bottom")
    number = pick.selectbox("Look inside the net on mistake", range(len(records)),
                            format_func=lambda i: f"{i + 1}: {captions[i].replace('**', '')}")
    with go:
        explaining.link_inside("mistake", "Where each model looks",
                               **{common.RUN_PARAM: run.run_id, explaining.MISTAKE_PARAM: str(number)})
