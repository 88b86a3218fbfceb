"""`tokenize`: document shards -> memory-mapped token shards (format, parallel == serial, bad input)."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from model import CM3Tokenizer
from model.shards import ShardError, TokenSplit, doc_key, iter_docs, tokenize_shards


def _docs_by_key(doc_dir, split):
    return {
        doc_key(row["id"]): row["html"]
        for path in sorted(doc_dir.glob(f"{split}-*.parquet"))
        for row in iter_docs(path)
    }


def test_token_shards_format_and_content(token_shards, doc_shards):
    manifest = json.loads((token_shards / "manifest.json").read_text())
    assert manifest["format"] == "cm3-tokens/1"
    tok = CM3Tokenizer.load(token_shards / "tokenizer")
    assert manifest["vocab"] == tok.layout()
    for split, rows in (("train", 120), ("validation", 16)):
        info = manifest["splits"][split]
        assert info["docs"] == rows and info["skipped_empty"] == 0
        raw = np.fromfile(token_shards / f"{split}.tokens.u32", dtype="<u4")
        offsets = np.fromfile(token_shards / f"{split}.offsets.i64", dtype="<i8")
        assert offsets[0] == 0 and offsets[-1] == len(raw) == info["tokens"] and np.all(np.diff(offsets) > 0)
        data = TokenSplit.open(token_shards, split)
        assert isinstance(data.tokens, np.memmap) and len(data) == rows
        docs = _docs_by_key(doc_shards, split)
        assert sorted(docs) == sorted(data.keys.tolist())
        for i in range(len(data)):
            assert tok.decode(data.doc(i)) == docs[int(data.keys[i])]
        assert int(raw.max()) < tok.vocab_size


def test_parallel_tokenize_writes_the_same_bytes(token_shards, doc_shards, tokenizer_dir, tmp_path):
    tokenize_shards(doc_shards, tokenizer_dir, tmp_path, workers=2)
    for name in (
        "train.tokens.u32",
        "train.offsets.i64",
        "train.keys.u64",
        "validation.tokens.u32",
        "manifest.json",
    ):
        if name == "manifest.json":
            a = json.loads((tmp_path / name).read_text())
            b = json.loads((token_shards / name).read_text())
            assert a["splits"] == b["splits"]
        else:
            assert (tmp_path / name).read_bytes() == (token_shards / name).read_bytes(), name
    assert not (tmp_path / ".parts").exists()


def test_empty_documents_are_counted_not_fatal(doc_shards, tokenizer_dir, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "manifest.json").read_text())
    shard = manifest["splits"]["validation"]["shards"][0]
    table = pq.read_table(docs / shard["file"])
    html = table.column("html").to_pylist()
    html[0], html[1] = None, ""
    table = table.set_column(table.schema.get_field_index("html"), "html", [html])
    pq.write_table(table, docs / shard["file"], compression="zstd")
    import hashlib

    shard["sha256"] = hashlib.sha256((docs / shard["file"]).read_bytes()).hexdigest()
    (docs / "manifest.json").write_text(json.dumps(manifest))
    out = tokenize_shards(docs, tokenizer_dir, tmp_path / "tokens", workers=1)
    assert out["splits"]["validation"]["skipped_empty"] == 2
    assert out["splits"]["validation"]["docs"] == 14


def test_bad_inputs_are_typed_errors(doc_shards, tokenizer_dir, tmp_path):
    with pytest.raises(ShardError, match="manifest"):
        tokenize_shards(tmp_path, tokenizer_dir, tmp_path / "out")
    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = "0" * 64
    (docs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="sha256"):
        tokenize_shards(docs, tokenizer_dir, tmp_path / "out", workers=1)
    manifest["image_codes"]["n_embed"] = 128
    (docs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="image codes"):
        tokenize_shards(docs, tokenizer_dir, tmp_path / "out", workers=1)
    with pytest.raises(ShardError, match="tokenize"):
        TokenSplit.open(tmp_path, "train")
