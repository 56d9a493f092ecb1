"""Compare: two runs of a dataset on the same test images — where they disagree, whether the difference is more than
chance (McNemar's exact test), and how honest each one's confidence is."""

import numpy as np
import streamlit as st

from convnets.calibration import reliability
from convnets.compare import cell, compare, default_pair, only_right
from convnets.data import SplitImages
from convnets.datasets import get_dataset
from convnets.errors import ConvnetsError
from convnets.models import net_name
from convnets.reporting import COPY_LABELS, data_label
from convnets.schema import Predictions
from dashboard import common, figures, samples, tables

SHOWN = 30  # images per gallery of disagreements
SCALE = 5  # wide enough for two answers under a digit
CELL_SHOWN = 12  # per run in the confusion cell, side by side in half the width


def answer(p: Predictions, i: int, classes: list[str]) -> str:
    return f"{classes[p.predicted[i]]} {float(p.confidence[i]):.0%}"


def images_or_table(images: SplitImages | None, indices: np.ndarray, captions: list[str], key: str,
                    shown: int = SHOWN, scale: int = SCALE) -> None:
    """The first ``shown`` test images with their captions; without the data, the same answers as a table."""
    if not len(indices):
        st.caption("None.")
        return
    if images is None:
        st.dataframe({"test image": indices[:shown], "answers": captions[:shown]}, hide_index=True, key=key)
    else:
        common.gallery(list(images.take(indices[:shown]).transpose(0, 2, 3, 1)), captions[:shown], scale)
    if len(indices) > shown:
        st.caption(f"The first {shown} of {len(indices):,}.")


st.title("Compare")
rows = common.finished_or_stop("Train two models of a dataset to see which test images they disagree on.")
by_dataset: dict[str, list[dict]] = {}
for row in rows:
    by_dataset.setdefault(row["dataset"], []).append(row)
pairs = {d: runs for d, runs in by_dataset.items() if len(runs) >= 2}
if not pairs:
    common.empty_state("Comparing takes two finished runs of one dataset: train another one.")
    st.stop()

wanted = st.query_params.get(common.RUN_PARAM)
if len(pairs) > 1:
    preferred = next((d for d, runs in pairs.items() if wanted in {r["run_id"] for r in runs}), next(iter(pairs)))
    dataset = st.segmented_control("Dataset", list(pairs), format_func=common.dataset_label, default=preferred,
                                   required=True, key="compare_dataset")
else:
    dataset = next(iter(pairs))
by_id = {r["run_id"]: r for r in pairs[dataset]}
ids = list(by_id)
left, right = st.columns(2)
first, _ = default_pair(pairs[dataset], wanted)  # a link from another page opens on its run as A
a = left.selectbox("Run A", ids, index=ids.index(first), format_func=lambda i: common.run_label(by_id[i]),
                   key="compare_a")
other = st.query_params.get(common.OTHER_RUN_PARAM)  # ...and on its other run as B
index_b = ids.index(other if other in ids and other != a else default_pair(pairs[dataset], a)[1])
b = right.selectbox("Run B", ids, index=index_b, format_func=lambda i: common.run_label(by_id[i]), key="compare_b")
if a == b:
    st.info("Pick two different runs.", icon=":material/info:")
    st.stop()
run_a, run_b = by_id[a], by_id[b]
if run_a["data_copy"] != run_b["data_copy"]:
    st.warning(f"These runs were evaluated on different copies of {dataset} ({COPY_LABELS[run_a['data_copy']]}, "
               f"{COPY_LABELS[run_b['data_copy']]}): not the same test images.", icon=":material/warning:")
    st.stop()
pa, pb = common.stored_predictions(run_a), common.stored_predictions(run_b)
if pa is None or pb is None:
    st.stop()
try:
    result = compare(pa, pb)
except ConvnetsError as e:
    st.error(str(e), icon=":material/error:")
    st.stop()

classes = list(get_dataset(dataset).classes)
name_a, name_b = f"A · {net_name(run_a['model'])}", f"B · {net_name(run_b['model'])}"
table = result["table"]
columns = st.columns(4)
columns[0].metric(name_a, f"{result['accuracy_a']:.2%}", border=True, help=a)
columns[1].metric(name_b, f"{result['accuracy_b']:.2%}", border=True, help=b)
columns[2].metric("A − B", f"{100 * (result['accuracy_a'] - result['accuracy_b']):+.2f} points", border=True,
                  help=f"On the same {result['images']:,} test images")
