"""Training objectives on one document (numpy, no torch); each a pure function of (seed, epoch, document key,
window), drawn from a counter-based generator, so any window's corruption can be rebuilt alone, on any
machine and any numpy version.

- `cm3` (CM3 section 2): n = clamp(Poisson(1), 1, 16) spans with endpoints uniform in [0, s], disjoint and
  ordered; span i is replaced by <mask:i>, and <mask:i> + span i are appended for each span, then <eos> (on
  a document's last window only: <eos> ends documents, not windows).
- `clm`: the document, then <eos>.
- `t5` (T5 section 3.3.4 / 3.2.3): span corruption of 15 % of the tokens, mean span length 3, each span
  replaced by a unique sentinel; the targets are sentinel + span in order, then a final sentinel. On the
  decoder the corrupted input is a fully visible prefix and only the targets carry loss (the prefix LM).
- `glm` (GLM section 2.2): spans with Poisson(3) lengths until more than 15 % of the tokens are covered;
  Part A (text with one [MASK] per span) attends bidirectionally, Part B (the spans, shuffled, each
  started by [S] and ended by <eos> as [E]) is autoregressive; 2D positions. `glm_doc` (GLM section 2.3,
  multi-task pre-training): half the windows as `glm`, half with one span of 50-100 % of the tokens.
- `unilmv2` (UniLMv2 section 3, Algorithm 1): blockwise masking of 15 % (40 % n-grams of 2-6 tokens, 60 %
  single tokens) in a random factorization order; autoencoding through [M] in the context, partially
  autoregressive through [P] pseudo masks appended with the original tokens, under Figure 5's attention
  mask; L = L_AE + L_PAR (equation 7).

`REGISTRY` holds each objective's window rule, example builder and what the loader and model need to know
(`Objective`). Every objective turns a document into `Example`s whose inputs fit one training row of `seq_len` tokens
whole: a packed row never cuts a sentinel away from its span (see `window_len`). A document longer than one
window is cut at element boundaries, never inside an image's codes or its `<img>` tag (`window_bounds`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_SPANS = 16
T5_SENTINELS = 128  # T5 uses 100; 15 % in spans of mean 3 at 2048 tokens needs 103
NOISE_DENSITY = 0.15
T5_MEAN_SPAN = 3
GLM_POISSON = 3.0
# Extra ids appended after the tokenizer's vocabulary (its layout is unchanged): T5 sentinels, then
# [MASK] (GLM's [MASK] and UniLMv2's [M]), [S] (GLM's [START]) and [P] (UniLMv2's pseudo mask).
N_EXTRA_IDS = T5_SENTINELS + 3
HIDDEN = 1 << 30  # `visible` of a token no other part may see (UniLMv2's [P])
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _poisson_cdf(lam: float, n: int) -> list[float]:
    return [sum(math.exp(-lam) * lam**i / math.factorial(i) for i in range(k + 1)) for k in range(n)]


# P(Poisson(1) <= k) for k = 0 .. MAX_SPANS - 1; anything above is clamped to MAX_SPANS.
_POISSON1_CDF = _poisson_cdf(1.0, MAX_SPANS)
_POISSON3_CDF = _poisson_cdf(GLM_POISSON, 40)


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

    def poisson3_positive(self) -> int:
        """Poisson(3) conditioned on >= 1 (a zero-length span is drawn again)."""
        while True:
            u = self.uniform()
            k = next((k for k, c in enumerate(_POISSON3_CDF) if u < c), len(_POISSON3_CDF))
            if k:
                return k

    def distinct(self, population: int, k: int) -> list[int]:
        """k distinct integers uniform in [0, population), in draw order."""
        if population <= 4 * k:  # small population: partial Fisher-Yates
            pool = list(range(population))
            for i in range(k):
                j = i + self.below(population - i)
                pool[i], pool[j] = pool[j], pool[i]
            return pool[:k]
        chosen: dict[int, None] = {}
        while len(chosen) < k:
            chosen[self.below(population)] = None
        return list(chosen)

    def shuffle(self, items: list) -> list:
        items = list(items)
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


@dataclass(frozen=True)
class SpecialIds:
    """Ids the objectives insert: the tokenizer's <pad>, <eos>, <mask:i>, and the extra ids after its vocab;
    `tag_open`: the text ids in which an HTML tag opens (`CM3Tokenizer.tag_open_ids`), where windows cut."""

    pad_id: int
    eos_id: int
    mask_offset: int
    n_masks: int
    extra_offset: int  # the tokenizer's vocab_size
    tag_open: frozenset[int] = frozenset()

    @property
    def image_offset(self) -> int:
        """First image-code id: the tokenizer lays the codes out after the masks, up to its vocab_size."""
        return self.mask_offset + self.n_masks

    @property
    def t5_sentinel(self) -> int:
        return self.extra_offset

    @property
    def mask(self) -> int:
        return self.extra_offset + T5_SENTINELS

    @property
    def start(self) -> int:
        return self.extra_offset + T5_SENTINELS + 1

    @property
    def pseudo(self) -> int:
        return self.extra_offset + T5_SENTINELS + 2


@dataclass
class Example:
    """One training sequence, aligned: `targets[i]` is what the model predicts at input `i`.

    Without `visible`, attention is causal and positions are 0..n-1. With it, token i attends token j iff
    visible[j] <= sees[i], or both are in the same group (group >= 0).
    """

    inputs: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    positions: np.ndarray | None = None
    positions2: np.ndarray | None = None
    visible: np.ndarray | None = None
    sees: np.ndarray | None = None
    group: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)


def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


# ---------------------------------------------------------------- cm3 and clm
def draw_spans(rng: WindowRandom, length: int, max_spans: int = MAX_SPANS) -> np.ndarray:
    """(n, 2) int64 [start, end) spans: 2n distinct endpoints uniform in [0, length], sorted and paired.

    Sorting iid endpoints and pairing neighbours is the same law as drawing n uniform spans conditioned on
    not intersecting; n is reduced only when the window has fewer than 2n endpoints to offer.
    """
    n = min(rng.span_count(), max_spans, (length + 1) // 2)
    if n <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    points = rng.distinct(length + 1, 2 * n)
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


# ---------------------------------------------------------------- windows
def element_starts(doc: np.ndarray, ids: SpecialIds) -> np.ndarray:
    """Sorted positions p > 0 where a window may begin: token p opens a tag (its text holds a `<`; minimal
    HTML escapes every other `<`). Byte-level BPE may merge the end of one tag with the start of the next
    (`"><img`): such a token starts the window, so an `<img ... src="` always shares a window with its codes,
    and only the `">` closing the image before may begin the next window."""
    if not ids.tag_open or len(doc) < 2:
        return np.zeros(0, dtype=np.int64)
    opens = np.isin(doc[1:], np.fromiter(ids.tag_open, dtype=np.int64, count=len(ids.tag_open)))
    return np.flatnonzero(opens) + 1


def _is_code(doc: np.ndarray, ids: SpecialIds) -> np.ndarray:
    return (doc >= ids.image_offset) & (doc < ids.extra_offset)


def window_bounds(doc: np.ndarray, window_len: int, ids: SpecialIds) -> list[tuple[int, int]]:
    """[start, end) windows of at most `window_len` tokens that hold every token of the document once, in
    order. Each window ends where the last element that starts inside it begins (`element_starts`), so no
    window cuts an image's `<img ... src="` + 256 codes + `">`, nor any tag. Only where no element starts
    inside a window (one element, e.g. a long paragraph, longer than a window) is it cut hard at
    `window_len`, moved back to the start of an image's code run it would split (`cut_counts` counts both).
    """
    n = len(doc)
    if n <= window_len:
        return [(0, n)]
    starts = element_starts(doc, ids)
    is_code = _is_code(doc, ids)
    bounds, at = [], 0
    while n - at > window_len:
        limit = at + window_len
        i = int(np.searchsorted(starts, limit, side="right")) - 1
        if i >= 0 and starts[i] > at:
            end = int(starts[i])
        else:
            end = limit
            if is_code[end - 1] and is_code[end]:  # inside a code run: start the next window with it
                run_start = end - int(np.argmin(is_code[at:end][::-1]))
                end = run_start if at < run_start else end
        bounds.append((at, end))
        at = end
    bounds.append((at, n))
    return bounds


def cut_counts(doc: np.ndarray, bounds: list[tuple[int, int]], ids: SpecialIds) -> dict[str, int]:
    """How a document's windows fell: `windows`, `hard_cuts` (a window that ends inside an element),
    `images` and `images_cut` (a window starts after an image's `<img` tag opened and before its last code,
    so no window holds its tag and its 256 codes together)."""
    starts = element_starts(doc, ids)
    is_code = _is_code(doc, ids)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], is_code.astype(np.int8), [0]])))
    runs = edges.reshape(-1, 2)  # [first code, one past the last code) of each image
    cuts = np.asarray([start for start, _ in bounds[1:]], dtype=np.int64)
    images_cut = 0
    for first, end in runs:
        i = int(np.searchsorted(starts, first, side="right")) - 1
        opened = int(starts[i]) if i >= 0 else first  # the start of the image's `<img` element
        images_cut += bool(((cuts > opened) & (cuts < end)).any())
    return {
        "windows": len(bounds),
        "hard_cuts": int((~np.isin(cuts, starts)).sum()),
        "images": len(runs),
        "images_cut": images_cut,
    }


def apply_objective(
    objective: str,
    doc: np.ndarray,
    *,
    window_len: int,
    seed: int,
    epoch: int,
    doc_key: int,
    ids: SpecialIds,
) -> list[np.ndarray]:
    """The cm3 or clm token sequences of one document: one per window of `window_bounds`.

    cm3 masks each window independently (its spans drawn from the window's own key); only the document's
    last window ends with <eos>, for both: <eos> means end of document (CM3 section 2's "unique end of
    document token"), never end of window.
    """
    if objective not in _SEQUENCES:
        raise ValueError(f"apply_objective makes cm3 and clm sequences, not {objective!r}")
    bounds = window_bounds(doc, window_len, ids)
    sequence = _SEQUENCES[objective]
    return [
        sequence(doc[start:end], WindowRandom(seed, epoch, doc_key, w), w == len(bounds) - 1, ids)
        for w, (start, end) in enumerate(bounds)
    ]


def _cm3_sequence(window: np.ndarray, rng: WindowRandom, last: bool, ids: SpecialIds) -> np.ndarray:
    seq = cm3_mask(window, draw_spans(rng, len(window)), ids.mask_offset, ids.eos_id)
    return seq if last else seq[:-1]


def _clm_sequence(window: np.ndarray, rng: WindowRandom, last: bool, ids: SpecialIds) -> np.ndarray:
    return np.concatenate([window, np.asarray([ids.eos_id], dtype=window.dtype)]) if last else window


_SEQUENCES = {"cm3": _cm3_sequence, "clm": _clm_sequence}


# ---------------------------------------------------------------- t5
def t5_span_lengths(rng: WindowRandom, length: int) -> tuple[list[int], list[int]]:
    """T5's random_spans_noise_mask: round(15 % of length) noise tokens in round(noise / 3) spans; noise and
    non-noise lengths are uniform random compositions; the window alternates kept, noise, kept, noise ...

    Returns (kept lengths, noise lengths), both of n_spans entries (kept first)."""
    if length < 2:
        return [length], []
    n_noise = min(max(round(length * NOISE_DENSITY), 1), length - 1)
    n_spans = min(max(round(n_noise / T5_MEAN_SPAN), 1), n_noise, length - n_noise)

    def composition(total: int) -> list[int]:
        cuts = sorted(c + 1 for c in rng.distinct(total - 1, n_spans - 1))
        return np.diff([0, *cuts, total]).tolist()

    noise = composition(n_noise)
    kept = composition(length - n_noise)
    return kept, noise


def t5_example(window: np.ndarray, kept: list[int], noise: list[int], ids: SpecialIds) -> Example:
    """Prefix LM on span corruption: targets <X0>s0<X1>s1...<Xn> after the fully visible corrupted window
    (kept and noise lengths alternate, kept first, as `t5_span_lengths` draws them)."""
    corrupted: list[np.ndarray] = []
    target: list[np.ndarray] = []
    at = 0
    for i, k in enumerate(kept):
        corrupted.append(window[at : at + k])
        at += k
        if i < len(noise):
            sentinel = _ints([ids.t5_sentinel + i])
            corrupted.append(sentinel)
            target += [sentinel, window[at : at + noise[i]]]
            at += noise[i]
    target.append(_ints([ids.t5_sentinel + len(noise)]))
    prefix = np.concatenate(corrupted).astype(np.int64)
    seq = np.concatenate([prefix, *target]).astype(np.int64)
    n, p = len(seq) - 1, len(prefix)
    order = np.maximum(np.arange(n) - p + 1, 0)  # 0 across the prefix, then 1, 2 ... over the targets
    return Example(
        inputs=seq[:-1],
        targets=seq[1:],
        weights=(np.arange(n) >= p - 1).astype(np.float32),
        positions=np.arange(n, dtype=np.int64),
        visible=order,
        sees=order.copy(),
        group=np.full(n, -1, dtype=np.int64),
    )


# ---------------------------------------------------------------- glm
def glm_spans(rng: WindowRandom, length: int, max_spans: int) -> np.ndarray:
    """(k, 2) [start, end) spans, in text order: Poisson(3) lengths drawn until more than 15 % of the window
    is covered (GLM section 2.3), at most `max_spans`; placed uniformly among the kept tokens."""
    lengths: list[int] = []
    covered = 0
    while covered <= NOISE_DENSITY * length and covered < length and len(lengths) < max_spans:
        n = min(rng.poisson3_positive(), length - covered)
        lengths.append(n)
        covered += n
    return _place(rng, length, lengths)


def _place(rng: WindowRandom, length: int, lengths: list[int]) -> np.ndarray:
    """Spans of the given lengths at a uniform arrangement: k of the (kept + k) slots are spans."""
    k = len(lengths)
    slots = sorted(rng.distinct(length - sum(lengths) + k, k))
    spans, at, prev_slot = [], 0, -1
    for slot, n in zip(slots, lengths, strict=True):
        at += slot - prev_slot - 1  # kept tokens before this span
        spans.append((at, at + n))
        at += n
        prev_slot = slot
    return np.asarray(spans, dtype=np.int64).reshape(k, 2)


def glm_example(window: np.ndarray, spans: np.ndarray, rng: WindowRandom, ids: SpecialIds) -> Example:
    """Part A: the window with one [MASK] per span (bidirectional, second position 0). Part B: the spans in
    a shuffled order, each as [S] s1 .. sl -> s1 .. sl [E] (causal; position of its [MASK], then 1 .. l+1)."""
    part_a: list[np.ndarray] = []
    mask_at: list[int] = []
    prev = 0
    for start, end in spans:
        part_a.append(window[prev:start])
        mask_at.append(sum(len(p) for p in part_a))
        part_a.append(_ints([ids.mask]))
        prev = end
    part_a.append(window[prev:])
    a = np.concatenate(part_a).astype(np.int64) if part_a else _ints([])
    inputs, targets, pos1, pos2 = [a], [np.full(len(a), ids.pad_id, dtype=np.int64)], [np.arange(len(a))], []
    pos2.append(np.zeros(len(a), dtype=np.int64))
    for i in rng.shuffle(range(len(spans))):
        span = window[spans[i, 0] : spans[i, 1]].astype(np.int64)
        inputs.append(np.concatenate([_ints([ids.start]), span]))
        targets.append(np.concatenate([span, _ints([ids.eos_id])]))
        pos1.append(np.full(len(span) + 1, mask_at[i], dtype=np.int64))
        pos2.append(np.arange(1, len(span) + 2, dtype=np.int64))
    n = sum(len(x) for x in inputs)
    order = np.maximum(np.arange(n) - len(a) + 1, 0)
    return Example(
        inputs=np.concatenate(inputs),
        targets=np.concatenate(targets),
        weights=(np.arange(n) >= len(a)).astype(np.float32),
        positions=np.concatenate(pos1).astype(np.int64),
        positions2=np.concatenate(pos2),
        visible=order,
        sees=order.copy(),
        group=np.full(n, -1, dtype=np.int64),
    )


def glm_document_span(rng: WindowRandom, length: int) -> np.ndarray:
    """GLM's generation objective: one span of a length uniform over 50-100 % of the window."""
    low = max(1, math.ceil(length / 2))
    n = low + rng.below(length - low + 1)
    return _place(rng, length, [n])


# ---------------------------------------------------------------- unilmv2
def unilm_blocks(rng: WindowRandom, length: int) -> list[tuple[int, int]]:
    """Algorithm 1: blocks [start, end) in factorization order until >= 15 % of the tokens are masked; a
    block is an n-gram of 2-6 tokens 40 % of the time, else one token, and must not touch a masked token."""
    masked = np.zeros(length, dtype=bool)
    blocks: list[tuple[int, int]] = []
    total = 0
    while total < NOISE_DENSITY * length:
        p = rng.below(length)
        n = 2 + rng.below(5) if rng.uniform() < 0.4 else 1
        if p + n <= length and not masked[p : p + n].any():
            masked[p : p + n] = True
            blocks.append((p, p + n))
            total += n
    return blocks


def unilm_example(
    window: np.ndarray, blocks: list[tuple[int, int]], rng: WindowRandom, ids: SpecialIds
) -> Example:
    """Context: the window, masked tokens as [M] (80 %), a random text token (10 %) or kept (10 %), all
    mutually visible, predicting the masked tokens (AE). Then per block k in factorization order: [P] x l
    (predicting the block, seeing the context, blocks < k and its own [P]s) and the block's own tokens
    (seeing the context and blocks <= k); [P] and the tokens keep the masked positions (section 3.2)."""
    length = len(window)
    context = window.astype(np.int64).copy()
    ae_targets = np.full(length, ids.pad_id, dtype=np.int64)
    for start, end in blocks:
        ae_targets[start:end] = window[start:end]
        for i in range(start, end):
            u = rng.uniform()
            if u < 0.8:
                context[i] = ids.mask
            elif u < 0.9:
                context[i] = rng.below(ids.pad_id)
    inputs, targets, positions = [context], [ae_targets], [np.arange(length, dtype=np.int64)]
    visible, sees, group = [np.zeros(length, np.int64)], [np.zeros(length, np.int64)], [np.full(length, -1)]
    for k, (start, end) in enumerate(blocks, start=1):
        n, span = end - start, window[start:end].astype(np.int64)
        inputs += [np.full(n, ids.pseudo, dtype=np.int64), span]
        targets += [span, np.full(n, ids.pad_id, dtype=np.int64)]
        positions += [np.arange(start, end, dtype=np.int64)] * 2
        visible += [np.full(n, HIDDEN, dtype=np.int64), np.full(n, k, dtype=np.int64)]
        sees += [np.full(n, k - 1, dtype=np.int64), np.full(n, k, dtype=np.int64)]
        group += [np.full(n, k, dtype=np.int64), np.full(n, -1, dtype=np.int64)]
    weights = np.concatenate(
        [ae_targets != ids.pad_id]
        + [np.concatenate([np.ones(e - s, bool), np.zeros(e - s, bool)]) for s, e in blocks]
    )
    return Example(
        inputs=np.concatenate(inputs),
        targets=np.concatenate(targets),
        weights=weights.astype(np.float32),
        positions=np.concatenate(positions),
        visible=np.concatenate(visible),
        sees=np.concatenate(sees),
        group=np.concatenate(group).astype(np.int64),
    )


# ---------------------------------------------------------------- the registry
def _t5_window(seq_len: int) -> int:
    """t5 adds 2n + 1 with n = round(15 % / 3) spans."""
    w = seq_len
    while w > 1 and w + 2 * max(round(round(w * NOISE_DENSITY) / T5_MEAN_SPAN), 1) > seq_len:
        w -= 1
    if round(round(w * NOISE_DENSITY) / T5_MEAN_SPAN) + 1 > T5_SENTINELS:
        raise ValueError(f"seq_len {seq_len} needs more than {T5_SENTINELS} t5 sentinels")
    return w


def _unilm_window(seq_len: int) -> int:
    """unilmv2 adds 2 per masked token (< 15 % + 6)."""
    w = seq_len
    while w > 1 and w + 2 * (math.ceil(w * NOISE_DENSITY) + 5) > seq_len:
        w -= 1
    return w


def _causal(seq: np.ndarray, ids: SpecialIds, ignore_masks: bool) -> Example:
    targets = seq[1:]
    if ignore_masks:  # the model is never asked to guess where a span starts (CM3 section 2)
        weights = ~((targets >= ids.mask_offset) & (targets < ids.mask_offset + ids.n_masks))
    else:
        weights = np.ones(len(targets), dtype=bool)
    return Example(inputs=seq[:-1], targets=targets, weights=weights.astype(np.float32))


def _cm3_example(window, rng, last, seq_len, ids) -> Example:
    return _causal(_cm3_sequence(window, rng, last, ids), ids, ignore_masks=True)


def _clm_example(window, rng, last, seq_len, ids) -> Example:
    return _causal(_clm_sequence(window, rng, last, ids), ids, ignore_masks=False)


def _t5_example(window, rng, last, seq_len, ids) -> Example:
    return t5_example(window, *t5_span_lengths(rng, len(window)), ids)


def _glm_example(window, rng, last, seq_len, ids) -> Example:
    return glm_example(window, glm_spans(rng, len(window), max(1, (seq_len - len(window)) // 2)), rng, ids)


def _glm_doc_example(window, rng, last, seq_len, ids) -> Example:
    if rng.uniform() < 0.5:
        return glm_example(window, glm_document_span(rng, len(window)), rng, ids)
    return glm_example(window, glm_spans(rng, len(window), max(1, (seq_len - len(window)) // 2)), rng, ids)


def _unilm_example(window, rng, last, seq_len, ids) -> Example:
    return unilm_example(window, unilm_blocks(rng, len(window)), rng, ids)


@dataclass(frozen=True)
class Objective:
    """What the loader, the config and the model need to know of one objective.

    `window(seq_len)`: the longest document window whose example still fits a row of `seq_len` inputs.
    `example(window, rng, last, seq_len, ids)`: the window's example (`last`: the document's last window).
    `bidirectional`: examples carry their own attention rule (`visible`/`sees`/`group`) and the model adds
    `N_EXTRA_IDS` after the tokenizer's vocabulary. `second_positions`: GLM's 2D positions (`positions2`
    and the model's `block_positions` table)."""

    window: Callable[[int], int]
    example: Callable[[np.ndarray, WindowRandom, bool, int, SpecialIds], Example]
    bidirectional: bool = False
    second_positions: bool = False

    @staticmethod
    def named(name: str) -> Objective:
        """The registry's entry for `name`; ValueError naming the choices for any other name."""
        if name not in REGISTRY:
            raise ValueError(f"unknown objective {name!r}; choose from {OBJECTIVES}")
        return REGISTRY[name]


# cm3 adds 2n + 1 <= 33 tokens and drops one (the shifted targets); glm adds 2 per span (at most 10 % of the
# window's length in spans, enforced); glm_doc adds 2
REGISTRY: dict[str, Objective] = {
    "cm3": Objective(lambda seq_len: seq_len - 2 * MAX_SPANS, _cm3_example),
    "clm": Objective(lambda seq_len: seq_len, _clm_example),
    "t5": Objective(_t5_window, _t5_example, bidirectional=True),
    "glm": Objective(lambda seq_len: math.floor(seq_len / 1.2), _glm_example, True, True),
    "glm_doc": Objective(lambda seq_len: math.floor(seq_len / 1.2), _glm_doc_example, True, True),
    "unilmv2": Objective(_unilm_window, _unilm_example, bidirectional=True),
}
OBJECTIVES = tuple(REGISTRY)


def window_len(name: str, seq_len: int) -> int:
    """Longest document window whose example still fits a row of `seq_len` inputs whole."""
    w = Objective.named(name).window(seq_len)
    if w < 8:
        raise ValueError(f"seq_len {seq_len} is too short for the {name} objective")
    return w


def document_examples(
    name: str, doc: np.ndarray, *, seq_len: int, seed: int, epoch: int, doc_key: int, ids: SpecialIds
) -> list[Example]:
    """The training examples of one document, each of at most `seq_len` inputs: one per window."""
    make = Objective.named(name).example
    bounds = window_bounds(doc, window_len(name, seq_len), ids)
    out = []
    for w, (start, end) in enumerate(bounds):
        window = doc[start:end]
        if len(window):
            ex = make(window, WindowRandom(seed, epoch, doc_key, w), w == len(bounds) - 1, seq_len, ids)
            if len(ex):
                out.append(ex)
    return out


__all__ = [
    "MAX_SPANS",
    "N_EXTRA_IDS",
    "OBJECTIVES",
    "REGISTRY",
    "T5_SENTINELS",
    "Example",
    "Objective",
    "SpecialIds",
    "WindowRandom",
    "apply_objective",
    "cm3_mask",
    "cm3_unmask",
    "cut_counts",
    "document_examples",
    "draw_spans",
    "glm_document_span",
    "glm_example",
    "glm_spans",
    "t5_example",
    "t5_span_lengths",
    "unilm_blocks",
    "unilm_example",
    "element_starts",
    "window_bounds",
    "window_len",
]
