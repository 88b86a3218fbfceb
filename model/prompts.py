"""The paper's prompts (CM3 section 4), one builder per mode in `BUILDERS`: a new mode is one function
and one table entry.

Prompts are built at the token level: `<mask:i>` sentinels are special ids (the tokenizer reads the
literal text `<mask:0>` as BPE text), and a `src` holding a prefix and postfix of codes around a mask
is not a 256-code string, so its codes are placed as image ids directly, as the CM3 objective does
when a masked span cuts through an image.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .decoding import Continuation, PromptError, StopRule
from .image_constraint import CODES_PER_IMAGE, CodeConstraint, CodeState

_MASK_TEXT = re.compile(r"<mask:(\d+)>")


@dataclass(frozen=True)
class Prompt:
    """A request turned into token ids, how to decode from them, and how the output document is made
    from a continuation (a scoring mode's continuation is its best candidate)."""

    mode: str
    ids: tuple[int, ...]
    state: CodeState
    stop: StopRule
    search: str  # "sample" | "beam" | "score"
    new_tokens: int | None = None  # fixed by the mode (image codes), else the caller's limit
    candidates: tuple[tuple[int, ...], ...] = ()
    document: Callable[[Continuation], str] | None = None


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


def attr(value: str) -> str:
    """`value` escaped for an HTML attribute."""
    return html.escape(value, quote=True)


# ---- request fields


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


def _until_eos(tok) -> StopRule:
    return StopRule(frozenset([tok.eos_id]))


# ---- one builder per mode: (tokenizer, constraint, request, codes_of_image) -> Prompt


def _image_prompt(mode: str, tok, constraint: CodeConstraint, alt: str) -> Prompt:
    """`<img{alt} src="` -> exactly 256 codes and the closing token."""
    head = f'<img{alt} src="'
    ids = tok.encode(head)
    state = constraint.walk(ids)
    if state.remaining == 0:
        raise PromptError(f"the tokenizer does not open an image src for {head[:-1]!r}")

    def document(cont: Continuation) -> str:
        if not cont.images:
            return head + cont.text
        return head + " ".join(map(str, cont.images[0])) + '">'

    return Prompt(
        mode,
        tuple(ids),
        state,
        StopRule(images=1),
        "sample",
        new_tokens=state.remaining + 1,
        document=document,
    )


def unconditional_image(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """`<img src="` -> 256 codes (section 4.1.1)."""
    return _image_prompt("unconditional_image", tok, constraint, "")


def conditional_image(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{text}: `<img alt="{text}" src="` -> 256 codes (section 4.2.2)."""
    alt = f' alt="{attr(_text_field(request, "text"))}"'
    return _image_prompt("conditional_image", tok, constraint, alt)


def text_infill(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{html with one <mask:0>}: `{html}<mask:0>` -> the span, up to <eos> (section 2's infilling)."""
    doc = _text_field(request, "html")
    if _MASK_TEXT.findall(doc) != ["0"]:
        raise PromptError("text_infill needs `html` with exactly one <mask:0> (the span to fill)")
    ids = encode_with_masks(tok, doc) + [tok.mask_id(0)]
    return Prompt(
        "text_infill",
        tuple(ids),
        constraint.walk(ids),
        _until_eos(tok),
        "sample",
        document=lambda cont: doc.replace("<mask:0>", cont.text),
    )


def image_infill(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image, span: [start, end], text?}: `<img [alt="{text}"] src="{prefix}<mask:0>{postfix}"><mask:0>`
    -> end - start codes, then <eos> (sections 4.1.2 and 4.2.1)."""
    codes = _codes_field(tok, request, codes_of_image)
    span = request.get("span")
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(s, int) for s in span)):
        raise PromptError("image_infill needs `span`: [start, end] code positions to regenerate")
    start, end = span
    if not 0 <= start < end <= CODES_PER_IMAGE:
        raise PromptError(f"span {span} must satisfy 0 <= start < end <= {CODES_PER_IMAGE}")
    alt = f' alt="{attr(_text_field(request, "text"))}"' if "text" in request else ""
    prefix, postfix = codes[:start], codes[end:]
    ids = (
        tok.encode(f'<img{alt} src="')
        + _image_ids(tok, prefix)
        + [tok.mask_id(0)]
        + _image_ids(tok, postfix)
        + tok.encode('">')
        + [tok.mask_id(0)]
    )

    def document(cont: Continuation) -> str:
        infilled = [t - tok.image_code_offset for t in cont.ids if tok.is_image_id(t)]
        return f'<img{alt} src="{" ".join(map(str, [*prefix, *infilled, *postfix]))}">'

    state = CodeState(remaining=end - start, close_with_eos=True)
    return Prompt(
        "image_infill",
        tuple(ids),
        state,
        _until_eos(tok),
        "sample",
        new_tokens=end - start + 1,
        document=document,
    )


def masked_caption(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image}: `<img alt="<mask:0>" src="{codes}"><mask:0>` -> caption up to <eos> (section 4.2.3)."""
    src = " ".join(map(str, _codes_field(tok, request, codes_of_image)))
    ids = tok.encode('<img alt="') + [tok.mask_id(0)] + tok.encode(f'" src="{src}">') + [tok.mask_id(0)]
    return Prompt(
        "masked_caption",
        tuple(ids),
        constraint.walk(ids),
        _until_eos(tok),
        "beam",
        document=lambda cont: f'<img alt="{attr(cont.text)}" src="{src}">',
    )


def causal_caption(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image}: `<img src="{codes}" title="` -> caption up to the closing quote (section 4.2.3)."""
    src = " ".join(map(str, _codes_field(tok, request, codes_of_image)))
    ids = tok.encode(f'<img src="{src}" title="')
    return Prompt(
        "causal_caption",
        tuple(ids),
        constraint.walk(ids),
        StopRule(frozenset([tok.eos_id]), text='"'),
        "beam",
        document=lambda cont: f'<img src="{src}" title="{attr(cont.text)}">',
    )


def score(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{prompt, candidates}: log p(candidate | prompt) for each candidate."""
    prompt_text = _text_field(request, "prompt")
    candidates = tuple(tuple(encode_with_masks(tok, c)) for c in _candidates_field(request))
    ids = encode_with_masks(tok, prompt_text)
    return Prompt("score", tuple(ids), CodeState(), StopRule(), "score", candidates=candidates)


def entity(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{html with <mask:0>, candidates}: the mention's link title is <mask:0>; each candidate is scored
    as `{html}<mask:0>{candidate}<eos>` and the best one fills the title (section 4.3.1)."""
    doc = _text_field(request, "html")
    if "<mask:0>" not in doc:
        raise PromptError("entity needs `html` with <mask:0> where the mention's entity title goes")
    candidates = tuple(tuple(tok.encode(c) + [tok.eos_id]) for c in _candidates_field(request))
    ids = encode_with_masks(tok, doc) + [tok.mask_id(0)]
    return Prompt(
        "entity",
        tuple(ids),
        CodeState(),
        StopRule(),
        "score",
        candidates=candidates,
        document=lambda best: doc.replace("<mask:0>", attr(best.text)),
    )


BUILDERS: dict[str, Callable[..., Prompt]] = {
    "unconditional_image": unconditional_image,
    "conditional_image": conditional_image,
    "text_infill": text_infill,
    "image_infill": image_infill,
    "masked_caption": masked_caption,
    "causal_caption": causal_caption,
    "score": score,
    "entity": entity,
}
MODES = tuple(BUILDERS)


def build_prompt(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """The CM3 prompt for one request (a JSON object with `mode` and the mode's fields); `codes_of_image`
    encodes an `image` field's file to 256 codes."""
    mode = request.get("mode")
    builder = BUILDERS.get(mode) if isinstance(mode, str) else None
    if builder is None:
        raise PromptError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return builder(tok, constraint, request, codes_of_image)


__all__ = ["BUILDERS", "MODES", "Prompt", "attr", "build_prompt", "encode_with_masks"]
