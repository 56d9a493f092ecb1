"""Pieces the families share, so that each family file states only its own architecture."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from torch import nn


class Image(NamedTuple):
    """What a model is built for: input channels, the (square) side in pixels, and the classes it tells apart."""

    channels: int
    size: int
    classes: int = 10


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *, bias: bool = False) -> nn.Sequential:
    """'Same'-padded conv then batch norm; no conv bias by default, since BN's shift makes it redundant."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=bias), nn.BatchNorm2d(c_out))


def conv_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int | None = None) -> list[nn.Module]:
    """Conv with bias then ReLU ('same' padding unless given), as Keras `Conv2D(activation='relu')`."""
    padding = kernel // 2 if padding is None else padding
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.ReLU(inplace=True)]


def keras_trunk(c_in: int, dropout: float) -> list[nn.Module]:
    """[conv32 x2, maxpool, dropout], [conv64 x2, maxpool, dropout]: the opening of the study's plain nets."""
    layers: list[nn.Module] = []
    for a, b in ((c_in, 32), (32, 64)):
        layers += [*conv_relu(a, b), *conv_relu(b, b), nn.MaxPool2d(2)]
        layers += [nn.Dropout(dropout)] if dropout else []
    return layers


def keras_plain_net(image: Image, trunk_dropout: float, hidden: int) -> nn.Sequential:
    """`keras_trunk`, fc`hidden` + ReLU, dropout .5, fc10: the study's CIFAR 'LeNet-5' and MNIST VGG."""
    side = image.size // 4
    head = [nn.Flatten(), nn.Linear(64 * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5)]
    head.append(nn.Linear(hidden, image.classes))
    return keras_init(nn.Sequential(*keras_trunk(image.channels, trunk_dropout), *head))


def stage_plan(c_stem: int, widths: Sequence[int], units: int) -> Iterator[tuple[int, int, int]]:
    """(c_in, c_out, stride) of each residual block: `units` per width, each stage after the first starting
    with a stride-2 block that halves the map."""
    c_in = c_stem
    for stage, width in enumerate(widths):
        for i in range(units):
            yield c_in, width, 2 if stage and not i else 1
            c_in = width


def he_init(model: nn.Module) -> nn.Module:
    """He et al. (2015) init for ReLU convs; PyTorch's default is √6 times smaller and slows deep nets."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def keras_init(model: nn.Module) -> nn.Module:
    """Keras defaults (Glorot-uniform kernels, zero biases, BN momentum 0.99, eps 1e-3): the study's start."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = 0.01, 1e-3
    return model
