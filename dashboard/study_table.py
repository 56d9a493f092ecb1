"""The study page's head: its title, what the study was, and the study's five nets beside the shipped zoo's runs.

Nothing here imports PyTorch, so that a fresh server paints this head at once, from the zoo's results.json
(``first_paint``), while PyTorch and the models load; the page itself then draws the same head from the runs.
"""

from __future__ import annotations

import sys
import time
from urllib.parse import urlparse

import pandas as pd
import streamlit as st

from convnets.datasets import dataset_fields, default_zoo_dir
from convnets.reporting import COPY_LABELS, copy_cost, duration, points
from convnets.study import SOURCE, rows_from_results

COLUMNS = ["Net", "Study %", "Ours %", "≈ official %", "Δ points", "Params", "Epochs", "Study time", "Our time",
           "Device"]
# The pause after the head, before those imports: their seconds hold the interpreter, and the server's thread
# must send the head first (the table came 0.4-0.8 s after the title without it, 0.01 s with it; bench/README.md)
HANDOVER_SECONDS = 0.15
FORMATS = dict.fromkeys(("Study %", "Ours %", "≈ official %"), "{:.2f}") | {
    "Δ points": "{:+.2f}", "Params": lambda n: f"{n / 1e6:.2f} M", "Epochs": "{:.0f}"}
# What the pages import that loads PyTorch, Captum and plotly: loaded once per server, behind the first paint
HEAVY = ("dashboard.common", "dashboard.explaining", "dashboard.figures", "dashboard.study", "dashboard.tables")


def on_copy(data_copy: str, dataset: str) -> str:
    """Which test images a figure was measured on, in words: "CIFAR-10's test images (JPEG copy)"."""
    return f"{dataset_fields(dataset)['dataset_label']}'s test images ({COPY_LABELS[data_copy]})"


def zoo_table(rows: list[dict]) -> pd.DataFrame:
    """The study's figure and time beside the shipped zoo's run of each net (blank where the zoo lacks it)."""
    frame = []
    for r in rows:
        ours = r["zoo"] or {}
        frame.append({
            "Net": r["title"], "Study %": points(r["study_accuracy"]), "Ours %": points(ours.get("test_accuracy")),
            "≈ official %": points(ours.get("official_equivalent")), "Δ points": points(ours.get("difference")),
            "Params": r["params"], "Epochs": ours.get("epochs"), "Study time": duration(r["study_seconds"]),
            "Our time": duration(ours.get("train_seconds")), "Device": ours.get("device"),
        })
    return pd.DataFrame(frame, columns=COLUMNS)


def head(rows: list[dict]) -> None:
    """The title, the study in a paragraph, its table (static: it wraps its cells to the page's width, where a data
    frame of ten columns would scroll) and what the figures mean."""
    st.title("The study")
    dataset = dataset_fields(rows[0]["dataset"])["dataset_label"]
    st.markdown(f"A study in Keras trained five classic convolutional nets on {dataset}, each a step in how convnets "
                "grew, from LeNet to a wide residual net. This project rebuilt the five in PyTorch and trained them "
                "with pinned recipes, for at most a quarter of the study's epochs; the runs ship with it (the zoo), "
                "so every figure of ours here is there without data, a download or any training.")
    st.caption(f"Source: {SOURCE}.")
    st.table(zoo_table(rows).style.format(FORMATS, na_rep="–"), hide_index=True)
    shipped = [r for r in rows if r["zoo"]]
    copies = sorted({r["zoo"]["data_copy"] for r in shipped})
    flipped = [r["title"] for r in shipped if r["zoo"]["tta"]]
    cost = max((copy_cost(c) for c in copies), default=0.0)
    measured_on = " and ".join(on_copy(c, rows[0]["dataset"]) for c in copies) or "–"
    st.caption("**Study %**: the study's notebooks on the official test set, at their best epoch (of up to 200). "
               f"**Ours %**: the shipped zoo's runs, final epoch, on {measured_on}"
               + (f"; {' and '.join(flipped)} average each test image with its mirror" if flipped else "")
               + (f". That copy costs about {100 * cost:.1f} points against the official test set: **≈ official** "
                  "adds them back, and **Δ points** is that minus the study's figure." if cost else
                  ". **Δ points**: ours minus the study's figure.")
               + " Study time: its notebook on its GPU; our time: training alone, on the device beside it.")


def loaded() -> bool:
    """Whether this server has loaded what the pages need (after its first run, always)."""
    return all(name in sys.modules for name in HEAVY)


def first_paint(default_page: str) -> bool:
    """A fresh server's first run: the study's head at once where the study page is asked for (the default page,
    ``default_page`` its URL name), then the heavy modules loaded under a spinner. Returns whether the head was
    drawn, for the caller to rerun the app over it (a rerun goes to the default page, so any other page asked for
    goes on in this run instead: a link to /draw on a fresh server must not land on the study)."""
    asked = urlparse(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
    rows = rows_from_results(default_zoo_dir()) if asked in ("", default_page) else None
    if rows is not None:
        head(rows)
        time.sleep(HANDOVER_SECONDS)
    with st.spinner("Loading PyTorch and the models (once, when the dashboard starts)…"):
        for name in HEAVY:
            __import__(name)
    return rows is not None
