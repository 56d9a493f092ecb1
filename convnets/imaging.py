"""Turning what a user draws or uploads into what a model takes in.

A model trained on MNIST only recognises digits prepared the way MNIST's were, so drawings follow
MNIST's own recipe: crop to the ink, fit it in 20x20 keeping the aspect ratio, and place it in 28x28
with its centre of mass at the centre. Uploads become small RGB squares like CIFAR-10's images.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from convnets.datasets import DatasetSpec
from convnets.errors import ConvnetsError

MNIST_SIDE = 28
DIGIT_BOX = 20  # MNIST fits each digit's bounding box in 20x20, then pads to 28x28
NOISE_FLOOR = 32  # ink fainter than this (of 255) is background noise, not a stroke
MIN_INK_FRACTION = 0.005  # under 0.5 % of the canvas inked is a speck (392 px on 280x280)...
MIN_EXTENT = 0.05  # ...as is ink spanning under 5 % of the canvas in both directions (14 px on 280)
MAX_INK_FRACTION = 0.6  # over 60 % inked is a filled canvas, not a digit

NOTHING_DRAWN = "nothing drawn"
TOO_LITTLE_INK = "too little ink to be a digit"
FILLED = "the canvas is filled: clear it and draw a digit"
TOO_MUCH_INK = "too much ink: this looks like a scribble, not a digit; clear it and draw one digit"

UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers cameras' MPO files too
UPLOAD_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"  # UPLOAD_FORMATS as a person names them
MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes to 120 MB of RGB: larger is refused before decoding


@dataclass(frozen=True, eq=False)
class DrawingResult:
    """The 28x28 model input, or None and the reason there is none, to tell the user."""

    image: np.ndarray | None
    reason: str = ""


def prepare_drawing(drawing: np.ndarray, on_black: bool = False, side: int = MNIST_SIDE) -> DrawingResult:
    """Turn a canvas drawing (HxW grey, HxWx3 RGB or HxWx4 RGBA, any size) into MNIST's 28x28 input (or, for
    another greyscale dataset, its ``side``, the ink's box scaled alike).

    The ink may be light on dark or dark on light (read off the border); on a transparent canvas it is
    whatever is opaque. A uniformly light canvas counts as a dark canvas painted over, hence "filled".
    ``on_black`` says the drawing is light strokes on black (the Draw page's canvas), so nothing is guessed: a
    canvas scribbled over up to its border would otherwise read as dark ink, the gaps, on a light page.
    """
    pixels = _as_uint8(drawing)
    ink, light = (_brightness(pixels), False) if on_black else _ink(pixels)
    inked = ink > 0
    fraction = inked.mean()
    if fraction == 0:
        return DrawingResult(None, FILLED if light else NOTHING_DRAWN)
    if fraction > MAX_INK_FRACTION:
        return DrawingResult(None, TOO_MUCH_INK if on_black else FILLED)
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    small = height < MIN_EXTENT * ink.shape[0] and width < MIN_EXTENT * ink.shape[1]
    if fraction < MIN_INK_FRACTION or small:
        return DrawingResult(None, TOO_LITTLE_INK)

    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = DIGIT_BOX * side / MNIST_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    mass = digit.sum(dtype=np.float64)
    if mass == 0:  # sparse specks that vanish when scaled down
        return DrawingResult(None, TOO_LITTLE_INK)
    ys, xs = np.indices(digit.shape)
    centre = (side - 1) / 2
    top = int(np.clip(round(centre - (ys * digit).sum() / mass), 0, side - digit.shape[0]))
    left = int(np.clip(round(centre - (xs * digit).sum() / mass), 0, side - digit.shape[1]))
    image = np.zeros((side, side), np.uint8)
    image[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return DrawingResult(image)


def _as_uint8(drawing: np.ndarray) -> np.ndarray:
    """Check the drawing's shape and bring its values to uint8, accepting floats in 0..1 or 0..255."""
    if not isinstance(drawing, np.ndarray):
        raise ConvnetsError(f"a drawing must be a numpy array, not {type(drawing).__name__}")
    if drawing.ndim not in (2, 3) or 0 in drawing.shape or drawing.shape[2:] not in ((), (3,), (4,)):
        raise ConvnetsError(f"a drawing must be an HxW, HxWx3 or HxWx4 array, not shape {drawing.shape}")
    if drawing.dtype == np.uint8:
        return drawing
    if drawing.dtype.kind not in "iuf":
        raise ConvnetsError(f"a drawing must hold numbers, not {drawing.dtype}")
    values = drawing.astype(np.float64)
    if not np.isfinite(values).all():
        raise ConvnetsError("a drawing must not contain NaN or infinite values")
    if drawing.dtype.kind == "f" and values.max() <= 1:
        values *= 255
    if values.min() < 0 or values.max() > 255:
        raise ConvnetsError("a drawing's values must lie in 0..1 or 0..255")
    return np.rint(values).astype(np.uint8)


def _border(plane: np.ndarray) -> np.ndarray:
    return np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])