columns[3].metric("McNemar p", f"{result['mcnemar_p']:.2g}", border=True,
                  help="McNemar's exact test: the chance of the disagreements splitting at least this unevenly if "
                  "both runs were equally good")
disagreements = table["only_a"] + table["only_b"]
verdict = "more than chance would explain" if result["mcnemar_p"] < 0.05 else "within what chance explains"
data = f"{common.dataset_label(dataset)} ({data_label(dataset, run_a['data_copy'])})"
st.caption(f"On the {result['images']:,} test images of {data}, they disagree on {disagreements:,}: A alone is "
           f"right on {table['only_a']:,}, "
           f"B alone on {table['only_b']:,}. If both were equally good, a split at least this uneven would happen "
           f"with probability p = {result['mcnemar_p']:.2g}: the difference is {verdict} (at the 5 % level).")
recomputed = [f"{net_name(s['model'])}'s on {p.source} (its stored evaluation reads {common.pct(s['test_accuracy'])})"
              for s, p in ((run_a, pa), (run_b, pb)) if abs(p.accuracy - (s["test_accuracy"] or 0)) > 1e-9]
if recomputed:
    st.caption("Accuracies here are those of the per-image predictions: " + "; ".join(recomputed) + ".")

table_column, _ = st.columns([2, 3])
table_column.dataframe(tables.two_by_two(table, "A", "B"))

images, why = samples.test_images(dataset, run_a["data_copy"], pa, common.data_dir())
if images is None:
    st.info(f"{why} The answers are listed without their images.", icon=":material/image_not_supported:")

st.subheader("Where they disagree")
only_a, only_b = only_right(pa, pb), only_right(pb, pa)
tab_a, tab_b = st.tabs([f"Only A right ({len(only_a):,})", f"Only B right ({len(only_b):,})"])
for tab, indices, key in ((tab_a, only_a, "only-a"), (tab_b, only_b, "only-b")):
    with tab:
        captions = [f"{classes[pa.labels[i]]} · A: {answer(pa, i, classes)} · B: {answer(pb, i, classes)}"
                    for i in indices]
        images_or_table(images, indices, captions, key)
st.caption("Each image: its true class, then each run's answer and confidence; the other run's most confident "
           "mistakes first.")

st.subheader("One cell of the confusion matrix, both runs")
true_column, predicted_column = st.columns(2)
confusion = np.zeros((len(classes), len(classes)), int)
np.add.at(confusion, (pa.labels, pa.predicted), 1)
np.fill_diagonal(confusion, -1)
top_true, top_predicted = np.unravel_index(confusion.argmax(), confusion.shape)  # A's most frequent confusion
true = true_column.selectbox("True class", range(len(classes)), index=int(top_true), format_func=classes.__getitem__,
                             key="compare_true")
predicted = predicted_column.selectbox("Predicted as", range(len(classes)), index=int(top_predicted),
                                       format_func=classes.__getitem__, key="compare_predicted")
for column, p, other, label in zip(st.columns(2), (pa, pb), (pb, pa), (name_a, name_b)):
    with column:
        found = cell(p, true, predicted)
        st.markdown(f"**{label}**: {common.plural(len(found), 'image')}")
        captions = [f"{answer(p, i, classes)} · other run: {answer(other, i, classes)}" for i in found]
        images_or_table(images, found, captions, f"cell-{label}", CELL_SHOWN, SCALE - 1)

st.subheader("Calibration")
calibrations = [(label, reliability(p.confidence, p.correct)) for label, p in ((name_a, pa), (name_b, pb))]
st.plotly_chart(figures.reliability(calibrations))
st.caption("Accuracy against confidence over 15 equal-width bins: on the diagonal a run is right exactly as often as "
           "it says; below it, over-confident; above it, under-confident. ECE: the gap averaged over the images. "
           "Below: images per bin; a point grows with its bin's images, so a bin of a few, whose accuracy is "
           "mostly chance, stays a dot.")
