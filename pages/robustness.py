"""Robustness: each run's test accuracy under common corruptions at five severities, and under adversarial attacks
of growing size, stored with the run."""

import pandas as pd
import streamlit as st

from convnets.attack import EPS, METHODS, PGD_STEP, PGD_STEPS, attack_of
from convnets.corruptions import names, reference
from convnets.errors import ConvnetsError
from convnets.reporting import data_label
from convnets.robustness import robustness_of
from convnets.store import RunStore
from dashboard import common, figures, tables

MEAN = "all (mean)"
ATTACKS = {"fgsm": "FGSM (Goodfellow et al. 2015): one step of ε along the sign of the loss's gradient",
           "pgd": f"PGD (Madry et al. 2018): {PGD_STEPS} such steps of {PGD_STEP:g} ε, each projected back to within ε "
                  "of the image"}


def run_columns(table: pd.DataFrame) -> dict:
    """The columns that say which run a row is, pinned and as wide as their longest entry, so that the figures
    scroll beside them on a narrow screen: the run's name (as the chart's legend and the Leaderboard give it) and
    the data it was measured on."""
    name = st.column_config.TextColumn("Run", pinned=True, width=common.column_width(table[tables.NET], "Run"),
                                       help="The net, told apart from its other runs by epochs, seed, the zoo or "
                                       "the run id, as on the Leaderboard")
    return {tables.NET: name,
            "Data": st.column_config.TextColumn(pinned=True, width=common.column_width(table["Data"], "Data"))}


def adversarial(runs: list[dict], store: RunStore) -> None:
    """The tab of accuracy against the size of an adversarial attack, and the runs not yet attacked."""
    method = st.segmented_control("Attack", list(METHODS), format_func=METHODS.get, default="fgsm", required=True,
                                  key="attack_method")
    attacked = [(r, found) for r in runs if (found := store.require(r["run_id"]).attack(method)) is not None]
    if attacked:
        table = tables.attack(attacked)
        st.plotly_chart(figures.attack(list(zip(tables.run_names([s for s, _ in attacked]),
                                                [a for _, a in attacked])), METHODS[method]))
        sizes = [c for c in table.columns if c[0] == "ε"]
        st.dataframe(table, hide_index=True, height=common.table_height(len(table)),
                     column_order=[tables.NET, "Data", *sizes], column_config={
                         **run_columns(table),
                         **{c: st.column_config.NumberColumn(format="%.2f", help=f"Test accuracy in %, the "
                                                             f"pixels moved by up to {c[2:]} grey levels of 255")
                            for c in sizes}})
        first = attacked[0][1]
        st.caption(f"Each run is attacked on the same {first['subset']:,} test images as the corruptions, each image "
                   f"on its own, by {ATTACKS[method]}, untargeted, on the cross-entropy of its label (Captum's "
                   "captum.robust). ε is the most any pixel may change, in grey levels out of 255; the attacked "
                   "images are rounded to whole levels, real 8-bit images. In fp32 on the model in eval mode, "
                   "test-time flips included where the recipe has them. One standard error is about 1.6 points at "
                   "1,000 images.")
    unattacked = [r for r in runs if r["run_id"] not in {s["run_id"] for s, _ in attacked}]
    if not unattacked:
        return
    st.subheader("Not attacked yet")
    st.caption(f"Attacking takes the test split and, on two CPU cores, for {METHODS['fgsm']} at {len(EPS)} sizes from "
               f"a second (LeNet-5) to a minute or two (wide nets), {PGD_STEPS} times as long for PGD; "
               f"`python -m convnets attack RUN_ID --method {method}` does the same. The shipped zoo is read-only: its "
               "runs' figures are shown, not kept.")
    by_id = {r["run_id"]: r for r in unattacked}
    chosen = st.selectbox("Run", list(by_id), format_func=lambda i: common.run_label(by_id[i]), key="attack_run")
    if st.button("Attack", icon=":material/bolt:", key="attack_button"):
        run = store.require(chosen)
        try:
            with st.spinner(f"Attacking the test images by {METHODS[method]}…"):
                found = attack_of(run, method, EPS, common.data_dir())
        except ConvnetsError as e:
            st.error(str(e), icon=":material/error:")
            return
        if not run.readonly:
            st.rerun()
        st.plotly_chart(figures.attack([(common.run_label(by_id[chosen]), found)], METHODS[method]))

