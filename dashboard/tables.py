"""The dashboard's tables and aggregates (the leaderboard's, seed groups, a network's layers), built from run records
with pandas only (no Streamlit), so they are easy to test."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from convnets.config import Recipe
from convnets.errors import ConvnetsError
from convnets.models import ModelSpec, departures, get_model, net_name
from convnets.reporting import COPY_LABELS, official_equivalent, points, short_id
from convnets.schema import State
from convnets.study import STUDY_SECONDS

if TYPE_CHECKING:  # the leaderboard, which imports this module, has no use for Captum's import time
    from convnets.explain import Layer

OFFICIAL = "≈ official %"  # the column that puts every run in official-data terms
AT_CHANCE = "At chance"  # no better than a guess (reporting.at_chance): kept in the table, out of the best cards
ECE = "ECE %"  # expected calibration error, 15 bins
CORRUPTED = "Corrupted %"  # mean test accuracy over the corruptions and their severities
FLIPS = "Test flips"  # evaluated on each image and its mirror (the recipe's tta): worth about half a point
NET = "Net"  # what a row is called: the study's name for its nets, else the model's; what tells duplicates apart
RECIPE = "Recipe"  # where a run's recipe departs from its model's registered one, bar its epochs
LEADERBOARD_COLUMNS = [NET, "Model", "Family", "Kind", "Dataset", "Data", "Test acc. %", OFFICIAL, "Paper %",
                       "Δ paper", "Study %", "Δ study", ECE, CORRUPTED, "Params", "Epochs", "Seed", RECIPE, FLIPS,
                       AT_CHANCE, "Best %", "Best epoch", "Train s", "img/s", "Device", "Zoo", "Run"]
THEIRS, GAP = "Paper/study %", "Δ"  # the figure a net is measured against (its paper's or the study's) and the gap
PUBLISHED = ("Paper %", "Δ paper", "Study %", "Δ study", THEIRS, GAP)  # the published figures, our distance to them
# What the Leaderboard shows at first, narrow enough for a laptop's screen with the sidebar open (some 540 px at a
# 1000-px-wide window): the net, ours, the published figure and the gap; the rest a group at a time on request.
BOARD_MAIN = [NET, "Dataset", "Test acc. %", OFFICIAL, THEIRS, GAP]
BOARD_MORE = {
    "Calibration and robustness": [ECE, CORRUPTED, FLIPS],
    "Training": ["Params", "Epochs", "Seed", RECIPE, "Best %", "Best epoch", "Train s", "img/s", "Device"],
    "Run": ["Model", "Family", "Kind", "Data", "Zoo", "Run"],
}
GROUP_RECIPE = {"Epochs": "epochs", "Batch": "batch_size", "LR": "lr", "Weight decay": "weight_decay"}  # shown as is
OTHER_RECIPE = "Rest of the recipe"  # the other fields where a group departs from its model's registered recipe
GROUP_COLUMNS = ["Model", "Dataset", "Data", *GROUP_RECIPE, OTHER_RECIPE, "n", "Test acc. %", "± std", ECE, CORRUPTED,
                 "Seeds", "Group"]


KINDS = {"paper": "paper net", "reference": "study net", "modern": "modern net"}
KIND_ORDER = [KINDS["reference"], KINDS["paper"], KINDS["modern"]]  # the study's nets together, first


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
        common = {NET: net_name(model), "Model": model, "Family": family, "Kind": kind, "Dataset": dataset,
                  "Params": params}
        if paper is not None:
            rows.append({**common, OFFICIAL: points(paper), "Train s": None, "Device": None, "Source": "paper"})
        if reference is not None:
            rows.append({**common, OFFICIAL: points(reference), "Train s": STUDY_SECONDS.get(model),
                         "Device": "the study's GPU (Keras)", "Source": "study"})
    return pd.DataFrame(rows, columns=[NET, "Model", "Family", "Kind", "Dataset", "Params", OFFICIAL, "Train s",
                                       "Device", "Source"])


def _delta(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None else round(100 * (ours - theirs), 2)


def without_empty_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The frame less those of ``columns`` that hold nothing: a user's folder has no paper or study figures."""
    return frame.drop(columns=[c for c in columns if c in frame and frame[c].isna().all()])


