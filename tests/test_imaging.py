"""Tests for turning drawings and uploads into model input, with real images built by Pillow."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw

from convnets.errors import ConvnetsError
from convnets.imaging import (
    FILLED,
    NOISE_FLOOR,
    NOTHING_DRAWN,
    TOO_LITTLE_INK,
    TOO_MUCH_INK,
    DrawingResult,
    _brightness,
    prepare_drawing,
    prepare_upload,
    to_display,
    upload_extensions,
)

SIDE = 280
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- drawings -----------------------------------------------------------------------------------


def canvas(digit: str, x: int, y: int, size: int, width: int = 18) -> np.ndarray:
    """A 280x280 opaque black RGBA canvas with a white digit drawn in a size-high box at (x, y)."""
    image = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    s = size
    if digit == "1":
        draw.line([(x + s * 0.3, y + s * 0.2), (x + s * 0.5, y), (x + s * 0.5, y + s)], "white", width)
    elif digit == "7":
        draw.line([(x, y), (x + s * 0.6, y), (x + s * 0.25, y + s)], "white", width)
    else:
        draw.ellipse([x, y, x + s * 0.6, y + s], outline="white", width=width)
    return np.asarray(image)


DRAWINGS = [
    (digit, x, y, size, width)
    for digit in "170"
    for x, y, size, width in [(100, 40, 200, 18), (10, 10, 80, 10), (150, 120, 150, 25), (60, 150, 120, 6)]
]


def check_mnist_like(image: np.ndarray) -> None:
    assert image.shape == (28, 28) and image.dtype == np.uint8
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    assert max(height, width) <= 21 and max(height, width) >= 18  # fitted to the 20x20 box
    ys, xs = np.indices(image.shape)
    mass = image.sum(dtype=np.float64)
    assert abs((ys * image).sum() / mass - 14) <= 1
    assert abs((xs * image).sum() / mass - 14) <= 1


@pytest.mark.parametrize(("digit", "x", "y", "size", "width"), DRAWINGS)
def test_drawing_becomes_centred_mnist_digit(digit: str, x: int, y: int, size: int, width: int) -> None:
    rgba = canvas(digit, x, y, size, width)
    result = prepare_drawing(rgba)
    assert result.reason == ""
    check_mnist_like(result.image)

    inverted = rgba.copy()
    inverted[..., :3] = 255 - inverted[..., :3]  # black ink on a white canvas
    transparent = rgba.copy()
    transparent[..., 3] = rgba[..., 0]  # white ink on a transparent canvas
    transparent[..., :3] = 0
    grey = rgba[..., 0]
    for variant in (inverted, transparent, rgba[..., :3], grey, grey / 255.0, grey.astype(np.float32)):
        np.testing.assert_array_equal(prepare_drawing(variant).image, result.image)


def test_digit_is_scaled_by_its_longer_side_keeping_aspect() -> None:
    image = prepare_drawing(canvas("1", 100, 40, 200, 18)).image
    cols = np.flatnonzero(image.any(axis=0))
    assert cols[-1] + 1 - cols[0] <= 10  # a "1" stays narrow rather than being stretched to 20


def test_coloured_ink_counts_fully() -> None:
    red = canvas("0", 100, 40, 200).copy()
    red[..., 1:3] = 0
    white = canvas("0", 100, 40, 200)
    np.testing.assert_array_equal(prepare_drawing(red).image, prepare_drawing(white).image)


def test_grey_canvas_background_is_not_ink() -> None:
    grey = np.full((SIDE, SIDE), 238, np.uint8)  # a light grey page with a black digit
    grey[canvas("7", 60, 40, 200)[..., 0] > 0] = 0
    result = prepare_drawing(grey)
    check_mnist_like(result.image)
    assert result.image[0, 0] == 0


def test_saturated_colour_background_does_not_divide_by_zero() -> None:
    blue = np.zeros((50, 50, 3), np.uint8)
    blue[..., 2] = 255  # dark by luminance, yet its brightest channel is at full scale
    assert prepare_drawing(blue).reason == NOTHING_DRAWN


def dot(radius: int) -> np.ndarray:
    image = Image.new("RGBA", (SIDE, SIDE), "black")
    ImageDraw.Draw(image).ellipse([140 - radius, 140 - radius, 140 + radius, 140 + radius], "white")
    return np.asarray(image)


@pytest.mark.parametrize(
    ("drawing", "reason"),
    [
        (np.zeros((SIDE, SIDE, 4), np.uint8), NOTHING_DRAWN),  # transparent, untouched
        (np.asarray(Image.new("RGBA", (SIDE, SIDE), "black")), NOTHING_DRAWN),
        (np.asarray(Image.new("RGBA", (SIDE, SIDE), "white")), FILLED),
        (np.full((SIDE, SIDE), 255, np.uint8), FILLED),
        (dot(8), TOO_LITTLE_INK),
        (np.pad(np.full((238, 238), 255, np.uint8), ((0, 42), (0, 42))), FILLED),  # 72 % painted over
        (np.pad(np.full((12, 12), 255, np.uint8), 134), TOO_LITTLE_INK),  # a small square: too small
    ],
    ids=["transparent", "black", "white", "grey-white", "dot", "mostly-painted", "small-square"],
)
def test_no_digit_gives_reason(drawing: np.ndarray, reason: str) -> None:
    assert (prepare_drawing(drawing).image, prepare_drawing(drawing).reason) == (None, reason)


def scribble(spacing: int) -> np.ndarray:
    """The Draw page's canvas (opaque black) scribbled over from edge to edge: a zigzag of thick white strokes."""
    image = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))
    points = [(x, 0 if i % 2 == 0 else SIDE) for i, x in enumerate(range(-20, SIDE + 40, spacing))]
    ImageDraw.Draw(image).line(points, "white", 24)
    return np.asarray(image)


