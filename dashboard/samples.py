"""Test images for the pages: from the local test split when the data is there (never a download), otherwise from
the test images the finished runs stored (their most confident mistakes), so the photo page's button always has some.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convnets import data as datamod
from convnets.errors import ConvnetsError
from convnets.reporting import COPY_LABELS
from convnets.schema import Predictions
from convnets.store import RunStore

SOURCE_HELP = ("A random image of the CIFAR-10 test split in the data folder; without the data there, one of the "
               "test images the runs keep (their most confident mistakes)")


@st.cache_resource(show_spinner="Loading the test split…", max_entries=4)
def test_split(dataset: str, data_dir: str) -> tuple[datamod.Split, str] | str:
    """The test split and its copy (official, jpeg) when it is on disk already (never a download, which `load`
    would start), else why not."""
    if datamod.find_source(dataset, data_dir).kind == "download":
        return f"The {dataset} test images are not in the data folder {data_dir} (set it in the sidebar)."
    try:
        data = datamod.load(dataset, data_dir)
    except ConvnetsError as e:
        return f"The {dataset} test images in {data_dir} cannot be read: {e}."
    return data.test, data.copy


def test_images(dataset: str, copy: str, predictions: Predictions, data_dir: str) -> tuple[np.ndarray | None, str]:
    """The test images the predictions were made on (N×C×H×W uint8), or None and why they cannot be shown."""
    found = test_split(dataset, data_dir)
    if isinstance(found, str):
        return None, found
    split, found_copy = found
    if found_copy != copy:
        return None, (f"The data folder holds the {COPY_LABELS[found_copy]} of {dataset}, but these runs were "
                      f"evaluated on the {COPY_LABELS[copy]}.")
    if len(split) != len(predictions) or not np.array_equal(split.labels.numpy(), predictions.labels):
        return None, f"The {dataset} test split in {data_dir} is not the one these runs were evaluated on."
    return split.images.numpy(), ""


def random_cifar_image(data_dir: str, runs: list[dict]) -> tuple[np.ndarray, str] | None:
    """A 32×32×3 test image and a caption naming its true class, or None when there is none to be had."""
    rng = np.random.default_rng()
    classes = datamod.CLASSES["cifar10"]
    found = test_split("cifar10", data_dir)
    if not isinstance(found, str) and len(found[0]):
        split = found[0]
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