def leaderboard(summaries: list[dict]) -> pd.DataFrame:
    """One row per finished run, accuracies in percent; within each dataset the study's nets first, then the papers'
    and the modern ones, each best first.

    The differences to the paper and to the study's notebooks are taken in official-data terms,
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
            NET: net_name(s["model"]),
            "Model": s["model"],
            "Family": spec.family if spec else "–",
            "Kind": KINDS.get(spec.kind, spec.kind) if spec else "–",
            "Dataset": s["dataset"],
            "Data": COPY_LABELS.get(s["data_copy"], s["data_copy"]),
            "Params": s["params"],
            "Epochs": s["epochs"],
            "Seed": s["seed"],
            RECIPE: recipe_changes(s),
            FLIPS: s["recipe"]["tta"],
            "Test acc. %": points(s["test_accuracy"]),
            OFFICIAL: points(official),
            AT_CHANCE: bool(s.get("at_chance")),
            "Paper %": points(paper),
            "Δ paper": _delta(official, paper),
            "Study %": points(reference),
            "Δ study": _delta(official, reference),
            ECE: points(s.get("calibration_error")),
            CORRUPTED: points(s.get("corruption_accuracy")),
            "Best %": points(s["best_test_accuracy"]),
            "Best epoch": s["best_epoch"],
            "Train s": s["train_seconds"],
            "img/s": s["images_per_second"],
            "Device": s["device"],
            "Zoo": bool(s["zoo"]),
            "Run": s["run_id"],
        })
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    frame[NET] = _distinct(frame)
    order = frame["Kind"].map({kind: i for i, kind in enumerate(KIND_ORDER)}).fillna(len(KIND_ORDER))
    return (frame.assign(order=order).sort_values(["Dataset", "order", OFFICIAL], ascending=[True, True, False])
            .drop(columns="order").reset_index(drop=True))


def board_order(board: pd.DataFrame) -> str | None:
    """How the board is ordered, where its kinds of net (a column the main view leaves out) make it more than best
    first: "Study nets first, then paper nets, then modern nets, each best first (≈ official)"."""
    kinds = [kind for kind in KIND_ORDER if (board["Kind"] == kind).any()]
    if len(kinds) < 2:
        return None
    named = [f"{kind}s" for kind in kinds]
    order = f"{named[0]} first, then {', then '.join(named[1:])}, each best first (≈ official)."
    return f"Per dataset, {order}" if board["Dataset"].nunique() > 1 else order[0].upper() + order[1:]


# What may tell two runs of one net on one dataset apart, in the order it is named: "lenet5 · 1 ep", "· seed 1",
# "· zoo" (the shipped run beside the user's); then, where none of them does, what differs in the rest of the
# recipe ("· normalize zca"); the short run id where nothing does.
_DISTINCTIONS = (("Epochs", "{} ep".format), ("Seed", "seed {}".format), ("Zoo", lambda zoo: "zoo" if zoo else ""))


def recipe_changes(summary: dict, skip: Iterable[str] = ("epochs",)) -> str | None:
    """Where a run's recipe departs from the registry's for its model and dataset ("normalize zca, ema 0.99"), bar
    the fields in ``skip``; None where it does not, or for a record without its recipe."""
    if "recipe" not in summary:
        return None
    return departures(summary["model"], summary["dataset"], Recipe(**summary["recipe"]), skip) or None


def run_names(summaries: list[dict]) -> list[str]:
    """The runs' names as the Leaderboard gives them (the study's for its nets, told apart by what differs), for
    the pages that list or draw runs of one dataset side by side."""
    frame = pd.DataFrame([{NET: net_name(s["model"]), "Dataset": s["dataset"], "Epochs": s["epochs"],
                           "Seed": s["seed"], RECIPE: recipe_changes(s), "Zoo": bool(s["zoo"]), "Run": s["run_id"]}
                          for s in summaries], columns=[NET, "Dataset", "Epochs", "Seed", RECIPE, "Zoo", "Run"])
    return _distinct(frame).tolist()


def _distinct(frame: pd.DataFrame) -> pd.Series:
    """The rows' names, each told apart from the other runs of its net on its dataset by what differs between them."""
    names = frame[NET].copy()
    for _, group in frame.groupby([NET, "Dataset"]):
        if len(group) < 2:
            continue
        parts = [group[column].map(say) for column, say in _DISTINCTIONS if group[column].nunique() > 1]
        suffixes = [[p for p in row if p] for row in zip(*parts)] if parts else [[] for _ in range(len(group))]
        if len({tuple(s) for s in suffixes}) < len(group):
            # a registered recipe is None, or NaN once pandas holds it: no suffix
            suffixes = [[*s, r] if isinstance(r, str) else s for s, r in zip(suffixes, group[RECIPE])]
        if len({tuple(s) for s in suffixes}) < len(group):
            suffixes = [[*s, short_id(run)] for s, run in zip(suffixes, group["Run"])]
        names[group.index] = [" · ".join([name, *s]) for name, s in zip(group[NET], suffixes)]
    return names


def board_view(board: pd.DataFrame) -> pd.DataFrame:
    """The board as the Leaderboard shows it: beside each run, the one published figure it answers (the study's for
    its nets, the paper's for the others) and the gap to it, so that both fit in two narrow columns."""
    study = board["Kind"] == KINDS["reference"]
    return board.assign(**{THEIRS: board["Study %"].where(study, board["Paper %"]),
                           GAP: board["Δ study"].where(study, board["Δ paper"])})


