"""Document shards (Parquet, zstd), the manifest, and `verify`.

A shard is written streaming: its rows are sorted by id with an external merge sort (runs of at most
`SORT_BUFFER_BYTES` spilled to local disk) and written row group by row group, so a worker holds a bounded
amount whatever the shard's size. Writing is idempotent and atomic on every Beam filesystem: bytes go to a
unique temporary name, renamed to the deterministic final name when complete, so a crashed or retried bundle
never leaves a partial shard visible, and a retry rewrites identical bytes. The manifest is written last: a
directory without one is an unfinished run.

Layout: `DIR/data/` holds the shards and nothing else, `DIR/_meta/` everything else (manifest.json,
report.json, report.html). A folder of Parquet files only is what every reader's plain call needs: polars
and DuckDB's `DIR/**` read every file under the path they are given (any other extension is an error, and
they skip no `_` or `.` names), so the metadata cannot lie under the folder they read. `DIR` itself still
opens in pandas, pyarrow.dataset and Hugging Face `datasets` (they skip `_meta/`, the Hadoop convention).
Each row carries its `split`, so a reader that globs both splits can still tell them apart.
Outputs of the two earlier layouts (shards directly in DIR, the metadata beside them or in `_meta/`) are
still read and verified; `legacy_layout_note` says how to move them.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import io
import itertools
import json
import os
import pickle
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from image_tokenizer.leftovers import clean_leftovers, owned_suffix

FORMAT = "cm3-docs/1"
META_DIR = "_meta"
DATA_DIR = "data"
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
SPLITS = ("train", "validation")
SHARD_NAME = re.compile(r"^(train|validation)-(\d{5})-of-(\d{5})\.parquet$")
TEMP_MARK = ".tmp-"
ROW_GROUP_ROWS = 1024
# Rows a shard writer holds in memory before it spills a sorted run to local disk.
SORT_BUFFER_BYTES = 64 << 20

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("source", pa.string()),
        ("html", pa.string()),
        ("n_images", pa.int32()),
        ("n_chars", pa.int32()),
        ("lang_score", pa.float32()),
        ("language", pa.string()),  # the detected language
        ("image_urls", pa.list_(pa.string())),  # source URL of each <img> in order (opt-out replays)
        ("split", pa.string()),  # train or validation: readers that glob both splits can tell them apart
    ]
)
# shards of earlier releases, still valid and readable: before the `split` column, and before `language`
# and `image_urls` too
SCHEMA_BEFORE_SPLIT = pa.schema([field for field in SCHEMA if field.name != "split"])
SCHEMA_FIRST_RELEASE = pa.schema(
    [field for field in SCHEMA if field.name not in ("language", "image_urls", "split")]
)
SCHEMAS = (SCHEMA, SCHEMA_BEFORE_SPLIT, SCHEMA_FIRST_RELEASE)


def shard_name(split: str, index: int, n_shards: int) -> str:
    return f"{split}-{index:05d}-of-{n_shards:05d}.parquet"


def data_dir(output_dir: str, manifest: dict | None = None) -> str:
    """The folder of an output's shards: `DIR/data` (what is written now, and what a manifest with
    `shards_dir` says), else for an older manifest `DIR` itself unless its shards were moved to `DIR/data`."""
    if manifest is None or manifest.get("shards_dir"):
        return FileSystems.join(output_dir, (manifest or {}).get("shards_dir", DATA_DIR))
    first = next((entry["file"] for *_, entry in manifest_shards(manifest)), None)
    moved = first is not None and FileSystems.exists(FileSystems.join(output_dir, DATA_DIR, first))
    return FileSystems.join(output_dir, DATA_DIR) if moved else output_dir


def shard_path(output_dir: str, name: str, manifest: dict | None = None) -> str:
    """Where shard `name` lies: in `data_dir` (a shard being written: `DIR/data`)."""
    return FileSystems.join(data_dir(output_dir, manifest), name)


def manifest_path(output_dir: str) -> str:
    return FileSystems.join(output_dir, META_DIR, MANIFEST)


def report_json_path(output_dir: str) -> str:
    return FileSystems.join(output_dir, META_DIR, REPORT_JSON)


def report_html_path(output_dir: str) -> str:
    return FileSystems.join(output_dir, META_DIR, REPORT_HTML)


def legacy_manifest_path(output_dir: str) -> str:
    """manifest.json beside the shards: the layout before `_meta/`, which pandas and DuckDB globs trip on."""
    return FileSystems.join(output_dir, MANIFEST)


def find_meta_file(output_dir: str, name: str) -> str | None:
    """`_meta/{name}` of an output, else `{name}` beside the shards (the layout before `_meta/`), else None."""
    for path in (FileSystems.join(output_dir, META_DIR, name), FileSystems.join(output_dir, name)):
        if FileSystems.exists(path):
            return path
    return None


def find_manifest(output_dir: str) -> str | None:
    """The manifest of a finished output in either layout, or None (an unfinished run or not an output)."""
    return find_meta_file(output_dir, MANIFEST)


def legacy_layout_note(output_dir: str) -> str | None:
    """One line on how to move an output of an older layout (shards directly in it) to `data/` and
    `_meta/`; None for the current layout or no output."""
    path = find_manifest(output_dir)
    if path is None:
        return None
    try:
        manifest = json.loads(read_bytes(path))
    except ValueError:
        return None
    if data_dir(output_dir, manifest) != output_dir:
        return None
    move_meta = (
        ""
        if path == manifest_path(output_dir)
        else f" && mv {MANIFEST} {REPORT_JSON} {REPORT_HTML} {META_DIR}/"
    )
    return (
        f"{output_dir} has an older layout (shards beside the metadata); to let every Parquet reader (polars, "
        f"DuckDB's DIR/**) read {DATA_DIR}/ as a dataset: cd {output_dir} && mkdir -p {META_DIR} {DATA_DIR}"
        f"{move_meta} && mv *.parquet {DATA_DIR}/"
    )


def row_key(row: dict) -> tuple[str, str]:
    return row["id"], row["url"]


def row_size(row: dict) -> int:
    """Bytes a row takes in a shard before compression (its strings plus the fixed-width columns): what
    shard sizing and the sort buffer count."""
    size = len(row["id"]) + len(row["url"]) + len(row["source"]) + len(row["html"]) + 12
    size += len(row.get("language") or "")
    return size + sum(len(url) for url in row.get("image_urls") or ())


def sorted_rows(rows: Iterable[dict], buffer_bytes: int | None = None) -> Iterator[dict]:
    """`rows` in (id, url) order, holding at most about `buffer_bytes` (default SORT_BUFFER_BYTES) of them:
    an external merge sort whose sorted runs are spilled to local temporary files (deleted when the
    generator finishes or is closed)."""
    buffer_bytes = SORT_BUFFER_BYTES if buffer_bytes is None else buffer_bytes
    _clean_dead_sort_folders()
    with tempfile.TemporaryDirectory(prefix=SORT_PREFIX, suffix="-" + owned_suffix()) as spill_dir:
        runs: list[str] = []
        buffer: list[dict] = []
        held = 0
        for row in rows:
            buffer.append(row)
            held += row_size(row)
            if held >= buffer_bytes:
                runs.append(_spill(sorted(buffer, key=row_key), spill_dir, len(runs)))
                buffer, held = [], 0
        buffer.sort(key=row_key)
        if not runs:
            yield from buffer
            return
        yield from heapq.merge(*(_read_run(path) for path in runs), iter(buffer), key=row_key)


SORT_PREFIX = "cm3-shard-sort-"


@functools.cache
def _clean_dead_sort_folders() -> None:
    """Once per process: the spill folders of sorts whose process was killed (kill -9 skips the cleanup)."""
    clean_leftovers(tempfile.gettempdir(), (SORT_PREFIX,))


def _spill(rows: list[dict], directory: str, index: int) -> str:
    path = f"{directory}/run-{index:06d}"
    with open(path, "wb") as stream:
        for row in rows:
            pickle.dump(row, stream, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _read_run(path: str) -> Iterator[dict]:
    with open(path, "rb") as stream:
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


class _HashingSink(io.RawIOBase):
    """A write-only stream that passes bytes on and keeps their sha256 and count (Parquet asks `tell`)."""

    def __init__(self, stream):
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._stream.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def write_parquet(stream, rows: Iterable[dict]) -> tuple[int, str, int]:
    """Rows (already in order) -> Parquet on `stream`, one row group of ROW_GROUP_ROWS at a time, zstd, no
    timestamps (same rows -> same bytes). Returns (rows, sha256, bytes)."""
    sink = _HashingSink(stream)
    writer = pq.ParquetWriter(sink, SCHEMA, compression="zstd")
    n_rows = 0
    rows = iter(rows)
    while batch := list(itertools.islice(rows, ROW_GROUP_ROWS)):
        writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA), row_group_size=ROW_GROUP_ROWS)
        n_rows += len(batch)
    if n_rows == 0:  # an empty table, as pyarrow's write_table writes one
        writer.write_table(pa.Table.from_pylist([], schema=SCHEMA), row_group_size=ROW_GROUP_ROWS)
    writer.close()
    return n_rows, sink.digest.hexdigest(), sink.size


class atomic_file:
    """`with atomic_file(path) as stream`: written under a unique temporary name, renamed to `path` when
    complete, the temporary file removed on failure (any Beam filesystem): no partial file is ever visible."""

    def __init__(self, path: str):
        self._path = path
        self._temp = f"{path}{TEMP_MARK}{uuid.uuid4().hex}"

    def __enter__(self):
        self._stream = FileSystems.create(self._temp, compression_type=CompressionTypes.UNCOMPRESSED)
        return self._stream

    def __exit__(self, kind, error, traceback) -> None:
        self._stream.close()
        if kind is not None:
            FileSystems.delete([self._temp])
            return
        if FileSystems.exists(self._path):
            FileSystems.delete([self._path])
        FileSystems.rename([self._temp], [self._path])


def write_atomic(path: str, data: bytes) -> None:
    with atomic_file(path) as stream:
        stream.write(data)


def write_shard(
    output_dir: str,
    split: str,
    index: int,
    n_shards: int,
    rows: Iterable[dict],
    buffer_bytes: int | None = None,
) -> dict:
    """Write one shard from `rows` in any order (streamed), each row marked with its `split`, and return
    its manifest entry."""
    name = shard_name(split, index, n_shards)
    rows = ({**row, "split": split} for row in rows)
    with atomic_file(shard_path(output_dir, name)) as stream:
        n_rows, sha256, size = write_parquet(stream, sorted_rows(rows, buffer_bytes))
    return {"split": split, "file": name, "rows": n_rows, "sha256": sha256, "bytes": size}


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        return stream.read()


def list_dir(output_dir: str) -> list[str]:
    """Base names of the files directly in `output_dir` (any Beam filesystem; an object store's `*` also
    matches objects in deeper folders, such as `data/`, which are left out)."""
    pattern = FileSystems.join(output_dir, "*")
    prefix = pattern[:-1]
    names = []
    for result in FileSystems.match([pattern]):
        for metadata in result.metadata_list:
            name = metadata.path.rstrip("/")
            name = name[len(prefix) :] if name.startswith(prefix) else name.rsplit("/", 1)[-1]
            if "/" not in name:
                names.append(name)
    return sorted(names)


def is_empty(output_dir: str) -> bool:
    """True when the directory `output_dir` is missing or holds nothing (on object stores: no object under
    it at any depth), on any Beam filesystem."""
    if FileSystems.get_scheme(output_dir) is None:
        return not os.path.isdir(output_dir) or not os.listdir(output_dir)
    pattern = FileSystems.join(output_dir, "**")
    return not any(result.metadata_list for result in FileSystems.match([pattern]))


def clear_output(output_dir: str) -> None:
    """Delete everything in `output_dir`, keeping the directory: on object stores, what `swap_output` does
    to the previous output before moving the new one in (no file of it survives beside the new one)."""
    if FileSystems.get_scheme(output_dir) is None:
        for entry in os.scandir(output_dir) if os.path.isdir(output_dir) else ():
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        return
    objects = FileSystems.match([FileSystems.join(output_dir, "**")])[0].metadata_list
    if objects:  # every object under the prefix, listed: the same on gs://, s3:// and the rest
        FileSystems.delete([metadata.path for metadata in objects])


def partial_output(output_dir: str) -> str:
    """A new, unique directory beside `output_dir` for `cm3-data run` and `optout` to write into: the finished
    output takes `output_dir`'s place only when complete, so a failed or interrupted run leaves the old one
    as it was."""
    parent, _, name = output_dir.rstrip("/").rpartition("/")
    if FileSystems.get_scheme(output_dir) is None:
        parent, name = os.path.split(os.path.abspath(output_dir))
        # what killed runs into the same output left (its owner gone): never a running job's
        clean_leftovers(parent, (f".{name}.partial-", f".{name}.replaced-"))
    return FileSystems.join(parent, f".{name}.partial-{owned_suffix()}")


def swap_output(partial: str, output_dir: str) -> None:
    """Put the finished `partial` in the place of `output_dir` (replacing whatever was there). Locally two
    renames, the old output deleted last; on object stores every object is moved (copy + delete)."""
    if FileSystems.get_scheme(output_dir) is None:
        aside = None
        if os.path.lexists(output_dir):
            aside = partial.replace(".partial-", ".replaced-")
            os.rename(output_dir, aside)
        os.rename(partial, output_dir)
        if aside is not None:
            shutil.rmtree(aside)
        return
    clear_output(output_dir)
    move_objects(partial, output_dir)


def move_objects(source_dir: str, target_dir: str) -> None:
    """Every file under `source_dir`, at any depth, to the same place under `target_dir` (any Beam filesystem)."""
    paths = [m.path for m in FileSystems.match([FileSystems.join(source_dir, "**")])[0].metadata_list]
    prefix = source_dir.rstrip("/") + "/"
    targets = [FileSystems.join(target_dir, path[len(prefix) :]) for path in paths]
    for target in targets:
        if FileSystems.get_scheme(target) is None:  # object stores have no directories to make
            os.makedirs(os.path.dirname(target), exist_ok=True)
    if paths:
        FileSystems.rename(paths, targets)


def discard_output(partial: str) -> None:
    """Delete an unfinished `partial_output` (ignoring what is already gone)."""
    if FileSystems.get_scheme(partial) is None:
        shutil.rmtree(partial, ignore_errors=True)
    else:
        clear_output(partial)


def inside(output_dir: str, path: str) -> bool:
    """Whether `path` is `output_dir` or lies in it, so that --overwrite never deletes inputs. Both are
    resolved first: `SRC/.`, `./SRC`, `../x/SRC` and a symlink to SRC are all SRC."""
    output_dir, path = _resolved(output_dir), _resolved(path)
    return path == output_dir or path.startswith(output_dir.rstrip("/") + "/")


def _resolved(path: str) -> str:
    if FileSystems.get_scheme(path) is None:
        return os.path.realpath(path)
    scheme, _, rest = path.partition("://")  # an object store has no links: only `.`, `..`, `//` to fold
    return f"{scheme}://{posixpath.normpath(rest)}"


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
    shards_dir = data_dir(output_dir)
    stale = [n for n in list_dir(shards_dir) if (SHARD_NAME.match(n) and n not in expected) or TEMP_MARK in n]
    if stale:
        FileSystems.delete([FileSystems.join(shards_dir, name) for name in stale])
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
    """The manifest, last; it records `shards_dir` (every writer writes the current layout)."""
    write_atomic(manifest_path(output_dir), manifest_json({**manifest, "shards_dir": DATA_DIR}))


def verify(output_dir: str, check_content: bool = True) -> list[str]:
    """Problems found in a finished output (empty list = valid): files, sha256, rows, schema, ids, codes."""
    from c4_filters import stable_hash
    from image_tokenizer import is_code_src
    from pipeline.doc_steps import image_srcs

    path = find_manifest(output_dir)
    if path is None:
        return [f"{manifest_path(output_dir)} is missing (unfinished or not a cm3-docs output)"]
    try:
        manifest = json.loads(read_bytes(path))
    except (ValueError, RecursionError) as error:  # RecursionError: nested thousands deep
        return [f"{path} is not JSON: {' '.join(str(error).split())[:200]}"]
    problems = manifest_problems(manifest)
    if problems:  # nothing below can be checked against a manifest of the wrong shape
        return [f"{path}: {problem}" for problem in problems]
    if manifest.get("format") != FORMAT:
        problems.append(f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    n_embed = manifest.get("image_codes", {}).get("n_embed")
    shards_dir = data_dir(output_dir, manifest)
    listed = set()
    for split, info in manifest.get("splits", {}).items():
        total = 0
        shards = info.get("shards", [])
        for index, shard in enumerate(shards):
            name = shard["file"]
            listed.add(name)
            if name != shard_name(split, index, len(shards)):
                problems.append(f"{name}: unexpected name for shard {index} of {len(shards)} in {split}")
            file_path = FileSystems.join(shards_dir, name)
            if not FileSystems.exists(file_path):
                problems.append(f"{name}: missing")
                continue
            data = read_bytes(file_path)
            if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{name}: sha256 differs from the manifest")
            try:
                table = pq.read_table(pa.BufferReader(data))
            except (
                pa.ArrowException,
                OSError,
            ) as error:  # truncated, flipped bytes: a FAIL line, no traceback
                problems.append(f"{name}: not a readable Parquet file ({' '.join(str(error).split())})")
                continue
            if not any(table.schema.equals(s, check_metadata=False) for s in SCHEMAS):
                problems.append(f"{name}: schema {table.schema} differs from the contract")
                continue
            if table.num_rows != shard["rows"]:
                problems.append(f"{name}: {table.num_rows} rows, manifest says {shard['rows']}")
            if "split" in table.column_names and set(table["split"].to_pylist()) - {split}:
                problems.append(f"{name}: rows whose split column is not {split}")
            total += table.num_rows
            if check_content:
                problems.extend(
                    _check_rows(name, table.to_pylist(), n_embed, stable_hash, is_code_src, image_srcs)
                )
        if total != info.get("rows"):
            problems.append(f"{split}: {total} rows in shards, manifest says {info.get('rows')}")
    names = list_dir(shards_dir)
    extra = [n for n in names if (SHARD_NAME.match(n) and n not in listed) or TEMP_MARK in n]
    problems.extend(f"{name}: not listed in the manifest" for name in extra)
    if shards_dir == output_dir:  # an older layout: the metadata lies beside the shards or in _meta/
        metadata = {META_DIR, DATA_DIR} | (
            {MANIFEST, REPORT_JSON, REPORT_HTML} if path != manifest_path(output_dir) else set()
        )
    else:
        metadata = set()
        top = set(list_dir(output_dir)) - {META_DIR, DATA_DIR}
        problems.extend(
            f"{name}: not part of a cm3-docs output (only {DATA_DIR}/ and {META_DIR}/ are)"
            for name in sorted(top)
        )
    stray = [n for n in names if not SHARD_NAME.match(n) and TEMP_MARK not in n and n not in metadata]
    problems.extend(
        f"{name}: not a shard, yet readers of the directory as a dataset would read it" for name in stray
    )
    return problems


def manifest_problems(manifest) -> list[str]:
    """What makes `manifest` unusable as a cm3-docs manifest (missing keys, wrong types, `null`s), one line
    each: `verify` reports them as FAIL lines and readers refuse the output, instead of a KeyError."""
    if not isinstance(manifest, dict):
        return [f"is a JSON {type(manifest).__name__}, not an object"]
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        return ['"splits" is missing or not an object']
    if not isinstance(manifest.get("shards_dir", ""), str):
        return ['"shards_dir" is not a string']
    problems = []
    codes = manifest.get("image_codes", {})
    if not isinstance(codes, dict) or not _is(codes.get("n_embed", 0), int):
        problems.append('"image_codes" is not an object with an integer "n_embed"')
    for split, info in splits.items():
        if not isinstance(info, dict) or not isinstance(info.get("shards"), list):
            problems.append(f'splits.{split}: not an object with a "shards" list')
            continue
        if not _is(info.get("rows"), int):
            problems.append(f'splits.{split}: "rows" is missing or not an integer')
        for index, shard in enumerate(info["shards"]):
            wrong = [
                f'"{key}"'
                for key, kind in (("file", str), ("sha256", str), ("rows", int))
                if not isinstance(shard, dict) or not _is(shard.get(key), kind)
            ]
            if wrong:
                problems.append(
                    f"splits.{split}.shards[{index}]: {', '.join(wrong)} missing or of the wrong type"
                )
    return problems


def _is(value, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)  # JSON's true is no row count


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


def read_manifest(output_dir: str) -> dict:
    """The manifest of a finished output; FileNotFoundError naming it if the output is unfinished."""
    path = find_manifest(output_dir)
    if path is None:
        raise FileNotFoundError(
            f"{manifest_path(output_dir)} is missing (unfinished or not a cm3-docs output)"
        )
    try:
        manifest = json.loads(read_bytes(path))
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path} is not JSON: {' '.join(str(error).split())[:200]}") from None
    problems = manifest_problems(manifest)
    if problems:
        raise ValueError(
            f"{path}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if problems[1:] else "")
        )
    return manifest


def manifest_sha256(output_dir: str) -> str:
    return hashlib.sha256(read_bytes(find_manifest(output_dir) or manifest_path(output_dir))).hexdigest()


def manifest_shards(manifest: dict) -> Iterator[tuple[str, int, int, dict]]:
    """(split, index, n_shards, entry) for every shard a manifest lists."""
    for split in SPLITS:
        entries = manifest.get("splits", {}).get(split, {}).get("shards", [])
        for index, entry in enumerate(entries):
            yield split, index, len(entries), entry


def read_shard_rows(path: str) -> Iterator[dict]:
    """The rows of one shard, a row group at a time (a worker never holds the whole shard)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        parquet = pq.ParquetFile(stream)
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group).to_pylist()
