"""Untrusted image bytes -> RGB Pillow image -> the 256x256 [-1, 1] array the VQGAN encodes."""

from __future__ import annotations

import hashlib
import io

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


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode the first frame of `data` to RGB, honouring EXIF orientation, alpha composited on white.

    Reasons: "empty", "svg" (vector/markup), "not_image", "too_many_pixels", "decode_error".
    The pixel cap is checked from the header, before any pixel data is decompressed.
    """
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
        if width * height > max_pixels or width <= 0 or height <= 0:
            raise ImageDecodeError("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as error:
        raise ImageDecodeError("not_image", str(error)) from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("too_many_pixels", str(error)) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as error:
        raise ImageDecodeError("decode_error", f"{type(error).__name__}: {error}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Every Pillow mode web images come in -> RGB (16-bit scaled, not clipped; alpha on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale (PNG/TIFF): Pillow's convert("L") would clip at 255 instead of scaling.
        pixels = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "L")
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


def crop(image: Image.Image, seed_key: str) -> np.ndarray:
    """Short side -> 256 (bicubic, antialiased), then the 256x256 crop seeded by `seed_key`: uint8 (256, 256, 3).

    What the data job moves between workers: a quarter of the bytes of the float input the model takes.
    ImageDecodeError("extreme_aspect_ratio") beyond MAX_ASPECT_RATIO, before any resampling.
    """
    width, height = image.size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError("extreme_aspect_ratio", f"{width}x{height} is beyond {MAX_ASPECT_RATIO}:1")
    image = image.convert("RGB")
    scale = IMAGE_SIZE / min(width, height)
    new_size = (max(IMAGE_SIZE, round(width * scale)), max(IMAGE_SIZE, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    left, top = crop_offset(seed_key, *new_size)
    return np.asarray(image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)), dtype=np.uint8)


def to_pixels(crops: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) -> the VQGAN's float32 input (..., 3, H, W) in [-1, 1]."""
    pixels = np.asarray(crops, dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3))


def preprocess(image: Image.Image, seed_key: str) -> np.ndarray:
    """`crop` then `to_pixels`: float32 (3, 256, 256) in [-1, 1], ready for the VQGAN."""
    return to_pixels(crop(image, seed_key))
