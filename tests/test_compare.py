"""Two runs on the same images: the 2×2 table, McNemar's exact test, galleries' images, and per-image predictions
(stored at the end of training, computed on demand for older runs)."""

import json
import math

import numpy as np
import pytest

from convnets.cli import main
from convnets.compare import cell, comparable, compare, default_pair, mcnemar_p, only_right, predictions_of
from convnets.config import RunConfig
from convnets.errors import ConvnetsError
from convnets.models import get_model
from convnets.schema import Predictions
from convnets.store import RunStore
from convnets.train import train_run


def answers(predicted, labels, confidence=None) -> Predictions:
    predicted, labels = np.asarray(predicted, np.uint8), np.asarray(labels, np.uint8)
    confidence = np.full(len(labels), 0.9, np.float16) if confidence is None else np.asarray(confidence, np.float16)
    return Predictions(predicted, confidence, labels, "test")


@pytest.mark.parametrize("only_a, only_b, expected", [
    (0, 0, 1.0),  # no disagreement: nothing to tell the runs apart
    (3, 3, 1.0),
    (0, 5, 2 / 32),  # 2 × 0.5^5
    (6, 1, 2 * 8 / 128),  # 2 × (C(7,0) + C(7,1)) / 2^7
    (2, 8, 2 * 56 / 1024),  # 2 × (1 + 10 + 45) / 2^10
    (10, 0, 2 / 1024),
    (4, 5, 1.0),  # a two-sided tail over a half is capped at 1
])
def test_mcnemar_exact_against_known_values(only_a, only_b, expected):
    assert mcnemar_p(only_a, only_b) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_p(only_b, only_a) == mcnemar_p(only_a, only_b)  # symmetric


def test_mcnemar_exact_agrees_with_the_chi_squared_approximation_for_many_disagreements():
    # With 250 disagreements, the continuity-corrected chi-squared (1 degree of freedom) is close to exact.
    b, c = 150, 100
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    approximate = math.erfc(math.sqrt(chi2 / 2))
    assert mcnemar_p(b, c) == pytest.approx(approximate, rel=0.1)
    assert 0 < mcnemar_p(6000, 4000) < 1e-80  # a whole test split's worth of disagreements stays exact


def test_the_two_by_two_table_and_the_galleries():
    labels = [0, 1, 2, 3, 4, 5, 6, 7]
    a = answers([0, 1, 2, 3, 9, 9, 9, 7], labels)  # right on 0-3 and 7
    b = answers([0, 1, 9, 9, 4, 5, 9, 9], labels, confidence=[0.5, 0.5, 0.6, 0.95, 0.5, 0.5, 0.5, 0.7])
    result = compare(a, b)
    assert result["table"] == {"both_right": 2, "only_a": 3, "only_b": 2, "both_wrong": 1}
    assert result["accuracy_a"] == 5 / 8 and result["accuracy_b"] == 4 / 8 and result["images"] == 8
    assert result["mcnemar_p"] == pytest.approx(mcnemar_p(3, 2))
    assert list(only_right(a, b)) == [3, 7, 2]  # B's most confident mistakes first
    assert list(only_right(b, a)) == [4, 5]
    assert list(cell(a, 4, 9)) == [4] and list(cell(b, 6, 9)) == [6] and list(cell(a, 0, 0)) == [0]


def test_runs_on_different_test_images_are_not_compared():
    with pytest.raises(ConvnetsError, match="different test images"):
        compare(answers([0, 1], [0, 1]), answers([0, 1, 2], [0, 1, 2]))
    with pytest.raises(ConvnetsError, match="different test images"):
        compare(answers([0, 1], [0, 1]), answers([0, 1], [1, 0]))


def tiny(seed: int = 0, epochs: int = 1) -> RunConfig:
    recipe = get_model("lenet5").recipes["mnist"].replace(epochs=epochs, batch_size=64)
    return RunConfig("lenet5", "mnist", recipe, seed=seed)


