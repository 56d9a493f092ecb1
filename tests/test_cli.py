import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets import data as datamod
from convnets.cli import main
from convnets.evaluate import evaluate
from convnets.store import RunStore

TRAIN = ["train", "--model", "lenet5", "--dataset", "mnist", "--epochs", "2", "--batch-size", "32"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


def test_models_lists_the_registry(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "resnet20" in out and "0.270M" in out
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in last_json(out)}
    assert rows["lenet5"]["params"] == {"mnist": 61_706, "cifar10": 62_006}
    assert rows["resnet20"]["paper_accuracy"] == {"cifar10": 0.9125}


def test_train_json_contract_then_cache_runs_eval(capsys, data_dir):
    code, out, _ = run_cli(capsys, *TRAIN, "--data-dir", str(data_dir), "--json")
    first = last_json(out)
    assert code == 0 and first["cached"] is False
    for key in ("run_id", "model", "dataset", "epochs", "test_accuracy", "train_seconds", "device"):
        assert key in first
    assert first["epochs"] == 2 and 0.3 < first["test_accuracy"] <= 1 and first["device"].startswith("cpu")

    code, out, _ = run_cli(capsys, *TRAIN, "--data-dir", str(data_dir), "--json")
    second = last_json(out)
    assert code == 0 and second["cached"] is True and second["run_id"] == first["run_id"]
    assert second["test_accuracy"] == first["test_accuracy"]

    code, out, _ = run_cli(capsys, "runs", "--json")
    assert [r["run_id"] for r in last_json(out)] == [first["run_id"]]
    code, out, _ = run_cli(capsys, "runs", "--dataset", "cifar10", "--json")
    assert last_json(out) == []

    code, out, _ = run_cli(capsys, "eval", first["run_id"], "--data-dir", str(data_dir), "--json")
    evaluation = last_json(out)
    assert code == 0 and evaluation["test_accuracy"] == pytest.approx(first["test_accuracy"])
    matrix = evaluation["confusion_matrix"]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix) and sum(map(sum, matrix)) == 200
    stored = RunStore().require(first["run_id"]).calibration()  # from the predictions kept at the end of training
    assert 0 < evaluation["calibration_error"] < 1 and evaluation["calibration_error"] == pytest.approx(stored["ece"])
    assert evaluation["tta"] is False  # as the recipe says, and digits are never mirrored:
    code, _, err = run_cli(capsys, "eval", first["run_id"], "--tta", "--data-dir", str(data_dir))
    assert code == 2 and ("cannot be evaluated with test-time flips: tta averages each image with its mirror, "
                          "which only a mirrored augmentation (crop-flip, flip) trains for, not 'none'") in err


def test_eval_measures_what_test_time_flips_are_worth(capsys, built_store, home, data_dir, monkeypatch):  # noqa: F811
    copy_runs(built_store, home)
    [run] = [r for r in RunStore().finished("cifar10") if r.config.model == "lenet5"]
    assert not run.config.recipe.tta and run.config.recipe.augment == "crop-flip"
    with monkeypatch.context() as m:  # evaluating reads the test split alone, never decodes the training images
        m.setattr(datamod, "load", lambda *a, **k: pytest.fail("eval loaded the training split"))
        code, out, _ = run_cli(capsys, "eval", run.run_id, "--tta", "--data-dir", str(data_dir))
    stored = run.evaluation()["test_accuracy"]
    assert code == 0 and f"with test-time flips on jpeg cifar10 (stored without test-time flips: {stored:.2%})" in out
    code, out, _ = run_cli(capsys, "eval", run.run_id, "--tta", "--data-dir", str(data_dir), "--json")
    flipped = last_json(out)
    model = run.load_model()
    model.tta = True  # the model's own mirror averaging, on the same test split
    expected = evaluate(model, datamod.load("cifar10", data_dir).test, torch.device("cpu"))["accuracy"]
    assert flipped["tta"] and not flipped["stored_tta"] and flipped["test_accuracy"] == pytest.approx(expected)


def test_predict_gives_every_model_for_every_image(capsys, data_dir, tmp_path):
    run_cli(capsys, *TRAIN, "--data-dir", str(data_dir), "--json")
    run_cli(capsys, *TRAIN[:-2], "--batch-size", "64", "--data-dir", str(data_dir), "--json")
    files = []
    for i, (x, y) in enumerate([(8, 6), (20, 14)]):
        image = Image.new("L", (56, 56), 0)
        image.paste(255, (x, y, x + 20, y + 6))
        files.append(tmp_path / f"digit{i}.png")
        image.save(files[-1])
    code, out, _ = run_cli(capsys, "predict", *map(str, files), "--dataset", "mnist", "--json")
    result = last_json(out)
    assert code == 0 and [r["image"] for r in result] == list(map(str, files))
    for r in result:
        assert len(r["predictions"]) == 2
        for p in r["predictions"]:
            assert p["class_name"] == str(p["label"]) and 0 < p["probability"] <= 1
            assert sum(p["probabilities"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "alexnet", "--dataset", "mnist"], "unknown model 'alexnet'"),
        (["train", "--model", "resnet20", "--dataset", "mnist"], "resnet20 applies to cifar10"),
        (["train", "--model", "lenet5", "--dataset", "mnist", "--epochs", "0"], "epochs"),
        (["train", "--model", "lenet5", "--dataset", "mnist"], "mnist is not in"),
        (["train", "--model", "lenet5", "--dataset", "imagenet"], "unknown dataset 'imagenet'; choose from: mnist"),
        (["train", "--model", "lenet5", "--dataset", "svhn"], "svhn is not in"),
        (["eval", "../../etc/passwd"], "not a run id"),
        (["eval", "lenet5-mnist-0123456789"], "no run 'lenet5-mnist-0123456789'"),
        (["predict", "/nonexistent.png", "--dataset", "cifar10"], "cannot read /nonexistent.png"),
    ],
)
def test_bad_input_is_one_error_line_and_status_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_unreadable_image_and_no_models(capsys, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, _, err = run_cli(capsys, "predict", str(junk), "--dataset", "cifar10")
    assert code == 2 and err.startswith(f"error: {junk}:")
    good = tmp_path / "ok.png"
    Image.new("RGB", (40, 30), "red").save(good)
    code, _, err = run_cli(capsys, "predict", str(good), "--dataset", "cifar10")
    assert code == 2 and "no finished cifar10 model" in err


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "convnets", "models"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "wrn28_10" in done.stdout and not done.stderr



def test_train_from_a_config_file_and_a_malformed_one(data_dir, tmp_path, capsys):
    from convnets.config import RunConfig
    from convnets.models import default_recipe

    config = RunConfig("lenet5", "mnist", default_recipe("lenet5", "mnist").replace(epochs=1, batch_size=100))
    config.write(tmp_path / "run.json")
    code = main(["train", "--config", str(tmp_path / "run.json"), "--data-dir", str(data_dir), "--device", "cpu",
                 "--json"])
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and out["run_id"] == config.run_id
    (tmp_path / "bad.json").write_text('{"model": "lenet5", "recipe": ')
    code = main(["train", "--config", str(tmp_path / "bad.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "not a run configuration" in err[0]
