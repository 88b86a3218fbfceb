"""Re-ranking with CLIP from a local directory (`model.rerank`)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_clip_reranker_scores_as_clip_does_in_batches(tiny_clip, vq, caption_codes, captions):
    """Scores are CLIP's logits_per_image for the VQGAN-decoded image, whatever the batching."""
    from transformers import CLIPModel, CLIPProcessor

    from model.rerank import CLIP_BATCH, ClipReranker

    reranker = ClipReranker(tiny_clip, vq.decode)
    codes = [caption_codes(c, vq.n_embed) for c in captions]
    captions = [f"{c} number {i}" for i in range(CLIP_BATCH + 5) for c in captions[:1]]
    scores = reranker.captions_for_image(codes[0], captions)
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    with torch.no_grad():
        pixels = vq.decode(np.asarray(codes, dtype=np.int64))
        inputs = processor(text=captions, images=list(pixels), return_tensors="pt", padding=True)
        expected = model(**inputs).logits_per_image
    assert np.allclose(scores, expected[0].numpy(), atol=1e-4)
    by_image = reranker.images_for_text(captions[3], codes)
    assert np.allclose(by_image, expected[:, 3].numpy(), atol=1e-4)


def test_clip_reranker_errors_are_one_line(tmp_path, monkeypatch):
    from model.evaluate import EvalError, rouge_scorer
    from model.rerank import RerankError, load_clip

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the clip extra were not installed
    with pytest.raises(RerankError, match=r"pip install 'cm3-data\[clip\]'"):
        load_clip(tmp_path)
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    with pytest.raises(EvalError, match=r"pip install 'cm3-data\[eval\]'"):
        rouge_scorer()
    monkeypatch.undo()

    with pytest.raises(RerankError, match="no CLIP model there"):
        load_clip(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RerankError, match="cannot load a CLIP model"):
        load_clip(tmp_path)


def test_a_caption_too_long_to_score_beside_its_image_ranks_last(loaded, caption_codes, captions):
    """A sampled caption that ran on to its token budget cannot sit beside its 256 codes in the context: the
    self reranker gives it no score and it ranks last; the request does not fail (it did, in `make demo`)."""
    from model.generate import _reranked
    from model.rerank import SelfReranker

    model, tok, _ = loaded
    reranker = SelfReranker(model, tok)
    codes = caption_codes(captions[0], tok.n_embed)
    runaway = " ".join(["word"] * model.config.max_seq_len)
    scores = reranker.captions_for_image(codes, [captions[0], runaway])
    assert isinstance(scores[0], float) and scores[1] is None
    outputs = [{"caption": runaway}, {"caption": captions[0]}]
    ranked = _reranked(outputs, scores[::-1], 2, reranker)
    assert [o["caption"] for o in ranked] == [captions[0], runaway]
