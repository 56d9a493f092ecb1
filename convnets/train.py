"""The training engine: device-resident data, no host sync inside the step, one run per configuration.

``train_run`` is the one entry point: it returns the cached run when the configuration was trained
before, resumes an interrupted run from its last completed epoch, and otherwise trains, evaluates and
stores. Randomness is derived from (seed, epoch), so a resumed run ends exactly where an uninterrupted
one would on the CPU.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data as datamod
from .config import Recipe, RunConfig
from .errors import ConvnetsError
from .evaluate import evaluate, final_report
from .models import get_model
from .store import Run, RunStore


class Cancelled(Exception):
    """Raised between steps when the caller's cancel() says so; the run keeps its last completed epoch."""


class Diverged(ConvnetsError):
    """The loss became NaN or infinite: the recipe (usually the learning rate) does not train this model."""


@dataclass
class Progress:
    epoch: int  # 1-based epoch being trained
    epochs: int
    step: int  # steps done in this epoch
    steps: int
    loss: float  # running mean of this epoch's training loss
    accuracy: float  # running training accuracy of this epoch
    images_per_second: float
    eta_seconds: float
    phase: str  # train | eval | done

    def to_dict(self) -> dict:
        return dict(self.__dict__)


ProgressFn = Callable[[Progress], None]


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, else Apple MPS, else the CPU; an explicit request must be available."""
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConvnetsError("--device cuda was asked for, but no CUDA GPU is available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ConvnetsError("--device mps was asked for, but Apple MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type


class Normalize(nn.Module):
    """Standardisation as part of the model, so a checkpoint carries its own input statistics."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        shape = (1, -1, 1, 1) if mean.dim() == 1 else (1, *mean.shape)
        self.register_buffer("mean", mean.reshape(shape).float())
        self.register_buffer("std", std.reshape(shape).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def input_stats(recipe: Recipe, train: datamod.Split) -> tuple[torch.Tensor, torch.Tensor]:
    if recipe.normalize == "channel":
        return datamod.channel_stats(train)
    if recipe.normalize == "pixel":
        return datamod.pixel_stats(train)
    if recipe.normalize == "unit":
        c = train.images.shape[1]
        return torch.zeros(c), torch.full((c,), 255.0)
    raise ConvnetsError(f"unknown normalisation '{recipe.normalize}' (channel, pixel or unit)")


def build_classifier(config: RunConfig, state: dict[str, torch.Tensor]) -> nn.Sequential:
    """The registry's network behind its input normalisation, with weights from a saved state dict."""
    net = get_model(config.model).build(config.dataset)
    model = nn.Sequential(Normalize(state["0.mean"][0], state["0.std"][0]), net)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model


def lr_at(step: int, total: int, recipe: Recipe) -> float:
    """One-cycle: linear warm-up to the peak, then linear decay to zero; cosine: half a cosine to zero."""
    t = step / max(total, 1)
    if recipe.schedule == "onecycle":
        w = recipe.warmup
        return recipe.lr * (0.1 + 0.9 * t / w if t < w else max(0.0, (1 - t) / (1 - w)))
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    if recipe.schedule == "constant":
        return recipe.lr
    raise ConvnetsError(f"unknown schedule '{recipe.schedule}' (onecycle, cosine or constant)")


def make_optimizer(model: nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay,
                               **fused)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)
    raise ConvnetsError(f"unknown optimizer '{recipe.optimizer}' (sgd or adam)")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    env = os.environ
    return Dist(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


@contextmanager
def process_group(dist: Dist, device: torch.device) -> Iterator[None]:
    """torch.distributed for torchrun launches: nccl between GPUs, gloo between CPU processes."""
    if dist.world == 1 or torch.distributed.is_initialized():
        yield
        return
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def train_run(
    config: RunConfig,
    *,
    store: RunStore | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    compile: bool = False,
    command: str | None = None,
    queue: Path | None = None,
    sync_bn: bool = False,
) -> tuple[Run, bool]:
    """Train a configuration or return its finished run; the flag says whether it came from the cache.

    With ``queue`` (a lock file shared by background jobs), training waits its turn for that lock, so jobs
    launched together run one after another instead of fighting over the cores. Under torchrun every rank
    trains its shard of each global batch (``sync_bn``: batch statistics over the global batch, CUDA only)
    and only rank 0 touches the store.
    """
    store = store or RunStore()
    cached = store.get(config.run_id)
    if cached is not None and cached.finished:
        return cached, True
    dist = dist_from_env()
    if config.recipe.batch_size % dist.world:
        raise ConvnetsError(f"the batch size {config.recipe.batch_size} must divide among {dist.world} processes")
    dev = pick_device(device)
    if dev.type == "cuda" and dist.world > 1:
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    if sync_bn and dist.world > 1 and dev.type != "cuda":
        raise ConvnetsError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
    job = _Job(config, data_dir, dev, dist, progress, cancel, compile, command, sync_bn)
    with process_group(dist, dev):
        if not dist.main:
            job.train(None)
            return Run(store.runs_dir / config.run_id), False
        run = store.create(config)
        run._writable()
        with run.lock():
            if run.finished:  # another process trained it while we waited for the lock
                job.share_start(None, [], skip=True)
                return run, True
            try:
                run.set_status("queued", pid=os.getpid(), **_resume_fields(run))
                with wait_turn(queue, cancel):
                    job.train(run)
            except Cancelled:
                run.set_status("cancelled", error="cancelled by the user", **_resume_fields(run))
                raise
            except KeyboardInterrupt:
                run.set_status("cancelled", error="interrupted", **_resume_fields(run))
                raise
            except ConvnetsError as e:
                run.set_status("failed", error=str(e), **_resume_fields(run))
                raise
            except Exception as e:
                run.set_status("failed", error=f"{type(e).__name__}: {e}", **_resume_fields(run))
                raise
    return run, False


@contextmanager
def wait_turn(queue: Path | None, cancel: Callable[[], bool] | None) -> Iterator[None]:
    """Hold the queue's lock (when there is a queue), polling so a queued job can still be cancelled."""
    if queue is None:
        yield
        return
    queue.parent.mkdir(parents=True, exist_ok=True)
    with open(queue, "a+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancel is not None and cancel():
                    raise Cancelled() from None
                time.sleep(0.5)
        yield


def _resume_fields(run: Run) -> dict:
    return {"epochs_done": len(_history_or_none(run) or [])}


def _history_or_none(run: Run) -> list[dict] | None:
    """The completed epochs, or None when history.json is unreadable (the run then starts over)."""
    try:
        return run.history()
    except ConvnetsError:
        return None


@dataclass
class _Job:
    """One training of one configuration in this process; ``run`` is None on ranks other than 0."""

    config: RunConfig
    data_dir: str | None
    device: torch.device
    dist: Dist
    progress: ProgressFn | None
    cancel: Callable[[], bool] | None
    compile: bool
    command: str | None
    sync_bn: bool = False

    def share_start(self, resume: dict | None, history: list[dict], skip: bool = False) -> tuple:
        """Rank 0 tells the other ranks where training starts (or that there is nothing to train)."""
        if self.dist.world == 1:
            return resume, history, skip
        message = [(resume, history, skip)]
        torch.distributed.broadcast_object_list(message, src=0)
        return message[0]

    def train(self, run: Run | None) -> None:
        config, recipe, device, dist = self.config, self.config.recipe, self.device, self.dist
        status = {"pid": os.getpid(), "device": describe_device(device), "world_size": dist.world,
                  "command": self.command}
        if run is not None:
            run.set_status("running", phase="loading data", **status)
        data = datamod.load(config.dataset, self.data_dir)
        if data.copy != config.data_copy:
            raise ConvnetsError(f"the data in {self.data_dir} is the {data.copy} copy, but the run asks for "
                                f"{config.data_copy}")
        torch.manual_seed(config.seed)
        net = get_model(config.model).build(config.dataset)
        model = nn.Sequential(Normalize(*input_stats(recipe, data.train)), net).to(device)
        status.update(params=sum(p.numel() for p in net.parameters()), phase="training")
        train, test = data.train.to(device), data.test.to(device)
        optimizer = make_optimizer(model, recipe, device)
        resume = run.load_resume() if run is not None else None
        done = _history_or_none(run) if resume is not None else None
        if done is None or resume["epoch"] != len(done):
            resume, done = None, []  # no resume point, or it and the history disagree: start over, never guess
        resume, history, skip = self.share_start(resume, done)
        if skip:
            return
        if resume is not None:
            model.load_state_dict(resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
        if use_channels_last(device):
            model = model.to(memory_format=torch.channels_last)
        trained = model
        if dist.world > 1:
            if self.sync_bn:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ids = [device.index] if device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        step_fn = _make_step(trained, optimizer, recipe, device, self.compile)
        shard = (dist.rank, dist.world) if dist.world > 1 else None
        n = len(train)
        steps_per_epoch = n // recipe.batch_size if shard else math.ceil(n / recipe.batch_size)
        total_steps = steps_per_epoch * recipe.epochs
        for epoch in range(len(history) + 1, recipe.epochs + 1):
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            torch.manual_seed(config.seed * 1_000_003 + epoch + dist.rank)  # dropout: the global generator
            model.train()
            totals = torch.zeros(2, device=device)  # loss sum and hits stay on the device: no sync per step
            seen, t0, last_report = 0, time.perf_counter(), 0.0
            batches = datamod.batches(train, recipe.batch_size, augment=recipe.augment, shuffle=True,
                                      generator=gen, shard=shard)
            for step, (x, y) in enumerate(batches, start=1):
                if self.cancel is not None and self.cancel():
                    raise Cancelled()
                lr = lr_at((epoch - 1) * steps_per_epoch + step - 1, total_steps, recipe)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, hits = step_fn(x, y)
                totals += torch.stack([loss.detach().float() * len(y), hits.float()])
                seen += len(y)
                now = time.perf_counter()
                if run is not None and (now - last_report > 0.5 or step == steps_per_epoch):
                    last_report = now
                    self._report(run, status, epoch, step, steps_per_epoch, [*totals.tolist(), seen], now - t0, n)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            totals = torch.cat([totals, totals.new_tensor([seen])])
            if dist.world > 1:
                torch.distributed.all_reduce(totals)
            loss_sum, correct, seen = totals.tolist()
            train_loss = loss_sum / seen
            if not math.isfinite(train_loss):
                raise Diverged(f"training diverged in epoch {epoch} (loss {train_loss}); try a lower learning rate")
            if run is None:
                continue
            scores = evaluate(model, test, device)
            history.append({
                "epoch": epoch, "train_loss": train_loss, "train_accuracy": correct / seen,
                "test_loss": scores["loss"], "test_accuracy": scores["accuracy"], "lr": lr,
                "seconds": round(seconds, 3), "images": int(seen), "images_per_second": round(seen / seconds, 1),
                "wall_seconds": round(sum(h["seconds"] for h in history) + seconds, 3),
            })
            run.save_resume({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()})
            run.write("history.json", history)
            run.set_status("running", progress=progress_dict(epoch, recipe.epochs, steps_per_epoch, steps_per_epoch,
                                                              train_loss, seen / seconds, 0.0), **status)
        if run is None:
            return
        if self.progress is not None:
            last = history[-1]
            self.progress(Progress(recipe.epochs, recipe.epochs, steps_per_epoch, steps_per_epoch,
                                   last["train_loss"], last["train_accuracy"], last["images_per_second"], 0.0, "eval"))
        run.set_status("running", **{**status, "phase": "evaluating"})
        report, mistake_images = final_report(model, data, device)
        run.save_mistakes(mistake_images)
        run.write("evaluation.json", report)
        run.save_model(model)
        run.set_status("finished", finished_at=time.time(), **{**status, "phase": "done"})
        (run.path / "resume.pt").unlink(missing_ok=True)

    def _report(self, run: Run, status: dict, epoch: int, step: int, steps: int, totals: list[float],
                elapsed: float, n: int) -> None:
        """Live progress for the terminal and the dashboard (one host sync every half second, not per step)."""
        loss_sum, correct, seen = totals
        epochs = self.config.recipe.epochs
        rate = seen * self.dist.world / elapsed
        eta = ((epochs - epoch) * n + n - seen * self.dist.world) / rate
        if self.progress is not None:
            self.progress(Progress(epoch, epochs, step, steps, loss_sum / seen, correct / seen, rate, eta, "train"))
        run.set_status("running", progress=progress_dict(epoch, epochs, step, steps, loss_sum / seen, rate, eta),
                       **status)


def progress_dict(epoch: int, epochs: int, step: int, steps: int, loss: float, rate: float, eta: float) -> dict:
    return {"epoch": epoch, "epochs": epochs, "step": step, "steps": steps, "loss": loss,
            "images_per_second": rate, "eta_seconds": eta}


def use_channels_last(device: torch.device) -> bool:
    """NHWC activations unless CONVNETS_CHANNELS_LAST=0: GPU tensor cores want them, and on the CPU oneDNN's
    convolutions train 7-24 % faster in them than in NCHW (bench/train_speed.py --variants channels-last on
    2 cores: ResNet-20 1.13-1.16x, LeNet-5 1.16-1.24x, the reference nets 1.10x, ResNet-9 1.07x)."""
    return device.type != "cpu" or os.environ.get("CONVNETS_CHANNELS_LAST", "1") != "0"


def _make_step(model: nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe, device: torch.device,
               compile: bool) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """One optimisation step that returns device tensors only: no .item(), so no host-device sync."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    channels_last = use_channels_last(device)
    forward = torch.compile(model) if compile else model

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = forward(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss, (logits.argmax(1) == y).sum()

    return step
