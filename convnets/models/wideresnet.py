"""Wide ResNets and the reference study's WRN-14-2.

Zagoruyko & Komodakis 2016, "Wide Residual Networks", arXiv:1605.07146. `wide_resnet(depth, k)` is
WRN-depth-k of Table 1: a 3x3 conv16, three stages of n = (depth - 4) / 6 pre-activation wide basic blocks
B(3,3) (BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, Fig. 1c/d) with 16k/32k/64k channels on 32/16/8 maps, a
1x1 conv shortcut (fed with the pre-activated input) where the shape changes, then BN-ReLU, global average
pooling and fc10. Dropout between the convs (Fig. 1d) is a builder argument, off by default. He et al.
init, as in the paper's code.

`ref_wrn14_2` is the reference Keras study's "WideResNet", decoded from its Keras summary (700,650 params,
697,514 trainable, 3,136 non-trainable, i.e. 1,568 BN channels): not the paper's block but the study's
post-activation ResNet unit (see `resnet.py`) widened by k = 2, i.e. a conv32 (no bias)-BN-ReLU-dropout
stem, then n = 2 units per stage of 32/64/128 channels (6n + 2 = 14 layers), each conv (no bias)-BN-ReLU-
dropout .3-conv-BN, shortcut identity or avgpool 2-conv1x1 (no bias)-BN, then BN after the addition and ReLU;
global average pool, fc10. BN channels: 32 + 6·32 + (4 + 3)·64 + (4 + 3)·128 = 1,568; conv weights 693,088
plus fc 1,290 plus BN 3,136 = 697,514 trainable.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Image, he_init, keras_init, stage_plan
from .resnet import residual_net

FAMILY = "WideResNet"
CITATION = "Zagoruyko & Komodakis 2016, Wide Residual Networks (arXiv:1605.07146)"


def _conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class WideBlock(nn.Module):
    """Pre-activation wide basic block; the projection shortcut sees the pre-activated input."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), _conv3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), _conv3(c_out, c_out)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        reshape = stride != 1 or c_in != c_out
        self.project = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if reshape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        y = self.conv2(self.dropout(torch.relu(self.bn2(self.conv1(o)))))
        return y + (x if self.project is None else self.project(o))


def wide_resnet(depth: int, k: int, image: Image, dropout: float = 0.0) -> nn.Module:
    """WRN-`depth`-`k` (depth = 6n + 4)."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    plan = stage_plan(16, (16 * k, 32 * k, 64 * k), (depth - 4) // 6)
    blocks = [WideBlock(c_in, c_out, stride, dropout) for c_in, c_out, stride in plan]
    c = 64 * k
    head = [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(c, image.classes)]
    return he_init(nn.Sequential(_conv3(image.channels, 16), *blocks, *head))


def ref_wrn14_2(image: Image) -> nn.Module:
    """The study's WRN-14-2: its ResNet unit at widths 32/64/128, 2 per stage, dropout .3, BN after adds."""
    return keras_init(residual_net(image, (32, 64, 128), 2, shortcut="conv", dropout=0.3, post_bn=True))
