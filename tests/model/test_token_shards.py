"""`tokenize`: document shards -> memory-mapped token shards (format, parallel == serial, bad input)."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from model import CM3Tokenizer
from model.shards import ShardError, TokenSplit, doc_key, iter_docs, tokenize_shards, train_tokenizer


def _docs_by_key(doc_dir, split):
    return {
        doc_key(row["id"]): row["html"]
        for path in sorted((doc_dir / "data").glob(f"{split}-*.parquet"))
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
        assert info["image_tokens"] == np.count_nonzero(raw >= tok.image_code_offset)


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
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())
    shard = manifest["splits"]["validation"]["shards"][0]
    table = pq.read_table(docs / "data" / shard["file"])
    html = table.column("html").to_pylist()
    html[0], html[1] = None, ""
    table = table.set_column(table.schema.get_field_index("html"), "html", [html])
    pq.write_table(table, docs / "data" / shard["file"], compression="zstd")
    import hashlib

    shard["sha256"] = hashlib.sha256((docs / "data" / shard["file"]).read_bytes()).hexdigest()
    (docs / "_meta" / "manifest.json").write_text(json.dumps(manifest))
    out = tokenize_shards(docs, tokenizer_dir, tmp_path / "tokens", workers=1)
    assert out["splits"]["validation"]["skipped_empty"] == 2
    assert out["splits"]["validation"]["docs"] == 14


def test_bad_inputs_are_typed_errors(doc_shards, tokenizer_dir, tmp_path):
    with pytest.raises(ShardError, match="manifest"):
        tokenize_shards(tmp_path, tokenizer_dir, tmp_path / "out")
    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = "0" * 64
    (docs / "_meta" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="sha256"):
        tokenize_shards(docs, tokenizer_dir, tmp_path / "out", workers=1)
    manifest["image_codes"]["n_embed"] = 128
    (docs / "_meta" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="image codes"):
        tokenize_shards(docs, tokenizer_dir, tmp_path / "out", workers=1)
    with pytest.raises(ShardError, match="tokenize"):
        TokenSplit.open(tmp_path, "train")


def _damaged_copy(token_shards, tmp_path, name, damage, rehash=False):
    """A copy of the token shards with `damage(array)` applied to one file; `rehash` records the damaged
    file's sha256 in the manifest, as a tool that rewrote it would (only the structural checks can see it)."""
    import hashlib

    out = tmp_path / "tokens"
    shutil.copytree(token_shards, out)
    path = out / name
    dtype = {"u32": "<u4", "i64": "<i8", "u64": "<u8"}[name.rsplit(".", 1)[1]]
    array = np.fromfile(path, dtype=dtype)
    damage(array).tofile(path)
    if rehash:
        manifest = json.loads((out / "manifest.json").read_text())
        split, kind = name.split(".")[:2]
        manifest["splits"][split]["sha256"][kind] = hashlib.sha256(path.read_bytes()).hexdigest()
        (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _set(index, value):
    def damage(array):
        array[index] = value
        return array

    return damage


def test_a_flipped_byte_in_any_token_file_is_refused(token_shards, tmp_path):
    def flip(array):
        array.view(np.uint8)[len(array.view(np.uint8)) // 2] ^= 0x10
        return array

    for i, name in enumerate(("train.tokens.u32", "train.offsets.i64", "train.keys.u64")):
        data = _damaged_copy(token_shards, tmp_path / str(i), name, flip)
        with pytest.raises(ShardError, match=rf"{name}: sha256 differs from the manifest"):
            TokenSplit.open(data, "train")
    TokenSplit.open(token_shards, "train")  # the intact copy opens


def test_out_of_range_token_ids_are_refused_naming_the_position(token_shards, tmp_path):
    offsets = np.fromfile(token_shards / "train.offsets.i64", dtype="<i8")
    position = int(offsets[7]) + 2  # the third token of document 7
    vocab_size = json.loads((token_shards / "manifest.json").read_text())["vocab"]["vocab_size"]
    for value in (vocab_size, 2**32 - 1):
        data = _damaged_copy(
            token_shards, tmp_path / str(value), "train.tokens.u32", _set(position, value), True
        )
        with pytest.raises(ShardError) as err:
            TokenSplit.open(data, "train")
        assert str(err.value) == (
            f"{data / 'train.tokens.u32'}: token {position} (document 7) is id {value}, "
            f"not below the vocabulary size {vocab_size}"
        )


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (-1, 10**12, "ends at 1000000000000, not at the "),
        (5, 10**12, "is less than offset 5 (1000000000000)"),
        (5, -3, "offset 5 (-3) is less than offset 4 ("),
        (0, 1, "starts at 1, not 0"),
    ],
)
def test_offsets_must_start_at_zero_rise_and_end_at_the_token_count(
    token_shards, tmp_path, index, value, message
):
    data = _damaged_copy(token_shards, tmp_path, "train.offsets.i64", _set(index, value), rehash=True)
    with pytest.raises(ShardError, match=str(data / "train.offsets.i64")) as err:
        TokenSplit.open(data, "train")
    assert message in str(err.value)