@pytest.mark.parametrize("spacing", [12, 20, 28])
def test_a_scribbled_canvas_says_it_has_too_much_ink(spacing: int) -> None:
    drawing = scribble(spacing)
    assert (drawing[..., 0] > 0).mean() > 0.6  # inked all over, its border too...
    assert prepare_drawing(drawing).reason != TOO_MUCH_INK  # ...which read off the border looks like a light page
    assert (prepare_drawing(drawing, on_black=True).image, prepare_drawing(drawing, on_black=True).reason) == (
        None, TOO_MUCH_INK)


@pytest.mark.parametrize(("digit", "x", "y", "size", "width"), DRAWINGS)
def test_a_digit_on_black_reads_the_same_when_the_background_is_known(digit, x, y, size, width) -> None:
    rgba = canvas(digit, x, y, size, width)
    np.testing.assert_array_equal(prepare_drawing(rgba, on_black=True).image, prepare_drawing(rgba).image)
    assert prepare_drawing(np.asarray(Image.new("RGBA", (SIDE, SIDE), "black")), on_black=True).reason == NOTHING_DRAWN


def test_mnist_sized_input_works() -> None:
    small = np.asarray(Image.fromarray(canvas("7", 60, 40, 200)[..., 0]).resize((28, 28), Image.BILINEAR))
    check_mnist_like(prepare_drawing(small).image)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((SIDE,), np.uint8),
        np.zeros((SIDE, SIDE, 2), np.uint8),
        np.zeros((0, SIDE), np.uint8),
        np.zeros((2, SIDE, SIDE, 4), np.uint8),
        np.full((SIDE, SIDE), np.nan),
        np.full((SIDE, SIDE), np.inf),
        np.full((SIDE, SIDE), 300, np.int32),
        np.full((SIDE, SIDE), -0.5),
        np.zeros((SIDE, SIDE), complex),
        np.zeros((SIDE, SIDE), object),
        [[0, 1], [1, 0]],
    ],
    ids=[
        "1d",
        "2-channels",
        "empty",
        "4d",
        "nan",
        "inf",
        "over-255",
        "negative",
        "complex",
        "object",
        "list",
    ],
)
def test_bad_drawing_arrays_raise(bad: object) -> None:
    with pytest.raises(ConvnetsError):
        prepare_drawing(bad)


