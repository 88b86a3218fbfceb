"""PackedLoader: whole examples per row, disjoint ranks, loss weights, document attention, exact resume."""

import math
from collections import Counter

import numpy as np
import pytest

from model import CM3Tokenizer
from model.data import LoaderOptions, PackedLoader, batch_counts
from model.objectives import MAX_SPANS, OBJECTIVES, cm3_unmask, window_bounds, window_len
from model.shards import TokenSplit


@pytest.fixture(scope="module")
def tok(token_shards):
    return CM3Tokenizer.load(token_shards / "tokenizer")


@pytest.fixture(scope="module")
def train(token_shards):
    return TokenSplit.open(token_shards, "train")


def _options(tok, **kw):
    base = dict(
        objective="cm3",
        seq_len=128,
        batch_size=4,
        seed=3,
        mask_offset=tok.mask_offset,
        n_masks=tok.n_masks,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        extra_offset=tok.vocab_size,
        tag_open=tok.tag_open_ids(),
    )
    return LoaderOptions(**{**base, **kw})


def _segments(batch, row):
    """(start, end) of each example in a row (padding excluded)."""
    seg, weights = batch["segment_ids"][row], batch["weights"][row]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(seg)) + 1, [len(seg)]])
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    return [(a, b) for a, b in spans if weights[a:b].any()]


def _is_mask(tok, ids):
    return (ids >= tok.mask_offset) & (ids < tok.mask_offset + tok.n_masks)


def test_every_cm3_span_shares_its_row_and_segment_with_its_placeholder(tok, train):
    loader = PackedLoader(train, _options(tok, seq_len=512, batch_size=8, document_attention=True))
    counts, ends = Counter(), Counter()
    for _ in range(150):
        b = loader.next_batch()
        for row in range(8):
            for start, end in _segments(b, row):
                seq = np.concatenate([b["tokens"][row, start:end], b["targets"][row, end - 1 : end]])
                ends[seq[-1] == tok.eos_id] += 1  # a document's last window ends with <eos>, no other
                masks = np.flatnonzero(_is_mask(tok, seq))
                n = len(masks) // 2
                placeholders, headers = seq[masks[:n]], seq[masks[n:]]
                # each <mask:i> opening a span in the suffix has its placeholder earlier, same segment
                assert (
                    placeholders.tolist()
                    == headers.tolist()
                    == list(range(tok.mask_offset, tok.mask_offset + n))
                )
                assert np.all(masks[:n] < masks[n:])
                cm3_unmask(seq, tok.mask_offset, tok.n_masks, tok.eos_id)
                counts[n] += 1
    # the number of masks still follows clamp(Poisson(1), 1, 16): chi-square over 1, 2, 3, >= 4
    p = [2 * math.exp(-1), math.exp(-1) / 2, math.exp(-1) / 6]
    p.append(1 - sum(p))
    observed = [counts[1], counts[2], counts[3], sum(v for k, v in counts.items() if k >= 4)]
    total = sum(observed)
    chi2 = sum((o - total * q) ** 2 / (total * q) for o, q in zip(observed, p, strict=True))
    assert total > 1000 and max(counts) <= MAX_SPANS and min(counts) >= 1
    assert ends[True] > ends[False] > 0
    assert chi2 < 16.3, (chi2, sorted(counts.items()))  # 3 degrees of freedom, p ~ 0.001


def test_rows_hold_whole_masked_windows_that_unmask_to_the_documents_in_order(tok, train):
    loader = PackedLoader(train, _options(tok, document_attention=True))
    batches = [loader.next_batch() for _ in range(30)]
    sequences = []
    for b in batches:
        assert b["tokens"].shape == b["targets"].shape == b["weights"].shape == (4, 128)
        for row in range(4):
            tokens = b["tokens"][row]
            used = np.flatnonzero(tokens != tok.pad_id)
            assert np.all(tokens[used[-1] + 1 :] == tok.pad_id)  # padding only at a row's end
            for start, end in _segments(b, row):  # one example per segment, never cut at the row's end
                sequences.append(np.concatenate([tokens[start:end], b["targets"][row, end - 1 : end]]))
    w = window_len("cm3", 128)
    windows = []
    for d in loader.documents(0):
        doc = train.doc(int(d)).astype(np.int64)
        windows.extend(doc[a:z] for a, z in window_bounds(doc, w, loader.options.special_ids))
    got = [tuple(cm3_unmask(s, tok.mask_offset, tok.n_masks, tok.eos_id).tolist()) for s in sequences]
    want = [tuple(x.tolist()) for x in windows]
    # rows take the first pending examples that fit: every window once, in order up to a short look-ahead
    assert all(g in want[: i + 20] for i, g in enumerate(got))
    assert len(set(got)) == len(got) and set(want[: len(got) - 20]) <= set(got)
    assert len(sequences) > 60
    # at seq_len 128 no image (256 codes) fits a window: each is cut, and counted
    assert loader.cuts["images_cut"] == loader.cuts["images"] > 0
    assert loader.cuts["windows"] > loader.cuts["documents"]


