"""Generation: filters, the image-code constraint, every prompt mode on a tiny model trained here,
KV-cache decoding against full forwards, determinism, and the `cm3-generate` CLI end to end."""

from __future__ import annotations

import html
import itertools
import json
import math
import random
import re
import sys

import lxml.html
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model import CM3Config, CM3Tokenizer, CM3Transformer, load_checkpoint
from model.checkpoint import write_manifest, write_model_files
from model.generate import (
    MODES,
    BeamOptions,
    CodeConstraint,
    CodeState,
    GenerationSettings,
    PromptError,
    SamplingOptions,
    StopRule,
    beam_search,
    build_prompt,
    choose_tokens,
    encode_with_masks,
    run_request,
    sample,
    score_completions,
    top_k_filter,
    top_p_filter,
)
from model.objectives import apply_objective

CAPTIONS = ["a red square", "a blue circle", "a green field", "a grey cat"]
SENTENCES = [
    "The cat sat on the mat.",
    "Paris is the capital of France.",
    "Birds sing songs about rivers.",
    "Coffee in the morning light.",
]
IMG_SRC = re.compile(r'<img\b[^<>]*?src="([^"]*)"')


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def caption_codes(caption: str, n_embed: int) -> list[int]:
    """A smooth, caption-specific code pattern, so a few training steps can pick it up."""
    rng = random.Random(caption)
    base = [rng.randrange(n_embed) for _ in range(4)]
    return [base[(i // 16) // 4] for i in range(256)]


def training_docs(n_embed: int) -> list[str]:
    docs = []
    for i in range(24):
        caption = CAPTIONS[i % len(CAPTIONS)]
        src = " ".join(map(str, caption_codes(caption, n_embed)))
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
        docs.append(
            f'<html><body><p>{text}</p><img alt="{caption}" src="{src}"><p>{SENTENCES[1]}</p></body></html>'
        )
    return docs


@pytest.fixture(scope="module")
def vq():
    from image_tokenizer import load_vqgan

    return load_vqgan()


@pytest.fixture(scope="module")
def checkpoint(vq, tmp_path_factory):
    """A tiny CM3 model trained for 40 steps with the CM3 objective, saved by the checkpoint writer."""
    torch.set_num_threads(1)
    docs = training_docs(vq.n_embed)
    tok = CM3Tokenizer.train(docs, vocab_size=300, n_embed=vq.n_embed)
    cfg = CM3Config(
        vocab_size=tok.vocab_size,
        d_model=64,
        n_layers=2,
        n_heads=4,
        d_ffn=256,
        max_seq_len=768,
        pad_id=tok.pad_id,
    )
    torch.manual_seed(0)
    model = CM3Transformer(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    encoded = [np.asarray(ids, dtype=np.int64) for ids in tok.encode_batch(docs)]
    for step in range(40):
        batch = []
        for j in range(4):
            k = (4 * step + j) % len(encoded)
            batch += apply_objective(
                "cm3",
                encoded[k],
                window_len=700,
                seed=0,
                epoch=step,
                doc_key=k,
                mask_offset=tok.mask_id(0),
                eos_id=tok.eos_id,
            )
        width = max(len(s) for s in batch)
        tokens = torch.full((len(batch), width), tok.pad_id)
        for row, seq in enumerate(batch):
            tokens[row, : len(seq)] = torch.from_numpy(seq)
        targets = tokens[:, 1:].clone()
        targets[
            (targets == tok.pad_id) | ((targets >= tok.mask_id(0)) & (targets < tok.image_code_offset))
        ] = -100
        loss = torch.nn.functional.cross_entropy(
            model(tokens[:, :-1]).flatten(0, 1), targets.flatten(), ignore_index=-100
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = tmp_path_factory.mktemp("ckpt")
    write_model_files(out, model.state_dict(), cfg, tok)
    return out


@pytest.fixture(scope="module")
def loaded(checkpoint):
    model, tok, _ = load_checkpoint(checkpoint)
    return model, tok, CodeConstraint(tok)


def request_for(mode: str, n_embed: int) -> dict:
    codes = caption_codes(CAPTIONS[0], n_embed)
    return {
        "unconditional_image": {"mode": mode},
        "conditional_image": {"mode": mode, "text": "a blue circle"},
        "text_infill": {
            "mode": mode,
            "html": "<p>The cat <mask:0> the mat.</p><p>Paris is the capital of France.</p>",
        },
        "image_infill": {"mode": mode, "codes": codes, "span": [64, 128], "text": CAPTIONS[0]},
        "masked_caption": {"mode": mode, "codes": codes},
        "causal_caption": {"mode": mode, "codes": " ".join(map(str, codes))},
        "score": {
            "mode": mode,
            "prompt": "<p>Paris is the capital of",
            "candidates": [" France.", " Spain."],
        },
        "entity": {
            "mode": mode,
            "html": '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>',
            "candidates": ["Paris", "Paris Hilton"],
        },
        "caption": {"mode": mode, "codes": codes},
        "continue": {"mode": mode, "html": "<img"},
        "link": {
            "mode": mode,
            "html": '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>',
            "candidates": ["Paris", "Paris Hilton", "France"],
        },
        "summarize": {
            "mode": mode,
            "document": "The cat sat on the mat.\nBirds sing songs about rivers.",
            "size_hint": 8,
            "max_len": 120,
        },
    }[mode]


# ---- pure functions over logits


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [[True, False, False, False]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=40),
    st.floats(0.01, 1.0),
)
def test_top_p_is_the_smallest_set_reaching_p(values, p):
    logits = torch.tensor([values], dtype=torch.float64)
    probs = logits.softmax(-1)[0]
    kept = torch.isfinite(top_p_filter(logits, p))[0]
    assert kept[int(logits.argmax())]
    assert float(probs[kept].sum()) >= p - 1e-9
    # dropping the least likely kept token falls below p (unless it is the only one)
    if kept.sum() > 1:
        weakest = float(probs[kept].min())
        assert float(probs[kept].sum()) - weakest < p + 1e-9


def test_choose_tokens_greedy_and_seeded_sampling():
    logits = torch.tensor([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0]])
    assert choose_tokens(logits, SamplingOptions(temperature=0), None).tolist() == [1, 0]
    draws = [
        choose_tokens(logits, SamplingOptions(), torch.Generator().manual_seed(7)).tolist() for _ in range(2)
    ]
    assert draws[0] == draws[1]
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    gen = torch.Generator().manual_seed(0)
    counts = np.bincount(
        [int(choose_tokens(probs.log(), SamplingOptions(), gen)) for _ in range(3000)], minlength=3
    )
    assert np.allclose(counts / 3000, [0.6, 0.3, 0.1], atol=0.04)
    top1 = {int(choose_tokens(probs.log(), SamplingOptions(top_k=1), gen)) for _ in range(50)}
    assert top1 == {0}


def test_options_reject_bad_values():
    with pytest.raises(ValueError):
        SamplingOptions(top_p=0.0)
    with pytest.raises(ValueError):
        SamplingOptions(temperature=-1)
    with pytest.raises(ValueError):
        BeamOptions(num_beams=0)


# ---- the constraint


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


def src_values(text: str) -> list[str]:
    return IMG_SRC.findall(text)


def test_random_model_never_breaks_an_image_src(loaded):
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


# ---- KV cache


def test_kv_cache_matches_full_forward(loaded):
    model, tok, _ = loaded
    ids = torch.tensor([tok.encode(training_docs(tok.n_embed)[0])[:120]])
    with torch.no_grad():
        full = model(ids)
        cache = model.new_kv_cache(1, 120)
        steps = [model(ids[:, :40], kv_cache=cache)]
        steps += [model(ids[:, t : t + 1], kv_cache=cache) for t in range(40, 100)]
        steps.append(model(ids[:, 100:], kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def reference_logprob(model, constraint, prompt, cont_ids, state) -> float:
    """Recomputes a continuation's constrained log-probability with one full forward (no cache)."""
    ids = torch.tensor([list(prompt) + list(cont_ids)])
    with torch.no_grad():
        logits = model(ids)[0, len(prompt) - 1 : -1].float()
    total = 0.0
    for t, token in enumerate(cont_ids):
        masked = constraint.mask(logits[t : t + 1], [state])
        total += float(masked.log_softmax(-1)[0, token])
        state = constraint.advance(state, token)
    return total


@pytest.mark.parametrize("mode", ["conditional_image", "causal_caption", "text_infill"])
def test_decoding_log_probs_match_a_full_forward(loaded, mode):
    """Sampling and beam search (with cache reordering) report the log-probabilities a full forward gives."""
    model, tok, constraint = loaded
    request = request_for(mode, tok.n_embed)
    prompt = build_prompt(tok, constraint, request)
    if prompt.search == "beam":
        conts = beam_search(
            model,
            constraint,
            prompt.ids,
            prompt.state,
            prompt.stop,
            BeamOptions(3, 1.0, 0),
            max_new_tokens=24,
        )
    else:
        conts = sample(
            model,
            constraint,
            prompt.ids,
            prompt.state,
            prompt.stop,
            SamplingOptions(),
            num_samples=2,
            max_new_tokens=prompt.new_tokens or 24,
            generator=torch.Generator().manual_seed(5),
        )
    for cont in conts:
        expected = reference_logprob(model, constraint, prompt.ids, cont.ids, prompt.state)
        assert math.isclose(cont.logprob, expected, rel_tol=1e-3, abs_tol=1e-3)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=12), st.integers(0, 15).map(lambda i: f"<mask:{i}>")), max_size=8
    ).map("".join)
)
def test_encode_with_masks_round_trips(loaded, text):
    """Every `<mask:i>` of the prompt syntax becomes one sentinel id; any other text, a bare `<mask:` or a
    `<mask:x>` included, is BPE text. Masks made of two pieces (`<mask:` + `3>`) are masks too."""
    _, tok, _ = loaded
    from model.generate import encode_with_masks

    masks = [int(i) for i in re.findall(r"<mask:(\d+)>", text)]
    assume(all(i < tok.n_masks for i in masks))  # a larger index is refused (the test below)
    ids = encode_with_masks(tok, text)
    assert tok.decode(ids) == text
    assert sum(tok.is_mask_id(i) for i in ids) == len(masks)


def test_a_mask_index_past_the_tokenizers_masks_is_a_prompt_error(loaded):
    _, tok, _ = loaded
    from model.generate import encode_with_masks

    with pytest.raises(PromptError, match="exceeds the tokenizer's"):
        encode_with_masks(tok, f"<p><mask:{tok.n_masks}> x</p>")


# ---- modes


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_well_formed_output(loaded, mode):
    model, tok, constraint = loaded
    request = request_for(mode, tok.n_embed)
    result = run_request(
        model, tok, constraint, request, 0, GenerationSettings(beam=BeamOptions(num_beams=3), num_samples=2)
    )
    assert result["mode"] == mode
    if mode == "link":
        assert result["best"] in request["candidates"]
        assert all(o["candidate"] in request["candidates"] for o in result["outputs"] if o["finished"])
        assert result["outputs"][0]["document"] == request["html"].replace("<mask:0>", result["best"])
        return
    if mode == "summarize":
        out = result["outputs"][0]
        assert result["summary"] == out["summary"] and out["document"].startswith("<html><head><title>")
        assert "<mask:" not in out["document"] and "<p>The cat sat on the mat.</p>" in out["document"]
        assert result["document_tokens"] + result["causal_tokens"] + 1 + out["new_tokens"] <= 120
        return
    if mode in ("score", "entity"):
        scores = result["scores"]
        assert sorted(s["candidate"] for s in scores) == sorted(request["candidates"])
        assert [s["logprob"] for s in scores] == sorted((s["logprob"] for s in scores), reverse=True)
        assert result["best"] == scores[0]["candidate"]
        return
    outputs = result["outputs"]
    if mode == "caption":
        assert 2 <= len(outputs) <= 6  # up to 3 beams from each prompt
    else:
        assert 1 <= len(outputs) <= 3 if mode.endswith("caption") else len(outputs) == 2
    for out in outputs:
        doc = out["document"]
        if mode == "continue":
            assert doc.startswith("<img")
            for src in src_values(doc):
                assert len(src.split(" ")) == 256
            continue
        if mode == "text_infill":
            assert doc.startswith("<p>The cat ") and doc.endswith(".</p>")
            assert "<mask:" not in doc
            continue
        (src,) = src_values(doc)
        codes = [int(c) for c in src.split(" ")]
        assert len(codes) == 256 and all(0 <= c < tok.n_embed for c in codes)
        if mode == "image_infill":
            original = request["codes"]
            assert codes[:64] == original[:64] and codes[128:] == original[128:]
            assert doc.startswith(f'<img alt="{CAPTIONS[0]}" src="') and out["finished"]
        if mode in ("unconditional_image", "conditional_image"):
            assert out["new_tokens"] == 257 and out["finished"]
            if mode == "conditional_image":
                assert doc.startswith('<img alt="a blue circle" src="')
        if mode.endswith("caption"):
            assert codes == caption_codes(CAPTIONS[0], tok.n_embed)
            assert "Photo: A photo taken of" in doc
    if mode.endswith("caption"):
        ranked = [(not o["finished"], o["perplexity"]) for o in outputs]
        assert ranked == sorted(ranked)


@pytest.mark.parametrize("min_new", [0, 6])
def test_beam_search_length_handling(loaded, min_new):
    """No hypothesis stops before min_new_tokens; none runs past max_new_tokens; beams are distinct."""
    model, tok, constraint = loaded
    prompt = build_prompt(tok, constraint, request_for("causal_caption", tok.n_embed))
    conts = beam_search(
        model,
        constraint,
        prompt.ids,
        prompt.state,
        prompt.stop,
        BeamOptions(num_beams=4, length_penalty=1.0, min_new_tokens=min_new),
        max_new_tokens=10,
    )
    assert 1 <= len(conts) <= 4 and len({c.ids for c in conts}) == len(conts)
    for c in conts:
        assert len(c.ids) <= 10
        if c.finished:
            assert len(c.ids) > min_new and '"' not in c.text


def test_continue_of_img_stops_where_the_self_captioned_image_closes(loaded):
    """`<img` continued (section 4.1.1): alt text, then `src="` switches to exactly 256 codes, and the
    continuation ends at the `>` that closes the tag (text after it in the same token is cut)."""
    _, tok, constraint = loaded
    prompt = build_prompt(tok, constraint, {"mode": "continue", "html": "<p>Hi.</p><img"})
    codes = caption_codes(CAPTIONS[1], tok.n_embed)
    generated = (
        tok.encode(' alt="a blue circle" src="')
        + [tok.image_code_offset + c for c in codes]
        + tok.encode('" title="x"><p>after</p>')
    )
    state, ids, finished = prompt.state, [], None
    for token in generated:
        assert constraint.allowed(state)[token]
        ids.append(token)
        state = constraint.advance(state, token)
        finished = prompt.stop.finished_text(tok, ids, state)
        if finished is not None:
            break
    src = " ".join(map(str, codes))
    assert finished == f' alt="a blue circle" src="{src}" title="x">'
    assert not build_prompt(tok, constraint, {"mode": "continue", "html": "<p>Hi"}).stop.image_tag


def test_continue_is_seeded_and_keeps_images_well_formed(loaded):
    """Same prompt and seed, same bytes; every src the model opens holds 256 codes; an output that
    finished after writing an image ends with the tag's `>`."""
    model, tok, constraint = loaded
    request = {"mode": "continue", "html": "<html><body><p>Paris is the capital of France.</p><img"}
    settings = GenerationSettings(sampling=SamplingOptions(temperature=0.7), num_samples=3, seed=2)
    result = run_request(model, tok, constraint, request, 0, settings)
    assert run_request(model, tok, constraint, request, 0, settings) == result
    assert run_request(model, tok, constraint, request, 0, GenerationSettings(seed=3)) != result
    for out in result["outputs"]:
        assert out["document"] == request["html"] + out["text"]
        srcs = src_values(out["document"])
        assert all(len(src.split(" ")) == 256 for src in srcs)
        if out["finished"] and srcs:
            assert out["document"].endswith(">")


def test_trained_model_learned_the_data(loaded):
    """40 steps are enough for the scores to prefer what the training documents say."""
    model, tok, constraint = loaded
    result = run_request(model, tok, constraint, request_for("score", tok.n_embed), 0, GenerationSettings())
    assert result["best"] == " France."


def test_score_equals_full_forward_log_likelihood(loaded):
    model, tok, _ = loaded
    prompt = tok.encode("<p>The cat sat on")
    completions = [tok.encode(" the mat."), tok.encode(" a"), tok.encode(" the sky and the sea.")]
    scores = score_completions(model, prompt, completions)
    for completion, score in zip(completions, scores, strict=True):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logp = model(ids)[0].log_softmax(-1)
        expected = sum(float(logp[len(prompt) - 1 + t, tok_id]) for t, tok_id in enumerate(completion))
        assert math.isclose(score, expected, rel_tol=1e-4, abs_tol=1e-4)


def test_same_seed_same_output_other_seed_differs(loaded):
    model, tok, constraint = loaded
    request = request_for("unconditional_image", tok.n_embed)

    def run(seed):
        return run_request(model, tok, constraint, request, 0, GenerationSettings(seed=seed))["outputs"]

    first = run(0)
    assert run(0) == first
    assert run(1) != first


def test_every_mode_is_one_builder_and_documented():
    """A mode is one entry of the builder table, and model/GENERATE.md's table describes each one."""
    from pathlib import Path

    from model.prompts import BUILDERS

    assert MODES == tuple(BUILDERS)
    doc = (Path(__file__).resolve().parents[2] / "model" / "GENERATE.md").read_text()
    documented = re.findall(r"^\| `(\w+)` \|", doc, flags=re.M)
    assert set(MODES) <= set(documented)


@pytest.mark.parametrize(
    "request_",
    [
        {"mode": "nope"},
        {"mode": ["a", "list"]},
        {"mode": "conditional_image"},
        {"mode": "text_infill", "html": "<p>no mask</p>"},
        {"mode": "text_infill", "html": "<p><mask:1> only</p>"},
        {"mode": "text_infill", "html": "<p><mask:0> and <mask:0></p>"},
        {"mode": "image_infill", "codes": [0] * 256, "span": [10, 5]},
        {"mode": "masked_caption", "codes": [0] * 10},
        {"mode": "masked_caption", "codes": [10**6] * 256},
        {"mode": "causal_caption"},
        {"mode": "score", "prompt": "x", "candidates": []},
        {"mode": "entity", "html": "<p>no mask</p>", "candidates": ["a"]},
        {"mode": "link", "html": '<a title="<mask:0>"><mask:0></a>', "candidates": ["a"]},
        {"mode": "link", "html": '<a title="<mask:0>">x</a>'},
        {"mode": "caption", "codes": [0] * 256, "samples": -1},
        {"mode": "caption", "codes": [0] * 256, "samples": 2, "top": 0},
        {"mode": "continue", "html": ""},
        {"mode": "summarize", "document": "text", "style": "abstract"},
        {"mode": "summarize", "document": "text", "size_hint": 0},
        {"mode": "summarize", "document": " \n "},
        {"mode": "conditional_image", "text": "x", "top": True},
    ],
)
def test_bad_requests_raise_prompt_error(loaded, request_):
    _, tok, constraint = loaded
    with pytest.raises(PromptError):
        build_prompt(tok, constraint, request_)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.text(max_size=20),
    st.lists(st.one_of(st.integers(-5, 300), st.text(max_size=5)), max_size=4),
    st.lists(st.integers(-1, 1100), min_size=256, max_size=256),
)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([*MODES, "other"]),
    st.dictionaries(
        st.sampled_from(
            [
                "text",
                "html",
                "codes",
                "image",
                "span",
                "prompt",
                "candidates",
                "document",
                "style",
                "size_hint",
                "max_len",
                "samples",
                "top",
                "prefix",
                "mention",
            ]
        ),
        json_values,
    ),
)
def test_any_request_builds_or_raises_prompt_error(loaded, mode, fields):
    _, tok, constraint = loaded
    try:
        prompt = build_prompt(tok, constraint, {"mode": mode, **fields})
    except PromptError:
        return
    assert prompt.mode == mode and (prompt.ids or prompt.parts)


