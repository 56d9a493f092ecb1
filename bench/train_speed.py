"""Training throughput: the convnets engine against the same training written the usual way.

Engine: `convnets.train.Trainer` (its step, its optimiser, `Normalize` in the model, its epoch loop) fed by
`convnets.data.batches` from a uint8 split decoded once and kept on the device, augmented there per batch.
Baseline: `torchvision.datasets` + `DataLoader` decoding files and running PIL transforms per image (the
recipe's crop/flip, ToTensor, Normalize), fp32, default memory format, a plain step with `loss.item()`.
Same network (same initial weights), same batch size, same optimiser settings, same device.

Both read synthetic data written in the real on-disk formats (a CIFAR-10 ImageFolder of JPEG files like the
shared JPEG copy, MNIST idx files), so each side pays its real data costs; only throughput is measured, so the
images need not be real. Rounds alternate engine, baseline, engine, baseline...; each round starts with
untimed warm-up steps; the table gives the median rates and the median of the per-round ratios, so that a
busy machine's drifting load hits both sides alike.

    python bench/train_speed.py [--device D] [--models M ...] [--rounds N] [--steps N] [--batch-size B]
        [--workers W] [--variants channels-last contiguous compile compile-channels-last fp32] [--compile] [--profile]
        [--json]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import datetime
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from convnets import data as datamod
from convnets import train as trainmod
from convnets.config import Recipe, RunConfig
from convnets.device import describe_device, pick_device, precision_rule
from convnets.models import get_model, models_for
from convnets.train import Trainer


@dataclass(frozen=True)
class Plan:
    """Steps per round for one model; kept small on the CPU so the default run ends in a few minutes."""

    dataset: str
    steps: int
    warmup: int
    batch_size: int | None = None  # None: the recipe's


# Sized for 2 busy cores (ResNet-20 takes 1-4 s a step there, depending on the load): the default run took 5 to
# 10 minutes at load averages of 2 to 6. ResNet-9 costs ~7x ResNet-20 per image: its recipe batch of 512 would
# take half a minute or more a step, so on the CPU it runs at 32 (both sides, as always, at the same batch size).
CPU_PLANS = {
    "lenet5": Plan("mnist", 30, 5),
    "resnet20": Plan("cifar10", 5, 1),
    "ref_vgg": Plan("cifar10", 5, 1),
    "ref_lenet": Plan("cifar10", 5, 1),
    "resnet9": Plan("cifar10", 2, 1, batch_size=32),
}
GPU_STEPS, GPU_WARMUP = 200, 20
TRAIN_FILES_MIN = 2560


def gpu_plans() -> dict[str, Plan]:
    """LeNet-5 on MNIST and every CIFAR-10 model of the registry."""
    plans = {"lenet5": Plan("mnist", GPU_STEPS, GPU_WARMUP)}
    plans.update({s.name: Plan("cifar10", GPU_STEPS, GPU_WARMUP) for s in models_for("cifar10")})
    return plans


# --- synthetic data in the real on-disk formats --------------------------------------------------------


def _photo(rng: np.random.Generator) -> np.ndarray:
    """A smooth random 32x32 colour image with some grain: JPEG-compresses to about the size of a CIFAR one."""
    coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((32, 32), Image.BILINEAR), np.float32)
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def write_cifar_jpeg(root: Path, n_train: int, n_test: int = 100, seed: int = 0) -> Path:
    """A CIFAR-10 ImageFolder `root/cifar10-jpeg/{train,test}/<class>/NNNN.jpg`, quality 75 as the shared copy."""
    rng = np.random.default_rng(seed)
    base = root / datamod.JPEG_DIR
    for split, n in (("train", n_train), ("test", n_test)):
        for name in list(datamod.get_dataset("cifar10").classes):
            folder = base / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(math.ceil(n / 10)):
                Image.fromarray(_photo(rng)).save(folder / f"{i:04d}.jpg", "JPEG", quality=75)
    return base


def write_real_cifar_jpeg(root: Path, data_dir: str, n_train: int, n_test: int = 100, seed: int = 0) -> Path:
    """The same ImageFolder made of real files of the CIFAR-10 JPEG copy in `data_dir` (a random n_train of the
    training files, byte for byte), so that both sides decode what real training decodes."""
    source = datamod.find_source("cifar10", data_dir)
    base = root / datamod.JPEG_DIR
    for split, n in (("train", n_train), ("test", n_test)):
        items = datamod.encoded_images(source, split)
        for i in np.random.default_rng(seed).permutation(len(items))[:n]:
            blob, label, _ = items[i]
            folder = base / split / list(datamod.get_dataset("cifar10").classes)[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.jpg").write_bytes(blob)
    return base


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_idx(root: Path, n_train: int, n_test: int = 100, seed: int = 0) -> Path:
    """Unpacked MNIST idx files in `root/MNIST/raw`, which both torchvision's MNIST and convnets read."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):  # a stroke whose place depends on the class, like a sparse digit
            r, c = 4 + 2 * label, 4 + rng.integers(0, 8)
            images[i, r : r + 3, c : c + 14] = rng.integers(150, 256)
        images[images == 0] = rng.integers(0, 2, int((images == 0).sum()), dtype=np.uint8) * 30
        image_file, label_file = datamod.MNIST_FILES[split]
        _write_idx(raw / image_file, images)
        _write_idx(raw / label_file, labels)
    return raw


