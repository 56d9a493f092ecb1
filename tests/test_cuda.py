"""The engine's CUDA path: bf16 autocast, channels-last, CUDA graphs through torch.compile, resume on a GPU.

Skipped without a CUDA GPU (CI has none); `bench/gpu_run.py` runs this file first thing on the GPU machine.
Sized to take at most two minutes on one H200, most of it compiling.
"""

import pytest
import torch
from safetensors.torch import load_file

from convnets import data as datamod
from convnets.config import RunConfig
from convnets.models import get_model, models_for
from convnets.store import RunStore
from convnets.train import Cancelled, Trainer, train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
COMPILED = ("resnet20", "ref_vgg")  # compiling takes 15-30 s a model: two of them, one with dropout


def config(model: str, **recipe) -> RunConfig:
    base = get_model(model).recipes["cifar10"]
    return RunConfig(model, "cifar10", base.replace(**{"batch_size": 32, **recipe}), data_copy="jpeg")


@pytest.fixture(scope="module")
def cifar(synthetic_root, tmp_path_factory) -> datamod.Dataset:
    return datamod.load("cifar10", synthetic_root[0], cache_dir=tmp_path_factory.mktemp("cache"))


def losses_on_one_batch(trainer: Trainer, split: datamod.Split, steps: int) -> list[float]:
    """Steps on the same batch at a fifth of the peak rate: a net that learns fits it quickly."""
    for group in trainer.optimizer.param_groups:
        group["lr"] = trainer.recipe.lr / 5
    x, y = next(trainer.batches(split, 1))
    return [trainer.step(x, y)[0].item() for _ in range(steps)]


@pytest.mark.parametrize("model", [s.name for s in models_for("cifar10")])
def test_every_cifar_model_learns_in_bf16_channels_last(model, cifar):
    compiled = model in COMPILED
    trainer = Trainer(config(model), cifar.train, CUDA, compile=compiled)
    assert trainer.channels_last and trainer.compiled == compiled and trainer.drop_last
    train = cifar.train.to(CUDA)
    trainer.warm_up(train)
    losses = losses_on_one_batch(trainer, train, 20)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3]), losses


def test_compiled_and_eager_steps_agree(cifar):
    """Same weights, same batch: CUDA graphs change the speed, not the arithmetic (within bf16 rounding); the
    moving average of the weights, updated eagerly between graph replays, follows the same weights."""
    model = "resnet20"  # no dropout, whose random draws differ between the compiled and the eager graph
    train = cifar.train.to(CUDA)
    eager, graphs = (Trainer(config(model, ema=0.9), cifar.train, CUDA, compile=c) for c in (False, True))
    graphs.warm_up(train)  # restores the initial weights, and their average, after capturing
    for a, b in zip([*eager.model.state_dict().values(), *eager.evaluated.state_dict().values()],
                    [*graphs.model.state_dict().values(), *graphs.evaluated.state_dict().values()]):
        assert torch.equal(a, b)
    assert graphs.average.updates == 0
    x, y = next(eager.batches(train, 1))
    for _ in range(3):
        loss_e, hits_e = eager.step(x, y)
        loss_g, hits_g = graphs.step(x, y)
        assert loss_g.item() == pytest.approx(loss_e.item(), rel=3e-2, abs=3e-2)
        assert abs(hits_g.item() - hits_e.item()) <= 3
    for (name, a), b in zip(eager.model.named_parameters(), graphs.model.parameters()):
        assert torch.allclose(a.float(), b.float(), rtol=5e-2, atol=5e-3), name
    assert eager.average.updates == graphs.average.updates == 3
    for (name, a), b in zip(eager.evaluated.named_parameters(), graphs.evaluated.parameters()):
        assert torch.allclose(a.float(), b.float(), rtol=5e-2, atol=5e-3), name


def test_a_run_interrupted_on_cuda_resumes_and_loads_on_the_cpu(data_dir, tmp_path, monkeypatch):
    run_config = config("resnet20", epochs=3, batch_size=64)
    calls = {"n": 0}

    def cancel_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 400 // 64 + 2  # 6 full batches per epoch on CUDA (the partial one is dropped)

    with pytest.raises(Cancelled):
        train_run(run_config, data_dir=str(data_dir), device="cuda", cancel=cancel_in_epoch_two)
    run = RunStore().get(run_config.run_id)
    assert run.status()["state"] == "cancelled" and len(run.history()) == 1
    resumed, cached = train_run(run_config, data_dir=str(data_dir), device="cuda")
    assert not cached and resumed.finished
    history = resumed.history()
    assert [h["epoch"] for h in history] == [1, 2, 3] and all(h["images"] == 384 for h in history)
    status = resumed.status()
    assert status["compiled"] and status["compile_seconds"] > 0 and "cuda" in status["device"]

    # Everything the dashboard reads comes back on a machine without a GPU.
    weights = load_file(resumed.path / "model.safetensors", device="cpu")
    assert all(t.device.type == "cpu" and torch.isfinite(t.float()).all() for t in weights.values())
    model = resumed.load_model("cpu")
    test = datamod.load("cifar10", data_dir).test
    with torch.no_grad():
        accuracy = (model(test.images.float()).argmax(1) == test.labels).float().mean().item()
    stored = resumed.evaluation()["test_accuracy"]
    assert accuracy == pytest.approx(stored, abs=0.05)  # fp32 on the CPU against bf16 on the GPU
    assert resumed.summary()["epochs_done"] == 3


def test_zca_whitening_fits_on_the_gpu_as_on_the_cpu_and_trains_compiled(cifar):
    """The whitening filter fit from a split on the GPU is the CPU's, and a whitened net learns under CUDA graphs."""
    on_cpu = datamod.input_stats("zca", cifar.train)[2]
    on_gpu = datamod.input_stats("zca", cifar.train.to(CUDA))[2]
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-3)
    trainer = Trainer(config("resnet20", normalize="zca"), cifar.train.to(CUDA), CUDA, compile=True)
    train = cifar.train.to(CUDA)
    trainer.warm_up(train)
    losses = losses_on_one_batch(trainer, train, 20)
    assert all(torch.isfinite(torch.tensor(losses))) and sum(losses[-3:]) < sum(losses[:3]), losses
