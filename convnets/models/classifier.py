"""A registry network behind its input normalisation: what a run trains, saves and loads.

The normalisation is part of the model, so a checkpoint carries its own input statistics and every consumer
(the evaluation, the CLI's predictions, the dashboard) feeds it raw 0..255 pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..config import RunConfig
from . import get_model


class Normalize(nn.Module):
    """(x - mean) / std with the training set's statistics, per channel or per pixel, as buffers; then, for the
    'zca' normalisation, its whitening filter as a convolution (``data.whitening_filter``), a buffer too."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, whiten: torch.Tensor | None = None):
        super().__init__()
        shape = (1, -1, 1, 1) if mean.dim() == 1 else (1, *mean.shape)
        self.register_buffer("mean", mean.reshape(shape).float())
        self.register_buffer("std", std.reshape(shape).float())
        self.register_buffer("whiten", None if whiten is None else whiten.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.whiten is None:
            return x
        return nn.functional.conv2d(x, self.whiten, padding=self.whiten.shape[-1] // 2)


class Classifier(nn.Sequential):
    """Normalize, then the network; with ``tta``, an evaluation (not training) averages each image's probabilities
    with its mirror's and returns their logarithm, so whatever applies a softmax gets the averaged probabilities."""

    def __init__(self, normalize: Normalize, net: nn.Module, tta: bool = False):
        super().__init__(normalize, net)
        self.tta = tta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.tta:
            return super().forward(x)
        return mirror_averaged(super().forward, x).clamp_min(1e-12).log()


def mirror_averaged(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The softmax probabilities of ``forward`` on each image averaged with those on its mirror: how a model with
    test-time flips answers (the explainer, which runs the network one view at a time, answers the same way)."""
    return (forward(x).float().softmax(1) + forward(x.flip(-1)).float().softmax(1)) / 2


def classifier(config: RunConfig, mean: torch.Tensor, std: torch.Tensor,
               whiten: torch.Tensor | None = None) -> Classifier:
    """A freshly initialised network of the configuration, behind Normalize(mean, std, whiten)."""
    return Classifier(Normalize(mean, std, whiten), get_model(config.model).build(config.dataset), config.recipe.tta)


def build_classifier(config: RunConfig, state: dict[str, torch.Tensor]) -> Classifier:
    """The configuration's classifier with weights from a saved state dict (any floating dtype)."""
    model = classifier(config, state["0.mean"][0], state["0.std"][0], state.get("0.whiten"))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model
