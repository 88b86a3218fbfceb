"""Untrusted image bytes -> RGB Pillow image -> the 256x256 [-1, 1] array the VQGAN encodes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 256
# 64 MP: far above any web photo worth tokenizing at 256 px, far below what exhausts a worker's memory.
DEFAULT_MAX_PIXELS = 64_000_000
# Longest side over shortest side beyond which an image is not cropped: the 256x256 crop would keep under a
# tenth of a banner or a rule, and scaling a 1 x 100,000 px strip to a short side of 256 would build a
# 256 x 25,600,000 image (GBs) from a few hundred bytes of PNG.
MAX_ASPECT_RATIO = 10
# Raster formats only: Pillow's other plugins include EPS (runs Ghostscript) and exotic parsers
# that web images never need.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO")  # JPEG also opens MPO
_MARKUP_PREFIXES = (b"<svg", b"<?xml", b"<!doctype", b"<html")


class ImageDecodeError(ValueError):
    """Bytes that do not give a usable raster image; `reason` is a short counter name."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# What one decode may hold, at the depth the decoder and the conversion to RGB keep a pixel in (Pillow keeps
# RGB, RGBA, LA, CMYK in 4 bytes; 16-bit greyscale is 2 bytes decoded, 2 copied, 4 widened for its exact
# 1/257 scaling and 1 scaled): 64 MP of 8-bit colour fits, a 124 KB 16-bit 8000x8000 PNG (576 MB) does not.
MAX_DECODE_BYTES = 256_000_000
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I": 13, "F": 9}
_BYTES_PER_PIXEL |= {mode: 9 for mode in ("I;16", "I;16B", "I;16L", "I;16N")}
_WEB_MODES = {"1", "L", "P", "LA", "PA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"}
_WEB_MODES |= set(_BYTES_PER_PIXEL)
# How a decode is reduced to what the crop needs. A JPEG decodes at the smallest DCT scale (1/2, 1/4, 1/8)
# whose short side is still >= 256: up to 7-10x less CPU than a full decode. At 1/8 (DC coefficients only:
# an area average, as img2dataset's OpenCV INTER_AREA resize) crops of 2800x2100 photos differ from those of a full
# decode by a mean of 1.3-3.0 levels, about what re-encoding the photo as a JPEG costs (1.0-3.2); a 2x margin
# would bring that to 0.2-0.3 for 1.6x the CPU. Other formats are box-reduced by an integer factor while
# 3 x 256 remains, where Pillow's reduce-then-resample matches a full resample (0.15-0.2 levels).
REDUCING_GAP = 3
ORIENTATION_TAG = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """`data` opened and checked from its header alone: no pixel is decoded here, so a bomb costs nothing.

    With `min_side`, a JPEG is set to decode at the smallest DCT scale (1/2, 1/4, 1/8) whose short side is
    still >= min_side (`draft`), and the decode budget is checked at that size. Reasons: "empty", "svg",
    "not_image", "too_many_pixels" (over `max_pixels`, or over MAX_DECODE_BYTES at the mode's depth),
    "unsupported_mode", "extreme_aspect_ratio" (beyond MAX_ASPECT_RATIO: a 1 x 64M strip is a few hundred
    bytes of PNG and 256 MB decoded), "decode_error".
    """
    return _open(data, max_pixels, min_side)[0]


