"""CM3 masking: span count law, disjoint ordered spans, exact undo, reproducibility; clm; windows."""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.objectives import (
    MAX_SPANS,
    SpecialIds,
    WindowRandom,
    apply_objective,
    cm3_mask,
    cm3_unmask,
    cut_counts,
    draw_spans,
    window_bounds,
)

MASK, N_MASKS, EOS = 1000, 16, 999
# text ids < 998, then <pad> <eos> <mask:0..15>, 64 image codes; TAG is the one text id that opens a tag
TAG, CODE = 997, MASK + N_MASKS
IDS = SpecialIds(998, EOS, MASK, N_MASKS, CODE + 64, tag_open=frozenset([TAG]))


def _poisson1_clamped(k: int) -> float:
    if k == 1:
        return 2 * math.exp(-1)
    if k == MAX_SPANS:
        return 1 - sum(math.exp(-1) / math.factorial(i) for i in range(MAX_SPANS))
    return math.exp(-1) / math.factorial(k)


def test_span_count_follows_clamped_poisson():
    n_docs = 40_000
    counts = Counter(len(draw_spans(WindowRandom(7, 0, doc, 0), 10_000)) for doc in range(n_docs))
    assert min(counts) >= 1 and max(counts) <= MAX_SPANS
    # chi-square over the bins with enough mass (1..5, and >= 6 pooled), 5 degrees of freedom
    chi2 = 0.0
    for k in range(1, 6):
        expected = n_docs * _poisson1_clamped(k)
        chi2 += (counts[k] - expected) ** 2 / expected
    tail_expected = n_docs * sum(_poisson1_clamped(k) for k in range(6, MAX_SPANS + 1))
    tail = sum(v for k, v in counts.items() if k >= 6)
    chi2 += (tail - tail_expected) ** 2 / tail_expected
    assert chi2 < 20.5, (chi2, sorted(counts.items()))  # p ~ 0.001


