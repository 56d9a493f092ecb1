"""Robustness: each run's test accuracy under common corruptions at five severities, stored with the run."""

import streamlit as st

from convnets.corruptions import names
from convnets.errors import ConvnetsError
from convnets.reporting import data_label
from convnets.robustness import robustness_of
from convnets.store import RunStore
from dashboard import common, figures, tables

REFERENCES = {"cifar10": "CIFAR-10-C's (Hendrycks & Dietterich 2019)",
              "mnist": "MNIST-C's (Mu & Gilmer 2019), with its rotation and translation"}
MEAN = "all (mean)"

st.title("Robustness")
rows = common.finished_or_stop("Train a model to see how its accuracy holds up when the test images get noisy, "
                               "blurred, dim, compressed, pixelated or (digits) turned and shifted.")
datasets = sorted({r["dataset"] for r in rows}, reverse=True)  # CIFAR-10 first: its corruptions tell models apart
dataset = datasets[0] if len(datasets) == 1 else st.segmented_control(
    "Dataset", datasets, format_func=common.DATASET_LABELS.get, default=datasets[0], required=True,
    key="robustness_dataset")

store = RunStore()
runs = [r for r in rows if r["dataset"] == dataset]
measured = [(r, found) for r in runs if (found := store.require(r["run_id"]).robustness()) is not None]
missing = [r for r in runs if r["run_id"] not in {s["run_id"] for s, _ in measured}]

if measured:
    choice = st.segmented_control("Corruption", [MEAN, *names(dataset)], default=MEAN, required=True,
                                  format_func=lambda c: c.replace("_", " "), key="robustness_corruption")
    corruption = None if choice == MEAN else choice
    st.plotly_chart(figures.robustness([(common.run_label(s), r) for s, r in measured], corruption))
    table = tables.robustness(measured)
    st.dataframe(table, hide_index=True, height=common.table_height(len(table)), column_config={
        "Clean %": st.column_config.NumberColumn(format="%.2f", help="The same test images, uncorrupted"),
        tables.CORRUPTED: st.column_config.NumberColumn(format="%.2f", help="Mean over the corruptions and their "
                                                        "severities 1-5: the Leaderboard's column"),
        **{name: st.column_config.NumberColumn(name.replace("_", " ") + " %", format="%.2f",
                                               help="Mean over severities 1-5") for name in names(dataset)},
    })
    first = measured[0][1]
    copies = sorted({data_label(dataset, s["data_copy"]) for s, _ in measured})
    st.caption(f"Each run is measured on the same {first['subset']:,} test images of {common.DATASET_LABELS[dataset]} "
               f"({', '.join(copies)}; as many of each class), "
               f"corrupted the same way (seed {first['seed']}): {REFERENCES[dataset]} corruptions and strengths, "
               "built from torchvision's transforms. Severity 0 is the clean subset.")

if missing:
    st.subheader("Not measured yet")
    st.caption("Runs trained before robustness was measured at the end of training. Measuring takes the test split "
               "and, on two CPU cores, from seconds (LeNet-5) to a few minutes (wide nets); "
               "`python -m convnets robustness RUN_ID` does the same.")
    by_id = {r["run_id"]: r for r in missing}
    chosen = st.selectbox("Run", list(by_id), format_func=lambda i: common.run_label(by_id[i]), key="robustness_run")
    if st.button("Measure", icon=":material/speed:"):
        try:
            with st.spinner("Corrupting the test images and predicting them…"):
                robustness_of(store.require(chosen), common.data_dir())
            st.rerun()
        except ConvnetsError as e:
            st.error(str(e), icon=":material/error:")
