"""Which device trains: the best one this machine has, or the one asked for if it can."""

from __future__ import annotations

import re

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
    fp32 (ResNet-20 and WRN-14-2 on this project's 2-core machine); elsewhere oneDNN emulates bf16, slower than fp32.
    torch keeps the check private, hence the fallback."""
    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_amx_tile_supported",
                                                                       "_is_avx512_bf16_supported"))
