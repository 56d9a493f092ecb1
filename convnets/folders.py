"""A user's own image folder as a dataset: checked, fingerprinted, split and decoded.

Two layouts, torchvision's ImageFolder's: ``PATH/train/<class>/*`` with ``PATH/test/<class>/*``, or
``PATH/<class>/*`` alone, which is split here, 20 % of every class for the test split, with a fixed seed. Images
of any size and mode are fitted to one square side (the shorter side scaled to it, then the centre cropped) in
greyscale when every image is greyscale, else in RGB (the greyscale ones converted, and the check says so).

The check refuses, with one message and before anything is written, what cannot be a dataset (no folder, no
classes, a single class, a class with fewer than two images, train and test classes that differ, more than 1,000
classes, more than 5 % of files unreadable); unreadable files under that share are skipped and listed.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .datasets import BUILTIN, OWN_NAME, DatasetSpec, save_record
from .errors import ConvnetsError

SIZES = (28, 32, 64)
MAX_CLASSES = 1000
MAX_BAD_SHARE = 0.05
TEST_SHARE = 0.2
SPLIT_SEED = 0
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
LAYOUTS = ("train/test folders", "one folder, split here")


@dataclass
class FolderCheck:
    """What a folder holds, as the Train and Datasets pages show it and the dataset's record keeps it."""

    path: Path
    layout: str
    classes: list[str]
    files: dict[str, list[tuple[Path, int]]]  # split -> (file, label) of every readable image
    skipped: list[tuple[str, str]]  # (file relative to the folder, why)
    converted: int  # greyscale images turned RGB (or colour ones grey) to match the rest
    channels: int
    median_side: int
    fingerprint: str
    size: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, list[int]]:
        return {split: np.bincount([label for _, label in items], minlength=len(self.classes)).tolist()
                for split, items in self.files.items()}

    @property
    def name(self) -> str:
        return f"folder-{self.fingerprint[:10]}-{self.size}"

    def record(self) -> dict:
        counts = self.counts
        return {
            "name": self.name, "label": self.path.name, "path": str(self.path), "fingerprint": self.fingerprint,
            "classes": self.classes, "channels": self.channels, "size": self.size, "median_side": self.median_side,
            "layout": self.layout, "counts": counts, "skipped": [list(s) for s in self.skipped],
            "converted": self.converted,
            "split": {"layout": self.layout, "train": sum(counts["train"]), "test": sum(counts["test"]),
                      **({"test_share": TEST_SHARE, "seed": SPLIT_SEED, "stratified": True}
                         if self.layout == LAYOUTS[1] else {})},
        }


