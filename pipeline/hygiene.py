"""Corpus-level image and document hygiene, as plain functions (`pipeline.beam_steps` wires them in).

What the builders of interleaved image-text web corpora (OBELICS, MINT-1T, MMC4, datatrove, img2dataset)
clean at corpus level rather than per page, because here every image costs 256 training tokens and one
VQGAN call: site furniture (an image URL used on many pages), tracking pixels and slivers, pages with
hundreds of images, the same picture served under several URLs, and near-duplicate documents.

Every decision is a function of content and URLs only (hashes with fixed seeds, no global RNG, winners by
`stable_hash`), so any runner and any re-run gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from c4_filters import stable_hash
from pipeline.doc_steps import losers

# Reasons an image URL is removed by the rules below (not a fetch/decode failure): counted as
# images.filtered.<reason> (one per unique image URL) in the funnel report.
URL_REPEATS = "url_repeats"
TOO_SMALL = "too_small"
ASPECT_RATIO = "aspect_ratio"
FILTER_REASONS = (URL_REPEATS, TOO_SMALL, ASPECT_RATIO)
NEAR_DUPLICATE = "near_duplicate"  # an image URL that shares another URL's codes (same perceptual hash)


@dataclass(frozen=True)
class Hygiene:
    """The corpus-level rules and their limits; 0 turns a limit off.

    Defaults follow the anchors: OBELICS removes image URLs used by more than 10 documents and images
    under 150 px on a side; OBELICS and MMC4 cut extreme aspect ratios (we keep up to 3:1, the looser end:
    the 256x256 crop still shows a third of such an image); OBELICS and datatrove (FineWeb) remove
    near-duplicate documents with MinHash (5-gram word shingles, 14 bands of 8 hashes: datatrove's
    defaults, pairs above ~0.72 Jaccard similarity are likely to collide in a band).
    """

    max_image_url_repeats: int = 10
    min_image_side: int = 150
    max_image_aspect_ratio: float = 3.0
    max_images_per_doc: int = 30
    image_dedup: bool = True
    doc_dedup: bool = True

    def __post_init__(self):
        for name in ("max_image_url_repeats", "min_image_side", "max_images_per_doc"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.max_image_aspect_ratio != 0 and self.max_image_aspect_ratio < 1:
            raise ValueError(
                f"max_image_aspect_ratio must be >= 1 (0 = off), got {self.max_image_aspect_ratio}"
            )


# ---------------------------------------------------------------- images


def over_url_repeats(n_documents: int, hygiene: Hygiene) -> bool:
    """An image URL referenced by more than `max_image_url_repeats` documents is site furniture (logos,
    icons, buttons, share widgets): OBELICS removes it from every document."""
    return hygiene.max_image_url_repeats > 0 and n_documents > hygiene.max_image_url_repeats


def image_shape_reason(width: int, height: int, hygiene: Hygiene) -> str | None:
    """TOO_SMALL for a decoded short side under `min_image_side` (tracking pixels, icons, spacers: the crop
    would upscale them into a blur), ASPECT_RATIO beyond `max_image_aspect_ratio` (banners, rules), else None."""
    short, long = min(width, height), max(width, height)
    if hygiene.min_image_side and short < hygiene.min_image_side:
        return TOO_SMALL
    if hygiene.max_image_aspect_ratio and long > hygiene.max_image_aspect_ratio * short:
        return ASPECT_RATIO
    return None


def perceptual_hash(image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash, 16 hex digits) + the mean colour in 8 levels per channel:
    the same picture re-encoded, resized or recompressed under another URL gets the same value, so it is
    encoded once. phash sees only luminance (a red and a blue flat logo share it); the colour part keeps
    pictures that differ in colour apart, since sharing codes there would be wrong, while splitting a rare
    copy whose mean sits on a level boundary only costs one more encoding."""
    import imagehash
    from PIL import Image

    mean = np.asarray(image.convert("RGB").resize((8, 8), Image.Resampling.BOX), dtype=np.float64).mean(
        (0, 1)
    )
    return f"{imagehash.phash(image)}-" + "".join(str(int(level) // 32) for level in mean)


def capped_srcs(srcs: list[str], hygiene: Hygiene) -> list[str]:
    """The first `max_images_per_doc` distinct image URLs of a document, in document order (0 = all)."""
    return srcs[: hygiene.max_images_per_doc] if hygiene.max_images_per_doc else srcs


def representative(members: Iterable[tuple]) -> tuple | None:
    """The member (url, payload ...) with the smallest URL among images sharing a perceptual hash: a running
    minimum, so one payload (a crop) is held however many URLs serve the picture."""
    best = None
    for member in members:
        if best is None or member[0] < best[0]:
            best = member
    return best


# The pixel check before two URLs share codes: a perceptual hash and a mean colour can be shared by visibly
# different pictures (one made to collide: issue 27), so a URL takes its group's codes only when the picture
# the crop is cut from (short side 256: what the tokenizer sees), squashed to 256x256, is within this mean
# absolute difference per channel of the representative's. Measured on four scikit-image photos: copies
# re-encoded at JPEG quality 40-95, as PNG, at half or twice the size: 1.0-3.2; copies with a +-60 checkerboard
# or stripes that keep the hash and colour key: 6.5-52 (their crops differ by 27-58). A smaller thumbnail
# averages such patterns away (at 64x64: 1.7-4.3 for crops differing by 27-53), so none is used.
THUMBNAIL_SIDE = 256
MAX_NEAR_IDENTICAL_DIFFERENCE = 5


def thumbnail(image) -> np.ndarray:
    """uint8 (256, 256, 3): the picture box-averaged, what `near_identical` compares."""
    from PIL import Image

    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    return np.asarray(image.convert("RGB").resize(side, Image.Resampling.BOX), dtype=np.uint8)


def near_identical(first: np.ndarray, second: np.ndarray) -> bool:
    """Thumbnails within MAX_NEAR_IDENTICAL_DIFFERENCE mean absolute difference (exact, in integers)."""
    total = np.abs(first.astype(np.int32) - second.astype(np.int32)).sum()
    return bool(total <= MAX_NEAR_IDENTICAL_DIFFERENCE * first.size)


def share_codes(key: str, members: Iterable[tuple[str, np.ndarray, np.ndarray | None]]):
    """One perceptual-hash group, (url, crop, thumbnail) per URL -> (label, url, crop to encode or None).

    The smallest URL is the representative: its crop is encoded under `key`. Every other URL whose thumbnail
    is near-identical to the representative's shares those codes (crop None); any other URL is encoded on
    its own, under a label of its own. Order-free (each URL is compared with the representative only) and
    bounded: one crop and one thumbnail held. `members` is iterated twice (a GroupByKey's values are
    re-iterable on every Beam runner)."""
    best = representative(members)
    if best is None:
        return
    best_url, best_crop, best_thumbnail = best
    yield key, best_url, best_crop
    for url, crop, thumb in members:
        if url == best_url:
            continue
        if thumb is not None and best_thumbnail is not None and near_identical(thumb, best_thumbnail):
            yield key, url, None
        else:
            yield f"{key} {url}", url, crop


# ---------------------------------------------------------------- near-duplicate documents (MinHash + LSH)

# datatrove's MinHash defaults: word 5-grams, 14 bands of 8 hashes (fixed: they are part of the rule)
MINHASH_NGRAM = 5
MINHASH_BANDS = 14
MINHASH_ROWS = 8
_WORD = re.compile(r"\w+")
_PRIME = (1 << 32) - 5  # largest prime under 2**32: a*h + b stays below 2**64 in uint64
_MINHASH_BLOCK = 2048  # shingles per block of the signature: a 2048 x 112 uint64 buffer is 1.8 MB


def doc_text(html: str) -> str:
    """The text of a minimal HTML document (what near-duplicate detection compares; attributes excluded)."""
    import lxml.html

    return lxml.html.document_fromstring(html).text_content() if html.strip() else ""


def words(text: str) -> Iterator[str]:
    """Lower-cased word tokens (punctuation and spacing normalised away, as datatrove does before hashing),
    streamed: a multi-megabyte article never holds one string object per word."""
    return (match.group() for match in _WORD.finditer(text.lower()))


def shingle_hashes(tokens: Iterable[str], n: int) -> np.ndarray:
    """Sorted distinct 32-bit hashes of the word n-grams (a document shorter than n is one shingle): 8 bytes
    per word, the n-grams are hashed as they slide past instead of collected as strings."""
    window: deque[str] = deque(maxlen=n)

    def grams() -> Iterator[str]:
        for token in tokens:
            window.append(token)
            if len(window) == n:
                yield " ".join(window)

    hashes = np.fromiter((_hash32(gram) for gram in grams()), dtype=np.uint64)
    if hashes.size == 0 and window:
        hashes = np.array([_hash32(" ".join(window))], dtype=np.uint64)
    return np.unique(hashes)


def _hash32(gram: str) -> int:
    return int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=4).digest(), "little")