# --- the two sides ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    images_per_second: float  # wall clock
    cpu_ms_per_image: float  # CPU time of this process and of the DataLoader workers: the work, whatever the load


class Clock:
    """Wall clock and CPU time (this process, plus the given worker processes, read from /proc on Linux).

    On a shared machine the wall-clock rate follows the other tenants' load from second to second; the CPU
    time an image costs hardly does, so it shows which side does less work even when the rates are noisy."""

    def __init__(self, device: torch.device, workers: list[int] | None = None):
        self.device, self.workers = device, workers or []
        self.wall = self.cpu = 0.0

    def _cpu(self) -> float:
        total = time.process_time()
        for pid in self.workers:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
            except (OSError, ValueError, IndexError):
                pass
        return total

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    def stop(self, images: int) -> Sample:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        wall, cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu
        return Sample(images / wall, 1000 * cpu / images)


class Engine:
    """The convnets engine's own training epoch (`convnets.train.Trainer`), timed after its warm-up steps."""

    def __init__(self, name: str, dataset: str, data: datamod.Dataset, recipe: Recipe, device: torch.device,
                 compile: bool | None, channels_last: str | None = None, bf16: str | None = None):
        """`channels_last` and `bf16` "1" or "0" set the engine's own switches (CONVNETS_CHANNELS_LAST,
        CONVNETS_BF16) for this engine; `compile` None is the engine's default (CUDA graphs on a CUDA GPU, eager
        elsewhere)."""
        self.recipe, self.device = recipe, device
        self.train = data.train.to(device)
        with _env("CONVNETS_CHANNELS_LAST", channels_last or os.environ.get("CONVNETS_CHANNELS_LAST")), \
                _env("CONVNETS_BF16", bf16 or os.environ.get("CONVNETS_BF16")):
            config = RunConfig(name, dataset, recipe)
            bf16_chosen, self.precision = trainmod.choose_bf16(config, data.train, device)  # as a run would
            self.trainer = Trainer(config, data.train, device, compile=compile, bf16=bf16_chosen)
        self.compile_seconds = self.trainer.warm_up(self.train)  # compiling is set-up, not training throughput
        self.rounds = 0

    def run(self, warmup: int, steps: int) -> Sample:
        """Throughput over `steps` steps after `warmup` untimed ones: one engine epoch over exactly that many
        batches, with the clock started from the engine's own per-step callback."""
        self.rounds += 1
        n = (warmup + steps) * self.recipe.batch_size
        idx = torch.arange(n, device=self.device) % len(self.train)  # images repeat where the set is smaller
        split = datamod.Split(self.train.images[idx], self.train.labels[idx])
        clock = Clock(self.device)

        def start_at_warmup(step: int, totals: torch.Tensor, seen: int, elapsed: float) -> None:
            if step == warmup:
                clock.start()

        if warmup == 0:
            clock.start()
        epoch = 1 + (self.rounds - 1) % self.recipe.epochs  # a place in the recipe's schedule
        self.trainer.train_epoch(split, epoch, start_at_warmup)  # ends with the engine's own host sync
        return clock.stop(steps * self.recipe.batch_size)