def test_endpoints_are_uniform_over_the_window():
    starts = np.concatenate([draw_spans(WindowRandom(3, 1, d, 0), 99)[:, 0] for d in range(20_000)])
    ends = np.concatenate([draw_spans(WindowRandom(3, 1, d, 0), 99)[:, 1] for d in range(20_000)])
    endpoints = np.concatenate([starts, ends])
    hist = np.bincount(endpoints, minlength=100)
    assert hist.min() > 0.7 * hist.mean() and hist.max() < 1.3 * hist.mean()


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(0, 3000),
    seed=st.integers(0, 2**63),
    doc=st.integers(0, 2**64 - 1),
    window=st.integers(0, 50),
)
def test_spans_disjoint_ordered_and_undo_restores(length, seed, doc, window):
    spans = draw_spans(WindowRandom(seed, 0, doc, window), length)
    if length:
        assert 1 <= len(spans) <= min(MAX_SPANS, (length + 1) // 2)
    flat = spans.reshape(-1)
    assert np.all(np.diff(flat) > 0)  # start < end, and each span ends before the next starts
    assert flat.size == 0 or (flat[0] >= 0 and flat[-1] <= length)
    tokens = np.arange(length, dtype=np.int64) % 900
    masked = cm3_mask(tokens, spans, MASK, EOS)
    assert len(masked) == length + 2 * len(spans) + 1 and masked[-1] == EOS
    assert np.array_equal(cm3_unmask(masked, MASK, N_MASKS, EOS), tokens)


def test_masked_layout_matches_the_paper():
    tokens = np.arange(10, 20)
    masked = cm3_mask(tokens, np.array([[2, 4], [6, 7]]), MASK, EOS)
    expected = [10, 11, MASK, 14, 15, MASK + 1, 17, 18, 19, MASK, 12, 13, MASK + 1, 16, EOS]
    assert masked.tolist() == expected


def test_masking_is_a_function_of_seed_epoch_document_window():
    doc = np.arange(5000, dtype=np.int64) % 900  # below the sentinel ids
    kw = dict(window_len=1024, ids=IDS)
    a = apply_objective("cm3", doc, seed=1, epoch=2, doc_key=3, **kw)
    b = apply_objective("cm3", doc, seed=1, epoch=2, doc_key=3, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(a) == 5  # one masked sequence per window of 1024 (no tags: hard cuts)
    for i, seq in enumerate(a):
        assert np.array_equal(cm3_unmask(seq, MASK, N_MASKS, EOS), doc[i * 1024 : (i + 1) * 1024])
    # <eos> ends the document, not a window
    assert [seq[-1] == EOS for seq in a] == [False] * 4 + [True]
    for other in (
        dict(seed=9, epoch=2, doc_key=3),
        dict(seed=1, epoch=3, doc_key=3),
        dict(seed=1, epoch=2, doc_key=4),
    ):
        c = apply_objective("cm3", doc, **other, **kw)
        assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_clm_is_the_document_then_eos():
    doc = np.arange(30, dtype=np.int64)
    out = apply_objective("clm", doc, window_len=8, seed=0, epoch=0, doc_key=0, ids=IDS)
    assert np.concatenate(out).tolist() == doc.tolist() + [EOS]
    with pytest.raises(ValueError):
        apply_objective("t5", doc, window_len=8, seed=0, epoch=0, doc_key=0, ids=IDS)


def test_unmask_rejects_malformed_sequences():
    with pytest.raises(ValueError):
        cm3_unmask(np.array([1, MASK, 2, EOS]), MASK, N_MASKS, EOS)
    with pytest.raises(ValueError):
        cm3_unmask(np.array([1, MASK + 1, 2, MASK + 1, 3, EOS]), MASK, N_MASKS, EOS)


# ---------------------------------------------------------------- windows
def _html_like(draw_lengths: list[tuple[str, int]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A token document of elements: ("text", n) is a tag opening + n - 1 text ids, ("image", n) an
    `<img` element: tag opening, n - 258 attribute ids, `src="`, 256 codes, the closing `">`. Returns the
    ids and each image element's [start, end)."""
    ids, images = [], []
    for kind, n in draw_lengths:
        if kind == "text":
            ids += [TAG] + [100 + i % 50 for i in range(n - 1)]
        else:
            images.append((len(ids), len(ids) + n))
            ids += [TAG] + [200] * (n - 259) + [201] + [CODE + i % 64 for i in range(256)] + [202]
    return np.asarray(ids, dtype=np.int64), images


_ELEMENTS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.integers(1, 700)), st.tuples(st.just("image"), st.integers(259, 300))
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_ELEMENTS, st.sampled_from([300, 480, 2016]))
def test_windows_hold_every_token_once_and_every_image_whole(elements, window):
    doc, images = _html_like(elements)
    bounds = window_bounds(doc, window, IDS)
    assert [t for a, b in bounds for t in range(a, b)] == list(range(len(doc)))  # no loss, no repeat
    assert all(0 < b - a <= window for a, b in bounds)
    cuts = {a for a, _ in bounds[1:]}
    for start, end in images:  # an image element fits every window here: tag and codes never cut apart
        assert not any(start < c < end - 1 for c in cuts)
    counts = cut_counts(doc, bounds, IDS)
    assert counts["images"] == len(images) and counts["images_cut"] == 0
    tag_starts = set(np.flatnonzero(doc == TAG).tolist())
    for a, b in bounds[:-1]:
        if b not in tag_starts:  # a hard cut only where no element starts inside the window
            assert not any(a < t <= a + window for t in tag_starts)
    assert counts["hard_cuts"] == len(cuts - tag_starts)


def test_a_window_ends_before_the_last_element_that_starts_inside_it():
    doc, _ = _html_like([("text", 100), ("image", 270), ("text", 50), ("text", 300)])
    assert window_bounds(doc, 480, IDS) == [(0, 420), (420, 720)]
    # a cut after the image's tag opens (100), before its last code (368), splits it
    assert [cut_counts(doc, [(0, c), (c, 720)], IDS)["images_cut"] for c in (100, 101, 368, 369)] == [
        0,
        1,
        1,
        0,
    ]


def test_an_element_longer_than_a_window_is_cut_hard_and_counted():
    doc, _ = _html_like([("text", 50), ("text", 1000), ("text", 10)])
    bounds = window_bounds(doc, 480, IDS)
    assert bounds == [(0, 50), (50, 530), (530, 1010), (1010, 1060)]
    assert cut_counts(doc, bounds, IDS) == {"windows": 4, "hard_cuts": 2, "images": 0, "images_cut": 0}


def test_a_hard_cut_moves_back_to_the_start_of_a_code_run_and_an_image_longer_than_a_window_is_counted():
    doc, _ = _html_like([("text", 10), ("image", 270)])
    no_tags = SpecialIds(998, EOS, MASK, N_MASKS, CODE + 64)  # without a tag table: only hard cuts
    assert window_bounds(doc, 200, no_tags)[0] == (0, 23)  # the 256 codes start at 23, whole if they fit
    bounds = window_bounds(doc, 200, IDS)  # 256 codes cannot fit 200: cut, and counted
    assert cut_counts(doc, bounds, IDS)["images_cut"] == 1
