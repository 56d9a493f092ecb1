"""The Train page's plumbing: parameter counts, job progress, the values of a sweep."""

from __future__ import annotations

import re

import streamlit as st

from convnets.config import INTEGERS
from convnets.errors import ConvnetsError
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
