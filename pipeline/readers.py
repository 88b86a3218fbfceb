"""Input readers: WARC/ARC files, Wikimedia Enterprise HTML dumps, plain HTML files.

Every reader is a generator of `Page`, `ImageRecord` and `Count` items so that one bad record (or a
truncated file) is counted and skipped instead of failing the job. Files are opened through Beam's
`FileSystems`, so local paths, gs:// and s3:// work alike. Nothing here depends on Beam execution.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from fastwarc.warc import ArchiveIterator, WarcRecordType

LOG = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_RESYNCS_PER_FILE = 1000
WARC_MAGIC = b"WARC/1."
GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True)
class Page:
    """One HTML document as read from the input, before minimisation."""

    url: str
    source: str  # "warc" | "wikipedia" | "html"
    body: bytes
    charset: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """Image bytes found in the input itself (WARC response/resource record), keyed by its URL."""

    url: str
    data: bytes


@dataclass(frozen=True)
class Count:
    """A counted event (a rule or outcome) with its amount; summed over the whole job for the funnel."""

    name: str
    n: int = 1


Item = Page | ImageRecord | Count


def input_kind(path: str) -> str:
    """Kind of an input file, from its name: "warc", "arc", "wikipedia" or "html"."""
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix) and not name.endswith((".tar.gz",)):
            name = name[: -len(suffix)]
    if name.endswith(".warc"):
        return "warc"
    if name.endswith(".arc"):
        return "arc"
    if name.endswith((".tar.gz", ".tgz", ".ndjson", ".jsonl")):
        return "wikipedia"
    if name.endswith((".html", ".htm", ".xhtml")):
        return "html"
    raise ValueError(
        f"unknown input kind for {path!r} (expected .warc[.gz], .arc[.gz], .tar.gz/.ndjson, .html)"
    )


def expand_inputs(patterns: Iterable[str]) -> list[tuple[str, int]]:
    """Sorted, de-duplicated (path, size in bytes) of the files matched by the glob patterns (any Beam
    filesystem); FileNotFoundError naming a pattern that matches nothing."""
    sizes: dict[str, int] = {}
    for pattern in patterns:
        matched = [m for r in FileSystems.match([pattern]) for m in r.metadata_list]
        if not matched:
            raise FileNotFoundError(f"no input matches {pattern!r}")
        sizes.update((m.path, m.size_in_bytes) for m in matched)
    return sorted(sizes.items())


def read_input(path: str, limit: int | None = None) -> Iterator[Item]:
    """All items of one input file; never raises for bad content (counted as `read.*` events)."""
    try:
        kind = input_kind(path)
    except ValueError:
        LOG.warning("skipping %s: not a WARC/ARC/dump/HTML file name", path)
        yield Count("read.skipped_unknown_file_type")
        return
    yield Count(f"read.files.{kind}")
    try:
        reader = {"warc": _read_warc, "arc": _read_arc, "wikipedia": _read_wikipedia, "html": _read_html}[
            kind
        ]
        pages = 0
        for item in reader(path):
            if isinstance(item, Page):
                if limit is not None and pages >= limit:
                    yield Count("read.pages_over_limit")
                    continue
                pages += 1
                yield Count(f"read.pages.{item.source}")
            yield item
    except Exception as error:  # untrusted file (I/O error or a parser surprise): counted, the job goes on
        LOG.warning("cannot read %s: %r", path, error)
        yield Count(f"read.unreadable_file.{kind}")


# ---------------------------------------------------------------- HTTP helpers


def split_http(payload: bytes) -> tuple[dict[str, str], bytes] | None:
    """(lower-case headers, body) of a raw HTTP response, or None when it is not one."""
    if not payload.startswith(b"HTTP/"):
        return None
    end = payload.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = payload.find(b"\n\n"), 2
    if end < 0:
        return None
    headers: dict[str, str] = {}
    for line in payload[:end].decode("latin-1").splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return headers, payload[end + sep :]


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """(media type, charset) of a Content-Type header value."""
    if not value:
        return "", None
    message = Message()
    message["content-type"] = value
    charset = message.get_param("charset")
    return message.get_content_type(), (str(charset).strip() if charset else None)


def classify(url: str, media_type: str, charset: str | None, body: bytes, source: str) -> Item:
    """Page for HTML, ImageRecord for images, else a counted skip."""
    if media_type in HTML_TYPES:
        return Page(url=url, source=source, body=body, charset=charset)
    if media_type.startswith("image/"):
        return ImageRecord(url=url, data=body)
    return Count("read.skipped_not_html_or_image")


# ---------------------------------------------------------------- WARC


def _clean_uri(uri: str | None) -> str:
    return (uri or "").strip().strip("<>").strip()


def _warc_item(record) -> Item:
    url = _clean_uri(record.headers.get("WARC-Target-URI"))
    body = record.reader.read()
    if record.content_length is not None and len(body) < record.content_length and not record.is_http:
        return Count("read.truncated_record")
    if not url:
        return Count("read.record_without_uri")
    if record.record_type == WarcRecordType.response:
        parsed = split_http(body) if not record.is_http else None
        if record.is_http:
            media_type, charset = parse_content_type(record.http_headers.get("Content-Type"))
            status = record.http_headers.status_code
            if status is not None and status != 200:
                return Count("read.skipped_http_status")
        elif parsed is not None:
            headers, body = parsed
            media_type, charset = parse_content_type(headers.get("content-type"))
        else:
            return Count("read.bad_http_response")
        return classify(url, media_type, charset, body, "warc")
    media_type, charset = parse_content_type(record.headers.get("Content-Type"))
    return classify(url, media_type, charset, body, "warc")


def _find_magic(stream, start: int, magic: bytes) -> int | None:
    """Offset of the next `magic` at or after `start`, scanning the raw file in chunks."""
    stream.seek(start)
    offset, tail = start, b""
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return None
        data = tail + chunk
        found = data.find(magic)
        if found >= 0:
            return offset - len(tail) + found
        tail = data[-(len(magic) - 1) :]
        offset += len(chunk)


def _read_warc(path: str) -> Iterator[Item]:
    """WARC records (plain or gzip members); a broken record is counted and the reader resyncs after it."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        head = raw.read(3)
        magic = GZIP_MAGIC if head == GZIP_MAGIC else WARC_MAGIC
        start, seen, resumed = 0, set(), False
        for _ in range(MAX_RESYNCS_PER_FILE):
            raw.seek(start)
            last_start, progressed, at_position = None, False, Counter()
            try:
                for record in ArchiveIterator(raw, parse_http=True, auto_decode="all"):
                    # several records share one offset inside a multi-record gzip member: key by ordinal too
                    last_start = start + record.stream_pos
                    at_position[last_start] += 1
                    key = (last_start, at_position[last_start])
                    if key in seen:
                        continue
                    seen.add(key)
                    progressed = True
                    if record.record_type not in (WarcRecordType.response, WarcRecordType.resource):
                        continue
                    yield Count(f"read.warc_{record.record_type}")
                    try:
                        yield _warc_item(record)
                    except (OSError, ValueError, zlib.error) as error:
                        LOG.info("bad record in %s: %s", path, error)
                        yield Count("read.bad_record")
                return
            except (OSError, ValueError, zlib.error, EOFError) as error:
                LOG.info("broken WARC data in %s after offset %s: %s", path, last_start, error)
                if progressed or not resumed:  # one count per broken stretch, not per resync attempt
                    yield Count("read.broken_or_truncated_record")
            # resync at the next record start after the last record seen (or after the failed start)
            resume = _find_magic(raw, (last_start if last_start is not None else start) + 1, magic)
            if resume is None or resume <= start:
                return
            start, resumed = resume, True
        yield Count("read.too_many_broken_records")


