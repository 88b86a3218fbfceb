"""CM3 masking: span count law, disjoint ordered spans, exact undo, reproducibility; clm."""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.objectives import MAX_SPANS, WindowRandom, apply_objective, cm3_mask, cm3_unmask, draw_spans

MASK, N_MASKS, EOS = 1000, 16, 999


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
    kw = dict(window_len=1024, mask_offset=MASK, eos_id=EOS)
    a = apply_objective("cm3", doc, seed=1, epoch=2, doc_key=3, **kw)
    b = apply_objective("cm3", doc, seed=1, epoch=2, doc_key=3, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(a) == 5  # one masked sequence per window of 1024
    for i, seq in enumerate(a):
        assert np.array_equal(cm3_unmask(seq, MASK, N_MASKS, EOS), doc[i * 1024 : (i + 1) * 1024])
    for other in (
        dict(seed=9, epoch=2, doc_key=3),
        dict(seed=1, epoch=3, doc_key=3),
        dict(seed=1, epoch=2, doc_key=4),
    ):
        c = apply_objective("cm3", doc, **other, **kw)
        assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_clm_is_the_document_then_eos():
    doc = np.arange(30, dtype=np.int64)
    out = apply_objective("clm", doc, window_len=8, seed=0, epoch=0, doc_key=0, mask_offset=MASK, eos_id=EOS)
    assert np.concatenate(out).tolist() == doc.tolist() + [EOS]
    with pytest.raises(ValueError):
        apply_objective("t5", doc, window_len=8, seed=0, epoch=0, doc_key=0, mask_offset=MASK, eos_id=EOS)


def test_unmask_rejects_malformed_sequences():
    with pytest.raises(ValueError):
        cm3_unmask(np.array([1, MASK, 2, EOS]), MASK, N_MASKS, EOS)
    with pytest.raises(ValueError):
        cm3_unmask(np.array([1, MASK + 1, 2, MASK + 1, 3, EOS]), MASK, N_MASKS, EOS)
