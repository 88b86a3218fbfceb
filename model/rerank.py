"""Re-ranking sampled images and captions (CM3 sections 4.2.2 and 4.2.3 re-rank with CLIP: 32 images to
the top 4, 128 captions to the best one).

Two scorers with one interface, chosen by `cm3-generate --rerank`:
- `self`: the CM3 model's own likelihood in the other direction: an image sampled for a caption is
  scored by log p(caption | image) (the masked `alt` prompt), a caption sampled for an image by
  log p(image | caption) (the 256 codes after `<img alt="{caption}" src="`). Needs nothing else.
- `clip`: a CLIP model from a local directory (transformers' `CLIPModel` / `CLIPProcessor`, saved with
  `save_pretrained`); images are decoded from their codes by the VQGAN first. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .decoding import score_completions
from .prompts import attr, masked_caption_ids

CLIP_BATCH = 32  # images (or texts) per CLIP forward: memory bounded whatever the sample count


class RerankError(ValueError):
    """A re-ranker that cannot be set up (missing library, no CLIP model at the path)."""


class SelfReranker:
    """Scores with the CM3 model itself, in the direction opposite to the one that generated."""

    name = "self"

    def __init__(self, model, tok) -> None:
        self.model = model
        self.tok = tok

    def images_for_text(self, text: str, images: Sequence[Sequence[int]]) -> list[float]:
        """log p(`text` as the image's alt | image) for each image (the masked caption prompt)."""
        tok = self.tok
        completion = tok.encode(attr(text)) + [tok.eos_id]
        scores = []
        for codes in images:
            scores += score_completions(self.model, masked_caption_ids(tok, codes), [completion])
        return scores

    def captions_for_image(self, codes: Sequence[int], captions: Sequence[str]) -> list[float | None]:
        """log p(the 256 codes | `<img alt="{caption}" src="`) for each caption; None for a caption too long
        to fit beside its image in the model's context (a sample that ran on to its token budget), which
        then ranks last instead of failing the request."""
        tok = self.tok
        image_ids = [tok.image_code_offset + int(c) for c in codes]
        scores: list[float | None] = []
        for caption in captions:
            prompt = tok.encode(f'<img alt="{attr(caption)}" src="')
            fits = len(prompt) + len(image_ids) <= self.model.config.max_seq_len
            scores.append(score_completions(self.model, prompt, [image_ids])[0] if fits else None)
        return scores


def load_clip(path: str | Path):
    """(CLIPModel, CLIPProcessor) from a local directory written by `save_pretrained`; one-line errors."""
    try:
        from transformers import CLIPModel, CLIPProcessor
    except ImportError:
        raise RerankError(
            "--rerank clip needs the transformers library: pip install 'cm3-data[clip]'"
        ) from None
    path = Path(path)
    if not (path / "config.json").is_file():
        raise RerankError(f"--clip {path}: no CLIP model there (expected config.json from save_pretrained)")
    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise RerankError(f"--clip {path}: cannot load a CLIP model: {err}") from None
    return model, processor


class ClipReranker:
    """Scores by CLIP's image-text similarity (its `logits_per_image`), images decoded from codes."""

    name = "clip"

    def __init__(
        self, path: str | Path, decode_codes: Callable[[np.ndarray], np.ndarray], device: str = "cpu"
    ) -> None:
        """`decode_codes`: (N, 256) codes -> (N, H, W, 3) uint8 pixels (the VQGAN's decoder); CLIP runs
        on `device`, the run's --device."""
        self.model, self.processor = load_clip(path)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.decode_codes = decode_codes

    @torch.no_grad()
    def _similarity(self, texts: Sequence[str], pixels: np.ndarray) -> torch.Tensor:
        inputs = self.processor(
            text=list(texts), images=list(pixels), return_tensors="pt", padding=True, truncation=True
        ).to(self.device)
        return self.model(**inputs).logits_per_image.float().cpu()  # (images, texts)

    def images_for_text(self, text: str, images: Sequence[Sequence[int]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(images), CLIP_BATCH):
            pixels = self.decode_codes(np.asarray(images[start : start + CLIP_BATCH], dtype=np.int64))
            scores += self._similarity([text], pixels)[:, 0].tolist()
        return scores

    def captions_for_image(self, codes: Sequence[int], captions: Sequence[str]) -> list[float]:
        pixels = self.decode_codes(np.asarray([codes], dtype=np.int64))
        scores: list[float] = []
        for start in range(0, len(captions), CLIP_BATCH):
            scores += self._similarity(captions[start : start + CLIP_BATCH], pixels)[0].tolist()
        return scores


__all__ = ["CLIP_BATCH", "ClipReranker", "RerankError", "SelfReranker", "load_clip"]
