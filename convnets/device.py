"""Which device trains: the best one this machine has, or the one asked for if it can."""

from __future__ import annotations

import os
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
    fp32 and training 1.6-3.2x (this project's 2-core AMX machine); elsewhere oneDNN emulates bf16, slower than fp32.
    torch keeps the check private, hence the fallback."""
    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_amx_tile_supported",
                                                                       "_is_avx512_bf16_supported"))


def trains_in_bf16(device: torch.device) -> bool:
    """bf16 autocast unless CONVNETS_BF16=0: on CUDA, and on a CPU that computes in bf16 natively (AMX, AVX-512
    BF16), where a training step at batch 256 runs 1.6-3.2x as fast as in fp32 (2 cores of an AMX Xeon, random
    data: ResNet-20 1.9x, ResNet-56 2.1x, All-CNN-C 2.9x, WRN-16-4 3.2x, the study's WRN-14-2 1.6x). Other CPUs
    emulate bf16, slower than fp32, so they train in fp32; so does Apple MPS."""
    if os.environ.get("CONVNETS_BF16", "1") == "0":
        return False
    return device.type == "cuda" or (device.type == "cpu" and native_bf16())


def with_precision(device_text: str, bf16: bool) -> str:
    """The one spelling of "device, precision" that every table and caption shows: 'cpu (2 threads), bf16'."""
    return f"{device_text}, {'bf16' if bf16 else 'fp32'}"


def describe_training(device: torch.device) -> str:
    """Where and in which precision the engine trains on ``device``: 'cpu (2 threads), bf16'."""
    return with_precision(describe_device(device), trains_in_bf16(device))
