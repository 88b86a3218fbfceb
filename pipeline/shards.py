"""Document shards (Parquet, zstd), the manifest, and `verify`.

Writing is idempotent and atomic on every Beam filesystem: bytes are built in memory, written under a
unique temporary name and renamed to the deterministic final name, so a crashed or retried bundle never
leaves a partial shard visible, and a retry rewrites identical bytes. The manifest is written last: a
directory without manifest.json is an unfinished run.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

FORMAT = "cm3-docs/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "validation")
SHARD_NAME = re.compile(r"^(train|validation)-(\d{5})-of-(\d{5})\.parquet$")
TEMP_MARK = ".tmp-"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("source", pa.string()),
        ("html", pa.string()),
        ("n_images", pa.int32()),
        ("n_chars", pa.int32()),
        ("lang_score", pa.float32()),
    ]
)


def shard_name(split: str, index: int, n_shards: int) -> str:
    return f"{split}-{index:05d}-of-{n_shards:05d}.parquet"


def shard_bytes(rows: Iterable[dict]) -> bytes:
    """Parquet bytes of one shard: rows sorted by id, zstd, no timestamps (same rows -> same bytes)."""
    ordered = sorted(rows, key=lambda row: (row["id"], row["url"]))
    table = pa.Table.from_pylist(ordered, schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=1024)
    return sink.getvalue().to_pybytes()


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` through a unique temporary name + rename (no partial file ever visible)."""
    temp = f"{path}{TEMP_MARK}{uuid.uuid4().hex}"
    with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        stream.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temp], [path])


def write_shard(output_dir: str, split: str, index: int, n_shards: int, rows: Iterable[dict]) -> dict:
    """Write one shard and return its manifest entry {"file", "rows", "sha256"}."""
    rows = list(rows)
    data = shard_bytes(rows)
    name = shard_name(split, index, n_shards)
    write_atomic(FileSystems.join(output_dir, name), data)
    return {"split": split, "file": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        return stream.read()


def list_dir(output_dir: str) -> list[str]:
    """Base names of the files directly in `output_dir` (any Beam filesystem)."""
    pattern = FileSystems.join(output_dir, "*")
    names = []
    for result in FileSystems.match([pattern]):
        for metadata in result.metadata_list:
            names.append(metadata.path.rstrip("/").rsplit("/", 1)[-1])
    return sorted(names)


def manifest_exists(output_dir: str) -> bool:
    return FileSystems.exists(FileSystems.join(output_dir, MANIFEST))


def finish_shards(output_dir: str, written: Iterable[dict], n_shards: dict[str, int]) -> dict:
    """Fill in empty shards no document landed in, remove stale shards/temp files; -> manifest "splits"."""
    by_split: dict[str, dict[int, dict]] = {split: {} for split in SPLITS}
    for entry in written:
        match = SHARD_NAME.match(entry["file"])
        by_split[entry["split"]][int(match.group(2))] = entry
    for split in SPLITS:
        for index in range(n_shards[split]):
            if index not in by_split[split]:
                by_split[split][index] = write_shard(output_dir, split, index, n_shards[split], [])
    expected = {entry["file"] for shards in by_split.values() for entry in shards.values()}
    stale = [n for n in list_dir(output_dir) if (SHARD_NAME.match(n) and n not in expected) or TEMP_MARK in n]
    if stale:
        FileSystems.delete([FileSystems.join(output_dir, name) for name in stale])
    splits = {}
    for split in SPLITS:
        shards = [by_split[split][i] for i in range(n_shards[split])]
        splits[split] = {
            "shards": [{"file": s["file"], "rows": s["rows"], "sha256": s["sha256"]} for s in shards],
            "rows": sum(s["rows"] for s in shards),
        }
    return splits


def manifest_json(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(output_dir: str, manifest: dict) -> None:
    write_atomic(FileSystems.join(output_dir, MANIFEST), manifest_json(manifest))


def verify(output_dir: str, check_content: bool = True) -> list[str]:
    """Problems found in a finished output (empty list = valid): files, sha256, rows, schema, ids, codes."""
    from c4_filters import stable_hash
    from image_tokenizer import is_code_src
    from pipeline.stages import image_srcs

    path = FileSystems.join(output_dir, MANIFEST)
    if not FileSystems.exists(path):
        return [f"{path} is missing (unfinished or not a cm3-docs output)"]
    try:
        manifest = json.loads(read_bytes(path))
    except ValueError as error:
        return [f"manifest.json is not JSON: {error}"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    n_embed = manifest.get("image_codes", {}).get("n_embed")
    listed = set()
    for split, info in manifest.get("splits", {}).items():
        total = 0
        shards = info.get("shards", [])
        for index, shard in enumerate(shards):
            name = shard["file"]
            listed.add(name)
            if name != shard_name(split, index, len(shards)):
                problems.append(f"{name}: unexpected name for shard {index} of {len(shards)} in {split}")
            file_path = FileSystems.join(output_dir, name)
            if not FileSystems.exists(file_path):
                problems.append(f"{name}: missing")
                continue
            data = read_bytes(file_path)
            if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{name}: sha256 differs from the manifest")
            table = pq.read_table(pa.BufferReader(data))
            if not table.schema.equals(SCHEMA, check_metadata=False):
                problems.append(f"{name}: schema {table.schema} differs from the contract")
                continue
            if table.num_rows != shard["rows"]:
                problems.append(f"{name}: {table.num_rows} rows, manifest says {shard['rows']}")
            total += table.num_rows
            if check_content:
                problems.extend(
                    _check_rows(name, table.to_pylist(), n_embed, stable_hash, is_code_src, image_srcs)
                )
        if total != info.get("rows"):
            problems.append(f"{split}: {total} rows in shards, manifest says {info.get('rows')}")
    extra = [n for n in list_dir(output_dir) if (SHARD_NAME.match(n) and n not in listed) or TEMP_MARK in n]
    problems.extend(f"{name}: not listed in the manifest" for name in extra)
    return problems


def _check_rows(name, rows, n_embed, stable_hash, is_code_src, image_srcs) -> list[str]:
    problems = []
    ids = [row["id"] for row in rows]
    if ids != sorted(ids):
        problems.append(f"{name}: rows are not sorted by id")
    if len(set(ids)) != len(ids):
        problems.append(f"{name}: duplicate ids")
    for row in rows:
        if row["id"] != f"{stable_hash(row['url']):016x}":
            problems.append(f"{name}: id of {row['url']} is not the hash of its url")
        srcs = image_srcs(row["html"])
        bad = [src for src in srcs if not is_code_src(src, n_embed)]
        if bad:
            problems.append(f"{name}: {row['url']} has {len(bad)} <img> without a valid code string")
    return problems
