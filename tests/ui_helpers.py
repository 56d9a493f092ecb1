"""Shared by the page tests and the browser tests: a store of real (tiny) runs, trained once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from convnets import data as datamod
from convnets.config import Recipe, RunConfig
from convnets.models import get_model
from convnets.store import RunStore
from convnets.train import train_run

# Two MNIST models, so the drawing page has predictions to set side by side, and one CIFAR-10 model.
RUNS = (("lenet5", "mnist"), ("ref_lenet_mnist", "mnist"), ("lenet5", "cifar10"))
FAILED_ERROR = "training diverged in epoch 1 (loss nan); try a lower learning rate"


def tiny_config(model: str, dataset: str, data_root: Path) -> RunConfig:
    """The model's own recipe cut to two epochs, as the Train form would make it with epochs=2, batch 64."""
    recipe = get_model(model).recipes[dataset].replace(epochs=2, batch_size=64)
    return RunConfig(model, dataset, recipe, data_copy=datamod.find_source(dataset, data_root).copy)


def build_store(home: Path, data_root: Path, mnist_md5: dict[str, str]) -> None:
    """Train the tiny runs into `home`, plus one failed run for the leaderboard's 'not finished' table."""
    store = RunStore(home, zoo="")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVNETS_HOME", str(home))  # the decoded-data cache lives under the home
        mp.setattr(datamod, "MNIST_MD5", mnist_md5)
        for model, dataset in RUNS:
            train_run(tiny_config(model, dataset, data_root), store=store, data_dir=str(data_root), device="cpu")
    failed = store.create(RunConfig("vgg16", "cifar10", Recipe(epochs=1), data_copy="jpeg"))
    failed.set_status("failed", error=FAILED_ERROR, epochs_done=0)


@pytest.fixture(scope="session")
def built_store(tmp_path_factory, synthetic_root) -> Path:
    """The home of the tiny store; built once even when several test modules ask for it."""
    home = tmp_path_factory.getbasetemp() / "ui-store"
    marker = home / ".complete"
    if not marker.exists():
        shutil.rmtree(home, ignore_errors=True)
        build_store(home, *synthetic_root)
        marker.touch()
    return home


def copy_runs(built: Path, home: Path) -> Path:
    """A private copy of the tiny store's runs in a test's own home, so tests can change it freely."""
    shutil.copytree(built / "runs", home / "runs")
    return home
