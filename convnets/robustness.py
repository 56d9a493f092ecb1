"""Test accuracy under common corruptions (see ``corruptions``), measured once per run and stored with it.

Every run of a dataset is measured on the same fixed, class-balanced subset of the test split, corrupted the same
way, so their figures compare image for image. The subset is 1,000 images: 31 passes over it (clean, then six
corruptions at five severities; 41 for digits) are 31,000 predictions, and a figure on 1,000 images is within about
1.3 points (one standard error) of the whole split's. Predictions are in bf16 where the CPU has it natively (as on
GPUs): half the time of fp32 for the wider nets, and a rounding far below that standard error.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .corruptions import SEVERITIES, corrupt, names
from .data import Split
from .device import pick_device
from .evaluate import inference_source, predict_probs
from .schema import Robustness
from .store import Run

SUBSET = 1000
SEED = 0


def subset(split: Split, size: int = SUBSET, seed: int = SEED) -> Split:
    """``size`` test images, as many of each class as the split allows, drawn once for a seed (on the CPU)."""
    labels = split.labels.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    classes = labels.unique()
    per_class = max(1, size // len(classes)) if len(classes) else 0
    chosen = torch.cat([order[labels[order] == c][:per_class] for c in classes]) if len(classes) else order[:0]
    chosen = chosen.sort().values
    return Split(split.images.cpu()[chosen], labels[chosen])


def measure(model: nn.Module, test: Split, dataset: str, device: torch.device, seed: int = SEED) -> Robustness:
    """Accuracy on the subset as it is and under every corruption of the dataset at severities 1..5."""
    start = time.perf_counter()
    images = subset(test, seed=seed)

    def accuracy(x: torch.Tensor) -> float:
        probs = predict_probs(model, Split(x, images.labels).to(device), device, cpu_bf16=True)
        return round((probs.argmax(1).cpu() == images.labels).float().mean().item(), 6)

    table = {name: [accuracy(corrupt(images.images, name, s, dataset, seed)) for s in range(1, SEVERITIES + 1)]
             for name in names(dataset)}
    every = [a for row in table.values() for a in row]
    return Robustness(subset=len(images), seed=seed, clean_accuracy=accuracy(images.images), accuracy=table,
                      mean_accuracy=round(sum(every) / len(every), 6), source=inference_source(device, cpu_bf16=True),
                      seconds=round(time.perf_counter() - start, 2))


def robustness_of(run: Run, data_dir: str | None = None, device: str | None = None) -> dict:
    """The run's stored robustness; measured (with its test split, which must be there) and stored if it has none,
    unless the run is read-only (the zoo ships its own)."""
    stored = run.robustness()
    if stored is not None:
        return stored
    test = run.test_split(data_dir, "robustness figures")
    dev = pick_device(device)
    measured = measure(run.load_model(dev), test, run.config.dataset, dev).to_dict()
    if not run.readonly:
        run.write("robustness.json", measured)
    return measured
