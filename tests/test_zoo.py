import json
import shlex
import shutil

import pytest
import torch
from safetensors.torch import load_file

from convnets import attack, snapshots, zoo
from convnets.cli import build_parser, config_from_args, main
from convnets.errors import ConvnetsError
from convnets.store import RunStore
from convnets.study import STUDY_SECONDS

TINY = [
    zoo.Entry("lenet5", "cifar10", (("epochs", 2), ("batch_size", 50), ("normalize", "zca"))),  # as ALL-CNN-C may
    zoo.Entry("ref_lenet", "cifar10", (("epochs", 1),), cpu_friendly=False),
]


@pytest.fixture
def tiny_zoo(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "ENTRIES", TINY)
    return tmp_path / "zoo"


def test_build_ships_compact_runs_and_a_results_table(tiny_zoo, data_dir, capsys):
    superseded, other = tiny_zoo / "runs" / "lenet5-cifar10-0123456789", tiny_zoo / "runs" / "lenet5-mnist-0123456789"
    superseded.mkdir(parents=True)  # the run of an earlier pinned recipe for the same entry
    other.mkdir()
    header = [t for t in zoo.results_markdown([]).split("\n\n") if t.strip()]
    readme = tiny_zoo.parent / "README.md"  # beside the zoo: its tables are rewritten, its prose kept
    readme.write_text(f"# Zoo\n\n{header[0].strip()}\n| lenet5 | cifar10 | stale |\n\nAgainst the targets: prose.\n\n"
                      f"{header[1].strip()}\n| lenet5 | cifar10 | stale |\n\nThe end.\n")
    rows = zoo.build(["lenet5"], data_dir=str(data_dir), device="cpu", zoo_dir=tiny_zoo)
    assert not superseded.exists() and other.exists()
    other.rmdir()
    shipped, missing = rows
    assert shipped["shipped"] and not missing["shipped"]
    assert shipped["data_copy"] == "jpeg" and shipped["official_equivalent"] == pytest.approx(
        shipped["test_accuracy"] + 0.033)
    assert shipped["command"].startswith("python -m convnets train --model lenet5 --dataset cifar10 --epochs 2")
    weights = load_file(tiny_zoo / "runs" / shipped["run_id"] / "model.safetensors")
    dtypes = {"int8": {torch.int8, torch.float16, torch.float32}, "fp16": {torch.float16}, "fp32": {torch.float32}}
    assert {t.dtype for t in weights.values()} == dtypes[shipped["weights"]]
    assert weights["0.whiten"].shape == (3, 3, 5, 5) and "--normalize zca" in shipped["command"]  # the filter ships
    evaluation = json.loads((tiny_zoo / "runs" / shipped["run_id"] / "evaluation.json").read_text())
    moved = abs(evaluation["test_accuracy"] - evaluation["trained_weights_test_accuracy"])
    assert evaluation["weights"] == shipped["weights"] and (moved <= zoo.SHIP_TOLERANCE or shipped["weights"] == "fp32")
    shipped_run = RunStore(zoo=tiny_zoo).get(shipped["run_id"])  # the shipped weights' answers and robustness too
    assert shipped_run.predictions().accuracy == pytest.approx(evaluation["test_accuracy"])
    assert shipped_run.robustness()["clean_accuracy"] == pytest.approx(evaluation["test_accuracy"])
    fgsm = shipped_run.attack("fgsm")  # its FGSM figures, of the shipped weights, on the robustness subset
    # ε = 0 is the clean subset, in fp32 where the robustness figures are in bf16 on a CPU that has it: 2 images apart
    assert fgsm["eps"] == list(attack.EPS)
    assert fgsm["accuracy"][0] == pytest.approx(shipped_run.robustness()["clean_accuracy"], abs=0.002)
    assert snapshots.load(shipped_run) is not None  # the live view's replay travels with it
    assert shipped["target"] is None and missing["target"] == pytest.approx(0.798 - 0.033)
    table = (tiny_zoo / "results.md").read_text()
    assert "CIFAR-10 JPEG copy" in table and "| ref_lenet | cifar10 | – |" in table and "not trained yet" in table
    assert not shipped["tta"] and f"| {shipped['epochs']} | no | " in table  # the figure is of the images alone
    assert json.loads((tiny_zoo / "results.json").read_text()) == rows
    assert 0 < shipped["ece"] < 1 and shipped["clean_accuracy"] == pytest.approx(evaluation["test_accuracy"])
    calibration = f"| lenet5 | cifar10 | {shipped['ece']:.2%} | {shipped['clean_accuracy']:.2%} | "
    assert calibration in table and "ref_lenet | cifar10 | –" not in table.split("ECE")[1]  # shipped entries only
    text = readme.read_text()
    assert "stale" not in text and all(line in text for line in table.splitlines())
    assert text.startswith("# Zoo\n\n| model |") and "\n\nAgainst the targets: prose.\n\n| model |" in text
    assert text.endswith(" s |\n\nThe end.\n")

    # The zoo is a read-only store merged into listings; its model gives the stored accuracy again.
    store = RunStore(zoo=tiny_zoo)
    run = store.get(shipped["run_id"])
    assert run.readonly and run.finished and [r.run_id for r in store.finished("cifar10")] == [run.run_id]
    code = main(["eval", run.run_id, "--data-dir", str(data_dir), "--json"])
    evaluation = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and evaluation["test_accuracy"] == pytest.approx(shipped["test_accuracy"], abs=0.011)


