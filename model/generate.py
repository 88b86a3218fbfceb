"""Prompting a trained CM3 model (paper section 4): one request in, a JSON-able result out.

The pieces, one concern each: `prompts` (one builder per mode, in a table), `sampling` (temperature,
top-k, top-p), `image_constraint` (every image `src` is exactly 256 codes), `decoding` (sampling and beam
search over a KV cache, scoring candidates). Their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from .decoding import (
    BeamOptions,
    Continuation,
    PrefixTrie,
    PromptError,
    StopRule,
    beam_search,
    sample,
    score_completions,
)
from .image_constraint import CodeConstraint, CodeState
from .prompts import MODES, Prompt, build_prompt, encode_with_masks
from .sampling import SamplingOptions, choose_tokens, top_k_filter, top_p_filter

# `link` keeps every whole decode of its trie up to this many (then it agrees with `entity` exactly); past
# it (thousands of candidates, or the product of several mentions' candidates) it is a beam of this width,
# so memory never follows the candidate combinations.
EXHAUSTIVE_LINK_BEAMS = 256


def request_seed(seed: int, index: int, request: Mapping) -> int:
    """A per-request seed from the run seed, the request's position and its content."""
    key = json.dumps([seed, index, request], sort_keys=True, ensure_ascii=False).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by every request of a run."""

    sampling: SamplingOptions = SamplingOptions()
    beam: BeamOptions = BeamOptions()
    num_samples: int = 1
    max_new_tokens: int = 64
    seed: int = 0


def _scored(model, prompt: Prompt, request: Mapping) -> dict:
    """`scores` (candidates ranked by log-probability), `best`, and the best candidate's document."""
    logprobs = score_completions(model, prompt.ids, prompt.candidates)
    ranked = sorted(range(len(logprobs)), key=lambda i: -logprobs[i])
    texts = request["candidates"]
    scores = [
        {
            "candidate": texts[i],
            "logprob": logprobs[i],
            "perplexity": math.exp(-logprobs[i] / len(prompt.candidates[i])),
        }
        for i in ranked
    ]
    result = {"scores": scores, "best": scores[0]["candidate"]}
    if prompt.document is not None:
        best = ranked[0]
        result["document"] = prompt.document(
            Continuation(prompt.candidates[best], texts[best], logprobs[best], True)
        )
    return result


def _output(prompt: Prompt, cont: Continuation) -> dict:
    return {
        "text": cont.text,
        "document": prompt.document(cont),
        "logprob": cont.logprob,
        "perplexity": cont.perplexity,
        "new_tokens": len(cont.ids),
        "finished": cont.finished,
    }


def _decode(model, constraint, prompt: Prompt, settings: GenerationSettings, generator, num_samples=None):
    """Continuations of one single-prompt request: beam search (trie-limited for entity linking, ranked
    as `entity` ranks; otherwise best perplexity first), else sampling (`num_samples` overrides the
    run's)."""
    max_new = prompt.new_tokens or settings.max_new_tokens + prompt.extra_tokens
    if num_samples is None and prompt.search == "beam":
        options = settings.beam
        if prompt.trie is not None:  # the entity rule: total log p, and a beam that keeps every candidate
            wide = min(prompt.trie.n_sequences, EXHAUSTIVE_LINK_BEAMS)
            options = replace(options, length_penalty=0.0, num_beams=max(options.num_beams, wide))
        conts = beam_search(
            model,
            constraint,
            prompt.ids,
            prompt.state,
            prompt.stop,
            options,
            max_new_tokens=max_new,
            trie=prompt.trie,
        )
        if prompt.trie is None:
            conts.sort(key=lambda c: (not c.finished, c.perplexity))
        return conts[: settings.beam.num_beams]
    return sample(
        model,
        constraint,
        prompt.ids,
        prompt.state,
        prompt.stop,
        settings.sampling,
        num_samples=num_samples or settings.num_samples,
        max_new_tokens=max_new,
        generator=generator,
    )


def _reranked(outputs: list[dict], scores: list[float | None], top: int, reranker) -> list[dict]:
    """The `top` outputs by score, best first; an output the reranker could not score (None) comes last."""
    for out, value in zip(outputs, scores, strict=True):
        out["rerank_score"] = value
        out["reranker"] = reranker.name
    return sorted(outputs, key=lambda o: (o["rerank_score"] is None, -(o["rerank_score"] or 0.0)))[:top]