def test_truncated_token_file_is_refused(token_shards, tmp_path):
    data = _damaged_copy(token_shards, tmp_path, "train.tokens.u32", lambda a: a[:-3], rehash=True)
    with pytest.raises(ShardError, match=r"train.tokens.u32: \d+ bytes, but the manifest's \d+ tokens take"):
        TokenSplit.open(data, "train")


def test_cm3_train_reports_a_damaged_token_shard_in_one_line(token_shards, tmp_path, capsys):
    from model.cli import main

    data = _damaged_copy(token_shards, tmp_path, "train.tokens.u32", _set(3, 2**31), rehash=True)
    args = [
        "train",
        "--data",
        str(data),
        "preset=tiny",
        "max_steps=1",
        "device=cpu",
        f"out={tmp_path / 'run'}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cm3-train: error: ") and "token 3 (document 0) is id 2147483648" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("model.pt"))


def test_cm3_train_tokenizer_reports_a_corrupt_document_shard_in_one_line(doc_shards, tmp_path, capsys):
    from model.cli import main

    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())
    shard = docs / "data" / manifest["splits"]["train"]["shards"][0]["file"]
    raw = bytearray(shard.read_bytes())
    raw[-8] ^= 0xFF  # the footer's length field
    shard.write_bytes(bytes(raw))
    assert (
        main(["tokenizer", "--data", str(docs), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("cm3-train: error: ") and len(err.splitlines()) == 1 and str(shard) in err
    shard.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    assert (
        main(["tokenizer", "--data", str(docs), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("cm3-train: error: ") and len(err.splitlines()) == 1 and str(shard) in err


def test_an_unreadable_document_shard_is_named_even_without_a_manifest_sha256(doc_shards, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())
    entry = manifest["splits"]["train"]["shards"][0]
    del entry["sha256"]
    (docs / "_meta" / "manifest.json").write_text(json.dumps(manifest))
    shard = docs / "data" / entry["file"]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ShardError, match=rf"{shard}: not a readable Parquet file \("):
        train_tokenizer(docs, vocab_size=300, out_dir=tmp_path / "tok")


def test_document_shards_of_the_older_layout_still_tokenize(
    doc_shards, tokenizer_dir, token_shards, tmp_path
):
    """Outputs of the first layout keep the shards and manifest.json side by side (no `shards_dir`): still
    read, same tokens."""
    docs = tmp_path / "docs"
    shutil.copytree(doc_shards, docs)
    manifest = json.loads((docs / "_meta" / "manifest.json").read_text())
    del manifest["shards_dir"]
    (docs / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(docs / "_meta")
    for shard in (docs / "data").iterdir():
        shard.rename(docs / shard.name)
    (docs / "data").rmdir()
    tokenize_shards(docs, tokenizer_dir, tmp_path / "tokens", workers=1)
    for name in ("train.tokens.u32", "validation.tokens.u32", "train.keys.u64"):
        assert (tmp_path / "tokens" / name).read_bytes() == (token_shards / name).read_bytes(), name
