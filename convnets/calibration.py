"""How honest a model's confidence is: the expected calibration error over equal-width confidence bins (Guo et al.
2017) and the reliability diagram behind it (accuracy against confidence, with the count of images per bin).

Only the top class's confidence and whether it was right are needed, so both come from a run's stored per-image
predictions. The error is the bins' gaps weighted by their counts, with torchmetrics' binning rule (a test checks it
equals torchmetrics' ``binary_calibration_error``): computing it here spares every page the two seconds that
importing torchmetrics takes (it loads torchvision and torch._dynamo), since the leaderboard lists every run's ECE.
"""

from __future__ import annotations

import numpy as np
import torch

BINS = 15
# torchmetrics counts a confidence of exactly 1.0 in a bin of its own past the last one (Lightning-AI/torchmetrics
# #3510); softmax saturates to 1.0 often for digits, so such confidences are moved just below 1, into the last bin.
_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> dict:
    """ECE and the diagram's bins: ``count``, ``accuracy`` and mean ``confidence`` per bin ([k/bins, (k+1)/bins),
    the last one closed), None where a bin is empty."""
    conf = torch.as_tensor(np.asarray(confidence, np.float32)).clamp(0, _BELOW_ONE)
    hits = torch.as_tensor(np.asarray(correct, bool)).to(torch.int64)
    index = (torch.bucketize(conf, torch.linspace(0, 1, bins + 1), right=True) - 1).clamp(0, bins - 1)
    count = torch.bincount(index, minlength=bins)
    hit_sum = torch.bincount(index, weights=hits.double(), minlength=bins)
    conf_sum = torch.bincount(index, weights=conf.double(), minlength=bins)
    ece = ((hit_sum - conf_sum).abs().sum() / len(conf)).item() if len(conf) else 0.0
    mean = lambda total: [None if n == 0 else float(t / n) for t, n in zip(total.tolist(), count.tolist())]
    return {"ece": ece, "bins": bins, "count": count.tolist(), "accuracy": mean(hit_sum), "confidence": mean(conf_sum)}
