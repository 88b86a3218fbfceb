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


def test_prefix_lm_rule_is_bidirectional_over_the_prefix_and_causal_after():
    model = _tiny()
    tokens = torch.randint(0, 97, (1, 12))
    order = torch.tensor([[0] * 6 + list(range(1, 7))])  # 6 prefix tokens, then 6 causal ones
    rule = dict(
        segment_ids=torch.zeros(1, 12, dtype=torch.long),
        visible=order,
        sees=order,
        group=-torch.ones(1, 12, dtype=torch.long),
    )
    out = model(tokens, **rule)
    changed = tokens.clone()
    changed[0, 5] = (tokens[0, 5] + 1) % 97  # last prefix token: every position sees it
    assert not torch.allclose(model(changed, **rule)[0, 0], out[0, 0])
    changed = tokens.clone()
    changed[0, 9] = (tokens[0, 9] + 1) % 97  # a target token: only later positions see it
    after = model(changed, **rule)
    torch.testing.assert_close(after[0, :9], out[0, :9], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after[0, 10], out[0, 10])


def test_pseudo_masks_never_see_the_tokens_they_predict():
    # UniLMv2 Figure 5 on x1..x4 with blocks {2} then {3}: context, [P]2 x2, [P]3 x3
    model = _tiny()
    tokens = torch.tensor([[5, 96, 96, 8, 95, 6, 95, 7]])
    visible = torch.tensor([[0, 0, 0, 0, 1 << 30, 1, 1 << 30, 2]])
    sees = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 2]])
    group = torch.tensor([[-1, -1, -1, -1, 1, -1, 2, -1]])
    rule = dict(segment_ids=torch.zeros(1, 8, dtype=torch.long), visible=visible, sees=sees, group=group)
    out = model(tokens, **rule)
    leaked = tokens.clone()
    leaked[0, 5] = 50  # x2's own token: its [P] (position 4) and the context must not see it
    after = model(leaked, **rule)
    torch.testing.assert_close(after[0, :5], out[0, :5], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after[0, 6], out[0, 6])  # the next block's [P] does see x2


def test_second_positions_need_the_glm_table():
    tokens = torch.randint(0, 97, (1, 6))
    with pytest.raises(ValueError, match="block_positions"):
        _tiny()(tokens, positions2=torch.zeros(1, 6, dtype=torch.long))
    model = _tiny(block_positions=True)
    assert not torch.allclose(model(tokens, positions2=torch.ones(1, 6, dtype=torch.long)), model(tokens))
