"""The image-code constraint (CM3 section 4: every generated image is a well-formed `src`): once the
decoded text opens `<img ... src="`, only image-code ids, exactly 256 of them, then the attribute closes;
outside a `src`, never an image id, `<pad>`, a `<mask:i>` sentinel, or text that would start a `src`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

CODES_PER_IMAGE = 256
_TAIL_CHARS = 1024  # decoded text kept per sequence to recognise an opening `<img ... src="`
_IMG_SRC_OPEN = re.compile(r"<img\b[^<>]*[\s\"']src=\"$")
_IMG_TAG_OPEN = re.compile(r"<img\b[^<>]*$")
_SRC_WITH_VALUE = re.compile(r'src=".')
_SRC_OPENER = 'src="'


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

    @property
    def in_img_tag(self) -> bool:
        """The text so far ends inside an open `<img ...` tag."""
        return bool(_IMG_TAG_OPEN.search(self.tail))


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


__all__ = ["CODES_PER_IMAGE", "CodeConstraint", "CodeState"]
