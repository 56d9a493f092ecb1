"""The image operations behind ``corruptions``, one per corruption: ``x`` (N×C×H×W uint8) at one strength, the
random draws from ``generator``. Kept apart from the catalogue of names and strengths because torchvision, which
they are built on, takes seconds to import.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode


def _gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):  # the functional draws from the global generator: seed a private copy
        torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
        return F.gaussian_noise(x, sigma=std)


def _gaussian_blur(x: torch.Tensor, sigma: float, _: torch.Generator) -> torch.Tensor:
    radius = int(4 * sigma + 0.5)  # scikit-image's kernel, which the references blur with
    size = min(2 * radius + 1, 2 * min(x.shape[-2:]) - 1)  # reflection pads less than a side
    return F.gaussian_blur(x, [size, size], [sigma, sigma])


def _contrast(x: torch.Tensor, factor: float, _: torch.Generator) -> torch.Tensor:
    return F.adjust_contrast(x, factor)


def _brightness(x: torch.Tensor, shift: float, _: torch.Generator) -> torch.Tensor:
    """HSV value + shift with hue and saturation kept: every channel scales by new value / value; black turns grey."""
    rgb = x.float() / 255
    value = rgb.amax(dim=1, keepdim=True)
    brighter = (value + shift).clamp(max=1)
    out = torch.where(value > 0, rgb * brighter / value.clamp_min(1e-12), brighter)
    return (out * 255).round().to(torch.uint8)


def _jpeg(x: torch.Tensor, quality: float, _: torch.Generator) -> torch.Tensor:
    return F.jpeg(x, int(quality))


def _pixelate(x: torch.Tensor, kept: float, _: torch.Generator) -> torch.Tensor:
    """Box-filtered down and up, as the references do: only the PIL kernel of ``resize`` has a box filter (tensors'
    bilinear and nearest resizing misplace the enlarged pixels by more than the pixelation changes them)."""
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i, image in enumerate(x):
        small = F.resize(F.to_pil_image(image), [int(h * kept), int(w * kept)], interpolation=InterpolationMode.BOX)
        out[i] = F.pil_to_tensor(F.resize(small, [h, w], interpolation=InterpolationMode.BOX))
    return out


def _rotation(x: torch.Tensor, radians: float, generator: torch.Generator) -> torch.Tensor:
    clockwise = torch.rand(len(x), generator=generator) < 0.5
    degrees = math.degrees(radians)
    turned = [F.rotate(x, a, interpolation=InterpolationMode.BILINEAR) for a in (degrees, -degrees)]
    return torch.where(clockwise[:, None, None, None], turned[1], turned[0])


def _translation(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, (len(x), 2), generator=generator) * 2 - 1
    out = torch.empty_like(x)
    for dx in (-1, 1):
        for dy in (-1, 1):
            chosen = (signs[:, 0] == dx) & (signs[:, 1] == dy)
            if chosen.any():
                out[chosen] = F.affine(x[chosen], angle=0.0, translate=[dx * pixels, dy * pixels], scale=1.0,
                                       shear=[0.0, 0.0])
    return out


OPERATIONS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise, "gaussian_blur": _gaussian_blur, "contrast": _contrast,
    "brightness": _brightness, "jpeg": _jpeg, "pixelate": _pixelate, "rotation": _rotation,
    "translation": _translation,
}