@pytest.mark.parametrize("seq_len", [512, 2048])
def test_long_documents_are_windowed_without_cutting_an_image(tok, train, seq_len, images_in_windows):
    docs = [train.doc(i).astype(np.int64) for i in range(len(train))]
    long_docs = [np.concatenate(docs[i : i + 12]) for i in range(0, len(docs), 12)]  # ~5-10 windows each
    w = window_len("cm3", seq_len)
    ids = _options(tok, seq_len=seq_len).special_ids
    fixed_cut = images = 0
    for doc in long_docs:
        bounds = window_bounds(doc, w, ids)
        assert [t for a, z in bounds for t in range(a, z)] == list(range(len(doc)))  # each token once
        assert len(bounds) > 2 and all(z - a <= w for a, z in bounds)
        n, whole = images_in_windows(tok, doc, bounds)
        assert whole == n  # 0 % of images cut
        images += n
        fixed = [(a, min(a + w, len(doc))) for a in range(0, len(doc), w)]
        fixed_cut += n - images_in_windows(tok, doc, fixed)[1]
    assert images > 30 and fixed_cut > 0  # fixed windows of w tokens did cut some


@pytest.mark.parametrize(
    "objective, document_attention",
    [("cm3", False), ("cm3", True), ("clm", False), ("t5", False), ("glm", False), ("unilmv2", False)],
)
def test_batch_counts_are_the_example_tokens_loss_tokens_and_pairs_of_the_dense_mask(
    tok, train, objective, document_attention
):
    """The pairs counted without a T x T matrix equal those of the mask the model builds (dense form)."""
    loader = PackedLoader(train, _options(tok, objective=objective, document_attention=document_attention))
    for _ in range(3):
        b = loader.next_batch()
        t = b["tokens"].shape[1]
        real = b["tokens"] != tok.pad_id
        mask = np.tril(np.ones((t, t), dtype=bool))[None]
        if "segment_ids" in b:
            same = b["segment_ids"][:, :, None] == b["segment_ids"][:, None, :]
            if "visible" in b:
                seen = b["visible"][:, None, :] <= b["sees"][:, :, None]
                grouped = (b["group"][:, :, None] == b["group"][:, None, :]) & (b["group"][:, :, None] >= 0)
                mask = same & (seen | grouped)
            else:
                mask = same & mask
        counts = batch_counts(b, tok.pad_id)
        assert counts.attended == int((mask & real[:, :, None]).sum())
        assert counts.tokens == int(real.sum()) < real.size  # some padding, not counted
        assert counts.loss_tokens == b["weights"].sum()


def test_loss_weight_is_zero_exactly_on_mask_targets_and_padding(tok, train):
    loader = PackedLoader(train, _options(tok))
    for _ in range(10):
        b = loader.next_batch()
        is_mask = _is_mask(tok, b["targets"])
        assert is_mask.any()
        padding = b["tokens"] == tok.pad_id
        assert np.array_equal(b["weights"] == 0, is_mask | padding)
        assert set(np.unique(b["weights"])) <= {0.0, 1.0}


def test_ranks_read_disjoint_documents(tok, train):
    loaders = [PackedLoader(train, _options(tok), rank=r, world_size=3) for r in range(3)]
    for epoch in (0, 1):
        parts = [loader.documents(epoch) for loader in loaders]
        joined = np.concatenate(parts)
        assert len(joined) == len(train) and len(np.unique(joined)) == len(train)
    assert not np.array_equal(loaders[0].documents(0), loaders[0].documents(1))  # reshuffled per epoch
    a, b = loaders[0].next_batch(), loaders[1].next_batch()
    assert not np.array_equal(a["tokens"], b["tokens"])


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_resume_continues_with_the_very_next_batch(tok, train, objective):
    # big batches so the run wraps into later epochs
    opts = _options(tok, objective=objective, batch_size=16, seq_len=256, document_attention=True)
    straight = PackedLoader(train, opts, rank=1, world_size=2)
    reference = [straight.next_batch() for _ in range(20)]
    assert straight.epoch >= 2
    first = PackedLoader(train, opts, rank=1, world_size=2)
    for _ in range(7):
        first.next_batch()
    state = first.state_dict()
    resumed = PackedLoader(train, opts, rank=1, world_size=2)
    resumed.load_state_dict(state)
    for want in reference[7:]:
        got = resumed.next_batch()
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in want)
    other_rank = PackedLoader(train, opts, rank=0, world_size=2)
    with pytest.raises(ValueError, match="loader state"):
        other_rank.load_state_dict(state)


@pytest.mark.parametrize("objective", ["t5", "glm", "glm_doc", "unilmv2"])
def test_every_example_of_the_seeds_objectives_lies_whole_in_one_row(tok, train, objective):
    loader = PackedLoader(train, _options(tok, objective=objective))
    for _ in range(20):
        b = loader.next_batch()
        for row in range(4):
            seg = b["segment_ids"][row]
            for s in np.unique(seg):
                at = np.flatnonzero(seg == s)
                assert np.all(np.diff(at) == 1)  # one contiguous run per example
            # every query sees at least itself under the attention rule
            v, w, g = b["visible"][row], b["sees"][row], b["group"][row]
            assert np.all((v <= w) | (g >= 0))


def test_document_attention_segments_and_positions(tok, train):
    loader = PackedLoader(train, _options(tok, objective="clm", seq_len=1024, document_attention=True))
    b = loader.next_batch()
    for row in range(4):
        used = b["weights"][row] > 0  # padding (zero weight) ends a row
        seg, pos = b["segment_ids"][row][used], b["positions"][row][used]
        changes = np.flatnonzero(np.diff(seg)) + 1
        assert np.all(pos[changes] == 0) and pos[0] == 0
        assert np.all(np.diff(pos)[np.diff(seg) == 0] == 1)
        assert len(np.unique(seg)) > 1
