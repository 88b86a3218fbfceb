"""Prompting a trained CM3 model (paper section 4): one request in, a JSON-able result out.

The pieces, one concern each: `prompts` (one builder per mode, in a table), `sampling` (temperature,
top-k, top-p), `image_constraint` (every image `src` is exactly 256 codes), `decoding` (sampling and beam
search over a KV cache, scoring candidates). Their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .decoding import (
    BeamOptions,
    Continuation,
    PromptError,
    StopRule,
    beam_search,
    sample,
    score_completions,
)
from .image_constraint import CodeConstraint, CodeState
from .prompts import MODES, Prompt, build_prompt, encode_with_masks
from .sampling import SamplingOptions, choose_tokens, top_k_filter, top_p_filter


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


def run_request(
    model,
    tok,
    constraint: CodeConstraint,
    request: Mapping,
    index: int,
    settings: GenerationSettings,
    codes_of_image=None,
) -> dict:
    """One request -> a JSON-able result: `outputs` (generated documents, best first for captions,
    selected by perplexity) or `scores` (candidates ranked by log-probability)."""
    prompt = build_prompt(tok, constraint, request, codes_of_image)
    result: dict = {"mode": prompt.mode, "prompt": tok.decode(prompt.ids), "prompt_tokens": len(prompt.ids)}
    if prompt.search == "score":
        return result | _scored(model, prompt, request)
    max_new = prompt.new_tokens or settings.max_new_tokens
    if prompt.search == "beam":
        conts = beam_search(
            model, constraint, prompt.ids, prompt.state, prompt.stop, settings.beam, max_new_tokens=max_new
        )
        conts.sort(key=lambda c: (not c.finished, c.perplexity))
    else:
        generator = torch.Generator().manual_seed(request_seed(settings.seed, index, dict(request)))
        conts = sample(
            model,
            constraint,
            prompt.ids,
            prompt.state,
            prompt.stop,
            settings.sampling,
            num_samples=settings.num_samples,
            max_new_tokens=max_new,
            generator=generator,
        )
    result["outputs"] = [
        {
            "text": c.text,
            "document": prompt.document(c),
            "logprob": c.logprob,
            "perplexity": c.perplexity,
            "new_tokens": len(c.ids),
            "finished": c.finished,
        }
        for c in conts
    ]
    return result


__all__ = [
    "BeamOptions",
    "CodeConstraint",
    "CodeState",
    "Continuation",
    "GenerationSettings",
    "MODES",
    "Prompt",
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
