"""T5 span corruption, GLM blank infilling and UniLMv2 pseudo-masked LM, as their papers define them."""

import math
from collections import Counter

import numpy as np
import pytest

from model.objectives import (
    HIDDEN,
    T5_SENTINELS,
    SpecialIds,
    WindowRandom,
    document_examples,
    glm_document_span,
    glm_example,
    glm_spans,
    t5_example,
    t5_span_lengths,
    unilm_blocks,
    unilm_example,
    window_len,
)

IDS = SpecialIds(pad_id=900, eos_id=901, mask_offset=902, n_masks=16, extra_offset=1000)
TEXT = 900  # text ids are below <pad>


def _window(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TEXT, n).astype(np.int64)


def _attends(ex, i: int, j: int) -> bool:
    return bool(ex.visible[j] <= ex.sees[i] or (ex.group[i] == ex.group[j] >= 0))


# ---------------------------------------------------------------- T5 (section 3.3.4, baseline 3.1.4)
def test_t5_corrupts_15_percent_in_spans_of_mean_length_3():
    noise, spans = [], []
    for d in range(2000):
        kept, lengths = t5_span_lengths(WindowRandom(1, 0, d, 0), 500)
        assert sum(kept) + sum(lengths) == 500 and len(kept) == len(lengths) and min(kept + lengths) >= 1
        noise.append(sum(lengths))
        spans += lengths
    assert set(noise) == {75}  # round(0.15 * 500), in round(75 / 3) = 25 spans
    assert len(spans) == 2000 * 25 and np.mean(spans) == 3.0
    # a uniform random composition of m = 75 into k = 25 parts: var = (m - k) m (k - 1) / (k^2 (k + 1)) = 5.54
    assert 5.3 < np.var(spans) < 5.8
    assert max(spans) > 8  # spans vary in length, they are not all 3


def test_t5_example_is_the_corrupted_input_then_sentinel_and_span_targets():
    window = _window(200)
    ex = t5_example(window, *t5_span_lengths(WindowRandom(5, 0, 1, 0), len(window)), IDS)
    seq = np.concatenate([ex.inputs, ex.targets[-1:]])
    is_sentinel = seq >= IDS.t5_sentinel
    prefix_len = int(np.flatnonzero(ex.weights)[0]) + 1
    prefix, target = seq[:prefix_len], seq[prefix_len:]
    n = int(is_sentinel[:prefix_len].sum())
    # unique sentinels <X0> .. <Xn-1> in the input; targets: each sentinel and its span, then <Xn>
    assert prefix[prefix >= IDS.t5_sentinel].tolist() == list(range(IDS.t5_sentinel, IDS.t5_sentinel + n))
    assert target[target >= IDS.t5_sentinel].tolist() == list(range(IDS.t5_sentinel, IDS.t5_sentinel + n + 1))
    spans = np.split(target[:-1], np.flatnonzero(target[:-1] >= IDS.t5_sentinel))[1:]
    rebuilt = []
    for tokenid in prefix:
        rebuilt += spans.pop(0)[1:].tolist() if tokenid >= IDS.t5_sentinel else [tokenid]
    assert rebuilt == window.tolist()
    # prefix LM: the corrupted input is fully visible, the targets causal, loss on the targets only
    p = prefix_len
    assert _attends(ex, 0, p - 1) and not _attends(ex, 0, p) and _attends(ex, p + 3, p + 2)
    assert not _attends(ex, p + 2, p + 3) and ex.weights[: p - 1].sum() == 0 and ex.weights[p - 1 :].all()


def test_t5_has_enough_sentinels_for_the_longest_context():
    w = window_len("t5", 2048)
    _, lengths = t5_span_lengths(WindowRandom(0, 0, 0, 0), w)
    assert len(lengths) + 1 <= T5_SENTINELS
    assert len(t5_example(_window(w), *t5_span_lengths(WindowRandom(0, 0, 0, 0), w), IDS)) <= 2048


# ---------------------------------------------------------------- GLM (sections 2.2, 2.3)
def _truncated_poisson3(k: int) -> float:
    return math.exp(-3) * 3**k / math.factorial(k) / (1 - math.exp(-3))


