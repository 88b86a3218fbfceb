"""Prompting a trained CM3 model (paper section 4): the paper's prompt modes, sampling (temperature,
top-k, top-p) and beam search over a KV cache, a logits constraint that keeps every image `src`
well formed (exactly 256 image codes, then the attribute closes), and scoring of candidate completions.

Prompts are built at the token level: `<mask:i>` sentinels are special ids (the tokenizer reads the
literal text `<mask:0>` as BPE text), and a `src` holding a prefix and postfix of codes around a mask
is not a 256-code string, so its codes are placed as image ids directly, as the CM3 objective does
when a masked span cuts through an image.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

CODES_PER_IMAGE = 256
_TAIL_CHARS = 1024  # decoded text kept per sequence to recognise an opening `<img ... src="`
_IMG_SRC_OPEN = re.compile(r"<img\b[^<>]*[\s\"']src=\"$")
_IMG_TAG_OPEN = re.compile(r"<img\b[^<>]*$")
_SRC_WITH_VALUE = re.compile(r'src=".')
_MASK_TEXT = re.compile(r"<mask:(\d+)>")
_SRC_OPENER = 'src="'


class PromptError(ValueError):
    """A prompt request that cannot be built or run (bad mode, missing field, too long for the model)."""


# ---------------------------------------------------------------------------------------------------
# Choosing the next token from logits


@dataclass(frozen=True)
class SamplingOptions:
    """temperature 0 = greedy (argmax); top_k 0 and top_p 1.0 switch those truncations off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keeps the k largest logits of each row (ties with the k-th kept too), the rest -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keeps the smallest set of most likely tokens whose probability reaches p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    sorted_logits = sorted_logits.masked_fill(mass_before >= p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def choose_tokens(
    logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids: argmax at temperature 0, else a draw from the filtered softmax."""
    if options.temperature == 0:
        return logits.argmax(dim=-1)
    scaled = top_p_filter(top_k_filter(logits / options.temperature, options.top_k), options.top_p)
    probs = scaled.float().softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ---------------------------------------------------------------------------------------------------
# The image-code constraint


@dataclass(frozen=True)
class CodeState:
    """Where one sequence stands: in text, inside an image `src` (codes still to come), or closing it."""

    remaining: int = 0  # image codes still to emit in the open image
    closing: bool = False  # the open image has all its codes; the next token closes it
    close_with_eos: bool = False  # an infilled image span ends with <eos> instead of the closing quote
    codes: tuple[int, ...] = ()  # codes of the open image so far
    images: tuple[tuple[int, ...], ...] = ()  # completed images, in order
    tail: str = ""  # the last decoded text, to see `<img ... src="` opening

    @property
    def in_text(self) -> bool:
        return self.remaining == 0 and not self.closing


class CodeConstraint:
    """Per-token masks for one tokenizer: inside an image `src` only image ids (exactly 256), then a
    token starting with `"` (or <eos> for an infilled span); outside, no image ids, no <pad>, no
    `<mask:i>` (never trained as a target), and no text token that would open a `src` with anything
    but codes."""

    def __init__(self, tok) -> None:
        self.tok = tok
        vocab = tok.vocab_size
        self.texts = [tok.decode([i]) if not tok.is_image_id(i) else "" for i in range(vocab)]
        image = torch.zeros(vocab, dtype=torch.bool)
        image[tok.image_code_offset : tok.image_code_offset + tok.n_embed] = True
        self.image_ok = image
        self.quote_ok = torch.tensor([t.startswith('"') for t in self.texts]) & ~image
        if not self.quote_ok.any():
            raise ValueError("the vocabulary has no token starting with '\"' to close an image src")
        self.eos_ok = torch.zeros(vocab, dtype=torch.bool)
        self.eos_ok[tok.eos_id] = True
        text_ok = ~image
        text_ok[tok.pad_id] = False
        # the objective gives predicting a sentinel zero loss weight: those logits are untrained
        text_ok[tok.mask_id(0) : tok.mask_id(0) + tok.n_masks] = False
        text_ok &= ~torch.tensor([bool(_SRC_WITH_VALUE.search(t)) for t in self.texts])
        self.text_ok = text_ok
        # Inside an open <img> tag whose text ends with the first m chars of `src=`, a token starting
        # with the rest of `src="` plus more characters would put text into the src: banned.
        self.text_ok_in_img = []
        for m in range(len(_SRC_OPENER)):
            rest = _SRC_OPENER[m:]
            opens_with_text = torch.tensor([t.startswith(rest) and len(t) > len(rest) for t in self.texts])
            self.text_ok_in_img.append(text_ok & ~opens_with_text)

    def allowed(self, state: CodeState) -> torch.Tensor:
        if state.remaining > 0:
            return self.image_ok
        if state.closing:
            return self.eos_ok if state.close_with_eos else self.quote_ok
        if not _IMG_TAG_OPEN.search(state.tail):
            return self.text_ok
        matched = next(
            (m for m in range(len(_SRC_OPENER) - 1, 0, -1) if state.tail.endswith(_SRC_OPENER[:m])), 0
        )
        return self.text_ok_in_img[matched]

    def mask(
        self, logits: torch.Tensor, states: Sequence[CodeState], banned: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, V) logits with every disallowed token at -inf; `banned` ids are removed in text state."""
        rows = []
        for state in states:
            allowed = self.allowed(state)
            if banned is not None and state.in_text:
                allowed = allowed & ~banned
            rows.append(allowed)
        allowed = torch.stack(rows).to(logits.device)
        return logits.masked_fill(~allowed, float("-inf"))

    def advance(self, state: CodeState, token: int) -> CodeState:
        """The state after `token`. Lenient (a prompt may leave an image early); generation under
        `mask` never does."""
        if state.remaining > 0 and self.tok.is_image_id(token):
            codes = state.codes + (token - self.tok.image_code_offset,)
            remaining = state.remaining - 1
            return replace(state, remaining=remaining, codes=codes, closing=remaining == 0)
        if state.remaining > 0 or state.closing:
            images = state.images + (state.codes,) if state.closing else state.images
            state = CodeState(images=images, tail=state.tail)
        if self.tok.is_image_id(token):
            return state
        tail = (state.tail + self.texts[token])[-_TAIL_CHARS:]
        if _IMG_SRC_OPEN.search(tail):
            return replace(state, remaining=CODES_PER_IMAGE, codes=(), tail=tail)
        return replace(state, tail=tail)

    def walk(self, ids: Sequence[int], state: CodeState | None = None) -> CodeState:
        state = state or CodeState()
        for token in ids:
            state = self.advance(state, token)
        return state


# ---------------------------------------------------------------------------------------------------
# Decoding loops


@dataclass(frozen=True)
class StopRule:
    """Generation ends at one of `token_ids` (not part of the text), when the text contains `text`
    (cut before it), or after `images` completed images (0: never)."""

    token_ids: frozenset[int] = frozenset()
    text: str | None = None
    images: int = 0

    def finished_text(self, tok, ids: Sequence[int], state: CodeState) -> str | None:
        if ids[-1] in self.token_ids:
            return tok.decode(ids[:-1])
        if self.images and len(state.images) >= self.images:
            return tok.decode(ids)
        if self.text is not None:
            decoded = tok.decode(ids)
            cut = decoded.find(self.text)
            if cut >= 0:
                return decoded[:cut]
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


@dataclass(frozen=True)
class BeamOptions:
    """score = sum log-prob / length ** length_penalty; stop tokens are banned before min_new_tokens."""

    num_beams: int = 4
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
) -> list[Continuation]:
    """`num_samples` independent continuations decoded together over one KV cache."""
    tok = constraint.tok
    device = model.embed.weight.device
    cache, logits = _prefill(model, prompt_ids, num_samples, max_new_tokens)
    ids: list[tuple[int, ...]] = [()] * num_samples
    logprobs = [0.0] * num_samples
    states = [state] * num_samples
    results: list[Continuation | None] = [None] * num_samples
    for step in range(max_new_tokens):
        masked = constraint.mask(logits, states)
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
) -> list[Continuation]:
    """Up to `num_beams` continuations, best length-normalised score first. Search ends when
    `num_beams` hypotheses are finished and no live beam scores better than the worst of them, or at
    `max_new_tokens` (live beams are then returned with finished=False)."""
    tok = constraint.tok
    device = model.embed.weight.device
    width = options.num_beams
    stop_ids = stop.token_ids
    if stop.text is not None:  # a token carrying the stop text ends the continuation too
        stop_ids = stop_ids | {i for i, t in enumerate(constraint.texts) if stop.text in t}
    stop_mask = _token_mask(tok.vocab_size, frozenset(stop_ids))
    cache, logits = _prefill(model, prompt_ids, 1, max_new_tokens)
    beams: list[tuple[tuple[int, ...], float, CodeState]] = [((), 0.0, state)]
    finished: list[Continuation] = []

    def norm(logprob: float, length: int) -> float:
        return logprob / max(length, 1) ** options.length_penalty

    for step in range(max_new_tokens):
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


