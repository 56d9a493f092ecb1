"""The dataset registry: what each dataset is (classes, channels, side, whether its images are digits) and how a
model trains on it, as the model registry says what each network is.

MNIST and CIFAR-10 are the study's two datasets, with recipes of their own in the model registry. Fashion-MNIST,
KMNIST, SVHN and CIFAR-100 are torchvision's small datasets, read from their files in the data folder. A user's
own image folder becomes an entry when it is first checked (``convnets.folders``): its record, kept in
``$CONVNETS_HOME/datasets``, names it by a fingerprint of its files, so that an edited folder is a new dataset and
a moved one the same. Every other dataset borrows the recipes of the study dataset it resembles (``recipe_like``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConvnetsError


def default_home() -> Path:
    return Path(os.environ.get("CONVNETS_HOME") or Path.home() / ".convnets")


def default_data_dir() -> Path:
    return Path(os.environ.get("CONVNETS_DATA") or default_home() / "data")


ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"  # the shipped runs, read-only


def default_zoo_dir() -> Path | None:
    """The shipped zoo the stores merge in: CONVNETS_ZOO if set ("" turns it off), else the repository's zoo/."""
    zoo = os.environ.get("CONVNETS_ZOO", str(ZOO_DIR))
    return Path(zoo) if zoo else None


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: enough to build a model for it, train it, and show and corrupt its images."""

    name: str  # the registry key, part of every run id
    label: str  # how pages and tables name it
    classes: tuple[str, ...]
    channels: int  # 1 (greyscale) or 3 (RGB)
    size: int  # the side, in pixels, that every image has (own folders: is resized to)
    digits: bool  # handwritten symbols: never mirrored, rotation and translation among the corruptions
    recipe_like: str  # the study dataset whose recipes a model trains on it with: mnist | cifar10
    source: str  # where the images come from, in words, with the licence where it is known
    reader: str  # how its files are read (convnets.data): mnist-idx, cifar10, cifar100, svhn-mat, folder
    folder: dict = field(default_factory=dict)  # own folders: the record convnets.folders wrote (path, split, ...)

    @property
    def own(self) -> bool:
        """A user's folder, not one of the built-in datasets."""
        return self.reader == "folder"

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.size, self.size


DIGITS = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")  # the Kuzushiji-MNIST romanisation
_CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm")
CIFAR100_CLASSES = tuple(_CIFAR100_NAMES.split())

BUILTIN: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("mnist", "MNIST", DIGITS, 1, 28, True, "mnist",
                "LeCun, Cortes & Burges, the MNIST database (CC BY-SA 3.0)", "mnist-idx"),
    DatasetSpec("cifar10", "CIFAR-10", CIFAR10_CLASSES, 3, 32, False, "cifar10",
                "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (no licence stated)",
                "cifar10"),
    DatasetSpec("fashion_mnist", "Fashion-MNIST", FASHION_CLASSES, 1, 28, False, "mnist",
                "Xiao, Rasul & Vollgraf 2017, Fashion-MNIST (MIT licence)", "mnist-idx"),
    DatasetSpec("kmnist", "KMNIST", KMNIST_CLASSES, 1, 28, True, "mnist",
                "Clanuwat et al. 2018, Deep Learning for Classical Japanese Literature (CC BY-SA 4.0)", "mnist-idx"),
    DatasetSpec("svhn", "SVHN", DIGITS, 3, 32, True, "cifar10",
                "Netzer et al. 2011, Reading Digits in Natural Images (non-commercial use)", "svhn-mat"),
    DatasetSpec("cifar100", "CIFAR-100", CIFAR100_CLASSES, 3, 32, False, "cifar10",
                "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (no licence stated)",
                "cifar100"),
)}
STUDY = ("mnist", "cifar10")  # the study's datasets: the model registry's recipes are theirs
OWN_NAME = re.compile(r"folder-[0-9a-f]{10}-(28|32|64)")


def records_dir(home: Path | None = None) -> Path:
    """Where the records of users' folders live."""
    return (home or default_home()) / "datasets"


def get_dataset(name: str) -> DatasetSpec:
    """The registry's entry called ``name``: a built-in dataset or a folder checked before on this store."""
    if name in BUILTIN:
        return BUILTIN[name]
    if OWN_NAME.fullmatch(name):
        path = records_dir() / f"{name}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ConvnetsError(f"the folder dataset '{name}' is not known here ({path} is missing or unreadable): "
                                "train on the folder itself with --dataset PATH") from None
        return own_spec(record)
    raise ConvnetsError(f"unknown dataset '{name}'; choose from: {', '.join(BUILTIN)}, or give an image folder's "
                        "path")


def own_spec(record: dict) -> DatasetSpec:
    """A folder's registry entry from its record."""
    grey = record["channels"] == 1
    return DatasetSpec(record["name"], f"{record['label']} (your folder)", tuple(record["classes"]),
                       record["channels"], record["size"], False, "mnist" if grey else "cifar10",
                       f"your folder {record['path']}", "folder", record)


def save_record(record: dict, home: Path | None = None) -> DatasetSpec:
    """Keep a checked folder's record (atomically), so that its runs find their dataset again."""
    folder = records_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['name']}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return own_spec(record)


def dataset_names(home: Path | None = None) -> list[str]:
    """Every dataset of the registry: the built-in ones, then the folders checked on this store."""
    folder = records_dir(home)
    own = sorted(p.stem for p in folder.glob("folder-*.json")) if folder.is_dir() else []
    return [*BUILTIN, *(name for name in own if OWN_NAME.fullmatch(name))]


def describe(spec: DatasetSpec) -> dict:
    """A dataset as the JSON of `train` and `runs` states it."""
    out = {"dataset": spec.name, "dataset_label": spec.label, "image_size": spec.size, "channels": spec.channels,
           "classes": len(spec.classes)}
    if spec.own:
        record = spec.folder
        out.update(folder=record["path"], fingerprint=record["fingerprint"], split=record["split"])
    return out


def dataset_fields(name: str) -> dict:
    """``describe`` for a run's listing; a folder whose record is gone is still listed, by its name."""
    try:
        return describe(get_dataset(name))
    except ConvnetsError:
        return {"dataset": name, "dataset_label": name}
