"""The Datasets page's numbers, computed in the core: from the data folder, or from the sample the repository ships."""

import json

import numpy as np
import pytest
import torch

from convnets import data as datamod
from convnets import overview as overview_module
from convnets.cli import main
from convnets.overview import SAMPLE, SAMPLE_PER_CLASS, overview, read_sample, write_sample


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_an_overview_of_the_data_folder_counts_averages_and_draws_every_class(data_dir, dataset):
    data = datamod.load(dataset, data_dir)
    view = overview(dataset, data_dir)
    assert view.full and view.hint == "" and view.copy == data.copy and str(data_dir) in view.where
    for split in ("train", "test"):
        labels = getattr(data, split).labels
        assert view.counts[split] == [int((labels == c).sum()) for c in range(10)]
        assert sum(view.counts[split]) == len(labels)
    cat = data.train.images[data.train.labels == 3].double().mean(0).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(view.means[3], cat, rtol=1e-5)

    examples = view.examples(5, seed=1)
    channels, side, _ = datamod.get_dataset(dataset).shape
    assert examples.shape == (10, 5, side, side, channels) and examples.dtype == np.uint8
    train = data.train.images.permute(0, 2, 3, 1).numpy()
    for label, row in enumerate(examples):  # each example is a training image of its row's class
        for image in row:
            matches = np.flatnonzero((train == image).all(axis=(1, 2, 3)))
            assert len(matches) and (data.train.labels[matches] == label).any()
    assert not np.array_equal(view.examples(5, seed=2), examples)
    assert np.array_equal(view.examples(5, seed=1), examples)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_whitened_examples_are_what_a_zca_net_gets_shown_around_mid_grey(data_dir, dataset):
    view = overview(dataset, data_dir)
    examples = view.examples(4, seed=0)
    shown = view.whitened(examples)
    assert shown.shape == examples.shape and shown.dtype == np.uint8 and not np.array_equal(shown, examples)
    mean, std, whiten = datamod.input_stats("zca", view.pool)
    x = torch.from_numpy(examples.reshape(-1, *examples.shape[-3:])).permute(0, 3, 1, 2).float()
    seen = torch.nn.functional.conv2d((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), whiten, padding=2)
    expected = (128 + seen * 127 / 3).round().clamp(0, 255).permute(0, 2, 3, 1).reshape(examples.shape).numpy()
    assert np.abs(shown.astype(int) - expected).max() <= 1
    assert abs(float(np.median(shown)) - 128) < 20  # whitened images are mostly grey: zero after the filter


def test_a_jpeg_copy_is_overviewed_from_its_pool_alone_and_as_from_its_cache(data_dir, monkeypatch):
    monkeypatch.setattr(overview_module, "POOL_PER_CLASS", 7)
    decoded = []
    real = datamod.decode_images
    monkeypatch.setattr(datamod, "decode_images", lambda items: decoded.append(len(items)) or real(items))
    fresh = overview("cifar10", data_dir)  # nothing cached: the file names give the counts, 70 files the pool
    assert decoded == [70] and fresh.counts == {"train": [40] * 10, "test": [10] * 10}
    data = datamod.load("cifar10", data_dir)
    cached = overview("cifar10", data_dir)  # from the cache the load wrote: the same pool, counts and means
    assert torch.equal(cached.pool.images, fresh.pool.images) and torch.equal(cached.pool.labels, fresh.pool.labels)
    assert cached.counts == fresh.counts and np.array_equal(cached.means, fresh.means)
    assert fresh.pool.labels.bincount().tolist() == [7] * 10
    train = data.train.images.flatten(1)
    for image, label in zip(fresh.pool.images, fresh.pool.labels):  # each a training image of its class, once
        match = torch.nonzero((train == image.flatten()).all(1))[:, 0]
        assert len(match) and (data.train.labels[match] == label).all()
    assert len({bytes(i.numpy()) for i in fresh.pool.images}) == 70
    birds = fresh.pool.images[fresh.pool.labels == 2].double().mean(0).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(fresh.means[2], birds, rtol=1e-5)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_without_data_the_overview_is_the_shipped_sample_and_says_where_the_data_goes(tmp_path, dataset):
    view = overview(dataset, tmp_path / "nothing")
    sample, copy = read_sample(dataset)
    assert not view.full and view.copy == copy and "shipped with the code" in view.where
    assert str(tmp_path / "nothing") in view.hint
    assert ("MNIST/raw" if dataset == "mnist" else "cifar10-jpeg") in view.hint
    assert view.counts == {"test": [SAMPLE_PER_CLASS] * 10}
    assert view.examples(3).shape[:2] == (10, 3)
    first_cat = sample.images[sample.labels == 3].double().mean(0).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(view.means[3], first_cat, rtol=1e-5)


def test_unreadable_data_falls_back_to_the_sample_and_says_why(data_dir, monkeypatch):
    monkeypatch.setitem(datamod.MNIST_MD5, "t10k-labels-idx1-ubyte.gz", "0" * 32)
    view = overview("mnist", data_dir)
    assert not view.full and "could not be read" in view.hint and "md5 mismatch" in view.hint


def test_the_shipped_sample_is_small_and_holds_every_class_of_both_datasets():
    assert SAMPLE.stat().st_size <= 1024 * 1024
    for dataset, copy in (("mnist", "official"), ("cifar10", "jpeg")):
        sample, shipped_copy = read_sample(dataset)
        assert shipped_copy == copy
        assert tuple(sample.images.shape) == (10 * SAMPLE_PER_CLASS, *datamod.get_dataset(dataset).shape)
        assert torch.bincount(sample.labels, minlength=10).tolist() == [SAMPLE_PER_CLASS] * 10
        assert sample.images.float().std() > 20  # real pictures, not blank ones


def test_write_sample_takes_the_first_test_images_of_every_class(data_dir, tmp_path):
    path = write_sample(data_dir, tmp_path / "sample.npz", per_class=3)
    for dataset in ("mnist", "cifar10"):
        sample, copy = read_sample(dataset, path)
        test = datamod.load(dataset, data_dir).test
        first = torch.cat([torch.nonzero(test.labels == c)[:3, 0] for c in range(10)])
        assert torch.equal(sample.images, test.images[first]) and copy == datamod.load(dataset, data_dir).copy


def test_cli_datasets_reports_each_copy_and_its_counts(data_dir, tmp_path, capsys):
    assert main(["datasets", "--data-dir", str(data_dir), "--json"]) == 0
    rows = {r["dataset"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert rows["mnist"]["full"] and rows["mnist"]["copy"] == "official"
    assert sum(rows["mnist"]["counts"]["train"]) == 600 and rows["cifar10"]["copy"] == "jpeg"
    assert main(["datasets", "--data-dir", str(tmp_path / "none")]) == 0
    text = capsys.readouterr().out
    assert "shipped with the code" in text and str(tmp_path / "none") in text

    target = tmp_path / "out" / "sample.npz"
    assert main(["datasets", "--data-dir", str(data_dir), "--write-sample", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    assert len(read_sample("mnist", target)[0]) == 10 * SAMPLE_PER_CLASS