def test_an_entry_that_would_break_the_size_budget_is_refused_and_loses_nothing(tiny_zoo, data_dir, monkeypatch):
    """Refused before training when its weights alone cannot fit, after training when its shipped files do not:
    then the trained run stays in the store and ships, untrained again, once there is room."""
    store = RunStore()
    build = dict(data_dir=str(data_dir), device="cpu", zoo_dir=tiny_zoo, store=store)
    monkeypatch.setattr(zoo, "SIZE_BUDGET", 60_000)  # LeNet-5 has 62,006 weights: 62 KB even in int8
    with pytest.raises(ConvnetsError, match=r"lenet5 \(cifar10\) does not fit the zoo: its 62,006 weights take "
                       r"at least 0\.1 MB even in int8, and the zoo has 0\.1 MB left of its 0 MiB budget"):
        zoo.build(["lenet5"], **build)
    assert store.runs() == []  # no training spent on it

    monkeypatch.setattr(zoo, "SIZE_BUDGET", 63_000)  # room for the weights, not for the rest of a shipped run
    with pytest.raises(ConvnetsError, match=r"does not fit the zoo: it takes 0\.\d MB in (int8|fp16|fp32); the "
                       r"trained run stays in your store"):
        zoo.build(["lenet5"], **build)
    [run] = store.finished()
    assert not (tiny_zoo / "runs").exists() or list((tiny_zoo / "runs").iterdir()) == []  # nor half a copy
    trained = (run.path / "history.json").stat().st_mtime_ns

    monkeypatch.setattr(zoo, "SIZE_BUDGET", 32 * 2**20)
    shipped, _ = zoo.build(["lenet5"], **build)
    assert shipped["shipped"] and shipped["run_id"] == run.run_id
    assert (run.path / "history.json").stat().st_mtime_ns == trained  # shipped as trained, not trained again


@pytest.mark.parametrize("entry", zoo.ENTRIES, ids=zoo.entry_name)
def test_an_entrys_train_command_asks_for_its_pinned_run(entry, data_dir):
    """The command the Leaderboard gives for an entry the zoo cannot ship makes the zoo's own run, not a cousin."""
    argv = shlex.split(zoo.train_command(entry).replace("DIR", str(data_dir)))[3:]
    config = config_from_args(build_parser().parse_args(argv))
    assert config == entry.config(config.data_copy)


def test_too_big_is_whether_the_weights_alone_outgrow_what_the_budget_leaves(tiny_zoo, data_dir, monkeypatch):
    lenet = TINY[0]  # 62,006 weights: 62 KB even in int8
    monkeypatch.setattr(zoo, "SIZE_BUDGET", 62_005)
    assert zoo.too_big(lenet, tiny_zoo)
    monkeypatch.setattr(zoo, "SIZE_BUDGET", 70_000)
    assert not zoo.too_big(lenet, tiny_zoo)
    (tiny_zoo / "runs" / "other-run").mkdir(parents=True)
    (tiny_zoo / "runs" / "other-run" / "model.safetensors").write_bytes(bytes(10_000))  # another entry's files
    assert zoo.too_big(lenet, tiny_zoo)
    shutil.move(tiny_zoo / "runs" / "other-run", tiny_zoo / "runs" / "lenet5-cifar10-0123456789")
    assert not zoo.too_big(lenet, tiny_zoo)  # its own earlier run is replaced, not added to


def test_unknown_zoo_entry(tiny_zoo):
    with pytest.raises(ConvnetsError, match="not in the zoo: alexnet"):
        zoo.select(["alexnet"])


def test_the_shipped_zoo_is_the_pinned_recipes_and_its_table():
    """Every run in the repository's zoo is its entry's current recipe, and results.json and the tables of
    docs/results.md (results.md) describe exactly those."""
    runs = {p.name: json.loads((p / "config.json").read_text()) for p in (zoo.ZOO_DIR / "runs").iterdir()}
    for run_id, config in runs.items():
        entries = [e for e in zoo.ENTRIES if (e.model, e.dataset) == (config["model"], config["dataset"])]
        assert [e.config(config["data_copy"]).run_id for e in entries] == [run_id]
    table = json.loads((zoo.ZOO_DIR / "results.json").read_text())
    assert sorted(row["run_id"] for row in table if row["shipped"]) == sorted(runs)
    assert len(table) == len(zoo.ENTRIES)
    shown = (zoo.ZOO_DIR.parent / "docs" / "results.md").read_text()
    assert all(line in shown for line in (zoo.ZOO_DIR / "results.md").read_text().splitlines() if line)