def board_columns(board: pd.DataFrame, more: list[str]) -> list[str]:
    """The columns shown: the main ones (less the dataset when there is only one, plus the at-chance flag when a run
    is), then the groups asked for, in their order, without the columns the board lacks."""
    main = [c for c in BOARD_MAIN if c != "Dataset" or board["Dataset"].nunique() > 1]
    main += [AT_CHANCE] if board[AT_CHANCE].any() else []
    extra = [c for group, columns in BOARD_MORE.items() if group in more for c in columns]
    return [c for c in dict.fromkeys(main + extra) if c in board]


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


def seed_groups(summaries: list[dict]) -> pd.DataFrame:
    """One row per recipe trained with two seeds or more (finished runs identical but for the seed): the mean and
    sample standard deviation of the test accuracy, and the means of the calibration error and the accuracy under
    corruptions where every run of the group has them."""
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        if s["state"] == State.FINISHED:
            groups.setdefault(s["group"], []).append(s)
    rows = []
    for group, runs in groups.items():
        if len(runs) < 2:
            continue
        first, recipe = runs[0], runs[0]["recipe"]
        accuracy = np.array([100 * r["test_accuracy"] for r in runs])
        rows.append({
            "Model": first["model"], "Dataset": first["dataset"], "Data": COPY_LABELS.get(first["data_copy"]),
            **{column: recipe[name] for column, name in GROUP_RECIPE.items()},
            OTHER_RECIPE: recipe_changes(first, GROUP_RECIPE.values()),
            "n": len(runs), "Test acc. %": round(accuracy.mean(), 2),
            "± std": round(accuracy.std(ddof=1), 2), ECE: _mean_points(runs, "calibration_error"),
            CORRUPTED: _mean_points(runs, "corruption_accuracy"),
            "Seeds": ", ".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"])), "Group": group,
        })
    frame = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    return frame.sort_values(["Dataset", "Test acc. %"], ascending=[True, False], ignore_index=True)


def _mean_points(runs: list[dict], key: str) -> float | None:
    values = [r.get(key) for r in runs]
    return None if None in values else round(100 * float(np.mean(values)), 2)


def mean_history(histories: list[list[dict]]) -> list[dict]:
    """Several runs' histories as one: per epoch (over the epochs they all completed), the mean of every figure and,
    beside each, its standard deviation (``<key>_std``) across the runs, which the curves draw as a band."""
    epochs = min(len(h) for h in histories)
    rows = []
    for i in range(epochs):
        row = {}
        for key in histories[0][i]:
            values = np.array([h[i][key] for h in histories], dtype=float)
            row[key], row[f"{key}_std"] = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def two_by_two(table: dict, a: str, b: str) -> pd.DataFrame:
    """compare()'s table as rows (A right, A wrong) by columns (B right, B wrong)."""
    return pd.DataFrame({f"{b} right": [table["both_right"], table["only_b"]],
                         f"{b} wrong": [table["only_a"], table["both_wrong"]]},
                        index=[f"{a} right", f"{a} wrong"])


def robustness(measured: list[tuple[dict, dict]]) -> pd.DataFrame:
    """One row per run (summary, robustness record): clean and mean corrupted accuracy, then each corruption's mean
    over its severities, in percent, the most robust first."""
    rows = []
    for label, (s, r) in zip(run_names([s for s, _ in measured]), measured):
        rows.append({NET: label, "Model": s["model"], "Data": COPY_LABELS.get(s["data_copy"], s["data_copy"]),
                     "Clean %": points(r["clean_accuracy"]), CORRUPTED: points(r["mean_accuracy"]),
                     **{name: points(float(np.mean(row))) for name, row in r["accuracy"].items()}, "Run": s["run_id"]})
    frame = pd.DataFrame(rows)
    return frame.sort_values(CORRUPTED, ascending=False, ignore_index=True) if rows else frame


def attack(attacked: list[tuple[dict, dict]]) -> pd.DataFrame:
    """One row per run (summary, attack record): its accuracy at each ε in percent, the most robust at the largest ε
    first; ε columns are named 'ε N' (N grey levels)."""
    rows = [{NET: label, "Model": s["model"], "Data": COPY_LABELS.get(s["data_copy"], s["data_copy"]),
             **{f"ε {e}": points(a) for e, a in zip(r["eps"], r["accuracy"])}, "Run": s["run_id"]}
            for label, (s, r) in zip(run_names([s for s, _ in attacked]), attacked)]
    frame = pd.DataFrame(rows)
    if not rows:
        return frame
    sizes = sorted({e for _, r in attacked for e in r["eps"]})
    frame = frame[[NET, "Model", "Data", *(f"ε {e}" for e in sizes), "Run"]]
    return frame.sort_values(f"ε {sizes[-1]}", ascending=False, ignore_index=True)
