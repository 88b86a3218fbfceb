"""Training objectives on one document window (numpy, no torch).

`cm3` (CM3 section 2): n = clamp(Poisson(1), 1, 16) spans with endpoints uniform in [0, s], disjoint and
ordered; span i is replaced by <mask:i>, and <mask:i> + span i are appended for each span in order, then
<eos>. `clm`: the document, then <eos>. Randomness comes from a counter-based generator keyed by
(seed, epoch, document key, window), so any window's masking can be rebuilt alone, on any machine and
any numpy version.
"""

from __future__ import annotations

import math

import numpy as np

MAX_SPANS = 16
OBJECTIVES = ("cm3", "clm")
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
# P(Poisson(1) <= k) for k = 0 .. MAX_SPANS - 1; anything above is clamped to MAX_SPANS.
_POISSON1_CDF = [sum(math.exp(-1.0) / math.factorial(i) for i in range(k + 1)) for k in range(MAX_SPANS)]


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a bijective 64-bit hash."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class WindowRandom:
    """splitmix64 stream keyed by integers; same keys -> same draws everywhere."""

    def __init__(self, *keys: int) -> None:
        state = 0
        for k in keys:
            state = _mix64(((state ^ (k & _M64)) + _GOLDEN) & _M64)
        self.state = state

    def next64(self) -> int:
        self.state = (self.state + _GOLDEN) & _M64
        return _mix64(self.state)

    def below(self, n: int) -> int:
        """Uniform integer in [0, n) (multiply-shift; bias < n / 2**64)."""
        return (self.next64() * n) >> 64

    def uniform(self) -> float:
        return (self.next64() >> 11) * (1.0 / (1 << 53))

    def span_count(self) -> int:
        """clamp(Poisson(1), 1, MAX_SPANS) by inverting the CDF."""
        u = self.uniform()
        for k, c in enumerate(_POISSON1_CDF):
            if u < c:
                return max(k, 1)
        return MAX_SPANS


def draw_spans(rng: WindowRandom, length: int, max_spans: int = MAX_SPANS) -> np.ndarray:
    """(n, 2) int64 [start, end) spans: 2n distinct endpoints uniform in [0, length], sorted and paired.

    Sorting iid endpoints and pairing neighbours is the same law as drawing n uniform spans conditioned on
    not intersecting; n is reduced only when the window has fewer than 2n endpoints to offer.
    """
    n = min(rng.span_count(), max_spans, (length + 1) // 2)
    if n <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    n_points = length + 1
    if n_points <= 8 * n:  # small window: partial Fisher-Yates over all endpoints
        pool = list(range(n_points))
        for i in range(2 * n):
            j = i + rng.below(n_points - i)
            pool[i], pool[j] = pool[j], pool[i]
        points = pool[: 2 * n]
    else:
        chosen: set[int] = set()
        while len(chosen) < 2 * n:
            chosen.add(rng.below(n_points))
        points = list(chosen)
    return np.sort(np.asarray(points, dtype=np.int64)).reshape(n, 2)


def cm3_mask(tokens: np.ndarray, spans: np.ndarray, mask_offset: int, eos_id: int) -> np.ndarray:
    """Move the spans to the end behind their sentinels: x0 <m0> x1 <m1> x2 ... <m0> s0 <m1> s1 ... <eos>."""
    pieces: list[np.ndarray] = []
    prev = 0
    sentinels = np.arange(mask_offset, mask_offset + len(spans), dtype=tokens.dtype)
    for i, (start, end) in enumerate(spans):
        pieces.append(tokens[prev:start])
        pieces.append(sentinels[i : i + 1])
        prev = end
    pieces.append(tokens[prev:])
    for i, (start, end) in enumerate(spans):
        pieces.append(sentinels[i : i + 1])
        pieces.append(tokens[start:end])
    pieces.append(np.asarray([eos_id], dtype=tokens.dtype))
    return np.concatenate(pieces)


def cm3_unmask(sequence: np.ndarray, mask_offset: int, n_masks: int, eos_id: int) -> np.ndarray:
    """Inverse of `cm3_mask`: put every span back in place of its sentinel (drops the final <eos>)."""
    seq = np.asarray(sequence)
    if len(seq) and seq[-1] == eos_id:
        seq = seq[:-1]
    is_mask = (seq >= mask_offset) & (seq < mask_offset + n_masks)
    positions = np.flatnonzero(is_mask)
    n = len(positions) // 2
    if len(positions) != 2 * n:
        raise ValueError("a CM3 sequence has every sentinel exactly twice")
    placeholders, headers = positions[:n], positions[n:]
    expected = np.arange(mask_offset, mask_offset + n)
    if not (np.array_equal(seq[placeholders], expected) and np.array_equal(seq[headers], expected)):
        raise ValueError("sentinels are not <mask:0>..<mask:n-1> in order, twice")
    bounds = list(headers) + [len(seq)]
    pieces = []
    prev = 0
    for i, at in enumerate(placeholders):
        pieces.append(seq[prev:at])
        pieces.append(seq[bounds[i] + 1 : bounds[i + 1]])
        prev = at + 1
    pieces.append(seq[prev : headers[0]] if n else seq[prev:])
    return np.concatenate(pieces) if pieces else seq


def apply_objective(
    objective: str,
    doc: np.ndarray,
    *,
    window_len: int,
    seed: int,
    epoch: int,
    doc_key: int,
    mask_offset: int,
    eos_id: int,
) -> list[np.ndarray]:
    """The training sequences of one document: one per window of at most `window_len` tokens.

    cm3 masks each window independently and ends each with <eos>; clm ends only the document's last
    window with <eos> (the document continues in the next window).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose from {OBJECTIVES}")
    n_windows = max(1, -(-len(doc) // window_len))
    out = []
    for w in range(n_windows):
        window = doc[w * window_len : (w + 1) * window_len]
        if objective == "cm3":
            spans = draw_spans(WindowRandom(seed, epoch, doc_key, w), len(window))
            out.append(cm3_mask(window, spans, mask_offset, eos_id))
        elif w == n_windows - 1:
            out.append(np.concatenate([window, np.asarray([eos_id], dtype=doc.dtype)]))
        else:
            out.append(window)
    return out


__all__ = [
    "MAX_SPANS",
    "OBJECTIVES",
    "WindowRandom",
    "apply_objective",
    "cm3_mask",
    "cm3_unmask",
    "draw_spans",
]
