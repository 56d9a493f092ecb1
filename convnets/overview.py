"""What the models learn from, for the Datasets page and `python -m convnets datasets`: which copy of a dataset is in
use, how many images each class has, examples and the mean image of every class.

On a machine without the data, the small sample shipped in the repository (`sample/test-images.npz`: the first
ten test images of every class of both datasets, written by `write_sample`) stands in, so that the page still
shows what the images look like, and says where the full data goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .data import Split, both_splits, default_data_dir, find_source, input_stats, load, where_to_put
from .datasets import STUDY, get_dataset
from .errors import ConvnetsError
from .models.classifier import Normalize

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "test-images.npz"
SAMPLE_PER_CLASS = 10
POOL_PER_CLASS = 500  # training images per class kept to draw examples from: plenty of new ones, 15 MB for CIFAR-10
SPLITS = ("train", "test")
COPIES = {"official": "the official files", "jpeg": "the CIFAR-10 JPEG copy at quality 75",
          "folder": "your image folder"}


@dataclass(frozen=True, eq=False)
class Overview:
    """One dataset as the page shows it: from the data folder (`full`), or else from the shipped sample."""

    dataset: str
    full: bool
    copy: str  # official | jpeg
    where: str  # where the images were read from, in words
    hint: str  # for the sample: where the full data goes, or why the folder's could not be read
    counts: dict[str, list[int]]  # split -> images per class
    means: np.ndarray  # classes x H x W x C float32 (0..255): each class's mean image, over the pool
    pool: Split  # the images examples are drawn from: up to POOL_PER_CLASS training images a class, or the sample

    @property
    def classes(self) -> list[str]:
        return list(get_dataset(self.dataset).classes)

    def examples(self, per_class: int, seed: int = 0) -> np.ndarray:
        """`per_class` random images of every class (classes x per_class x H x W x C uint8); a class with fewer
        images repeats some. A new seed gives new ones."""
        rng = np.random.default_rng(seed)
        labels = self.pool.labels.numpy()
        picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=(labels == c).sum() < per_class)
                 for c in range(len(self.classes))]
        return self.pool.images[np.stack(picks)].permute(0, 1, 3, 4, 2).numpy()

    @cached_property
    def _whitening(self) -> Normalize:
        """The 'zca' normalisation fit on the pool, as training fits it on the training images."""
        return Normalize(*input_stats("zca", self.pool))

    def whitened(self, images: np.ndarray) -> np.ndarray:
        """``images`` (... × H × W × C uint8) as a net with the 'zca' normalisation gets them, for the eye: mid-grey
        is 0 and three standard deviations either side the ends, so edges and colour contrasts stand out where the
        smooth parts of the image go grey."""
        shape = images.shape
        x = torch.from_numpy(images.reshape(-1, *shape[-3:])).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            seen = self._whitening(x)
        return (128 + seen * 127 / 3).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).reshape(shape).numpy()


def overview(dataset: str, data_dir: Path | str | None = None) -> Overview:
    """The dataset in the data folder; the shipped sample when it is not there (never a download) or unreadable."""
    root = Path(data_dir) if data_dir else default_data_dir()
    source = find_source(dataset, root)
    label = get_dataset(dataset).label
    if source.kind == "download":
        return _sample_overview(dataset, f"{label} is not in {root}: {where_to_put(dataset, root)}.")
    try:
        train, test = both_splits(dataset, root)
        chosen = _pool_indices(train.labels)
        pool = Split(torch.from_numpy(train.take(chosen)), torch.from_numpy(train.labels[chosen]))
    except ConvnetsError as e:
        return _sample_overview(dataset, f"{label} in {source.path if source.kind == 'folder' else root} could "
                                f"not be read: {e}.")
    classes = len(get_dataset(dataset).classes)
    counts = {name: _counts(split.labels, classes) for name, split in zip(SPLITS, (train, test))}
    where = f"{COPIES[train.copy]} in {source.path}"
    return Overview(dataset, True, train.copy, where, "", counts, _means(pool, dataset), pool)


def _sample_overview(dataset: str, hint: str) -> Overview:
    if dataset not in STUDY:  # only the study's datasets have a sample shipped with the code
        channels, side, _ = get_dataset(dataset).shape
        empty = Split(torch.zeros((0, channels, side, side), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
        return Overview(dataset, False, "official", "no image of it here", hint, {}, _means(empty, dataset), empty)
    sample, copy = read_sample(dataset)
    where = f"the {SAMPLE_PER_CLASS} test images per class shipped with the code (from {COPIES[copy]})"
    counts = {"test": _counts(sample.labels.numpy(), len(get_dataset(dataset).classes))}
    return Overview(dataset, False, copy, where, hint, counts, _means(sample, dataset),
                    sample)


def _pool_indices(labels: np.ndarray) -> np.ndarray:
    """Up to POOL_PER_CLASS random images of every class, the same ones on every call: all that the page decodes
    of a training split (5,000 of CIFAR-10's 50,000 JPEG files; a tenth of the time)."""
    rng = torch.Generator().manual_seed(0)
    keep = []
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == c)
        keep.append(members[torch.randperm(len(members), generator=rng)[:POOL_PER_CLASS].numpy()])
    return np.concatenate(keep) if keep else np.zeros(0, np.int64)


def _counts(labels: np.ndarray, classes: int) -> list[int]:
    return np.bincount(labels, minlength=classes).tolist()


def _means(split: Split, dataset: str) -> np.ndarray:
    spec = get_dataset(dataset)
    means = np.zeros((len(spec.classes), spec.size, spec.size, spec.channels), np.float32)
    for c in range(len(means)):
        members = split.images[split.labels == c]
        if len(members):  # a class by class sum: a whole CIFAR-10 split in float would take 600 MB
            means[c] = members.double().mean(0).permute(1, 2, 0).float().numpy()
    return means


def read_sample(dataset: str, path: Path = SAMPLE) -> tuple[Split, str]:
    """The shipped sample's test images of `dataset` and the copy they come from."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, copy = z[f"{dataset}_images"], z[f"{dataset}_labels"], str(z[f"{dataset}_copy"])
    except (OSError, KeyError, ValueError) as e:
        raise ConvnetsError(f"the shipped sample {path} is missing or damaged ({e})") from None
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))), copy


def write_sample(data_dir: Path | str, path: Path = SAMPLE, per_class: int = SAMPLE_PER_CLASS) -> Path:
    """Write the sample from the data folder's test splits: the first `per_class` test images of every class of
    both datasets, and which copy each comes from."""
    arrays: dict[str, np.ndarray] = {}
    for dataset in STUDY:
        data = load(dataset, data_dir)
        labels = data.test.labels
        keep = torch.cat([torch.nonzero(labels == c)[:per_class, 0] for c in range(len(data.classes))])
        arrays[f"{dataset}_images"] = data.test.images[keep].numpy()
        arrays[f"{dataset}_labels"] = labels[keep].numpy().astype(np.uint8)
        arrays[f"{dataset}_copy"] = np.array(data.copy)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
