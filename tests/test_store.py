import dataclasses
import json
import os

import pandas as pd
import pytest

from convnets.config import Recipe, RunConfig
from convnets.errors import ConvnetsError
from convnets.models import default_recipe, get_model
from convnets.store import Run, RunStore, atomic_write, check_run_id


def make_run(store: RunStore, model: str = "lenet5", seed: int = 0) -> Run:
    return store.create(RunConfig(model, "mnist", Recipe(epochs=1), seed=seed))


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write(path, b"old")

    def boom(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left behind


@pytest.mark.parametrize("bad", ["../../etc", "lenet5-mnist-../..", "a/b", "", "LENET-mnist-0123456789"])
def test_run_ids_cannot_escape_the_store(bad):
    with pytest.raises(ConvnetsError, match="not a run id"):
        check_run_id(bad)
    with pytest.raises(ConvnetsError):
        RunStore().get(bad)


def test_run_id_depends_on_every_field():
    a = RunConfig("lenet5", "mnist", Recipe(epochs=1))
    assert a.run_id == RunConfig.from_dict(json.loads(json.dumps(a.to_dict()))).run_id
    assert a.run_id != RunConfig("lenet5", "mnist", Recipe(epochs=1), seed=1).run_id
    assert a.run_id != RunConfig("lenet5", "mnist", Recipe(epochs=1, lr=0.2)).run_id
    check_run_id(a.run_id)


def test_damaged_runs_are_listed_and_the_rest_load():
    store = RunStore()
    good, bad = make_run(store, seed=1), make_run(store, seed=2)
    good.set_status("failed", error="x")
    (bad.path / "config.json").write_text('{"model": "lenet5", "data')
    bad.set_status("finished")
    states = {r.run_id: r.status()["state"] for r in store.runs()}
    assert states == {good.run_id: "failed", bad.run_id: "damaged"}
    assert store.finished() == []
    assert bad.summary()["state"] == "damaged" and "config.json" in bad.summary()["error"]


def test_finished_without_weights_is_damaged():
    run = make_run(RunStore())
    run.set_status("finished")
    assert run.status()["state"] == "damaged"


def test_stale_running_status_reads_as_interrupted():
    run = make_run(RunStore())
    with run.lock():
        run.set_status("running", pid=os.getpid())
        assert run.status()["state"] == "running"
        with run.lock(wait=False) as got:
            assert got is False  # a second trainer cannot take it
    assert run.status()["state"] == "interrupted"


def test_zoo_is_read_only_and_merged(tmp_path):
    zoo = tmp_path / "zoo"
    zoo_store = RunStore(home=zoo)  # build a zoo the way the zoo command does: a store root
    zoo_run = make_run(zoo_store)
    zoo_run.set_status("failed")
    user = make_run(RunStore(), seed=5)
    store = RunStore(zoo=zoo)
    listed = {r.run_id: r.readonly for r in store.runs()}
    assert listed == {zoo_run.run_id: True, user.run_id: False}
    same = store.create(zoo_run.config)
    assert same.readonly
    with pytest.raises(ConvnetsError, match="read-only"):
        same.set_status("running")


@pytest.mark.parametrize("form", ["fp32", "fp16", "int8"])
def test_weight_forms_round_trip(form):
    """int8 keeps conv and linear weights within half a quantisation step of each output channel's range."""
    import torch

    from convnets.models.classifier import Normalize

    run = RunStore().create(RunConfig("resnet20", "cifar10", Recipe(epochs=1)))
    torch.manual_seed(0)
    net = get_model("resnet20").build("cifar10")
    model = torch.nn.Sequential(Normalize(torch.full((3,), 120.0), torch.full((3,), 60.0)), net)
    for m in model.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.weight.data.uniform_(0.5, 1.5)
    run.save_model(model, form)
    assert run.weights_form() == form
    loaded = run.load_model()
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        a, b = a.float(), b.float()
        if form == "int8" and a.dim() >= 2 and not name.startswith("0."):
            step = a.abs().flatten(1).amax(1) / 127
            assert ((a - b).abs().flatten(1) <= step[:, None] / 2 + 1e-7).all(), name
        else:
            assert torch.allclose(a, b, rtol={"fp32": 0, "fp16": 1e-3, "int8": 1e-3}[form], atol=1e-6), name
    size = (run.path / "model.safetensors").stat().st_size
    assert size < {"fp32": 1.2e6, "fp16": 0.6e6, "int8": 0.4e6}[form]
    with pytest.raises(ConvnetsError, match="unknown weight form"):
        run.save_model(model, "int4")


def test_a_run_config_written_and_read_back_keeps_its_run_id(tmp_path):
    config = RunConfig("resnet20", "cifar10", get_model("resnet20").recipes["cifar10"].replace(lr=0.05), seed=3,
                       data_copy="jpeg")
    config.write(tmp_path / "run.json")
    again = RunConfig.read(tmp_path / "run.json")
    assert again == config and again.run_id == config.run_id


@pytest.mark.parametrize("content", ["{", "[]", '{"model": "lenet5"}', '{"model": 5, "dataset": "mnist", '
                                     '"recipe": {"epochs": 1}, "seed": "x", "data_copy": "official"}'])
def test_a_malformed_run_config_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ConvnetsError, match="not a run configuration"):
        RunConfig.read(path)


