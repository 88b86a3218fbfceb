"""PackedLoader: packing, disjoint ranks, loss weights, document attention, exact resume."""

import numpy as np
import pytest

from model import CM3Tokenizer
from model.data import LoaderOptions, PackedLoader
from model.objectives import cm3_unmask
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
    )
    return LoaderOptions(**{**base, **kw})


def test_rows_are_one_stream_that_unmasks_to_the_documents_in_order(tok, train):
    loader = PackedLoader(train, _options(tok))
    batches = [loader.next_batch() for _ in range(30)]
    for b in batches:
        assert b["tokens"].shape == b["targets"].shape == b["weights"].shape == (4, 128)
        assert np.array_equal(b["tokens"][:, 1:], b["targets"][:, :-1])
    stream = np.concatenate([b["tokens"].reshape(-1) for b in batches])
    # cm3: every window ends with <eos>; windows are whole documents here (all shorter than... or cut at 128)
    ends = np.flatnonzero(stream == tok.eos_id)
    sequences = np.split(stream[: ends[-1] + 1], ends[:-1] + 1)
    expected = []
    for d in loader.documents(0):
        doc = train.doc(int(d)).astype(np.int64)
        expected.extend(doc[i : i + 128] for i in range(0, len(doc), 128))
    for seq, want in zip(sequences[:-1], expected, strict=False):
        assert np.array_equal(cm3_unmask(seq, tok.mask_offset, tok.n_masks, tok.eos_id), want)
    assert len(sequences) > 20


def test_loss_weight_is_zero_exactly_on_mask_targets(tok, train):
    loader = PackedLoader(train, _options(tok))
    for _ in range(10):
        b = loader.next_batch()
        is_mask = (b["targets"] >= tok.mask_offset) & (b["targets"] < tok.mask_offset + tok.n_masks)
        assert is_mask.any()
        assert np.array_equal(b["weights"] == 0, is_mask)
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


@pytest.mark.parametrize("objective", ["cm3", "clm"])
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
        assert all(np.array_equal(got[k], want[k]) for k in want)
    other_rank = PackedLoader(train, opts, rank=0, world_size=2)
    with pytest.raises(ValueError, match="loader state"):
        other_rank.load_state_dict(state)


def test_document_attention_segments_and_positions(tok, train):
    loader = PackedLoader(train, _options(tok, objective="clm", document_attention=True))
    b = loader.next_batch()
    seg, pos, tokens = b["segment_ids"], b["positions"], b["tokens"]
    for row in range(4):
        changes = np.flatnonzero(np.diff(seg[row])) + 1
        assert np.all(pos[row][changes] == 0) and pos[row][0] == 0
        # a new document starts right after each <eos>
        assert np.all(tokens[row][changes - 1] == tok.eos_id)
        assert np.all(np.diff(pos[row])[np.diff(seg[row]) == 0] == 1)
