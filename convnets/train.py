"""The training engine: device-resident data, no host sync inside the step, one run per configuration.

``train_run`` is the one entry point: it returns the cached run when the configuration was trained
before, resumes an interrupted run from its last completed epoch, and otherwise trains, evaluates and
stores. Randomness is derived from (seed, epoch), so a resumed run ends exactly where an uninterrupted
one would on the CPU.
"""

from __future__ import annotations

import copy
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
from .averaging import WeightAverage
from .config import SCHEDULES, Recipe, RunConfig
from .device import describe_device, pick_device, precision_rule, record_timing, recorded_timing, timing_key, verdict
from .errors import ConvnetsError
from .evaluate import evaluate, final_report
from .models import default_recipe, get_model
from .models.classifier import classifier
from .robustness import measure
from .schema import HistoryRow, Phase, Progress, State
from .snapshots import Snapshotter
from .snapshots import load as load_snapshots
from .store import Run, RunStore


class Cancelled(Exception):
    """Raised between steps when the caller's cancel() says so; the run keeps its last completed epoch."""


class Diverged(ConvnetsError):
    """The loss became NaN or infinite, or training collapsed to chance: the recipe does not train this model."""


ProgressFn = Callable[[Progress], None]


def lr_at(step: int, total: int, recipe: Recipe) -> float:
    """The learning rate at ``step`` of ``total``.

    onecycle: linear warm-up from a tenth of the peak, then linear decay to zero. onecycle-cos: PyTorch's
    ``OneCycleLR`` with its defaults (peak / 25 rising along a half cosine to the peak over ``warmup`` of the
    steps, then a half cosine down to peak / 25e4), step for step. cosine: half a cosine to zero.
    """
    t = step / max(total, 1)
    if recipe.schedule == "onecycle":
        w = recipe.warmup
        return recipe.lr * (0.1 + 0.9 * t / w if t < w else max(0.0, (1 - t) / (1 - w)))
    if recipe.schedule == "onecycle-cos":
        start = recipe.lr / 25
        return _one_cycle(step, total, recipe.warmup, (start, recipe.lr, start / 1e4))
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    if recipe.schedule == "constant":
        return recipe.lr
    raise ConvnetsError(f"unknown schedule '{recipe.schedule}' ({', '.join(SCHEDULES)})")


def momentum_at(step: int, total: int, recipe: Recipe) -> float:
    """The momentum (SGD) or first beta (Adam) at ``step``: onecycle-cos cycles it against the learning rate,
    from ``momentum`` + 0.05 down to ``momentum`` - 0.05 at the peak rate and back (OneCycleLR's 0.95 and 0.85
    around the default 0.9); every other schedule keeps the recipe's momentum."""
    if recipe.schedule != "onecycle-cos":
        return recipe.momentum
    high, low = recipe.momentum + 0.05, recipe.momentum - 0.05
    return _one_cycle(step, total, recipe.warmup, (high, low, high))


def _one_cycle(step: int, total: int, warmup: float, values: tuple[float, float, float]) -> float:
    """Half-cosine from values[0] to values[1] over the first ``warmup`` of the steps, then to values[2]; the
    phase boundaries are OneCycleLR's (steps ``warmup * total - 1`` and ``total - 1``)."""
    a, peak, b = values
    turn = warmup * total - 1
    if step <= turn:
        frac, lo, hi = step / max(turn, 1e-9), a, peak
    else:
        frac, lo, hi = (step - turn) / max(total - 1 - turn, 1e-9), peak, b
    return hi + (lo - hi) / 2 * (math.cos(math.pi * min(frac, 1.0)) + 1)


