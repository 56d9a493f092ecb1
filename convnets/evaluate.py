"""Evaluation in large batches under inference mode, and the final report a run keeps."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Split, batches
from .device import describe_device, native_bf16, with_precision
from .schema import Evaluation, Predictions

MISTAKES_KEPT = 32


@torch.inference_mode()
def predict_probs(model: nn.Module, split: Split, device: torch.device, batch_size: int = 1000,
                  cpu_bf16: bool = False) -> torch.Tensor:
    """Softmax probabilities for a whole split (N×10, float32, on the device), computed in bf16 on CUDA and, with
    ``cpu_bf16``, on a CPU that has it natively (for figures that a few images' rounding cannot move: robustness)."""
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if _bf16(device, cpu_bf16) else nullcontext()
    out = []
    with autocast:
        for x, _ in batches(split, batch_size):
            out.append(model(x).float().softmax(1))
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, split: Split, device: torch.device, cpu_bf16: bool = False) -> dict:
    """Test loss and accuracy after an epoch; ``cpu_bf16`` for a model trained in bf16 on the CPU."""
    probs = predict_probs(model, split, device, cpu_bf16=cpu_bf16)
    return {"loss": _loss(probs, split.labels), "accuracy": (probs.argmax(1) == split.labels).float().mean().item()}


def _loss(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()


class FinalReport(NamedTuple):
    report: dict  # schema.Evaluation, as evaluation.json holds it
    mistake_images: np.ndarray  # the most confident mistakes' images (N×H×W×C uint8)
    predictions: Predictions  # every test image's answer


def final_report(model: nn.Module, test: Split, classes: Sequence[str], device: torch.device) -> FinalReport:
    """Accuracy, confusion matrix, per-class accuracy, the most confident mistakes (with their images), and the
    answer for every test image: all from one pass over the test split, so they always agree. It needs the test
    split alone, so that evaluating a finished run never decodes its training images."""
    on_device = test.to(device)
    probs = predict_probs(model, on_device, device).cpu()
    labels = on_device.labels.cpu()
    report = report_from_probs(probs, labels, list(classes))
    idx = [m["index"] for m in report["mistakes"]]
    images = test.images[idx].permute(0, 2, 3, 1).cpu().numpy() if idx else np.zeros((0, 1, 1, 1), np.uint8)
    return FinalReport(report, images, per_image(probs, labels, device))


def per_image(probs: torch.Tensor, labels: torch.Tensor, device: torch.device) -> Predictions:
    """Each image's class and its probability, compactly (uint8, float16); ``device`` computed the probabilities."""
    confidence, predicted = probs.max(1)
    return Predictions(predicted.numpy().astype(np.uint8), confidence.numpy().astype(np.float16),
                       labels.numpy().astype(np.uint8), inference_source(device))


def inference_source(device: torch.device, cpu_bf16: bool = False) -> str:
    """Where and in which precision predict_probs computes: recorded with what it made."""
    return with_precision(describe_device(device), _bf16(device, cpu_bf16))


def _bf16(device: torch.device, cpu_bf16: bool) -> bool:
    return device.type == "cuda" or (cpu_bf16 and device.type == "cpu" and native_bf16())


def report_from_probs(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    pred = probs.argmax(1)
    n = len(classes)
    confusion = torch.bincount(labels * n + pred, minlength=n * n).reshape(n, n)
    per_class = (confusion.diag().float() / confusion.sum(1).clamp_min(1)).tolist()
    wrong = (pred != labels).nonzero().flatten()
    confidence = probs[wrong, pred[wrong]]
    top = wrong[confidence.argsort(descending=True)[:MISTAKES_KEPT]]
    return Evaluation(
        test_accuracy=(pred == labels).float().mean().item(),
        test_loss=_loss(probs, labels),
        test_images=len(labels),
        classes=classes,
        confusion_matrix=confusion.tolist(),
        per_class_accuracy=dict(zip(classes, per_class)),
        mistakes=[
            {"index": int(i), "true": int(labels[i]), "predicted": int(pred[i]),
             "confidence": round(float(probs[i, pred[i]]), 4)}
            for i in top
        ],
    ).to_dict()
