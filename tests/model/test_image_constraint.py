"""The image-code constraint (`model.image_constraint`): every `src` the model opens holds
exactly 256 codes, and no code appears outside one."""

from __future__ import annotations

import itertools

import pytest
import torch

from model import CM3Transformer
from model.generate import (
    CodeState,
    GenerationSettings,
    SamplingOptions,
    StopRule,
    run_request,
    sample,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_constraint_masks(loaded):
    _, tok, constraint = loaded
    image = torch.tensor([tok.is_image_id(i) for i in range(tok.vocab_size)])
    state = constraint.walk(tok.encode('<img alt="x" src="'))
    assert state.remaining == 256
    assert torch.equal(constraint.allowed(state), image)
    for code in range(256):
        state = constraint.advance(state, tok.image_code_offset + code % tok.n_embed)
    assert state.closing and len(state.codes) == 256
    closing = constraint.allowed(state)
    assert closing.any() and all(
        constraint.texts[i].startswith('"') for i in closing.nonzero().flatten().tolist()
    )
    quote = tok.encode('">')[0]
    after = constraint.advance(state, quote)
    assert after.in_text and len(after.images) == 1
    assert not (constraint.allowed(after) & image).any()
    assert not constraint.allowed(after)[tok.pad_id]
    infill = CodeState(remaining=1, close_with_eos=True)
    infill = constraint.advance(infill, tok.image_code_offset)
    assert constraint.allowed(infill).nonzero().flatten().tolist() == [tok.eos_id]


def test_constraint_bans_text_inside_src(loaded):
    _, tok, constraint = loaded
    state = constraint.walk(tok.encode("<p>x</p><img src"))
    allowed = constraint.allowed(state)
    for token, text in enumerate(constraint.texts):
        if text.startswith('="') and len(text) > 2:
            assert not allowed[token], text


def test_random_model_never_breaks_an_image_src(loaded, request_for, src_values):
    """An untrained model at a high temperature, prompted inside an <img> tag: every src it opens
    holds exactly 256 image ids, and no image id appears outside one."""
    model, tok, constraint = loaded
    torch.manual_seed(1)
    random_model = CM3Transformer(model.config).eval()
    for mode in ("unconditional_image", "conditional_image"):
        result = run_request(
            random_model,
            tok,
            constraint,
            request_for(mode, tok.n_embed),
            0,
            GenerationSettings(sampling=SamplingOptions(temperature=3.0), num_samples=3),
        )
        for out in result["outputs"]:
            (src,) = src_values(out["document"])
            codes = src.split(" ")
            assert len(codes) == 256 and all(0 <= int(c) < tok.n_embed for c in codes)
            assert out["new_tokens"] == 257 and out["finished"]
    prompt = tok.encode('<p>Hello</p><img alt="a" ')
    outs = sample(
        random_model,
        constraint,
        prompt,
        constraint.walk(prompt),
        StopRule(frozenset([tok.eos_id])),
        SamplingOptions(temperature=5.0),
        num_samples=4,
        max_new_tokens=400,
        generator=torch.Generator().manual_seed(3),
    )
    for out in outs:
        ids = list(prompt) + list(out.ids)
        runs = [len(list(g)) for is_img, g in itertools.groupby(ids, tok.is_image_id) if is_img]
        assert all(r == 256 for r in runs)
        for src in src_values(tok.decode(ids)):
            assert len(src.split(" ")) == 256