def make_optimizer(model: nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    groups = param_groups(model, recipe)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay,
                               **fused)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)
    raise ConvnetsError(f"unknown optimizer '{recipe.optimizer}' (sgd or adam)")


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """One group of every parameter; with a ``norm_lr`` other than 1, batch norm's scales and biases in a second
    group whose rate is ``lr_scale`` = norm_lr times the schedule's and whose weight decay is divided by it, so that
    decay shrinks them as much per step as before (airbench trains its BN biases 64 times faster so). The main group
    comes first: its rate is the schedule's, which the progress reports read."""
    norms = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    if recipe.norm_lr == 1 or not norms:
        return [{"params": list(model.parameters())}]
    return [{"params": [p for p in model.parameters() if id(p) not in norms]},
            {"params": [p for p in model.parameters() if id(p) in norms], "lr_scale": recipe.norm_lr,
             "lr": recipe.lr * recipe.norm_lr, "weight_decay": recipe.weight_decay / recipe.norm_lr}]


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
    compile: bool | None = None,
    command: str | None = None,
    queue: Path | None = None,
    sync_bn: bool = False,
    snapshots: bool = True,
) -> tuple[Run, bool]:
    """Train a configuration or return its finished run; the flag says whether it came from the cache.

    Everything a user can get wrong is checked before the store is written, so that bad input never leaves a
    failed run behind: the configuration's ranges, the model, the device, the data (loaded first) and a batch
    that fits in its training split.
    ``compile`` None compiles on a single CUDA device only (see ``Trainer``). With ``queue`` (a lock file
    shared by background jobs), training waits its turn for that lock, so jobs launched together run one after
    another instead of fighting over the cores. Under torchrun every rank trains its shard of each global batch
    (``sync_bn``: batch statistics over the global batch, CUDA only) and only rank 0 touches the store.
    ``snapshots``: keep the live snapshots of convnets.snapshots as it trains (they never change the result).
    """
    config.check()
    default_recipe(config.model, config.dataset)  # the model exists and takes the dataset
    dev = pick_device(device)
    store = store or RunStore()
    cached = store.get(config.run_id)
    if cached is not None and cached.finished:
        return cached, True
    dist = dist_from_env()
    if config.recipe.batch_size % dist.world:
        raise ConvnetsError(f"the batch size {config.recipe.batch_size} must divide among {dist.world} processes")
    if dev.type == "cuda" and dist.world > 1:
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    if sync_bn and dist.world > 1 and dev.type != "cuda":
        raise ConvnetsError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
    data = datamod.load_copy(config.dataset, config.data_copy, data_dir)
    check_batch(config.recipe, data)
    job = _Job(config, data, dev, dist, progress, cancel, compile, command, sync_bn, snapshots)
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
                run.set_status(State.QUEUED, pid=os.getpid(), **_resume_fields(run))
                with wait_turn(queue, cancel):
                    job.train(run)
            except Cancelled:
                run.set_status(State.CANCELLED, error="cancelled by the user", **_resume_fields(run))
                raise
            except KeyboardInterrupt:
                run.set_status(State.CANCELLED, error="interrupted", **_resume_fields(run))
                raise
            except ConvnetsError as e:
                run.set_status(State.FAILED, error=str(e), **_resume_fields(run))
                raise
            except Exception as e:
                run.set_status(State.FAILED, error=f"{type(e).__name__}: {e}", **_resume_fields(run))
                raise
    return run, False


def check_batch(recipe: Recipe, data: datamod.Dataset) -> None:
    """A batch larger than the training split would train on nothing (or, without dropping the last partial batch,
    on the whole split at a learning rate scaled for a batch it never sees)."""
    n = len(data.train)
    if recipe.batch_size > n:
        raise ConvnetsError(f"batch-size {recipe.batch_size} is out of range: allowed whole numbers [1, {n}] (the "
                            f"{data.name} training split here holds {n:,} images)")


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


class Objective(nn.Module):
    """A batch's training loss and its number of hits, as one module: compiled, the change to channels-last, the
    model, the loss and the hit count become one CUDA graph instead of a graph among a dozen eager kernels."""

    def __init__(self, model: nn.Module, label_smoothing: float, channels_last: bool):
        super().__init__()
        self.model, self.label_smoothing, self.channels_last = model, label_smoothing, channels_last

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), (logits.argmax(1) == y).sum()


@dataclass
class EpochStats:
    """One epoch's training figures, summed over every rank."""

    loss: float  # mean training loss
    accuracy: float  # training accuracy (on the augmented images)
    images: int
    seconds: float
    lr: float  # the learning rate of the epoch's last step


def collapsed(trail: list[EpochStats], classes: int) -> bool:
    """Whether training has collapsed to chance for good: the last two epochs at the loss of a constant output,
    ln(classes), after an epoch that had learned something. A net without batch norm whose ReLUs have all died
    (too much weight decay at the peak rate, say) stays there whatever the schedule does next, so its remaining
    epochs would be hours spent for nothing."""
    stuck = [s.loss >= 0.98 * math.log(classes) and s.accuracy < 1.5 / classes for s in trail[-2:]]
    learned = any(s.accuracy >= 2 / classes for s in trail[:-2])
    return len(stuck) == 2 and all(stuck) and learned


