"""Training recipes and run configurations.

A run is identified by everything that changes its result (model, dataset, recipe, seed, data copy),
so the configuration lives in one frozen dataclass whose hash is the run id. It is the one thing passed
between the Train page, the job queue, the CLI and the engine: built and checked once, written to a file,
read back, and turned into the command that reproduces it here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .datasets import get_dataset
from .errors import ConvnetsError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "onecycle-cos", "cosine", "constant")
AUGMENTATIONS = ("crop-flip", "flip", "shift", "none")  # shift: translations only (digits must not be mirrored)
NORMALIZATIONS = ("channel", "pixel", "unit", "zca")
MIRRORED = ("crop-flip", "flip")  # the augmentations that mirror training images
DATA_COPIES = ("official", "jpeg", "folder")


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
    normalize: str = "channel"  # channel (per-channel mean/std) | pixel (mean/std image) | unit (/255) | zca (channel,
    # then a whitening convolution fit on the training images)
    tta: bool = False  # evaluate (and predict) on each image and its mirror, averaging the probabilities
    ema: float = 0.0  # decay of a moving average of the weights, which is evaluated and stored (0: none)
    norm_lr: float = 1.0  # batch norm's scales and biases learn at this multiple of lr (weight decay: divided by it)

    def replace(self, **changes) -> Recipe:
        """This recipe with the given fields changed (None leaves a field as it is)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def customised(self, **changes) -> Recipe:
        """``replace`` plus the linear learning-rate rule (Goyal et al. 2017): a new batch size without a new
        learning rate scales the peak rate with the batch, ``lr × batch / default batch``. A scaled rate out of
        range is a ConvnetsError that says where it came from (the user never typed it)."""
        batch = changes.get("batch_size")
        if changes.get("lr") is None and batch is not None and batch != self.batch_size:
            lr = self.lr * batch / self.batch_size
            if range_problem("batch_size", batch) is None and range_problem("lr", lr) is not None:
                raise ConvnetsError(f"batch-size {batch} scales the learning rate to {lr:g} (linear rule: {self.lr:g} "
                                    f"× {batch} / {self.batch_size}), out of range: allowed lr {span('lr')}; give "
                                    "--lr as well, or a smaller batch")
            changes = {**changes, "lr": lr}
        return self.replace(**changes)

    def differences(self, base: Recipe, skip: Iterable[str] = ()) -> str:
        """Where this recipe departs from ``base``, field by field as the options spell them ("schedule cosine, ema
        0.99, no tta"; "" when nowhere): what tells apart two runs that agree on the fields a table shows."""
        parts = []
        for name in (f.name for f in dataclasses.fields(self) if f.name not in skip):
            value, option = getattr(self, name), name.replace("_", "-")
            if value == getattr(base, name):
                continue
            if isinstance(value, bool):
                parts.append(option if value else f"no {option}")
            else:
                parts.append(f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}")
        return ", ".join(parts)

    def check(self) -> Recipe:
        """The recipe itself, or a ConvnetsError naming the first field out of range, its value and the range."""
        for name in RANGES:
            if (problem := range_problem(name, getattr(self, name))) is not None:
                raise ConvnetsError(problem)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConvnetsError(f"{name} '{getattr(self, name)}' is not one of: {', '.join(allowed)}")
        if self.tta and self.augment not in MIRRORED:
            raise ConvnetsError(f"tta averages each image with its mirror, which only a mirrored augmentation "
                                f"({', '.join(MIRRORED)}) trains for, not '{self.augment}'")
        if self.schedule == "onecycle-cos" and not 0.05 <= self.momentum <= 0.95:
            raise ConvnetsError(f"momentum {self.momentum!r} is out of range for onecycle-cos, which cycles it by "
                                "±0.05: allowed [0.05, 0.95]")
        return self


# name -> (low, high, low end open, high end open); integers are checked for being whole by their type
RANGES = {
    "epochs": (1, 10_000, False, False),
    "batch_size": (1, 65_536, False, False),
    "lr": (0, 10, True, False),
    "momentum": (0, 1, False, True),
    "weight_decay": (0, 0.1, False, False),
    "label_smoothing": (0, 1, False, True),
    "warmup": (0, 1, False, True),
    "ema": (0, 1, False, True),
    "norm_lr": (0, 1000, True, False),
}
INTEGERS = ("epochs", "batch_size")
# Recipe fields added after runs were first stored, with their defaults: a run that leaves one at its default
# keeps the id it had before the field existed.
ADDED_LATER = {"tta": False, "ema": 0.0, "norm_lr": 1.0}
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTATIONS, "normalize": NORMALIZATIONS}