def test_too_long_prompt_is_a_prompt_error(loaded):
    model, tok, constraint = loaded
    request = {"mode": "text_infill", "html": "<p>" + "word " * 2000 + "<mask:0></p>"}
    with pytest.raises(PromptError, match="max_seq_len"):
        run_request(model, tok, constraint, request, 0, GenerationSettings())


# ---- CLI


@pytest.mark.slow
def test_cli_writes_results_pages_and_pngs(checkpoint, vq, tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from image_tokenizer import preprocess
    from model.generate_cli import main

    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    n_embed = vq.n_embed
    requests = [request_for(mode, n_embed) for mode in MODES]
    requests.append({"mode": "causal_caption", "image": "astronaut.png"})
    lines = [json.dumps(r) for r in requests] + ["not json", json.dumps({"mode": "conditional_image"})]
    (tmp_path / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = [
        str(checkpoint),
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--out",
        str(out),
        "--num-beams",
        "2",
    ]
    rc = main([*args, "--num-samples", "2", "--max-new-tokens", "12"])
    assert rc == 1  # two bad lines, reported, the rest still done
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(lines)
    assert [("error" in r) for r in records] == [False] * len(requests) + [True, True]
    image_record = records[0]
    assert len(image_record["outputs"]) == 2
    pngs = [f for f in image_record["files"] if f.endswith(".png")]
    assert len(pngs) == 2
    for name in pngs:
        with Image.open(out / name) as png:
            assert png.size == (256, 256)
            assert np.asarray(png).std() > 0
    page = (out / image_record["files"][0]).read_text()
    assert 'src="0000-unconditional_image-0-img0.png"' in page
    index = lxml.html.fromstring((out / "index.html").read_bytes())
    links = {a.get("href") for a in index.iter("a")}
    assert {f for r in records for f in r.get("files", []) if f.endswith(".html")} == links
    assert not list(index.iter("script"))
    caption = next(r for r in records if r.get("mode") == "masked_caption")
    caption_pngs = {f for f in caption["files"] if f.endswith(".png")}
    assert len(caption_pngs) == 1  # every candidate shows the one captioned image
    astronaut = records[len(MODES)]
    assert astronaut["outputs"] and all((out / f).is_file() for f in astronaut["files"])
    assert src_values(astronaut["outputs"][0]["document"])[0] == " ".join(
        map(
            str,
            vq.encode(preprocess(Image.open(tmp_path / "astronaut.png"), seed_key="astronaut.png")[None])[0],
        )
    )
    inline = tmp_path / "inline"
    entity = json.dumps(request_for("entity", n_embed))
    assert main([str(checkpoint), "--prompt", entity, "--prompt", entity, "--out", str(inline)]) == 0
    inline_records = [json.loads(line) for line in (inline / "results.jsonl").read_text().splitlines()]
    assert [r["best"] for r in inline_records] == [records[MODES.index("entity")]["best"]] * 2
    assert (inline / "0001-entity-0.html").is_file()


def test_image_modes_of_a_model_trained_without_images_warn(checkpoint, tmp_path, capsys):
    """A checkpoint whose training data held no image tokens (`cm3-data run --no-images`) still runs
    image modes, with one warning line naming them; text modes, and models that saw images, get none."""
    import shutil

    from model.generate_cli import main

    blind = tmp_path / "blind"
    shutil.copytree(checkpoint, blind)
    config = json.loads((blind / "config.json").read_text())
    (blind / "config.json").write_text(json.dumps({**config, "data": {"image_tokens": 0}}))
    write_manifest(blind, step=0)  # as such a run writes it
    image = json.dumps({"mode": "unconditional_image"})
    text = json.dumps({"mode": "score", "prompt": "<p>Paris is the capital of", "candidates": [" France."]})
    flags = ["--num-samples", "1"]
    assert main([str(blind), "--prompt", image, "--prompt", text, "--out", str(tmp_path / "a"), *flags]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"cm3-generate: warning: {blind} was trained on shards without images (cm3-data run --no-images: "
        "no image tokens), so unconditional_image will give noise"
    ]
    assert main([str(blind), "--prompt", text, "--out", str(tmp_path / "b")]) == 0
    assert main([str(checkpoint), "--prompt", image, "--out", str(tmp_path / "c"), *flags]) == 0
    assert "warning" not in capsys.readouterr().err


def test_cli_refuses_a_run_that_cannot_start_in_one_line(checkpoint, tmp_path, capsys):
    """A prompts file that is not UTF-8, a missing or damaged checkpoint, a GPU that is not there:
    exit 2 and one line, no traceback."""
    import shutil

    from model.generate_cli import main

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(b'{"mode": "score", "prompt": "caf\xe9"}\n')
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    (damaged / "model.pt").write_bytes(b"")
    entity = json.dumps(request_for("entity", 16))
    cases = [
        ([str(checkpoint), "--prompts", str(prompts)], "not UTF-8"),
        ([str(tmp_path / "nowhere"), "--prompt", entity], "no checkpoint under"),
        ([str(damaged), "--prompt", entity], "model.pt"),
    ]
    if not torch.cuda.is_available():
        cases.append(([str(checkpoint), "--prompt", entity, "--device", "cuda"], "no GPU"))
    for args, said in cases:
        capsys.readouterr()
        assert main([*args, "--out", str(tmp_path / "out")]) == 2, said
        err = capsys.readouterr().err
        assert err.startswith("cm3-generate: ") and said in err and err.count("\n") == 1, err


def test_cli_a_misspelt_flag_is_one_line_naming_the_flag(capsys):
    from model.generate_cli import main

    for argv in (["ckpt", "--prompt", "{}", "--ouput", "o"], ["eval", "ckpt", "tasks.jsonl", "--ouput", "o"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert "unknown option --ouput (did you mean --output?)" in err


# ---- captioning, re-ranking, entity linking, summarization (CM3 sections 4.2.2, 4.2.3, 4.3.2, 4.3.3)


@pytest.mark.parametrize("mode", ["caption", "continue", "link", "summarize"])
def test_new_modes_same_request_and_seed_same_output(loaded, mode):
    model, tok, constraint = loaded
    request = request_for(mode, tok.n_embed)
    settings = GenerationSettings(num_samples=2, max_new_tokens=8, seed=5)
    first = run_request(model, tok, constraint, request, 3, settings)
    assert run_request(model, tok, constraint, request, 3, settings) == first
    assert json.loads(json.dumps(first)) == first  # the record is plain JSON


def test_caption_runs_both_paper_prompts_and_picks_the_lower_perplexity(loaded):
    model, tok, constraint = loaded
    codes = caption_codes(CAPTIONS[2], tok.n_embed)
    result = run_request(model, tok, constraint, {"mode": "caption", "codes": codes}, 0, GenerationSettings())
    masked, causal = result["prompt"].split("\n")
    src = " ".join(map(str, codes))
    assert masked == f'<img alt="Photo: A photo taken of<mask:0>" src="{src}"><mask:0>'
    assert causal == f'<img src="{src}" title="Photo: A photo taken of'
    outputs = result["outputs"]
    assert {o["prompt"] for o in outputs} == {"masked_caption", "causal_caption"}
    assert len(outputs) <= 2 * 5  # beam size 5 by default (section 4.2.3)
    ranked = [(not o["finished"], o["perplexity"]) for o in outputs]
    assert ranked == sorted(ranked)
    best = outputs[0]
    assert result["caption"] == best["caption"] == ("Photo: A photo taken of" + best["text"]).strip()
    for kind in ("masked_caption", "causal_caption"):
        alone = run_request(model, tok, constraint, {"mode": kind, "codes": codes}, 0, GenerationSettings())[
            "outputs"
        ]
        assert [o["text"] for o in alone] == [o["text"] for o in outputs if o["prompt"] == kind]


def test_sampled_captions_are_reranked_by_the_image_likelihood(loaded):
    """The costly method: `samples` captions per prompt, re-ranked by log p(image | caption) (`self`),
    the best `top` kept; the scores are what a full forward gives; same seed, same captions."""
    from model.rerank import SelfReranker

    model, tok, constraint = loaded
    codes = caption_codes(CAPTIONS[0], tok.n_embed)
    request = {"mode": "caption", "codes": codes, "samples": 3, "top": 4}
    settings = GenerationSettings(max_new_tokens=12)
    result = run_request(model, tok, constraint, request, 0, settings)
    outputs = result["outputs"]
    assert len(outputs) == 4 and all(o["reranker"] == "self" for o in outputs)
    scores = [o["rerank_score"] for o in outputs]
    assert scores == sorted(scores, reverse=True)
    top = outputs[0]
    prompt = tok.encode(f'<img alt="{html.escape(top["caption"])}" src="')
    full = torch.tensor([prompt + [tok.image_code_offset + c for c in codes]])
    with torch.no_grad():
        logp = model(full)[0].log_softmax(-1)
    expected = sum(float(logp[len(prompt) - 1 + t, tok.image_code_offset + c]) for t, c in enumerate(codes))
    assert math.isclose(top["rerank_score"], expected, rel_tol=1e-4, abs_tol=1e-3)
    all_scores = SelfReranker(model, tok).captions_for_image(codes, [o["caption"] for o in outputs])
    assert all(
        math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-4) for a, b in zip(all_scores, scores, strict=True)
    )
    assert run_request(model, tok, constraint, request, 0, settings) == result


def test_conditional_images_reranked_to_the_top(loaded):
    """Section 4.2.2: samples re-ranked by log p(caption | image), the best `top` kept."""
    model, tok, constraint = loaded
    request = {"mode": "conditional_image", "text": CAPTIONS[1], "top": 2}
    result = run_request(model, tok, constraint, request, 0, GenerationSettings(num_samples=4))
    outputs = result["outputs"]
    assert len(outputs) == 2 and outputs[0]["rerank_score"] >= outputs[1]["rerank_score"]
    src = src_values(outputs[0]["document"])[0]
    prompt = tok.encode('<img alt="') + [tok.mask_id(0)] + tok.encode(f'" src="{src}">') + [tok.mask_id(0)]
    (expected,) = score_completions(model, prompt, [tok.encode(CAPTIONS[1]) + [tok.eos_id]])
    assert math.isclose(outputs[0]["rerank_score"], expected, rel_tol=1e-5, abs_tol=1e-4)


@pytest.mark.parametrize(
    "candidates", [["Paris", "Paris Hilton", "France"], ["the mat", "the cat", "Coffee", "zzyzx qq"]]
)
def test_link_with_enough_beams_finds_the_best_scored_candidate(loaded, candidates):
    """A trie-limited beam as wide as the candidate list, with no length normalisation, is exhaustive:
    it returns the candidate that disambiguation scoring ranks first, with the same log-probability;
    every finished beam is a whole candidate."""
    model, tok, constraint = loaded
    html = '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>'
    settings = GenerationSettings(beam=BeamOptions(num_beams=len(candidates), length_penalty=0.0))
    linked = run_request(
        model, tok, constraint, {"mode": "link", "html": html, "candidates": candidates}, 0, settings
    )
    scored = run_request(
        model, tok, constraint, {"mode": "entity", "html": html, "candidates": candidates}, 0, settings
    )
    assert linked["best"] == scored["best"]
    assert math.isclose(linked["outputs"][0]["logprob"], scored["scores"][0]["logprob"], abs_tol=1e-3)
    assert {o["candidate"] for o in linked["outputs"]} == set(candidates)


NAMES = st.text(alphabet="abcdeHPT ,", min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=25, deadline=None)
@given(candidates=st.lists(NAMES, min_size=1, max_size=7, unique=True), beams=st.integers(1, 5))
def test_link_and_entity_pick_the_same_candidate_on_every_candidate_set(loaded, candidates, beams):
    """One ranking rule (GENERATE.md): total log p(candidate + <eos> | prompt). `entity` scores every
    candidate; `link`'s trie-limited beam ranks by the same total and is widened to the candidate count,
    whatever --num-beams and --length-penalty say, so both name the same best (up to a float tie)."""
    model, tok, constraint = loaded
    html = '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>'
    run = GenerationSettings(beam=BeamOptions(num_beams=beams, length_penalty=1.0))
    request = {"html": html, "candidates": candidates}
    linked = run_request(model, tok, constraint, {"mode": "link", **request}, 0, run)
    scored = run_request(model, tok, constraint, {"mode": "entity", **request}, 0, run)
    logprob = {s["candidate"]: s["logprob"] for s in scored["scores"]}
    assert linked["best"] == scored["best"] or math.isclose(
        logprob[linked["best"]], logprob[scored["best"]], abs_tol=1e-4
    )
    assert math.isclose(linked["outputs"][0]["logprob"], logprob[linked["best"]], abs_tol=1e-3)
    assert len(linked["outputs"]) == min(beams, len(candidates))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple), min_size=1, max_size=6))