class Baseline:
    """The usual training loop: a torchvision dataset, PIL transforms in DataLoader workers, loss.item()."""

    def __init__(self, net: nn.Module, dataset: torch.utils.data.Dataset, recipe: Recipe, device: torch.device,
                 workers: int):
        self.recipe, self.device = recipe, device
        self.model = net.to(device)
        self.loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, num_workers=workers,
                                 pin_memory=device.type == "cuda", drop_last=True)
        if recipe.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                             nesterov=recipe.nesterov and recipe.momentum > 0,
                                             weight_decay=recipe.weight_decay)

    def run(self, warmup: int, steps: int) -> Sample:
        """Throughput over `steps` steps after `warmup` untimed ones (which absorb the workers' start-up)."""
        self.model.train()
        running_loss, correct = 0.0, 0
        batches = iter(self.loader)  # a fresh iterator: workers start now and stop when it is dropped
        workers = [w.pid for w in getattr(batches, "_workers", [])]
        clock = Clock(self.device, workers)
        for i, (x, y) in enumerate(_take(batches, warmup + steps)):
            if i == warmup:
                clock.start()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            out = self.model(x)
            loss = F.cross_entropy(out, y, label_smoothing=self.recipe.label_smoothing)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item()
            correct += (out.argmax(1) == y).sum().item()
        sample = clock.stop(steps * self.recipe.batch_size)
        del batches  # shuts the workers down, so they do not compete with the engine's next round
        return sample


@contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    before = os.environ.get(name)
    _setenv(name, value)
    try:
        yield
    finally:
        _setenv(name, before)


def _setenv(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _take(batches: Iterator, n: int) -> Iterator:
    for i, batch in enumerate(batches):
        if i == n:
            return
        yield batch
    raise RuntimeError(f"the synthetic training set holds fewer than {n} batches")


def baseline_transform(recipe: Recipe, dataset: str, mean: torch.Tensor, std: torch.Tensor) -> T.Compose:
    """The recipe's augmentation and normalisation as the usual per-image PIL transforms.

    Per-pixel standardisation ('pixel', two reference nets) is done per channel here: torchvision's Normalize
    takes per-channel statistics, and the cost is the same. 'zca' is its per-channel part only: the baseline
    leaves out the whitening filter, a 5×5 convolution that only makes the engine's step slower."""
    size = datamod.get_dataset(dataset).shape[1]
    augment = {
        "crop-flip": [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()],
        "flip": [T.RandomHorizontalFlip()],
        "shift": [T.RandomCrop(size, padding=2)],
        "none": [],
    }[recipe.augment]
    normalize = [] if recipe.normalize == "unit" else [T.Normalize((mean / 255).tolist(), (std / 255).tolist())]
    return T.Compose([*augment, T.ToTensor(), *normalize])


# --- the benchmark ---------------------------------------------------------------------------------------


# Engine variants that --variants measures beside the engine as configured (CONVNETS_CHANNELS_LAST and all).
VARIANTS = {
    "channels-last": dict(channels_last="1", compile=False),
    "contiguous": dict(channels_last="0", compile=False),
    "compile": dict(channels_last=None, compile=True),
    "compile-channels-last": dict(channels_last="1", compile=True),
    "fp32": dict(channels_last=None, compile=False, bf16="0"),
}


def measure(name: str, plan: Plan, root: Path, device: torch.device, rounds: int, workers: int,
            compile: bool | None, variants: list[str], log: Callable[[str], None], profile: bool = False,
            engine_batches: tuple[int, ...] = ()) -> dict:
    """Interleaved rounds of the engine (and its variants) and the baseline for one model: median rates and
    the median of the per-round ratios to the baseline; with `profile`, where the engine's step time goes;
    then the engine alone at each of `engine_batches`, against the baseline's median at the plan's batch."""
    spec = get_model(name)
    recipe = spec.recipes[plan.dataset].replace(batch_size=plan.batch_size)
    data = datamod.load(plan.dataset, root, cache_dir=root / "cache")
    mean, std = datamod.channel_stats(data.train)
    if plan.dataset == "mnist":
        dataset = tvd.MNIST(str(root), train=True, transform=baseline_transform(recipe, "mnist", mean, std))
    else:
        dataset = tvd.ImageFolder(str(root / datamod.JPEG_DIR / "train"),
                                  transform=baseline_transform(recipe, "cifar10", mean, std))
    torch.manual_seed(0)
    net = spec.build(plan.dataset)
    sides: dict[str, Engine | Baseline] = {"engine": Engine(name, plan.dataset, data, recipe, device, compile)}
    for v in variants:
        sides[f"engine {v}"] = Engine(name, plan.dataset, data, recipe, device, **VARIANTS[v])
    sides["baseline"] = Baseline(net, dataset, recipe, device, workers)  # seed 0: the engine's initial weights
    samples: dict[str, list[Sample]] = {side: [] for side in sides}
    for r in range(rounds):
        for side, runner in sides.items():
            samples[side].append(runner.run(plan.warmup, plan.steps))
        log(f"  {name} round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {_rate(v[-1].images_per_second)} img/s ({v[-1].cpu_ms_per_image:.2f} CPU ms/img)"
            for k, v in samples.items()))
    row = {"model": name, "dataset": plan.dataset, "batch_size": recipe.batch_size, "steps": plan.steps,
           "warmup": plan.warmup, "rounds": rounds}
    base = samples["baseline"]
    for side, values in samples.items():
        key = side.replace(" ", "_").replace("-", "_")
        row[f"{key}_images_per_second"] = round(statistics.median(v.images_per_second for v in values), 1)
        row[f"{key}_cpu_ms_per_image"] = round(statistics.median(v.cpu_ms_per_image for v in values), 3)
        row[f"{key}_rounds"] = [round(v.images_per_second, 1) for v in values]
        if side != "baseline":
            prefix = "" if side == "engine" else f"{key}_"
            ratios = [a.images_per_second / b.images_per_second for a, b in zip(values, base)]
            cpu_ratios = [b.cpu_ms_per_image / a.cpu_ms_per_image for a, b in zip(values, base)]
            row[f"{prefix}ratio"] = round(statistics.median(ratios), 3)
            row[f"{prefix}cpu_ratio"] = round(statistics.median(cpu_ratios), 3)
    row["engine_compile_seconds"] = sides["engine"].compile_seconds
    row["engine_precision"] = sides["engine"].precision
    log(f"  {name} engine precision: {row['engine_precision']}")
    del sides
    base_rate = row["baseline_images_per_second"]
    for batch in engine_batches:
        engine = Engine(name, plan.dataset, data, recipe.replace(batch_size=batch), device, compile)
        scale = recipe.batch_size / batch  # about the same images per round as at the plan's batch
        warmup, steps = max(5, round(plan.warmup * scale)), max(20, round(plan.steps * scale))
        rates = [engine.run(warmup, steps).images_per_second for _ in range(rounds)]
        rate = statistics.median(rates)
        row.setdefault("engine_batches", []).append(
            {"batch_size": batch, "images_per_second": round(rate, 1), "ratio": round(rate / base_rate, 3),
             "rounds": [round(r, 1) for r in rates], "compile_seconds": engine.compile_seconds})
        log(f"  {name} engine alone at batch {batch}: {_rate(rate)} img/s, {rate / base_rate:.2f}x the baseline "
            f"at batch {recipe.batch_size} (compile and capture {engine.compile_seconds:.1f} s)")
        del engine
    if profile:
        row["profile"] = profile_engine(Engine(name, plan.dataset, data, recipe, device, compile), plan.steps)
        log(f"  {name} engine step, share of CPU time: " + ", ".join(
            f"{group} {share:.0%}" for group, share in row["profile"].items()))
    return row


