"""The `<img src>` form of an image's VQGAN codes: decimal integers joined by single spaces."""

from __future__ import annotations

from collections.abc import Iterable

CODES_PER_IMAGE = 256


def codes_to_src(codes: Iterable[int]) -> str:
    """Write 256 codes as the `src` string; rejects wrong counts and negative values."""
    values = [int(c) for c in codes]
    if len(values) != CODES_PER_IMAGE:
        raise ValueError(f"expected {CODES_PER_IMAGE} codes, got {len(values)}")
    if min(values) < 0:
        raise ValueError("codes must be non-negative")
    return " ".join(str(v) for v in values)


def src_to_codes(src: str, n_embed: int | None = None) -> list[int]:
    """Parse a `src` string written by `codes_to_src`; only that exact form is accepted.

    Exactness (single spaces, plain decimals without sign or leading zeros) makes the mapping a
    bijection, so a page's bytes never depend on who wrote the codes.
    """
    parts = src.split(" ")
    if len(parts) != CODES_PER_IMAGE:
        raise ValueError(f"expected {CODES_PER_IMAGE} space-separated codes, got {len(parts)}")
    codes = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
            raise ValueError(f"not a plain decimal code: {part[:20]!r}")
        value = int(part)
        if n_embed is not None and value >= n_embed:
            raise ValueError(f"code {value} out of range for a codebook of {n_embed}")
        codes.append(value)
    return codes


def is_code_src(src: str, n_embed: int | None = None) -> bool:
    """True when `src` is a valid code string (e.g. to tell codes from URLs in a page)."""
    try:
        src_to_codes(src, n_embed)
    except ValueError:
        return False
    return True
