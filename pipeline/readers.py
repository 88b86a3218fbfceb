"""Input readers: WARC/ARC files, Wikimedia Enterprise HTML dumps, plain HTML files.

Every reader is a generator of `Page`, `ImageRecord` and `Count` items so that one bad record (or a
truncated file) is counted and skipped instead of failing the job. Files are opened through Beam's
`FileSystems`, so local paths, gs:// and s3:// work alike. Nothing here depends on Beam execution.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import logging
import os
import posixpath
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipeline import counters
from pipeline.items import Count, ImageRecord, Item, Page

LOG = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_RESYNCS_PER_FILE = 1000
WARC_MAGIC = b"WARC/1."
WARC_TYPES = (
    "warcinfo",
    "response",
    "resource",
    "request",
    "metadata",
    "revisit",
    "conversion",
    "continuation",
)
GZIP_MAGIC = b"\x1f\x8b\x08"
MAX_GZIP_RESTARTS_AT_END = 4  # gzip members cut short that decoding restarts after (see _DecodedStream)
CHUNK_BYTES = 1 << 16
MAX_HEADER_BYTES = 1 << 16  # a WARC header block or an ARC header line
# a record's content is held in memory up to this size; a larger one is skipped, counted
MAX_RECORD_BYTES = 64 << 20
# how far before the end of a damaged record's declared block the next record may start (a Content-Length
# a few bytes too long): too few bytes for a WARC header naming a URL, a type and a length, so text inside a
# page cannot pose as a record there
LENGTH_SLACK_BYTES = 16
_VERSION_LINE = re.compile(rb"WARC/1\.\d+\r?\n")  # a record's first line, or the end of a line cut into it
ARC_LOOKAHEAD_BYTES = 4096  # how far past an ARC record its next header line is checked
# a line that may be an ARC header (URL with a ':', IP, date digits, ..., length digits): what a broken stretch
# skips to without a readline per line (possessive, so each line costs one pass)
_ARC_HEADER_LINE = re.compile(
    rb"^[^ \t\n:]*+:[^ \t\n]*+[ \t]++[^ \t\n]++[ \t]++\d++[ \t]++(?:[^ \t\n]++[ \t]++)*+\d++\r?$", re.M
)


KINDS_HINT = ".warc[.gz], .arc[.gz], .tar.gz/.ndjson or .html"


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
    raise ValueError(f"unknown input kind for {path!r} (expected {KINDS_HINT})")


def _kind_or_none(path: str) -> str | None:
    try:
        return input_kind(path)
    except ValueError:
        return None


def input_glob(pattern: str) -> str:
    """The glob a pattern stands for: a directory (or a pattern ending in /) is every file under it."""
    if pattern.endswith("/") or (_is_local(pattern) and os.path.isdir(pattern)):
        return FileSystems.join(pattern.rstrip("/"), "**")
    return pattern


def expand_inputs(patterns: Iterable[str]) -> list[tuple[str, int]]:
    """Sorted, de-duplicated (path, size in bytes) of the files matched by the glob patterns (any Beam
    filesystem); a directory contributes the files under it whose names are an input kind. FileNotFoundError
    naming a pattern that matches nothing, ValueError when no file matched is an input kind (a run that
    could only read nothing)."""
    sizes: dict[str, int] = {}
    for pattern in patterns:
        glob = input_glob(pattern)
        matched = [m for r in FileSystems.match([glob]) for m in r.metadata_list]
        if glob != pattern:
            matched = [m for m in matched if _kind_or_none(m.path)]
            if not matched:
                raise FileNotFoundError(f"no input file ({KINDS_HINT}) under the directory {pattern!r}")
        if not matched:
            raise FileNotFoundError(f"no input matches {pattern!r}")
        sizes.update((m.path, m.size_in_bytes) for m in matched)
    if not any(_kind_or_none(path) for path in sizes):
        names = ", ".join(sorted(sizes)[:3]) + (", ..." if len(sizes) > 3 else "")
        raise ValueError(f"no input file is named as an input kind ({KINDS_HINT}): {names}")
    return sorted(sizes.items())


def input_root(pattern: str) -> str:
    """The directory a glob pattern searches under (its path before the first wildcard, up to a `/`): the
    root a plain .html input's path is taken relative to for --base-url."""
    return posixpath.dirname(re.split(r"[*?\[]", pattern, maxsplit=1)[0])


