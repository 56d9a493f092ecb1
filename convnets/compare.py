"""Two runs on the same test images: where they disagree, and whether the difference is more than chance.

McNemar's test looks only at the images the two runs disagree on: if neither is better, each of those is as
likely to go one way as the other, so the number that only A gets right is Binomial(disagreements, 1/2). The
exact version sums that distribution; it holds for any count, where the chi-squared approximation needs many.
"""

from __future__ import annotations

import numpy as np

from .device import pick_device
from .errors import ConvnetsError
from .evaluate import per_image, predict_probs
from .schema import Predictions
from .store import Run


def mcnemar_p(only_a: int, only_b: int) -> float:
    """The exact two-sided p-value: twice the smaller tail of Binomial(only_a + only_b, 1/2), at most 1. Exact
    integer arithmetic: Python divides big integers into a correctly rounded float."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0), and the sum of C(n, i) for i <= k
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def compare(a: Predictions, b: Predictions) -> dict:
    """Accuracies, the 2×2 table (both right, only A, only B, both wrong) and McNemar's exact p-value."""
    same_images(a, b)
    ca, cb = a.correct, b.correct
    table = {"both_right": int((ca & cb).sum()), "only_a": int((ca & ~cb).sum()), "only_b": int((~ca & cb).sum()),
             "both_wrong": int((~ca & ~cb).sum())}
    return {"images": len(a), "accuracy_a": a.accuracy, "accuracy_b": b.accuracy, "table": table,
            "mcnemar_p": mcnemar_p(table["only_a"], table["only_b"])}


def same_images(a: Predictions, b: Predictions) -> None:
    """Comparing image by image needs the same test images in the same order: same count, same labels."""
    if len(a) != len(b) or not np.array_equal(a.labels, b.labels):
        raise ConvnetsError(f"the two runs were evaluated on different test images ({len(a):,} and {len(b):,}, or "
                            "other labels): compare runs of one dataset and one copy of it")


PAIRED_BY = ("dataset", "data_copy", "test_images")  # what two runs' summaries share when their test images are one


def comparable(a: dict, b: dict) -> bool:
    """Whether two runs' summaries say they were evaluated on the same test images (dataset, copy, count): only
    then can their answers be paired image by image."""
    return all(a.get(k) is not None and a.get(k) == b.get(k) for k in PAIRED_BY)


def default_pair(summaries: list[dict], first: str | None = None) -> tuple[str, str]:
    """The two of at least two runs Compare opens on: ``first`` where it is among them (a link's run), else the first
    run that has a comparable partner, and the first run comparable with it; where there is none, simply the next
    run (the page then says why the two cannot be compared)."""
    ids = [s["run_id"] for s in summaries]
    partners = {s["run_id"]: [t["run_id"] for t in summaries if t is not s and comparable(s, t)] for s in summaries}
    a = first if first in partners else next((i for i in ids if partners[i]), ids[0])
    return a, partners[a][0] if partners[a] else next(i for i in ids if i != a)


def only_right(a: Predictions, b: Predictions) -> np.ndarray:
    """The images A gets right and B gets wrong, B's most confident mistakes first."""
    same_images(a, b)
    found = np.flatnonzero(a.correct & ~b.correct)
    return found[np.argsort(-b.confidence[found].astype(np.float32), kind="stable")]


def cell(p: Predictions, true: int, predicted: int) -> np.ndarray:
    """The images of one confusion-matrix cell (true class, predicted class), the most confident first."""
    found = np.flatnonzero((p.labels == true) & (p.predicted == predicted))
    return found[np.argsort(-p.confidence[found].astype(np.float32), kind="stable")]


def predictions_of(run: Run, data_dir: str | None = None, device: str | None = None) -> Predictions:
    """The run's stored per-image predictions; for a run written before they were stored, computed from the test
    split (which must be there) and stored with the run, unless it is read-only (the zoo ships its own)."""
    stored = run.predictions()
    if stored is not None:
        return stored
    test = run.test_split(data_dir, "per-image predictions")
    dev = pick_device(device)
    predictions = per_image(predict_probs(run.load_model(dev), test.to(dev), dev).cpu(), test.labels, dev)
    if not run.readonly:
        run.save_predictions(predictions)
    return predictions

