"""Watching a net learn: small snapshots of a training run, taken as it trains and kept with the run for a replay.

Every ``every`` seconds of training (10 s by default, ``CONVNETS_SNAPSHOT_SECONDS`` to change it) the trainer's
eval-mode model looks at the same eight test images (one of each of the first eight classes, where the test split
has them): what a snapshot keeps is the first convolution's filters, the feature maps of two layers for those images
(the first convolution's output and the model's Grad-CAM layer, its deepest maps; the eight most active channels of
each, as 8-bit images), the model's probabilities for the eight, its accuracy per class on a fixed probe of ten test
images per class, and the learning rate, loss and training accuracy of the moment. A snapshot is about 80 KB for a
32×32 dataset; past ``LIMIT`` snapshots every other one is dropped (the first and the newest stay) and the interval
doubles, so a run of any length keeps at most ``LIMIT`` of them, under 5 MB, spread over the whole run.

The look costs a forward pass of 8 + 10 per class images, in eval mode and without drawing a random number, so the
run trains exactly as it would without it; the file is written by a background thread (atomically, as every run file
is), so the step never waits for the disk.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import Split
from .store import Run, replacing

FILE = "snapshots.npz"
EVERY_SECONDS = 10.0
LIMIT = 48
WATCHED = 8  # test images watched
CHANNELS = 8  # feature maps kept per layer and image
PROBE_PER_CLASS = 10


def watched_images(test: Split, classes: int) -> torch.Tensor:
    """Indices of the watched test images: the first image of each of the first WATCHED classes, then the first
    others, so that a dataset of two classes still shows eight images."""
    labels = test.labels.cpu()
    first = [int(torch.nonzero(labels == c)[0, 0]) for c in range(min(classes, WATCHED)) if (labels == c).any()]
    rest = [i for i in range(len(labels)) if i not in first][: WATCHED - len(first)]
    return torch.tensor(sorted(first + rest))


def probe_images(test: Split, classes: int) -> torch.Tensor:
    """Indices of the probe: the first PROBE_PER_CLASS test images of every class."""
    labels = test.labels.cpu()
    return torch.cat([torch.nonzero(labels == c)[:PROBE_PER_CLASS, 0] for c in range(classes)])


def first_conv(net: nn.Module) -> str:
    return next(name for name, m in net.named_modules() if isinstance(m, nn.Conv2d))


def _top_maps(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The CHANNELS most active channels (by mean over the images) as uint8 images, one scale for the layer."""
    mean = maps.float().mean((0, 2, 3))
    top = mean.argsort(descending=True)[:CHANNELS]
    chosen = maps[:, top].float()
    low, high = chosen.amin(), chosen.amax()
    scaled = (chosen - low) / (high - low).clamp_min(1e-12) * 255
    return scaled.round().to(torch.uint8).cpu().numpy(), top.cpu().numpy()


@dataclass
class Snapshots:
    """A run's stored snapshots, oldest first (arrays with one row per snapshot)."""

    images: np.ndarray  # WATCHED x C x H x W uint8, the watched test images
    labels: np.ndarray
    classes: list[str]
    layers: list[str]  # the two layers whose maps are kept
    step: np.ndarray
    epoch: np.ndarray
    seconds: np.ndarray  # of training, when the snapshot was taken
    lr: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray  # training accuracy of the epoch so far
    filters: np.ndarray  # S x out x in x k x k float16: the first convolution's weights
    maps: list[np.ndarray]  # per layer: S x WATCHED x CHANNELS x h x w uint8
    channels: list[np.ndarray]  # per layer: S x CHANNELS, which channels those are
    probabilities: np.ndarray  # S x WATCHED x classes float16
    probe_accuracy: np.ndarray  # S x classes float16: per class, on the probe

    def __len__(self) -> int:
        return len(self.step)


def load(run: Run) -> Snapshots | None:
    """The run's snapshots, or None when it has none (a run trained before they were kept, or still starting)."""
    return load_file(run.path / FILE)


def load_file(path: Path) -> Snapshots | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            n = int(z["layer_count"])
            return Snapshots(z["images"], z["labels"], z["classes"].tolist(), z["layers"].tolist(), z["step"],
                             z["epoch"], z["seconds"], z["lr"], z["loss"], z["accuracy"], z["filters"],
                             [z[f"maps{i}"] for i in range(n)], [z[f"channels{i}"] for i in range(n)],
                             z["probabilities"], z["probe_accuracy"])
    except (OSError, KeyError, ValueError):  # a damaged file costs the replay, never the run
        return None


