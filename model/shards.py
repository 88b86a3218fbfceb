"""Document shards (Parquet, written by the pipeline) -> token shards (memory-mapped uint32 + int64 offsets).

Token shard directory: `{split}.tokens.u32` (little-endian uint32 ids, documents back to back),
`{split}.offsets.i64` (n_docs + 1 little-endian int64 offsets into the tokens), `{split}.keys.u64`
(a stable 64-bit key per document, from its id, that seeds its masking), `tokenizer/` and `manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .tokenizer import CM3Tokenizer

DOCS_FORMAT = "cm3-docs/1"
TOKENS_FORMAT = "cm3-tokens/1"
SPLITS = ("train", "validation")
_ENCODE_BATCH = 256


class ShardError(ValueError):
    """Missing or inconsistent shard files or manifest."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def doc_key(doc_id: str) -> int:
    """Stable 64-bit key of a document id (seeds its masking)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")


def _read_manifest(directory: str | Path, fmt: str, missing: str) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise ShardError(f"{directory}: no manifest.json ({missing})")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != fmt:
        raise ShardError(f"{path}: format {manifest.get('format')!r} is not {fmt}")
    return manifest


def read_docs_manifest(data_dir: str | Path) -> dict:
    return _read_manifest(data_dir, DOCS_FORMAT, "not a document shard directory")


def doc_shard_files(data_dir: str | Path, split: str, manifest: dict) -> list[tuple[Path, int, str]]:
    """(path, rows, sha256) of a split's shards in manifest order; missing split -> []."""
    info = manifest.get("splits", {}).get(split)
    if not info:
        return []
    out = []
    for shard in info["shards"]:
        path = Path(data_dir) / shard["file"]
        if not path.exists():
            raise ShardError(f"{path}: listed in the manifest but missing")
        out.append((path, int(shard["rows"]), shard.get("sha256", "")))
    return out


