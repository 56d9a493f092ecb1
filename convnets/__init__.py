"""convnets: train the classic convolutional networks on MNIST and CIFAR-10, cache them, compare them."""

__version__ = "0.1.0"