def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) is None


def file_url(path: str) -> str:
    """file:// URL of a local file's resolved absolute path; a path on another filesystem as it is."""
    return Path(os.path.realpath(path)).as_uri() if _is_local(path) else path


def html_file_urls(files: Iterable[str], patterns: Iterable[str], base_url: str | None) -> dict[str, str]:
    """The URL of each plain .html input that names no canonical URL of its own, fixed at launch so that its
    id and split do not depend on how its path was typed: `base_url` joined with the file's path relative to
    the input root it was found under (the most specific one), else a file:// URL of the resolved absolute
    path (which then depends on where the files lie), else, off the local disk, the path itself (gs://...)."""
    roots = [os.path.abspath(root) if _is_local(root) else root for root in map(input_root, patterns)]
    urls = {}
    for path in files:
        if _kind_or_none(path) != "html":
            continue
        if base_url is None:
            urls[path] = file_url(path)
            continue
        absolute = os.path.abspath(path) if _is_local(path) else path
        under = [root for root in roots if absolute.startswith(root.rstrip("/") + "/")]
        relative = absolute[len(max(under, key=len)) :] if under else posixpath.basename(absolute)
        urls[path] = urljoin(base_url, quote(relative.lstrip("/")))
    return urls


# text where a `<link>` or `<meta>` is not markup: comments, scripts, styles and other raw text elements
_NOT_MARKUP = re.compile(
    rb"<!--.*?(?:-->|\Z)|<(script|style|template|textarea|title|xmp)(?=[\s/>]).*?(?:</\1\s*>|\Z)", re.S | re.I
)
# a <link> or <meta> start tag; a quoted value runs at most 4 KiB, so a failed match never scans far
_LINK_OR_META = re.compile(rb"<(link|meta)(?=[\s/>])((?:[^>\"']|\"[^\"]{0,4096}\"|'[^']{0,4096}')*)>?", re.I)
_ATTRIBUTE = re.compile(rb"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")


def _tag_attributes(text: bytes) -> dict[str, str]:
    """Attributes of a start tag's text, names lower-cased, the first of repeated names kept (as parsers do)."""
    attributes: dict[str, str] = {}
    for name, value in _ATTRIBUTE.findall(text):
        value = value[1:-1] if value[:1] in (b'"', b"'") else value
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            decoded = value.decode("latin-1")
        attributes.setdefault(name.decode("latin-1").lower(), html.unescape(decoded))
    return attributes


def declared_url(body: bytes) -> str | None:
    """The page's own absolute http(s) URL: `<link rel=canonical href>`, else `<meta property=og:url>`.

    Found by a linear scan of the link and meta tags outside comments and raw text, not by parsing the page:
    libxml2 checks a tag's attributes pairwise, and 60k attributes took 21 s (the minimizer caps them later).
    """
    tags = [
        (name.lower(), _tag_attributes(text))
        for name, text in _LINK_OR_META.findall(_NOT_MARKUP.sub(b"", body))
    ]
    candidates = [
        attributes.get("href", "")
        for name, attributes in tags
        if name == b"link" and "canonical" in attributes.get("rel", "").lower().split()
    ]
    candidates += [
        attributes.get("content", "")
        for name, attributes in tags
        if name == b"meta"
        and (attributes.get("property") or attributes.get("name") or "").strip().lower() == "og:url"
    ]
    for url in candidates:
        url = url.strip()
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            continue
        if parts.scheme.lower() in ("http", "https") and parts.netloc:
            return url
    return None


