"""convnets: train the classic convolutional networks on MNIST and CIFAR-10, cache them, compare them."""

import os

# OpenMP threads that spin while waiting turn a busy laptop (a browser, the dashboard, a second job) into a
# 5-10x slowdown of CPU training; yielding costs little when the machine is quiet. Must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
