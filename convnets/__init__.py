"""convnets: train the classic convolutional networks on MNIST and CIFAR-10, cache them, compare them."""

import os

# How long PyTorch's OpenMP threads spin before they sleep, between two parallel regions. Spinning without bound
# (GNU OpenMP's default) turns a busy laptop (a browser, the dashboard, a second job) into an 8x slowdown of CPU
# training; not spinning at all (OMP_WAIT_POLICY=PASSIVE, this project's earlier setting) makes every small
# operation wake its threads, which cost LeNet-5 60 % and ResNet-20 17 % on quiet cores. A short spin keeps both:
# on 2 cores LeNet-5 6.6 ms a step (PASSIVE 9.2), ResNet-20 201 ms (218), and beside a busy process 26 ms (24) and
# 424 ms (401) (bench/README.md, "OpenMP's spin"). GNU OpenMP is what PyTorch's Linux wheels use; the LLVM and
# Intel runtimes keep the earlier behaviour (KMP_BLOCKTIME=0). A setting of the user's own wins. Must precede
# torch's import.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")
    os.environ.setdefault("KMP_BLOCKTIME", "0")

__version__ = "0.1.0"