def read_input(path: str, limit: int | None = None, url: str | None = None) -> Iterator[Item]:
    """All items of one input file; never raises for bad content (counted as `read.*` events). `url`: the
    page URL of a plain .html file that declares none (see html_file_urls)."""
    try:
        kind = input_kind(path)
    except ValueError:
        LOG.warning("skipping %s: not a WARC/ARC/dump/HTML file name", path)
        yield Count(counters.READ_UNKNOWN_FILE_TYPE)
        return
    yield Count(counters.READ_FILES + kind)
    try:
        reader = {"warc": _read_warc, "arc": _read_arc, "wikipedia": _read_wikipedia, "html": _read_html}[
            kind
        ]
        pages = 0
        for item in reader(path, url) if kind == "html" else reader(path):
            if isinstance(item, Page):
                if limit is not None and pages >= limit:
                    yield Count(counters.READ_PAGES_OVER_LIMIT)
                    continue
                pages += 1
                yield Count(counters.READ_PAGES + item.source)
            yield item
    except Exception as error:  # untrusted file (I/O error or a parser surprise): counted, the job goes on
        LOG.warning("cannot read %s: %r", path, error)
        yield Count(counters.READ_UNREADABLE_FILE + kind)


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
    return Count(counters.READ_NOT_HTML_OR_IMAGE)


# ---------------------------------------------------------------- WARC


def _clean_uri(uri: str | None) -> str:
    return (uri or "").strip().strip("<>").strip()


