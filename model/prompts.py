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
from dataclasses import dataclass, replace

from .decoding import Continuation, PrefixTrie, PromptError, StopRule
from .image_constraint import CODES_PER_IMAGE, CodeConstraint, CodeState

_MASK_TEXT = re.compile(r"<mask:(\d+)>")
# Sizes a request may ask for, checked before anything is allocated: `samples: 10**6` would otherwise ask
# for a KV cache of 10**6 rows (146 GB on the small model). The paper's costliest prompt is 64 + 64 samples.
MAX_SAMPLES = 256
MAX_CANDIDATES = 4096
# CM3 section 4.2.3's captioning prompts start the caption with this text (in `alt` and in `title`)
PHOTO_PREFIX = "Photo: A photo taken of"


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
    extra_tokens: int = 0  # on top of the caller's limit (room for one image in `continue`)
    trie: PrefixTrie | None = None  # beam search limited to these sequences (entity linking)
    label: Callable[[Continuation], object] | None = None  # what a continuation spells (entity names)
    parts: tuple[Prompt, ...] = ()  # "caption": the masked and the causal prompt, both run
    samples: int = 0  # "caption": sampled captions per prompt, re-ranked (0: beam search)
    top: int = 0  # outputs kept after re-ranking (0: no re-ranking)
    codes: tuple[int, ...] = ()  # the image captions are re-ranked against
    text: str = ""  # the text images are re-ranked against; a caption part's fixed prefix
    size_hint: int = 0  # "summarize": tokens left for the infill (CM3 section 3.2)
    max_len: int = 0  # "summarize": the sequence length the size hint counts from (0: the model's)


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
            codes = codes.split(maxsplit=CODES_PER_IMAGE)
        if not isinstance(codes, list) or len(codes) != CODES_PER_IMAGE:  # counted before converting
            got = f"{len(codes)} of them" if isinstance(codes, list) else type(codes).__name__
            raise PromptError(f"codes must be {CODES_PER_IMAGE} integers, got {got}")
        try:
            codes = [_code(c) for c in codes]
        except (TypeError, ValueError, OverflowError) as err:
            raise PromptError(f"codes must be integers: {str(err)[:120]}") from None
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


def _code(value) -> int:
    """An image code written as an integer or its digits (not a bool, not 3.7)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{type(value).__name__} {str(value)[:40]}")
    return int(value)


def _text_field(request: Mapping, name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise PromptError(f"needs a non-empty string field `{name}`")
    return value


def _candidates_field(request: Mapping) -> list[str]:
    values = request.get("candidates")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PromptError("needs `candidates`: a non-empty list of non-empty strings")
    if len(values) > MAX_CANDIDATES:
        raise PromptError(f"`candidates` holds {len(values)} strings; at most {MAX_CANDIDATES}")
    return values


def _int_field(request: Mapping, name: str, default: int, low: int, high: int | None = None) -> int:
    value = request.get(name, default)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        limits = f"between {low} and {high}" if high is not None else f">= {low}"
        raise PromptError(f"`{name}` must be an integer {limits}, got {str(value)[:40]}")
    return value


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
    """{text, top?}: `<img alt="{text}" src="` -> 256 codes; with `top`, the --num-samples images
    re-ranked (--rerank) and the best `top` kept (section 4.2.2: 32 samples, top 4)."""
    text = _text_field(request, "text")
    prompt = _image_prompt("conditional_image", tok, constraint, f' alt="{attr(text)}"')
    return replace(prompt, top=_int_field(request, "top", 0, 0, MAX_SAMPLES), text=text)


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


def _caption_prefix(request: Mapping) -> str:
    prefix = request.get("prefix", PHOTO_PREFIX)
    if not isinstance(prefix, str):
        raise PromptError("`prefix` must be a string")
    return prefix


def masked_caption_ids(tok, codes: Sequence[int], prefix: str = "") -> list[int]:
    """`<img alt="{prefix}<mask:0>" src="{codes}"><mask:0>`: section 4.2.3's masked captioning prompt,
    also what `SelfReranker` scores a caption through."""
    src = " ".join(map(str, codes))
    return (
        tok.encode(f'<img alt="{attr(prefix)}')
        + [tok.mask_id(0)]
        + tok.encode(f'" src="{src}">')
        + [tok.mask_id(0)]
    )


def _masked_caption(tok, constraint: CodeConstraint, codes: Sequence[int], prefix: str) -> Prompt:
    src = " ".join(map(str, codes))
    ids = masked_caption_ids(tok, codes, prefix)
    return Prompt(
        "masked_caption",
        tuple(ids),
        constraint.walk(ids),
        _until_eos(tok),
        "beam",
        document=lambda cont: f'<img alt="{attr(prefix)}{attr(cont.text)}" src="{src}">',
        codes=tuple(codes),
        text=prefix,
    )


def _causal_caption(tok, constraint: CodeConstraint, codes: Sequence[int], prefix: str) -> Prompt:
    src = " ".join(map(str, codes))
    ids = tok.encode(f'<img src="{src}" title="{attr(prefix)}')
    return Prompt(
        "causal_caption",
        tuple(ids),
        constraint.walk(ids),
        StopRule(frozenset([tok.eos_id]), text='"'),
        "beam",
        document=lambda cont: f'<img src="{src}" title="{attr(prefix)}{attr(cont.text)}">',
        codes=tuple(codes),
        text=prefix,
    )


def masked_caption(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image, prefix?}: `<img alt="Photo: A photo taken of<mask:0>" src="{codes}"><mask:0>`
    -> caption up to <eos> (section 4.2.3's masked prompt; `prefix` replaces its "Photo: ..." text)."""
    codes = _codes_field(tok, request, codes_of_image)
    return _masked_caption(tok, constraint, codes, _caption_prefix(request))