def iter_docs(path: Path, columns: tuple[str, ...] = ("id", "html")) -> Iterator[dict]:
    """Rows of one document shard, read in record batches."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_ENCODE_BATCH, columns=list(columns)):
        yield from batch.to_pylist()


def train_tokenizer(data_dir: str | Path, vocab_size: int, out_dir: str | Path) -> CM3Tokenizer:
    """BPE on the train split's text (image code strings excluded), n_embed from the shards' manifest."""
    manifest = read_docs_manifest(data_dir)
    n_embed = int(manifest["image_codes"]["n_embed"])
    shards = doc_shard_files(data_dir, "train", manifest)
    if not shards:
        raise ShardError(f"{data_dir}: no train shards to learn the vocabulary from")
    docs = (row["html"] for path, _, _ in shards for row in iter_docs(path, ("html",)) if row["html"])
    tok = CM3Tokenizer.train(docs, vocab_size=vocab_size, n_embed=n_embed)
    tok.save(out_dir)
    return tok


# ---- tokenize (multiprocessing: one task per document shard)

_WORKER_TOKENIZER: CM3Tokenizer | None = None


def _init_worker(tokenizer_dir: str) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = CM3Tokenizer.load(tokenizer_dir)


def _tokenize_shard(task: tuple[str, str, str, str]) -> dict:
    """Tokenize one Parquet shard into part files; returns counts and the file sha256 check."""
    path, expected_sha, part_prefix, split = task
    tok = _WORKER_TOKENIZER
    assert tok is not None
    if expected_sha and _sha256(Path(path)) != expected_sha:
        raise ShardError(f"{path}: sha256 does not match the manifest")
    lengths: list[int] = []
    keys: list[int] = []
    skipped_empty = 0
    with open(part_prefix + ".tokens", "wb") as tokens_file:
        batch: list[dict] = []

        def flush() -> None:
            nonlocal skipped_empty
            for row, ids in zip(batch, tok.encode_batch([r["html"] for r in batch]), strict=True):
                if not ids:
                    skipped_empty += 1
                    continue
                tokens_file.write(np.asarray(ids, dtype="<u4").tobytes())
                lengths.append(len(ids))
                keys.append(doc_key(row["id"]))
            batch.clear()

        for row in iter_docs(Path(path)):
            if not row.get("html") or row.get("id") is None:
                skipped_empty += 1
                continue
            batch.append(row)
            if len(batch) >= _ENCODE_BATCH:
                flush()
        flush()
    np.asarray(lengths, dtype="<i8").tofile(part_prefix + ".lengths")
    np.asarray(keys, dtype="<u8").tofile(part_prefix + ".keys")
    return {"split": split, "docs": len(lengths), "tokens": int(sum(lengths)), "skipped_empty": skipped_empty}


def tokenize_shards(
    data_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path, workers: int | None = None
) -> dict:
    """All splits of a document shard directory -> one token shard directory (written, then manifest)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    manifest = read_docs_manifest(data_dir)
    tok = CM3Tokenizer.load(tokenizer_dir)
    n_embed = int(manifest["image_codes"]["n_embed"])
    if tok.n_embed != n_embed:
        raise ShardError(f"tokenizer has {tok.n_embed} image codes, the shards' VQGAN has {n_embed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    parts_dir = out_dir / ".parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir()
    tasks = []
    for split in SPLITS:
        for i, (path, _, sha) in enumerate(doc_shard_files(data_dir, split, manifest)):
            tasks.append((str(path), sha, str(parts_dir / f"{split}-{i:05d}"), split))
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    if workers == 1:
        _init_worker(str(tokenizer_dir))
        results = [_tokenize_shard(t) for t in tasks]
    else:
        ctx = multiprocessing.get_context("spawn")  # the Rust tokenizer's thread pool does not survive fork
        with ctx.Pool(workers, initializer=_init_worker, initargs=(str(tokenizer_dir),)) as pool:
            results = pool.map(_tokenize_shard, tasks, chunksize=1)

    splits = {}
    for split in SPLITS:
        split_tasks = [(t, r) for t, r in zip(tasks, results, strict=True) if t[3] == split]
        if not split_tasks:
            continue
        splits[split] = _concatenate_parts(out_dir, split, [t[2] for t, _ in split_tasks])
        splits[split]["skipped_empty"] = sum(r["skipped_empty"] for _, r in split_tasks)
        splits[split]["source_shards"] = len(split_tasks)
    shutil.rmtree(parts_dir)
    tok.save(out_dir / "tokenizer")
    token_manifest = {
        "format": TOKENS_FORMAT,
        "splits": splits,
        "vocab": tok.layout(),
        "tokenizer_sha256": _sha256(out_dir / "tokenizer" / "tokenizer.json"),
        "source": {"dir": str(data_dir), "manifest_sha256": _sha256(data_dir / "manifest.json")},
    }
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(token_manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / "manifest.json")
    return token_manifest


def _concatenate_parts(out_dir: Path, split: str, prefixes: list[str]) -> dict:
    names = {"tokens": f"{split}.tokens.u32", "offsets": f"{split}.offsets.i64", "keys": f"{split}.keys.u64"}
    lengths = [np.fromfile(p + ".lengths", dtype="<i8") for p in prefixes]
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype("<i8")
    with open(out_dir / (names["tokens"] + ".tmp"), "wb") as out:
        for p in prefixes:
            with open(p + ".tokens", "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    offsets.tofile(out_dir / (names["offsets"] + ".tmp"))
    np.concatenate([np.fromfile(p + ".keys", dtype="<u8") for p in prefixes]).tofile(
        out_dir / (names["keys"] + ".tmp")
    )
    for name in names.values():
        os.replace(out_dir / (name + ".tmp"), out_dir / name)
    return {
        "docs": len(offsets) - 1,
        "tokens": int(offsets[-1]),
        "files": names,
        "sha256": {k: _sha256(out_dir / v) for k, v in names.items()},
    }


@dataclass
class TokenSplit:
    """One split of a token shard directory, memory-mapped."""

    tokens: np.ndarray
    offsets: np.ndarray
    keys: np.ndarray

    @classmethod
    def open(cls, token_dir: str | Path, split: str) -> TokenSplit:
        token_dir = Path(token_dir)
        manifest = read_token_manifest(token_dir)
        if split not in manifest["splits"]:
            raise ShardError(f"{token_dir}: no {split!r} split (have {sorted(manifest['splits'])})")
        files = manifest["splits"][split]["files"]
        offsets = np.fromfile(token_dir / files["offsets"], dtype="<i8")
        n_tokens = int(offsets[-1])
        tokens = (
            np.memmap(token_dir / files["tokens"], dtype="<u4", mode="r")
            if n_tokens
            else np.zeros(0, dtype="<u4")
        )
        keys = np.fromfile(token_dir / files["keys"], dtype="<u8")
        if len(tokens) != n_tokens or len(keys) != len(offsets) - 1:
            raise ShardError(f"{token_dir}: {split} files are inconsistent with each other")
        return cls(tokens, offsets, keys)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def read_token_manifest(token_dir: str | Path) -> dict:
    return _read_manifest(token_dir, TOKENS_FORMAT, "run `cm3-train tokenize` first")


__all__ = [
    "ShardError",
    "TokenSplit",
    "doc_key",
    "read_docs_manifest",
    "read_token_manifest",
    "tokenize_shards",
    "train_tokenizer",
]
