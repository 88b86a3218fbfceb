"""Requests run end to end (`model.generate.run_request`) on a tiny model trained here: every mode
well formed, determinism, captioning and re-ranking, entity linking and summarization (CM3 section 4)."""

from __future__ import annotations

import html
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.generate import (
    MODES,
    BeamOptions,
    GenerationSettings,
    PromptError,
    SamplingOptions,
    build_prompt,
    encode_with_masks,
    run_request,
    score_completions,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_well_formed_output(loaded, mode, caption_codes, request_for, src_values, captions):
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
            assert doc.startswith(f'<img alt="Photo: {captions[0]}" src="') and out["finished"]
        if mode in ("unconditional_image", "conditional_image"):
            assert out["new_tokens"] == 257 and out["finished"]
            if mode == "conditional_image":
                assert doc.startswith('<img alt="a blue circle" src="')
        if mode.endswith("caption"):
            assert codes == caption_codes(captions[0], tok.n_embed)
            assert "Photo: A photo taken of" in doc
    if mode.endswith("caption"):
        ranked = [(not o["finished"], o["perplexity"]) for o in outputs]
        assert ranked == sorted(ranked)


def test_continue_is_seeded_and_keeps_images_well_formed(loaded, src_values):
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


def test_trained_model_learned_the_data(loaded, request_for):
    """40 steps are enough for the scores to prefer what the training documents say."""
    model, tok, constraint = loaded
    result = run_request(model, tok, constraint, request_for("score", tok.n_embed), 0, GenerationSettings())
    assert result["best"] == " France."


def test_same_seed_same_output_other_seed_differs(loaded, request_for):
    model, tok, constraint = loaded
    request = request_for("unconditional_image", tok.n_embed)

    def run(seed):
        return run_request(model, tok, constraint, request, 0, GenerationSettings(seed=seed))["outputs"]

    first = run(0)
    assert run(0) == first
    assert run(1) != first


@pytest.mark.parametrize("mode", ["caption", "continue", "link", "summarize"])
def test_new_modes_same_request_and_seed_same_output(loaded, mode, request_for):
    model, tok, constraint = loaded
    request = request_for(mode, tok.n_embed)
    settings = GenerationSettings(num_samples=2, max_new_tokens=8, seed=5)
    first = run_request(model, tok, constraint, request, 3, settings)
    assert run_request(model, tok, constraint, request, 3, settings) == first
    assert json.loads(json.dumps(first)) == first  # the record is plain JSON


def test_caption_runs_both_paper_prompts_and_picks_the_lower_perplexity(loaded, caption_codes, captions):
    model, tok, constraint = loaded
    codes = caption_codes(captions[2], tok.n_embed)
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


def test_sampled_captions_are_reranked_by_the_image_likelihood(loaded, caption_codes, captions):
    """The costly method: `samples` captions per prompt, re-ranked by log p(image | caption) (`self`),
    the best `top` kept; the scores are what a full forward gives; same seed, same captions."""
    from model.rerank import SelfReranker

    model, tok, constraint = loaded
    codes = caption_codes(captions[0], tok.n_embed)
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


def test_conditional_images_reranked_to_the_top(loaded, src_values, captions):
    """Section 4.2.2: samples re-ranked by log p(caption | image), the best `top` kept."""
    model, tok, constraint = loaded
    request = {"mode": "conditional_image", "text": captions[1], "top": 2}
    result = run_request(model, tok, constraint, request, 0, GenerationSettings(num_samples=4))
    outputs = result["outputs"]
    assert len(outputs) == 2 and outputs[0]["rerank_score"] >= outputs[1]["rerank_score"]
    src = src_values(outputs[0]["document"])[0]
    prompt = tok.encode('<img alt="') + [tok.mask_id(0)] + tok.encode(f'" src="{src}">') + [tok.mask_id(0)]
    (expected,) = score_completions(model, prompt, [tok.encode(captions[1]) + [tok.eos_id]])
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


def test_summarize_uses_the_implicit_size_hint(loaded, sentences):
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
    long = dict(short, document=" ".join(sentences * 20), style="description")
    result = run_request(model, tok, constraint, long, 0, GenerationSettings())
    assert result["causal_tokens"] == 0 and result["document_tokens"] == 90 - 6 - 1
    assert result["outputs"][0]["document"].startswith('<html><head><meta content="')
    with pytest.raises(PromptError, match="max_seq_len"):
        run_request(model, tok, constraint, dict(short, max_len=10_000), 0, GenerationSettings())