def causal_caption(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image, prefix?}: `<img src="{codes}" title="Photo: A photo taken of` -> caption up to
    the closing quote (section 4.2.3's causal prompt)."""
    codes = _codes_field(tok, request, codes_of_image)
    return _causal_caption(tok, constraint, codes, _caption_prefix(request))


def caption(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{codes|image, samples?, top?, prefix?}: both captioning prompts of section 4.2.3. Without
    `samples`: beam search over each, the caption of lower perplexity first (the paper's cheap
    method); with `samples`: that many sampled captions per prompt, re-ranked (--rerank), the best
    `top` (default 1) kept (the costly method: 64 + 64 re-ranked by CLIP)."""
    codes = _codes_field(tok, request, codes_of_image)
    prefix = _caption_prefix(request)
    samples = _int_field(request, "samples", 0, 0, MAX_SAMPLES)
    return Prompt(
        "caption",
        (),
        CodeState(),
        StopRule(),
        "caption",
        parts=(
            _masked_caption(tok, constraint, codes, prefix),
            _causal_caption(tok, constraint, codes, prefix),
        ),
        samples=samples,
        top=_int_field(request, "top", 1, 1, MAX_SAMPLES) if samples else 0,
        codes=tuple(codes),
    )


def continue_html(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{html}: `{html}` -> sampled up to <eos>; an `src` the model opens gets exactly 256 codes. A
    prefix ending inside an `<img` tag stops when that tag closes: `<img` gives a self-captioned
    image, alt text first (section 4.1.1). Room for one image comes on top of --max-new-tokens."""
    doc = _text_field(request, "html")
    ids = encode_with_masks(tok, doc)
    state = replace(constraint.walk(ids), images=())  # only images generated here end the tag
    in_tag = state.remaining > 0 or state.closing or state.in_img_tag
    return Prompt(
        "continue",
        tuple(ids),
        state,
        StopRule(frozenset([tok.eos_id]), image_tag=in_tag),
        "sample",
        document=lambda cont: doc + cont.text,
        extra_tokens=CODES_PER_IMAGE + 1,
    )


def score(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{prompt, candidates}: log p(candidate | prompt) for each candidate."""
    prompt_text = _text_field(request, "prompt")
    candidates = tuple(tuple(encode_with_masks(tok, c)) for c in _candidates_field(request))
    ids = encode_with_masks(tok, prompt_text)
    return Prompt("score", tuple(ids), CodeState(), StopRule(), "score", candidates=candidates)


def entity(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{html with <mask:0> | text + mention, candidates}: the mention's link title is <mask:0>; each
    candidate is scored as `{html}<mask:0>{candidate}<eos>` and the best one fills the title (4.3.1)."""
    doc = _entity_html(request, "entity")
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


def _entity_html(request: Mapping, mode: str) -> str:
    """The mention marked as CM3's Wikipedia HTML marks a link (section 4.3.1): either `html` holding
    one <mask:0> (`<a title="<mask:0>">Memphis</a>`), or plain `text` with `mention: [start, end]`
    character offsets, wrapped here as `<p>...<a title="<mask:0>">{mention}</a>...</p>`."""
    if "html" in request:
        doc = _text_field(request, "html")
        if _MASK_TEXT.findall(doc) != ["0"]:
            raise PromptError(f"{mode} needs `html` with one <mask:0> where the mention's entity title goes")
        return doc
    text = _text_field(request, "text")
    span = request.get("mention")
    if not (isinstance(span, list) and len(span) == 2 and all(type(i) is int for i in span)):
        raise PromptError(f"{mode} needs `html` with <mask:0>, or `text` and `mention: [start, end]`")
    start, end = span
    if not 0 <= start < end <= len(text):
        raise PromptError(f"mention {span} must satisfy 0 <= start < end <= {len(text)}")
    before, mention, after = (
        html.escape(p, quote=False) for p in (text[:start], text[start:end], text[end:])
    )
    return f'<p>{before}<a title="<mask:0>">{mention}</a>{after}</p>'


def _mentions_html(request: Mapping) -> tuple[str, int]:
    """`html` with `<mask:0>` ... `<mask:k-1>`, each once and in order (k marked mentions), or one
    mention given as `text` + `mention`."""
    if "html" not in request:
        return _entity_html(request, "link"), 1
    doc = _text_field(request, "html")
    found = _MASK_TEXT.findall(doc)
    if not found or found != [str(i) for i in range(len(found))]:
        raise PromptError(
            "link needs `html` with <mask:0>, <mask:1>, ... (each once, in order), one per mention"
        )
    return doc, len(found)


def link(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{html with <mask:0>... | text + mention, candidates}: `{html}<mask:0>` -> beam search limited by a
    prefix trie to the candidates' tokens (4.3.2's zero-shot entity linking, decoded as GENRE does);
    several mentions (`<mask:1>` ..., `candidates` a list per mention) are decoded in one sequence,
    `<mask:0> e0 <mask:1> e1 ... <eos>`, the order the CM3 objective trains."""
    doc, k = _mentions_html(request)
    values = request.get("candidates")
    if k == 1 and not (isinstance(values, list) and values and isinstance(values[0], list)):
        per_mention = [_candidates_field(request)]
    elif isinstance(values, list) and len(values) == k:
        per_mention = [_candidates_field({"candidates": v}) for v in values]
    else:
        raise PromptError(f"`candidates` must be a list of {k} candidate lists, one per marked mention")
    separators = [tok.mask_id(i + 1) for i in range(k - 1)] + [tok.eos_id]
    segments = [
        [tuple(tok.encode(c)) + (sep,) for c in names]
        for names, sep in zip(per_mention, separators, strict=True)
    ]
    ids = encode_with_masks(tok, doc) + [tok.mask_id(0)]

    def names(cont: Continuation) -> list[str]:
        """The candidate each mention got (a finished continuation spells one per mention)."""
        out, start = [], 0
        for i, seq in enumerate(segments):
            end = cont.ids.index(separators[i], start) + 1
            out.append(per_mention[i][seq.index(cont.ids[start:end])])
            start = end
        return out

    def document(cont: Continuation) -> str:
        filled = doc
        for i, name in enumerate(names(cont) if cont.finished else []):
            filled = filled.replace(f"<mask:{i}>", attr(name))
        return filled

    return Prompt(
        "link",
        tuple(ids),
        CodeState(),
        _until_eos(tok),
        "beam",
        new_tokens=sum(max(map(len, seqs)) for seqs in segments),
        document=document,
        trie=PrefixTrie(*segments),
        label=lambda cont: (names(cont) if k > 1 else names(cont)[0]) if cont.finished else None,
    )


# HTLM-style summarization prompts (CM3 section 4.3.3): the summary infills a `<title>`, a headline or
# an `og:description` meta; attributes in alphabetical order, as the minimal HTML writes them.
SUMMARY_STYLES = {
    "title": "<html><head><title><mask:0></title></head><body>",
    "headline": "<html><body><h1><mask:0></h1>",
    "description": '<html><head><meta content="<mask:0>" property="og:description"></head><body>',
}


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip(), quote=False)}</p>" for p in text.split("\n") if p.strip())


def summarize(tok, constraint: CodeConstraint, request: Mapping, codes_of_image=None) -> Prompt:
    """{document, style?, size_hint?, max_len?}: `{head with <mask:0>}<p>{document}</p>...`, continued
    causally up to `max_len - size_hint` tokens (the document cut there if longer), then `<mask:0>`
    and the summary infilled up to <eos> by beam search (sections 4.3.3 and 3.2's implicit size hint)."""
    text = _text_field(request, "document")
    style = request.get("style", "title")
    if style not in SUMMARY_STYLES:
        raise PromptError(f"style {style!r}: choose from {', '.join(SUMMARY_STYLES)}")
    head = SUMMARY_STYLES[style]
    body = _paragraphs(text)
    if not body:
        raise PromptError("`document` has no text")
    ids = encode_with_masks(tok, head) + tok.encode(body)
    return Prompt(
        "summarize",
        tuple(ids),
        CodeState(),
        _until_eos(tok),
        "summarize",
        document=lambda cont: (head + body).replace("<mask:0>", attr(cont.text)) + "</body></html>",
        size_hint=_int_field(request, "size_hint", 16, 1),
        max_len=_int_field(request, "max_len", 0, 0),
    )


BUILDERS: dict[str, Callable[..., Prompt]] = {
    "unconditional_image": unconditional_image,
    "conditional_image": conditional_image,
    "text_infill": text_infill,
    "image_infill": image_infill,
    "masked_caption": masked_caption,
    "causal_caption": causal_caption,
    "caption": caption,
    "continue": continue_html,
    "score": score,
    "entity": entity,
    "link": link,
    "summarize": summarize,
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


__all__ = [
    "BUILDERS",
    "MODES",
    "PHOTO_PREFIX",
    "SUMMARY_STYLES",
    "Prompt",
    "attr",
    "build_prompt",
    "encode_with_masks",
    "masked_caption_ids",
]
