"""Synthetic datasets in the real on-disk formats, so the real loaders run without the real data."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convnets import data as datamod

# fp32 on every CPU, for the whole session and the servers and jobs it starts: which precision trains faster is
# measured per machine (tests/test_train.py tests that choice), and the suite must compute alike on every CPU kind.
os.environ["CONVNETS_BF16"] = "0"
# No background ONNX conversions from the pages the tests open (their homes are thrown away): tests/test_inference.py
# converts where it tests the conversion.
os.environ["CONVNETS_BACKGROUND_CONVERSION"] = "0"

CIFAR_CLASSES = list(datamod.get_dataset("cifar10").classes)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def digit_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable fake digits: a bright bar whose position and angle depend on the class, plus noise."""
    images = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        r, c = 4 + 2 * (label % 5), 6 + 8 * (label // 5)
        images[i, r : r + 3 + rng.integers(0, 2), c : c + 10] = 255
        images[i, 4 + label : 8 + label, 20:24] = 200
    return images


def write_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0,
                uninformative: bool = False) -> dict[str, str]:
    """MNIST idx .gz files under root/MNIST/raw; returns their md5s (the test's 'official' checksums).

    ``uninformative``: every training image is labelled 0 whatever its digit, so a net trained on it can only
    answer 0, which scores exactly chance (1/10) on the balanced test split on any CPU. Such files are written
    unpacked, since only the .gz files are checked against the official checksums."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = digit_images(labels, rng)
        if uninformative and split == "train":
            labels = np.zeros_like(labels)
        for stem, array in zip(datamod.MNIST_FILES[split], (images, labels)):
            blob = _idx(array)
            if uninformative:
                (raw / stem).write_bytes(gzip.decompress(blob))
                continue
            (raw / f"{stem}.gz").write_bytes(blob)
            md5[f"{stem}.gz"] = hashlib.md5(blob).hexdigest()
    return md5


def colour_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """Learnable fake photos: a class colour in a class-dependent quadrant over noise."""
    image = rng.integers(0, 90, (32, 32, 3)).astype(np.uint8)
    colour = np.array([(label * 83) % 256, (label * 151 + 60) % 256, (label * 37 + 120) % 256], np.uint8)
    r, c = (label % 3) * 10, (label // 3) * 7
    image[r : r + 12, c : c + 12] = colour
    return image


def write_cifar_folder(root: Path, per_class_train: int = 40, per_class_test: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / datamod.JPEG_DIR
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for label, name in enumerate(CIFAR_CLASSES):
            folder = base / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                buf = io.BytesIO()
                Image.fromarray(colour_image(label, rng)).save(buf, "JPEG", quality=90)
                (folder / f"{i:04d}.jpg").write_bytes(buf.getvalue())
    return base


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("data")
    md5 = write_mnist(root)
    write_cifar_folder(root)
    return root, md5


@pytest.fixture
def data_dir(synthetic_root, monkeypatch) -> Path:
    root, md5 = synthetic_root
    monkeypatch.setattr(datamod, "MNIST_MD5", md5)
    return root


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty store, no zoo and no downloads."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONVNETS_HOME", str(home))
    monkeypatch.setenv("CONVNETS_ZOO", "")
    monkeypatch.setenv("CONVNETS_OFFLINE", "1")
    monkeypatch.setenv("CONVNETS_DATA", str(tmp_path / "no-data"))
    return home


@pytest.fixture(scope="module")
def one_thread():
    """For modules that run batches of a few images (`pytestmark = pytest.mark.usefixtures("one_thread")`): those
    gain nothing from intra-op threads, and on a busy machine OpenMP's spinning workers make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
