"""Inference with every finished model of a dataset at once, for the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import inference
from .config import RunConfig
from .datasets import get_dataset
from .errors import ConvnetsError
from .imaging import DrawingResult, prepare_drawing, prepare_for, prepare_upload  # noqa: F401 - the public inference API
from .models import departures, net_name
from .reporting import run_name
from .schema import State
from .store import Run, RunStore

FEW = 8  # up to this many images at once: one thread, and the runs' ONNX graphs where they have them


@dataclass
class Prediction:
    run_id: str
    model: str
    name: str  # tells runs of one model apart: model, epochs, short id, zoo or not (reporting.run_name)
    probabilities: list[float]  # one per class
    classes: list[str]

    @property
    def label(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def class_name(self) -> str:
        return self.classes[self.label]

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.label])

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "model": self.model, "name": self.name, "label": self.label,
                "class_name": self.class_name, "probability": round(self.probability, 6),
                "probabilities": [round(p, 6) for p in self.probabilities]}


def load_model(run: Run) -> torch.nn.Module:
    """Models are loaded once per process and reloaded only when the run's weights change."""
    path = run.path / "model.safetensors"
    return _load(str(run.path), run.readonly, path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _load(path: str, readonly: bool, _mtime: int) -> torch.nn.Module:
    return Run(Path(path), readonly).load_model("cpu")


def choose_runs(summaries: list[dict], *, best_per_model: bool = False, at_chance: bool = False) -> list[str]:
    """The ids of the finished runs that should answer, from their summaries: every run, or each model's best (your
    own runs before the shipped zoo's, so that a model you just trained answers even where the zoo's run of it
    scores higher; then the highest test accuracy, the newest of equals); runs at chance level only when asked for,
    because a model that learned nothing only adds a wrong answer."""
    rows = [s for s in summaries if s["state"] == State.FINISHED and (at_chance or not s.get("at_chance"))]
    if best_per_model:
        best: dict[tuple, dict] = {}
        for s in rows:
            key = (s["model"], s["dataset"])
            if key not in best or _rank(s) > _rank(best[key]):
                best[key] = s
        rows = [s for s in rows if best[(s["model"], s["dataset"])] is s]
    return [s["run_id"] for s in rows]


def _rank(summary: dict) -> tuple[bool, float, float]:
    return not summary.get("zoo"), summary.get("test_accuracy") or 0.0, summary.get("finished_at") or 0.0


@torch.inference_mode()
def predict(images: list[np.ndarray], dataset: str, store: RunStore | None = None,
            run_ids: list[str] | None = None, convert_in_background: bool = False) -> list[list[Prediction]]:
    """For each image (H×W grey or H×W×3, uint8, at the dataset's side), the prediction of every finished model
    of the dataset, or of the runs named (see ``choose_runs``); a run that cannot answer is left out.

    Up to FEW images (a drawing, a photo) are answered by each run's ONNX graph where it has one (convnets.inference:
    the same probabilities in half the CPU time), else by PyTorch; ``convert_in_background`` starts converting the
    runs without one, for the pages, whose every click pays for the answers."""
    store = store or RunStore()
    found = store.finished(dataset) if run_ids is None else [r for r in map(store.get, run_ids) if r is not None]
    runs = [(run, config) for run in found if (config := _config(run, dataset)) is not None]
    batch = as_batch(images)
    out: list[list[Prediction]] = [[] for _ in images]
    with threads_for(len(images)):
        without_graph = _predict_into(out, batch, dataset, runs, store if len(images) <= FEW else None)
    if convert_in_background and len(images) <= FEW and without_graph:
        inference.convert_in_background(store, without_graph)
    return out


def as_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    """HxW grey or HxWx3 uint8 images as one float NxCxHxW batch of 0..255 pixels, what a stored model takes."""
    return torch.from_numpy(np.stack([_chw(im) for im in images])).float()


@contextmanager
def threads_for(images: int) -> Iterator[None]:
    """A drawing is one tiny image: threading it costs more than it saves (140 ms vs 2 ms on a busy laptop), so
    up to FEW images run on one thread and only bigger batches get them all."""
    before = torch.get_num_threads()
    torch.set_num_threads(1 if images <= FEW else before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _config(run: Run, dataset: str) -> RunConfig | None:
    """The run's configuration if it is of ``dataset``; None also when it is unreadable: one damaged run must not
    take every other model's answer away."""
    try:
        config = run.config
    except (ConvnetsError, OSError):
        return None
    return config if config.dataset == dataset else None


def _predict_into(out: list[list[Prediction]], batch: torch.Tensor, dataset: str,
                  runs: list[tuple[Run, RunConfig]], graphs: RunStore | None) -> list[Run]:
    """Each run's answers into ``out``, from its ONNX graph in ``graphs``' home where there is one; returns the runs
    PyTorch answered instead."""
    classes = list(get_dataset(dataset).classes)
    without_graph = []
    for run, config in runs:
        probs = inference.probabilities(graphs, run, batch) if graphs is not None else None
        if probs is None:
            without_graph.append(run)
            try:
                probs = load_model(run)(batch).softmax(1).numpy()
            except (ConvnetsError, OSError):
                continue
        name = name_of(run, config)
        for i, p in enumerate(probs.tolist()):
            out[i].append(Prediction(run.run_id, config.model, name, p, classes))
    return without_graph


def name_of(run: Run, config: RunConfig) -> str:
    """The run's name in answer tables and galleries (``reporting.run_name``), from its configuration as already
    read: answering reads each run's config.json once, not again for its name."""
    return run_name(net_name(config.model), config.recipe.epochs, run.run_id, run.readonly,
                    departures(config.model, config.dataset, config.recipe), config.seed)


def _chw(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