# ---------------------------------------------------------------------------------------------------
# The paper's prompts


MODES = (
    "unconditional_image",
    "conditional_image",
    "text_infill",
    "image_infill",
    "masked_caption",
    "causal_caption",
    "score",
    "entity",
)


@dataclass(frozen=True)
class Prompt:
    """A request turned into token ids plus how to decode from them."""

    mode: str
    ids: tuple[int, ...]
    state: CodeState
    stop: StopRule
    search: str  # "sample" | "beam" | "score"
    new_tokens: int | None = None  # fixed by the mode (image codes), else the caller's limit
    candidates: tuple[tuple[int, ...], ...] = ()
    fields: Mapping = field(default_factory=dict)  # what assembling the output document needs


def encode_with_masks(tok, text: str) -> list[int]:
    """BPE text with every literal `<mask:i>` turned into the sentinel id."""
    ids: list[int] = []
    pos = 0
    for match in _MASK_TEXT.finditer(text):
        ids += tok.encode(text[pos : match.start()]) if match.start() > pos else []
        index = int(match.group(1))
        if index >= tok.n_masks:
            raise PromptError(f"<mask:{index}> exceeds the tokenizer's {tok.n_masks} masks")
        ids.append(tok.mask_id(index))
        pos = match.end()
    return ids + (tok.encode(text[pos:]) if pos < len(text) else [])


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _image_ids(tok, codes: Sequence[int]) -> list[int]:
    for c in codes:
        if not 0 <= c < tok.n_embed:
            raise PromptError(f"image code {c} out of range for a codebook of {tok.n_embed}")
    return [tok.image_code_offset + int(c) for c in codes]