class Trainer:
    """A model, its optimiser and its training step on one device: what a run trains and a benchmark times.

    On CUDA the step runs under bf16 autocast on channels-last activations and, unless ``compile`` is False,
    the model is compiled with CUDA graphs (``torch.compile(mode="reduce-overhead")``, the fastest mode measured
    for these small nets): every training batch then has the same shape, because the last partial batch of an
    epoch is dropped, and nothing inside a step waits for the host. The optimiser stays eager (fused on CUDA)
    and its learning rate and momentum are Python floats, so the schedule never recompiles or re-captures
    anything. Evaluation runs the same weights eagerly: a second graph capture would cost more than it saves
    on 10,000 test images. On the CPU the step is eager unless ``compile`` asks otherwise, in bf16 autocast or in
    fp32 as ``bf16`` says; None: as ``device.precision_rule`` says, or where it leaves the choice to a
    measurement, as this machine's recorded one does (bf16 before any; ``choose_bf16`` measures). Where the recipe
    has an ``ema``, a moving average of the weights follows each step (``convnets.averaging``) and is what the run
    evaluates, snapshots and stores (``evaluated``); the resume point carries it.
    """

    def __init__(self, config: RunConfig, train: datamod.Split, device: torch.device, *,
                 compile: bool | None = None, dist: Dist = Dist(), sync_bn: bool = False, bf16: bool | None = None,
                 stats: datamod.InputStats | None = None):
        self.config, self.recipe, self.device, self.dist = config, config.recipe, device, dist
        stats = datamod.input_stats(self.recipe.normalize, train) if stats is None else stats
        torch.manual_seed(config.seed)
        self.model = classifier(config, *stats).to(device)
        self.params = sum(p.numel() for p in self.model[1].parameters())
        self.optimizer = make_optimizer(self.model, self.recipe, device)
        self.channels_last = use_channels_last(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.average = WeightAverage(self.model, self.recipe.ema) if self.recipe.ema else None
        trained: nn.Module = self.model
        if dist.world > 1:
            if sync_bn:
                trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
            ids = [device.index] if device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(trained, device_ids=ids)
        self.compiled = (device.type == "cuda" and dist.world == 1) if compile is None else compile
        self.graphs = self.compiled and device.type == "cuda"
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
        if self.compiled:  # each model is one more compiled version of Objective.forward; past dynamo's default of
            # 8 a process that trains many models (the zoo, the tests) would silently fall back to eager
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        objective = Objective(trained, self.recipe.label_smoothing, self.channels_last)
        self.objective = torch.compile(objective, mode="reduce-overhead" if self.graphs else None) if self.compiled \
            else objective
        self.bf16 = recorded_bf16(config, device) if bf16 is None else bf16
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        self.shard = (dist.rank, dist.world) if dist.world > 1 else None
        self.drop_last = device.type == "cuda" or dist.world > 1  # static shapes for CUDA graphs; equal shards
        self.compile_seconds = 0.0

    @property
    def precision(self) -> str:
        """What the run records: 'bf16' or 'fp32'."""
        return "bf16" if self.bf16 else "fp32"

    def steps_per_epoch(self, n: int) -> int:
        return n // self.recipe.batch_size if self.drop_last else math.ceil(n / self.recipe.batch_size)

    @property
    def evaluated(self) -> nn.Module:
        """The weights a run is evaluated, predicted and stored with: the moving average where the recipe keeps
        one, else the trained weights themselves."""
        return self.model if self.average is None else self.average.averaged

    def load_state(self, resume: dict) -> None:
        self.model.load_state_dict(resume["model"])
        self.optimizer.load_state_dict(resume["optimizer"])
        if self.average is not None:
            self.average.load_state_dict(resume["average"])

    def state(self, epoch: int) -> dict:
        state = {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        return state

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the loss and the number of hits as device tensors (no host sync). With
        CUDA graphs they live in the graph's memory until the next step: read or add them up before it."""
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast:
            loss, hits = self.objective(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return loss.detach(), hits

    def set_schedule(self, step: int, total: int) -> float:
        """The schedule's learning rate and momentum for this step, as floats: no recompilation, no sync."""
        lr, momentum = lr_at(step, total, self.recipe), momentum_at(step, total, self.recipe)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # resume points from before norm_lr have none
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            else:
                group["momentum"] = momentum
        return lr

    def batches(self, split: datamod.Split, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's shuffled, augmented batches; the draws depend on (seed, epoch) alone, so a resumed run
        sees the same images in the same order as an uninterrupted one."""
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return datamod.batches(split, self.recipe.batch_size, augment=self.recipe.augment, shuffle=True,
                               generator=gen, shard=self.shard, drop_last=self.drop_last)

    def warm_up(self, split: datamod.Split) -> float:
        """Compile the model and capture its CUDA graphs on a few real batches, then put the weights, the
        optimiser and the random state back: compile time is recorded apart from training time, and training
        starts from the same state as without compiling. Returns the seconds it took (0 when not compiled)."""
        if not self.compiled:
            return 0.0
        t0 = time.perf_counter()
        before = copy.deepcopy(self.state(0))
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.model.train()
        for _, (x, y) in zip(range(3), self.batches(split, 0)):  # CUDA graph trees: warm-up, capture, replay
            self.step(x, y)
        self._synchronize()
        self.load_state(before)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, self.device)
        self.compile_seconds = round(time.perf_counter() - t0, 3)
        return self.compile_seconds

    def train_epoch(self, split: datamod.Split, epoch: int,
                    on_step: Callable[[int, torch.Tensor, int, float], None] | None = None) -> EpochStats:
        """Train one epoch (1-based) of the recipe's schedule. ``on_step(step, totals, seen, elapsed)`` runs after
        each step, with ``totals`` the device tensor [loss sum, hits] of this rank so far (reading it syncs)."""
        torch.manual_seed(self.config.seed * 1_000_003 + epoch + self.dist.rank)  # dropout: the global generator
        self.model.train()
        steps = self.steps_per_epoch(len(split))
        total = steps * self.recipe.epochs
        totals = torch.zeros(2, device=self.device)  # loss sum and hits stay on the device: no sync per step
        loss_total, hit_total = totals[0], totals[1]
        seen, lr, t0 = 0, 0.0, time.perf_counter()
        for step, (x, y) in enumerate(self.batches(split, epoch), start=1):
            lr = self.set_schedule((epoch - 1) * steps + step - 1, total)
            loss, hits = self.step(x, y)
            loss_total.add_(loss, alpha=len(y))
            hit_total.add_(hits)
            seen += len(y)
            if on_step is not None:
                on_step(step, totals, seen, time.perf_counter() - t0)
        self._synchronize()
        seconds = time.perf_counter() - t0
        summed = torch.cat([totals, totals.new_tensor([seen])])
        if self.dist.world > 1:
            torch.distributed.all_reduce(summed)
        loss_sum, correct, images = summed.tolist()
        return EpochStats(loss_sum / images, correct / images, int(images), seconds, lr)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def recorded_bf16(config: RunConfig, device: torch.device) -> bool:
    """The precision without measuring: the rule, else this machine's measurement of the model, else bf16."""
    decided, _ = precision_rule(device)
    if decided is not None:
        return decided
    timing = recorded_timing(datamod.default_home(), _timing_key(config))
    return verdict(timing)[0] if timing else True


def _timing_key(config: RunConfig) -> str:
    spec = datamod.get_dataset(config.dataset)
    return timing_key(config.model, spec.shape, len(spec.classes), config.recipe.batch_size)


def choose_bf16(config: RunConfig, train: datamod.Split, device: torch.device,
                stats: datamod.InputStats | None = None) -> tuple[bool, str]:
    """Whether a run trains in bf16, and why. Where the CPU's flags cannot tell (it has bf16 instructions, which
    may still be slower than fp32), the model's step is timed in both at its first training on this machine and
    the faster kept in ``$CONVNETS_HOME/precision.json`` for every later run of that model and batch size."""
    decided, why = precision_rule(device)
    if decided is not None:
        return decided, why
    home, key = datamod.default_home(), _timing_key(config)
    timing = recorded_timing(home, key)
    if timing is None:
        fp32, bf16 = time_steps(config, train, device, stats=stats)
        record_timing(home, key, fp32, bf16)
        timing = {"fp32": fp32, "bf16": bf16}
    return verdict(timing)


def time_steps(config: RunConfig, train: datamod.Split, device: torch.device, steps: int = 4,
               stats: datamod.InputStats | None = None) -> tuple[float, float]:
    """The CPU seconds of one training step in fp32 and in bf16 on a batch of the split: the least over ``steps``
    steps of each, interleaved, after two warm-up steps each (oneDNN builds its kernels at the first). CPU time of
    the process, not wall time, and the least, not the median: other jobs on the same cores delay a step's clock
    but not its work, and on two busy cores wall times varied tenfold from one step to the next. The trainers are
    thrown away, and the run re-seeds everything it draws, so measuring leaves the run's result as it was. The
    input statistics (``stats``, else fit here once for both) are the run's own: a whitening filter takes seconds."""
    stats = datamod.input_stats(config.recipe.normalize, train) if stats is None else stats
    trainers = [Trainer(config, train, device, compile=False, bf16=bf16, stats=stats) for bf16 in (False, True)]
    x, y = next(datamod.batches(train, min(config.recipe.batch_size, len(train)), augment=config.recipe.augment))
    times: list[list[float]] = [[], []]
    for _ in range(steps + 2):
        for trainer, kept in zip(trainers, times):
            t0 = time.process_time()
            trainer.step(x, y)
            kept.append(time.process_time() - t0)
    return min(times[0][2:]), min(times[1][2:])


@dataclass
class _Job:
    """One training of one configuration in this process; ``run`` is None on ranks other than 0."""

    config: RunConfig
    data: datamod.Dataset
    device: torch.device
    dist: Dist
    progress: ProgressFn | None
    cancel: Callable[[], bool] | None
    compile: bool | None
    command: str | None
    sync_bn: bool = False
    snapshots: bool = True  # take live snapshots as it trains (convnets.snapshots)

    def share_start(self, resume: dict | None, history: list[dict], skip: bool = False) -> tuple:
        """Rank 0 tells the other ranks where training starts (or that there is nothing to train)."""
        if self.dist.world == 1:
            return resume, history, skip
        message = [(resume, history, skip)]
        torch.distributed.broadcast_object_list(message, src=0)
        return message[0]

    def train(self, run: Run | None) -> None:
        """Build, warm up, train the remaining epochs (a resume point after each), then finish."""
        config, device = self.config, self.device
        status = {"pid": os.getpid(), "device": describe_device(device), "world_size": self.dist.world,
                  "command": self.command}
        data = self.data
        stats = datamod.input_stats(config.recipe.normalize, data.train)  # once, for measuring and for training
        bf16, why = self._precision(run, stats)
        trainer = Trainer(config, data.train, device, compile=self.compile, dist=self.dist, sync_bn=self.sync_bn,
                          bf16=bf16, stats=stats)
        status.update(params=trainer.params, precision=trainer.precision, precision_reason=why,
                      phase=Phase.TRAINING, compiled=trainer.compiled)
        train, test = data.train.to(device), data.test.to(device)
        resume = run.load_resume() if run is not None else None
        done = _history_or_none(run) if resume is not None else None
        if done is None or resume["epoch"] != len(done):
            resume, done = None, []  # no resume point, or it and the history disagree: start over, never guess
        resume, history, skip = self.share_start(resume, done)
        if skip:
            return
        if resume is not None:
            trainer.load_state(resume)
        if trainer.compiled:
            if run is not None:
                run.set_status(State.RUNNING, **{**status, "phase": Phase.COMPILING})
            status["compile_seconds"] = trainer.warm_up(train)
        steps = trainer.steps_per_epoch(len(train))
        # every epoch so far, the same on every rank, so that a collapse spanning a resume is seen too
        trail = [EpochStats(h["train_loss"], h["train_accuracy"], h["images"], h["seconds"], h["lr"]) for h in history]
        snapshots = None
        if run is not None and self.snapshots:
            snapshots = Snapshotter(run, trainer.evaluated, get_model(config.model).cam_layer, test, data.classes)
            snapshots.keep_earlier(load_snapshots(run) if history else None)
        for epoch in range(len(history) + 1, config.recipe.epochs + 1):
            trained_before = sum(h["seconds"] for h in history)
            on_step = self._reporter(run, status, epoch, steps, len(train), trainer, snapshots, trained_before)
            stats = trainer.train_epoch(train, epoch, on_step)
            if not math.isfinite(stats.loss):
                raise Diverged(f"training diverged in epoch {epoch} (loss {stats.loss}); try a lower learning rate")
            trail.append(stats)
            if run is not None:
                scores = evaluate(trainer.evaluated, test, device, cpu_bf16=trainer.bf16)
                history.append(HistoryRow(
                    epoch=epoch, train_loss=stats.loss, train_accuracy=stats.accuracy, test_loss=scores["loss"],
                    test_accuracy=scores["accuracy"], lr=stats.lr, seconds=round(stats.seconds, 3),
                    images=stats.images, images_per_second=round(stats.images / stats.seconds, 1),
                    wall_seconds=round(sum(h["seconds"] for h in history) + stats.seconds, 3)).to_dict())
                run.save_resume(trainer.state(epoch))
                run.write("history.json", history)
                done = Progress(epoch, config.recipe.epochs, steps, steps, stats.loss, stats.accuracy,
                                stats.images / stats.seconds, 0.0)
                run.set_status(State.RUNNING, progress=done.to_dict(), **status)
            if collapsed(trail, len(data.classes)):
                best = max(s.accuracy for s in trail)
                raise Diverged(f"training collapsed to chance at epoch {epoch}: try a lower weight decay or learning "
                               f"rate (loss {stats.loss:.3f} in epochs {epoch - 1}-{epoch}, that of the same answer "
                               f"for every image, after {best:.1%} training accuracy: its units died)")
        if snapshots is not None:
            snapshots.close()
        if run is not None:
            self._finish(run, trainer.evaluated, data, history, status)

    def _precision(self, run: Run | None, stats: datamod.InputStats) -> tuple[bool, str]:
        """A resumed run keeps the precision of its first epochs; several processes take the recorded choice
        (each measuring its own could disagree); otherwise ``choose_bf16``."""
        status = run.status() if run is not None else {}
        if status.get("precision") and (run.path / "resume.pt").is_file():
            return status["precision"] == "bf16", status.get("precision_reason") or "as its first epochs trained"
        if self.dist.world > 1:
            return recorded_bf16(self.config, self.device), "the recorded choice (several processes measure none)"
        return choose_bf16(self.config, self.data.train, self.device, stats)

    def _finish(self, run: Run, model: nn.Module, data: datamod.Dataset, history: list[dict], status: dict) -> None:
        """The final evaluation, the mistakes, every test image's answer, the accuracy under corruptions, the weights,
        then the 'finished' state; the resume point goes last."""
        epochs = self.config.recipe.epochs
        if self.progress is not None:
            last = history[-1]
            self.progress(Progress(epochs, epochs, 1, 1, last["train_loss"], last["train_accuracy"],
                                   last["images_per_second"], 0.0, Phase.EVALUATING))
        run.set_status(State.RUNNING, **{**status, "phase": Phase.EVALUATING})
        report, mistake_images, predictions = final_report(model, data.test, data.classes, self.device)
        run.save_mistakes(mistake_images)
        run.save_predictions(predictions)
        run.write("evaluation.json", report)
        run.write("robustness.json", measure(model, data.test, self.config.dataset, self.device).to_dict())
        run.save_model(model)
        run.set_status(State.FINISHED, finished_at=time.time(), **{**status, "phase": Phase.DONE})
        (run.path / "resume.pt").unlink(missing_ok=True)

    def _reporter(self, run: Run | None, status: dict, epoch: int, steps: int, n: int, trainer: Trainer,
                  snapshots: Snapshotter | None, trained_before: float) -> Callable[[int, torch.Tensor, int, float],
                                                                                    None]:
        """Checks for cancellation after every step; live progress for the terminal and the dashboard every half
        second (one host sync then, not per step); a snapshot when one is due (``snapshots``)."""
        last_report = 0.0
        epochs = self.config.recipe.epochs

        def on_step(step: int, totals: torch.Tensor, seen: int, elapsed: float) -> None:
            nonlocal last_report
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            if snapshots is not None and snapshots.due(trained_before + elapsed):
                loss_sum, correct = totals.tolist()
                snapshots.take((epoch - 1) * steps + step, epoch, trained_before + elapsed,
                               trainer.optimizer.param_groups[0]["lr"], loss_sum / seen, correct / seen)
            if run is None or (elapsed - last_report <= 0.5 and step != steps):
                return
            last_report = elapsed
            loss_sum, correct = totals.tolist()
            rate = seen * self.dist.world / max(elapsed, 1e-9)
            eta = ((epochs - epoch) * n + n - seen * self.dist.world) / rate
            progress = Progress(epoch, epochs, step, steps, loss_sum / seen, correct / seen, rate, eta)
            if self.progress is not None:
                self.progress(progress)
            run.set_status(State.RUNNING, progress=progress.to_dict(), **status)

        return on_step


def use_channels_last(device: torch.device) -> bool:
    """NHWC activations unless CONVNETS_CHANNELS_LAST=0: GPU tensor cores want them, and on the CPU oneDNN's
    convolutions train 7-24 % faster in them than in NCHW (bench/train_speed.py --variants channels-last on
    2 cores: ResNet-20 1.13-1.16x, LeNet-5 1.16-1.24x, the reference nets 1.10x, ResNet-9 1.07x)."""
    return device.type != "cpu" or os.environ.get("CONVNETS_CHANNELS_LAST", "1") != "0"
