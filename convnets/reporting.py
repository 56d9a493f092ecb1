"""How an accuracy is reported: which copy of the data it was measured on, what it means in official-data
terms, and how it is written. One home, because the CLI, the zoo's table, the benchmarks and the dashboard all
say it."""

from __future__ import annotations

COPY_LABELS = {"official": "official", "jpeg": "JPEG copy", "folder": "your folder"}
# Measured: a recipe averaging 94.0 % on the official CIFAR-10 test set averages 90.7 % on the JPEG copy.
JPEG_COST = 0.033
CHANCE_MARGIN = 0.02  # points above a guess's accuracy under which a run counts as at chance level


def copy_cost(data_copy: str) -> float:
    """What the copy costs in test accuracy against the official files."""
    return JPEG_COST if data_copy == "jpeg" else 0.0


def official_equivalent(accuracy: float | None, data_copy: str) -> float | None:
    """A test accuracy measured on ``data_copy`` in official-data terms."""
    return None if accuracy is None else accuracy + copy_cost(data_copy)


def data_label(dataset: str, data_copy: str) -> str:
    """'JPEG copy' for CIFAR-10 figures measured on it, 'your folder' for a user's, else 'official'."""
    return COPY_LABELS.get(data_copy, COPY_LABELS["official"])


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals, or a dash when there is none."""
    return "–" if value is None else f"{value:.2%}"


def at_chance(accuracy: float | None, classes: int) -> bool:
    """Whether a test accuracy is no better than guessing: under 1/classes + 2 points (12 % with ten classes).

    Guessing, or answering one class whatever the image, scores 1/classes. On a 10,000-image test split a guess
    varies by 0.3 points, so 2 points above it is beyond luck, while a net that learned ends far higher (the zoo's
    weakest entry, LeNet-5 on CIFAR-10, scores 65.87 %). A run at chance learned nothing, usually because its
    learning rate was far too high: it is marked so, and kept out of predictions and best scores unless asked for.
    """
    return accuracy is not None and accuracy < 1 / classes + CHANCE_MARGIN


def run_name(model: str, epochs: int, run_id: str, zoo: bool, departures: str = "", seed: int = 0) -> str:
    """What tells two runs apart wherever they are listed: 'lenet5 · 5 ep · 8eede1 · zoo', with a seed other than 0
    and, for a run of one's own, where its recipe departs from the registered one (what was changed) before the id,
    which says nothing: 'lenet5 · 5 ep · seed 1 · normalize zca · 8eede1'. A zoo run's recipe is the zoo's pinned
    one (zoo/results.md), which "zoo" names."""
    departures = "" if zoo else departures
    parts = [model, f"{epochs} ep", f"seed {seed}" if seed else "", departures, short_id(run_id), "zoo" if zoo else ""]
    return " · ".join(part for part in parts if part)


def short_id(run_id: str) -> str:
    """The first six digits of a run id's hash: enough to tell a store's runs of one model apart."""
    return run_id.rsplit("-", 1)[-1][:6]


def points(fraction: float | None) -> float | None:
    """An accuracy (0..1) as the tables show it: percentage points to two decimals; None stays None."""
    return None if fraction is None else round(100 * fraction, 2)


def duration(seconds: float | None) -> str:
    """A time as people say it: "45 s", "3 min 07 s", "2 h 08 min"; "–" for none."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