def _caption(model, constraint, prompt: Prompt, settings, generator, reranker) -> dict:
    """Both captioning prompts (CM3 4.2.3): beam search over each, lower perplexity first; or
    `samples` captions from each, re-ranked, the best `top` kept."""
    outputs = []
    for part in prompt.parts:
        conts = _decode(model, constraint, part, settings, generator, prompt.samples or None)
        for cont in conts:
            out = _output(part, cont) | {"prompt": part.mode, "caption": (part.text + cont.text).strip()}
            outputs.append(out)
    if prompt.samples:
        scores = reranker.captions_for_image(prompt.codes, [o["caption"] for o in outputs])
        outputs = _reranked(outputs, scores, prompt.top, reranker)
    else:
        outputs.sort(key=lambda o: (not o["finished"], o["perplexity"]))
    return {"outputs": outputs, "caption": outputs[0]["caption"]}


def _summarize(model, constraint, prompt: Prompt, settings, generator) -> dict:
    """CM3 3.2's implicit size hint: the document (cut, or continued causally) fills the sequence up to
    `max_len - size_hint` tokens, then `<mask:0>` asks for the summary in the room that is left."""
    tok = constraint.tok
    max_len = prompt.max_len or model.config.max_seq_len
    if max_len > model.config.max_seq_len:
        raise PromptError(f"max_len {max_len} exceeds the model's max_seq_len {model.config.max_seq_len}")
    room = max_len - prompt.size_hint - 1  # the secondary <mask:0> takes one position
    if room < 1:
        raise PromptError(f"size_hint {prompt.size_hint} leaves no room in max_len {max_len}")
    ids = prompt.ids[:room]
    causal = 0
    if len(ids) < room:
        state = constraint.walk(ids)
        (filled,) = sample(
            model,
            constraint,
            ids,
            state,
            StopRule(),
            settings.sampling,
            num_samples=1,
            max_new_tokens=room - len(ids),
            generator=generator,
            banned=frozenset([tok.eos_id]),
        )
        ids, causal = ids + filled.ids, len(filled.ids)
    ids = ids + (tok.mask_id(0),)
    infill = replace(
        prompt, ids=ids, state=constraint.walk(ids), search="beam", new_tokens=max_len - len(ids)
    )
    conts = _decode(model, constraint, infill, settings, generator)
    outputs = [_output(prompt, c) | {"summary": html.unescape(c.text).strip()} for c in conts]
    return {
        "outputs": outputs,
        "summary": outputs[0]["summary"],
        "document_tokens": min(len(prompt.ids), room),
        "causal_tokens": causal,
    }


def run_request(
    model,
    tok,
    constraint: CodeConstraint,
    request: Mapping,
    index: int,
    settings: GenerationSettings,
    codes_of_image=None,
    reranker=None,
) -> dict:
    """One request -> a JSON-able result: `outputs` (generated documents, best first for captions,
    selected by perplexity or re-ranked) or `scores` (candidates ranked by log-probability).
    `reranker` scores sampled images and captions (default: the model itself, `SelfReranker`)."""
    prompt = build_prompt(tok, constraint, request, codes_of_image)
    generator = torch.Generator().manual_seed(request_seed(settings.seed, index, dict(request)))
    if reranker is None and prompt.top:
        from .rerank import SelfReranker

        reranker = SelfReranker(model, tok)
    if prompt.parts:
        result: dict = {
            "mode": prompt.mode,
            "prompt": "\n".join(tok.decode(p.ids) for p in prompt.parts),
            "prompt_tokens": max(len(p.ids) for p in prompt.parts),
        }
        return result | _caption(model, constraint, prompt, settings, generator, reranker)
    result = {"mode": prompt.mode, "prompt": tok.decode(prompt.ids), "prompt_tokens": len(prompt.ids)}
    if prompt.search == "score":
        return result | _scored(model, prompt, request)
    if prompt.search == "summarize":
        return result | _summarize(model, constraint, prompt, settings, generator)
    conts = _decode(model, constraint, prompt, settings, generator)
    outputs = [_output(prompt, c) for c in conts]
    if prompt.label is not None:  # entity linking: the candidate(s) each finished beam spells
        for out, cont in zip(outputs, conts, strict=True):
            out["candidate"] = prompt.label(cont)
        result["best"] = outputs[0]["candidate"] if outputs else None
    if prompt.top:
        scores = reranker.images_for_text(prompt.text, [c.images[0] for c in conts])
        outputs = _reranked(outputs, scores, prompt.top, reranker)
    result["outputs"] = outputs
    return result


__all__ = [
    "BeamOptions",
    "CodeConstraint",
    "CodeState",
    "Continuation",
    "GenerationSettings",
    "MODES",
    "Prompt",
    "PrefixTrie",
    "PromptError",
    "SamplingOptions",
    "StopRule",
    "beam_search",
    "build_prompt",
    "choose_tokens",
    "encode_with_masks",
    "request_seed",
    "run_request",
    "sample",
    "score_completions",
    "top_k_filter",
    "top_p_filter",
]
