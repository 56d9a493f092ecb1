"""Common corruptions at five severities (the operations, from torchvision's ``transforms.v2`` functionals, are in
``corruption_ops``).

The strengths are the published ones: CIFAR-10-C's (Hendrycks & Dietterich 2019, ``make_cifar_c.py``) for
CIFAR-10, and MNIST-C's (Mu & Gilmer 2019, ``corruptions.py``) for digits, which adds rotation and translation.
Severity 0 is the image as it is. A corruption's random draws (the noise, each image's direction of rotation or
shift) depend on the seed alone and are the same at every severity, so a stronger severity is the same
corruption made stronger, and every model of a dataset is measured on the very same corrupted images.

Where a functional differs from the reference: contrast blends towards the image's grey mean (``adjust_contrast``)
where CIFAR-10-C blends each channel towards its own mean; blur pads by reflection where scikit-image repeats the
edge.
Brightness has no functional that matches: torchvision's multiplies, CIFAR-10-C adds to the HSV value.
"""

from __future__ import annotations

import torch

from .datasets import get_dataset
from .errors import ConvnetsError

SEVERITIES = 5

# name -> strength at severities 1..5: CIFAR-10-C's for colour images, MNIST-C's for greyscale ones, and MNIST-C's
# rotation and translation for datasets of digits (a rotated shirt or ship is not what these corruptions test)
STRENGTHS: dict[str, dict[str, tuple[float, ...]]] = {
    "colour": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std, on a 0..1 scale
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma, pixels
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value
        "jpeg": (80, 65, 58, 50, 40),  # quality
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # side kept
    },
    "grey": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "gaussian_blur": (1, 2, 3, 4, 6),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "jpeg": (25, 18, 15, 10, 7),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    },
}
GEOMETRY = {
    "rotation": (0.2, 0.4, 0.6, 0.8, 1.0),  # radians, clockwise or not at random
    "translation": (1, 2, 3, 4, 5),  # pixels along each axis, each direction at random
}


def strengths(dataset: str) -> dict[str, tuple[float, ...]]:
    """The corruptions a dataset's images are measured under, in a fixed order (each one's draws depend on it)."""
    spec = get_dataset(dataset)
    return {**STRENGTHS["grey" if spec.channels == 1 else "colour"], **(GEOMETRY if spec.digits else {})}


def reference(dataset: str) -> str:
    """Whose corruptions and strengths a dataset's images are measured under, in words."""
    spec = get_dataset(dataset)
    base = "MNIST-C's (Mu & Gilmer 2019)" if spec.channels == 1 else "CIFAR-10-C's (Hendrycks & Dietterich 2019)"
    return base + (", with MNIST-C's rotation and translation" if spec.digits else "")


def names(dataset: str) -> list[str]:
    return list(strengths(dataset))


def corrupt(images: torch.Tensor, name: str, severity: int, dataset: str, seed: int = 0) -> torch.Tensor:
    """``images`` (N×C×H×W uint8) under corruption ``name`` at ``severity`` (0: unchanged), deterministically."""
    table = strengths(dataset)
    if name not in table:
        raise ConvnetsError(f"unknown corruption '{name}' for {dataset} ({', '.join(table)})")
    if not 0 <= severity <= SEVERITIES:
        raise ConvnetsError(f"severity {severity} is out of range: allowed 0 to {SEVERITIES}")
    if severity == 0:
        return images.clone()
    # The operations load torchvision (seconds): they are imported when an image is first corrupted, not by every
    # page that lists the corruptions' names
    from .corruption_ops import OPERATIONS

    generator = torch.Generator().manual_seed(seed * 1_000_003 + list(table).index(name))
    return OPERATIONS[name](images, table[name][severity - 1], generator)