def _open(data: bytes, max_pixels: int, min_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """`open_image`, and the size the header declares (a draft makes `image.size` the reduced one)."""
    if not data:
        raise ImageDecodeError("empty")
    head = data[:512].lstrip().lower()
    if b"<svg" in head:
        raise ImageDecodeError("svg", "vector images are not tokenized")
    if head.startswith(_MARKUP_PREFIXES):
        raise ImageDecodeError("not_image", "markup, not an image")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise ImageDecodeError("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
        if image.mode not in _WEB_MODES:
            raise ImageDecodeError("unsupported_mode", image.mode)
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise ImageDecodeError("extreme_aspect_ratio", f"{width}x{height} is beyond {MAX_ASPECT_RATIO}:1")
        header_size = image.size
        if min_side and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (min_side, min_side))
        width, height = image.size
        decoded_bytes = width * height * _BYTES_PER_PIXEL.get(image.mode, 4)
        if decoded_bytes > MAX_DECODE_BYTES:
            raise ImageDecodeError(
                "too_many_pixels",
                f"{width}x{height} {image.mode}: {decoded_bytes} bytes > {MAX_DECODE_BYTES}",
            )
        return image, header_size
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as error:
        raise ImageDecodeError("not_image", str(error)) from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("too_many_pixels", str(error)) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as error:
        raise ImageDecodeError("decode_error", f"{type(error).__name__}: {error}") from None


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode the first frame of `data` to RGB at full size, honouring EXIF orientation, alpha composited on
    white. Every limit is checked from the header before any pixel is decoded (`open_image`'s reasons)."""
    return _decode(data, max_pixels, None)[0]


def decode_for_crop(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    accept: Callable[[int, int], str | None] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """(RGB picture, its full size after EXIF orientation) decoded only as large as `crop` needs: the short
    side stays >= IMAGE_SIZE (or its own, if smaller). A JPEG decodes at a reduced DCT scale (a 2800x2100
    photo at 1/8: 7-10x less CPU than at full size); other formats are box-reduced while
    REDUCING_GAP x IMAGE_SIZE remains. Pass the full size to `crop`, so the crop window is the one the full
    picture gives.

    `accept(width, height)` sees the header's size before any pixel is decoded; a reason it returns is
    raised as ImageDecodeError(reason) (the data job's size and shape rules)."""
    return _decode(data, max_pixels, IMAGE_SIZE, accept)


def _decode(
    data: bytes, max_pixels: int, min_side: int | None, accept: Callable[[int, int], str | None] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    image, (full_width, full_height) = _open(data, max_pixels, min_side)
    reason = accept(full_width, full_height) if accept is not None else None
    if reason is not None:
        raise ImageDecodeError(reason, f"{full_width}x{full_height}")
    try:
        image.seek(0)
        image.load()
        if min_side and image.mode not in ("1", "P") and not image.mode.startswith("I;16"):
            factor = min(image.size) // (REDUCING_GAP * min_side)
            if factor >= 2:
                image = image.reduce(factor)
        if image.getexif().get(ORIENTATION_TAG) in QUARTER_TURNS:
            full_width, full_height = full_height, full_width
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image), (full_width, full_height)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("too_many_pixels", str(error)) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as error:
        raise ImageDecodeError("decode_error", f"{type(error).__name__}: {error}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Every Pillow mode web images come in -> RGB (16-bit scaled, not clipped; alpha on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale (PNG/TIFF): Pillow's convert("L") would clip at 255 instead of scaling. Rounded
        # x / 257 in integers (no ties: 257 is odd), in place: float64 and its temporaries took 3 x 8 bytes.
        pixels = np.asarray(image).astype(np.int64 if image.mode == "I" else np.uint32)
        pixels += 128
        pixels //= 257
        np.clip(pixels, 0, 255, out=pixels)
        image = Image.fromarray(pixels.astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def crop_offset(seed_key: str, width: int, height: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """Random yet reproducible crop offset: from a blake2b hash of `seed_key` (the image URL)."""
    digest = hashlib.blake2b(seed_key.encode("utf-8"), digest_size=16, person=b"cm3-crop").digest()
    left = int.from_bytes(digest[:8], "little") % (width - size + 1)
    top = int.from_bytes(digest[8:], "little") % (height - size + 1)
    return left, top


def crop(image: Image.Image, seed_key: str, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """Short side -> 256 (bicubic, antialiased), then the 256x256 crop seeded by `seed_key`: uint8 (256, 256, 3).

    CM3 3.1: every image is randomly cropped to 256x256; the crop is seeded by the URL, so re-runs agree.
    `full_size`: the picture's size before `decode_for_crop` reduced it; the resize then targets the size the
    full picture scales to, so the crop window does not depend on how far the decoder reduced it.
    What the data job moves between workers: a quarter of the bytes of the float input the model takes.
    ImageDecodeError("extreme_aspect_ratio") beyond MAX_ASPECT_RATIO, before any resampling.
    """
    resized = resized_for_crop(image, full_size)
    left, top = crop_offset(seed_key, *resized.size)
    return np.asarray(resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)), dtype=np.uint8)


def resized_for_crop(image: Image.Image, full_size: tuple[int, int] | None = None) -> Image.Image:
    """`image` (RGB) with its short side scaled to IMAGE_SIZE: what `crop` cuts from (see there)."""
    width, height = full_size or image.size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError("extreme_aspect_ratio", f"{width}x{height} is beyond {MAX_ASPECT_RATIO}:1")
    image = image.convert("RGB")
    scale = IMAGE_SIZE / min(width, height)
    new_size = (max(IMAGE_SIZE, round(width * scale)), max(IMAGE_SIZE, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    return image


def to_pixels(crops: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) -> the VQGAN's float32 input (..., 3, H, W) in [-1, 1]."""
    pixels = np.asarray(crops, dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3))


def preprocess(image: Image.Image, seed_key: str) -> np.ndarray:
    """`crop` then `to_pixels`: float32 (3, 256, 256) in [-1, 1], ready for the VQGAN."""
    return to_pixels(crop(image, seed_key))