def _brightness(pixels: np.ndarray) -> np.ndarray:
    """Ink 0..255 of light strokes on black: the brightest channel, where the pixel is opaque. Channel by channel,
    not ``max(axis=2)``, which numpy runs some thirty times slower over interleaved channels (2.8 against 0.1 ms
    for the Draw page's 336x336 canvas, on every stroke)."""
    value = pixels if pixels.ndim == 2 else np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        value = np.minimum(value, pixels[..., 3])
    ink = value.copy()
    ink[ink < NOISE_FLOOR] = 0
    return ink


def _ink(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Ink 0..255 per pixel, as contrast against the background read off the border; and if that is light.

    Against a dark background the brightest channel is the ink (so a red stroke counts fully), against a
    light one the darkest channel is.
    """
    if pixels.ndim == 3 and pixels.shape[2] == 4 and np.median(_border(pixels[..., 3])) < 128:
        value, light = pixels[..., 3], False  # transparent background: strokes are what is opaque
    elif pixels.ndim == 2:
        value = pixels
        light = bool(np.median(_border(value)) > 127)
    else:
        rgb = pixels[..., :3]
        light = bool(np.median(_border(rgb @ np.array([0.299, 0.587, 0.114]))) > 127)
        value = rgb.min(axis=2) if light else rgb.max(axis=2)
    value = value.astype(np.float64)
    background = float(np.median(_border(value)))
    span = max(background if light else 255 - background, 1)  # the most contrast ink can have
    contrast = (background - value if light else value - background) / span
    ink = np.clip(np.rint(contrast * 255), 0, 255).astype(np.uint8)
    ink[ink < NOISE_FLOOR] = 0
    return ink, light


def prepare_upload(data: bytes, size: int = 32, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Turn an uploaded image file into a size x size x 3 uint8 RGB array, as CIFAR-10 models expect.

    Honours EXIF orientation, composites transparency onto white, centre-crops to a square and resizes
    with antialiasing. Anything wrong with the file is a ConvnetsError, whatever the bytes.
    """
    if not data:
        raise ConvnetsError("the file is empty")
    try:
        with warnings.catch_warnings():
            # warnings about a user's odd file are noise: it decodes or raises
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as image:
                width, height = image.size  # from the header: nothing is decoded yet
                if width * height > max_pixels:
                    raise ConvnetsError(
                        f"the image is {width}×{height} pixels; the limit is {max_pixels / 1e6:g} megapixels"
                    )
                rgb = _to_rgb(ImageOps.exif_transpose(image))
        side = min(rgb.size)
        left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
        square = rgb.crop((left, top, left + side, top + side))
        return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0))
    except ConvnetsError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses at open, before the header check above, what is over its own (maybe lower) limit
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ConvnetsError(f"the image is too large: over the limit of {limit / 1e6:g} megapixels") from exc
    except UnidentifiedImageError as exc:
        raise ConvnetsError(f"not a {UPLOAD_NAMES} image, whatever its name says") from exc
    except Exception as exc:  # Pillow's decoders fail in many ways on bad data; all mean the same here
        raise ConvnetsError("the image file is truncated or corrupt") from exc


def prepare_for(data: bytes, spec: DatasetSpec) -> tuple[np.ndarray | None, str | None]:
    """An image file as an input of a dataset's models, or None and why not: for a colour dataset the photo
    centre-cropped at its side; for greyscale digits the ink found and centred as MNIST's are (a photo of a digit
    on paper, or a drawing); for other greyscale datasets the photo in grey."""
    if spec.channels == 3:
        return prepare_upload(data, spec.size), None
    if spec.digits:
        drawing = prepare_drawing(prepare_upload(data, size=112), side=spec.size)
        return drawing.image, drawing.reason
    return np.asarray(Image.fromarray(prepare_upload(data, spec.size)).convert("L")), None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB: wide greys scaled (not clipped) to 8 bits, transparency onto white."""
    if image.mode == "F" or image.mode.startswith("I"):
        return _wide_to_grey(image).convert("RGB")
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def _wide_to_grey(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit and float greys to 8 bits by their nominal range.

    I;16 is 0..65535. For I and F the range is not in the file, so take the smallest usual one that
    holds the values: 0..1 (float only), 0..255, 0..65535, else the image's own maximum.
    """
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(values.max(initial=0))
    ranges = (1.0, 255.0, 65535.0) if image.mode == "F" else (255.0, 65535.0)
    top = 65535.0 if image.mode.startswith("I;16") else next((r for r in ranges if peak <= r), peak)
    return Image.fromarray(np.rint(np.clip(values, 0, top) * (255 / top)).astype(np.uint8))


