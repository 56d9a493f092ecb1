"""How an accuracy is reported: which copy of the data it was measured on, what it means in official-data
terms, and how it is written. One home, because the CLI, the zoo's table, the benchmarks and the dashboard all
say it."""

from __future__ import annotations

COPY_LABELS = {"official": "official", "jpeg": "JPEG copy"}
# Measured: a recipe averaging 94.0 % on the official CIFAR-10 test set averages 90.7 % on the JPEG copy.
JPEG_COST = 0.033


def copy_cost(data_copy: str) -> float:
    """What the copy costs in test accuracy against the official files."""
    return JPEG_COST if data_copy == "jpeg" else 0.0


def official_equivalent(accuracy: float | None, data_copy: str) -> float | None:
    """A test accuracy measured on ``data_copy`` in official-data terms."""
    return None if accuracy is None else accuracy + copy_cost(data_copy)


def data_label(dataset: str, data_copy: str) -> str:
    """'JPEG copy' for CIFAR-10 figures measured on it, else 'official' (MNIST has only the official files)."""
    return COPY_LABELS[data_copy] if dataset == "cifar10" else COPY_LABELS["official"]


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals, or a dash when there is none."""
    return "–" if value is None else f"{value:.2%}"
