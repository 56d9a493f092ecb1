"""All-CNN-C and the reference study's ALL-CNN.

Springenberg, Dosovitskiy, Brox & Riedmiller 2015, "Striving for Simplicity: The All Convolutional Net",
arXiv:1412.6806. `allcnn` is model C of Table 2 (All-CNN-C): max pooling replaced by stride-2 convs, no
fully connected layer, global average pooling over the final 6x6 map; dropout 20 % on the input and
50 % after each stride-2 layer (Sec. 3), no batch norm. Two departures: He et al. init (the paper
states none; without BN a ReLU net this deep needs a variance-preserving one), and no ReLU after the last
1x1 conv, which the paper's tables list, because a ReLU there forces non-negative logits.

`ref_allcnn` is the reference Keras study's variant: three [conv, conv stride 2] stages of 64/128/256 maps
with dropout .25 between them, then average pooling, dropout .5 and fc10. Keras 'same' padding on a
stride-2 conv pads only the bottom/right edge; here both edges are padded, which keeps the shapes and
shifts the sampling grid by one pixel.
"""

from __future__ import annotations

from torch import nn

from .layers import Image, conv_relu, he_init, keras_init

FAMILY = "All-CNN"
CITATION = "Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net (arXiv:1412.6806)"


def allcnn(image: Image) -> nn.Module:
    """All-CNN-C for 32x32 inputs."""
    return he_init(
        nn.Sequential(
            nn.Dropout(0.2),
            *conv_relu(image.channels, 96),
            *conv_relu(96, 96),
            *conv_relu(96, 96, stride=2),
            nn.Dropout(0.5),
            *conv_relu(96, 192),
            *conv_relu(192, 192),
            *conv_relu(192, 192, stride=2),
            nn.Dropout(0.5),
            *conv_relu(192, 192, padding=0),
            *conv_relu(192, 192, kernel=1),
            nn.Conv2d(192, image.classes, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
    )


def ref_allcnn(image: Image) -> nn.Module:
    """The study's ALL-CNN: [conv w, conv w stride 2] for w = 64, 128, 256 with dropout .25 between, average
    pool (Keras `AvgPool2D(4)` on the 4x4 map), dropout .5, fc10."""
    widths = ((image.channels, 64), (64, 128), (128, 256))
    s1, s2, s3 = ([*conv_relu(c_in, w), *conv_relu(w, w, stride=2)] for c_in, w in widths)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(256, image.classes)]
    return keras_init(nn.Sequential(*s1, nn.Dropout(0.25), *s2, nn.Dropout(0.25), *s3, *head))
