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
import pyarrow as pa
import pyarrow.parquet as pq

from .tokenizer import CM3Tokenizer

DOCS_FORMAT = "cm3-docs/1"
TOKENS_FORMAT = "cm3-tokens/1"
SPLITS = ("train", "validation")
_ENCODE_BATCH = 256


class ShardError(ValueError):
    """Missing or inconsistent shard files or manifest."""


_READ_CHUNK = 1 << 23  # bytes per read when hashing and range-checking: large reads, bounded memory


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_READ_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check_doc_shard(path: Path, expected_sha: str) -> None:
    """A document shard must match its manifest's sha256 (a truncated or corrupted shard is refused before
    any of it is read as Parquet)."""
    if expected_sha and _sha256(path) != expected_sha:
        raise ShardError(f"{path}: sha256 differs from the manifest (truncated or corrupted)")


def doc_key(doc_id: str) -> int:
    """Stable 64-bit key of a document id (seeds its masking)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")


def docs_manifest_path(data_dir: str | Path) -> Path:
    """A document shard directory's manifest: `_meta/manifest.json` (the layout pipeline/shards.py writes, so
    that Parquet readers see only shards), else `manifest.json` beside the shards (outputs written before)."""
    path = Path(data_dir) / "_meta" / "manifest.json"
    return path if path.exists() else Path(data_dir) / "manifest.json"


def _read_manifest(path: Path, fmt: str, missing: str) -> dict:
    """The manifest at `path`, its shape checked (missing keys, `null`s, wrong types, file names that are
    paths): ShardError with one line instead of a KeyError deep in a reader."""
    if not path.exists():
        raise ShardError(f"{path.parent}: no manifest.json ({missing})")
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as err:
        raise ShardError(f"{path}: not JSON ({' '.join(str(err).split())[:200]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardError(f"{path}: format {str(found)[:80]!r} is not {fmt}")
    problem = _shape_problem(manifest, _TOKEN_SHAPE if fmt == TOKENS_FORMAT else _DOCS_SHAPE)
    if problem:
        raise ShardError(f"{path}: {problem} (damaged, or not written by this version)")
    return manifest


_COUNT, _TEXT, _NAME = "count", "text", "name"  # a non-negative int; a string; a plain file name
_FILES = {"tokens": _NAME, "offsets": _NAME, "keys": _NAME}
_TOKEN_SHAPE = {
    "splits": (
        "each",
        {"files": _FILES, "sha256": dict.fromkeys(_FILES, _TEXT), "docs": _COUNT, "tokens": _COUNT},
    ),
    "vocab": {"vocab_size": _COUNT},
}
_DOCS_SHAPE = {
    "splits": ("each", {"shards": ("list", {"file": _NAME, "rows": _COUNT})}),
    "image_codes": {"n_embed": _COUNT},
}


def _shape_problem(value, shape, where: str = "") -> str | None:
    """The first place where `value` does not have `shape` (a dict of required keys, ("each", shape) for
    every value of a dict, ("list", shape) for every item of a list, or a leaf kind), None if it does."""
    name = where or "the manifest"
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{name} is not an object"
        for key, inner in shape.items():
            if key not in value:
                return f"{where + '.' if where else ''}{key} is missing"
            problem = _shape_problem(value[key], inner, f"{where + '.' if where else ''}{key}")
            if problem:
                return problem
        return None
    if isinstance(shape, tuple):
        kind, inner = shape
        items = value.items() if kind == "each" and isinstance(value, dict) else None
        if kind == "list" and isinstance(value, list):
            items = enumerate(value)
        if items is None:
            return f"{name} is not {'an object' if kind == 'each' else 'a list'}"
        for key, item in items:
            problem = _shape_problem(item, inner, f"{where}[{key}]" if kind == "list" else f"{where}.{key}")
            if problem:
                return problem
        return None
    if shape == _COUNT and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return f"{name} is not a non-negative integer"
    if shape in (_TEXT, _NAME) and not isinstance(value, str):
        return f"{name} is not a string"
    if shape == _NAME and (not value or "/" in value or "\\" in value or value in (".", "..")):
        return f"{name} is not a plain file name"
    return None


def read_docs_manifest(data_dir: str | Path) -> dict:
    return _read_manifest(docs_manifest_path(data_dir), DOCS_FORMAT, "not a document shard directory")


def doc_shards_dir(data_dir: str | Path, manifest: dict) -> Path:
    """Where a document output's shards lie: the manifest's `shards_dir` (`data/`), else (older outputs)
    beside the metadata unless moved to `data/` by hand (pipeline/shards.py `data_dir`, without Beam)."""
    if manifest.get("shards_dir"):
        return Path(data_dir) / manifest["shards_dir"]
    first = next((s["file"] for info in manifest.get("splits", {}).values() for s in info["shards"]), None)
    moved = first is not None and (Path(data_dir) / "data" / first).exists()
    return Path(data_dir) / "data" if moved else Path(data_dir)


def doc_shard_files(data_dir: str | Path, split: str, manifest: dict) -> list[tuple[Path, int, str]]:
    """(path, rows, sha256) of a split's shards in manifest order; missing split -> []."""
    info = manifest.get("splits", {}).get(split)
    if not info:
        return []
    folder = doc_shards_dir(data_dir, manifest)
    out = []
    for shard in info["shards"]:
        path = folder / shard["file"]
        if not path.exists():
            raise ShardError(f"{path}: listed in the manifest but missing")
        out.append((path, int(shard["rows"]), shard.get("sha256", "")))
    return out