def test_training_stores_every_test_images_answer_in_agreement_with_the_evaluation(data_dir):
    run, _ = train_run(tiny(), data_dir=str(data_dir), device="cpu")
    predictions = run.predictions()
    evaluation = run.evaluation()
    assert len(predictions) == evaluation["test_images"] == 200
    assert predictions.predicted.dtype == np.uint8 and predictions.confidence.dtype == np.float16
    assert predictions.accuracy == pytest.approx(evaluation["test_accuracy"])
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (predictions.labels, predictions.predicted), 1)
    assert matrix.tolist() == evaluation["confusion_matrix"]
    assert predictions.source.startswith("cpu (") and predictions.source.endswith("), fp32")
    assert (run.path / "predictions.npz").stat().st_size < 200 * 8 + 2000  # compact: a few bytes an image


def test_older_runs_get_their_predictions_on_demand_or_a_clear_error(data_dir, tmp_path):
    run, _ = train_run(tiny(), data_dir=str(data_dir), device="cpu")
    stored = run.predictions()
    (run.path / "predictions.npz").unlink()  # as written before this version
    assert run.predictions() is None and run.summary()["calibration_error"] is None
    with pytest.raises(ConvnetsError, match=f"run {run.run_id} has no stored per-image predictions, and computing "
                       "them needs its test split: mnist is not in"):
        predictions_of(run, str(tmp_path / "no-data"))
    again = predictions_of(run, str(data_dir), "cpu")
    assert np.array_equal(again.predicted, stored.predicted) and np.array_equal(again.labels, stored.labels)
    assert run.predictions() is not None  # stored with the run this time


def test_cli_compare_json_and_text(data_dir, capsys):
    a, _ = train_run(tiny(seed=0), data_dir=str(data_dir), device="cpu")
    b, _ = train_run(tiny(seed=1, epochs=2), data_dir=str(data_dir), device="cpu")
    code = main(["compare", a.run_id, b.run_id, "--json"])
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and out["run_a"] == a.run_id and out["images"] == 200
    assert sum(out["table"].values()) == 200
    assert out["accuracy_a"] == pytest.approx(a.evaluation()["test_accuracy"])
    assert out["mcnemar_p"] == pytest.approx(mcnemar_p(out["table"]["only_a"], out["table"]["only_b"]))
    code = main(["compare", a.run_id, b.run_id])
    text = capsys.readouterr().out
    assert code == 0 and "A right" in text and "McNemar's exact test: p = " in text


def test_cli_compare_refuses_unfinished_runs(capsys):
    store = RunStore()
    run = store.create(tiny())
    run.set_status("failed", error="x")
    code = main(["compare", run.run_id, run.run_id])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: run {run.run_id} is failed, not finished"]


def summary(run_id: str, test_images: int | None = 200, data_copy: str = "official", dataset: str = "mnist") -> dict:
    return {"run_id": run_id, "dataset": dataset, "data_copy": data_copy, "test_images": test_images}


def test_compare_opens_on_two_runs_evaluated_on_the_same_test_images():
    small, *full = summary("a", 200), summary("b", 10_000), summary("c", 10_000)
    assert default_pair([small, *full]) == ("b", "c")  # the first run has no partner: the first pair that does
    assert default_pair([small, *full], first="c") == ("c", "b")  # a link's run stays A, with a partner of its own
    other_copy = summary("d", 10_000, data_copy="jpeg")
    assert default_pair([full[0], other_copy, full[1]]) == ("b", "c")
    unknown = [summary("e", None), summary("f", None)]  # runs from before the count was kept: no evidence
    assert not comparable(*unknown) and comparable(full[0], full[1])
    assert default_pair([small, other_copy]) == ("a", "d")  # no comparable pair: the page says why
    assert default_pair([small, other_copy], first="d") == ("d", "a")