def test_prefix_trie_spells_exactly_its_sequences(sequences):
    """Every path from the root to a leaf of the trie is one of the sequences, and every sequence that
    is no prefix of another ends at a leaf."""
    from model.decoding import PrefixTrie

    trie = PrefixTrie(sequences)
    paths, todo = set(), [()]
    while todo:
        prefix = todo.pop()
        nxt = trie.allowed(prefix)
        if not nxt:
            paths.add(prefix)
        todo += [(*prefix, t) for t in nxt]
    assert paths <= set(sequences)
    maximal = {s for s in sequences if not any(o != s and o[: len(s)] == s for o in sequences)}
    assert paths == maximal


def test_link_decodes_several_mentions_in_the_objective_order(loaded):
    """Two marked mentions: one sequence `<mask:0> e0 <mask:1> e1 <eos>`, each entity from its own
    list; a beam as wide as the pairs (no length normalisation) returns the best-scored pair."""
    model, tok, constraint = loaded
    html = '<p><a title="<mask:0>">Paris</a> is the capital of <a title="<mask:1>">France</a>.</p>'
    first, second = ["Paris", "Paris Hilton", "Coffee"], ["France", "Spain"]
    request = {"mode": "link", "html": html, "candidates": [first, second]}
    settings = GenerationSettings(beam=BeamOptions(num_beams=6, length_penalty=0.0))
    result = run_request(model, tok, constraint, request, 0, settings)
    pairs = [(a, b) for a in first for b in second]
    prompt = encode_with_masks(tok, html) + [tok.mask_id(0)]
    completions = [tok.encode(a) + [tok.mask_id(1)] + tok.encode(b) + [tok.eos_id] for a, b in pairs]
    scores = score_completions(model, prompt, completions)
    best = pairs[max(range(len(pairs)), key=scores.__getitem__)]
    assert result["best"] == list(best)
    assert math.isclose(result["outputs"][0]["logprob"], max(scores), abs_tol=1e-3)
    assert {tuple(o["candidate"]) for o in result["outputs"]} == set(pairs)
    assert result["outputs"][0]["document"] == html.replace("<mask:0>", best[0]).replace("<mask:1>", best[1])
    for bad in ([first], [first, second, second], first):
        with pytest.raises(PromptError, match="one per marked mention"):
            build_prompt(tok, constraint, {"mode": "link", "html": html, "candidates": bad})


