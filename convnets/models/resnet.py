"""CIFAR ResNets and the reference study's ResNet-20.

He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385. `resnet(depth)`
is the CIFAR-10 net of Sec. 4.2: a 3x3 conv16, then three stages of n = (depth - 2) / 6 basic blocks
(conv3x3-BN-ReLU-conv3x3-BN, add, ReLU) with 16/32/64 channels on 32/16/8 maps, global average pooling
and fc10, so 6n + 2 weighted layers. Shortcuts are option A: identity, subsampled by 2 and zero-padded with
the new channels where the shape changes, hence parameter-free; the parameter counts thus match Table 6
(0.27M, 0.46M, 0.66M, 0.85M, 1.7M). Init is the paper's (He et al. 2015b), BN gammas at 1. Starting each
block's last gamma at zero instead (Goyal et al. 2017), as this module once did, made ResNet-20 under-fit the
zoo's 50-epoch recipe (batch 256, lr 0.2, weight decay 5e-4, label smoothing 0.1, JPEG copy): 90.0 % training and
85.68 % test accuracy, against 94.3 % and 88.01 % with the gammas at 1.

`ref_resnet20` is the reference Keras study's ResNet-20: the same layout, with shortcuts that downsample
by a 2x2 average pool, a 1x1 conv and BN (option B with pooling), and Keras init. Its Keras summary
(274,042 params, 272,474 trainable) fixes the bias/BN placement: 784 BN channels (stem 16, two per block,
one per projection) account for the 2 x 784 non-trainable moving statistics, and the trainable count
leaves no room for conv biases (there would be exactly 784 of them), so the convs carry none (the
notebook's `use_bias=False`); only fc10 has a bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import Image, conv_bn, he_init, keras_init, stage_plan

FAMILY = "ResNet"
CITATION = "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)"


class PadShortcut(nn.Module):
    """Option A: subsample by the stride and zero-pad the extra channels (no parameters)."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.c_out - x.shape[1]
        return nn.functional.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


def _shortcut(c_in: int, c_out: int, stride: int, kind: str) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if kind == "pad":
        return PadShortcut(c_out, stride)
    return nn.Sequential(nn.AvgPool2d(stride), conv_bn(c_in, c_out, kernel=1))


class ResidualUnit(nn.Module):
    """Basic block: conv-BN-ReLU-[dropout]-conv-BN, plus the shortcut, then [BN]-ReLU.

    The bracketed parts and the projection shortcut (`shortcut="conv"`) are the reference study's options.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, shortcut: str, dropout: float = 0.0, post_bn: bool = False
    ) -> None:
        super().__init__()
        mid: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        self.body = nn.Sequential(conv_bn(c_in, c_out, stride=stride), nn.ReLU(inplace=True), *mid)
        self.last = conv_bn(c_out, c_out)
        self.shortcut = _shortcut(c_in, c_out, stride, shortcut)
        self.post = nn.Sequential(*([nn.BatchNorm2d(c_out)] if post_bn else []), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.last(self.body(x)) + self.shortcut(x))


def residual_net(
    image: Image,
    widths: Sequence[int],
    units: int,
    shortcut: str,
    dropout: float = 0.0,
    post_bn: bool = False,
) -> nn.Sequential:
    """conv-BN-ReLU-[dropout] stem of width `widths[0]`, `units` blocks per width (each stage after the
    first halving the map), global average pool, fc10."""
    layers: list[nn.Module] = [conv_bn(image.channels, widths[0]), nn.ReLU(inplace=True)]
    layers += [nn.Dropout(dropout)] if dropout else []
    plan = stage_plan(widths[0], widths, units)
    layers += [ResidualUnit(c_in, c_out, stride, shortcut, dropout, post_bn) for c_in, c_out, stride in plan]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], image.classes))


def resnet(depth: int, image: Image) -> nn.Module:
    """The paper's CIFAR ResNet-`depth` (depth = 6n + 2) with option-A shortcuts."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    return he_init(residual_net(image, (16, 32, 64), (depth - 2) // 6, shortcut="pad"))


def ref_resnet20(image: Image) -> nn.Module:
    """The study's ResNet-20: projection shortcuts (avgpool 2, 1x1 conv, BN) and Keras init."""
    return keras_init(residual_net(image, (16, 32, 64), 3, shortcut="conv"))
