"""The dashboard's tables (the leaderboard's, a network's layers), built with pandas only (no Streamlit), so they
are easy to test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from convnets.errors import ConvnetsError
from convnets.models import ModelSpec, get_model
from convnets.reporting import COPY_LABELS, official_equivalent
from convnets.schema import State
from convnets.zoo import STUDY_SECONDS

if TYPE_CHECKING:  # the leaderboard, which imports this module, has no use for Captum's import time
    from convnets.explain import Layer

OFFICIAL = "≈ official %"  # the column that puts every run in official-data terms
AT_CHANCE = "At chance"  # no better than a guess (reporting.at_chance): kept in the table, out of the best cards
LEADERBOARD_COLUMNS = ["Model", "Family", "Kind", "Dataset", "Data", "Test acc. %", OFFICIAL, AT_CHANCE, "Paper %",
                       "Δ paper", "Reference %", "Δ reference", "Params", "Epochs", "Best %", "Best epoch", "Train s",
                       "img/s", "Device", "Zoo", "Run"]


KINDS = {"paper": "paper net", "reference": "study net", "modern": "modern net"}


def _spec(model: str) -> ModelSpec | None:
    try:
        return get_model(model)
    except ConvnetsError:  # a run of a model that has since left the registry
        return None


def _published(model: str, dataset: str) -> tuple[float | None, float | None]:
    spec = _spec(model)
    return (None, None) if spec is None else (spec.paper_accuracy.get(dataset), spec.reference_accuracy.get(dataset))


def published_points(board: pd.DataFrame) -> pd.DataFrame:
    """The published figures of the models on the board, placed where the charts set them beside ours: at the
    model's parameter count, and for the study's nets at its notebooks' training time (on its own GPU)."""
    rows = []
    for (model, family, kind, dataset, params), _ in board.groupby(["Model", "Family", "Kind", "Dataset", "Params"],
                                                                   dropna=False):
        paper, reference = _published(model, dataset)
        common = {"Model": model, "Family": family, "Kind": kind, "Dataset": dataset, "Params": params}
        if paper is not None:
            rows.append({**common, OFFICIAL: _points(paper), "Train s": None, "Device": None, "Source": "paper"})
        if reference is not None:
            rows.append({**common, OFFICIAL: _points(reference), "Train s": STUDY_SECONDS.get(model),
                         "Device": "the study's GPU (Keras)", "Source": "study"})
    return pd.DataFrame(rows, columns=["Model", "Family", "Kind", "Dataset", "Params", OFFICIAL, "Train s", "Device",
                                       "Source"])


def _points(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _delta(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None else round(100 * (ours - theirs), 2)


def leaderboard(summaries: list[dict]) -> pd.DataFrame:
    """One row per finished run, accuracies in percent, best first within each dataset.

    The differences to the paper and to the reference notebooks are taken in official-data terms,
    because that is the data both were measured on.
    """
    rows = []
    for s in summaries:
        if s["state"] != State.FINISHED:
            continue
        official = official_equivalent(s["test_accuracy"], s["data_copy"])
        paper, reference = _published(s["model"], s["dataset"])
        spec = _spec(s["model"])
        rows.append({
            "Model": s["model"],
            "Family": spec.family if spec else "–",
            "Kind": KINDS.get(spec.kind, spec.kind) if spec else "–",
            "Dataset": s["dataset"],
            "Data": COPY_LABELS.get(s["data_copy"], s["data_copy"]),
            "Params": s["params"],
            "Epochs": s["epochs"],
            "Test acc. %": _points(s["test_accuracy"]),
            OFFICIAL: _points(official),
            AT_CHANCE: bool(s.get("at_chance")),
            "Paper %": _points(paper),
            "Δ paper": _delta(official, paper),
            "Reference %": _points(reference),
            "Δ reference": _delta(official, reference),
            "Best %": _points(s["best_test_accuracy"]),
            "Best epoch": s["best_epoch"],
            "Train s": s["train_seconds"],
            "img/s": s["images_per_second"],
            "Device": s["device"],
            "Zoo": bool(s["zoo"]),
            "Run": s["run_id"],
        })
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return frame.sort_values(["Dataset", OFFICIAL], ascending=[True, False], ignore_index=True)


def unfinished(summaries: list[dict]) -> pd.DataFrame:
    """The runs that did not finish (failed, cancelled, interrupted, damaged, or still training)."""
    rows = [{
        "Run": s["run_id"],
        "State": s["state"],
        "Epochs done": f"{s.get('epochs_done', '–')}/{s.get('epochs', '–')}",
        "Error": s.get("error") or "",
    } for s in summaries if s["state"] != State.FINISHED]
    return pd.DataFrame(rows, columns=["Run", "State", "Epochs done", "Error"])


def layer_table(layers: list[Layer]) -> pd.DataFrame:
    """One row per stage of a network: what it is, what it outputs for one image, its weights and its FLOPs."""
    return pd.DataFrame([{"Layer": layer.path, "Type": layer.kind, "Output": " × ".join(map(str, layer.shape)),
                          "Params": layer.params, "FLOPs": layer.flops} for layer in layers])
