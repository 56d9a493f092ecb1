"""The run records that every writer and reader shares: a run's states and phases, its live progress, one row
of its history and its evaluation.

They are stored as plain JSON (``status.json``, ``history.json``, ``evaluation.json``), so that the dashboard,
the CLI and other tools read them without this package; these types say what the keys are, and the store checks
what it reads against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from .errors import ConvnetsError


class State(StrEnum):
    """Where a run (or a background job) stands. Written by the trainer: queued, running, finished, failed,
    cancelled. Read only: interrupted (running or queued, but its trainer is gone), damaged (its files cannot be
    read), cached (a job whose configuration was trained already)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    DAMAGED = "damaged"
    CACHED = "cached"


ACTIVE = (State.QUEUED, State.RUNNING)
STOPPED = (State.CANCELLED, State.INTERRUPTED)  # a launch resumes them from their last completed epoch


class Phase(StrEnum):
    """What a running trainer is doing."""

    COMPILING = "compiling"
    TRAINING = "training"
    EVALUATING = "evaluating"
    DONE = "done"


@dataclass
class Progress:
    """Live progress, for the terminal's bar and the dashboard's (``status.json``'s ``progress``)."""

    epoch: int  # 1-based epoch being trained
    epochs: int
    step: int  # steps done in this epoch
    steps: int
    loss: float  # running mean of this epoch's training loss
    accuracy: float  # running training accuracy of this epoch
    images_per_second: float
    eta_seconds: float
    phase: Phase = Phase.TRAINING

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class HistoryRow:
    """One completed epoch (a row of ``history.json``)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float  # at the epoch's last step
    seconds: float  # training only: no evaluation, no data loading, no compiling
    images: int
    images_per_second: float
    wall_seconds: float  # training seconds of this and every earlier epoch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Evaluation:
    """A finished run's test-split report (``evaluation.json``)."""

    test_accuracy: float
    test_loss: float
    test_images: int
    classes: list[str]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    per_class_accuracy: dict[str, float]
    mistakes: list[dict]  # index, true, predicted, confidence: the most confident mistakes, most confident first
    weights: str | None = None  # shipped zoo runs: the weight form whose evaluation this is (fp32, fp16, int8)
    trained_weights_test_accuracy: float | None = None  # and the accuracy of the weights as trained
    extra: dict = field(default_factory=dict)  # keys written by later versions, kept as they are

    def to_dict(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None}
        return {**self.extra, **out}


@dataclass
class Predictions:
    """A run's answer for every test image, in the split's order (``predictions.npz``): what per-image comparisons,
    galleries and calibration are computed from. Compact: 4 bytes an image."""

    predicted: np.ndarray  # uint8 class per image
    confidence: np.ndarray  # float16 probability of that class
    labels: np.ndarray  # uint8 true class per image, so that a comparison needs no data
    source: str  # where and how they were computed: 'cuda (NVIDIA H200), bf16', 'cpu (2 threads), fp32'

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self) else 0.0


@dataclass
class Robustness:
    """Test accuracy under corruptions (``robustness.json``), on a fixed subset of the test split: the same images,
    corrupted the same way (the seed), for every run of a dataset."""

    subset: int  # test images used
    seed: int  # the corruptions' random draws (noise, directions)
    clean_accuracy: float  # severity 0: the subset as it is
    accuracy: dict[str, list[float]]  # corruption -> accuracy at severities 1..5
    mean_accuracy: float  # over every corruption and severity 1..5: the one summary number
    source: str  # where it was computed ('cpu (2 threads), fp32')
    seconds: float  # how long it took, corrupting included

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Attack:
    """Test accuracy against adversarial perturbations of growing size (``attack-<method>.json``), on the same fixed
    subset of the test split as ``Robustness``: one record per run and attack method."""

    method: str  # fgsm or pgd (attack.METHODS)
    eps: list[int]  # the perturbations' L-infinity sizes, in grey levels (/255), ascending
    accuracy: list[float]  # one per eps; eps 0 is the subset as it is
    subset: int  # test images used
    seed: int  # the subset's draw
    steps: int  # gradient-sign steps per image (FGSM: 1)
    step_size: float  # each step's size as a fraction of eps (FGSM: 1)
    source: str  # where it was computed, always in fp32 ('cpu (2 threads), fp32')
    seconds: list[float]  # how long each eps took

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def checked(cls: type, record: object, what: str) -> object:
    """``record`` (parsed JSON) as ``cls``, or a ConvnetsError saying which file is malformed and how. Unknown
    keys go to an ``extra`` field where the type has one, and are otherwise ignored (files from later versions)."""
    if not isinstance(record, dict):
        raise ConvnetsError(f"{what} is malformed (expected an object, found {type(record).__name__})")
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in record.items() if k in names}
    if "extra" in names:
        known["extra"] = {k: v for k, v in record.items() if k not in names}
    try:
        return cls(**known)
    except TypeError as e:
        raise ConvnetsError(f"{what} is malformed ({e})") from None
