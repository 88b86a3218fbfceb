"""CM3 vocabulary: byte-level BPE text tokens, then `<pad>`, `<eos>`, `<mask:i>` sentinels, then one id per
VQGAN code. A `src="..."` attribute holding a canonical 256-code string becomes 256 image ids; everything
else is BPE text, so decode(encode(doc)) == doc for every string."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

LAYOUT_FORMAT = "cm3-vocab/1"
CODES_PER_IMAGE = 256
N_MASKS = 16  # the CM3 objective draws at most 16 spans
# BPE text vocabulary bounds: byte-level BPE starts from the 256 byte symbols, so fewer cannot be had (the
# trainer silently returns 256); the Rust trainer preallocates per requested token, and a huge request
# aborts the process, so the top is capped well above any practical vocabulary (Gemma's is 256k).
MIN_TEXT_VOCAB = len(pre_tokenizers.ByteLevel.alphabet())
MAX_TEXT_VOCAB = 2**20
_NUMBER = r"(?:0|[1-9][0-9]{0,8})"
# exactly 256 canonical decimal codes joined by single spaces, directly inside src="..."
_CODE_SRC = re.compile(rf'(?<=src="){_NUMBER}(?: {_NUMBER}){{{CODES_PER_IMAGE - 1}}}(?=")')


def split_images(html: str, n_embed: int) -> list[str | list[int]]:
    """Alternating pieces: text (str) and image codes (list of 256 ints < n_embed), in document order."""
    pieces: list[str | list[int]] = []
    pos = 0
    for match in _CODE_SRC.finditer(html):
        codes = [int(c) for c in match.group().split(" ")]
        if max(codes) >= n_embed:
            continue
        if match.start() > pos:
            pieces.append(html[pos : match.start()])
        pieces.append(codes)
        pos = match.end()
    if pos < len(html):
        pieces.append(html[pos:])
    return pieces


def text_without_images(html: str, n_embed: int) -> Iterator[str]:
    """The text pieces of a document (what BPE is trained on)."""
    for piece in split_images(html, n_embed):
        if isinstance(piece, str):
            yield piece


class CM3Tokenizer:
    """Wraps a Hugging Face byte-level BPE `Tokenizer` with the CM3 id layout."""

    def __init__(self, bpe: Tokenizer, n_embed: int, n_masks: int = N_MASKS) -> None:
        self.bpe = bpe
        self.n_text = bpe.get_vocab_size(with_added_tokens=False)
        self.n_embed = n_embed
        self.n_masks = n_masks
        self.pad_id = self.n_text
        self.eos_id = self.n_text + 1
        self.mask_offset = self.n_text + 2
        self.image_code_offset = self.mask_offset + n_masks
        self.vocab_size = self.image_code_offset + n_embed

    # ---- ids
    def mask_id(self, i: int) -> int:
        if not 0 <= i < self.n_masks:
            raise ValueError(f"mask index {i} out of range [0, {self.n_masks})")
        return self.mask_offset + i

    def is_mask_id(self, token_id: int) -> bool:
        return self.mask_offset <= token_id < self.image_code_offset

    def is_image_id(self, token_id: int) -> bool:
        return self.image_code_offset <= token_id < self.vocab_size

    def is_text_id(self, token_id: int) -> bool:
        return 0 <= token_id < self.n_text

    def tag_open_ids(self) -> frozenset[int]:
        """Text ids whose text holds a `<`: where an HTML tag opens (minimal HTML escapes any other `<`), so
        where a long document's windows may be cut (`objectives.window_bounds`). Byte-level BPE spells
        printable ASCII as itself."""
        return frozenset(i for i in range(self.n_text) if "<" in self.bpe.id_to_token(i))

    def special_token(self, token_id: int) -> str:
        if token_id == self.pad_id:
            return "<pad>"
        if token_id == self.eos_id:
            return "<eos>"
        if self.is_mask_id(token_id):
            return f"<mask:{token_id - self.mask_offset}>"
        raise ValueError(f"{token_id} is not a special id")

    # ---- text <-> ids
    def encode(self, html: str) -> list[int]:
        return self.encode_batch([html])[0]

    def encode_batch(self, docs: Sequence[str]) -> list[list[int]]:
        """Encodes many documents with one call into the Rust tokenizer."""
        split = [split_images(doc, self.n_embed) for doc in docs]
        texts = [p for pieces in split for p in pieces if isinstance(p, str)]
        encoded = iter(self.bpe.encode_batch(texts, add_special_tokens=False)) if texts else iter(())
        out = []
        for pieces in split:
            ids: list[int] = []
            for piece in pieces:
                if isinstance(piece, str):
                    ids.extend(next(encoded).ids)
                else:
                    ids.extend(self.image_code_offset + c for c in piece)
            out.append(ids)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text runs through the BPE decoder, image runs as space-joined codes, specials as `<name>`."""
        parts: list[str] = []
        text_run: list[int] = []
        prev_image = False
        for token_id in ids:
            token_id = int(token_id)
            if self.is_text_id(token_id):
                text_run.append(token_id)
                prev_image = False
                continue
            if text_run:
                parts.append(self.bpe.decode(text_run, skip_special_tokens=False))
                text_run = []
            if self.is_image_id(token_id):
                parts.append((" " if prev_image else "") + str(token_id - self.image_code_offset))
                prev_image = True
            else:
                parts.append(self.special_token(token_id))
                prev_image = False
        if text_run:
            parts.append(self.bpe.decode(text_run, skip_special_tokens=False))
        return "".join(parts)

    # ---- persistence
    def layout(self) -> dict:
        return {
            "format": LAYOUT_FORMAT,
            "n_text": self.n_text,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "mask_offset": self.mask_offset,
            "n_masks": self.n_masks,
            "image_code_offset": self.image_code_offset,
            "n_embed": self.n_embed,
            "codes_per_image": CODES_PER_IMAGE,
            "vocab_size": self.vocab_size,
        }

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.bpe.save(str(directory / "tokenizer.json"))
        (directory / "vocab_layout.json").write_text(json.dumps(self.layout(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> CM3Tokenizer:
        directory = Path(directory)
        layout = json.loads((directory / "vocab_layout.json").read_text())
        if layout.get("format") != LAYOUT_FORMAT:
            raise ValueError(
                f"{directory}: vocab layout format {layout.get('format')!r} is not {LAYOUT_FORMAT}"
            )
        tok = cls(
            Tokenizer.from_file(str(directory / "tokenizer.json")), layout["n_embed"], layout["n_masks"]
        )
        if tok.layout() != layout:
            raise ValueError(f"{directory}: tokenizer.json does not match vocab_layout.json")
        return tok

    @classmethod
    def train(
        cls, docs: Iterable[str], vocab_size: int, n_embed: int, min_frequency: int = 2
    ) -> CM3Tokenizer:
        """Byte-level BPE on the documents' text with image code strings left out."""
        if not MIN_TEXT_VOCAB <= vocab_size <= MAX_TEXT_VOCAB:
            raise ValueError(
                f"vocab_size must be from {MIN_TEXT_VOCAB} (the byte-level alphabet) to {MAX_TEXT_VOCAB}, "
                f"got {vocab_size}"
            )
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = (text for doc in docs for text in text_without_images(doc, n_embed))
        bpe.train_from_iterator(texts, trainer=trainer)
        return cls(bpe, n_embed)


__all__ = ["MAX_TEXT_VOCAB", "MIN_TEXT_VOCAB", "CM3Tokenizer", "split_images"]