def iter_docs(path: Path, columns: tuple[str, ...] = ("id", "html")) -> Iterator[dict]:
    """Rows of one document shard, read in record batches; an unreadable file is a ShardError naming it."""
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_ENCODE_BATCH, columns=list(columns)):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise ShardError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())})") from None


def train_tokenizer(data_dir: str | Path, vocab_size: int, out_dir: str | Path) -> CM3Tokenizer:
    """BPE on the train split's text (image code strings excluded), n_embed from the shards' manifest."""
    manifest = read_docs_manifest(data_dir)
    n_embed = int(manifest["image_codes"]["n_embed"])
    shards = doc_shard_files(data_dir, "train", manifest)
    if not shards:
        raise ShardError(f"{data_dir}: no train shards to learn the vocabulary from")
    for path, _, sha in shards:
        _check_doc_shard(path, sha)
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
    _check_doc_shard(Path(path), expected_sha)
    lengths: list[int] = []
    keys: list[int] = []
    skipped_empty = image_tokens = 0
    with open(part_prefix + ".tokens", "wb") as tokens_file:
        batch: list[dict] = []

        def flush() -> None:
            nonlocal skipped_empty, image_tokens
            for row, ids in zip(batch, tok.encode_batch([r["html"] for r in batch]), strict=True):
                if not ids:
                    skipped_empty += 1
                    continue
                array = np.asarray(ids, dtype="<u4")
                image_tokens += int(np.count_nonzero(array >= tok.image_code_offset))
                tokens_file.write(array.tobytes())
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
    return {
        "split": split,
        "docs": len(lengths),
        "tokens": int(sum(lengths)),
        "skipped_empty": skipped_empty,
        "image_tokens": image_tokens,
    }


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
        # 0 in train: shards of `cm3-data run --no-images`; cm3-generate warns on image modes of such a model
        splits[split]["image_tokens"] = sum(r["image_tokens"] for _, r in split_tasks)
        splits[split]["source_shards"] = len(split_tasks)
    shutil.rmtree(parts_dir)
    tok.save(out_dir / "tokenizer")
    token_manifest = {
        "format": TOKENS_FORMAT,
        "splits": splits,
        "vocab": tok.layout(),
        "tokenizer_sha256": _sha256(out_dir / "tokenizer" / "tokenizer.json"),
        "source": {"dir": str(data_dir), "manifest_sha256": _sha256(docs_manifest_path(data_dir))},
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
    """One split of a token shard directory, memory-mapped; `open` first checks its files against the
    manifest (sizes, sha256, offsets, every id below the vocabulary size)."""

    tokens: np.ndarray
    offsets: np.ndarray
    keys: np.ndarray

    @classmethod
    def open(cls, token_dir: str | Path, split: str) -> TokenSplit:
        token_dir = Path(token_dir)
        manifest = read_token_manifest(token_dir)
        if split not in manifest["splits"]:
            raise ShardError(f"{token_dir}: no {split!r} split (have {sorted(manifest['splits'])})")
        info = manifest["splits"][split]
        paths = {kind: token_dir / name for kind, name in info["files"].items()}
        for path in paths.values():
            if not path.is_file():
                raise ShardError(f"{path}: listed in the manifest but missing")
        n_docs, n_tokens = int(info["docs"]), int(info["tokens"])
        offsets = _checked_array(paths["offsets"], "<i8", n_docs + 1, "offsets", info["sha256"]["offsets"])
        keys = _checked_array(paths["keys"], "<u8", n_docs, "document keys", info["sha256"]["keys"])
        _check_offsets(paths["offsets"], offsets, n_tokens)
        _check_tokens(
            paths["tokens"], offsets, n_tokens, int(manifest["vocab"]["vocab_size"]), info["sha256"]["tokens"]
        )
        tokens = np.memmap(paths["tokens"], dtype="<u4", mode="r") if n_tokens else np.zeros(0, dtype="<u4")
        return cls(tokens, offsets, keys)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def read_token_manifest(token_dir: str | Path) -> dict:
    return _read_manifest(Path(token_dir) / "manifest.json", TOKENS_FORMAT, "run `cm3-train tokenize` first")


# ---- token shard checks: run whenever a split is opened, so training never starts on damaged shards


def _count_of(path: Path, itemsize: int, expected: int, what: str) -> None:
    size = path.stat().st_size
    if size != expected * itemsize:
        raise ShardError(
            f"{path}: {size} bytes, but the manifest's {expected} {what} take {expected * itemsize} "
            "(truncated or overwritten)"
        )


def _checked_array(path: Path, dtype: str, expected: int, what: str, sha: str) -> np.ndarray:
    """A small per-document file, read whole: its length and sha256 against the manifest."""
    _count_of(path, np.dtype(dtype).itemsize, expected, what)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise ShardError(f"{path}: sha256 differs from the manifest (corrupted or changed since tokenizing)")
    return np.frombuffer(data, dtype=dtype)


def _check_offsets(path: Path, offsets: np.ndarray, n_tokens: int) -> None:
    """Offsets start at 0, never decrease and end at the token count: each document is a slice of tokens."""
    if offsets[0] != 0:
        raise ShardError(f"{path}: starts at {offsets[0]}, not 0")
    falls = np.flatnonzero(offsets[1:] < offsets[:-1])
    if len(falls):
        i = int(falls[0]) + 1
        raise ShardError(
            f"{path}: offset {i} ({offsets[i]}) is less than offset {i - 1} ({offsets[i - 1]}); "
            "offsets must not decrease"
        )
    if offsets[-1] != n_tokens:
        raise ShardError(f"{path}: ends at {offsets[-1]}, not at the {n_tokens} tokens of the manifest")


def _check_tokens(path: Path, offsets: np.ndarray, n_tokens: int, vocab_size: int, sha: str) -> None:
    """One streamed pass over the token file: its sha256, and every id below the vocabulary size (the
    first one that is not is named by position and document)."""
    _count_of(path, 4, n_tokens, "tokens")
    digest = hashlib.sha256()
    buffer = bytearray(_READ_CHUNK)
    view = memoryview(buffer)
    start = 0
    with open(path, "rb") as f:  # buffered readinto fills the buffer up to the end of file
        while n := f.readinto(buffer):
            digest.update(view[:n])
            ids = np.frombuffer(buffer, dtype="<u4", count=n // 4)
            if len(ids) and int(ids.max()) >= vocab_size:
                at = start + int(np.argmax(ids >= vocab_size))
                document = int(np.searchsorted(offsets, at, side="right")) - 1
                raise ShardError(
                    f"{path}: token {at} (document {document}) is id {ids[at - start]}, "
                    f"not below the vocabulary size {vocab_size}"
                )
            start += len(ids)
    if digest.hexdigest() != sha:
        raise ShardError(f"{path}: sha256 differs from the manifest (corrupted or changed since tokenizing)")


__all__ = [
    "ShardError",
    "TokenSplit",
    "doc_key",
    "read_docs_manifest",
    "read_token_manifest",
    "tokenize_shards",
    "train_tokenizer",
]