# ---------------------------------------------------------------- ARC (FastWARC reads WARC only)


def _arc_records(stream: io.BufferedIOBase) -> Iterator[tuple[str, bytes]]:
    """(header line, content) of each ARC v1 record; raises EOFError/ValueError on broken data."""
    while True:
        line = stream.readline()
        if not line:
            return
        if not line.strip():
            continue
        fields = line.decode("latin-1").strip().split(" ")
        if len(fields) < 5 or not fields[-1].isdigit():
            raise ValueError(f"bad ARC header line {line[:120]!r}")
        length = int(fields[-1])
        content = stream.read(length)
        if len(content) < length:
            raise EOFError("truncated ARC record")
        yield fields[0], content


def _read_arc(path: str) -> Iterator[Item]:
    """ARC v1 files (FastWARC reads only WARC): URL IP date type length header lines + HTTP responses."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        data = raw.read()
    if data[:3] == GZIP_MAGIC:
        data, complete = _gunzip_lenient(data)
        if not complete:
            yield Count("read.broken_or_truncated_record")
    stream = io.BytesIO(data)
    try:
        for url, content in _arc_records(stream):
            if url.startswith("filedesc:"):
                continue
            yield Count("read.arc_record")
            parsed = split_http(content)
            if parsed is None:
                yield Count("read.bad_http_response")
                continue
            headers, body = parsed
            media_type, charset = parse_content_type(headers.get("content-type"))
            yield classify(url, media_type, charset, body, "warc")
    except (ValueError, EOFError) as error:
        LOG.info("broken ARC data in %s: %s", path, error)
        yield Count("read.broken_or_truncated_record")


def _gunzip_lenient(data: bytes) -> tuple[bytes, bool]:
    """(decompressed, complete): all gzip members; a broken or truncated member keeps what was decoded."""
    out = []
    while data:
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(decomp.decompress(data))
        except zlib.error:
            return b"".join(out), False
        data = decomp.unused_data
        if not decomp.eof:
            return b"".join(out), False
    return b"".join(out), True


# ---------------------------------------------------------------- Wikipedia (Wikimedia Enterprise HTML dumps)


def wikipedia_page(line: bytes) -> Item:
    """One NDJSON line of a Wikimedia Enterprise dump -> Page (fields url, article_body.html)."""
    try:
        article = json.loads(line)
        url = article["url"]
        html = article["article_body"]["html"]
    except (ValueError, KeyError, TypeError):
        return Count("read.bad_wikipedia_line")
    if not isinstance(url, str) or not isinstance(html, str) or not url:
        return Count("read.bad_wikipedia_line")
    return Page(url=url, source="wikipedia", body=html.encode("utf-8"), charset="utf-8")


def _ndjson_lines(stream) -> Iterator[Item]:
    for line in stream:
        if line.strip():
            yield wikipedia_page(line)


def _read_wikipedia(path: str) -> Iterator[Item]:
    """A tar.gz of NDJSON files (the Enterprise dump layout) or a bare (optionally gzipped) NDJSON file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if path.lower().endswith((".tar.gz", ".tgz")):
            try:
                with tarfile.open(fileobj=raw, mode="r|gz") as tar:
                    for member in tar:
                        if not member.isfile() or not member.name.endswith((".ndjson", ".json", ".jsonl")):
                            continue
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            yield from _ndjson_lines(extracted)
            except (tarfile.TarError, EOFError, zlib.error) as error:
                LOG.info("broken dump %s: %s", path, error)
                yield Count("read.broken_or_truncated_record")
        else:
            stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
            try:
                yield from _ndjson_lines(stream)
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                LOG.info("broken dump %s: %s", path, error)
                yield Count("read.broken_or_truncated_record")


# ---------------------------------------------------------------- plain HTML files


def _read_html(path: str) -> Iterator[Item]:
    """One file = one page; its URL is the path as given (use WARC for crawl URLs)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        body = raw.read()
    yield Page(url=path, source="html", body=body, charset=None)
