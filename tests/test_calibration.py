"""The expected calibration error (15 equal-width bins) and the reliability diagram's bins."""

import numpy as np
import pytest

from convnets.calibration import BINS, reliability


def test_a_perfectly_calibrated_predictor_has_an_ece_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 200_000)
    correct = rng.random(200_000) < confidence  # right exactly as often as it says
    result = reliability(confidence, correct)
    assert result["ece"] < 0.005
    filled = [(a, c) for a, c in zip(result["accuracy"], result["confidence"]) if a is not None]
    assert all(abs(a - c) < 0.02 for a, c in filled)


def test_an_over_confident_predictor_has_the_ece_it_should():
    # 90 % sure of every answer, right on 60 of 100: one bin, |0.6 - 0.9| = 0.3.
    confidence = np.full(100, 0.9)
    correct = np.arange(100) < 60
    assert reliability(confidence, correct)["ece"] == pytest.approx(0.3, abs=1e-6)
    # Two bins, weighted by their counts: 50 images at 0.95 all right (0.05), 50 at 0.55 with 5 right (0.45).
    confidence = np.r_[np.full(50, 0.95), np.full(50, 0.55)]
    correct = np.r_[np.ones(50, bool), np.arange(50) < 5]
    assert reliability(confidence, correct)["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.45, abs=1e-6)


def test_the_bins_add_up_to_the_ece_and_a_confidence_of_one_falls_in_the_last_bin():
    rng = np.random.default_rng(1)
    confidence = np.r_[rng.uniform(0.1, 1.0, 5000), np.ones(500)]  # saturated softmax: exactly 1.0
    correct = rng.random(5500) < 0.8
    result = reliability(confidence.astype(np.float16), correct)
    assert result["bins"] == BINS == len(result["count"]) and sum(result["count"]) == 5500
    assert result["count"][-1] >= 500  # not a hidden sixteenth bin (torchmetrics #3510)
    total = sum(n * abs(a - c) for n, a, c in zip(result["count"], result["accuracy"], result["confidence"]) if n)
    assert result["ece"] == pytest.approx(total / 5500, abs=1e-5)
    assert reliability(np.zeros(0), np.zeros(0, bool))["ece"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ece_is_torchmetrics_binary_calibration_error(seed):
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import binary_calibration_error

    rng = np.random.default_rng(seed)
    confidence = np.r_[rng.beta(5, 1, 3000), np.full(40, 0.5), rng.uniform(0, 1, 500)].astype(np.float32)
    correct = rng.random(len(confidence)) < confidence ** (1 + seed)  # over-confident for seeds 1 and 2
    ours = reliability(confidence, correct)["ece"]
    theirs = binary_calibration_error(torch.as_tensor(confidence), torch.as_tensor(correct).long(), n_bins=BINS,
                                      norm="l1").item()
    assert ours > 0.001 and ours == pytest.approx(theirs, abs=1e-5)
