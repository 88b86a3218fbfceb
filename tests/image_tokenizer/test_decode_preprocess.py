"""decode_image on every Pillow mode the web serves, bombs and non-images; seeded 256x256 preprocessing."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from image_tokenizer import ImageDecodeError, crop, decode_image, preprocess
from image_tokenizer.decode import DEFAULT_MAX_PIXELS, crop_offset


def encoded(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def test_rgb_jpeg():
    image = decode_image(encoded(Image.new("RGB", (32, 16), (10, 200, 30)), "JPEG", quality=95))
    assert image.mode == "RGB" and image.size == (32, 16)
    assert np.abs(np.asarray(image).astype(int) - [10, 200, 30]).max() <= 3


def test_palette_with_transparency_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 1), 1)
    decoded = decode_image(encoded(image, "PNG", transparency=0))
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((1, 1)) == (0, 0, 255)
    opaque = decode_image(encoded(image, "PNG"))
    assert opaque.getpixel((0, 0)) == (255, 0, 0)


def test_rgba_and_la_alpha_on_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    decoded = decode_image(encoded(rgba, "PNG"))
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((1, 0)) in ((127, 127, 127), (128, 128, 128))
    la = decode_image(encoded(Image.new("LA", (2, 2), (0, 0)), "PNG"))
    assert la.mode == "RGB" and la.getpixel((0, 0)) == (255, 255, 255)


def test_greyscale_and_bilevel():
    assert decode_image(encoded(Image.new("L", (3, 3), 77), "PNG")).getpixel((0, 0)) == (77, 77, 77)
    assert decode_image(encoded(Image.new("1", (3, 3), 1), "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    decoded = decode_image(encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95))
    red, green, blue = decoded.getpixel((4, 4))
    assert decoded.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_greyscale_is_scaled_not_clipped():
    pixels = np.array([[0, 32896, 65535]], dtype=np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode.startswith("I;16")
    decoded = decode_image(encoded(image, "PNG"))
    assert [decoded.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_first_frame_of_animation():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert decode_image(data).getpixel((4, 4)) == (255, 0, 0)
    webp = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert decode_image(webp).getpixel((4, 4)) == (255, 0, 0)


def test_exif_orientation_applied():
    image = Image.new("RGB", (20, 10), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = decode_image(encoded(image, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (10, 20)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "svg"),
        (b"<?xml version='1.0'?>\n<svg/>", "svg"),
        (b"<!DOCTYPE html><html></html>", "not_image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not_image"),  # EPS would run Ghostscript
        (b"GIF89a" + b"\x00" * 5, "not_image"),  # header only: Pillow cannot identify it
        (b"just some text", "not_image"),
    ],
)
def test_non_images_rejected(data, reason):
    with pytest.raises(ImageDecodeError) as raised:
        decode_image(data)
    assert raised.value.reason == reason


def test_truncated_png_is_a_decode_error():
    data = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(ImageDecodeError) as raised:
        decode_image(data[: len(data) // 2])
    assert raised.value.reason == "decode_error"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no data: what a bomb looks like at open()."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("side", "cap"), [(5_000, 10_000_000), (100_000, DEFAULT_MAX_PIXELS)])
def test_decompression_bomb_refused_from_the_header(side, cap):
    started = time.monotonic()
    with pytest.raises(ImageDecodeError) as raised:
        decode_image(png_header_only(side, side), max_pixels=cap)
    assert raised.value.reason == "too_many_pixels" and time.monotonic() - started < 1.0


def test_real_compressed_bomb_refused():
    bomb = encoded(Image.new("L", (4_000, 4_000), 0), "PNG", optimize=True)
    assert len(bomb) < 100_000
    with pytest.raises(ImageDecodeError, match="too_many_pixels"):
        decode_image(bomb, max_pixels=1_000_000)
    assert decode_image(bomb).size == (4_000, 4_000)  # under the default cap it is a valid image


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_an_image_or_a_typed_error(data):
    try:
        assert decode_image(data).mode == "RGB"
    except ImageDecodeError as error:
        assert error.reason in {"empty", "svg", "not_image", "too_many_pixels", "decode_error"}


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


def test_preprocess_shape_range_and_short_side():
    array = preprocess(gradient(600, 300), "https://example.org/a.png")
    assert array.shape == (3, 256, 256) and array.dtype == np.float32
    assert -1.0 <= array.min() and array.max() <= 1.0
    # short side 300 -> 256 keeps the whole height: top row is the image's top row
    assert array[1, 0].max() < -0.95 and array[1, -1].min() > 0.95
    assert preprocess(gradient(40, 30), "small").shape == (3, 256, 256)  # small images are upscaled


def test_crop_is_deterministic_and_depends_on_the_url():
    image = gradient(900, 256)
    first = preprocess(image, "https://example.org/a.png")
    assert np.array_equal(first, preprocess(image, "https://example.org/a.png"))
    offsets = {crop_offset(f"https://example.org/{i}.png", 900, 256) for i in range(20)}
    assert len(offsets) > 10 and all(top == 0 and 0 <= left <= 644 for left, top in offsets)
    others = [preprocess(image, f"https://example.org/{i}.png") for i in range(3)]
    assert any(not np.array_equal(first, other) for other in others)


def test_crop_offset_is_stable_across_processes():
    # blake2b of the key: a value fixed for all machines and Python versions (no PYTHONHASHSEED)
    assert crop_offset("https://example.org/cat.jpg", 1000, 1000) == crop_offset(
        "https://example.org/cat.jpg", 1000, 1000
    )
    left, top = crop_offset("https://example.org/cat.jpg", 1000, 1000)
    import hashlib

    digest = hashlib.blake2b(b"https://example.org/cat.jpg", digest_size=16, person=b"cm3-crop").digest()
    assert (left, top) == (
        int.from_bytes(digest[:8], "little") % 745,
        int.from_bytes(digest[8:], "little") % 745,
    )


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1), (2_600, 256)])
def test_thin_images_are_refused_before_any_resampling(size):
    """A few hundred bytes of PNG, 1 x 100,000 px, passes the pixel cap; scaled to a short side of 256 it
    would be a 256 x 25,600,000 image. Beyond 10:1 the crop is refused as a counted reason instead."""
    thin = decode_image(encoded(Image.new("RGB", size, (200, 30, 30)), "PNG"))
    started = time.monotonic()
    with pytest.raises(ImageDecodeError) as raised:
        crop(thin, seed_key="https://img.example/rule.png")
    assert raised.value.reason == "extreme_aspect_ratio" and time.monotonic() - started < 0.5
    assert crop(Image.new("RGB", (2_560, 256)), seed_key="x").shape == (256, 256, 3)  # 10:1 still crops