def check_folder(path: Path | str, size: int | None = None) -> FolderCheck:
    """The folder's check, or a ConvnetsError saying why it cannot be a dataset. ``size``: the side images are
    fitted to (28, 32 or 64; default 28 for a greyscale folder, else 32)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ConvnetsError(f"there is no folder at {root}")
    if not root.is_dir():
        raise ConvnetsError(f"{root} is a file, not a folder of class folders")
    root = root.resolve()
    if size is not None and size not in SIZES:
        raise ConvnetsError(f"image size {size} is not one of: {', '.join(map(str, SIZES))}")
    layout, by_split = _layout(root)
    classes = sorted(by_split["train"])
    if len(classes) > MAX_CLASSES:
        raise ConvnetsError(f"{root} has {len(classes)} class folders; at most {MAX_CLASSES} are supported")
    found, skipped, modes, sides, digest = _scan(root, by_split, classes)
    bad, total = len(skipped), len(skipped) + sum(len(v) for v in found.values())
    if total and bad > MAX_BAD_SHARE * total:
        listed = "; ".join(f"{f} ({why})" for f, why in skipped[:5])
        raise ConvnetsError(f"{bad} of the {total} files in {root} are not readable images (more than "
                            f"{MAX_BAD_SHARE:.0%}), e.g. {listed}")
    files = found if layout == LAYOUTS[0] else _split(found["train"], len(classes))
    _check_counts(root, classes, files, layout)
    grey = sum(1 for m in modes if m in GREY_MODES)
    channels = 1 if grey == len(modes) else 3
    converted = grey if channels == 3 else 0
    check = FolderCheck(root, layout, classes, files, skipped, converted, channels,
                        int(statistics.median(sides)), digest)
    check.size = size or (28 if channels == 1 else 32)
    if converted:
        check.notes.append(f"{converted} greyscale image(s) converted to RGB, as the other images are in colour")
    if skipped:
        check.notes.append(f"{bad} unreadable file(s) skipped")
    return check


def register(path: Path | str, size: int | None = None, home: Path | None = None) -> DatasetSpec:
    """Check a folder and keep its record: the registry entry its runs are trained and found under."""
    return save_record(check_folder(path, size).record(), home)


def _layout(root: Path) -> tuple[str, dict[str, dict[str, Path]]]:
    """Which layout the folder has, and its class folders per split."""
    def class_dirs(folder: Path) -> dict[str, Path]:
        return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}

    train, test = root / "train", root / "test"
    if train.is_dir() and test.is_dir():
        by_split = {"train": class_dirs(train), "test": class_dirs(test)}
        if not by_split["train"]:
            raise ConvnetsError(f"{train} holds no class folders (expected {train}/<class>/<images>)")
        if sorted(by_split["train"]) != sorted(by_split["test"]):
            only_train = sorted(set(by_split["train"]) - set(by_split["test"]))
            only_test = sorted(set(by_split["test"]) - set(by_split["train"]))
            raise ConvnetsError(f"the train and test folders of {root} have different classes (only in train: "
                                f"{', '.join(only_train) or 'none'}; only in test: {', '.join(only_test) or 'none'})")
        return LAYOUTS[0], by_split
    dirs = class_dirs(root)
    if not dirs:
        raise ConvnetsError(f"{root} holds no class folders: expected {root}/<class>/<images>, or "
                            f"{root}/train/<class>/<images> and {root}/test/<class>/<images>")
    return LAYOUTS[1], {"train": dirs}


def _scan(root: Path, by_split: dict[str, dict[str, Path]], classes: list[str]):
    """Every file's header read (not its pixels): the readable images by split, the skipped files, the images'
    modes and shorter sides, and the fingerprint of the folder's content (names and bytes, not its path)."""
    entries = [(split, label, f) for split, dirs in by_split.items() for label, c in enumerate(classes)
               for f in _files(dirs[c])]
    for split, dirs in by_split.items():
        empty = [c for c in classes if not any(_files(dirs[c]))]
        if empty:
            raise ConvnetsError(f"the class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} of "
                                f"{root / split if len(by_split) > 1 else root} hold{'' if len(empty) > 1 else 's'} "
                                "no files")

    def header(entry: tuple[str, int, Path]) -> tuple[bytes, str | None, tuple[str, int] | None]:
        blob = entry[2].read_bytes()
        try:
            with Image.open(io.BytesIO(blob)) as im:
                im.verify()
            with Image.open(io.BytesIO(blob)) as im:
                return blob, None, (im.mode, min(im.size))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            return blob, f"not a readable image: {type(e).__name__}", None

    digest = hashlib.sha256()
    found: dict[str, list[tuple[Path, int]]] = {split: [] for split in by_split}
    skipped, modes, sides = [], [], []
    with ThreadPoolExecutor(min(os.cpu_count() or 1, 8)) as pool:
        for (split, label, f), (blob, problem, info) in zip(entries, pool.map(header, entries)):
            relative = f.relative_to(root).as_posix()
            digest.update(f"{relative}\0{len(blob)}\0".encode())
            digest.update(hashlib.sha256(blob).digest())
            if problem:
                skipped.append((relative, problem))
                continue
            found[split].append((f, label))
            modes.append(info[0])
            sides.append(info[1])
    return found, skipped, modes, sides or [0], digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _split(items: list[tuple[Path, int]], classes: int) -> dict[str, list[tuple[Path, int]]]:
    """A stratified split with a fixed seed: of every class, 20 % (at least one image) for the test split."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in range(classes):
        members = [item for item in items if item[1] == c]
        if len(members) < 2:  # the count check below says so; nothing to split
            train += members
            continue
        order = rng.permutation(len(members))
        n_test = max(1, round(TEST_SHARE * len(members)))
        test += [members[i] for i in sorted(order[:n_test])]
        train += [members[i] for i in sorted(order[n_test:])]
    return {"train": train, "test": test}


def _check_counts(root: Path, classes: list[str], files: dict[str, list[tuple[Path, int]]], layout: str) -> None:
    if len(classes) < 2:
        raise ConvnetsError(f"{root} has one class ({classes[0]}); a classifier needs at least two class folders")
    per_class = np.bincount([label for items in files.values() for _, label in items], minlength=len(classes))
    few = [f"{c} ({n})" for c, n in zip(classes, per_class) if n < 2]
    if few:
        raise ConvnetsError(f"every class needs at least 2 readable images; {', '.join(few)} of {root} "
                            f"{'has' if len(few) == 1 else 'have'} fewer")
    if layout == LAYOUTS[0]:
        for split, items in files.items():
            counts = np.bincount([label for _, label in items], minlength=len(classes))
            empty = [c for c, n in zip(classes, counts) if n == 0]
            if empty:
                raise ConvnetsError(f"the {split} split of {root} has no readable image of {', '.join(empty)}")


def decode(spec: DatasetSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits of a registered folder as (N×C×H×W uint8, N labels), read from its recorded path; a folder
    whose content changed since it was checked is refused (its runs were trained on the content it had)."""
    record = spec.folder
    check = check_folder(record["path"], record["size"])
    if check.fingerprint != record["fingerprint"]:
        raise ConvnetsError(f"the folder {record['path']} changed since it was checked, so it is no longer the "
                            f"dataset {spec.name}: train on it again with --dataset {record['path']} (a new dataset)")
    return {split: _pixels(items, spec.channels, spec.size) for split, items in check.files.items()}


