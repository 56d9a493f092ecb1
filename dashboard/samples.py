"""Random CIFAR-10 test images for the photo page: from the local test split when the data is there, otherwise
from the test images the finished runs stored (their most confident mistakes), so the button always has some."""

from __future__ import annotations

import numpy as np
import streamlit as st

from convnets import data as datamod
from convnets.errors import ConvnetsError
from convnets.store import RunStore

SOURCE_HELP = ("A random image of the CIFAR-10 test split in the data folder; without the data there, one of the "
               "test images the runs keep (their most confident mistakes)")


@st.cache_resource(show_spinner="Loading the CIFAR-10 test split…", max_entries=2)
def _test_split(data_dir: str) -> datamod.Split | None:
    """The test split when it is on disk already; never a download (`load` would start one)."""
    if datamod.find_source("cifar10", data_dir).kind == "download":
        return None
    try:
        return datamod.load("cifar10", data_dir).test
    except ConvnetsError:
        return None


def random_cifar_image(data_dir: str, runs: list[dict]) -> tuple[np.ndarray, str] | None:
    """A 32×32×3 test image and a caption naming its true class, or None when there is none to be had."""
    rng = np.random.default_rng()
    classes = datamod.CLASSES["cifar10"]
    split = _test_split(data_dir)
    if split is not None and len(split):
        i = int(rng.integers(len(split)))
        image = split.images[i].permute(1, 2, 0).numpy()
        return image, f"test image {i}, a {classes[int(split.labels[i])]}"
    store = RunStore()
    stored = [(image, record) for summary in runs
              for image, record in zip(*store.require(summary["run_id"]).mistakes())]
    if not stored:
        return None
    image, record = stored[int(rng.integers(len(stored)))]
    return image, f"a stored test image, a {classes[record['true']]}"
