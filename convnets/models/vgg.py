"""VGG-16 for CIFAR-10 and the reference study's VGG-like nets.

Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
arXiv:1409.1556. `vgg16` keeps the thirteen 3x3 convs and five max pools of Table 1, configuration D, and
adapts it to 32x32 inputs the way common CIFAR-10 reproductions do: batch norm after each conv (Ioffe &
Szegedy 2015, which VGG predates; the conv biases are kept, as in torchvision's `vgg16_bn`) and, since the
five pools leave a 1x1x512 map, one Linear(512, 10) in place of the three ImageNet FC layers.
That gives 14,728,266 parameters, the figure usually quoted as 14.7M.

`ref_vgg` (CIFAR-10) and `ref_vgg_mnist` are the reference Keras study's own small VGG-like nets.
"""

from __future__ import annotations

from torch import nn

from .layers import Image, conv_bn, conv_relu, he_init, keras_init, keras_plain_net, keras_trunk

FAMILY = "VGG"
CITATION = (
    "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition (arXiv:1409.1556)"
)
_CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(image: Image) -> nn.Module:
    """VGG-16 (configuration D) with batch norm and a single linear classifier."""
    layers: list[nn.Module] = []
    c_in = image.channels
    for v in _CONFIG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [conv_bn(c_in, v, bias=True), nn.ReLU(inplace=True)]
            c_in = v
    return he_init(nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, image.classes)))  # 32x32 in, 1x1 out


def ref_vgg(image: Image) -> nn.Module:
    """The study's CIFAR-10 VGG: two [conv x2, maxpool, dropout .25] stages, conv128 x2, global average pool
    (Keras `AvgPool2D(8)` on the 8x8 map), dropout .25, fc128, dropout .25, fc10."""
    return keras_init(
        nn.Sequential(
            *keras_trunk(image.channels, 0.25),
            *conv_relu(64, 128),
            *conv_relu(128, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(128, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.25),
            nn.Linear(128, image.classes),
        )
    )


def ref_vgg_mnist(image: Image) -> nn.Module:
    """The study's MNIST VGG: [conv32 x2, maxpool], [conv64 x2, maxpool], fc256, dropout .5, fc10."""
    return keras_plain_net(image, trunk_dropout=0.0, hidden=256)
