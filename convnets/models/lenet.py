"""LeNet-5 and the reference study's LeNet-named nets.

LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to Document Recognition",
Proc. IEEE 86(11):2278-2324 (predates arXiv; no id). `lenet5` follows Fig. 2: C1 conv6 5x5, S2 pool,
C3 conv16 5x5, S4 pool, C5 120, F6 84, output 10, with tanh squashing. As in common reproductions, C3 is
fully connected (the paper's Table I connects each C3 map to only 3-6 S2 maps), S2/S4 are plain average
pools (the paper's have a trainable coefficient and bias each), the output is linear instead of Euclidean RBF
units, and tanh is unscaled. The paper's 60,000 parameters thus become 61,706 on MNIST: +900 for full C3,
+850 for the linear output, -44 for the pools' coefficients. MNIST digits are 28x28 where the paper padded
them to 32x32, so C1 pads by 2 there to keep C1 at 28x28 as in Fig. 2; on 32x32 CIFAR-10 it does not pad.

`ref_lenet_mnist` is the TensorFlow LeNet exercise of Géron 2017 (Hands-On Machine Learning, CNN chapter) run
by the reference study: the same layout with ReLU convs, 'same' C1 and max pooling. `ref_lenet` is the
study's CIFAR-10 "LeNet-5", which is in fact a small VGG-style net (two double-conv stages and fc512).
"""

from __future__ import annotations

from torch import nn

from .layers import Image, keras_init, keras_plain_net

FAMILY = "LeNet"
CITATION = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition (Proc. IEEE 86(11))"


def _lenet(image: Image, c1_padding: int, conv_act: type[nn.Module], pool: type[nn.Module]) -> nn.Sequential:
    side = ((image.size + 2 * c1_padding - 4) // 2 - 4) // 2  # after C1, S2, C3 and S4
    return nn.Sequential(
        nn.Conv2d(image.channels, 6, 5, padding=c1_padding),
        conv_act(),
        pool(2),
        nn.Conv2d(6, 16, 5),
        conv_act(),
        pool(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, image.classes),
    )


def lenet5(image: Image) -> nn.Module:
    """LeNet-5 of Fig. 2, C1 padded so that its maps are 28x28 whatever the input; PyTorch's default init."""
    return _lenet(image, max(0, (32 - image.size) // 2), nn.Tanh, nn.AvgPool2d)


def ref_lenet_mnist(image: Image) -> nn.Module:
    """The TensorFlow exercise: ReLU convs, 'same' C1, max pooling, tanh dense layers, Glorot init."""
    return keras_init(_lenet(image, 2, nn.ReLU, nn.MaxPool2d))


def ref_lenet(image: Image) -> nn.Module:
    """The study's CIFAR-10 'LeNet-5': two [conv x2, maxpool, dropout .25] stages, fc512, dropout .5, fc10."""
    return keras_plain_net(image, trunk_dropout=0.25, hidden=512)