def _permutations(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of `count` universal hash functions h -> (a*h + b) mod p, from fixed seeds (no RNG state)."""
    a, b = [], []
    for i in range(count):
        digest = hashlib.blake2b(f"cm3-minhash:{i}".encode(), digest_size=16).digest()
        a.append(1 + int.from_bytes(digest[:8], "little") % (_PRIME - 1))
        b.append(int.from_bytes(digest[8:], "little") % _PRIME)
    return np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64)


_PERMUTATION_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def minhash(hashes: np.ndarray, count: int) -> np.ndarray:
    """MinHash signature (`count` uint32 minima) of a set of 32-bit shingle hashes. The permuted hashes are
    computed `_MINHASH_BLOCK` shingles at a time into one reused buffer, keeping a running minimum: memory is
    count x block words whatever the document's length (the whole outer product took ~1.8 KB per word)."""
    if count not in _PERMUTATION_CACHE:
        _PERMUTATION_CACHE[count] = _permutations(count)
    a, b = _PERMUTATION_CACHE[count]
    prime = np.uint64(_PRIME)
    signature = np.full(count, prime, dtype=np.uint64)  # above every value mod p
    buffer = np.empty((min(len(hashes), _MINHASH_BLOCK), count), dtype=np.uint64)
    for start in range(0, len(hashes), _MINHASH_BLOCK):
        block = hashes[start : start + _MINHASH_BLOCK]
        permuted = buffer[: len(block)]
        np.multiply.outer(block, a, out=permuted)
        permuted += b
        permuted %= prime
        np.minimum(signature, permuted.min(axis=0), out=signature)
    return signature.astype(np.uint32)


def band_keys(text: str) -> list[str]:
    """LSH band keys of a document's text: documents sharing any key are near-duplicate candidates (two
    documents of Jaccard similarity s share one with probability 1 - (1 - s^rows)^bands). Empty for a
    document without words."""
    hashes = shingle_hashes(words(text), MINHASH_NGRAM)
    if hashes.size == 0:
        return []
    rows = MINHASH_ROWS
    signature = minhash(hashes, MINHASH_BANDS * rows)
    keys = []
    for band in range(MINHASH_BANDS):
        chunk = signature[band * rows : (band + 1) * rows].astype("<u4").tobytes()
        keys.append(f"{band}:{hashlib.blake2b(chunk, digest_size=8).hexdigest()}")
    return keys


def band_losers(urls: Iterable[str]) -> Iterator[str]:
    """Documents of one LSH band bucket that lose: all but the one with the smallest (stable_hash(url), url),
    the same winner rule as the span dedup, streamed (`doc_steps.losers`); a URL may be yielded more than
    once."""
    return losers(urls, lambda url: (stable_hash(url), url))
