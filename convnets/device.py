"""Which device trains: the best one this machine has, or the one asked for if it can."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import torch

from .errors import ConvnetsError


def available_devices() -> list[str]:
    """What can be asked for here: "auto" (the best of the rest), the CPU, then CUDA and Apple MPS if present."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
        ["mps"] if torch.backends.mps.is_available() else [])


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, else Apple MPS, else the CPU; an explicit request must be one PyTorch can train on here."""
    if requested and requested != "auto":
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", requested):
            raise ConvnetsError(f"--device {requested}: not a device this project trains on (choose from: "
                                f"{', '.join(available_devices())}, or cuda:N for the N-th GPU)")
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConvnetsError(f"--device {requested} was asked for, but no CUDA GPU is available")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ConvnetsError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ConvnetsError(f"--device {requested} was asked for, but Apple MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """How a run records where it trained: 'cuda (NVIDIA H200)', 'cpu (2 threads)', 'mps'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AMX or AVX-512 BF16), where bf16 inference runs 1.5-2x as fast as
    fp32 and training 1.6-3.2x (this project's 2-core AMX machine); elsewhere oneDNN emulates bf16, slower than fp32.
    torch keeps the check private, hence the fallback."""
    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_amx_tile_supported",
                                                                       "_is_avx512_bf16_supported"))


def precision_rule(device: torch.device) -> tuple[bool | None, str]:
    """bf16 or fp32 where no measurement is needed, with why; None where the CPU's own speeds must decide.

    CONVNETS_BF16=0/1 forces fp32/bf16. CUDA trains in bf16, Apple MPS in fp32, and so does a CPU without bf16
    instructions (oneDNN emulates them there, slower than fp32). A CPU that has them (AMX, AVX-512 BF16) is
    not always faster in bf16: on 2 cores of an AMX Xeon a ResNet-20 step ran 1.9x as fast, on an AVX-512 BF16
    Xeon without AMX 0.84x (issue 36), so there each model's first training times both (``train.choose_bf16``)."""
    forced = os.environ.get("CONVNETS_BF16", "")
    if forced in ("0", "1"):
        return forced == "1", f"CONVNETS_BF16={forced}"
    if device.type == "cuda":
        return True, "CUDA trains in bf16"
    if device.type != "cpu":
        return False, f"{device.type} trains in fp32"
    if not native_bf16():
        return False, "this CPU has no bf16 instructions"
    return None, "timed against fp32 at each model's first training here"


def machine_key() -> str:
    """What a precision measurement holds for: the CPU, the instructions PyTorch and oneDNN may use, the threads
    and PyTorch's version. The same home on another machine, or under ONEDNN_MAX_CPU_ISA, measures again."""
    model = _cpu_model()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "all")
    return (f"{model} | {torch.backends.cpu.get_cpu_capability()} | onednn {isa} | "
            f"{torch.get_num_threads()} threads | torch {torch.__version__}")


@cache
def _cpu_model() -> str:
    """The CPU's model name, read once per process: the sidebar asks for the machine's key on every rerun."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                "unknown CPU")


def _timings_file(home: Path) -> Path:
    return home / "precision.json"


def _read_timings(home: Path) -> dict:
    try:
        return json.loads(_timings_file(home).read_text())
    except (OSError, ValueError):
        return {}


def timing_key(model: str, shape: tuple[int, int, int], classes: int, batch_size: int) -> str:
    """What a step's speed depends on: the net, the images' shape, the classes and the batch (not the dataset's
    name: a folder of CIFAR-10's images trains as fast as CIFAR-10)."""
    return f"{model} {'x'.join(map(str, shape))} {classes} classes batch {batch_size}"


def recorded_timing(home: Path, key: str) -> dict | None:
    """The stored step times {"fp32": s, "bf16": s} of ``key`` on this machine, if measured."""
    return _read_timings(home).get(machine_key(), {}).get(key)


def record_timing(home: Path, key: str, fp32_seconds: float, bf16_seconds: float) -> None:
    """Keep a measurement for every later run of the same model and batch on this machine. A read-only or full
    disk only costs the next run another measurement of a few seconds."""
    timings = _read_timings(home)
    timings.setdefault(machine_key(), {})[key] = {"fp32": round(fp32_seconds, 5), "bf16": round(bf16_seconds, 5)}
    try:
        home.mkdir(parents=True, exist_ok=True)
        tmp = _timings_file(home).with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(timings, indent=1))
        os.replace(tmp, _timings_file(home))
    except OSError:
        pass


BF16_MARGIN = 1.1  # bf16 rounds more coarsely than fp32: it must buy at least this much speed to be chosen


def verdict(timing: dict) -> tuple[bool, str]:
    """bf16 if its step measured at least BF16_MARGIN times as fast, with the ratio in words: 'bf16: measured 1.8x
    faster here', 'fp32: bf16 measured slower here (0.84x fp32's speed)'."""
    ratio = timing["fp32"] / max(timing["bf16"], 1e-9)
    if ratio >= BF16_MARGIN:
        return True, f"bf16: measured {ratio:.1f}× faster here"
    return False, f"fp32: bf16 measured {'slower' if ratio < 1 else 'hardly faster'} here ({ratio:.2f}× fp32's speed)"


def precision_summary(device: torch.device, home: Path) -> str:
    """What a new job on ``device`` trains in and why, for the sidebar: the rule, or this machine's measurements."""
    decided, why = precision_rule(device)
    if decided is not None:
        return f"{'bf16' if decided else 'fp32'}: {why}"
    measured = _read_timings(home).get(machine_key(), {})
    if not measured:
        return f"bf16 or fp32: {why}"
    choices: dict[bool, list[str]] = {}
    for key, timing in sorted(measured.items()):
        choices.setdefault(verdict(timing)[0], []).append(f"{key.split()[0]} {timing['fp32'] / timing['bf16']:.1f}×")
    parts = [f"{'bf16' if bf16 else 'fp32'} for {', '.join(names)}" for bf16, names in sorted(choices.items())]
    return f"{'; '.join(parts)} (bf16's speed over fp32's, measured here); other models are timed at their first run"


def with_precision(device_text: str, bf16: bool) -> str:
    """The one spelling of "device, precision" that every table and caption shows: 'cpu (2 threads), bf16'."""
    return f"{device_text}, {'bf16' if bf16 else 'fp32'}"
