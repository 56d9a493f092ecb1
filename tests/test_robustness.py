"""Corruptions (deterministic for a seed, stronger with the severity) and the accuracy under them that a run keeps."""

import json

import numpy as np
import pytest
import torch

from convnets import data as datamod
from convnets.cli import main
from convnets.config import RunConfig
from convnets.corruptions import SEVERITIES, STRENGTHS, corrupt, names
from convnets.errors import ConvnetsError
from convnets.evaluate import predict_probs
from convnets.models import get_model
from convnets.robustness import SUBSET, measure, robustness_of, subset
from convnets.train import train_run

# How far the pixels move from the original grows with each severity, except for pixelation (it shrinks the image
# by whole pixels: PIL's box filter, as in the references, changes some steps less than the one before) and
# translation (a shifted stroke can land on another one): for that one the shift itself is checked.
MONOTONE = {name for table in STRENGTHS.values() for name in table} - {"pixelate", "translation"}


@pytest.fixture(scope="module")
def test_images(synthetic_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datamod, "MNIST_MD5", synthetic_root[1])
        return {name: datamod.load(name, synthetic_root[0], synthetic_root[0] / "cache").test.images[:60]
                for name in ("mnist", "cifar10")}


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_corruptions_are_deterministic_and_grow_with_the_severity(test_images, dataset):
    x = test_images[dataset]
    for name in names(dataset):
        assert torch.equal(corrupt(x, name, 0, dataset), x)  # severity 0 is the image itself
        runs = [corrupt(x, name, s, dataset, seed=7) for s in range(SEVERITIES + 1)]
        assert all(r.dtype == torch.uint8 and r.shape == x.shape for r in runs)
        assert torch.equal(corrupt(x, name, 3, dataset, seed=7), runs[3]), name  # the same seed, the same images
        change = [(r.float() - x.float()).abs().mean().item() for r in runs]
        assert change[0] == 0 and change[-1] > change[1] > 0, (name, change)
        if name in MONOTONE:
            assert change == sorted(change) and len(set(change)) == len(change), (name, change)
    assert not torch.equal(corrupt(x, "gaussian_noise", 3, dataset, seed=1), corrupt(x, "gaussian_noise", 3, dataset))


def test_digits_also_rotate_and_shift_and_bad_requests_are_refused(test_images):
    assert {"rotation", "translation"} <= set(names("mnist")) and "rotation" not in names("cifar10")
    assert len(names("cifar10")) == 6 and len(names("mnist")) == 8
    digits = test_images["mnist"].float()[:, 0]
    digits[digits < 100] = 0  # the strokes alone, not the background noise
    rows = torch.arange(28.0)[:, None]
    centre = lambda ink: (ink * rows).sum((1, 2)) / ink.sum((1, 2))  # noqa: E731
    moved = [(centre(corrupt(digits[:, None].to(torch.uint8), "translation", s, "mnist")[:, 0].float())
              - centre(digits)).abs().mean().item() for s in range(1, SEVERITIES + 1)]
    assert moved == pytest.approx([1, 2, 3, 4, 5], abs=0.2)  # by the severity's pixels along each axis
    with pytest.raises(ConvnetsError, match="unknown corruption 'rotation' for cifar10"):
        corrupt(test_images["cifar10"], "rotation", 1, "cifar10")
    with pytest.raises(ConvnetsError, match="severity 6 is out of range"):
        corrupt(test_images["mnist"], "contrast", 6, "mnist")


def test_the_subset_is_fixed_and_balanced():
    labels = torch.arange(5000) % 10
    split = datamod.Split(torch.zeros(5000, 1, 2, 2, dtype=torch.uint8), labels)
    chosen = subset(split)
    assert len(chosen) == SUBSET and torch.bincount(chosen.labels).tolist() == [SUBSET // 10] * 10
    assert torch.equal(subset(split).labels, chosen.labels)
    assert len(subset(datamod.Split(split.images[:200], labels[:200]))) == 200  # a small split: all of it


def test_a_trained_run_keeps_its_robustness_and_its_accuracy_falls_with_the_severity(data_dir, capsys):
    recipe = get_model("lenet5").recipes["mnist"].replace(epochs=3, batch_size=32)
    run, _ = train_run(RunConfig("lenet5", "mnist", recipe), data_dir=str(data_dir), device="cpu")
    stored = run.robustness()
    assert stored is not None and stored["subset"] == 200 and set(stored["accuracy"]) == set(names("mnist"))
    # severity 0 is the clean accuracy: on this small split the subset is the whole test split
    assert stored["clean_accuracy"] == pytest.approx(run.evaluation()["test_accuracy"])
    every = np.array(list(stored["accuracy"].values()))
    assert stored["mean_accuracy"] == pytest.approx(every.mean(), abs=1e-6)
    by_severity = [stored["clean_accuracy"], *every.mean(0)]
    assert by_severity == sorted(by_severity, reverse=True) and by_severity[-1] < by_severity[0] - 0.2, by_severity
    assert run.summary()["corruption_accuracy"] == stored["mean_accuracy"]

    # measured again from the stored weights: the same figures (same subset, same corrupted images)
    test = datamod.load("mnist", data_dir).test
    again = measure(run.load_model(), test, "mnist", torch.device("cpu")).to_dict()
    assert again["accuracy"] == stored["accuracy"] and again["clean_accuracy"] == stored["clean_accuracy"]
    probs = predict_probs(run.load_model(), subset(test), torch.device("cpu"), cpu_bf16=True)
    assert again["clean_accuracy"] == pytest.approx((probs.argmax(1) == subset(test).labels).float().mean().item())

    code = main(["robustness", run.run_id, "--json"])
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and out["run_id"] == run.run_id and out["accuracy"] == stored["accuracy"]
    code = main(["robustness", run.run_id])
    text = capsys.readouterr().out
    assert code == 0 and "severity 5" in text and "translation" in text


def test_an_older_run_is_measured_on_demand_or_says_what_is_missing(data_dir, tmp_path):
    recipe = get_model("lenet5").recipes["mnist"].replace(epochs=1, batch_size=64)
    run, _ = train_run(RunConfig("lenet5", "mnist", recipe), data_dir=str(data_dir), device="cpu")
    stored = run.robustness()
    (run.path / "robustness.json").unlink()
    assert run.summary()["corruption_accuracy"] is None
    with pytest.raises(ConvnetsError, match="has no stored robustness figures, and computing them needs its test "
                       "split"):
        robustness_of(run, str(tmp_path / "nothing"))
    assert robustness_of(run, str(data_dir), "cpu")["accuracy"] == stored["accuracy"]
    assert run.robustness()["accuracy"] == stored["accuracy"]