def test_glm_span_lengths_are_poisson_3_until_more_than_15_percent_is_covered():
    lengths = Counter()
    for d in range(3000):
        spans = glm_spans(WindowRandom(2, 0, d, 0), 400, max_spans=200)
        sizes = (spans[:, 1] - spans[:, 0]).tolist()
        lengths.update(sizes)
        assert sum(sizes) > 0.15 * 400 and sum(sizes) - max(sizes) <= 0.15 * 400 + 12
        assert np.all(spans[1:, 0] >= spans[:-1, 1])  # disjoint, in text order
    total = sum(lengths.values())
    chi2 = 0.0
    for k in range(1, 8):
        expected = total * _truncated_poisson3(k)
        chi2 += (lengths[k] - expected) ** 2 / expected
    tail = total * (1 - sum(_truncated_poisson3(k) for k in range(1, 8)))
    chi2 += (sum(v for k, v in lengths.items() if k >= 8) - tail) ** 2 / tail
    assert chi2 < 26.1, (chi2, sorted(lengths.items()))  # 7 degrees of freedom, p ~ 0.0005


def test_glm_part_a_bidirectional_part_b_shuffled_spans_with_2d_positions():
    shuffled = 0
    for d in range(50):
        window = _window(120, d)
        rng = WindowRandom(3, 0, d, 0)
        spans = glm_spans(rng, len(window), max_spans=20)
        ex = glm_example(window, spans, rng, IDS)
        a = int(np.flatnonzero(ex.weights)[0])  # Part A carries no loss
        part_a = ex.inputs[:a]
        assert (part_a == IDS.mask).sum() == len(spans) and np.all(ex.positions2[:a] == 0)
        starts = np.flatnonzero(ex.inputs[a:] == IDS.start) + a
        assert len(starts) == len(spans)
        filled = {}
        for s, e in zip(starts, [*starts[1:], len(ex)], strict=True):
            span = ex.inputs[s + 1 : e]
            assert ex.targets[s:e].tolist() == [*span.tolist(), IDS.eos_id]  # [S] s1..sl -> s1..sl [E]
            assert np.all(ex.positions[s:e] == ex.positions[s]) and part_a[ex.positions[s]] == IDS.mask
            assert ex.positions2[s:e].tolist() == list(range(1, e - s + 1))
            filled[int(ex.positions[s])] = span.tolist()
        rebuilt = [
            t for i, tok in enumerate(part_a.tolist()) for t in (filled[i] if tok == IDS.mask else [tok])
        ]
        assert rebuilt == window.tolist()
        shuffled += list(filled) != sorted(filled)
        assert _attends(ex, 0, a - 1) and not _attends(ex, a - 1, a)  # A sees A, not B
        assert _attends(ex, len(ex) - 1, 0) and _attends(ex, len(ex) - 1, a) and not _attends(ex, a, a + 1)
    assert shuffled > 25  # Part B is in a random order


def test_glm_doc_mixes_blank_infilling_with_one_long_span():
    single = []
    for d in range(400):
        (ex,) = document_examples("glm_doc", _window(100), seq_len=128, seed=0, epoch=0, doc_key=d, ids=IDS)
        if (ex.inputs == IDS.start).sum() == 1 and ex.weights.sum() - 1 >= 50:
            single.append(ex.weights.sum() - 1)
    assert 0.4 < len(single) / 400 < 0.6
    lengths = [glm_document_span(WindowRandom(0, 0, d, 0), 100) for d in range(2000)]
    sizes = np.array([s[0, 1] - s[0, 0] for s in lengths])
    assert sizes.min() == 50 and sizes.max() == 100 and abs(sizes.mean() - 75) < 1.5


# ---------------------------------------------------------------- UniLMv2 (section 3, Algorithm 1)
def test_unilm_blockwise_masking_15_percent_40_percent_ngrams():
    sizes = Counter()
    for d in range(2000):
        blocks = unilm_blocks(WindowRandom(4, 0, d, 0), 1000)
        lengths = [e - s for s, e in blocks]
        assert 150 <= sum(lengths) < 156
        covered = np.zeros(1000, int)
        for s, e in blocks:
            covered[s:e] += 1
        assert covered.max() == 1
        sizes.update(lengths)
    n = sum(sizes.values())
    # 60 % single tokens proposed; a proposal touching a masked token is redrawn, which longer n-grams
    # do more often, so slightly more than 60 % of the accepted blocks are single tokens
    assert 0.6 < sizes[1] / n < 0.65
    ngrams = [sizes[k] for k in range(2, 7)]  # 2-6 uniform, longer ones a little more often rejected
    assert max(ngrams) < 1.2 * min(ngrams)
    assert set(sizes) == set(range(1, 7))


