"""The Train page's plumbing: parameter counts, job progress, the values of a sweep, a user's folder."""

from __future__ import annotations

import re

import streamlit as st

from convnets.config import INTEGERS
from convnets.datasets import save_record
from convnets.errors import ConvnetsError
from convnets.folders import LAYOUTS, SIZES, FolderCheck, check_folder
from convnets.jobs import Job
from convnets.models import get_model
from convnets.schema import Phase
from dashboard import access
from dashboard.common import duration


@st.cache_data(show_spinner=False)
def parameter_count(model: str, dataset: str) -> int:
    """Counting builds the model, which takes seconds for the widest nets: once per server is enough."""
    return get_model(model).num_params(dataset)


def progress_fraction(progress: dict | None) -> float:
    """How much of the whole training is done, counting the steps of the epoch under way."""
    if not progress:
        return 0.0
    done = progress["epoch"] - 1 + progress["step"] / max(progress["steps"], 1)
    return min(max(done / max(progress["epochs"], 1), 0.0), 1.0)


def progress_text(job: Job) -> str:
    """The progress bar's line; before the first step it says what the trainer is doing."""
    progress = job.progress
    if job.phase == Phase.EVALUATING:
        return "evaluating the final model…"
    if not progress:
        return f"{job.phase or 'starting'}…"
    return (f"epoch {progress['epoch']}/{progress['epochs']} · step {progress['step']}/{progress['steps']} · "
            f"loss {progress['loss']:.3f} · {progress['images_per_second']:,.0f} img/s · "
            f"ETA {duration(progress['eta_seconds'])}")


def sweep_values(texts: dict[str, str]) -> dict[str, list]:
    """The sweep form's lists ('0.1, 0.05' per recipe field) as values; fields left empty are not swept."""
    values = {}
    for name, text in texts.items():
        parts = [part for part in re.split(r"[,;\s]+", text.strip()) if part]
        kind = int if name in INTEGERS else float
        try:
            if parts:
                values[name] = [kind(part) for part in parts]
        except ValueError:
            what = "whole numbers" if kind is int else "numbers"
            raise ConvnetsError(f"{name.replace('_', ' ')}: '{text}' is not a list of {what} (e.g. 1, 2, 3)") from None
    return values


YOUR_FOLDER = "your-folder"  # the Train page's dataset choice that asks for a folder's path
AUTO_SIZE = "auto"


def folder_picker() -> str | None:
    """A user's image folder: its path and image size, its check (classes, counts, split, what was skipped and why)
    and, once it passes, its registry name; None until then. A folder that fails says why and writes nothing."""
    path_column, size_column, button_column = st.columns([4, 1, 1], vertical_alignment="bottom")
    path = path_column.text_input("Image folder", key="folder_path", placeholder="/path/to/images",
                                  help="One folder per class (PATH/<class>/*), split here 80/20, or "
                                  "PATH/train/<class>/* and PATH/test/<class>/*. Any image size and mode: fitted to "
                                  "the size on the right.")
    size = size_column.selectbox("Image size", [AUTO_SIZE, *SIZES], key="folder_size",
                                 format_func=lambda s: "auto" if s == AUTO_SIZE else f"{s}×{s}",
                                 help="auto: 28×28 when every image is greyscale, else 32×32")
    asked = button_column.button("Check the folder", icon=":material/fact_check:", disabled=not path.strip())
    wanted = (path.strip(), None if size == AUTO_SIZE else int(size))
    kept = st.session_state.get("folder_check")
    if asked:
        try:
            with st.spinner("Reading every image of the folder…"):
                check = check_folder(access.confined(wanted[0]), wanted[1])  # inside the roots when shared
                save_record(check.record())
        except ConvnetsError as e:
            st.session_state.pop("folder_check", None)
            st.error(str(e), icon=":material/folder_off:")
            return None
        kept = st.session_state["folder_check"] = (wanted, check)
    if kept is None or kept[0] != wanted:
        st.caption("Check the folder to train on it.")
        return None
    show_check(kept[1])
    return kept[1].name


def show_check(check: FolderCheck) -> None:
    """What a folder's check found, as a newcomer needs it: classes and counts, the split, the notes, the skips."""
    counts = check.counts
    st.success(f"{check.path}: {len(check.classes)} classes, {sum(counts['train']):,} training and "
               f"{sum(counts['test']):,} test images ({check.layout}"
               f"{'; 20 % of every class for testing, seed 0' if check.layout == LAYOUTS[1] else ''}), "
               f"{'greyscale' if check.channels == 1 else 'RGB'} {check.size}×{check.size} "
               f"(median side {check.median_side} px).", icon=":material/folder_open:")
    for note in check.notes:
        st.caption(note)
    st.dataframe([{"Class": c, "Train": counts["train"][i], "Test": counts["test"][i]}
                  for i, c in enumerate(check.classes)], hide_index=True, height=min(300, 35 * len(check.classes) + 38))
    if check.skipped:
        with st.expander(f"Skipped files ({len(check.skipped)})"):
            st.dataframe([{"File": f, "Why": why} for f, why in check.skipped], hide_index=True)