def span(name: str) -> str:
    """A field's allowed range as an interval: ``[1, 65536]``, ``(0, 10]``."""
    low, high, low_open, high_open = RANGES[name]
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def range_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be the recipe field ``name`` (its value and the allowed range), or None if it can."""
    low, high, low_open, high_open = RANGES[name]
    kind = int if name in INTEGERS else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or value != value or (
            value <= low if low_open else value < low) or (value >= high if high_open else value > high):
        whole = " whole numbers" if name in INTEGERS else ""
        return f"{name.replace('_', '-')} {value!r} is out of range: allowed{whole} {span(name)}"
    return None


@dataclass(frozen=True)
class RunConfig:
    model: str
    dataset: str
    recipe: Recipe
    seed: int = 0
    data_copy: str = "official"  # official | jpeg (the CIFAR-10 JPEG redistribution) | folder (a user's own)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(**{**d, "recipe": Recipe(**d["recipe"])})

    @property
    def run_id(self) -> str:
        identity = self.to_dict()
        for name, default in ADDED_LATER.items():  # absent from older runs' ids: only a change renames a run
            if identity["recipe"][name] == default:
                del identity["recipe"][name]
        blob = json.dumps(identity, sort_keys=True).encode()
        return f"{self.model}-{self.dataset}-{hashlib.sha256(blob).hexdigest()[:10]}"

    @property
    def group_id(self) -> str:
        """The same for runs that differ only in their seed: the run id of this configuration with seed 0."""
        return dataclasses.replace(self, seed=0).run_id

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def read(cls, path: Path | str) -> RunConfig:
        """A configuration written by ``write``, or a ConvnetsError saying why the file is not one."""
        try:
            record = json.loads(Path(path).read_text())
            config = cls.from_dict(record)
        except OSError as e:
            raise ConvnetsError(f"cannot read the run configuration {path} ({e.strerror or e})") from None
        except (ValueError, TypeError, KeyError) as e:
            raise ConvnetsError(f"{path} is not a run configuration ({type(e).__name__}: {e})") from None
        if not isinstance(config.model, str) or not isinstance(config.seed, int) or isinstance(config.seed, bool):
            raise ConvnetsError(f"{path} is not a run configuration (model must be a name, seed an integer)")
        return config

    def check(self) -> RunConfig:
        """The configuration, or a ConvnetsError naming what is out of range (the model is the registry's)."""
        get_dataset(self.dataset)  # a ConvnetsError naming the registry's datasets when it is none of them
        if self.data_copy not in DATA_COPIES:
            raise ConvnetsError(f"data copy '{self.data_copy}' is not one of: {', '.join(DATA_COPIES)}")
        if not 0 <= self.seed < 2**31:
            raise ConvnetsError(f"seed {self.seed} is out of range: allowed [0, 2147483647]")
        self.recipe.check()
        return self


SWEEP_FIELDS = ("lr", "epochs", "batch_size", "weight_decay")  # what a small grid varies
MAX_SWEEP = 16  # runs one sweep may queue: each waits its turn as a process of its own


def sweep(base: RunConfig, seeds: Sequence[int], values: dict[str, Sequence]) -> list[RunConfig]:
    """Every combination of the given values of SWEEP_FIELDS, each with every seed: separate configurations, checked,
    in order, without repeats. The base configuration gives every other field."""
    unknown = [name for name in values if name not in SWEEP_FIELDS]
    if unknown:
        raise ConvnetsError(f"a sweep varies only {', '.join(SWEEP_FIELDS)}, not {', '.join(unknown)}")
    size = math.prod(len(set(v)) for v in values.values()) * len(set(seeds))
    if size > MAX_SWEEP:
        raise ConvnetsError(f"that is {size} runs; a sweep queues at most {MAX_SWEEP}")
    configs: dict[str, RunConfig] = {}
    for combo in itertools.product(*values.values()):
        recipe = base.recipe.replace(**dict(zip(values, combo)))
        for seed in seeds:
            config = dataclasses.replace(base, recipe=recipe, seed=seed).check()
            configs.setdefault(config.run_id, config)
    return list(configs.values())


def reproduce_command(config: RunConfig, data_dir: str | None) -> str:
    """The full command that makes this exact run, recorded with it: every field of the recipe is spelled out,
    because the registry's defaults can change and this must not; a user's folder by its path and image size."""
    fields = [(f.name, getattr(config.recipe, f.name)) for f in dataclasses.fields(Recipe)]
    spec = get_dataset(config.dataset)
    where = ["--image-size", spec.size] if spec.own else (["--data-dir", data_dir] if data_dir else [])
    return train_command(config.model, spec.folder["path"] if spec.own else config.dataset, fields,
                         "--seed", config.seed, *where)


def train_command(model: str, dataset: str, fields: Iterable[tuple[str, object]], *tail: object) -> str:
    """`python -m convnets train` for a model, a dataset and the recipe fields given, as options: ``("batch_size",
    256)`` is ``--batch-size 256``, a flag ``--tta`` or ``--no-tta``; ``tail`` follows them."""
    argv: list[object] = ["train", "--model", model, "--dataset", dataset]
    for name, value in fields:
        flag = f"--{name.replace('_', '-')}"
        argv += [flag if value else f"--no-{name}"] if isinstance(value, bool) else [flag, value]
    return "python -m convnets " + shlex.join(map(str, [*argv, *tail]))
