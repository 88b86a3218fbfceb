"""End to end on shards written by the real pipeline (`cm3-data run` on its bundled sample corpus)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model import CM3Tokenizer, load_checkpoint
from model.shards import iter_docs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tokenize_and_train_on_pipeline_shards(tmp_path):
    if importlib.util.find_spec("pipeline.cli") is None:
        pytest.skip("the pipeline package (cm3-data) is not importable in this checkout")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    docs = tmp_path / "docs"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--output", str(docs), "--limit", "10", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
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
