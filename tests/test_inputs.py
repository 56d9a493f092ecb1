"""Bad input through the command line and the engine's API: one `error:` line, status 2 and nothing in the store;
what the CLI says of runs that failed or learned nothing; and `predict` on many files, good and bad, at once."""

import json
from pathlib import Path

import pytest
from conftest import write_mnist
from PIL import Image

from convnets.cli import main
from convnets.config import RunConfig
from convnets.errors import ConvnetsError
from convnets.jobs import JobManager
from convnets.models import default_recipe
from convnets.reporting import short_id
from convnets.store import RunStore
from convnets.train import train_run

TRAIN = ["train", "--model", "lenet5", "--dataset", "mnist", "--epochs", "1", "--batch-size", "32"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored_runs(home: Path) -> list[str]:
    runs = home / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--label-smoothing", "5"], "label-smoothing 5.0 is out of range: allowed [0, 1)"),
        (["--label-smoothing", "-0.1"], "label-smoothing -0.1 is out of range: allowed [0, 1)"),
        (["--weight-decay", "-1"], "weight-decay -1.0 is out of range: allowed [0, 0.1]"),
        (["--weight-decay", "0.5"], "weight-decay 0.5 is out of range: allowed [0, 0.1]"),
        (["--lr", "0"], "lr 0.0 is out of range: allowed (0, 10]"),
        (["--lr", "1e6"], "lr 1000000.0 is out of range: allowed (0, 10]"),
        (["--lr", "nan"], "lr nan is out of range: allowed (0, 10]"),
        (["--momentum", "1"], "momentum 1.0 is out of range: allowed [0, 1)"),
        (["--warmup", "-0.5"], "warmup -0.5 is out of range: allowed [0, 1)"),
        (["--epochs", "0"], "epochs 0 is out of range: allowed whole numbers [1, 10000]"),
        (["--batch-size", "0"], "batch-size 0 is out of range: allowed whole numbers [1, 65536]"),
        (["--batch-size", "100000000"], "batch-size 100000000 is out of range: allowed whole numbers [1, 65536]"),
        (["--batch-size", "601", "--lr", "0.1"], "batch-size 601 is out of range: allowed whole numbers [1, 600] "
                                                 "(the mnist training split here holds 600 images)"),
        (["--batch-size", "60000"], "batch-size 60000 scales the learning rate to 46.875 (linear rule: 0.1 × 60000 "
                                    "/ 128), out of range: allowed lr (0, 10]"),
        (["--seed", "-1"], "seed -1 is out of range: allowed [0, 2147483647]"),
        (["--device", "tpu"], "--device tpu: not a device this project trains on (choose from: auto, cpu"),
        (["--device", "xla"], "--device xla: not a device this project trains on (choose from: auto, cpu"),
        (["--device", "meta"], "--device meta: not a device this project trains on (choose from: auto, cpu"),
        (["--device", "cuda:99"], "--device cuda:99"),
    ],
)
def test_a_bad_option_is_one_error_line_and_leaves_the_store_empty(capsys, data_dir, home, options, message):
    code, out, err = cli(capsys, *TRAIN, "--data-dir", str(data_dir), *options)
    assert message in one_error(code, err) and out == ""
    assert stored_runs(home) == [] and JobManager().jobs() == []


