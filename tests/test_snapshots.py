"""Live snapshots of a training run (issue 41): taken as it trains, bounded, and leaving the run's result as it was."""

import numpy as np
import torch

from convnets import snapshots as snapmod
from convnets.config import RunConfig
from convnets.models import get_model
from convnets.store import RunStore
from convnets.train import train_run


def config(epochs: int = 3) -> RunConfig:
    recipe = get_model("lenet5").recipes["mnist"].replace(epochs=epochs, batch_size=32)
    return RunConfig("lenet5", "mnist", recipe)


def test_a_run_keeps_snapshots_of_its_filters_maps_and_answers(data_dir, monkeypatch):
    monkeypatch.setattr(snapmod, "EVERY_SECONDS", 0.0)  # one at every step: 19 steps an epoch
    run, _ = train_run(config(), data_dir=str(data_dir), device="cpu")
    shots = snapmod.load(run)
    assert shots is not None and 2 <= len(shots) <= snapmod.LIMIT  # thinned out past the limit
    assert shots.step[0] == 1 and shots.step[-1] == 3 * 19 and np.all(np.diff(shots.step) > 0)
    assert shots.images.shape == (8, 1, 28, 28) and sorted(shots.labels.tolist()) == list(range(8))
    assert shots.layers == ["0", get_model("lenet5").cam_layer]
    assert shots.filters.shape[1:] == (6, 1, 5, 5) and shots.maps[0].shape[1:] == (8, 6, 28, 28)
    assert shots.maps[0].dtype == np.uint8 and shots.maps[0].max() == 255
    assert shots.probabilities.shape[1:] == (8, 10)
    assert np.allclose(shots.probabilities.astype(np.float32).sum(2), 1, atol=1e-2)
    first, last = shots.probe_accuracy[0].astype(float).mean(), shots.probe_accuracy[-1].astype(float).mean()
    assert last > first and last > 0.5  # the watched net learned
    assert not np.array_equal(shots.filters[0], shots.filters[-1])  # its filters moved
    assert (run.path / snapmod.FILE).stat().st_size < 5_000_000


def test_snapshots_change_nothing_in_the_run(data_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(snapmod, "EVERY_SECONDS", 0.0)
    with_them, _ = train_run(config(2), store=RunStore(tmp_path / "a"), data_dir=str(data_dir), device="cpu")
    without, _ = train_run(config(2), store=RunStore(tmp_path / "b"), data_dir=str(data_dir), device="cpu",
                           snapshots=False)
    assert snapmod.load(without) is None and snapmod.load(with_them) is not None
    a, b = with_them.load_model("cpu").state_dict(), without.load_model("cpu").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = ("seconds", "images_per_second", "wall_seconds")
    assert [{k: v for k, v in h.items() if k not in timing} for h in with_them.history()] == [
        {k: v for k, v in h.items() if k not in timing} for h in without.history()]


def test_past_the_limit_every_other_snapshot_goes_and_the_interval_doubles(data_dir, monkeypatch):
    monkeypatch.setattr(snapmod, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(snapmod, "LIMIT", 6)
    run, _ = train_run(config(1), data_dir=str(data_dir), device="cpu")
    shots = snapmod.load(run)
    assert len(shots) <= 6 and shots.step[0] == 1 and shots.step[-1] == 19