def test_unilm_example_has_ae_and_par_losses_under_figure_5s_mask():
    window = _window(60)
    rng = WindowRandom(6, 0, 0, 0)
    blocks = unilm_blocks(rng, 60)
    ex = unilm_example(window, blocks, rng, IDS)
    n = len(window)
    masked = np.zeros(n, bool)
    for s, e in blocks:
        masked[s:e] = True
    assert np.array_equal(ex.weights[:n] == 1, masked)  # AE: predict every masked token in the context
    assert np.array_equal(ex.targets[:n][masked], window[masked])
    at = n
    for k, (s, e) in enumerate(blocks, start=1):
        pseudo, tokens = range(at, at + e - s), range(at + e - s, at + 2 * (e - s))
        assert np.all(ex.inputs[list(pseudo)] == IDS.pseudo) and np.array_equal(
            ex.inputs[list(tokens)], window[s:e]
        )
        assert ex.positions[list(pseudo)].tolist() == ex.positions[list(tokens)].tolist() == list(range(s, e))
        assert np.array_equal(ex.targets[list(pseudo)], window[s:e]) and ex.weights[list(pseudo)].all()
        for i in pseudo:
            assert all(_attends(ex, i, j) for j in range(n))  # the context, [M] included
            assert not any(_attends(ex, i, j) for j in tokens)  # no explicit leakage of its own block
            assert all(_attends(ex, i, j) for j in pseudo)
        for i in tokens:
            assert all(_attends(ex, i, j) for j in range(n)) and not _attends(ex, i, pseudo[0])
        for j in tokens:  # context never sees appended tokens (implicit leakage, Figure 5)
            assert not any(_attends(ex, i, j) for i in range(n))
        later = [(s2, e2) for s2, e2 in blocks[k:]]
        assert all(ex.visible[at + 2 * (e - s)] > k - 1 for _ in later)
        at += 2 * (e - s)
    assert ex.weights.sum() == 2 * masked.sum()  # L = L_AE + L_PAR, equal weight per token (equation 7)
    assert np.all(ex.visible[ex.inputs == IDS.pseudo] == HIDDEN)


def test_unilm_replaces_80_percent_with_m_10_random_10_kept():
    kinds = Counter()
    for d in range(300):
        window = _window(200, d)
        rng = WindowRandom(7, 0, d, 0)
        ex = unilm_example(window, unilm_blocks(rng, 200), rng, IDS)
        masked = ex.weights[:200] == 1
        ctx, orig = ex.inputs[:200][masked], window[masked]
        kinds["mask"] += int((ctx == IDS.mask).sum())
        kinds["kept"] += int((ctx == orig).sum())
        kinds["random"] += int(((ctx != IDS.mask) & (ctx != orig)).sum())
    n = sum(kinds.values())
    assert abs(kinds["mask"] / n - 0.8) < 0.02 and abs(kinds["random"] / n - 0.1) < 0.015


# ---------------------------------------------------------------- all of them
@pytest.mark.parametrize("objective", ["t5", "glm", "glm_doc", "unilmv2"])
def test_examples_fit_a_row_and_are_a_function_of_seed_epoch_document_window(objective):
    doc = _window(3000)
    kw = dict(seq_len=256, ids=IDS)
    a = document_examples(objective, doc, seed=1, epoch=2, doc_key=3, **kw)
    b = document_examples(objective, doc, seed=1, epoch=2, doc_key=3, **kw)
    assert all(
        np.array_equal(x.inputs, y.inputs) and np.array_equal(x.visible, y.visible)
        for x, y in zip(a, b, strict=True)
    )
    assert max(len(x) for x in a) <= 256 and len(a) == -(-3000 // window_len(objective, 256))
    c = document_examples(objective, doc, seed=1, epoch=3, doc_key=3, **kw)
    assert any(not np.array_equal(x.inputs, y.inputs) for x, y in zip(a, c, strict=True))