def test_seed_groups_hold_runs_identical_but_for_the_seed():
    same = [RunConfig("lenet5", "mnist", Recipe(epochs=1), seed=seed) for seed in (0, 1, 12345)]
    base = same[0]
    assert len({c.group_id for c in same}) == 1 and len({c.run_id for c in same}) == 3
    others = [RunConfig("lenet5", "mnist", Recipe(epochs=2)), RunConfig("lenet5", "mnist", Recipe(epochs=1, lr=0.2)),
              RunConfig("lenet5", "cifar10", Recipe(epochs=1)), RunConfig("resnet20", "mnist", Recipe(epochs=1)),
              RunConfig("lenet5", "mnist", Recipe(epochs=1), data_copy="jpeg")]
    assert all(o.group_id != base.group_id for o in others)
    assert len({o.group_id for o in others}) == len(others)


def test_seed_groups_that_share_the_shown_fields_differ_in_the_rest_of_the_recipe():
    from dashboard.tables import OTHER_RECIPE, seed_groups

    registered = default_recipe("resnet20", "cifar10")
    averaged = registered.replace(ema=0.99, norm_lr=4.0, tta=not registered.tta)
    summaries = [{"run_id": f"r{i}", "state": "finished", "model": "resnet20", "dataset": "cifar10",
                  "data_copy": "jpeg", "seed": seed, "test_accuracy": 0.8 + seed / 100, "group": group,
                  "recipe": dataclasses.asdict(recipe)}
                 for i, (group, recipe, seed) in enumerate([("a", registered, 0), ("a", registered, 1),
                                                            ("b", averaged, 0), ("b", averaged, 1)])]
    table = seed_groups(summaries).set_index("Group")
    assert pd.isna(table.loc["a", OTHER_RECIPE])  # as registered: shown as "–"
    flips = "tta" if averaged.tta else "no tta"
    assert table.loc["b", OTHER_RECIPE] == f"{flips}, ema 0.99, norm-lr 4"
    assert (table["Epochs"] == registered.epochs).all() and (table["LR"] == registered.lr).all()
    assert registered.replace(epochs=7, schedule="cosine").differences(registered, skip=["epochs"]) == "schedule cosine"
    # a run of a model that has left the registry is set against the recipe's own defaults
    gone = [{**s, "model": "retired_net"} for s in summaries[:2]]
    expected = registered.differences(Recipe(epochs=registered.epochs), ["epochs", "batch_size", "lr", "weight_decay"])
    got = seed_groups(gone).iloc[0][OTHER_RECIPE]
    assert got == expected if expected else pd.isna(got)


def test_a_sweep_is_every_combination_times_every_seed():
    from convnets.config import MAX_SWEEP, sweep

    base = RunConfig("lenet5", "mnist", Recipe(epochs=1, lr=0.1), seed=3)
    configs = sweep(base, [3, 4], {"lr": [0.1, 0.05], "epochs": [1, 2]})
    assert len(configs) == 8 == len({c.run_id for c in configs})
    assert {(c.recipe.lr, c.recipe.epochs, c.seed) for c in configs} == {
        (lr, e, s) for lr in (0.1, 0.05) for e in (1, 2) for s in (3, 4)}
    assert all(c.recipe.batch_size == 128 and c.model == "lenet5" for c in configs)
    assert len({c.group_id for c in configs}) == 4  # each recipe's two seeds form one group
    assert sweep(base, [3, 3], {"lr": [0.1, 0.1]}) == [base]  # repeats are one run
    with pytest.raises(ConvnetsError, match=f"that is 18 runs; a sweep queues at most {MAX_SWEEP}"):
        sweep(base, [0, 1, 2], {"lr": [0.1, 0.2, 0.3], "epochs": [1, 2]})
    with pytest.raises(ConvnetsError, match="a sweep varies only lr, epochs, batch_size, weight_decay, not momentum"):
        sweep(base, [0], {"momentum": [0.9]})
    with pytest.raises(ConvnetsError, match="weight-decay 0.5 is out of range"):
        sweep(base, [0], {"weight_decay": [0.0, 0.5]})


@pytest.mark.parametrize("zoo", ["shipped", ""])
def test_a_process_started_on_a_store_sees_that_store_from_any_folder(tmp_path, zoo):
    """A training job or a background conversion is another Python process: started with the store's
    environment from a folder where the package cannot be imported, it opens the same home and the same zoo (or
    none, where the server's store has none)."""
    import subprocess
    import sys

    zoo_root = tmp_path / "zoo" if zoo else ""
    store = RunStore(tmp_path / "home", zoo=zoo_root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = subprocess.run([sys.executable, "-c", "from convnets.store import RunStore; s = RunStore(); "
                           "print(s.home); print(s.zoo_dir)"], cwd=elsewhere, env=store.child_environment(),
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert seen == [str(store.home), str(store.zoo_dir)]
