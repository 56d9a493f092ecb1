"""Dataset images for the pages, read once per server process: random test images for the Photo page and Inside the
net, the test images a Compare or Errors page shows, and each dataset's overview for the Datasets page.

A random test image comes from the local test split when the data is there (never a download), else from the test
images the finished runs stored (their most confident mistakes), else from the small sample shipped with the code,
so that the button always has one to give.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convnets import data as datamod
from convnets.errors import ConvnetsError
from convnets.overview import Overview, overview, read_sample
from convnets.schema import Predictions
from convnets.store import RunStore

SOURCE_HELP = ("A random image of the test split in the data folder; without the data there, one of the test images "
               "the runs keep (their most confident mistakes) or of the sample shipped with the code")


@st.cache_resource(show_spinner="Reading the test split…", max_entries=4)
def test_split(dataset: str, data_dir: str) -> datamod.SplitImages | str:
    """The test split when it is on disk already (never a download, which `load` would start), else why not."""
    if datamod.find_source(dataset, data_dir).kind == "download":
        return f"The {dataset} test images are not in the data folder {data_dir} (set it in the sidebar)."
    try:
        return datamod.split_images(dataset, "test", data_dir)
    except ConvnetsError as e:
        return f"The {dataset} test images in {data_dir} cannot be read: {e}."


def test_images(dataset: str, copy: str, predictions: Predictions,
                data_dir: str) -> tuple[datamod.SplitImages | None, str]:
    """The test images the predictions were made on, or None and why they cannot be shown."""
    found = test_split(dataset, data_dir)
    if isinstance(found, str):
        return None, found
    why = found.mismatch(dataset, copy, predictions.labels)
    return (None, why) if why else (found, "")


def random_test_image(dataset: str, data_dir: str, runs: list[dict]) -> tuple[np.ndarray, str] | None:
    """A test image (28×28 grey or 32×32×3) and a caption naming its true class, or None when there is none."""
    rng = np.random.default_rng()
    classes = list(datamod.get_dataset(dataset).classes)
    found = test_split(dataset, data_dir)
    if not isinstance(found, str) and len(found):
        i = int(rng.integers(len(found)))
        return found.take([i])[0].transpose(1, 2, 0), f"test image {i}, a {classes[int(found.labels[i])]}"
    store = RunStore()
    stored = [(image, record) for summary in runs
              for image, record in zip(*store.require(summary["run_id"]).mistakes())]
    if stored:
        image, record = stored[int(rng.integers(len(stored)))]
        return image, f"a stored test image, a {classes[record['true']]}"
    try:
        sample, _ = read_sample(dataset)
    except ConvnetsError:
        return None
    i = int(rng.integers(len(sample)))
    return _hwc(sample.images[i]), f"a test image of the shipped sample, a {classes[int(sample.labels[i])]}"


def _hwc(image) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=4)
def _overview(dataset: str, data_dir: str, source: str) -> Overview:
    return overview(dataset, data_dir)


def dataset_overview(dataset: str, data_dir: str) -> Overview:
    """The dataset's overview, computed once per data folder and read again when the data there changes form."""
    source = datamod.find_source(dataset, data_dir)
    return _overview(dataset, data_dir, f"{source.kind}:{source.path}")
