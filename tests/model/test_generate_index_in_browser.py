"""`cm3-generate`'s index.html and the pages it links, loaded in headless Chromium: every generated image
(decoded from codes to PNG) loads, and no page logs a console error."""

import json

import numpy as np
import pytest
import torch

from model import CM3Config, CM3Tokenizer, CM3Transformer
from model.checkpoint import write_model_files
from model.generate_cli import main
from pipeline.screenshot import open_page, problems

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A tiny untrained CM3 model (the pages are under test, not the model) asked for an image and a score."""
    from image_tokenizer import load_vqgan

    vq = load_vqgan()
    rng = np.random.default_rng(0)
    docs = [
        f'<p>The cat sat on the mat number {i}.</p><img alt="cat" src="{" ".join(map(str, rng.integers(0, vq.n_embed, 256)))}">'
        for i in range(8)
    ]
    tok = CM3Tokenizer.train(docs, vocab_size=300, n_embed=vq.n_embed)
    cfg = CM3Config(
        vocab_size=tok.vocab_size,
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ffn=64,
        max_seq_len=512,
        pad_id=tok.pad_id,
    )
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("generate")
    write_model_files(root / "ckpt", CM3Transformer(cfg).state_dict(), cfg, tok)
    prompts = [
        {"mode": "unconditional_image"},
        {"mode": "score", "prompt": "<p>The cat sat on", "candidates": [" the mat.", " the moon."]},
    ]
    args = [str(root / "ckpt"), "--out", str(root / "out"), "--num-samples", "1", "--max-new-tokens", "300"]
    args += [arg for prompt in prompts for arg in ("--prompt", json.dumps(prompt))]
    assert main(args) == 0
    return root / "out"


def test_generation_index_and_its_pages_show_every_image(browser, results):
    index = open_page(browser, results / "index.html")
    assert problems(index) == []
    assert len(index["images"]) == 1  # the image request's PNG
    assert "perplexity" in browser.execute_script("return document.body.innerText")  # the score's table
    linked = browser.execute_script("return Array.from(document.links).map(a => a.getAttribute('href'))")
    assert linked == ["0000-unconditional_image-0.html"]
    for name in linked:
        page = open_page(browser, results / name)
        assert problems(page) == [], name