@pytest.mark.parametrize("mode", ["entity", "link"])
def test_a_mention_given_by_offsets_is_marked_as_a_link(loaded, mode):
    """`text` + `mention: [start, end]` builds the same prompt as the hand-marked HTML."""
    _, tok, constraint = loaded
    text = "Paris is the capital of France & more."
    by_offsets = build_prompt(
        tok, constraint, {"mode": mode, "text": text, "mention": [0, 5], "candidates": ["P"]}
    )
    html_ = '<p><a title="<mask:0>">Paris</a> is the capital of France &amp; more.</p>'
    by_html = build_prompt(tok, constraint, {"mode": mode, "html": html_, "candidates": ["P"]})
    assert by_offsets.ids == by_html.ids
    for bad in ([5, 5], [0, 99], [0], ["0", 5]):
        with pytest.raises(PromptError):
            build_prompt(tok, constraint, {"mode": mode, "text": text, "mention": bad, "candidates": ["P"]})


def test_prefix_trie_allows_only_candidate_continuations():
    from model.decoding import PrefixTrie

    trie = PrefixTrie([(1, 2, 9), (1, 3, 9), (4, 9)])
    assert sorted(trie.allowed(())) == [1, 4]
    assert sorted(trie.allowed((1,))) == [2, 3]
    assert trie.allowed((1, 2)) == [9] and trie.allowed((1, 2, 9)) == [] and trie.allowed((7,)) == []
    masked = trie.mask(torch.zeros(2, 10), [(), (4,)])
    assert torch.isfinite(masked).nonzero().tolist() == [[0, 1], [0, 4], [1, 9]]