# Where an engine step's CPU time goes, by the aten operators' own ("self") time.
PROFILE_GROUPS = (
    ("conv backward", ("convolution_backward",)),
    ("conv forward", ("mkldnn_convolution", "slow_conv", "_nnpack")),
    ("batch norm", ("batch_norm",)),
    ("fully connected", ("addmm", "aten::mm")),
    ("activations, pooling, adds", ("threshold_backward", "relu", "clamp_min", "tanh", "pool", "aten::add",
                                    "aten::sub", "aten::mul", "aten::div")),
    ("data, loss", ("aten::index", "constant_pad", "aten::slice", "nll_loss", "log_softmax", "aten::copy_")),
    ("optimizer", ("SGD.step", "Adam.step", "_foreach", "zero_grad")),
)


def profile_engine(engine: Engine, steps: int) -> dict[str, float]:
    """Shares of an engine step's CPU time by kind of work (CPU only: the device's kernels are named otherwise)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.run(0, steps)
    totals = dict.fromkeys([g for g, _ in PROFILE_GROUPS] + ["other"], 0.0)
    for event in prof.key_averages():
        group = next((g for g, keys in PROFILE_GROUPS if any(k in event.key for k in keys)), "other")
        totals[group] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {group: round(t / whole, 3) for group, t in totals.items()}


def choose_plan(name: str, plans: dict[str, Plan], device: torch.device, steps: int | None,
                batch_size: int | None) -> Plan:
    """The default plan for `name` (a registry model outside the defaults runs like ResNet-20), with the
    command line's steps and batch size, and the batch size resolved from the recipe."""
    spec = get_model(name)
    plan = plans.get(name)
    if plan is None:
        dataset = "cifar10" if "cifar10" in spec.datasets else spec.datasets[0]
        like = CPU_PLANS["resnet20"] if device.type == "cpu" else Plan(dataset, GPU_STEPS, GPU_WARMUP)
        plan = Plan(dataset, like.steps, like.warmup)
    batch = batch_size or plan.batch_size or spec.recipes[plan.dataset].batch_size
    return Plan(plan.dataset, steps or plan.steps, plan.warmup, batch)


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_table(rows: list[dict], device: str, variants: list[str]) -> str:
    """Wall-clock rates and their ratio; then the ratio of CPU time per image (baseline / engine)."""
    sides = [("engine", "")] + [(f"engine {v}", f"engine_{v.replace('-', '_')}_") for v in variants]
    head = "| model | dataset | batch | baseline img/s |"
    head += "".join(f" {name} img/s | {name} / baseline | (CPU time) |" for name, _ in sides)
    lines = [f"device: {device}", "", head, "|---|---|---:|---:|" + "---:|" * (3 * len(sides))]
    for r in rows:
        line = f"| {r['model']} | {r['dataset']} | {r['batch_size']} | {_rate(r['baseline_images_per_second'])} |"
        for _, key in sides:
            rate = r[f"{key or 'engine_'}images_per_second"]
            line += f" {_rate(rate)} | {r[key + 'ratio']:.2f}x | {r[key + 'cpu_ratio']:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--models", nargs="+", help="default: lenet5, resnet20, ref_vgg, ref_lenet, resnet9 on "
                        "the CPU; LeNet-5 and every CIFAR-10 model elsewhere")
    parser.add_argument("--rounds", type=int, default=5, help="engine/baseline pairs per model (median reported)")
    parser.add_argument("--steps", type=int, help="timed steps per round (default: per model)")
    parser.add_argument("--batch-size", type=int, help="for both sides (default: the recipe's; 32 for ResNet-9 "
                        "on the CPU)")
    parser.add_argument("--workers", type=int, help="baseline DataLoader workers (default: 2 on the CPU as in "
                        "PyTorch's CIFAR-10 tutorial, 8 on a GPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the engine's model (default: the engine's own choice, CUDA graphs on "
                        "a CUDA GPU and eager elsewhere)")
    parser.add_argument("--engine-batch-sizes", type=int, nargs="+", default=[],
                        help="then time the engine alone at these batch sizes, against the same baseline")
    parser.add_argument("--data-dir", help="a CIFAR-10 JPEG copy (folder, pack or scans): both sides read its real "
                        "files instead of synthetic ones")
    parser.add_argument("--variants", nargs="+", default=[], choices=list(VARIANTS),
                        help="also measure these engine variants in the same interleaved rounds")
    parser.add_argument("--profile", action="store_true", help="also print where the engine's step spends its "
                        "CPU time (convolutions, batch norm, ...); CPU only")
    parser.add_argument("--json", action="store_true", help="print one JSON document as the last line")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    if args.profile and device.type != "cpu":
        parser.error("--profile groups the CPU's operators; on a GPU use torch.profiler on the kernels")
    plans = CPU_PLANS if device.type == "cpu" else gpu_plans()
    chosen = {name: choose_plan(name, plans, device, args.steps, args.batch_size) for name in args.models or plans}
    workers = args.workers if args.workers is not None else (2 if device.type == "cpu" else 8)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    log(f"device: {describe_device(device)}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}; "
        f"engine channels-last: {trainmod.use_channels_last(device)}; engine precision: {precision_rule(device)[1]}; "
        f"baseline workers: {workers}; "
        f"load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="convnets-bench-") as tmp:
        root = Path(tmp)
        for dataset in sorted({p.dataset for p in chosen.values()}):
            need = max([TRAIN_FILES_MIN] + [(p.warmup + p.steps + 1) * p.batch_size for p in chosen.values()
                                            if p.dataset == dataset])
            if dataset == "cifar10" and args.data_dir:
                log(f"copying {need} real training files of the CIFAR-10 JPEG copy in {args.data_dir} to {root}")
                write_real_cifar_jpeg(root, args.data_dir, need)
            else:
                log(f"writing {need} synthetic {dataset} training images in {root}")
                (write_mnist_idx if dataset == "mnist" else write_cifar_jpeg)(root, need)
        for name, plan in chosen.items():
            rows.append(measure(name, plan, root, device, args.rounds, workers, args.compile, args.variants, log,
                                args.profile, tuple(args.engine_batch_sizes)))
    result = {
        "device": describe_device(device), "date": datetime.date.today().isoformat(),
        "load_average": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "baseline_workers": workers,
        "channels_last": trainmod.use_channels_last(device), "precision_rule": precision_rule(device)[1],
        "compile": args.compile, "variants": args.variants, "rows": rows,
        "data": "CIFAR-10 JPEG copy (real files)" if args.data_dir else "synthetic files in the real formats",
    }
    log(format_table(rows, result["device"], args.variants))
    log(f"{time.perf_counter() - started:.0f} s in all; load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