def _pixels(items: list[tuple[Path, int]], channels: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(items), size, size, channels), np.uint8)
    mode = "L" if channels == 1 else "RGB"

    def fit(chunk: range) -> None:
        for i in chunk:
            try:
                with Image.open(items[i][0]) as im:
                    im = im.convert(mode)
                    if im.size != (size, size):
                        im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
                    images[i] = np.asarray(im).reshape(size, size, channels)
            except OSError as e:  # a header that read well over pixels that do not (a truncated file)
                raise ConvnetsError(f"{items[i][0]} could not be decoded ({e}): remove or replace it") from None

    workers = min(os.cpu_count() or 1, 16)
    step = max(1, math.ceil(len(items) / workers))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fit, [range(a, min(a + step, len(items))) for a in range(0, len(items), step)]))
    return images.transpose(0, 3, 1, 2), np.asarray([label for _, label in items], np.int64)


def resolve(dataset: str, size: int | None = None) -> str:
    """The registry name a command's ``--dataset`` stands for: a dataset's name, or the path of an image folder
    (checked, and registered under its fingerprint). ``size`` applies to a folder only."""
    if dataset in BUILTIN or OWN_NAME.fullmatch(dataset):
        if size is not None:
            raise ConvnetsError(f"--image-size applies to an image folder, not to {dataset}")
        return dataset
    if "/" in dataset or dataset.startswith((".", "~")) or Path(dataset).exists():
        return register(dataset, size).name
    raise ConvnetsError(f"unknown dataset '{dataset}'; choose from: {', '.join(BUILTIN)}, or give an image "
                        "folder's path")