class Snapshotter:
    """Takes a run's snapshots as it trains (see the module's docstring); ``close`` waits for the last write."""

    def __init__(self, run: Run, model: nn.Sequential, cam_layer: str, test: Split, classes: list[str]):
        self.run, self.model, self.classes = run, model, classes
        self.every = float(os.environ.get("CONVNETS_SNAPSHOT_SECONDS") or EVERY_SECONDS)
        net = model[1]
        self.layers = [first_conv(net), cam_layer]
        self.modules = [net.get_submodule(name) for name in self.layers]
        watched, probe = watched_images(test, len(classes)), probe_images(test, len(classes))
        device = test.images.device
        self.images, self.labels = test.images[watched.to(device)], test.labels[watched.to(device)]
        self.probe, self.probe_labels = test.images[probe.to(device)], test.labels[probe.to(device)]
        self.rows: list[dict] = []
        self.next_at = 0.0
        self.writer: threading.Thread | None = None
        self.lock = threading.Lock()

    def keep_earlier(self, earlier: Snapshots | None) -> None:
        """A resumed run's snapshots so far, so that its file goes on from them."""
        if earlier is None:
            return
        for i in range(len(earlier)):
            self.rows.append({"step": int(earlier.step[i]), "epoch": int(earlier.epoch[i]),
                              "seconds": float(earlier.seconds[i]), "lr": float(earlier.lr[i]),
                              "loss": float(earlier.loss[i]), "accuracy": float(earlier.accuracy[i]),
                              "filters": earlier.filters[i], "maps": [m[i] for m in earlier.maps],
                              "channels": [c[i] for c in earlier.channels],
                              "probabilities": earlier.probabilities[i], "probe_accuracy": earlier.probe_accuracy[i]})
        if self.rows:
            self.next_at = self.rows[-1]["seconds"] + self.every

    def due(self, seconds: float) -> bool:
        return seconds >= self.next_at

    @torch.no_grad()
    def take(self, step: int, epoch: int, seconds: float, lr: float, loss: float, accuracy: float) -> None:
        """Look at the watched images and the probe now, keep the snapshot and write the file in the background."""
        self.next_at = seconds + self.every
        was_training = self.model.training
        self.model.eval()
        seen: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.detach())) for m in self.modules]
        try:
            probabilities = self.model(self.images.float()).float().softmax(1)
        finally:
            for hook in hooks:
                hook.remove()
        hits = self.model(self.probe.float()).argmax(1) == self.probe_labels
        self.model.train(was_training)
        per_class = torch.zeros(len(self.classes), device=hits.device).index_add_(0, self.probe_labels, hits.float())
        counts = torch.bincount(self.probe_labels, minlength=len(self.classes)).clamp_min(1)
        maps = [_top_maps(m) for m in seen[: len(self.modules)]]
        weight = self.modules[0].weight.detach().float().cpu().numpy().astype(np.float16)
        row = {"step": step, "epoch": epoch, "seconds": round(seconds, 3), "lr": lr, "loss": loss,
               "accuracy": accuracy, "filters": weight, "maps": [m for m, _ in maps], "channels": [c for _, c in maps],
               "probabilities": probabilities.cpu().numpy().astype(np.float16),
               "probe_accuracy": (per_class / counts).cpu().numpy().astype(np.float16)}
        with self.lock:
            self.rows.append(row)
            if len(self.rows) > LIMIT:  # thin out: every other one, the first and the newest kept
                self.rows = self.rows[:-1:2] + self.rows[-1:]
                self.every *= 2
        self._write_in_background()

    def _write_in_background(self) -> None:
        if self.writer is not None and self.writer.is_alive():
            return  # the next snapshot's write carries this one too
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.writer.start()

    def _write(self) -> None:
        with self.lock:
            rows = list(self.rows)
        arrays = {
            "images": self.images.cpu().numpy(), "labels": self.labels.cpu().numpy(),
            "classes": np.array(self.classes), "layers": np.array(self.layers), "layer_count": np.array(2),
            **{key: np.array([r[key] for r in rows]) for key in ("step", "epoch", "seconds", "lr", "loss",
                                                                  "accuracy")},
            "filters": np.stack([r["filters"] for r in rows]),
            **{f"maps{i}": np.stack([r["maps"][i] for r in rows]) for i in range(2)},
            **{f"channels{i}": np.stack([r["channels"][i] for r in rows]) for i in range(2)},
            "probabilities": np.stack([r["probabilities"] for r in rows]),
            "probe_accuracy": np.stack([r["probe_accuracy"] for r in rows]),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        try:
            with replacing(self.run.path / FILE) as tmp:
                tmp.write_bytes(buffer.getvalue())
        except OSError:  # a full disk costs the replay, never the run
            pass

    def close(self) -> None:
        """Wait for the writes, then write once more so that the file holds the newest snapshot."""
        if self.writer is not None:
            self.writer.join()
        if self.rows:
            self._write()
