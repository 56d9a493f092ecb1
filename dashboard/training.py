"""The Train page's plumbing: the CLI arguments a form makes, the devices to offer, job records and progress."""

from __future__ import annotations

import streamlit as st
import torch

from convnets.jobs import Job
from convnets.models import get_model
from dashboard.common import duration


def device_choices() -> list[str]:
    """Only the devices this machine has; "auto" lets the trainer pick the best one."""
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices.append("cuda")
    if torch.backends.mps.is_available():
        choices.append("mps")
    return choices


@st.cache_data(show_spinner=False)
def parameter_count(model: str, dataset: str) -> int:
    """Counting builds the model, which takes seconds for the widest nets: once per server is enough."""
    return get_model(model).num_params(dataset)


def train_argv(model: str, dataset: str, settings: dict[str, object], device: str, data_dir: str) -> list[str]:
    """`python -m convnets train` arguments, the form a job is submitted in; `settings` maps the command's
    options without their dashes (`batch-size`, `lr`, ...) to the form's values."""
    argv = ["--model", model, "--dataset", dataset, "--data-dir", data_dir]
    for option, value in settings.items():
        argv += [f"--{option}", repr(float(value)) if isinstance(value, float) else str(value)]
    return argv if device == "auto" else [*argv, "--device", device]


def progress_fraction(progress: dict | None) -> float:
    """How much of the whole training is done, counting the steps of the epoch under way."""
    if not progress:
        return 0.0
    done = progress["epoch"] - 1 + progress["step"] / max(progress["steps"], 1)
    return min(max(done / max(progress["epochs"], 1), 0.0), 1.0)


def progress_text(job: Job) -> str:
    """The progress bar's line; before the first step it says what the trainer is doing."""
    progress = job.progress
    if job.phase == "evaluating":
        return "evaluating the final model…"
    if not progress:
        return f"{job.phase or 'starting'}…"
    return (f"epoch {progress['epoch']}/{progress['epochs']} · step {progress['step']}/{progress['steps']} · "
            f"loss {progress['loss']:.3f} · {progress['images_per_second']:,.0f} img/s · "
            f"ETA {duration(progress['eta_seconds'])}")
