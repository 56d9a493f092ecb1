"""Datasets as whole uint8 tensors, with augmentation done on the training device in batches.

Decoding 60,000 small images is the slow part of a CIFAR-10 epoch in the usual DataLoader pipeline, so
each split is decoded once, cached next to the run store, and kept on the device as one uint8 tensor.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import folders
from .datasets import default_data_dir, default_home, get_dataset
from .errors import ConvnetsError
from .reporting import data_label

__all__ = ["default_data_dir", "default_home", "get_dataset"]  # re-exported: the data folder and the store's home

# The official files' checksums (as torchvision lists them); tests substitute their own. Only files whose checksum
# is the official one are ever unpickled (CIFAR); idx files are checked where the official sums are listed here.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR_BATCHES = "cifar-10-batches-py"
CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR100_DIR = "cifar-100-python"
CIFAR100_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision's folder names
JPEG_DIR = "cifar10-jpeg"
JPEG_PACK = "cifar10-jpeg-pack.npz"
JPEG_SCANS = "cifar10-jpeg-scans.npz"  # the same JPEG files again: their shared 623-byte header stored once


@dataclass
class Split:
    images: torch.Tensor  # N×C×H×W uint8
    labels: torch.Tensor  # N int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Dataset:
    name: str
    copy: str  # official | jpeg | folder
    train: Split
    test: Split

    @property
    def classes(self) -> list[str]:
        return list(get_dataset(self.name).classes)


@dataclass(frozen=True)
class Source:
    """Where a dataset will be read from; known before loading, because the copy is part of a run's id."""

    dataset: str
    copy: str
    kind: str  # idx | cifar-python | cifar-folder | cifar-pack | cifar-scans | cifar100-python | svhn-mat | folder
    path: Path  # | download


def find_source(dataset: str, data_dir: Path | str | None = None) -> Source:
    """Which files of the data folder (or, for a user's folder, of that folder) a dataset is read from."""
    spec = get_dataset(dataset)
    root = Path(data_dir) if data_dir else default_data_dir()
    if spec.own:
        return Source(dataset, "folder", "folder", Path(spec.folder["path"]))
    if spec.reader == "mnist-idx":
        raw = root / IDX_DIRS[dataset] / "raw"
        kind = "idx" if all(_idx_path(raw, f) for pair in MNIST_FILES.values() for f in pair) else "download"
        return Source(dataset, "official", kind, raw)
    if spec.reader == "cifar100":
        folder = root / CIFAR100_DIR
        return Source(dataset, "official", "cifar100-python" if all((folder / n).is_file() for n in CIFAR100_MD5)
                      else "download", folder)
    if spec.reader == "svhn-mat":
        return Source(dataset, "official", "svhn-mat" if all((root / n).is_file() for n in SVHN_FILES.values())
                      else "download", root)
    official = root / CIFAR_BATCHES
    if all((official / name).exists() for name in CIFAR_MD5):
        return Source(dataset, "official", "cifar-python", official)
    if (root / JPEG_DIR).is_dir():
        return Source(dataset, "jpeg", "cifar-folder", root / JPEG_DIR)
    if (root / JPEG_PACK).is_file():
        return Source(dataset, "jpeg", "cifar-pack", root / JPEG_PACK)
    if (root / JPEG_SCANS).is_file():
        return Source(dataset, "jpeg", "cifar-scans", root / JPEG_SCANS)
    return Source(dataset, "official", "download", official)


def check_data_dir(dataset: str, data_dir: Path | str | None = None) -> Source:
    """Where a background job would read the dataset from, or a ConvnetsError saying why it could not, checked
    before a job is launched for it: a path to a file; a folder that does not exist (other than the default one,
    which a download creates), since a mistyped path would otherwise start a download into a new folder; or data
    that is missing while downloads are off. A user's folder is read from its own path, whatever the data folder."""
    if get_dataset(dataset).own:
        return find_source(dataset)
    root = Path(data_dir) if data_dir else default_data_dir()
    if root.exists() and not root.is_dir():
        raise ConvnetsError(f"the data folder {root} is a file, not a folder")
    if not root.exists() and root != default_data_dir():
        other = " (downloads are off: CONVNETS_OFFLINE)" if offline() else ", or create this one to download it into"
        raise ConvnetsError(f"the data folder {root} does not exist: choose the folder that holds the data{other}")
    source = find_source(dataset, root)
    if source.kind == "download" and offline():
        raise ConvnetsError(f"{_missing(dataset, root)}; downloads are off (CONVNETS_OFFLINE), so put the files "
                            "there or choose the folder that holds them")
    return source