def _codes_field(tok, request: Mapping, codes_of_image) -> list[int]:
    """`codes` (256 ints or the space-joined src string) or `image` (a file encoded by the VQGAN)."""
    if "codes" in request:
        codes = request["codes"]
        if isinstance(codes, str):
            codes = codes.split()
        try:
            codes = [int(c) for c in codes]
        except (TypeError, ValueError) as err:
            raise PromptError(f"codes must be integers: {err}") from None
    elif "image" in request:
        if codes_of_image is None:
            raise PromptError("an `image` field needs a VQGAN to encode it")
        codes = list(codes_of_image(str(request["image"])))
    else:
        raise PromptError("needs `codes` (256 image codes) or `image` (an image file)")
    if len(codes) != CODES_PER_IMAGE:
        raise PromptError(f"expected {CODES_PER_IMAGE} codes, got {len(codes)}")
    _image_ids(tok, codes)
    return codes


def _text_field(request: Mapping, name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise PromptError(f"needs a non-empty string field `{name}`")
    return value


def _candidates_field(request: Mapping) -> list[str]:
    values = request.get("candidates")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PromptError("needs `candidates`: a non-empty list of non-empty strings")
    return values


def build_prompt(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """The CM3 prompt for one request (a JSON object with `mode` and the mode's fields):

    - unconditional_image: `<img src="` -> 256 codes
    - conditional_image {text}: `<img alt="{text}" src="` -> 256 codes
    - text_infill {html with one <mask:0>}: `{html}<mask:0>` -> the span, up to <eos>
    - image_infill {codes|image, span: [start, end], text?}:
      `<img [alt="{text}"] src="{prefix}<mask:0>{postfix}"><mask:0>` -> end - start codes, then <eos>
    - masked_caption {codes|image}: `<img alt="<mask:0>" src="{codes}"><mask:0>` -> caption up to <eos>
    - causal_caption {codes|image}: `<img src="{codes}" title="` -> caption up to the closing quote
    - score {prompt, candidates}: log p(candidate | prompt) for each candidate
    - entity {html with <mask:0>, candidates}: the entity-disambiguation recipe: the mention's link
      title is <mask:0>, each candidate scored as `{html}<mask:0>{candidate}<eos>`
    """
    mode = request.get("mode")
    until_eos = StopRule(frozenset([tok.eos_id]))
    if mode in ("unconditional_image", "conditional_image"):
        alt = f' alt="{_attr(_text_field(request, "text"))}"' if mode == "conditional_image" else ""
        head = f"<img{alt} src="
        ids = tok.encode(head + '"')
        state = constraint.walk(ids)
        if state.remaining == 0:
            raise PromptError(f"the tokenizer does not open an image src for {head!r}")
        return Prompt(
            mode,
            tuple(ids),
            state,
            StopRule(images=1),
            "sample",
            new_tokens=state.remaining + 1,
            fields={"head": head + '"'},
        )
    if mode == "text_infill":
        doc = _text_field(request, "html")
        if _MASK_TEXT.findall(doc) != ["0"]:
            raise PromptError("text_infill needs `html` with exactly one <mask:0> (the span to fill)")
        ids = encode_with_masks(tok, doc) + [tok.mask_id(0)]
        return Prompt(
            mode,
            tuple(ids),
            constraint.walk(ids),
            until_eos,
            "sample",
            fields={"html": doc},
        )
    if mode == "image_infill":
        codes = _codes_field(tok, request, codes_of_image)
        span = request.get("span")
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(s, int) for s in span)):
            raise PromptError("image_infill needs `span`: [start, end] code positions to regenerate")
        start, end = span
        if not 0 <= start < end <= CODES_PER_IMAGE:
            raise PromptError(f"span {span} must satisfy 0 <= start < end <= {CODES_PER_IMAGE}")
        alt = f' alt="{_attr(_text_field(request, "text"))}"' if "text" in request else ""
        ids = (
            tok.encode(f'<img{alt} src="')
            + _image_ids(tok, codes[:start])
            + [tok.mask_id(0)]
            + _image_ids(tok, codes[end:])
            + tok.encode('">')
            + [tok.mask_id(0)]
        )
        state = CodeState(remaining=end - start, close_with_eos=True)
        return Prompt(
            mode,
            tuple(ids),
            state,
            until_eos,
            "sample",
            new_tokens=end - start + 1,
            fields={"alt": alt, "prefix": codes[:start], "postfix": codes[end:]},
        )
    if mode in ("masked_caption", "causal_caption"):
        codes = _codes_field(tok, request, codes_of_image)
        src = " ".join(map(str, codes))
        if mode == "masked_caption":
            ids = (
                tok.encode('<img alt="') + [tok.mask_id(0)] + tok.encode(f'" src="{src}">') + [tok.mask_id(0)]
            )
            stop = until_eos
        else:
            ids = tok.encode(f'<img src="{src}" title="')
            stop = StopRule(frozenset([tok.eos_id]), text='"')
        return Prompt(mode, tuple(ids), constraint.walk(ids), stop, "beam", fields={"src": src})
    if mode == "score":
        prompt_text = _text_field(request, "prompt")
        candidates = tuple(tuple(encode_with_masks(tok, c)) for c in _candidates_field(request))
        ids = encode_with_masks(tok, prompt_text)
        return Prompt(mode, tuple(ids), CodeState(), StopRule(), "score", candidates=candidates)
    if mode == "entity":
        doc = _text_field(request, "html")
        if "<mask:0>" not in doc:
            raise PromptError("entity needs `html` with <mask:0> where the mention's entity title goes")
        candidates = tuple(tuple(tok.encode(c) + [tok.eos_id]) for c in _candidates_field(request))
        ids = encode_with_masks(tok, doc) + [tok.mask_id(0)]
        return Prompt(
            mode, tuple(ids), CodeState(), StopRule(), "score", candidates=candidates, fields={"html": doc}
        )
    raise PromptError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