def check_drawing_result(result: DrawingResult) -> None:
    assert isinstance(result, DrawingResult)
    if result.image is None:
        assert result.reason in (NOTHING_DRAWN, TOO_LITTLE_INK, FILLED)
    else:
        assert result.reason == ""
        assert result.image.shape == (28, 28) and result.image.dtype == np.uint8


@PROPERTY
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 300), st.integers(1, 300), st.just(4)),
        elements=st.integers(0, 255),
        fill=st.integers(0, 255),
    )
)
def test_any_rgba_array_gives_result(rgba: np.ndarray) -> None:
    check_drawing_result(prepare_drawing(rgba))


@PROPERTY
@given(arrays(np.uint8, st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([3, 4])),
              elements=st.integers(0, 255)))
def test_ink_on_black_is_the_brightest_opaque_channel(pixels: np.ndarray) -> None:
    """The Draw page's fast channel-by-channel reading gives what the plain definition gives, pixel for pixel."""
    value = pixels[..., :3].max(axis=2)
    if pixels.shape[2] == 4:
        value = np.minimum(value, pixels[..., 3])
    expected = np.where(value < NOISE_FLOOR, 0, value)
    assert np.array_equal(_brightness(pixels), expected)


@PROPERTY
@given(
    st.integers(1, 300),
    st.integers(1, 300),
    st.integers(0, 255),
    st.lists(st.tuples(*[st.floats(0, 1)] * 4, st.integers(0, 255), st.integers(1, 40)), max_size=6),
)
def test_any_strokes_give_result(height: int, width: int, background: int, strokes: list) -> None:
    image = Image.new("L", (width, height), background)
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1, colour, thickness in strokes:
        draw.line([(x0 * width, y0 * height), (x1 * width, y1 * height)], colour, thickness)
    check_drawing_result(prepare_drawing(np.asarray(image)))


def test_to_display_repeats_pixels() -> None:
    grey = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    big = to_display(grey)
    assert big.shape == (224, 224) and big.dtype == np.uint8
    np.testing.assert_array_equal(big[::8, ::8], grey)
    np.testing.assert_array_equal(big[7::8, 7::8], grey)
    assert to_display(np.zeros((32, 32, 3), np.uint8), scale=4).shape == (128, 128, 3)


# --- uploads --------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= tolerance)


