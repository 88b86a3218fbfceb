"""Decoding (`model.decoding`): KV-cache forwards, sampling and beam search log-probabilities against
full forwards, beam lengths, stop rules, completion scores and the entity-linking prefix trie."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.generate import (
    BeamOptions,
    SamplingOptions,
    beam_search,
    build_prompt,
    sample,
    score_completions,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_kv_cache_matches_full_forward(loaded, training_docs):
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
def test_decoding_log_probs_match_a_full_forward(loaded, mode, request_for):
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


@pytest.mark.parametrize("min_new", [0, 6])
def test_beam_search_length_handling(loaded, min_new, request_for):
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
            assert len(c.ids) > min_new and not set('"<>') & set(c.text)


def test_continue_of_img_stops_where_the_self_captioned_image_closes(loaded, caption_codes, captions):
    """`<img` continued (section 4.1.1): alt text, then `src="` switches to exactly 256 codes, and the
    continuation ends at the `>` that closes the tag (text after it in the same token is cut)."""
    _, tok, constraint = loaded
    prompt = build_prompt(tok, constraint, {"mode": "continue", "html": "<p>Hi.</p><img"})
    codes = caption_codes(captions[1], tok.n_embed)
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


def test_prefix_trie_allows_only_candidate_continuations():
    from model.decoding import PrefixTrie

    trie = PrefixTrie([(1, 2, 9), (1, 3, 9), (4, 9)])
    assert sorted(trie.allowed(())) == [1, 4]
    assert sorted(trie.allowed((1,))) == [2, 3]
    assert trie.allowed((1, 2)) == [9] and trie.allowed((1, 2, 9)) == [] and trie.allowed((7,)) == []
    masked = trie.mask(torch.zeros(2, 10), [(), (4,)])
    assert torch.isfinite(masked).nonzero().tolist() == [[0, 1], [0, 4], [1, 9]]
