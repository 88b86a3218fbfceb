"""End to end on shards written by the real pipeline (`cm3-data run` on its bundled sample corpus)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import CM3Tokenizer, load_checkpoint
from model.objectives import SpecialIds, window_bounds, window_len
from model.shards import TokenSplit, iter_docs, tokenize_shards, train_tokenizer

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_pipeline(docs: Path, *args: str) -> None:
    """`cm3-data run` on the bundled sample corpus into `docs`."""
    if importlib.util.find_spec("pipeline.cli") is None:
        pytest.skip("the pipeline package (cm3-data) is not importable in this checkout")
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--output", str(docs), "--quiet", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_long_pipeline_documents_are_windowed_without_cutting_an_image(tmp_path, images_in_windows):
    """The sample corpus's pages joined into long documents of ~7 pages, cut for seq_len 512 and 2048."""
    run_pipeline(tmp_path / "docs")
    train_tokenizer(tmp_path / "docs", vocab_size=1000, out_dir=tmp_path / "tok")
    tokenize_shards(tmp_path / "docs", tmp_path / "tok", tmp_path / "tokens", workers=1)
    tok = CM3Tokenizer.load(tmp_path / "tokens" / "tokenizer")
    pages = [
        split.doc(i).astype(np.int64)
        for split in (TokenSplit.open(tmp_path / "tokens", s) for s in ("train", "validation"))
        for i in range(len(split))
    ]
    long_docs = [np.concatenate(pages[i : i + 7]) for i in range(0, len(pages), 7)]
    ids = SpecialIds(tok.pad_id, tok.eos_id, tok.mask_offset, tok.n_masks, tok.vocab_size, tok.tag_open_ids())
    for seq_len in (512, 2048):
        w = window_len("cm3", seq_len)
        images = whole = 0
        for doc in long_docs:
            bounds = window_bounds(doc, w, ids)
            assert [t for a, z in bounds for t in range(a, z)] == list(range(len(doc)))  # each token once
            n, kept = images_in_windows(tok, doc, bounds)
            images, whole = images + n, whole + kept
        assert images >= 10 and whole == images, (seq_len, images, whole)  # 0 % of images cut


@pytest.mark.slow
def test_tokenize_and_train_on_pipeline_shards(tmp_path):
    env = ENV
    docs = tmp_path / "docs"
    run_pipeline(docs, "--limit", "10")
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())

    def cli(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "model.cli", *args], env=env, capture_output=True, text=True, timeout=400
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    cli("tokenizer", "--data", str(docs), "--vocab-size", "1000", "--out", str(tmp_path / "tok"))
    cli(
        "tokenize",
        "--data",
        str(docs),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--out",
        str(tmp_path / "tokens"),
        "--workers",
        "2",
    )
    tok = CM3Tokenizer.load(tmp_path / "tokens" / "tokenizer")
    assert tok.n_embed == manifest["image_codes"]["n_embed"]
    tokens_manifest = json.loads((tmp_path / "tokens" / "manifest.json").read_text())
    n_docs = n_images = n_image_ids = 0
    for shard in sorted((docs / "data").glob("*.parquet")):
        for row in iter_docs(shard, ("id", "html", "n_images")):
            ids = tok.encode(row["html"])
            assert tok.decode(ids) == row["html"]
            n_docs += 1
            n_images += row["n_images"]
            n_image_ids += sum(tok.is_image_id(i) for i in ids)
    assert n_image_ids == 256 * n_images  # every kept <img> carries a valid 256-code string
    assert sum(s["docs"] for s in tokens_manifest["splits"].values()) == n_docs > 0

    out = tmp_path / "run"
    cli(
        "train",
        "--data",
        str(tmp_path / "tokens"),
        "--preset",
        "tiny",
        "seq_len=128",
        "batch_size=2",
        "max_steps=4",
        "warmup_steps=2",
        "eval_every=4",
        "eval_batches=1",
        "progress=false",
        f"out={out}",
    )
    model, tok2, cfg = load_checkpoint(out)
    assert tok2.layout() == tok.layout() and cfg.vocab_size == tok.vocab_size