def test_summarize_uses_the_implicit_size_hint(loaded):
    """Section 3.2: a short document is continued causally to max_len - size_hint tokens before the
    secondary <mask:0>; a long one is cut there; the summary gets the room that is left."""
    model, tok, constraint = loaded
    short = {"mode": "summarize", "document": "Coffee in the morning light.", "size_hint": 6, "max_len": 90}
    result = run_request(model, tok, constraint, short, 0, GenerationSettings())
    doc_tokens = len(build_prompt(tok, constraint, short).ids)
    assert result["document_tokens"] == doc_tokens
    assert result["document_tokens"] + result["causal_tokens"] + 1 == 90 - 6
    assert all(o["new_tokens"] <= 6 for o in result["outputs"])
    assert run_request(model, tok, constraint, short, 0, GenerationSettings()) == result
    long = dict(short, document=" ".join(SENTENCES * 20), style="description")
    result = run_request(model, tok, constraint, long, 0, GenerationSettings())
    assert result["causal_tokens"] == 0 and result["document_tokens"] == 90 - 6 - 1
    assert result["outputs"][0]["document"].startswith('<html><head><meta content="')
    with pytest.raises(PromptError, match="max_seq_len"):
        run_request(model, tok, constraint, dict(short, max_len=10_000), 0, GenerationSettings())