# ---------------------------------------------------------------------------------------------------
# Turning continuations into documents


def document_of(tok, prompt: Prompt, cont: Continuation) -> str:
    """The HTML the continuation completes (image codes in `src`, as in the document shards)."""
    f = prompt.fields
    if prompt.mode in ("unconditional_image", "conditional_image"):
        if not cont.images:
            return f["head"] + cont.text
        return f["head"] + " ".join(map(str, cont.images[0])) + '">'
    if prompt.mode == "image_infill":
        codes = [
            *f["prefix"],
            *(t - tok.image_code_offset for t in cont.ids if tok.is_image_id(t)),
            *f["postfix"],
        ]
        return f'<img{f["alt"]} src="{" ".join(map(str, codes))}">'
    if prompt.mode == "text_infill":
        return f["html"].replace("<mask:0>", cont.text)
    if prompt.mode == "masked_caption":
        return f'<img alt="{_attr(cont.text)}" src="{f["src"]}">'
    if prompt.mode == "causal_caption":
        return f'<img src="{f["src"]}" title="{_attr(cont.text)}">'
    raise PromptError(f"{prompt.mode} has no generated document")


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
        logprobs = score_completions(model, prompt.ids, prompt.candidates)
        scores = [
            {"candidate": c, "logprob": lp, "perplexity": math.exp(-lp / len(ids))}
            for c, lp, ids in zip(request["candidates"], logprobs, prompt.candidates, strict=True)
        ]
        scores.sort(key=lambda s: -s["logprob"])
        result["scores"] = scores
        result["best"] = scores[0]["candidate"]
        if prompt.mode == "entity":
            result["document"] = prompt.fields["html"].replace("<mask:0>", _attr(scores[0]["candidate"]))
        return result
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
            "document": document_of(tok, prompt, c),
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
    "document_of",
    "encode_with_masks",
    "request_seed",
    "run_request",
    "sample",
    "score_completions",
    "top_k_filter",
    "top_p_filter",
]