def to_display(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """Upscale a small model input by pixel repetition so each input pixel shows as a crisp block."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


@cache
def upload_extensions() -> list[str]:
    """The file name extensions of the formats uploads may be in ("png", "jpg", "tif", ...), for an uploader to
    accept exactly what ``prepare_upload`` reads (asked of Pillow when first needed: it loads every plugin)."""
    return sorted(ext[1:] for ext, kind in Image.registered_extensions().items() if kind in UPLOAD_FORMATS)


def is_image_name(name: str) -> bool:
    """Whether a file name has the extension of a format uploads may be in (.png, .jpg, .jpeg, .webp, ...) and is
    not hidden (a camera card's "._IMG_0001.JPG" is the file's metadata, not an image)."""
    return not name.startswith(".") and Image.registered_extensions().get(Path(name).suffix.lower()) in UPLOAD_FORMATS


def mosaic(tiles: np.ndarray, columns: int, scale: int = 1, gap: int = 1) -> np.ndarray:
    """Small images (NxHxW grey or NxHxWx3, values 0..1) in rows of `columns`, each enlarged `scale` times with
    `gap` white pixels between them, as one uint8 image: one picture for a page to send instead of hundreds."""
    if len(tiles) == 0 or columns < 1:
        raise ConvnetsError("a mosaic needs at least one image and one column")
    tiles = np.clip(np.nan_to_num(tiles.astype(np.float32)), 0, 1)
    if tiles.ndim == 3:
        tiles = tiles[..., None]
    n, h, w, c = tiles.shape
    rows, columns = -(-n // columns), min(columns, n)
    step_h, step_w = h * scale + gap, w * scale + gap
    out = np.full((rows * step_h - gap, columns * step_w - gap, c), 255, np.uint8)
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * step_h, (i % columns) * step_w
        out[top : top + h * scale, left : left + w * scale] = to_display(np.rint(tile * 255).astype(np.uint8), scale)
    return out[..., 0] if c == 1 else out


def kernel_tiles(weights: np.ndarray) -> np.ndarray:
    """A first convolution's out×in×k×k weights as N×k×k×in images in 0..1 (``mosaic``'s tiles), mid-grey for a zero
    weight, each kernel on its own scale: bright where it wants light, dark where it wants dark, coloured where it
    wants a colour."""
    w = np.asarray(weights, np.float32)
    largest = np.maximum(np.abs(w).max(axis=(1, 2, 3), keepdims=True), 1e-12)
    return (0.5 + 0.5 * w / largest).transpose(0, 2, 3, 1)


# A heat colour scale (blue, cyan, yellow, red) for maps laid over an image: low is cool, high is hot.
_HEAT_STOPS = np.array([[0, 0, 255], [0, 200, 255], [255, 230, 0], [255, 0, 0]], np.float32)


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """HxW values in 0..1 as HxWx3 float RGB (0..255) on the heat colour scale."""
    position = np.clip(heat, 0, 1) * (len(_HEAT_STOPS) - 1)
    low = np.minimum(position.astype(int), len(_HEAT_STOPS) - 2)
    frac = (position - low)[..., None]
    return _HEAT_STOPS[low] * (1 - frac) + _HEAT_STOPS[low + 1] * frac


def heat_overlay(image: np.ndarray, heat: np.ndarray, scale: int = 1) -> np.ndarray:
    """The model's input in grey with a 0..1 map laid over it in colour, the more opaque the hotter: where the map
    is 0 the input shows through, so one can see what the hot places are. HxWx3 uint8, enlarged `scale` times."""
    grey = image.reshape(*image.shape[:2], -1).astype(np.float32).mean(axis=2, keepdims=True)
    alpha = (0.15 + 0.6 * np.clip(heat, 0, 1))[..., None]
    blended = (1 - alpha) * grey + alpha * heat_colours(heat)
    return to_display(np.rint(blended).astype(np.uint8), scale)
