"""The pages' download buttons for what leaves the dashboard: a run's export (a zip of its folder) and the offline
report. Each file is made when its button is clicked (Streamlit calls the callable then), and kept per process."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from convnets.export import FORMATS, export_zip
from convnets.store import RunStore
from dashboard import common
from dashboard.report import write_report

FORMAT_HELP = {"safetensors": "fp32 weights for PyTorch", "onnx": "an ONNX model for onnxruntime, in [0, 1] pixels"}


@st.cache_data(show_spinner=False, max_entries=8)
def _export(run_id: str, fmt: str, data_dir: str, _weights_changed: int) -> bytes:
    return export_zip(RunStore().require(run_id), fmt, data_dir)


@st.cache_data(show_spinner=False, max_entries=4)
def _report(dataset: str | None, data_dir: str, _token: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        write_report(path, dataset=dataset, data_dir=data_dir)
        return path.read_bytes()


def export_button(run_id: str) -> None:
    """A format choice and a button that downloads the run's export as a zip (weights in fp32, classes, model card
    and a loading snippet; see convnets.export)."""
    run = RunStore().require(run_id)
    changed, data_dir = (run.path / "model.safetensors").stat().st_mtime_ns, common.data_dir()
    choice, button = st.columns([1, 2], vertical_alignment="bottom")
    fmt = choice.segmented_control("Export as", FORMATS, default=FORMATS[0], required=True,
                                   key=f"export_format_{run_id}",
                                   help=" · ".join(f"{f}: {h}" for f, h in FORMAT_HELP.items()))
    button.download_button(f"Download the {fmt} export", lambda: _export(run_id, fmt, data_dir, changed),
                           file_name=f"{run_id}-{fmt}.zip", mime="application/zip", icon=":material/download:",
                           on_click="ignore", key=f"export_{run_id}_{fmt}",
                           help="A folder with the model, its class names, a model card (README.md) and a loading "
                           "snippet, checked against the run on the test images (seconds to a minute)")


def report_button(dataset: str | None) -> None:
    """Downloads the offline report (dashboard.report) of the runs shown: one HTML file to open without network."""
    data_dir = common.data_dir()
    token = RunStore().state_token()
    st.download_button("Download the report (HTML)", lambda: _report(dataset, data_dir, token),
                       file_name=f"convnets-report{'-' + dataset if dataset else ''}.html", mime="text/html",
                       icon=":material/summarize:", on_click="ignore",
                       help="The leaderboard, curves, confusion matrices, a comparison of the two best runs, "
                       "calibration and robustness as one file that opens in a browser with no network")
