"""Training recipes and run configurations.

A run is identified by everything that changes its result (model, dataset, recipe, seed, data copy),
so the configuration lives in one frozen dataclass whose hash is the run id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

DATASETS = ("mnist", "cifar10")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "onecycle-cos", "cosine", "constant")
AUGMENTATIONS = ("crop-flip", "flip", "shift", "none")  # shift: translations only (digits must not be mirrored)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained; every field is part of the run's identity."""

    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "onecycle"  # onecycle | onecycle-cos | cosine | constant
    warmup: float = 0.2  # fraction of the steps spent warming up (the one-cycle schedules)
    augment: str = "crop-flip"  # crop-flip | flip | shift | none
    normalize: str = "channel"  # channel (per-channel mean/std) | pixel (mean/std image) | unit (/255)

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class RunConfig:
    model: str
    dataset: str
    recipe: Recipe
    seed: int = 0
    data_copy: str = "official"  # official | jpeg (the CIFAR-10 JPEG redistribution)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(**{**d, "recipe": Recipe(**d["recipe"])})

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return f"{self.model}-{self.dataset}-{hashlib.sha256(blob).hexdigest()[:10]}"
