"""The reference Keras study (github.com/ArthMx/ConvNet): its five CIFAR-10 nets as the dashboard presents them, and
the shipped zoo's figures for them.

Nothing here imports PyTorch: the dashboard's first page shows the study's table from the zoo's results.json while
PyTorch is still loading (about a second and a half on two cores), and then from the runs themselves (``zoo``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .reporting import official_equivalent

SOURCE = "Keras variant of the reference study (github.com/ArthMx/ConvNet)"


@dataclass(frozen=True)
class StudyNet:
    """One of the reference Keras study's five CIFAR-10 nets, as the study page presents it."""

    title: str  # the study's name for it
    seconds: float  # its notebook's total training time on the study's GPU
    idea: str  # what the net brought to convnets, in one line


# The study's nets in its order, with its notebooks' total training times on their GPU (shared/reference/notebooks.md:
# LeNet about 11 s an epoch for 20 epochs, ALL-CNN about 18 s an epoch for up to 200, the others as printed), which
# the study page and "Reproduce the study" set beside ours.
STUDY_NETS = {
    "ref_lenet": StudyNet("LeNet", 220.0, "Convolutions: small filters slid over the image, shared across it; "
                          "pooling shrinks the maps between them"),
    "ref_vgg": StudyNet("VGG-like", 1623.0, "Stacked 3×3 convolutions: two see as far as one 5×5 with fewer "
                        "weights and one more non-linearity"),
    "ref_allcnn": StudyNet("ALL-CNN", 3600.0, "Strided convolutions instead of pooling: the net learns how to "
                           "shrink its maps"),
    "ref_resnet20": StudyNet("ResNet-20", 2354.0, "Shortcuts add each block's input to its output, so that a deep "
                             "net learns only what to change and still trains"),
    "ref_wrn14_2": StudyNet("WRN-14-2", 4991.0, "Width: fewer, wider residual blocks, which reach more per layer "
                            "and keep a GPU busier than depth does"),
}
STUDY_SECONDS = {model: net.seconds for model, net in STUDY_NETS.items()}

ZOO_FIELDS = ("run_id", "test_accuracy", "data_copy", "epochs", "train_seconds", "device", "params")


def zoo_figures(summary: dict, tta: bool, study_accuracy: float) -> dict:
    """A shipped run of a study net, from its summary (or its results.json record): accuracy on its data copy, in
    official-data terms, the difference to the study's figure, time, device, size, and whether it used flips."""
    official = official_equivalent(summary["test_accuracy"], summary["data_copy"])
    return {**{key: summary[key] for key in ZOO_FIELDS}, "official_equivalent": official,
            "difference": official - study_accuracy, "tta": tta}


def study_row(model: str, dataset: str, params: int, study_accuracy: float, zoo: dict | None) -> dict:
    """The study's name, idea, accuracy and time for one of its nets, with the zoo's run of it (None if none)."""
    net = STUDY_NETS[model]
    return {"model": model, "dataset": dataset, "title": net.title, "idea": net.idea, "params": params,
            "study_accuracy": study_accuracy, "study_seconds": net.seconds, "zoo": zoo}


def rows_from_results(zoo_dir: Path | None) -> list[dict] | None:
    """``zoo.study_rows`` as the zoo's results.json records them (without the models' families), or None where there
    is no zoo or no record of a study net."""
    if zoo_dir is None:
        return None
    try:
        results = json.loads((zoo_dir / "results.json").read_text())
        records = {r["model"]: r for r in results if r["model"] in STUDY_NETS}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(records) != set(STUDY_NETS):
        return None
    rows = []
    for model in STUDY_NETS:
        r = records[model]
        zoo = zoo_figures(r, r["tta"], r["reference_accuracy"]) if r["shipped"] else None
        rows.append(study_row(model, r["dataset"], r["params"], r["reference_accuracy"], zoo))
    return rows