def offline() -> bool:
    """CONVNETS_OFFLINE set (to anything but nothing): never try a download."""
    return bool(os.environ.get("CONVNETS_OFFLINE"))


def load(dataset: str, data_dir: Path | str | None = None, cache_dir: Path | str | None = None) -> Dataset:
    """Both splits of a dataset as uint8 tensors, decoded once and then read from the cache."""
    return _load(dataset, *_cache_of(dataset, data_dir, cache_dir))


def _load(dataset: str, source: Source, cached: Path) -> Dataset:
    blob = _read_cache(cached)
    if blob is not None:
        return Dataset(dataset, source.copy, Split(*blob["train"]), Split(*blob["test"]))
    if source.kind == "folder":  # both splits come from one pass over the folder
        splits = folders.decode(get_dataset(dataset))
        data = Dataset(dataset, source.copy, *(_split(*splits[split]) for split in ("train", "test")))
    else:
        data = Dataset(dataset, source.copy, *(_decode(source, split) for split in ("train", "test")))
    _save_cache(cached, {s: getattr(data, s) for s in ("train", "test")})
    return data


def load_test(dataset: str, data_dir: Path | str | None = None,
              cache_dir: Path | str | None = None) -> tuple[Split, str]:
    """The test split alone and its copy: what the pages show and the analyses measure. From the whole dataset's
    cache where a training wrote it; else only the test images are decoded (a sixth of CIFAR-10's: seconds instead
    of most of a minute for the JPEG copy on two cores) and cached apart."""
    source, cached = _cache_of(dataset, data_dir, cache_dir)
    if source.kind == "folder" or cached.is_file():
        return _load(dataset, source, cached).test, source.copy
    test_cache = cached.with_suffix(".test.pt")
    blob = _read_cache(test_cache)
    if blob is not None:
        return Split(*blob["test"]), source.copy
    test = _decode(source, "test")
    _save_cache(test_cache, {"test": test})
    return test, source.copy


