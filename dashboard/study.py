"""The Train page's "Reproduce the study": the study's five nets queued with the zoo's recipes, the table filling in
as they train (the study page's own table is in ``study_table``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convnets import zoo
from convnets.data import find_source
from convnets.device import available_devices
from convnets.errors import ConvnetsError
from convnets.models import study_title
from convnets.reporting import copy_cost, duration, points
from convnets.schema import ACTIVE
from convnets.store import RunStore
from dashboard import access
from dashboard.study_table import on_copy

POLL_SECONDS = 2.0
# Nine columns, what fits a laptop's page with the sidebar open (eleven were cut off at 1000 px): the figure in
# official-data terms and the device are said under the table, as the study page's table gives them.
COLUMNS = ["Model", "Study %", "Zoo %", "Ours %", "Δ points", "Epochs", "Study time", "Our time", "State"]
FORMATS = dict.fromkeys(("Study %", "Zoo %", "Ours %"), "{:.2f}") | {"Δ points": "{:+.2f}"}


def table(rows: list[dict]) -> pd.DataFrame:
    """The study's figures beside ours: accuracies in percent, the difference in official-data terms."""
    return pd.DataFrame([{
        "Model": study_title(r["model"]), "Study %": points(r["study_accuracy"]),
        "Zoo %": points((r["zoo"] or {}).get("test_accuracy")), "Ours %": points(r["test_accuracy"]),
        "Δ points": points(r["difference"]), "Epochs": f"{r['epochs_done']}/{r['epochs']}",
        "Study time": duration(r["study_seconds"]),
        "Our time": duration(r["train_seconds"]) if r["train_seconds"] else "–", "State": r["state"] or "not queued",
    } for r in rows], columns=COLUMNS)


def section(data_dir: str) -> None:
    """The button that queues the five nets, and their table (live while any of them trains)."""
    source = find_source("cifar10", data_dir)
    st.subheader("Reproduce the study")
    st.caption("The Keras study trained five CIFAR-10 nets for up to 200 epochs each (up to 83 minutes "
               "a net on its GPU). This queues them with the zoo's pinned recipes (at most 50 epochs) into your own "
               "store, on your device, and fills in the study's table as they train. A seed other than the zoo's "
               "0 makes them new runs; on one H200 the four nets after LeNet took about 6 minutes of training in "
               "all; on two CPU cores (bf16) one took from half an hour (the ALL-CNN) to two hours (the WRN-14-2).")
    seed_column, device_column, button_column = st.columns([1, 1, 2], vertical_alignment="bottom")
    seed = seed_column.number_input("Seed", min_value=1, value=1, key="study_seed")
    device = device_column.selectbox("Device", available_devices(), key="study_device")
    missing = source.kind == "download"
    if missing:
        st.info(f"CIFAR-10 is not in the data folder {data_dir}: set it in the sidebar to reproduce the study.",
                icon=":material/info:")
    if access.is_trainer() and button_column.button("Reproduce the study", icon=":material/replay:",
                                                    disabled=missing):
        try:
            jobs = [access.submit(c, device, data_dir) for c in zoo.study_configs(source.copy, int(seed))]
        except ConvnetsError as e:
            st.error(str(e), icon=":material/error:")
        else:
            st.toast(f"Queued {len(jobs)} trainings of the study's nets (seed {seed})")
    polling = _training(zoo.study_table(RunStore(), source.copy, int(seed)))
    st.fragment(run_every=POLL_SECONDS if polling else None)(_live_table)(source.copy, int(seed), polling)


def _training(rows: list[dict]) -> bool:
    return any(r["state"] in ACTIVE for r in rows)


def _live_table(data_copy: str, seed: int, polling: bool) -> None:
    """Rerun every few seconds while a net trains; a start or an end reruns the page, which turns that on or off."""
    rows = zoo.study_table(RunStore(), data_copy, seed)
    if polling != _training(rows):
        st.rerun()
    # Static, as on the study page: it wraps its cells to the page's width, where a data frame would scroll
    # sideways at 1000 px; what a column's help would say goes in the caption under it.
    st.table(table(rows).style.format(FORMATS, na_rep="–"), hide_index=True)
    cost = copy_cost(data_copy)
    flipped = [study_title(r["model"]) for r in rows if r["tta"]]
    devices = sorted({r["device"] for r in rows if r["device"]})
    dataset = rows[0]["dataset"]
    zoo_copies = sorted({r["zoo"]["data_copy"] for r in rows if r["zoo"]})
    where = (f"Zoo % on {', '.join(on_copy(c, dataset) for c in zoo_copies)}, Ours % on {on_copy(data_copy, dataset)}"
             if zoo_copies and zoo_copies != [data_copy] else f"Zoo % and Ours % on {on_copy(data_copy, dataset)}")
    st.caption(f"Test accuracy: {where}"
               + (f"; {' and '.join(flipped)} average each test image with its mirror" if flipped else "")
               + ". **Study %**: the study's notebooks on the official data, at their best epoch (picked on the test "
               "set). **Zoo %**: the shipped zoo's run of the same recipe (seed 0), final epoch. **Ours %**: this "
               "seed's run, final epoch. **Δ points**: ours in official-data terms"
               + (f" (the copy's measured cost of {100 * cost:.1f} points added back)" if cost else "")
               + " minus the study's figure. **Our time**: training alone"
               + (f", on {' and '.join(devices)}." if devices else "."))
