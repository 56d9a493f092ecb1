"""An exponential moving average of the weights (Polyak & Juditsky 1992; as used for ImageNet nets by
Szegedy et al. 2016 and for fast CIFAR-10 training by hlb-CIFAR10 and airbench).

SGD at a high learning rate jitters around a minimum: each step's weights are a noisy sample of where training is
going. Their running average sits closer to the centre, so it scores higher than the last step's weights early
and at a high rate, which is what a short schedule spends most of its time at. The average is kept on the device
and updated after each optimiser step with one fused in-place op, never syncing with the host (so it also fits
between the CUDA graph replays of a compiled step).

The decay warms up as TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` does, ``min(decay, (1 + t) /
(10 + t))`` after ``t`` updates, so that the average does not drag the random initial weights through a short run.
Batch norm's running statistics are averaged like the weights (timm's ``ModelEmaV2`` does the same): they then
describe the averaged net rather than the last step's; integer buffers (batches seen) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """The average of ``model``'s weights, as a model of its own (``averaged``) to evaluate, predict and store."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), not {decay!r}")
        self.decay, self.updates = decay, 0
        self.averaged = copy.deepcopy(model).eval().requires_grad_(False)
        pairs = list(zip(self.averaged.state_dict().values(), model.state_dict().values()))
        self._averages = [a for a, _ in pairs if a.is_floating_point()]  # paired once: the step's update only reads
        self._weights = [w for a, w in pairs if a.is_floating_point()]
        self._others = [(a, w) for a, w in pairs if not a.is_floating_point()]

    def rate(self) -> float:
        """The decay of the next update: the recipe's, or less while few updates have been made."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the model's current weights: ``a += (1 - decay) (w - a)``."""
        torch._foreach_lerp_(self._averages, self._weights, 1 - self.rate())
        for a, w in self._others:
            a.copy_(w)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"updates": self.updates, "model": self.averaged.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state["model"])
        self.updates = state["updates"]