# ---- re-ranking with a CLIP model from a local directory (a tiny one, built and saved here)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIP with a tiny config and a byte-level vocabulary, saved with
    save_pretrained the way a user saves a real one; nothing downloaded."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = tmp_path_factory.mktemp("clip")
    chars = sorted(ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars])}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config=small | {"vocab_size": len(vocab), "max_position_embeddings": 32},
        vision_config=small | {"image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    return out


def test_clip_reranker_scores_as_clip_does_in_batches(tiny_clip, vq):
    """Scores are CLIP's logits_per_image for the VQGAN-decoded image, whatever the batching."""
    from transformers import CLIPModel, CLIPProcessor

    from model.rerank import CLIP_BATCH, ClipReranker

    reranker = ClipReranker(tiny_clip, vq.decode)
    codes = [caption_codes(c, vq.n_embed) for c in CAPTIONS]
    captions = [f"{c} number {i}" for i in range(CLIP_BATCH + 5) for c in CAPTIONS[:1]]
    scores = reranker.captions_for_image(codes[0], captions)
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    with torch.no_grad():
        pixels = vq.decode(np.asarray(codes, dtype=np.int64))
        inputs = processor(text=captions, images=list(pixels), return_tensors="pt", padding=True)
        expected = model(**inputs).logits_per_image
    assert np.allclose(scores, expected[0].numpy(), atol=1e-4)
    by_image = reranker.images_for_text(captions[3], codes)
    assert np.allclose(by_image, expected[:, 3].numpy(), atol=1e-4)


def test_clip_reranker_errors_are_one_line(tmp_path, monkeypatch):
    from model.evaluate import EvalError, rouge_scorer
    from model.rerank import RerankError, load_clip

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the clip extra were not installed
    with pytest.raises(RerankError, match=r"pip install 'cm3-data\[clip\]'"):
        load_clip(tmp_path)
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(EvalError, match=r"pip install 'cm3-data\[eval\]'"):
        rouge_scorer()
    monkeypatch.undo()

    with pytest.raises(RerankError, match="no CLIP model there"):
        load_clip(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RerankError, match="cannot load a CLIP model"):
        load_clip(tmp_path)


# ---- the CLI: output rule, one-line errors, help, eval


def test_cli_refuses_a_non_empty_out_unless_overwrite_replaces_it(checkpoint, tmp_path, capsys, monkeypatch):
    from model.generate_cli import main

    entity = json.dumps(request_for("entity", 16))
    out = tmp_path / "out"
    run = [str(checkpoint), "--prompt", entity, "--out", str(out)]
    assert main(run) == 0
    (out / "stale.html").write_text("from an earlier run")
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "is not empty; pass --overwrite" in err and err.count("\n") == 1
    assert (out / "stale.html").is_file()
    assert main([*run, "--overwrite"]) == 0
    assert not (out / "stale.html").exists() and (out / "results.jsonl").is_file()
    capsys.readouterr()
    assert main([str(checkpoint), "--prompt", entity, "--out", str(checkpoint.parent), "--overwrite"]) == 2
    assert "would replace the checkpoint" in capsys.readouterr().err and (checkpoint / "model.pt").is_file()
    monkeypatch.chdir(out)
    assert main([str(checkpoint), "--prompt", entity, "--out", ".", "--overwrite"]) == 2
    assert (
        "would replace the working directory" in capsys.readouterr().err and (out / "results.jsonl").is_file()
    )


def test_cli_one_line_for_a_missing_prompts_file_or_clip(checkpoint, tmp_path, capsys):
    from model.generate_cli import main

    entity = json.dumps(request_for("entity", 16))
    cases = [
        (["--prompts", str(tmp_path / "nope.jsonl")], "cannot read"),
        (["--prompt", entity, "--rerank", "clip"], "needs --clip"),
        (["--prompt", entity, "--rerank", "clip", "--clip", str(tmp_path)], "no CLIP model there"),
        (["--prompt", entity, "--device", "gpu0"], "torch device: cpu, cuda"),
        (
            ["--prompt", entity, "--vqgan", str(tmp_path / "nope.ckpt")],
            "--vqgan " + str(tmp_path / "nope.ckpt"),
        ),
    ]
    for args, said in cases:
        capsys.readouterr()
        assert main([str(checkpoint), *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cm3-generate: ") and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_cli_unexpected_failure_is_one_line_and_debug_shows_it(checkpoint, tmp_path, capsys):
    """A checkpoint whose weights were written for another shape: not an ordinary mistake the CLI
    knows, so the general guard answers with one line (exit 1) and --debug raises."""
    model, tok, _ = load_checkpoint(checkpoint)
    other = CM3Transformer(CM3Config(**{**model.config.__dict__, "d_ffn": 96}))
    write_model_files(tmp_path / "odd", other.state_dict(), model.config, tok)
    from model.generate_cli import main

    args = [
        str(tmp_path / "odd"),
        "--prompt",
        json.dumps(request_for("entity", 16)),
        "--out",
        str(tmp_path / "o"),
    ]
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("cm3-generate: RuntimeError: ") and err.count("\n") == 1
    assert err.rstrip().endswith("(rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError):
        main([*args, "--debug"])


def test_cli_help_lists_every_mode_with_fields_and_an_example(capsys):
    from model.generate_cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for mode in MODES:
        line = re.search(rf"^  {mode} +(\S.*)$", text, flags=re.M)
        assert line, mode
        assert f'e.g. {{"mode": "{mode}"' in text
    assert "--device" in text and "cpu, cuda" in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert all(task in text for task in ("summarization", "disambiguation", "linking", "captioning"))


def test_rouge_scores_are_rouge_score_f1_in_percent():
    from model.evaluate import format_table, rouge, rouge_scorer, summarize_metrics

    scorer = rouge_scorer()
    same = rouge(scorer, "the cat sat on the mat", "the cat sat on the mat")
    assert same == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    part = rouge(scorer, "the cat sat", "the cat sat on the mat")
    assert math.isclose(part["rouge1"], 100 * 2 * (1 * 0.5) / 1.5) and part["rouge2"] < part["rouge1"]
    rows = [
        {"task": "linking", "metrics": {"accuracy": 100.0}},
        {"task": "linking", "metrics": {"accuracy": 0.0}},
        {"task": "linking", "error": "bad"},
    ]
    summary = summarize_metrics(rows)
    assert summary == {"linking": {"n": 3, "failed": 1, "accuracy": 50.0}}
    rows.append({"task": "linking", "metrics": {"accuracy": 50.0}, "mentions": 4})  # 2 of 4 mentions
    assert summarize_metrics(rows)["linking"]["accuracy"] == pytest.approx(100 * 3 / 6)
    assert "linking" in format_table(summary) and "accuracy 50.00" in format_table(summary)


@pytest.mark.slow
def test_cli_eval_prints_the_paper_metric_per_task(checkpoint, tmp_path, capsys):
    from model.evaluate import rouge, rouge_scorer
    from model.generate_cli import main

    html = '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>'
    codes = caption_codes(CAPTIONS[0], 1024)
    tasks = [
        {
            "task": "summarization",
            "document": SENTENCES[0],
            "summary": "A cat.",
            "size_hint": 6,
            "max_len": 80,
        },
        {
            "task": "summarization",
            "document": SENTENCES[3],
            "summary": "Coffee.",
            "size_hint": 6,
            "max_len": 80,
        },
        {"task": "disambiguation", "html": html, "candidates": ["Paris", "Spain"], "answer": "Paris"},
        {"task": "linking", "html": html, "candidates": ["Paris", "Spain"], "answer": "Paris"},
        {
            "task": "linking",
            "html": html.replace("France", '<a title="<mask:1>">France</a>'),
            "candidates": [["Paris", "Spain"], ["France", "Spain"]],
            "answer": ["Paris", "France"],
        },
        {"task": "captioning", "codes": codes, "caption": CAPTIONS[0]},
        {"task": "translation"},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    out = tmp_path / "eval"
    assert main(["eval", str(checkpoint), str(path), "--out", str(out), "--max-new-tokens", "8"]) == 1
    table = capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [("error" in r) for r in rows] == [False] * 6 + [True]
    assert rows[4]["mentions"] == 2 and rows[4]["metrics"]["accuracy"] in (0.0, 50.0, 100.0)
    scorer = rouge_scorer()
    for row, task in zip(rows[:2], tasks[:2], strict=True):
        assert row["metrics"] == rouge(scorer, row["result"]["summary"], task["summary"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summarization"]["n"] == 2
    assert summary["summarization"]["rougeL"] == pytest.approx(
        (rows[0]["metrics"]["rougeL"] + rows[1]["metrics"]["rougeL"]) / 2
    )
    assert summary["disambiguation"]["accuracy"] in (0.0, 100.0)
    assert (
        summary["captioning"]["caption_perplexity"] > 1 and summary["captioning"]["reference_perplexity"] > 1
    )
    for task in ("summarization", "disambiguation", "linking", "captioning", "translation"):
        assert re.search(rf"^{re.escape(task)} ", table, flags=re.M), table


@pytest.mark.slow
def test_cli_rerank_clip_uses_the_local_clip(checkpoint, tiny_clip, tmp_path):
    from model.generate_cli import main

    request = {"mode": "caption", "codes": caption_codes(CAPTIONS[0], 1024), "samples": 2, "top": 2}
    out = tmp_path / "clip"
    args = [str(checkpoint), "--prompt", json.dumps(request), "--out", str(out), "--max-new-tokens", "8"]
    assert main([*args, "--rerank", "clip", "--clip", str(tiny_clip)]) == 0
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [o["reranker"] for o in record["outputs"]] == ["clip", "clip"]
    assert record["outputs"][0]["rerank_score"] >= record["outputs"][1]["rerank_score"]