st.title("Robustness")
rows = common.finished_or_stop("Train a model to see how its accuracy holds up when the test images get noisy, "
                               "blurred, dim, compressed, pixelated or (digits) turned and shifted.")
datasets = sorted({r["dataset"] for r in rows}, reverse=True)  # CIFAR-10 first: its corruptions tell models apart
dataset = datasets[0] if len(datasets) == 1 else st.segmented_control(
    "Dataset", datasets, format_func=common.dataset_label, default=datasets[0], required=True,
    key="robustness_dataset")

store = RunStore()
corruptions_tab, attacks_tab = st.tabs(["Corruptions", "Adversarial attacks"])
runs = [r for r in rows if r["dataset"] == dataset]
measured = [(r, found) for r in runs if (found := store.require(r["run_id"]).robustness()) is not None]
missing = [r for r in runs if r["run_id"] not in {s["run_id"] for s, _ in measured}]

with corruptions_tab:
    if measured:
        choice = st.segmented_control("Corruption", [MEAN, *names(dataset)], default=MEAN, required=True,
                                      format_func=lambda c: c.replace("_", " "), key="robustness_corruption")
        corruption = None if choice == MEAN else choice
        table = tables.robustness(measured)
        st.plotly_chart(figures.robustness(list(zip(tables.run_names([s for s, _ in measured]),
                                                    [r for _, r in measured])), corruption))
        # The chosen corruption beside the mean: every one of them side by side is wider than a laptop's page.
        every = st.toggle("Every corruption's column", key="robustness_every_column")
        shown = names(dataset) if every else [corruption] if corruption else []
        st.dataframe(table, hide_index=True, height=common.table_height(len(table)),
                     column_order=[tables.NET, "Data", "Clean %", tables.CORRUPTED, *shown], column_config={
            **run_columns(table),
            "Clean %": st.column_config.NumberColumn(format="%.2f", help="The same test images, uncorrupted"),
            tables.CORRUPTED: st.column_config.NumberColumn(format="%.2f", help="Mean over the corruptions and their "
                                                            "severities 1-5: the Leaderboard's column"),
            **{name: st.column_config.NumberColumn(name.replace("_", " ") + " %", format="%.2f",
                                                   help="Mean over severities 1-5") for name in names(dataset)},
        })
        first = measured[0][1]
        copies = sorted({data_label(dataset, s["data_copy"]) for s, _ in measured})
        st.caption(f"Each run is measured on the same {first['subset']:,} test images of "
                   f"{common.dataset_label(dataset)} "
                   f"({', '.join(copies)}; as many of each class), "
                   f"corrupted the same way (seed {first['seed']}): {reference(dataset)} corruptions and strengths, "
                   "built from torchvision's transforms. Severity 0 is the clean subset.")

    if missing:
        st.subheader("Not measured yet")
        st.caption("Runs trained before robustness was measured at the end of training. Measuring takes the test split "
                   "and, on two CPU cores, from seconds (LeNet-5) to a few minutes (wide nets); "
                   "`python -m convnets robustness RUN_ID` does the same.")
        by_id = {r["run_id"]: r for r in missing}
        chosen = st.selectbox("Run", list(by_id), format_func=lambda i: common.run_label(by_id[i]),
                              key="robustness_run")
        if st.button("Measure", icon=":material/speed:"):
            try:
                with st.spinner("Corrupting the test images and predicting them…"):
                    robustness_of(store.require(chosen), common.data_dir())
                st.rerun()
            except ConvnetsError as e:
                st.error(str(e), icon=":material/error:")

with attacks_tab:
    adversarial(runs, store)
