import hashlib
import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file

from convnets import data as datamod
from convnets import device as devicemod
from convnets import train as trainmod
from convnets.config import RunConfig
from convnets.errors import ConvnetsError
from convnets.models import get_model
from convnets.predict import name_of
from convnets.reporting import short_id
from convnets.store import RunStore, trained_on
from convnets.train import Cancelled, Diverged, EpochStats, Objective, Trainer, collapsed, lr_at, momentum_at, train_run


def mnist_config(**recipe) -> RunConfig:
    base = get_model("lenet5").recipes["mnist"]
    return RunConfig("lenet5", "mnist", base.replace(**{"epochs": 3, "batch_size": 32, **recipe}))


def test_short_run_learns_and_is_cached(data_dir):
    run, cached = train_run(mnist_config(), data_dir=str(data_dir), device="cpu")
    assert not cached and run.finished
    history = run.history()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.7
    evaluation = run.evaluation()
    assert evaluation["test_accuracy"] > 0.6  # chance is 0.1
    confusion = torch.tensor(evaluation["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200
    assert evaluation["test_accuracy"] == pytest.approx(confusion.diag().sum().item() / 200)
    images, mistakes = run.mistakes()
    assert len(images) == len(mistakes) == min(32, 200 - confusion.diag().sum().item())
    assert all(m["true"] != m["predicted"] for m in mistakes)
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    summary = run.summary()
    assert summary["params"] == 61_706 and summary["epochs_done"] == 3 and summary["train_seconds"] > 0

    again, cached = train_run(mnist_config(), data_dir=str(data_dir), device="cpu")
    assert cached and again.run_id == run.run_id


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_same_seed_same_weights_and_resume_matches(data_dir, tmp_path, monkeypatch, ema):
    """A resumed run stores the weights an uninterrupted one does; with a weight average, that is the average,
    which the resume point must therefore carry too."""
    reference, _ = train_run(mnist_config(ema=ema), data_dir=str(data_dir), device="cpu")
    expected = load_file(reference.path / "model.safetensors")

    # Interrupt a second store's run of the same configuration when epoch 2 begins, then resume it.
    monkeypatch.setenv("CONVNETS_HOME", str(tmp_path / "other"))
    calls = {"n": 0}

    def cancel_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 19 + 3  # 600/32 = 19 steps per epoch; stop a few steps into epoch 2

    with pytest.raises(Cancelled):
        train_run(mnist_config(ema=ema), data_dir=str(data_dir), device="cpu", cancel=cancel_in_epoch_two)
    store = RunStore()
    run = store.get(reference.run_id)
    assert run.status()["state"] == "cancelled" and len(run.history()) == 1
    assert not (run.path / "model.safetensors").exists()

    resumed, cached = train_run(mnist_config(ema=ema), data_dir=str(data_dir), device="cpu")
    assert not cached and resumed.finished and len(resumed.history()) == 3
    got = load_file(resumed.path / "model.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_divergence_fails_the_run_without_a_model(data_dir, monkeypatch):
    # A learning rate out of range is refused before training (tests/test_inputs.py), so a NaN loss is simulated.
    forward = Objective.forward

    def nan_loss(self, x, y):
        loss, hits = forward(self, x, y)
        return loss * math.nan, hits

    monkeypatch.setattr(Objective, "forward", nan_loss)
    config = mnist_config(epochs=1)
    with pytest.raises(Diverged, match="diverged"):
        train_run(config, data_dir=str(data_dir), device="cpu")
    run = RunStore().get(config.run_id)
    status = run.status()
    assert status["state"] == "failed" and "learning rate" in status["error"]
    assert not (run.path / "model.safetensors").exists() and not run.finished


def _epochs(*losses_and_accuracies: tuple[float, float]) -> list[EpochStats]:
    return [EpochStats(loss, accuracy, 100, 1.0, 0.1) for loss, accuracy in losses_and_accuracies]


def test_a_collapse_is_two_epochs_at_chance_after_learning():
    chance = (math.log(10), 0.1)
    assert collapsed(_epochs((1.2, 0.6), chance, chance), 10)
    assert not collapsed(_epochs((1.2, 0.6), (1.0, 0.65), chance), 10)  # one epoch at chance may pass
    assert not collapsed(_epochs(chance, chance, chance), 10)  # a slow start has not learned anything yet
    assert not collapsed(_epochs((1.2, 0.6), chance, (2.2, 0.18)), 10)  # climbing out again


def _die_after_epoch_one(monkeypatch) -> None:
    """Every epoch after the first reports the loss and accuracy of a constant answer (ln 10, 10 %)."""
    train_epoch = Trainer.train_epoch

    def dying(self, split, epoch, on_step=None):
        stats = train_epoch(self, split, epoch, on_step)
        return stats if epoch == 1 else EpochStats(math.log(10), 0.1, stats.images, stats.seconds, stats.lr)

    monkeypatch.setattr(Trainer, "train_epoch", dying)


def test_a_collapsed_run_fails_with_its_curves_kept(data_dir, monkeypatch):
    # A ReLU net that died (the study's ALL-CNN at weight decay 1e-3 did, at epoch 21 of 50) is simulated: one
    # epoch that learns, then the loss of a constant answer, ln 10.
    _die_after_epoch_one(monkeypatch)
    config = mnist_config(epochs=6)
    with pytest.raises(Diverged, match="collapsed to chance at epoch 3: try a lower weight decay"):
        train_run(config, data_dir=str(data_dir), device="cpu")
    run = RunStore().get(config.run_id)
    assert run.status()["state"] == "failed" and "weight decay" in run.status()["error"]
    assert [h["epoch"] for h in run.history()] == [1, 2, 3] and not run.finished


def test_a_collapse_that_spans_a_resume_fails_the_resumed_run(data_dir, monkeypatch):
    # Epoch 2 at chance, then cancelled in epoch 3: the resumed run must still count epoch 2 (and epoch 1's
    # learning) from its history, or a dead net resumed after a stop would train to its last epoch.
    _die_after_epoch_one(monkeypatch)
    config = mnist_config(epochs=6)
    store = RunStore()

    def after_two_epochs() -> bool:
        run = store.get(config.run_id)
        return run is not None and len(run.history()) >= 2

    with pytest.raises(Cancelled):
        train_run(config, data_dir=str(data_dir), device="cpu", cancel=after_two_epochs)
    assert [h["epoch"] for h in store.get(config.run_id).history()] == [1, 2]
    with pytest.raises(Diverged, match="collapsed to chance at epoch 3"):
        train_run(config, data_dir=str(data_dir), device="cpu")
    assert [h["epoch"] for h in store.get(config.run_id).history()] == [1, 2, 3]


def test_cifar_folder_run_records_the_jpeg_copy(data_dir):
    base = get_model("lenet5").recipes["cifar10"]
    config = RunConfig("lenet5", "cifar10", base.replace(epochs=2, batch_size=50), data_copy="jpeg")
    run, _ = train_run(config, data_dir=str(data_dir), device="cpu")
    assert run.summary()["data_copy"] == "jpeg" and run.evaluation()["test_images"] == 100


def test_copy_mismatch_is_refused(data_dir):
    base = get_model("lenet5").recipes["cifar10"]
    config = RunConfig("lenet5", "cifar10", base.replace(epochs=1), data_copy="official")
    with pytest.raises(ConvnetsError, match="jpeg copy"):
        train_run(config, data_dir=str(data_dir), device="cpu")


def test_one_cycle_schedule_shape():
    recipe = get_model("resnet20").recipes["cifar10"].replace(lr=0.4, warmup=0.25, schedule="onecycle")
    lrs = [lr_at(s, 100, recipe) for s in range(101)]
    peak = max(range(101), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(0.4) and 20 <= peak <= 30
    assert lrs[0] == pytest.approx(0.04) and lrs[-1] == pytest.approx(0.0, abs=1e-9)
    cosine = recipe.replace(schedule="cosine")
    assert lr_at(50, 100, cosine) == pytest.approx(0.2) and math.isclose(lr_at(0, 100, cosine), 0.4)


def test_onecycle_cos_is_pytorchs_one_cycle_step_for_step():
    """The schedule the plain-PyTorch parity loop uses (OneCycleLR's defaults), learning rate and momentum."""
    recipe = get_model("resnet20").recipes["cifar10"].replace(lr=0.2, warmup=0.3, schedule="onecycle-cos")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.2, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=157)
    for step in range(157):
        group = opt.param_groups[0]
        assert lr_at(step, 157, recipe) == pytest.approx(group["lr"], rel=1e-9, abs=1e-12), step
        assert momentum_at(step, 157, recipe) == pytest.approx(group["momentum"], rel=1e-9), step
        opt.step()
        sched.step()
    linear = recipe.replace(schedule="onecycle")
    assert {momentum_at(s, 100, linear) for s in range(100)} == {0.9}


def test_the_trainer_sets_the_schedules_momentum(data_dir):
    data = datamod.load("mnist", data_dir)
    trainer = Trainer(mnist_config(schedule="onecycle-cos", warmup=0.3), data.train, torch.device("cpu"))
    trainer.set_schedule(0, 100)
    assert trainer.optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)
    adam_config = mnist_config(optimizer="adam", schedule="onecycle-cos", warmup=0.3, lr=1e-3)
    adam = Trainer(adam_config, data.train, torch.device("cpu"))
    adam.set_schedule(29, 100)
    assert adam.optimizer.param_groups[0]["betas"] == (pytest.approx(0.85), 0.999)


def test_warm_up_puts_back_weights_optimiser_and_random_state(data_dir):
    """Compiling runs real steps; afterwards training must start from the state it would have had without them,
    so a compiled run and an eager one train the same epochs."""
    data = datamod.load("mnist", data_dir)
    cpu = torch.device("cpu")
    config = mnist_config(optimizer="sgd", ema=0.9)
    plain, warmed = Trainer(config, data.train, cpu, compile=False), Trainer(config, data.train, cpu, compile=False)
    warmed.compiled = True  # the warm-up's bookkeeping without paying for an inductor compile on 2 cores
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert warmed.warm_up(data.train) > 0 and warmed.compile_seconds > 0
    assert torch.equal(torch.get_rng_state(), before)
    assert warmed.optimizer.state_dict()["state"] == {} and warmed.average.updates == 0
    a, b = plain.train_epoch(data.train, 1), warmed.train_epoch(data.train, 1)
    assert a.loss == b.loss and a.images == b.images == 600
    for x, y in zip([*plain.model.state_dict().values(), *plain.evaluated.state_dict().values()],
                    [*warmed.model.state_dict().values(), *warmed.evaluated.state_dict().values()]):
        assert torch.equal(x, y)


def computes_in(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    seen = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    hook = conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    trainer.step(x, y)
    hook.remove()
    return seen[0]


@pytest.mark.parametrize(("native", "switch", "fp32_s", "bf16_s", "precision", "why"), [
    (True, None, 0.2, 0.1, "bf16", "bf16: measured 2.0× faster here"),
    (True, None, 0.1, 0.2, "fp32", "fp32: bf16 measured slower here (0.50× fp32's speed)"),
    (True, None, 0.105, 0.1, "fp32", "fp32: bf16 measured hardly faster here (1.05× fp32's speed)"),
    (True, "0", 0.2, 0.1, "fp32", "CONVNETS_BF16=0"),
    (False, "1", 0.1, 0.2, "bf16", "CONVNETS_BF16=1"),
    (False, None, 0.2, 0.1, "fp32", "this CPU has no bf16 instructions"),
])
def test_a_cpu_trains_in_the_precision_it_measured_faster_once_and_the_run_says_why(
        data_dir, home, monkeypatch, native, switch, fp32_s, bf16_s, precision, why):
    """AVX-512 BF16 without AMX trains slower in bf16 than in fp32, AMX faster (issue 36): where the CPU has
    bf16 instructions the first run of a model times both and keeps the faster for every later run on this
    machine; CONVNETS_BF16 forces either; without the instructions it is fp32. The step really computes in the
    chosen precision and the run records it, with why."""
    monkeypatch.setattr(devicemod, "native_bf16", lambda: native)
    measured = []
    monkeypatch.setattr(trainmod, "time_steps",
                        lambda *args, **kwargs: measured.append(args[0].model) or (fp32_s, bf16_s))
    if switch is None:
        monkeypatch.delenv("CONVNETS_BF16", raising=False)
    else:
        monkeypatch.setenv("CONVNETS_BF16", switch)
    data = datamod.load("mnist", data_dir)
    cpu = torch.device("cpu")
    assert trainmod.choose_bf16(mnist_config(), data.train, cpu) == (precision == "bf16", why)
    assert trainmod.choose_bf16(mnist_config(epochs=2), data.train, cpu)[0] == (precision == "bf16")
    assert measured == (["lenet5"] if native and switch is None else [])  # once per model, batch and machine
    x, y = data.train.images[:8].float(), data.train.labels[:8]
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert computes_in(Trainer(mnist_config(), data.train, cpu), x, y) == expected
    summary = devicemod.precision_summary(cpu, home)
    assert summary.startswith(f"{precision} for lenet5 {fp32_s / bf16_s:.1f}×" if measured else f"{precision}: {why}")

    run, _ = train_run(mnist_config(), data_dir=str(data_dir), device="cpu")
    history = run.history()
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.7 and run.evaluation()["test_accuracy"] > 0.6
    assert run.status()["precision"] == precision and run.status()["precision_reason"] == why
    assert run.summary()["device"] == f"{run.status()['device']}, {precision}"
    other = "SSE41" if os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2" else "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", other)  # another machine kind for oneDNN: measured anew
    trainmod.choose_bf16(mnist_config(), data.train, cpu)
    assert measured == (["lenet5", "lenet5"] if native and switch is None else [])


def test_the_real_step_timing_runs_both_precisions(data_dir):
    data = datamod.load("mnist", data_dir)
    fp32, bf16 = trainmod.time_steps(mnist_config(), data.train, torch.device("cpu"), steps=1)
    assert fp32 > 0 and bf16 > 0


def test_runs_recorded_before_the_precision_say_what_the_engine_then_did():
    assert trained_on({"device": "cuda (NVIDIA H200)"}) == "cuda (NVIDIA H200), bf16"
    assert trained_on({"device": "cpu (2 threads)"}) == "cpu (2 threads), fp32"
    assert trained_on({"device": "cpu (2 threads)", "precision": "bf16"}) == "cpu (2 threads), bf16"
    assert trained_on({}) is None


def test_static_shapes_drop_only_the_last_partial_batch(data_dir):
    data = datamod.load("mnist", data_dir)
    sizes = [len(y) for _, y in datamod.batches(data.train, 64, drop_last=True)]
    assert sizes == [64] * (600 // 64)
    assert [len(y) for _, y in datamod.batches(data.train, 64)][-1] == 600 % 64
    trainer = Trainer(mnist_config(batch_size=64), data.train, torch.device("cpu"))
    assert not trainer.drop_last and trainer.steps_per_epoch(600) == 10 and not trainer.compiled


def test_flip_tta_averages_each_image_with_its_mirror_and_keeps_older_run_ids(data_dir):
    from convnets.config import Recipe
    from convnets.models.classifier import classifier

    plain = RunConfig("lenet5", "cifar10", Recipe(epochs=1), data_copy="jpeg")
    before = plain.to_dict()
    for added_later in ("tta", "ema", "norm_lr"):  # the configuration as runs stored it before these existed
        del before["recipe"][added_later]
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:10]
    assert plain.run_id == f"lenet5-cifar10-{digest}"
    assert RunConfig("lenet5", "cifar10", Recipe(epochs=1, ema=0.99), data_copy="jpeg").run_id != plain.run_id
    tta = RunConfig("lenet5", "cifar10", Recipe(epochs=1, tta=True), data_copy="jpeg")
    assert tta.run_id != plain.run_id
    with pytest.raises(ConvnetsError, match="mirrored augmentation"):
        Recipe(epochs=1, tta=True, augment="shift").check()

    torch.manual_seed(0)
    model = classifier(tta, torch.zeros(3), torch.ones(3)).eval()
    x = torch.rand(4, 3, 32, 32) * 255
    with torch.no_grad():
        expected = (model[1](x).softmax(1) + model[1](x.flip(-1)).softmax(1)) / 2
        assert torch.allclose(model(x).softmax(1), expected, atol=1e-6)
        assert torch.equal(model.train()(x), model[1](x))  # training sees one view, as the recipe augments it


def test_the_weight_average_follows_each_step_and_is_what_a_run_evaluates_and_stores(data_dir, monkeypatch):
    from convnets.averaging import WeightAverage
    from convnets.config import Recipe

    data = datamod.load("mnist", data_dir)
    config = mnist_config(ema=0.5)
    trainer = Trainer(config, data.train, torch.device("cpu"))
    assert trainer.evaluated is trainer.average.averaged and not trainer.evaluated.training
    expected = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for step, (x, y) in enumerate(datamod.batches(data.train, 32), start=1):
        if step > 12:
            break
        trainer.step(x, y)
        rate = min(0.5, step / (9 + step))  # warming up: 0.1, 0.18, 0.25, ... then the recipe's 0.5
        for name, weight in trainer.model.state_dict().items():
            expected[name] = rate * expected[name] + (1 - rate) * weight if weight.is_floating_point() else weight
    averaged, live = trainer.evaluated.state_dict(), trainer.model.state_dict()
    assert all(torch.allclose(averaged[k], expected[k], atol=1e-6) for k in expected)
    assert not all(torch.equal(averaged[k], live[k]) for k in live)

    made: list[WeightAverage] = []
    monkeypatch.setattr(trainmod, "WeightAverage", lambda model, decay: made.append(WeightAverage(model, decay))
                        or made[-1])
    run, _ = train_run(config, data_dir=str(data_dir), device="cpu")
    stored, kept = load_file(run.path / "model.safetensors"), made[-1].averaged.state_dict()
    assert stored.keys() == kept.keys() and all(torch.equal(stored[k], kept[k]) for k in kept)
    assert run.evaluation()["test_accuracy"] == pytest.approx(run.history()[-1]["test_accuracy"])
    assert Trainer(mnist_config(), data.train, torch.device("cpu")).average is None
    with pytest.raises(ConvnetsError, match="ema 1 is out of range"):
        Recipe(epochs=1, ema=1).check()


def test_batch_norm_can_learn_faster_with_the_same_decay_per_step(data_dir):
    from convnets.config import Recipe

    data = datamod.load("cifar10", data_dir)
    cpu = torch.device("cpu")
    base = get_model("resnet20").recipes["cifar10"].replace(epochs=2, batch_size=50)
    trainer = Trainer(RunConfig("resnet20", "cifar10", base.replace(norm_lr=4.0), data_copy="jpeg"), data.train, cpu)
    weights, norms = trainer.optimizer.param_groups
    bn = [p for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    assert {id(p) for p in norms["params"]} == {id(p) for p in bn} and len(bn) == 2 * 19  # 19 BNs in ResNet-20
    assert len(weights["params"]) + len(bn) == len(list(trainer.model.parameters()))
    lr = trainer.set_schedule(5, 24)
    assert weights["lr"] == lr and norms["lr"] == pytest.approx(4 * lr)
    assert norms["lr"] * norms["weight_decay"] == pytest.approx(weights["lr"] * weights["weight_decay"])
    x, y = next(trainer.batches(data.train, 1))
    assert torch.isfinite(trainer.step(x, y)[0])

    plain = Trainer(RunConfig("resnet20", "cifar10", base, data_copy="jpeg"), data.train, cpu)
    assert len(plain.optimizer.param_groups) == 1  # the default trains every parameter alike, as before
    no_bn = Trainer(mnist_config(norm_lr=4.0), datamod.load("mnist", data_dir).train, cpu)
    assert len(no_bn.optimizer.param_groups) == 1  # LeNet-5 has no batch norm: nothing to scale
    with pytest.raises(ConvnetsError, match="norm-lr 0 is out of range"):
        Recipe(epochs=1, norm_lr=0).check()


def test_a_run_that_measures_its_precision_fits_its_input_statistics_once(data_dir, home, monkeypatch):
    """Measuring bf16 against fp32 builds two throw-away trainers beside the run's own; all three take the run's
    input statistics, fit once (a whitening filter takes seconds on CIFAR-10), and the measurement is recorded."""
    monkeypatch.setattr(devicemod, "native_bf16", lambda: True)
    monkeypatch.delenv("CONVNETS_BF16", raising=False)
    fits, fit = [], datamod.input_stats
    monkeypatch.setattr(datamod, "input_stats", lambda *args: fits.append(args[0]) or fit(*args))
    run, _ = train_run(mnist_config(epochs=1, normalize="zca"), data_dir=str(data_dir), device="cpu")
    assert fits == ["zca"]
    assert " for lenet5 " in devicemod.precision_summary(torch.device("cpu"), home)
    assert "measured" in run.status()["precision_reason"]


def test_zca_whitening_decorrelates_neighbours_and_colours_and_travels_with_the_weights(data_dir):
    """'zca' fits a whitening filter on the training images: after it, neighbouring pixels and the colours of a
    pixel are far less correlated than after per-channel standardisation, at unit variance. The filter is part of
    the stored model (the predictions of a reloaded run are the trained one's); runs without it store none."""
    torch.manual_seed(0)
    noise = torch.randn(400, 1, 40, 40)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, stride=1)[..., 2:34, 2:34]  # strong neighbour correlation
    smooth = smooth / smooth.std()
    mixed = torch.cat([smooth, smooth + 0.6 * torch.randn_like(smooth), torch.randn_like(smooth)], 1)
    images = (128 + 60 * mixed / mixed.std()).clamp(0, 255).to(torch.uint8)
    train = datamod.Split(images, torch.zeros(400, dtype=torch.long))
    mean, std, whiten = datamod.input_stats("zca", train)
    assert whiten.shape == (3, 3, datamod.WHITEN_SIZE, datamod.WHITEN_SIZE)
    assert datamod.input_stats("channel", train)[2] is None
    from convnets.models.classifier import Normalize

    def correlations(x: torch.Tensor) -> tuple[float, float]:
        inner = x[:, :, 6:-6, 6:-6]
        neighbours = torch.corrcoef(torch.stack([inner[:, 0, :, :-1].flatten(), inner[:, 0, :, 1:].flatten()]))[0, 1]
        colours = torch.corrcoef(torch.stack([inner[:, 0].flatten(), inner[:, 1].flatten()]))[0, 1]
        return neighbours.item(), colours.item()

    with torch.no_grad():
        standardised, whitened = Normalize(mean, std)(images.float()), Normalize(mean, std, whiten)(images.float())
    (near_before, colour_before), (near_after, colour_after) = correlations(standardised), correlations(whitened)
    assert near_before > 0.7 and colour_before > 0.7
    assert abs(near_after) < 0.3 and abs(colour_after) < 0.3
    assert whitened[:, :, 6:-6, 6:-6].std((0, 2, 3)) == pytest.approx(torch.ones(3), abs=0.15)

    run, _ = train_run(mnist_config(epochs=1, normalize="zca"), data_dir=str(data_dir), device="cpu")
    stored = load_file(run.path / "model.safetensors")
    assert stored["0.whiten"].shape == (1, 1, datamod.WHITEN_SIZE, datamod.WHITEN_SIZE)
    trained = RunStore().get(run.run_id).load_model("cpu")
    digits = datamod.load("mnist", data_dir).test.images[:16].float()
    with torch.no_grad():
        assert trained[0].whiten is not None and torch.equal(trained[0].whiten, stored["0.whiten"])
        plain = torch.nn.Sequential(Normalize(stored["0.mean"][0], stored["0.std"][0]), trained[1])
        assert not torch.allclose(plain(digits), trained(digits), atol=1e-3)  # the filter is applied, not ignored
    named = f"lenet5 · 1 ep · batch-size 32, normalize zca · {short_id(run.run_id)}"  # what departs from the registry
    reopened = RunStore().get(run.run_id)
    assert name_of(reopened, reopened.config) == named
    channel, _ = train_run(mnist_config(epochs=1), data_dir=str(data_dir), device="cpu")
    assert "0.whiten" not in load_file(channel.path / "model.safetensors")
