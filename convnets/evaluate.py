"""Evaluation in large batches under inference mode, and the final report a run keeps."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, Split, batches
from .schema import Evaluation

MISTAKES_KEPT = 32


@torch.inference_mode()
def predict_probs(model: nn.Module, split: Split, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities for a whole split (N×10, float32, on the device)."""
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    out = []
    with autocast:
        for x, _ in batches(split, batch_size):
            out.append(model(x).float().softmax(1))
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, split: Split, device: torch.device) -> dict:
    probs = predict_probs(model, split, device)
    return {"loss": _loss(probs, split.labels), "accuracy": (probs.argmax(1) == split.labels).float().mean().item()}


def _loss(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()


def final_report(model: nn.Module, data: Dataset, device: torch.device) -> tuple[dict, np.ndarray]:
    """Accuracy, confusion matrix, per-class accuracy and the most confident mistakes (with their images)."""
    test = data.test.to(device)
    probs = predict_probs(model, test, device)
    report = report_from_probs(probs.cpu(), test.labels.cpu(), data.classes)
    idx = [m["index"] for m in report["mistakes"]]
    images = data.test.images[idx].permute(0, 2, 3, 1).cpu().numpy() if idx else np.zeros((0, 1, 1, 1), np.uint8)
    return report, images


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