def test_the_largest_batch_the_split_holds_trains(capsys, data_dir):
    code, out, _ = cli(capsys, *TRAIN, "--batch-size", "600", "--lr", "0.1", "--data-dir", str(data_dir), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["epochs_done"] == 1


@pytest.mark.parametrize(
    "change, device, message",
    [
        ({"label_smoothing": 5.0}, "cpu", "label-smoothing 5.0 is out of range"),
        ({"weight_decay": -1.0}, "cpu", "weight-decay -1.0 is out of range"),
        ({"batch_size": 601}, "cpu", "batch-size 601 is out of range: allowed whole numbers [1, 600]"),
        ({}, "meta", "--device meta: not a device"),
        ({}, "tpu", "--device tpu: not a device"),
    ],
)
def test_the_engine_refuses_what_the_cli_refuses_before_writing(data_dir, home, change, device, message):
    config = RunConfig("lenet5", "mnist", default_recipe("lenet5", "mnist").replace(epochs=1, **change))
    with pytest.raises(ConvnetsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train_run(config, data_dir=str(data_dir), device=device)
    assert stored_runs(home) == []


def test_missing_data_leaves_no_failed_run_behind(capsys, home, tmp_path):
    code, _, err = cli(capsys, *TRAIN, "--data-dir", str(tmp_path / "nowhere"))
    assert "downloads are off" in one_error(code, err) and stored_runs(home) == []


def digit_file(path: Path, x: int = 14, y: int = 10) -> Path:
    image = Image.new("L", (56, 56), 0)
    image.paste(255, (x, y, x + 20, y + 6))
    image.save(path)
    return path


def test_a_run_at_chance_is_marked_and_left_out_of_predictions(capsys, data_dir, tmp_path):
    code, out, _ = cli(capsys, *TRAIN, "--data-dir", str(data_dir), "--json")
    good = json.loads(out.splitlines()[-1])
    # Chance by construction: training labels that say nothing of the image (all 0), so the net answers 0 to
    # everything and scores the test split's share of zeros, 10 %, whatever the CPU's arithmetic.
    write_mnist(tmp_path / "uninformative", uninformative=True)
    code, out, err = cli(capsys, *TRAIN, "--seed", "1", "--data-dir", str(tmp_path / "uninformative"), "--json")
    chance = json.loads(out.splitlines()[-1])
    assert code == 0 and chance["test_accuracy"] == pytest.approx(0.1) and chance["at_chance"] is True
    assert good["at_chance"] is False
    assert f"warning: {chance['run_id']} is at chance level (a guess scores 10%)" in err

    code, out, _ = cli(capsys, "runs")
    [line] = [line for line in out.splitlines() if line.startswith(chance["run_id"])]
    assert "finished (at chance)" in line
    assert {r["run_id"]: r["at_chance"] for r in json.loads(cli(capsys, "runs", "--json")[1])} == {
        good["run_id"]: False, chance["run_id"]: True}

    digit = str(digit_file(tmp_path / "digit.png"))

    def answering(*options: str) -> list[str]:
        code, out, _ = cli(capsys, "predict", digit, "--dataset", "mnist", "--json", *options)
        assert code == 0
        return [p["run_id"] for p in json.loads(out)[0]["predictions"]]

    assert answering() == [good["run_id"]]
    assert sorted(answering("--include-chance")) == sorted([good["run_id"], chance["run_id"]])
    assert answering("--include-chance", "--best-per-model") == [good["run_id"]]


@pytest.mark.parametrize(
    "state, error, expected",
    [
        ("failed", "training diverged in epoch 1 (loss nan); try a lower learning rate",
         "failed (training diverged in epoch 1 (loss nan); try a lower learning rate): only a finished run"),
        ("cancelled", "cancelled by the user", "is cancelled (cancelled by the user): only a finished run"),
    ],
)
def test_eval_of_a_run_without_a_model_says_why(capsys, data_dir, state, error, expected):
    config = RunConfig("lenet5", "mnist", default_recipe("lenet5", "mnist").replace(epochs=1))
    RunStore().create(config).set_status(state, error=error, epochs_done=0)
    code, _, err = cli(capsys, "eval", config.run_id, "--data-dir", str(data_dir))
    line = one_error(code, err)
    assert f"run {config.run_id} {expected}" in line and "unreadable" not in line


@pytest.fixture
def two_lenets(capsys, data_dir) -> list[dict]:
    """Two finished runs of one model (batch 32 and 64), which predictions must tell apart."""
    runs = []
    for batch in ("32", "64"):
        code, out, _ = cli(capsys, *TRAIN[:-1], batch, "--data-dir", str(data_dir), "--json")
        assert code == 0
        runs.append(json.loads(out.splitlines()[-1]))
    return runs


def test_predict_answers_every_file_and_names_every_run(capsys, tmp_path, two_lenets):
    folder = tmp_path / "folder"
    folder.mkdir()
    inside = [digit_file(folder / "a.png"), digit_file(folder / "b.jpg", x=20, y=30)]
    (folder / "README.txt").write_text("not an image, and skipped: the folder stands for its images")
    (folder / "._a.png").write_bytes(b"\0\5\26\7 resource fork")  # hidden: skipped too
    (tmp_path / "empty-folder").mkdir()
    good = digit_file(tmp_path / "good.png")
    bad = {
        "corrupt.png": b"\x89PNG\r\n\x1a\n garbage",
        "empty.png": b"",
        "notes.txt": b"these are my notes, not a picture",
        "blank.png": None,  # an image, but nothing drawn on it
    }
    for name, blob in bad.items():
        if blob is None:
            Image.new("L", (56, 56), 0).save(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(blob)
    argv = [str(good), *(str(tmp_path / n) for n in bad), str(tmp_path / "missing.png"), str(folder),
            str(tmp_path / "empty-folder")]
    expected_images = [str(good), *(str(tmp_path / n) for n in bad), str(tmp_path / "missing.png"),
                       *map(str, inside), str(tmp_path / "empty-folder")]

    code, out, err = cli(capsys, "predict", *argv, "--dataset", "mnist", "--json")
    rows = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and [r["image"] for r in rows] == expected_images
    answered = {r["image"]: r for r in rows if "predictions" in r}
    assert set(answered) == {str(good), *map(str, inside)}
    names = {p["run_id"]: p["name"] for p in answered[str(good)]["predictions"]}
    departures = ("batch-size 32, lr 0.025", "batch-size 64, lr 0.05")  # the learning rate follows the batch
    expected = {r["run_id"]: f"lenet5 · 1 ep · {d} · {short_id(r['run_id'])}" for r, d in zip(two_lenets, departures)}
    assert names == expected
    errors = {r["image"]: r["error"] for r in rows if "error" in r}
    assert errors[str(tmp_path / "corrupt.png")].endswith("the image file is truncated or corrupt")
    assert errors[str(tmp_path / "empty.png")].endswith("the file is empty")
    assert "not a PNG, JPEG, WebP, GIF, BMP or TIFF image" in errors[str(tmp_path / "notes.txt")]
    assert errors[str(tmp_path / "blank.png")].endswith("nothing drawn")
    assert "cannot read" in errors[str(tmp_path / "missing.png")]
    assert "no image files in this folder" in errors[str(tmp_path / "empty-folder")]
    assert sorted(err.strip().splitlines()) == sorted(f"error: {e}" for e in errors.values())

    code, out, err = cli(capsys, "predict", *argv, "--dataset", "mnist")
    assert code == 2 and len(err.strip().splitlines()) == len(errors)
    for image in answered:
        assert f"{image}\n" in out
    for name in expected.values():
        assert name in out
    assert "corrupt.png" not in out  # its one line is on stderr

    code, out, _ = cli(capsys, "predict", str(good), str(folder), "--dataset", "mnist", "--best-per-model", "--json")
    best = max(two_lenets, key=lambda r: (r["test_accuracy"], r["finished_at"]))  # the newest of equals
    assert code == 0 and [[p["run_id"] for p in r["predictions"]] for r in json.loads(out)] == [[best["run_id"]]] * 3


def test_your_own_run_of_a_model_answers_before_the_zoos_better_one():
    from convnets.predict import choose_runs

    def summary(run_id, model, accuracy, zoo, finished_at):
        return {"run_id": run_id, "model": model, "dataset": "mnist", "state": "finished", "test_accuracy": accuracy,
                "zoo": zoo, "finished_at": finished_at, "at_chance": False}

    rows = [summary("zoo-lenet", "lenet5", 0.99, True, 1.0), summary("mine-old", "lenet5", 0.95, False, 2.0),
            summary("mine-new", "lenet5", 0.93, False, 3.0), summary("zoo-vgg", "vgg", 0.995, True, 1.0)]
    assert choose_runs(rows, best_per_model=True) == ["mine-old", "zoo-vgg"]  # yours first, then the best of yours
    assert choose_runs(rows) == ["zoo-lenet", "mine-old", "mine-new", "zoo-vgg"]
