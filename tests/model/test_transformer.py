"""Transformer: KV-cache decoding equals the full forward, document masking, presets' sizes on meta."""

import pytest
import torch

from model import PRESETS, CM3Config, CM3Transformer


def _tiny(**kw) -> CM3Transformer:
    torch.manual_seed(0)
    cfg = CM3Config(vocab_size=97, d_model=32, n_layers=2, n_heads=4, d_ffn=64, max_seq_len=48, **kw)
    return CM3Transformer(cfg).eval()


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_kv_cache_matches_full_forward(positions):
    model = _tiny(positions=positions)
    tokens = torch.randint(0, 97, (3, 21))
    full = model(tokens)
    cache = model.new_kv_cache(3, 30)
    steps = [model(tokens[:, :6], kv_cache=cache), model(tokens[:, 6:7], kv_cache=cache)]
    steps.append(model(tokens[:, 7:], kv_cache=cache))
    assert cache.length == 21
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_reorder_selects_beams():
    model = _tiny()
    tokens = torch.randint(0, 97, (2, 5))
    cache = model.new_kv_cache(2, 10)
    model(tokens, kv_cache=cache)
    cache.reorder(torch.tensor([1, 1, 0]))  # beams may change the batch size
    step = torch.randint(0, 97, (3, 1))
    got = model(step, kv_cache=cache)[:, -1]
    ref = model(torch.cat([tokens[[1, 1, 0]], step], dim=1))[:, -1]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_cache_overflow_is_a_typed_error():
    model = _tiny()
    cache = model.new_kv_cache(1, 4)
    model(torch.zeros(1, 4, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="cache full"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


def test_segment_ids_isolate_packed_documents():
    model = _tiny()
    a, b = torch.randint(0, 97, (1, 7)), torch.randint(0, 97, (1, 5))
    packed = torch.cat([a, b], dim=1)
    segments = torch.tensor([[0] * 7 + [1] * 5])
    positions = torch.cat([torch.arange(7), torch.arange(5)])[None]
    out = model(packed, segment_ids=segments, positions=positions)
    torch.testing.assert_close(out[:, :7], model(a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 7:], model(b), atol=1e-5, rtol=1e-5)


def test_tied_embeddings():
    model = _tiny()
    assert model.num_params() == model.num_params(include_embeddings=False) + 97 * 32
    names = [n for n, _ in model.named_parameters()]
    assert not any("lm_head" in n or "output" in n for n in names)


@pytest.mark.parametrize(("preset", "billions"), [("cm3-medium", 2.7), ("cm3-large", 13.0)])
def test_paper_presets_parameter_counts_on_meta(preset, billions):
    # CM3's vocabulary: ~56k BPE + specials + 8192 image codes; counted without allocating memory.
    with torch.device("meta"):
        model = CM3Transformer(CM3Config(vocab_size=56_000 + 18 + 8192, **PRESETS[preset]))
    assert model.embed.weight.is_meta
    n = model.num_params()
    assert abs(n / 1e9 - billions) / billions < 0.05, n