class SplitImages:
    """A split's labels, with its images decoded only where they are used: a gallery of 40 test images costs 40
    JPEG decodes, not the split's 10,000, when no cache holds the split decoded (a page's first view)."""

    def __init__(self, labels: np.ndarray, copy: str, take: Callable[[np.ndarray], np.ndarray]) -> None:
        self.labels, self.copy, self._take = labels, copy, take

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images at these indices, N×C×H×W uint8."""
        return self._take(np.asarray(indices, dtype=np.int64).reshape(-1))

    def mismatch(self, dataset: str, copy: str, labels: np.ndarray) -> str:
        """Why these are not the images that predictions with these labels were made on, or "" if they are."""
        if self.copy != copy:
            return (f"The {dataset} test images in the data folder are the {data_label(dataset, self.copy)} "
                    f"files, but these runs were evaluated on the {data_label(dataset, copy)} files.")
        if len(self) != len(labels) or not np.array_equal(self.labels, labels):
            return f"The {dataset} test split in the data folder is not the one these runs were evaluated on."
        return ""


def split_images(dataset: str, split: str, data_dir: Path | str | None = None) -> SplitImages:
    """One split as ``SplitImages``: from a cache where one holds it decoded, else straight from the encoded files
    of a JPEG copy (its labels from their folders or offsets, its images decoded when taken), else decoded whole
    (``load_test`` or ``load``: the other forms decode in a second or so)."""
    return _split_images(dataset, split, data_dir, *_cache_of(dataset, data_dir, None))


def both_splits(dataset: str, data_dir: Path | str | None = None) -> tuple[SplitImages, SplitImages]:
    """The training and test splits as ``split_images`` gives them, the data looked up once: finding a folder's
    cache walks its files (CIFAR-10's 60,000 in 0.4 s)."""
    found = _cache_of(dataset, data_dir, None)
    return _split_images(dataset, "train", data_dir, *found), _split_images(dataset, "test", data_dir, *found)


def _split_images(dataset: str, split: str, data_dir: Path | str | None, source: Source, cached: Path) -> SplitImages:
    decoded = cached.is_file() or (split == "test" and cached.with_suffix(".test.pt").is_file())
    if source.kind in _ENCODED and not decoded:
        # A folder's files are only listed here, and read when taken; a pack's are slices of its one file.
        items = _folder_files(source.path, split) if source.kind == "cifar-folder" else encoded_images(source, split)
        labels = np.asarray([label for _, label, _ in items], dtype=np.int64)

        def take(indices: np.ndarray) -> np.ndarray:
            if not len(indices):
                return np.empty((0, 3, 32, 32), np.uint8)
            return decode_images([(_read(items[i][0]), *items[i][1:]) for i in indices]).images.numpy()

        return SplitImages(labels, source.copy, take)
    if split == "test":
        found, copy = load_test(dataset, data_dir)
    else:
        data = load(dataset, data_dir)
        found, copy = data.train, data.copy
    images = found.images.numpy()
    return SplitImages(found.labels.numpy(), copy, lambda indices: images[indices])


def _read(file: bytes | Path) -> bytes:
    try:
        return file.read_bytes() if isinstance(file, Path) else file
    except OSError as e:
        raise ConvnetsError(f"{file} cannot be read ({e.strerror})") from None


def _cache_of(dataset: str, data_dir: Path | str | None, cache_dir: Path | str | None) -> tuple[Source, Path]:
    """Where the dataset is read from (downloaded first where it is missing) and its cache file."""
    source = find_source(dataset, data_dir)
    if source.kind == "download":
        _download(dataset, Path(data_dir) if data_dir else default_data_dir())
        source = find_source(dataset, data_dir)
    cache = Path(cache_dir) if cache_dir else default_home() / "cache"
    # a user's folder is named by its content's fingerprint already; the others by their files' names and times
    fingerprint = "" if source.kind == "folder" else f"-{source.copy}-{_fingerprint(source)}"
    return source, cache / f"{dataset}{fingerprint}.pt"


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # a damaged cache file is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def load_copy(dataset: str, copy: str, data_dir: Path | str | None = None) -> Dataset:
    """``load``, refusing data that is not the copy a run was trained on or asks for (official or jpeg)."""
    data = load(dataset, data_dir)
    _check_copy(dataset, data.copy, copy, data_dir)
    return data


def load_test_copy(dataset: str, copy: str, data_dir: Path | str | None = None) -> Split:
    """``load_test``, refusing data that is not the copy asked for, as ``load_copy`` does."""
    test, found = load_test(dataset, data_dir)
    _check_copy(dataset, found, copy, data_dir)
    return test


def _check_copy(dataset: str, found: str, copy: str, data_dir: Path | str | None) -> None:
    if found != copy:
        where = data_dir or default_data_dir()
        raise ConvnetsError(f"the {dataset} data in {where} is the {found} copy, but the run is on the {copy} copy")


def _save_cache(path: Path, splits: dict[str, Split]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        torch.save({name: (split.images, split.labels) for name, split in splits.items()}, tmp)
        os.replace(tmp, path)
    except OSError:  # a read-only or full disk only costs the next load its speed
        pass


def _fingerprint(source: Source) -> str:
    """The files' names, sizes and times, hashed: a changed file makes a new cache. A folder is walked with
    ``os.scandir``: 0.2 s for CIFAR-10's 60,000 JPEG files where pathlib's ``rglob`` took 1.0 s, paid on each
    page's first view of the data."""
    h = hashlib.sha256(str(source.path.resolve()).encode())
    if source.kind == "svhn-mat":  # its files lie in the data folder itself, beside every other dataset's
        files = [os.path.join(source.path, name) for name in SVHN_FILES.values()]
        stats = [(f, os.stat(f)) for f in files if os.path.isfile(f)]
    elif source.path.is_dir():
        stats = _files_under(source.path)
    else:
        stats = [(str(source.path), source.path.stat())] if source.path.is_file() else []
    start = len(str(source.path.parent)) + 1  # names relative to the source's parent folder
    for path, st in stats:
        h.update(f"{path[start:]}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _files_under(folder: str | os.PathLike) -> list[tuple[str, os.stat_result]]:
    """Every file below a folder with its stat, in the order of their sorted paths."""
    with os.scandir(folder) as entries:
        ordered = sorted(entries, key=lambda e: e.name)
    files = []
    for entry in ordered:
        if entry.is_dir():
            files.extend(_files_under(entry.path))
        elif entry.is_file():
            files.append((entry.path, entry.stat()))
    return files


# --- MNIST idx files ---------------------------------------------------------------------------------


def _idx_path(raw: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (raw / name).is_file():
            return raw / name
    return None


def _read_idx(path: Path, checksums: dict[str, str]) -> np.ndarray:
    blob = path.read_bytes()
    if path.suffix == ".gz":
        expected = checksums.get(path.name)
        if expected and hashlib.md5(blob).hexdigest() != expected:
            raise ConvnetsError(f"{path} is corrupted (md5 mismatch); delete it and download it again")
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError) as e:
            raise ConvnetsError(f"{path} is not a readable gzip file ({e})") from None
    if len(blob) < 4 or blob[:2] != b"\0\0" or blob[2] != 0x08:
        raise ConvnetsError(f"{path} is not an MNIST idx file of unsigned bytes")
    ndim = blob[3]
    dims = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(blob, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConvnetsError(f"{path} is truncated: expected {int(np.prod(dims))} bytes of data, found {body.size}")
    return body.reshape(dims)


def _decode_idx(source: Source, split: str) -> Split:
    """MNIST and the datasets that copied its idx format (Fashion-MNIST, KMNIST)."""
    checksums = MNIST_MD5 if source.dataset == "mnist" else {}
    images, labels = (_read_idx(_idx_path(source.path, stem), checksums) for stem in MNIST_FILES[split])
    return _split(images[:, None], labels)


# --- CIFAR-10: the official python batches, the JPEG ImageFolder tree, or its one-file pack ------------


def _decode_cifar_python(source: Source, split: str) -> Split:
    """The official python batches of CIFAR-10 (five training batches) or CIFAR-100 (one file a split, its 100
    fine labels)."""
    cifar100 = source.kind == "cifar100-python"
    checksums = CIFAR100_MD5 if cifar100 else CIFAR_MD5
    names = [n for n in checksums if (n.startswith("test")) == (split == "test")]
    xs, ys = [], []
    for name in names:
        blob = (source.path / name).read_bytes()
        # The batches are pickles: only the files whose checksum is the official one are ever unpickled.
        if hashlib.md5(blob).hexdigest() != checksums[name]:
            raise ConvnetsError(f"{source.path / name} is corrupted (md5 mismatch); delete it and download again")
        entry = pickle.loads(blob, encoding="latin1")
        xs.append(np.asarray(entry["data"], np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(entry["fine_labels" if cifar100 else "labels"])
    return _split(np.concatenate(xs), np.asarray(ys))


def _decode_svhn(source: Source, split: str) -> Split:
    """SVHN's cropped digits: a MATLAB file a split, images H×W×C×N, the digit 0 labelled 10."""
    from scipy.io import loadmat  # only SVHN needs scipy
    from scipy.io.matlab import MatReadError

    path = source.path / SVHN_FILES[split]
    try:
        mat = loadmat(path)
        images, labels = np.asarray(mat["X"], np.uint8), np.asarray(mat["y"], np.int64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError, MatReadError) as e:
        raise ConvnetsError(f"{path} is not a readable SVHN file ({type(e).__name__}: {e})") from None
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise ConvnetsError(f"{path} holds images of shape {images.shape}, SVHN's are 32×32×3×N")
    return _split(images.transpose(3, 2, 0, 1), labels % 10)





def encoded_images(source: Source, split: str) -> list[tuple[bytes, int, object]]:
    """The (encoded file, label, where) items of a CIFAR-10 JPEG copy's split, in ImageFolder order, whichever of
    its three forms holds them: also what the benchmarks' usual-loop baselines read their files from."""
    if source.kind not in _ENCODED:
        raise ConvnetsError(f"{source.path} holds no encoded CIFAR-10 images ({source.kind})")
    return _ENCODED[source.kind](source.path, split)


def _folder_items(root: Path, split: str) -> list[tuple[bytes, int, object]]:
    return [(f.read_bytes(), label, f) for f, label, _ in _folder_files(root, split)]


def _folder_files(root: Path, split: str) -> list[tuple[Path, int, object]]:
    """The (file, label, where) items of an ImageFolder split, in ImageFolder order, listed but not read."""
    folder = root / split
    classes = list(get_dataset("cifar10").classes)
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if found != classes:
        raise ConvnetsError(
            f"{folder} must hold one folder per CIFAR-10 class ({', '.join(classes)}); found "
            f"{', '.join(found) or 'none'}"
        )
    items = []
    for label, name in enumerate(classes):
        with os.scandir(folder / name) as entries:
            items += [(Path(f), label, f) for f in sorted(e.path for e in entries if e.is_file())]
    return items


def _pack_items(pack: Path, split: str) -> list[tuple[bytes, int, object]]:
    """The one-file pack: the split's JPEG files concatenated, with offsets."""
    blob, off, labels = _read_npz(pack, (f"{split}_jpeg", f"{split}_off", f"{split}_y"))
    return _jpeg_items(pack, split, b"", blob, off, labels)


def _scans_items(pack: Path, split: str) -> list[tuple[bytes, int, object]]:
    """The same files with their common header stored once: header + scan is the JPEG file, byte for byte."""
    header, blob, off, labels = _read_npz(pack, ("header", f"{split}_scan", f"{split}_off", f"{split}_y"))
    return _jpeg_items(pack, split, header.tobytes(), blob, off, labels)


def _read_npz(pack: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    try:
        with np.load(pack, allow_pickle=False) as z:
            return [z[k] for k in keys]
    except (OSError, KeyError, ValueError) as e:
        raise ConvnetsError(f"{pack} is not a readable CIFAR-10 pack ({e})") from None


def _jpeg_items(pack: Path, split: str, header: bytes, blob: np.ndarray, off: np.ndarray,
                labels: np.ndarray) -> list[tuple[bytes, int, object]]:
    if len(off) != len(labels) + 1 or (len(off) and off[-1] > len(blob)):
        raise ConvnetsError(f"{pack} is not a readable CIFAR-10 pack (its {split} offsets do not fit its data)")
    return [(header + blob[off[i] : off[i + 1]].tobytes(), int(labels[i]), f"{pack}[{split} {i}]")
            for i in range(len(labels))]


_ENCODED = {"cifar-folder": _folder_items, "cifar-pack": _pack_items, "cifar-scans": _scans_items}


def decode_images(items: list[tuple[bytes, int, object]]) -> Split:
    """(encoded image, label, where) items as a split; shared with bench/jpeg_cost.py so it decodes as training does."""
    if not items:
        raise ConvnetsError("the CIFAR-10 image folder holds no images")
    images = np.empty((len(items), 32, 32, 3), np.uint8)

    def decode(chunk: range) -> None:
        for i in chunk:
            blob, _, where = items[i]
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except Exception as e:
                raise ConvnetsError(f"{where} is not a readable image ({e})") from None
            if pixels.shape != (32, 32, 3):
                raise ConvnetsError(f"{where} is {pixels.shape[1]}×{pixels.shape[0]}, CIFAR-10 images are 32×32")
            images[i] = pixels

    # Pillow decodes with the GIL released, so threads divide the minute that 60,000 JPEGs take on one core.
    workers = min(os.cpu_count() or 1, 16)
    step = math.ceil(len(items) / workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, [range(a, min(a + step, len(items))) for a in range(0, len(items), step)]))
    return _split(images.transpose(0, 3, 1, 2), np.asarray([label for _, label, _ in items]))


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
    if len(images) != len(labels):
        raise ConvnetsError(f"{len(images)} images but {len(labels)} labels")
    images = np.require(images, requirements=["C", "W"])
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


_DECODERS = {"idx": _decode_idx, "cifar-python": _decode_cifar_python, "cifar100-python": _decode_cifar_python,
             "svhn-mat": _decode_svhn}


def _decode(source: Source, split: str) -> Split:
    if source.kind in _DECODERS:
        return _DECODERS[source.kind](source, split)
    return decode_images(encoded_images(source, split))


def where_to_put(dataset: str, root: Path) -> str:
    """The files a data folder needs for `dataset`, in words: for messages that tell a user where the data goes."""
    reader = get_dataset(dataset).reader
    expected = {
        "mnist-idx": [root / IDX_DIRS.get(dataset, "") / "raw" / f for f in MNIST_MD5],
        "cifar100": [root / CIFAR100_DIR / f for f in CIFAR100_MD5],
        "svhn-mat": [root / f for f in SVHN_FILES.values()],
    }.get(reader, [root / CIFAR_BATCHES / f for f in CIFAR_MD5])
    tree = f"{root / JPEG_DIR}/{{train,test}}/<class>/"
    alternatives = f" (or the JPEG ImageFolder copy {tree})" if reader == "cifar10" else ""
    return f"expected {', '.join(p.name for p in expected)} in {expected[0].parent}{alternatives}"


def _missing(dataset: str, root: Path) -> str:
    """What the data folder lacks: the files a download would bring, or for CIFAR-10 the JPEG copy's tree."""
    return f"{dataset} is not in {root}: {where_to_put(dataset, root)}"


def _download(dataset: str, root: Path) -> None:
    missing = _missing(dataset, root)
    if offline():
        raise ConvnetsError(f"{missing}; downloads are off (CONVNETS_OFFLINE)")
    import torchvision.datasets as tvd  # only a download needs torchvision; importing it costs seconds

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        if dataset == "svhn":
            for split in SVHN_FILES:
                tvd.SVHN(str(root), split=split, download=True)
        else:
            cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST,
                   "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[dataset]
            for train in (True, False):
                cls(str(root), train=train, download=True)
    except Exception as e:
        raise ConvnetsError(f"{missing}, and downloading failed ({type(e).__name__}: {e})") from None
    finally:
        socket.setdefaulttimeout(previous)


# --- on-device batches --------------------------------------------------------------------------------


# kind -> (pixels of random translation, mirrored?); "none" is the absence of an entry
AUGMENTS = {"crop-flip": (4, True), "flip": (0, True), "shift": (2, False)}


def batches(
    split: Split,
    batch_size: int,
    *,
    augment: str = "none",
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float batches (0..255 pixel values) from a device-resident uint8 split.

    The epoch's images are gathered and augmented up front, a few thousand at a time, so that a training step
    only slices its batch: a handful of kernel launches per epoch instead of a dozen per step, which is what
    short GPU steps are bound by. With ``shard=(rank, world)`` each batch of ``batch_size`` (the global batch)
    is cut into ``world`` equal parts and this rank gets its own. The random draws are made for the whole epoch,
    so every image is augmented exactly as a single process with the same batch would. ``drop_last`` drops the
    last incomplete batch: under sharding so that every rank takes the same number of steps, on CUDA so that
    every batch has the shape the captured CUDA graphs expect.
    """
    n, device = len(split), split.labels.device
    rank, world = shard or (0, 1)
    stop = n - n % batch_size if drop_last else n
    bounds = [(start + rank * size // world, start + (rank + 1) * size // world)
              for start in range(0, stop, batch_size) for size in [min(batch_size, n - start)]]
    if not bounds:
        return
    positions = torch.cat([torch.arange(lo, hi) for lo, hi in bounds]) if world > 1 else torch.arange(stop)
    # One transfer per epoch: the order and every random draw go to the device before the first batch.
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    idx = order[positions].to(device)
    images, labels = split.images[idx], split.labels[idx]
    if augment != "none":
        draws = _draw(augment, n, generator)[positions].to(device)
        images = torch.cat([_augment(images[i : i + AUGMENT_CHUNK], augment, draws[i : i + AUGMENT_CHUNK])
                            for i in range(0, len(images), AUGMENT_CHUNK)])
    offset = 0
    for lo, hi in bounds:
        yield images[offset : offset + hi - lo].float(), labels[offset : offset + hi - lo]
        offset += hi - lo


AUGMENT_CHUNK = 8192  # images augmented at once: bounds the gather's temporaries to a few hundred MB


def _draw(kind: str, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Per image: row shift, column shift, flip (0/1)."""
    pad, mirrored = AUGMENTS[kind]
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = (torch.rand(n, generator=generator) < 0.5) if mirrored else torch.zeros(n, dtype=torch.bool)
    return torch.cat([shifts, flips[:, None].long()], 1)


def _augment(x: torch.Tensor, kind: str, draws: torch.Tensor) -> torch.Tensor:
    """Random translation (zero padding, as RandomCrop(padding=...)) and, for the mirrored kinds, horizontal flips."""
    pad = AUGMENTS[kind][0]
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (torch.arange(h, device=x.device)[None, :] + draws[:, 0:1])[:, None, :, None]
    cols = torch.arange(w, device=x.device)[None, :] + draws[:, 1:2]
    cols = torch.where(draws[:, 2:3].bool(), cols.flip(1), cols)
    cols = cols[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


InputStats = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # mean, std, whitening filter


def input_stats(normalize: str, train: Split) -> InputStats:
    """The (mean, std) a recipe's normalisation divides by, in 0..255 units, and the whitening filter applied after
    it, if any: per channel, per pixel (the mean and std images), unit (pixels / 255), or zca (per channel, then
    ``whitening_filter``)."""
    if normalize in ("channel", "zca"):
        mean, std = channel_stats(train)
        return mean, std, whitening_filter(train, mean, std) if normalize == "zca" else None
    if normalize == "pixel":
        return *pixel_stats(train), None
    if normalize == "unit":
        c = train.images.shape[1]
        return torch.zeros(c), torch.full((c,), 255.0), None
    raise ConvnetsError(f"unknown normalisation '{normalize}' (channel, pixel, unit or zca)")


WHITEN_SIZE = 5  # the whitening filter's width: CIFAR-10's whole-image ZCA filters fade within two pixels
WHITEN_BIAS = 0.1  # added to each eigenvalue (of unit-variance pixels): damps what JPEG and noise left, not edges
WHITEN_IMAGES = 5_000  # the training images the patch covariance is estimated from, evenly spaced


def whitening_filter(train: Split, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """ZCA whitening as a convolution (C × C × 5 × 5), fit on the standardised training images.

    The All-CNN and maxout papers trained on ZCA-whitened CIFAR-10: each pixel decorrelated from its neighbours
    and across colours, which leaves edges and flattens the smooth part of the spectrum that otherwise dominates
    the first layer's gradients. Whole-image ZCA is a 3072 × 3072 matrix, nearly the same filter at every pixel
    since image statistics do not depend on the position; this is that filter, from the covariance of 5 × 5
    patches at every other position (W = U (S + 0.1)^-1/2 Uᵀ, the row of each patch's centre pixel): 225 values
    instead of 9.4 million, so it lives in the model and follows it through export. Each output channel is scaled
    to unit variance on the training images, so the network's initialisation sees inputs of the scale it expects."""
    c, k = train.images.shape[1], WHITEN_SIZE
    picks = torch.linspace(0, len(train) - 1, min(WHITEN_IMAGES, len(train))).long()
    dims = c * k * k
    where = {"dtype": torch.float64, "device": train.images.device}
    moment, total, count = torch.zeros(dims, dims, **where), torch.zeros(dims, **where), 0
    for chunk in picks.split(250):
        x = (train.images[chunk].float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        patches = torch.nn.functional.unfold(x, k, stride=2).transpose(1, 2).reshape(-1, dims)  # k×k patches as rows
        moment += (patches.T @ patches).double()
        total += patches.sum(0).double()
        count += len(patches)
    centred = total / count
    covariance = moment / count - torch.outer(centred, centred)
    values, vectors = torch.linalg.eigh(covariance)
    zca = vectors @ torch.diag((values.clamp_min(0) + WHITEN_BIAS).rsqrt()) @ vectors.T
    centre = (k * k) // 2  # unfold orders a patch channel by channel, each row by row
    rows = zca[[channel * k * k + centre for channel in range(c)]]
    rows = rows / torch.einsum("id,de,ie->i", rows, covariance, rows).sqrt()[:, None]  # unit variance out
    return rows.reshape(c, c, k, k).float()


def channel_stats(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the training images, in 0..255 units."""
    x = split.images.double().transpose(0, 1).reshape(split.images.shape[1], -1)
    return x.mean(1).float(), x.std(1).float()


def pixel_stats(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std image (the reference notebooks' per-pixel standardisation), in 0..255 units."""
    x = split.images.double()
    return x.mean(0).float(), x.std(0).clamp_min(1.0).float()