def uniform(result: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> None:
    assert result.shape == (32, 32, 3) and result.dtype == np.uint8
    assert np.abs(result.astype(int) - colour).max() <= tolerance, result.reshape(-1, 3)[:4]


TEAL = (20, 140, 160)


def grey16(value: int) -> Image.Image:
    return Image.fromarray(np.full((40, 60), value, np.uint16))


@pytest.mark.parametrize(
    ("data", "colour"),
    [
        (encode(Image.new("RGB", (64, 48), TEAL), "PNG"), TEAL),
        (encode(Image.new("RGB", (64, 48), TEAL), "JPEG", quality=95), TEAL),
        (encode(Image.new("RGB", (64, 48), TEAL), "WEBP", lossless=True), TEAL),
        (encode(Image.new("RGB", (64, 48), TEAL), "BMP"), TEAL),
        (encode(Image.new("RGB", (64, 48), TEAL), "TIFF"), TEAL),
        (encode(Image.new("RGB", (64, 48), TEAL), "GIF"), TEAL),
        (encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG", quality=95), (255, 0, 0)),
        (encode(Image.new("L", (64, 48), 100), "PNG"), (100, 100, 100)),
        (encode(Image.new("LA", (64, 48), (0, 0)), "PNG"), (255, 255, 255)),
        (encode(Image.new("1", (64, 48), 1), "PNG"), (255, 255, 255)),
        (encode(Image.new("RGBA", (64, 48), (0, 0, 0, 0)), "PNG"), (255, 255, 255)),
        (encode(Image.new("RGBA", (64, 48), (255, 0, 0, 128)), "PNG"), (255, 127, 127)),
        (encode(Image.new("RGBA", (64, 48), (255, 0, 0, 128)), "TIFF"), (255, 127, 127)),
        (encode(grey16(32768), "PNG"), (128, 128, 128)),  # 16-bit mid-grey stays mid-grey
        (encode(grey16(65535), "TIFF"), (255, 255, 255)),
        (encode(Image.new("I", (64, 48), 40000), "TIFF"), (155, 155, 155)),  # 32-bit holding 16-bit values
        (encode(Image.new("I", (64, 48), 128), "TIFF"), (128, 128, 128)),  # 32-bit holding 8-bit values
        (encode(Image.new("F", (64, 48), 0.5), "TIFF"), (128, 128, 128)),
        (encode(Image.new("F", (64, 48), 200.0), "TIFF"), (200, 200, 200)),
    ],
    ids=[
        "png",
        "jpeg",
        "webp",
        "bmp",
        "tiff",
        "gif",
        "cmyk-jpeg",
        "grey",
        "grey-alpha",
        "1-bit",
        "transparent",
        "half-transparent",
        "half-transparent-tiff",
        "png-16-bit",
        "tiff-16-bit",
        "tiff-32-bit-int",
        "tiff-32-bit-small-int",
        "tiff-float-0-1",
        "tiff-float-0-255",
    ],
)
def test_upload_formats_and_modes(data: bytes, colour: tuple[int, int, int]) -> None:
    uniform(prepare_upload(data), colour)


def test_palette_png_keeps_its_colours() -> None:
    image = Image.new("P", (60, 60), 0)
    image.putpalette([0, 0, 0, 200, 30, 90] + [0] * 762)
    ImageDraw.Draw(image).rectangle([0, 0, 59, 29], fill=1)  # top half colour 1, bottom half black
    result = prepare_upload(encode(image, "PNG"))
    assert near(result[3, 16], (200, 30, 90)) and near(result[-4, 16], (0, 0, 0))


def test_transparent_palette_png_goes_onto_white() -> None:
    image = Image.new("P", (60, 60), 0)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    ImageDraw.Draw(image).rectangle([0, 0, 59, 29], fill=1)
    result = prepare_upload(encode(image, "PNG", transparency=0))
    assert near(result[3, 16], (10, 200, 10)) and near(result[-4, 16], (255, 255, 255))


def halves(size: tuple[int, int], first: str, second: str) -> Image.Image:
    """An image whose left half is `first` and right half `second`."""
    image = Image.new("RGB", size, second)
    ImageDraw.Draw(image).rectangle([0, 0, size[0] // 2 - 1, size[1]], fill=first)
    return image


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: show rotated 90 degrees clockwise, so the left half goes on top
    data = encode(halves((200, 100), "red", "blue"), "JPEG", quality=95, exif=exif.tobytes())
    result = prepare_upload(data)
    assert near(result[3, 16], (255, 0, 0), 40) and near(result[-4, 16], (0, 0, 255), 40)
    plain = prepare_upload(encode(halves((200, 100), "red", "blue"), "JPEG", quality=95))
    assert near(plain[16, 3], (255, 0, 0), 40) and near(plain[16, -4], (0, 0, 255), 40)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    uniform(prepare_upload(data), (255, 0, 0))


def test_sliver_is_centre_cropped_and_upscaled() -> None:
    result = prepare_upload(encode(halves((10_000, 10), "black", "white"), "PNG"))
    assert result.shape == (32, 32, 3)
    assert near(result[16, 2], (0, 0, 0)) and near(result[16, -3], (255, 255, 255))


def test_upload_size_and_downscale() -> None:
    result = prepare_upload(encode(halves((640, 480), "black", "white"), "PNG"), size=64)
    assert result.shape == (64, 64, 3)
    assert near(result[32, 4], (0, 0, 0)) and near(result[32, -5], (255, 255, 255))


def noise_image(fmt: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), fmt)


def png(width: int, height: int) -> bytes:
    """A tiny PNG whose valid header declares width x height grey pixels: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = [chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(b"\0" * 64)), chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (random.Random(0).randbytes(5000), "not a PNG, JPEG, WebP, GIF, BMP or TIFF image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a PNG, JPEG, WebP, GIF, BMP or TIFF image"),
        (noise_image("PNG")[: len(noise_image("PNG")) // 2], "the image file is truncated or corrupt"),
        (noise_image("JPEG")[: len(noise_image("JPEG")) // 2], "the image file is truncated or corrupt"),
        (png(60_000, 60_000), "the image is too large: over the limit of 40 megapixels"),
        (png(8000, 6000), "the image is 8000×6000 pixels; the limit is 40 megapixels"),
    ],
    ids=["empty", "random", "eps", "truncated-png", "truncated-jpeg", "bomb", "over-limit"],
)
def test_bad_uploads_raise_one_clear_line(data: bytes, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConvnetsError) as caught:
        prepare_upload(data)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert time.perf_counter() - start < 1  # headers are checked before anything is decoded


def test_a_text_file_named_png_is_refused_in_a_users_words_and_the_uploader_takes_every_format_read() -> None:
    with pytest.raises(ConvnetsError) as caught:
        prepare_upload(b"a shopping list, renamed list.png\n" * 20)
    assert "Pillow" not in str(caught.value) and "whatever its name says" in str(caught.value)
    # The uploader's extensions are those of the formats read: TIFF (read above) included, nothing else
    assert {"png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"} <= set(upload_extensions())
    assert not {"eps", "pdf", "ico", "psd"} & set(upload_extensions())


def test_pillow_bomb_limit_applies_under_a_higher_limit() -> None:
    with pytest.raises(ConvnetsError, match=f"over the limit of {Image.MAX_IMAGE_PIXELS / 1e6:g} megapixels"):
        prepare_upload(png(10_000, 10_000), max_pixels=500_000_000)


def test_pixel_limit_is_configurable() -> None:
    data = encode(Image.new("RGB", (100, 100), TEAL), "PNG")
    with pytest.raises(ConvnetsError, match="100×100 pixels; the limit is 0.005 megapixels"):
        prepare_upload(data, max_pixels=5000)


def check_upload(data: bytes) -> None:
    try:
        result = prepare_upload(data)
    except ConvnetsError:
        return
    assert result.shape == (32, 32, 3) and result.dtype == np.uint8


SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"RIFF"]
VALID = [noise_image(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@PROPERTY
@given(st.binary(max_size=4000))
def test_any_bytes_give_image_or_convnets_error(data: bytes) -> None:
    check_upload(data)


@PROPERTY
@given(st.sampled_from(SIGNATURES), st.binary(max_size=4000))
def test_signature_then_garbage_gives_image_or_convnets_error(signature: bytes, rest: bytes) -> None:
    check_upload(signature + rest)


@PROPERTY
@given(st.sampled_from(VALID), st.data())
def test_damaged_images_give_image_or_convnets_error(data: bytes, draw: st.DataObject) -> None:
    damaged = bytearray(data[: draw.draw(st.integers(1, len(data)))])
    for _ in range(draw.draw(st.integers(0, 8))):
        damaged[draw.draw(st.integers(0, len(damaged) - 1))] = draw.draw(st.integers(0, 255))
    check_upload(bytes(damaged))
