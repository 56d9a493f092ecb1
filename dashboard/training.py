"""The Train page's plumbing: parameter counts, job progress."""

from __future__ import annotations

import streamlit as st

from convnets.jobs import Job
from convnets.models import get_model
from convnets.schema import Phase
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
