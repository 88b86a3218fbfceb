"""`cm3-data view DIR --output page.html`: one self-contained HTML page to look at document shards.

A deterministic sample of documents (smallest keyed hash of seed and id), each with its metadata and its
minimal HTML rendered with every image decoded from its 256 VQGAN codes back to pixels (inline base64
PNG), plus the run's funnel report (DIR/_meta/report.json). The documents are untrusted web content: each
renders in a sandboxed `<iframe srcdoc>` (no scripts, no same-origin, no forms or popups) under a
content security policy that allows only inline `data:` images, and every other string is escaped.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import lxml.html
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree

COLUMNS = ("id", "url", "source", "html", "n_images", "n_chars", "lang_score")
OPTIONAL_COLUMNS = ("language",)  # absent from shards written before it was added
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_SHARD_NAME = re.compile(r"^(train|validation)-\d{5}-of-\d{5}\.parquet$")
_CODE_RUN = re.compile(r"\d+(?: \d+){255}")
_DECODE_BATCH = 16

STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.15em;margin:0 0 .4em}
section.doc{border-top:2px solid #ccc;padding:1em 0}
table{border-collapse:collapse;margin:.3em 0 .8em}
td,th{border-bottom:1px solid #ddd;padding:2px 10px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.8em;background:#3b7dd8}
iframe{width:100%;border:1px solid #aaa;resize:vertical;background:#fff}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.6em;font-size:.85em}
.warn{color:#a40}
"""
FRAME_STYLE = "body{font-family:serif;margin:8px}img{display:block;margin:6px 0}"


class ViewError(ValueError):
    """The directory cannot be viewed (no shards, missing columns, unreadable manifest)."""


@dataclass(frozen=True)
class Document:
    split: str
    shard: str
    row: dict


def manifest_file(data_dir: Path) -> Path | None:
    """The output's manifest in either layout (pipeline.shards; imported here, not at the top, so that
    `import pipeline.view` does not load Beam)."""
    from pipeline.shards import find_manifest

    path = find_manifest(str(data_dir))
    return None if path is None else Path(path)


def shard_files(data_dir: Path, split: str) -> list[tuple[str, Path]]:
    """(split, path) of every shard listed by the manifest (each checked against its sha256, so a
    truncated or corrupted shard is refused before it is parsed), else of every `{split}-*.parquet` file
    (in `data/` when there is one)."""
    manifest_path = manifest_file(data_dir)
    if manifest_path is not None:
        try:
            from pipeline.shards import data_dir as shards_dir

            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            folder = Path(shards_dir(str(data_dir), manifest))
            listed = [
                (name, folder / shard["file"], shard.get("sha256"))
                for name, info in sorted(manifest["splits"].items())
                for shard in info["shards"]
            ]
        except (ValueError, KeyError, TypeError) as err:
            raise ViewError(f"{manifest_path}: unreadable manifest ({err})") from None
        listed = [entry for entry in listed if split == "all" or entry[0] == split]
        for _, path, sha in listed:
            check_sha256(path, sha)
        found = [(name, path) for name, path, _ in listed]
    else:  # a folder of shards (an output's data/ given itself), or an output whose manifest is lost
        folder = data_dir / "data" if (data_dir / "data").is_dir() else data_dir
        found = [
            (path.name.split("-", 1)[0], path)
            for path in sorted(folder.glob("*.parquet"))
            if _SHARD_NAME.match(path.name)
        ]
        found = [(name, path) for name, path in found if split == "all" or name == split]
    if not found:
        raise ViewError(f"{data_dir}: no {'' if split == 'all' else split + ' '}document shards")
    return found


def check_sha256(path: Path, expected: str | None) -> None:
    """A listed shard must exist and, where the manifest records one, match its sha256 (streamed)."""
    if not path.is_file():
        raise ViewError(f"{path}: listed in the manifest but missing")
    if not expected:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ViewError(
            f"{path}: sha256 differs from the manifest (truncated or corrupted; `cm3-data verify` checks all)"
        )


def read_shard(path: Path, columns: list[str]) -> pa.Table:
    """Columns of a shard; missing columns or a file that is not readable Parquet (truncated, flipped
    bytes) are a ViewError naming it, not a traceback."""
    try:
        shard = pq.ParquetFile(path)
        names = shard.schema_arrow.names
        missing = [c for c in columns if c not in names and c not in OPTIONAL_COLUMNS]
        table = None if missing else shard.read(columns=[c for c in columns if c in names])
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ViewError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())})") from None
    if table is None:
        raise ViewError(f"{path}: missing columns {missing}")
    return table