def test_every_shipped_run_has_its_answers_and_its_robustness():
    """The dashboard compares the zoo's runs image by image and under corruption on a machine without the data: every
    shipped run carries its answer for each test image (in agreement with its evaluation) and its robustness."""
    from convnets.corruptions import SEVERITIES, names

    store = RunStore(zoo=zoo.ZOO_DIR)
    for run in (store.get(p.name) for p in sorted((zoo.ZOO_DIR / "runs").iterdir())):
        evaluation, predictions, measured = run.evaluation(), run.predictions(), run.robustness()
        assert predictions is not None and measured is not None, run.run_id
        assert len(predictions) == evaluation["test_images"] == 10_000
        per_class = [sum(row) for row in evaluation["confusion_matrix"]]
        assert [int((predictions.labels == c).sum()) for c in range(10)] == per_class, run.run_id
        # the same weights; the GPU entries were evaluated in bf16 there and are predicted in fp32 on the CPU here
        assert abs(predictions.accuracy - evaluation["test_accuracy"]) <= 0.001, run.run_id
        assert set(measured["accuracy"]) == set(names(run.config.dataset)) and measured["subset"] == 1000
        assert all(len(row) == SEVERITIES for row in measured["accuracy"].values())
        assert abs(measured["clean_accuracy"] - evaluation["test_accuracy"]) < 0.03  # a 1,000-image subset
        assert 0 < run.calibration()["ece"] < 0.2
        fgsm = run.attack("fgsm")
        assert fgsm is not None and fgsm["eps"][0] == 0, run.run_id  # ε = 0: fp32, the robustness in bf16
        # bf16 flips an image or three of the 1,000 that fp32 answers otherwise (ALL-CNN-C's fp16 weights: 876 vs 874)
        assert fgsm["accuracy"][0] == pytest.approx(measured["clean_accuracy"], abs=0.0031), run.run_id
    assert sum(f.stat().st_size for f in zoo.ZOO_DIR.rglob("*") if f.is_file()) < zoo.SIZE_BUDGET  # it travels


def test_every_shipped_runs_recorded_command_makes_exactly_its_configuration(data_dir):
    """The command a run records spells out every recipe field, so defaults changed since cannot change it."""
    import shlex

    from convnets.cli import build_parser, config_from_args
    from convnets.config import RunConfig

    for path in sorted((zoo.ZOO_DIR / "runs").iterdir()):
        config = RunConfig.from_dict(json.loads((path / "config.json").read_text()))
        argv = shlex.split(json.loads((path / "status.json").read_text())["command"])
        assert argv[:3] == ["python", "-m", "convnets"]
        argv[argv.index("--data-dir") + 1] = str(data_dir)  # the synthetic data holds the same copies
        assert config_from_args(build_parser().parse_args(argv[3:])) == config, path.name


def test_the_study_is_its_five_nets_with_the_zoos_recipes_and_fills_in_as_they_train(data_dir, monkeypatch):
    from convnets.train import train_run

    configs = zoo.study_configs("jpeg", seed=3)
    assert [c.model for c in configs] == ["ref_lenet", "ref_vgg", "ref_allcnn", "ref_resnet20", "ref_wrn14_2"]
    pinned = {e.model: e.config("jpeg") for e in zoo.ENTRIES if e.dataset == "cifar10"}
    assert all(c.seed == 3 and c.recipe == pinned[c.model].recipe and c.run_id != pinned[c.model].run_id
               for c in configs)

    tiny = [zoo.Entry(m, "cifar10", (("epochs", 1), ("batch_size", 50))) for m in STUDY_SECONDS]
    monkeypatch.setattr(zoo, "ENTRIES", tiny)
    store = RunStore()
    train_run(zoo.study_configs("jpeg", seed=1)[0], store=store, data_dir=str(data_dir), device="cpu")
    rows = zoo.study_table(store, "jpeg", seed=1)
    lenet, *others = rows
    assert lenet["state"] == "finished" and lenet["epochs_done"] == 1 and lenet["device"].startswith("cpu")
    assert lenet["difference"] == pytest.approx(lenet["test_accuracy"] + 0.033 - 0.798)
    assert lenet["study_seconds"] == 220.0 and lenet["train_seconds"] > 0
    assert all(r["state"] is None and r["difference"] is None for r in others)
