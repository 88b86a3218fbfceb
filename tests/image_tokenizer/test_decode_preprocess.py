"""decode_image on every Pillow mode the web serves, bombs and non-images; seeded 256x256 preprocessing."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from image_tokenizer import ImageDecodeError, crop, decode_for_crop, decode_image, preprocess
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
        assert error.reason in {
            "empty",
            "svg",
            "not_image",
            "too_many_pixels",
            "unsupported_mode",
            "extreme_aspect_ratio",
            "decode_error",
        }


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
def test_thin_images_are_refused_before_any_pixel_is_decoded(size):
    """A few hundred bytes of PNG, 1 x 100,000 px, passes the pixel cap; scaled to a short side of 256 it
    would be a 256 x 25,600,000 image. Beyond 10:1 it is refused from the header, as a counted reason."""
    data = encoded(Image.new("RGB", size, (200, 30, 30)), "PNG")
    started = time.monotonic()
    with pytest.raises(ImageDecodeError) as raised:
        decode_image(data)
    assert raised.value.reason == "extreme_aspect_ratio" and time.monotonic() - started < 0.5
    with pytest.raises(ImageDecodeError, match="extreme_aspect_ratio"):  # a picture made in memory
        crop(Image.new("RGB", size), seed_key="https://img.example/rule.png")
    assert crop(Image.new("RGB", (2_560, 256)), seed_key="x").shape == (256, 256, 3)  # 10:1 still crops


def png_rows(width: int, height: int, bit_depth: int) -> bytes:
    """A real greyscale PNG of zeros (every row present, so it decodes), compressed as it is streamed:
    8000 x 8000 at 16 bits is 128 MB of pixels in ~124 KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + width * bit_depth // 8)  # filter byte + samples
    rows_per_piece = max(1, (1 << 20) // len(row))
    compressor, compressed = zlib.compressobj(9), []
    for start in range(0, height, rows_per_piece):
        compressed.append(compressor.compress(row * min(rows_per_piece, height - start)))
    compressed.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(compressed))
        + chunk(b"IEND", b"")
    )


PEAK_PROBE = """
import json, resource, sys
from pipeline import images
from pipeline.hygiene import Hygiene
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = images.prepare("https://img.example/x.png", data, Hygiene(**json.loads(sys.argv[2])))[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome, (peak - before) // 1024)
"""


@pytest.mark.parametrize(
    ("width", "height", "bit_depth", "rules", "reason"),
    [
        (8_000, 8_000, 16, {}, "too_many_pixels"),  # 64 MP: at the pixel cap, but 16-bit (issue 27, item 6)
        (1, 64_000_000, 8, {}, "extreme_aspect_ratio"),  # a 1 x 64M strip, within the pixel cap
        (4_000, 16_000, 8, {}, "aspect_ratio"),  # the job's 3:1 shape rule, from the header
        (4_000, 16_000, 8, {"max_image_aspect_ratio": 0}, "ok"),  # the same image kept: decoded, reduced
    ],
)
def test_bombs_are_refused_from_the_header_with_a_small_peak(
    tmp_path, width, height, bit_depth, rules, reason
):
    """The job's path (`pipeline.images.prepare`) in a fresh process: the refusal is a counted reason and
    the peak resident memory it adds stays small, because no pixel of a refused image is decoded."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_rows(width, height, bit_depth))
    assert path.stat().st_size < 300_000
    probe = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(path), json.dumps(rules)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    outcome, added_mib = probe.stdout.split()
    assert outcome == reason
    # refused: nothing decoded; kept: 64 MP of 8-bit grey is decoded once (61 MiB), then reduced 5x
    assert int(added_mib) < (20 if reason != "ok" else 150), f"{outcome}: peak +{added_mib} MiB"


def jpeg_photo(width: int, height: int, **save_args) -> bytes:
    return encoded(gradient(width, height).resize((width, height)), "JPEG", quality=92, **save_args)


def test_a_large_jpeg_decodes_at_a_reduced_scale_with_the_full_pictures_crop_window():
    data = jpeg_photo(2_800, 2_100)
    reduced, full_size = decode_for_crop(data)
    assert full_size == (2_800, 2_100) and reduced.size == (350, 263)  # DCT scale 1/8: short side >= 256
    fast = crop(reduced, "https://img.example/a.jpg", full_size)
    slow = crop(decode_image(data), "https://img.example/a.jpg")
    # the same window of the same picture: only the decoder's downscaling differs
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 3


def test_a_rotated_jpeg_keeps_its_full_size_after_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    reduced, full_size = decode_for_crop(jpeg_photo(2_000, 1_200, exif=exif.tobytes()))
    assert full_size == (1_200, 2_000) and reduced.width < reduced.height


def test_a_small_image_is_decoded_whole():
    data = encoded(gradient(300, 200), "PNG")
    reduced, full_size = decode_for_crop(data)
    assert reduced.size == full_size == (300, 200)
    assert np.array_equal(np.asarray(reduced), np.asarray(decode_image(data)))