def sample_key(seed: int, doc_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()


def sample_documents(files: list[tuple[str, Path]], n: int, seed: int) -> tuple[list[Document], int]:
    """The n documents with the smallest sample keys (same shards + seed -> same sample), and the total."""
    keyed = []
    for index, (_, path) in enumerate(files):
        ids = read_shard(path, ["id"]).column("id").to_pylist()
        keyed += [(sample_key(seed, str(doc_id)), index, row) for row, doc_id in enumerate(ids)]
    chosen = sorted(keyed)[:n]
    rows: dict[tuple[int, int], dict] = {}
    for index in sorted({i for _, i, _ in chosen}):
        split, path = files[index]
        table = read_shard(path, list(COLUMNS + OPTIONAL_COLUMNS))
        wanted = [row for _, i, row in chosen if i == index]
        for row, record in zip(wanted, table.take(wanted).to_pylist(), strict=True):
            rows[(index, row)] = record
    documents = [Document(files[i][0], files[i][1].name, rows[(i, row)]) for _, i, row in chosen]
    return documents, len(keyed)


def image_sources(doc_html: str) -> list[str]:
    """Every <img src> of a document, in order (the documents are minimal HTML; lxml recovers anyway)."""
    if not doc_html.strip():
        return []
    try:
        root = lxml.html.document_fromstring(doc_html)
    except (ValueError, etree.ParserError):
        return []
    return [img.get("src") or "" for img in root.iter("img")]


def png_data_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_sources(sources: list[str], vq) -> dict[str, str | None]:
    """src -> PNG data URI for every valid 256-code src; None for anything else (not loaded, removed)."""
    from image_tokenizer import src_to_codes

    valid: dict[str, list[int]] = {}
    out: dict[str, str | None] = {}
    for src in dict.fromkeys(sources):
        try:
            valid[src] = src_to_codes(src, vq.n_embed)
        except ValueError:
            out[src] = None
    names = list(valid)
    for start in range(0, len(names), _DECODE_BATCH):
        chunk = names[start : start + _DECODE_BATCH]
        pixels = vq.decode(np.array([valid[src] for src in chunk], dtype=np.int64))
        out.update((src, png_data_uri(image)) for src, image in zip(chunk, pixels, strict=True))
    return out


def frame_document(doc_html: str, decoded: dict[str, str | None]) -> str:
    """The document for the sandboxed iframe: code images as data URIs, every other image removed (its
    text kept), `<meta http-equiv>` (refresh would navigate away) and `<base>` dropped, the CSP first."""
    body = ""
    if doc_html.strip():
        try:
            root = lxml.html.document_fromstring(doc_html)
        except (ValueError, etree.ParserError):
            root = None
        if root is not None:
            for element in root.xpath("//meta[@http-equiv] | //base"):
                element.drop_tree()
            for img in list(root.iter("img")):
                uri = decoded.get(img.get("src") or "")
                if uri:
                    img.set("src", uri)
                else:
                    img.drop_tree()
            body = lxml.html.tostring(root, encoding="unicode")
    return (
        f'<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<style>{FRAME_STYLE}</style>{body}"
    )


def frame_height(n_images: int, doc_html: str) -> int:
    """A starting height for the iframe from its images and text (the reader can resize it; a sandbox
    without scripts cannot size itself)."""
    text_chars = len(_CODE_RUN.sub("", doc_html))
    return min(1400, max(160, 100 + 270 * n_images + text_chars // 4))


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_value(value: object) -> str:
    """report.json rendered generically: mappings as tables, lists of rows as tables, scalars escaped."""
    if isinstance(value, dict):
        if not value:
            return "<em>none</em>"
        rows = "".join(
            f"<tr><th>{esc(k)}</th><td{' class=n' if isinstance(v, (int, float)) else ''}>{render_value(v)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            head = "".join(f"<th>{esc(k)}</th>" for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{render_value(v.get(k, ''))}</td>" for k in keys) + "</tr>"
                for v in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        return esc(", ".join(str(v) for v in value))
    return esc(value)


def render_funnel(funnel: list) -> str:
    rows = [r for r in funnel if isinstance(r, dict) and isinstance(r.get("docs"), int)]
    top = max([r["docs"] for r in rows] + [1])
    body = "".join(
        f"<tr><td>{esc(r.get('stage', ''))}</td><td class=n>{r['docs']}</td>"
        f'<td><span class=bar style="width:{round(300 * r["docs"] / top)}px"></span></td></tr>'
        for r in rows
    )
    return f"<table><tr><th>stage</th><th>documents</th><th></th></tr>{body}</table>"


def render_report(report: dict | None, problem: str | None) -> str:
    if problem:
        return f"<p class=warn>{esc(problem)}</p>"
    if report is None:
        return "<p>No report.json in this directory.</p>"
    parts = [f"<p class=warn>{esc(flag)}</p>" for flag in report.get("flags") or [] if isinstance(flag, str)]
    if isinstance(report.get("funnel"), list):
        parts.append("<h3>Document funnel</h3>" + render_funnel(report["funnel"]))
    for key, value in report.items():
        if key not in ("funnel", "flags"):
            parts.append(f"<details><summary>{esc(key)}</summary>{render_value(value)}</details>")
    return "".join(parts)


def render_document(k: int, doc: Document, decoded: dict[str, str | None]) -> str:
    row = doc.row
    doc_html = row["html"] or ""
    sources = image_sources(doc_html)
    undecodable = sum(1 for s in sources if decoded.get(s) is None)
    meta = {
        "id": row["id"],
        "url": row["url"],
        "source": row["source"],
        "n_images": row["n_images"],
        "n_chars": row["n_chars"],
        "lang_score": f"{row['lang_score']:.4f}" if row["lang_score"] is not None else "",
        "language": row.get("language") or "",
        "split / shard": f"{doc.split} / {doc.shard}",
    }
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in meta.items())
    warn = (
        f"<p class=warn>{undecodable} image(s) without a valid code src: not shown</p>" if undecodable else ""
    )
    frame = frame_document(doc_html, decoded)
    height = frame_height(len(sources) - undecodable, doc_html)
    source_view = _CODE_RUN.sub("[256 codes]", doc_html)
    return (
        f'<section class=doc id="doc-{k}"><h2>{k + 1}. {esc(row["url"])}</h2><table>{table}</table>{warn}'
        f'<iframe sandbox="" referrerpolicy="no-referrer" title="document {k + 1}" style="height:{height}px" '
        f'srcdoc="{esc(frame)}"></iframe>'
        f"<details><summary>minimal HTML ({len(doc_html)} characters)</summary><pre>{esc(source_view)}</pre>"
        "</details></section>"
    )


def read_report(data_dir: Path) -> tuple[dict | None, str | None]:
    """The run's report.json: in _meta/, or beside the shards in outputs of the layout before it."""
    from pipeline.shards import REPORT_JSON, find_meta_file

    found = find_meta_file(str(data_dir), REPORT_JSON)
    if found is None:
        return None, None
    path = Path(found)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        return None, f"report.json is unreadable: {err}"
    if not isinstance(report, dict):
        return None, "report.json is not a JSON object"
    return report, None


def render_page(
    data_dir: Path, documents: list[Document], total: int, decoded, report, problem, note: str
) -> str:
    docs = "".join(render_document(k, doc, decoded) for k, doc in enumerate(documents))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="referrer" content="no-referrer"><title>cm3-data view: {esc(data_dir.name)}</title>'
        f"<style>{STYLE}</style></head>\n<body><h1>Document shards: {esc(data_dir)}</h1>"
        f"<p>{len(documents)} of {total} documents. {esc(note)}</p>"
        f"<section id=report><h2>Run report</h2>{render_report(report, problem)}</section>\n"
        f"{docs}\n</body></html>\n"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    from image_tokenizer.cli_parser import OneLineParser

    p = OneLineParser(
        prog="cm3-data view",
        description="Write one self-contained HTML page showing sampled documents of a shard directory "
        "(images decoded from their VQGAN codes) and the run's funnel report.",
    )
    p.add_argument("dir", help="cm3-data output (data/ with the shards, _meta/ with the manifest and report)")
    p.add_argument("--output", "--out", dest="out", required=True, help="the HTML page to write")
    p.add_argument("--n", type=int, default=20, help="documents to show (default 20)")
    p.add_argument("--seed", type=int, default=0, help="sample seed (same seed -> same documents)")
    p.add_argument("--split", default="all", choices=("train", "validation", "all"))
    p.add_argument("--vqgan", default=None, help="VQGAN checkpoint (default: the bundled small one)")
    p.add_argument("--vqgan-config", default=None, help="yaml of a taming VQGAN checkpoint")
    return p.parse_args(argv)


def vqgan_note(data_dir: Path, checkpoint: str) -> str:
    """Says whether the shards' manifest names the VQGAN we decode with (by sha256)."""
    try:
        expected = json.loads(manifest_file(data_dir).read_text())["image_codes"]["vqgan"]["sha256"]
    except (AttributeError, OSError, ValueError, KeyError, TypeError):
        return "No manifest VQGAN to compare with."
    actual = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    if expected == actual:
        return "Images decoded with the VQGAN the manifest names."
    return f"Warning: the manifest's VQGAN sha256 {expected[:12]} differs from {Path(checkpoint).name}."


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.n < 1:
        print("cm3-data view: --n must be >= 1", file=sys.stderr)
        return 2
    from image_tokenizer import DEFAULT_CHECKPOINT, load_vqgan

    data_dir = Path(args.dir)
    try:
        files = shard_files(data_dir, args.split)
        documents, total = sample_documents(files, args.n, args.seed)
    except ViewError as err:
        print(f"cm3-data view: {err}", file=sys.stderr)
        return 2
    vq = load_vqgan(args.vqgan, args.vqgan_config)
    sources = [s for doc in documents for s in image_sources(doc.row["html"] or "")]
    decoded = decode_sources(sources, vq)
    report, problem = read_report(data_dir)
    note = f"Sample seed {args.seed}, split {args.split}. " + vqgan_note(
        data_dir, args.vqgan or DEFAULT_CHECKPOINT
    )
    page = render_page(data_dir, documents, total, decoded, report, problem, note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    shown = sum(1 for v in decoded.values() if v)
    print(f"cm3-data view: {len(documents)} documents, {shown} images -> {out}", file=sys.stderr)
    return 0
