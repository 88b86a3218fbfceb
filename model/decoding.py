"""Decoding from a prompt over one KV cache (CM3 section 4): sampling several continuations together
(images, infilling), beam search with cache reordering (captions, 4.2.3), and scoring candidate
completions by their log-probability (entity disambiguation, 4.3.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .image_constraint import CodeConstraint, CodeState
from .sampling import SamplingOptions, choose_tokens


class PromptError(ValueError):
    """A prompt request that cannot be built or run (bad mode, missing field, too long for the model)."""


@dataclass(frozen=True)
class StopRule:
    """Generation ends at one of `token_ids` (not part of the text), when the text contains one of
    `texts` (cut before the first), after `images` completed images (0: never), or, with `image_tag`,
    when the `<img ...>` tag holding a completed image closes (cut after its `>`: free continuation of
    `<img`, CM3 section 4.1.1)."""

    token_ids: frozenset[int] = frozenset()
    texts: tuple[str, ...] = ()
    images: int = 0
    image_tag: bool = False

    def finished_text(self, tok, ids: Sequence[int], state: CodeState) -> str | None:
        if ids[-1] in self.token_ids:
            return tok.decode(ids[:-1])
        if self.images and len(state.images) >= self.images:
            return tok.decode(ids)
        if self.image_tag and state.images and state.in_text and not state.in_img_tag:
            decoded = tok.decode(ids)
            codes = " ".join(map(str, state.images[-1]))
            cut = decoded.find(">", decoded.rfind(codes) + len(codes))
            return decoded[: cut + 1] if cut >= 0 else decoded  # a `<` ended the tag instead
        if self.texts:
            decoded = tok.decode(ids)
            cuts = [cut for cut in (decoded.find(t) for t in self.texts) if cut >= 0]
            if cuts:
                return decoded[: min(cuts)]
        return None


@dataclass(frozen=True)
class Continuation:
    """One generated continuation; logprob sums the (constrained) log-probabilities of all its ids,
    terminator included."""

    ids: tuple[int, ...]
    text: str
    logprob: float
    finished: bool
    images: tuple[tuple[int, ...], ...] = ()

    @property
    def perplexity(self) -> float:
        return math.exp(-self.logprob / max(len(self.ids), 1))


class PrefixTrie:
    """The token sequences a constrained decode may produce, as a prefix tree: the next ids allowed
    after a prefix are its children (GENRE's constrained beam search, De Cao et al. 2020). With several
    segments (one per marked mention), a decode that reaches a leaf of segment i's tree goes on in
    segment i + 1's: each segment's sequences end with the id that separates it from the next."""

    def __init__(self, *segments: Sequence[Sequence[int]]) -> None:
        self.roots: list[dict[int, dict]] = []
        # whole decodes the trie spells (a beam this wide keeps every one: the search is exhaustive)
        self.n_sequences = math.prod(len({tuple(seq) for seq in sequences}) for sequences in segments)
        for sequences in segments:
            root: dict[int, dict] = {}
            for seq in sequences:
                node = root
                for token in seq:
                    node = node.setdefault(int(token), {})
            self.roots.append(root)

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        segment, node = 0, self.roots[0]
        for token in prefix:
            node = node.get(token)
            if node is None:
                return []
            if not node and segment + 1 < len(self.roots):  # a leaf: the next mention starts
                segment += 1
                node = self.roots[segment]
        return list(node)

    def mask(self, logits: torch.Tensor, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """(B, V) logits with every id off the trie after each row's prefix at -inf."""
        allowed = torch.zeros(logits.shape, dtype=torch.bool)
        for row, prefix in enumerate(prefixes):
            allowed[row, self.allowed(prefix)] = True
        return logits.masked_fill(~allowed.to(logits.device), float("-inf"))


@dataclass(frozen=True)
class BeamOptions:
    """score = sum log-prob / length ** length_penalty; stop tokens are banned before min_new_tokens."""

    num_beams: int = 5  # CM3 section 4.2.3: "beam-search with a beam size of 5"
    length_penalty: float = 1.0
    min_new_tokens: int = 1

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")


def _token_mask(vocab: int, ids: frozenset[int]) -> torch.Tensor | None:
    if not ids:
        return None
    mask = torch.zeros(vocab, dtype=torch.bool)
    mask[list(ids)] = True
    return mask


def _prefill(model, prompt_ids: Sequence[int], batch: int, max_new_tokens: int):
    """Runs the prompt once, then repeats its cache for `batch` rows; returns (cache, last logits)."""
    if not prompt_ids:
        raise PromptError("empty prompt")
    max_len = model.config.max_seq_len
    if len(prompt_ids) + max_new_tokens > max_len:
        raise PromptError(
            f"prompt of {len(prompt_ids)} tokens + {max_new_tokens} new tokens exceeds the model's "
            f"max_seq_len {max_len}"
        )
    device = model.embed.weight.device
    cache = model.new_kv_cache(1, len(prompt_ids) + max_new_tokens)
    logits = model(torch.tensor([list(prompt_ids)], device=device), kv_cache=cache)[:, -1]
    if batch != 1:
        cache.reorder([0] * batch)
        logits = logits.expand(batch, -1)
    return cache, logits.float().cpu()


@torch.no_grad()
def sample(
    model,
    constraint: CodeConstraint,
    prompt_ids: Sequence[int],
    state: CodeState,
    stop: StopRule,
    options: SamplingOptions,
    *,
    num_samples: int,
    max_new_tokens: int,
    generator: torch.Generator,
    banned: frozenset[int] = frozenset(),
) -> list[Continuation]:
    """`num_samples` independent continuations decoded together over one KV cache; `banned` ids are
    never drawn in text (the causal part of the implicit size hint must not end the document)."""
    tok = constraint.tok
    device = model.embed.weight.device
    cache, logits = _prefill(model, prompt_ids, num_samples, max_new_tokens)
    ids: list[tuple[int, ...]] = [()] * num_samples
    logprobs = [0.0] * num_samples
    states = [state] * num_samples
    results: list[Continuation | None] = [None] * num_samples
    banned_mask = _token_mask(tok.vocab_size, banned)
    for step in range(max_new_tokens):
        masked = constraint.mask(logits, states, banned_mask)
        step_logprobs = masked.log_softmax(dim=-1)
        tokens = choose_tokens(masked, options, generator).tolist()
        for row, token in enumerate(tokens):
            if results[row] is not None:
                continue
            ids[row] += (token,)
            logprobs[row] += float(step_logprobs[row, token])
            states[row] = constraint.advance(states[row], token)
            text = stop.finished_text(tok, ids[row], states[row])
            if text is not None:
                results[row] = Continuation(ids[row], text, logprobs[row], True, states[row].images)
        if all(r is not None for r in results) or step == max_new_tokens - 1:
            break
        logits = model(torch.tensor(tokens, device=device)[:, None], kv_cache=cache)[:, -1].float().cpu()
    return [
        r if r is not None else Continuation(ids[i], tok.decode(ids[i]), logprobs[i], False, states[i].images)
        for i, r in enumerate(results)
    ]


@torch.no_grad()
def beam_search(
    model,
    constraint: CodeConstraint,
    prompt_ids: Sequence[int],
    state: CodeState,
    stop: StopRule,
    options: BeamOptions,
    *,
    max_new_tokens: int,
    trie: PrefixTrie | None = None,
) -> list[Continuation]:
    """Up to `num_beams` continuations, best length-normalised score first. Search ends when
    `num_beams` hypotheses are finished and no live beam scores better than the worst of them, or at
    `max_new_tokens` (live beams are then returned with finished=False). With a `trie`, every step
    may only extend a beam along the trie (the candidate entities of entity linking, CM3 4.3.2) and
    `min_new_tokens` does not apply (every candidate is a whole entity)."""
    tok = constraint.tok
    device = model.embed.weight.device
    width = options.num_beams
    stop_ids = stop.token_ids
    if stop.texts:  # a token carrying a stop text ends the continuation too
        stop_ids = stop_ids | {i for i, t in enumerate(constraint.texts) if any(s in t for s in stop.texts)}
    stop_mask = _token_mask(tok.vocab_size, frozenset(stop_ids))
    cache, logits = _prefill(model, prompt_ids, 1, max_new_tokens)
    beams: list[tuple[tuple[int, ...], float, CodeState]] = [((), 0.0, state)]
    finished: list[Continuation] = []

    def norm(logprob: float, length: int) -> float:
        return logprob / max(length, 1) ** options.length_penalty

    for step in range(max_new_tokens):
        if trie is not None:  # the model's own log-probabilities, masked (not renormalised), as GENRE
            step_logprobs = trie.mask(logits.log_softmax(dim=-1), [b[0] for b in beams])
        else:
            banned = stop_mask if step < options.min_new_tokens else None
            step_logprobs = constraint.mask(logits, [b[2] for b in beams], banned).log_softmax(dim=-1)
        totals = step_logprobs + torch.tensor([b[1] for b in beams])[:, None]
        top, flat = totals.view(-1).topk(min(2 * width, totals.numel()))
        survivors, parents = [], []
        for score, index in zip(top.tolist(), flat.tolist(), strict=True):
            if score == float("-inf"):
                break
            parent, token = divmod(index, tok.vocab_size)
            ids, _, parent_state = beams[parent]
            ids = ids + (token,)
            new_state = constraint.advance(parent_state, token)
            text = stop.finished_text(tok, ids, new_state)
            if text is not None:
                finished.append(Continuation(ids, text, score, True, new_state.images))
            else:
                survivors.append((ids, score, new_state))
                parents.append(parent)
                if len(survivors) == width:
                    break
        beams = survivors
        if not beams:
            break
        if len(finished) >= width:
            worst_kept = sorted(norm(c.logprob, len(c.ids)) for c in finished)[-width]
            if norm(beams[0][1], len(beams[0][0])) < worst_kept:
                beams = []
                break
        if step == max_new_tokens - 1:
            break
        cache.reorder(parents)
        step_tokens = torch.tensor([b[0][-1] for b in beams], device=device)[:, None]
        logits = model(step_tokens, kv_cache=cache)[:, -1].float().cpu()
    for ids, score, last_state in beams:
        finished.append(Continuation(ids, tok.decode(ids), score, False, last_state.images))
    finished.sort(key=lambda c: (not c.finished, -norm(c.logprob, len(c.ids))))
    return finished[:width]


@torch.no_grad()
def score_completions(model, prompt_ids: Sequence[int], completions: Sequence[Sequence[int]]) -> list[float]:
    """Sum of log p(completion | prompt) for each completion, from one prompt pass shared by all."""
    if not completions or any(len(c) == 0 for c in completions):
        raise PromptError("every candidate completion needs at least one token")
    longest = max(len(c) for c in completions)
    device = model.embed.weight.device
    cache, first = _prefill(model, prompt_ids, len(completions), longest)
    pad = model.config.pad_id if model.config.pad_id is not None else 0
    padded = torch.tensor([list(c) + [pad] * (longest - len(c)) for c in completions])
    step_logits = [first[:, None]]
    if longest > 1:
        step_logits.append(model(padded[:, :-1].to(device), kv_cache=cache).float().cpu())
    logprobs = torch.cat(step_logits, dim=1).log_softmax(dim=-1)
    picked = logprobs.gather(-1, padded[..., None]).squeeze(-1)
    lengths = torch.tensor([len(c) for c in completions])
    valid = torch.arange(longest)[None, :] < lengths[:, None]
    return picked.masked_fill(~valid, 0.0).sum(dim=-1).tolist()


__all__ = [
    "BeamOptions",
    "Continuation",
    "PrefixTrie",
    "PromptError",
    "StopRule",
    "beam_search",
    "sample",
    "score_completions",
]