def read_capped(stream, cap: int) -> bytes | None:
    """All of a stream in bounded chunks, or None as soon as it has more than `cap` bytes: a few KB of
    brotli or gzip can decode to gigabytes, so a decoded body never grows past the record size cap."""
    parts, size = [], 0
    while chunk := stream.read(min(CHUNK_BYTES, cap + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            return None
    return b"".join(parts)


def _warc_item(record) -> Item:
    url = _clean_uri(record.headers.get("WARC-Target-URI"))
    if not url:
        return Count(counters.READ_RECORD_WITHOUT_URI)
    body = read_capped(record.reader, MAX_RECORD_BYTES)  # transfer and content encodings decoded
    if body is None:
        return Count(counters.READ_DECODED_RECORD_OVER_SIZE_CAP)
    if record.record_type == WarcRecordType.response:
        parsed = split_http(body) if not record.is_http else None
        if record.is_http:
            media_type, charset = parse_content_type(record.http_headers.get("Content-Type"))
            status = record.http_headers.status_code
            if status is not None and status != 200:
                return Count(counters.READ_HTTP_STATUS)
        elif parsed is not None:
            headers, body = parsed
            media_type, charset = parse_content_type(headers.get("content-type"))
        else:
            return Count(counters.READ_BAD_HTTP_RESPONSE)
        return classify(url, media_type, charset, body, "warc")
    media_type, charset = parse_content_type(record.headers.get("Content-Type"))
    return classify(url, media_type, charset, body, "warc")


def _find_magic(stream, start: int, magic: bytes) -> int | None:
    """Offset of the next `magic` at or after `start`, scanning the raw file in chunks."""
    stream.seek(start)
    offset, tail = start, b""
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return None
        data = tail + chunk
        found = data.find(magic)
        if found >= 0:
            return offset - len(tail) + found
        tail = data[-(len(magic) - 1) :]
        offset += len(chunk)


class _DecodedStream:
    """The decoded bytes of a plain or gzip file (any number of members), read forward in bounded chunks,
    that can go back to an earlier position (re-decoding from the start of that position's gzip member).

    A stretch of broken or cut gzip data is counted once (`read.broken_gzip_member`) and decoding goes on at
    the next gzip header after the broken member's start; what it decoded before the damage stays in the
    stream, where the record framing finds it short. Positions are (raw offset of a member, decoded offset
    in it); in a plain file, (raw offset, 0) after a seek.
    """

    def __init__(self, raw):
        self._raw = raw
        self.gzipped = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        self.counts: Counter[str] = Counter()
        self._broken_members: set[int] = set()  # counted already (a seek back decodes them again)
        self._in_broken_stretch = False
        self._restarts: dict[int, int | None] = {}  # cut member -> the gzip header decoding restarts at
        self._start(0)

    def _start(self, member: int, carried: bytes = b"") -> None:
        """Decode from the member at this raw offset; `carried`: its first raw bytes, already read."""
        if not carried:
            self._raw.seek(member)
        self._member, self._raw_pos, self._offset, self._carried = member, member + len(carried), 0, carried
        self._pending, self._pos = b"", 0  # decoded bytes from the current member; consumed up to _pos
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if self.gzipped else None
        self._ended, self._next = False, None

    def _broken(self, next_member: tuple[int, bytes] | None) -> None:
        if self._member not in self._broken_members and not self._in_broken_stretch:
            self.counts[counters.READ_BROKEN_GZIP_MEMBER] += 1
        self._broken_members.add(self._member)
        self._in_broken_stretch = True
        self._ended, self._next = True, next_member

    def _restart_after_cut_member(self) -> tuple[int, bytes] | None:
        """Where to decode on when the file ends inside a member: a member cut short decodes the members
        after it as its own (garbage, no error), so decoding restarts at the next gzip header after its
        start. Each restart decodes the rest of the file again: only a few cut members per file restart (the
        same ones again when a seek back decodes them anew)."""
        if self._member not in self._restarts and len(self._restarts) < MAX_GZIP_RESTARTS_AT_END:
            self._restarts[self._member] = _find_magic(self._raw, self._member + 1, GZIP_MAGIC)
        resume = self._restarts.get(self._member)
        return None if resume is None else (resume, b"")

    def _fill(self) -> bool:
        """Decode more of the current member into the pending bytes; False when it has no more."""
        while not self._ended:
            if self._decoder is not None and self._decoder.unconsumed_tail:
                data = self._decoder.unconsumed_tail
            elif self._carried:
                data, self._carried = self._carried, b""
            else:
                data = self._raw.read(CHUNK_BYTES)
                self._raw_pos += len(data)
            if self._decoder is None:
                self._ended = not data
                self._append(data)
                return bool(data)
            if not data:  # the file ends inside this member (no count when it ends before one starts)
                if self._raw_pos > self._member:
                    self._broken(self._restart_after_cut_member())
                self._ended = True
                return False
            try:
                out = self._decoder.decompress(data, CHUNK_BYTES)
            except zlib.error:
                resume = _find_magic(self._raw, self._member + 1, GZIP_MAGIC)
                self._broken(None if resume is None else (resume, b""))
                return False
            if self._decoder.eof:
                unused = self._decoder.unused_data  # the next member's first bytes: no seek and read again
                self._ended, self._next = True, (self._raw_pos - len(unused), unused)
                self._in_broken_stretch = False
            if out:
                self._append(out)
                return True
        return False

    def _append(self, data: bytes) -> None:
        """Add decoded bytes, dropping the consumed ones: each byte is copied a bounded number of times, so
        reading is linear in the bytes read however short the reads are."""
        self._pending, self._pos = self._pending[self._pos :] + data, 0

    def _available(self) -> int:
        return len(self._pending) - self._pos

    def tell(self) -> tuple[int, int]:
        return self._member, self._offset

    def seek(self, position: tuple[int, int]) -> None:
        member, offset = position
        if not self.gzipped:
            self._start(member + offset)
            return
        if member != self._member or offset < self._offset:
            self._start(member)
        self.skip(offset - self._offset)

    def peek(self, n: int) -> bytes:
        """Up to n next bytes without consuming them (fewer at the end of a gzip member or the file)."""
        while self._available() < n:
            if self._fill():
                continue
            if self._available() or self._next is None:
                break
            self._start(*self._next)
        return self._pending[self._pos : self._pos + n]

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer at the end of a gzip member); b"" at the end of the file."""
        if not self._available():
            self.peek(1)
        out = self._pending[self._pos : self._pos + n]
        self._pos += len(out)
        self._offset += len(out)
        return out

    def read_exact(self, n: int) -> bytes:
        """n bytes, or fewer when the file ends first."""
        parts, left = [], n
        while left:
            part = self.read(min(left, CHUNK_BYTES))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def skip(self, n: int) -> int:
        """Discard up to n bytes in bounded chunks; the number discarded."""
        done = 0
        while done < n:
            part = self.read(min(n - done, CHUNK_BYTES))
            if not part:
                break
            done += len(part)
        return done

    def readline(self, limit: int) -> bytes:
        """The next line with its b"\\n", or its first `limit` bytes, or what is left at the end."""
        parts, size = [], 0
        while size < limit and self.peek(1):
            end = self._pending.find(b"\n", self._pos, self._pos + limit - size)
            end = end - self._pos if end >= 0 else -1
            part = self.read(end + 1 if end >= 0 else limit - size)
            parts.append(part)
            size += len(part)
            if end >= 0:
                break
        return b"".join(parts)

    def skip_line_ends(self) -> None:
        """Past the next run of CR/LF bytes, scanned a buffer at a time (a 1 MB .gz of newlines is 1 GB)."""
        while pending := self.peek(CHUNK_BYTES):
            blank = len(pending) - len(pending.lstrip(b"\r\n"))
            self.read(blank)
            if blank < len(pending):
                return

    def skip_to_line(self, pattern: re.Pattern) -> None:
        """Past the lines that do not match `pattern` (a MULTILINE regex that only matches at a line start),
        scanned a buffer at a time: to the start of the next line that does, or to the end of the file. The
        stream must be at a line start."""
        while self.peek(MAX_HEADER_BYTES):
            found = pattern.search(self._pending, self._pos)
            if found is not None:
                self.read(found.start() - self._pos)
                return
            last_newline = self._pending.rfind(b"\n", self._pos)
            # the last, unfinished line is searched again with more bytes, unless it is too long to match
            self.read(last_newline + 1 - self._pos if last_newline >= 0 else self._available())

    def find(self, magic: bytes) -> bool:
        """Move to the next occurrence of `magic` (True) or to the end of the file (False)."""
        while self.peek(len(magic)):
            found = self._pending.find(magic, self._pos)
            if found >= 0:
                self.read(found - self._pos)
                return True
            self.read(max(self._available() - len(magic) + 1, 1))
        return False

    def reached(self, position: tuple[int, int]) -> bool:
        """Whether the stream is at or past a position it was at before."""
        member, offset = position
        if not self.gzipped:  # positions are (seek offset, bytes read since)
            return self._member + self._offset >= member + offset
        return (self._member, self._offset) >= (member, offset)

    def at_member_start(self) -> bool:
        """At the first byte of a gzip member: a boundary the file's writer made, which no bytes inside a
        record's content can fake."""
        return self.gzipped and self._offset == 0

    def take_counts(self) -> list[Count]:
        counts = [Count(name, n) for name, n in sorted(self.counts.items())]
        self.counts.clear()
        return counts


@dataclass(frozen=True)
class _Framed:
    """One WARC record cut out of the stream by its Content-Length: raw header block and content block."""

    record_type: str
    header: bytes
    block: bytes


def _skip_line_ends(stream: _DecodedStream) -> None:
    """Past the CR/LF bytes that end a record (writers differ in how many they put)."""
    stream.skip_line_ends()


@dataclass(frozen=True)
class _Broken:
    """A record that cannot be read, and how far its declared block reaches: no later record starts before
    `floor` (a position), except at a gzip member start. `floor` None: it declared no block; END: its block
    runs to the end of the file."""

    floor: tuple[int, int] | str | None


END = "end"


def _next_warc_record(stream: _DecodedStream) -> _Framed | _Broken | str:
    """The record at the stream's position, "over_size_cap", or why it cannot be read (the stream then is
    anywhere).

    A record counts as whole when its Content-Length bytes are there and followed by the next record, the
    end of the file, or garbage while its block holds no version line (`WARC/1.0` and a line end, where a
    later record starts; not even one that runs on past its end):
    an absurd length, or one a few bytes too long, fails here. A header line ending in a version line
    (`WARC/1.0`) is a header cut short and the next record's, run together."""
    header = stream.readline(MAX_HEADER_BYTES)
    if not header.startswith(WARC_MAGIC) or _VERSION_LINE.search(header, 1):
        return _Broken(None)
    fields: dict[str, str] = {}
    while True:
        line = stream.readline(MAX_HEADER_BYTES)
        header += line
        if not line.endswith(b"\n") or len(header) > MAX_HEADER_BYTES or _VERSION_LINE.search(line):
            return _Broken(None)
        if not line.strip():
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    length = fields.get("content-length", "")
    if not length.isdigit():
        return _Broken(None)
    size = int(length)
    # the block is read in two parts: the position between them is the resync floor if it proves broken
    head_size = max(size - LENGTH_SLACK_BYTES, 0)
    if size > MAX_RECORD_BYTES:
        block = b""
        if stream.skip(head_size) < head_size:
            return _Broken(END)
        floor = stream.tell()
        if stream.skip(size - head_size) < size - head_size:
            return _Broken(floor)
    else:
        block = stream.read_exact(head_size)
        if len(block) < head_size:
            return _Broken(END)
        floor = stream.tell()
        block += stream.read_exact(size - head_size)
        if len(block) < size:
            return _Broken(floor)
    runs_on = WARC_MAGIC in block[-(len(WARC_MAGIC) - 1) :] + stream.peek(len(WARC_MAGIC) - 1)
    _skip_line_ends(stream)
    # garbage after the block: the record is still whole unless its length ran over a later record's start
    if stream.peek(len(WARC_MAGIC)) not in (b"", WARC_MAGIC) and (
        size > MAX_RECORD_BYTES or _VERSION_LINE.search(block) or runs_on
    ):
        return _Broken(floor)
    if size > MAX_RECORD_BYTES:
        return "over_size_cap"
    return _Framed(fields.get("warc-type", "").lower(), header, block)


def _resync(stream: _DecodedStream, start: tuple[int, int], floor) -> tuple[bool, int]:
    """Move to the next record start after a broken record at `start`: the next `WARC/1.` past it that is
    not inside its declared block (see _Broken), or at a gzip member start. Returns whether it found one,
    and how many `WARC/1.` it passed inside the block (page text that would pose as records)."""
    stream.seek(start)
    stream.read(1)
    passed = 0
    while stream.find(WARC_MAGIC):
        if floor is None or (floor != END and stream.reached(floor)) or stream.at_member_start():
            return True, passed
        passed += 1
        stream.read(1)
    return False, passed


def _warc_records(stream: _DecodedStream) -> Iterator[_Framed | Count]:
    """Whole records of a WARC stream; after a broken one, reading resyncs at the next record start that
    its declared block cannot hide (see _resync), so each broken stretch is one
    `read.broken_or_truncated_record`, each `WARC/1.` skipped inside a damaged record's block one
    `read.record_start_inside_damaged_record`, and every later record is read."""
    in_broken_stretch = False
    for _ in range(MAX_RESYNCS_PER_FILE):
        _skip_line_ends(stream)
        start = stream.tell()
        if not stream.peek(1):
            return
        while not isinstance(framed := _next_warc_record(stream), _Broken):
            in_broken_stretch = False
            yield Count(counters.READ_RECORD_OVER_SIZE_CAP) if framed == "over_size_cap" else framed
            _skip_line_ends(stream)
            start = stream.tell()
            if not stream.peek(1):
                return
        if not in_broken_stretch:
            yield Count(counters.READ_BROKEN_RECORD)
            in_broken_stretch = True
        found, passed = _resync(stream, start, framed.floor)
        if passed:
            yield Count(counters.READ_RECORD_START_INSIDE_DAMAGED_RECORD, passed)
        if not found:
            return
    yield Count(counters.READ_TOO_MANY_BROKEN_RECORDS)


def _read_warc(path: str) -> Iterator[Item]:
    """WARC records (plain or gzip members), cut out by our own framing so that a broken record, an absurd
    Content-Length or a cut file is counted and every later record that can be found is still read; each
    whole response/resource record is then parsed by FastWARC (HTTP headers, transfer/content encodings)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = _DecodedStream(raw)
        for framed in _warc_records(stream):
            yield from stream.take_counts()
            if isinstance(framed, Count):
                yield framed
                continue
            if framed.record_type not in ("response", "resource"):
                if framed.record_type not in WARC_TYPES:
                    yield Count(counters.READ_UNKNOWN_WARC_TYPE)
                continue
            yield Count(counters.READ_WARC_RECORD + framed.record_type)
            records = ArchiveIterator(
                io.BytesIO(framed.header + framed.block + b"\r\n\r\n"), parse_http=True, auto_decode="all"
            )
            try:
                record = next(iter(records), None)
                yield _warc_item(record) if record is not None else Count(counters.READ_BAD_RECORD)
            except (OSError, ValueError, zlib.error) as error:
                LOG.info("bad record in %s: %s", path, error)
                yield Count(counters.READ_BAD_RECORD)
        yield from stream.take_counts()


# ---------------------------------------------------------------- ARC (FastWARC reads WARC only)


def _arc_header(line: bytes) -> tuple[str, int] | None:
    """(URL, content length) of an ARC v1/v2 header line (URL IP date ... length), or None."""
    fields = line.decode("latin-1").split()
    if len(fields) < 5 or ":" not in fields[0] or not fields[2].isdigit() or not fields[-1].isdigit():
        return None
    return fields[0], int(fields[-1])


def _arc_content(stream: _DecodedStream, size: int) -> tuple[bytes | str | None, tuple[int, int] | str]:
    """The content after a header line, "over_size_cap" for a whole record too large to hold, or None when
    it is not whole: content, its newline, then the next header line (as far as ARC_LOOKAHEAD_BYTES shows
    it), the end of the file, or garbage after content that holds no header line; an absurd length fails.
    And the position no later record can start before, but at a gzip member start (see _Broken)."""
    head_size = max(size - LENGTH_SLACK_BYTES, 0)
    if size > MAX_RECORD_BYTES:
        whole = stream.skip(head_size) == head_size
        floor = stream.tell() if whole else END
        content = "over_size_cap" if whole and stream.skip(size - head_size) == size - head_size else None
    else:
        content = stream.read_exact(head_size)
        floor = stream.tell() if len(content) == head_size else END
        content += stream.read_exact(size - head_size)
        content = content if len(content) == size else None
    if content is None or stream.read(1) not in (b"\n", b""):
        return None, floor
    ahead = stream.peek(ARC_LOOKAHEAD_BYTES).lstrip(b"\r\n")
    line, newline, _ = ahead.partition(b"\n")
    if not newline or _arc_header(line) is not None:
        return content, floor
    # garbage follows: the content is still whole unless its length ran over later records' header lines
    if isinstance(content, str) or any(_arc_header(line) for line in content.split(b"\n")):
        return None, floor
    return content, floor


def _arc_records(stream: _DecodedStream) -> Iterator[tuple[str, bytes] | Count]:
    """(URL, content) of each ARC record; a garbage line or a record that is not whole starts a broken
    stretch (counted once) that ends at the next line that reads as a record header, but never at one
    inside a damaged record's declared content (counted as `read.record_start_inside_damaged_record`)."""
    in_broken_stretch, resyncs = False, 0
    floor: tuple[int, int] | str | None = None  # of the last damaged record, while it may hide headers
    while True:
        _skip_line_ends(stream)  # runs of empty lines in bulk, not one readline each
        if floor is not None and (stream.at_member_start() or (floor != END and stream.reached(floor))):
            floor = None
        line = stream.readline(MAX_HEADER_BYTES)
        if not line:
            return
        if not line.strip():
            continue
        header = _arc_header(line) if line.endswith(b"\n") else None
        if header is None and in_broken_stretch:  # garbage: on to the next line that may be a header
            if not line.endswith(b"\n"):
                stream.readline(MAX_HEADER_BYTES)
            stream.skip_to_line(_ARC_HEADER_LINE)
            continue
        if header is not None and floor is not None:
            yield Count(counters.READ_RECORD_START_INSIDE_DAMAGED_RECORD)
            continue
        after_header = stream.tell()
        content, content_floor = _arc_content(stream, header[1]) if header is not None else (None, None)
        if content is None:
            if not in_broken_stretch:
                yield Count(counters.READ_BROKEN_RECORD)
                in_broken_stretch = True
            if header is not None:  # read on from the line after this header
                resyncs += 1
                if resyncs > MAX_RESYNCS_PER_FILE:
                    yield Count(counters.READ_TOO_MANY_BROKEN_RECORDS)
                    return
                stream.seek(after_header)
                floor = content_floor
            continue
        in_broken_stretch = False
        yield (
            Count(counters.READ_RECORD_OVER_SIZE_CAP) if content == "over_size_cap" else (header[0], content)
        )


def _read_arc(path: str) -> Iterator[Item]:
    """ARC v1 files (FastWARC reads only WARC): URL IP date type length header lines + HTTP responses,
    plain or gzip members, streamed like WARC files and resynced at the next header line or gzip member."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = _DecodedStream(raw)
        for record in _arc_records(stream):
            yield from stream.take_counts()
            if isinstance(record, Count):
                yield record
                continue
            url, content = record
            if url.startswith("filedesc:"):
                continue
            yield Count(counters.READ_ARC_RECORD)
            parsed = split_http(content)
            if parsed is None:
                yield Count(counters.READ_BAD_HTTP_RESPONSE)
                continue
            headers, body = parsed
            media_type, charset = parse_content_type(headers.get("content-type"))
            yield classify(url, media_type, charset, body, "warc")
        yield from stream.take_counts()


# ---------------------------------------------------------------- Wikipedia (Wikimedia Enterprise HTML dumps)


def wikipedia_page(line: bytes) -> Item:
    """One NDJSON line of a Wikimedia Enterprise dump -> Page (fields url, article_body.html); a line that is
    not one (bad JSON, nesting too deep to parse, a lone surrogate that no later stage could encode) is
    counted and costs only itself."""
    try:
        article = json.loads(line)
        url = article["url"]
        html = article["article_body"]["html"]
        if not isinstance(url, str) or not isinstance(html, str) or not url:
            return Count(counters.READ_BAD_WIKIPEDIA_LINE)
        url.encode("utf-8")
        body = html.encode("utf-8")
    except (ValueError, KeyError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return Count(counters.READ_BAD_WIKIPEDIA_LINE)
    return Page(url=url, source="wikipedia", body=body, charset="utf-8")


def bounded_lines(stream, cap: int) -> Iterator[bytes | None]:
    """The lines of a binary stream, read in bounded chunks: each line (with its b"\\n"), or None for a line
    longer than `cap`, which is read past without being held."""
    parts: list[bytes] = []  # the current line's pieces so far
    size, over = 0, False
    while chunk := stream.read(CHUNK_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start : end + 1]
            yield None if over or size + len(piece) > cap else b"".join([*parts, piece])
            parts, size, over = [], 0, False
            start = end + 1
        if start < len(chunk) and not over:
            size += len(chunk) - start
            over = size > cap
            if over:
                parts = []
            else:
                parts.append(chunk[start:])
    if over or parts:
        yield None if over else b"".join(parts)


def _ndjson_lines(stream) -> Iterator[Item]:
    for line in bounded_lines(stream, MAX_RECORD_BYTES):
        if line is None:
            yield Count(counters.READ_RECORD_OVER_SIZE_CAP)
        elif line.strip():
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
                yield Count(counters.READ_BROKEN_RECORD)
        else:
            stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
            try:
                yield from _ndjson_lines(stream)
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                LOG.info("broken dump %s: %s", path, error)
                yield Count(counters.READ_BROKEN_RECORD)


# ---------------------------------------------------------------- plain HTML files


def _read_html(path: str, url: str | None = None) -> Iterator[Item]:
    """One file = one page. Its URL, which its id, its split and its relative links follow: the canonical
    URL the page declares, else `url` (from --base-url or file://, fixed at launch by html_file_urls), else
    its file:// URL."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        body = read_capped(raw, MAX_RECORD_BYTES)
    if body is None:  # as a WARC record over the cap: skipped, counted, never held whole
        yield Count(counters.READ_RECORD_OVER_SIZE_CAP)
        return
    page_url = declared_url(body) or url or file_url(path)
    yield Page(url=page_url, source="html", body=body, charset=None)
