"""A fuzz campaign over the parsers and filters that read untrusted bytes: `minimize`, `clean_html` and
`clean_page`, the WARC/ARC/dump readers and image decoding + cropping.

The readers also meet files with a ground truth (targets warc_oracle and dump_oracle): N known records, one
of them damaged (header cut, Content-Length off by 1-7, a decoding bomb, WARC text inside a damaged page,
a bad NDJSON line). Every undamaged record must come out once with its own URL and bytes, and nothing that
is not in the file's ground truth: a violation is a failure like a crash (`crash:OracleViolation`).

Inputs are generated and mutated from a seed corpus (the pages and WARC files in ../shared/data, the
sample corpus's records, and hand-made hostile cases) by a seeded generator: the same --seed gives the same
inputs; the `grammar` target builds pages from an HTML grammar instead (`grammar_html`). Each input runs
under a time bound (SIGALRM) and its peak memory is read from the kernel (VmHWM, reset before each input).
A crash is any exception that is not a documented error type (MinimizeError for `minimize`,
ImageDecodeError for decoding; the readers and C4 cleaning document none). Prints counts per target, keeps
each crashing input under --out, ends with a JSON line, and exits 1 on any crash, hang or input over the
memory bound.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--workers 2] [--seed 0] [--out /tmp/cm3-fuzz]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

TARGETS = ("html", "grammar", "warc", "arc", "dump", "image", "warc_oracle", "dump_oracle")
WEIGHTS = (0.40, 0.12, 0.12, 0.05, 0.05, 0.16, 0.07, 0.03)
TOKENS = [
    b"<meta charset=idna>",
    b"<meta charset=punycode>",
    b"<meta charset=rot13>",
    b"<meta charset=utf-7>",
    b"<meta charset=x-undefined>",
    b"&#0;",
    b"&#x1;",
    b"&#xD800;",
    b"[1]",
    b"[edit]",
    b"[citation needed]",
    b"<",
    b">",
    b"</div>",
    b"<div>" * 50,
    b"<![CDATA[",
    b"]]>",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"<img src=data:image/png;base64,AAAA>",
    b'<base href="javascript:x">',
    b"{",
    b"lorem ipsum",
    b"WARC/1.0\r\n",
    b"Content-Length: 99999999999\r\n",
    b"\r\n\r\n",
    b"\x1f\x8b\x08",
    b"filedesc://",
]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@functools.cache
def seed_corpus() -> dict[str, list[bytes]]:
    """Real material per target (a few hundred KB to a few MB), loaded once per worker process."""
    from image_tokenizer.train_small_vqgan import skimage_rgb
    from pipeline.cli import sample_inputs
    from pipeline.readers import ImageRecord, Page, read_input

    pages = [p.read_bytes() for p in sorted((SHARED / "boilerplate-dev" / "pages").glob("*.html"))]
    records = [item for path in sample_inputs() for item in read_input(path)]
    pages += [r.body for r in records if isinstance(r, Page)]
    images = [r.data for r in records if isinstance(r, ImageRecord)]
    for name in ("astronaut", "coffee"):
        for fmt in ("PNG", "GIF", "WEBP", "BMP"):
            stream = io.BytesIO()
            skimage_rgb(name)[0].resize((64, 48)).save(stream, fmt)
            images.append(stream.getvalue())
    warcs = [p.read_bytes() for p in sorted((SHARED / "warc").glob("*.warc*"))]
    warcs += [Path(path).read_bytes() for path in sample_inputs() if path.endswith(".warc.gz")]
    arcs = [p.read_bytes() for p in sorted((SHARED / "warc").glob("*.arc*"))]
    dumps = [Path(path).read_bytes() for path in sample_inputs() if path.endswith(".tar.gz")]
    lines = b"\n".join(
        json.dumps(
            {"url": f"https://w.example/{i}", "article_body": {"html": p[:4000].decode("utf-8", "replace")}}
        ).encode()
        for i, p in enumerate(pages[:20])
    )
    dumps.append(lines)
    return {"html": pages, "grammar": [], "warc": warcs, "arc": arcs or warcs, "dump": dumps, "image": images}


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """1-4 mutations: bit flips, byte runs inserted/deleted/duplicated, truncation, splicing, tokens."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[position:position] = rng.randbytes(rng.randint(1, 64))
        elif kind == 2:
            del data[position : position + rng.randint(1, 4096)]
        elif kind == 3 and data:
            start = rng.randrange(len(data))
            chunk = data[start : start + rng.randint(1, 2048)]
            data[position:position] = chunk * rng.randint(1, 8)
        elif kind == 4:
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 5:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data[position:] = other[cut:]
        else:
            data[position:position] = rng.choice(TOKENS)
    return bytes(data)


def html_input(rng: random.Random, corpus: list[bytes]) -> bytes:
    page = rng.choice(corpus)
    if len(page) > 20_000 and rng.random() < 0.8:  # a window of a page: faster, and still real markup
        start = rng.randrange(len(page) - 10_000)
        page = page[start : start + rng.randint(2_000, 20_000)]
    return mutate(page, rng, corpus)


class OracleViolation(Exception):
    """A reader lost an undamaged record, read one twice or wrongly, or made up one."""


@dataclass(frozen=True)
class OracleCase:
    """A file with its ground truth: `truth` is URL -> bytes of every real record (the page body or image
    data); `required` the URLs that must be read (the undamaged ones the damage cannot hide); `damaged` the
    one damaged record's URL (it may be read or not, but only under its own URL)."""

    data: bytes
    suffix: str
    truth: dict
    required: frozenset
    damaged: str
    damage: str


FAKE_SITE = "https://fake.example/"


def _fake_records(rng: random.Random) -> bytes:
    """WARC text a page may hold: an image record for a victim URL and a page of another site."""
    from pipeline.warc_writer import http_response, warc_record

    n = rng.randrange(1_000_000)
    image = warc_record(f"{FAKE_SITE}logo{n}.png", b"\x89PNG fake", "resource", "image/png")
    page = warc_record(f"{FAKE_SITE}page{n}", http_response(b"<p>not this site's</p>", "text/html"))
    return gzip.decompress(image) + gzip.decompress(page)


def _oracle_body(rng: random.Random, i: int, fakes: bool) -> bytes:
    words = " ".join(
        rng.choice(["alpha", "beta", "WARC/1.0", "Content-Length:", "\r\n", "x" * 40, "\n\n"])
        for _ in range(rng.randint(1, 120))
    )
    inner = _fake_records(rng) if fakes else b""
    return b"<html><p>%d %s</p><pre>%s</pre><p>end</p></html>" % (i, words.encode(), inner)


@functools.cache
def _bomb(encoding: str) -> bytes:
    """A Content-Encoding payload that decodes to 96 MiB of zeros, 1.5x the reader's record size cap."""
    import brotli

    zeros = bytes(1 << 20)
    if encoding == "br":
        compressor = brotli.Compressor(quality=1)
        return b"".join(compressor.process(zeros) for _ in range(96)) + compressor.finish()
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=1, mtime=0) as out:
        for _ in range(96):
            out.write(zeros)
    return stream.getvalue()


def _with_length(record: bytes, length: int) -> bytes:
    head, sep, rest = record.partition(b"\r\n\r\n")
    lines = [
        line if not line.startswith(b"Content-Length:") else b"Content-Length: %d" % length
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + sep + rest


def warc_oracle_case(rng: random.Random) -> OracleCase:
    """A WARC of 3-12 known page and image records (plain, or one gzip member per record) with exactly one
    damaged: its header cut, its Content-Length 1-7 bytes off, a decoding bomb for its body, or fake WARC
    records inside its page while the record is cut short or its length absurd."""
    from pipeline.readers import LENGTH_SLACK_BYTES
    from pipeline.warc_writer import http_response, warc_record

    n = rng.randint(3, 12)
    damaged = rng.randrange(n)
    damage = rng.choice(["cut_header", "length", "bomb", "fake_cut", "fake_length"])
    gzipped = rng.random() < 0.5
    truth, records = {}, []
    for i in range(n):
        url = f"https://site{i}.example/{rng.randrange(10**6)}"
        if rng.random() < 0.25 and not (i == damaged and damage.startswith(("fake", "bomb"))):
            body = rng.randbytes(rng.randint(1, 300))
            record = warc_record(url, body, "resource", "image/png")
        else:
            body = _oracle_body(rng, i, fakes=i == damaged and damage.startswith("fake"))
            if i == damaged and damage == "bomb":
                encoding = rng.choice(["br", "gzip"])
                block = (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                    f"Content-Encoding: {encoding}\r\nContent-Length: {len(_bomb(encoding))}\r\n\r\n"
                ).encode() + _bomb(encoding)
            else:
                block = http_response(body, "text/html")
            record = warc_record(url, block)
        truth[url] = body
        records.append(gzip.decompress(record))
    urls = list(truth)
    record = records[damaged]
    header_end = record.index(b"\r\n\r\n") + 4
    length = int(record[:header_end].split(b"Content-Length: ")[1].split(b"\r\n")[0])
    extent_end = None  # where the damaged record's declared block ends, in the plain file
    if damage == "cut_header":
        records[damaged] = record[: rng.randrange(1, header_end - 1)]
    elif damage in ("length", "fake_length"):
        error = rng.choice([-7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7])
        declared = length + error if damage == "length" else rng.choice([length * 10, 10**9])
        records[damaged] = _with_length(record, declared)
        extent_end = header_end + declared
    elif damage == "fake_cut":
        records[damaged] = record[
            : rng.randrange(header_end + len(record[header_end:]) // 2, len(record) - 4)
        ]
        extent_end = header_end + length
    starts = [sum(map(len, records[:i])) for i in range(n)]
    hidden = set()
    if extent_end is not None and not gzipped:  # a plain file cannot tell records inside the block from text
        floor = starts[damaged] + extent_end - LENGTH_SLACK_BYTES
        hidden = {urls[i] for i in range(damaged + 1, n) if starts[i] < floor}
    if gzipped and damage.startswith(("cut", "fake_cut")) and rng.random() < 0.5:
        members = [gzip.compress(r, mtime=0) for r in records[:damaged]]  # cut the gzip member instead
        member = gzip.compress(record, mtime=0)
        cut = rng.randrange(12, len(member) - 1)
        members += [member[:cut], *(gzip.compress(r, mtime=0) for r in records[damaged + 1 :])]
        data = b"".join(members)
    else:
        data = b"".join(gzip.compress(r, mtime=0) for r in records) if gzipped else b"".join(records)
    required = frozenset(url for i, url in enumerate(urls) if i != damaged and url not in hidden)
    suffix = ".warc.gz" if gzipped else ".warc"
    return OracleCase(data, suffix, truth, required, urls[damaged], damage)


def dump_oracle_case(rng: random.Random) -> OracleCase:
    """NDJSON articles (bare, gzipped or in a tar.gz of two members) with one bad line: cut JSON, nesting
    deeper than the parser's recursion limit, a lone surrogate in its URL or HTML, or garbage bytes."""
    n = rng.randint(2, 10)
    damaged = rng.randrange(n)
    damage = rng.choice(["cut", "deep", "surrogate_url", "surrogate_html", "garbage"])
    truth, lines = {}, []
    for i in range(n):
        url = f"https://w{i}.example/wiki/{rng.randrange(10**6)}"
        html = _oracle_body(rng, i, fakes=False).decode()
        line = json.dumps({"url": url, "article_body": {"html": html}}).encode()
        if i == damaged:
            if damage == "cut":
                line = line[: rng.randrange(1, len(line) - 1)]
            elif damage == "deep":
                depth = rng.choice([10_000, 200_000])
                line = b'{"url": "%s", "article_body": %s%s}' % (url.encode(), b"[" * depth, b"]" * depth)
            elif damage == "surrogate_url":
                line = line.replace(b".example/", b".example/\\ud800", 1)
            elif damage == "surrogate_html":
                line = line.replace(b"<p>", b"<p>\\udfff", 1)
            else:
                line = rng.randbytes(rng.randint(1, 200)).replace(b"\n", b" ")
        truth[url] = html.encode()
        lines.append(line)
    urls = list(truth)
    layout = rng.choice(["ndjson", "ndjson.gz", "tar.gz"])
    if layout == "tar.gz":
        import tarfile

        split = rng.randint(damaged + 1, n)  # the damaged line in the first member, later ones after it
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w:gz") as tar:
            for name, part in (("a.ndjson", lines[:split]), ("b.ndjson", lines[split:])):
                member = b"\n".join(part) + b"\n"
                info = tarfile.TarInfo(name)
                info.size = len(member)
                tar.addfile(info, io.BytesIO(member))
        data = stream.getvalue()
    else:
        data = b"\n".join(lines) + b"\n"
        data = gzip.compress(data, mtime=0) if layout == "ndjson.gz" else data
    required = frozenset(url for i, url in enumerate(urls) if i != damaged)
    return OracleCase(data, "." + layout, truth, required, urls[damaged], damage)


ORACLES = {"warc_oracle": warc_oracle_case, "dump_oracle": dump_oracle_case}


def check_oracle(case: OracleCase, tmp: str) -> None:
    """Reads the case's file; OracleViolation naming what went wrong."""
    from pipeline.readers import Count, Page, read_input

    path = os.path.join(tmp, "oracle" + case.suffix)
    with open(path, "wb") as stream:
        stream.write(case.data)
    seen = Counter()
    for item in read_input(path):
        if isinstance(item, Count):
            if item.name.startswith("read.unreadable_file"):
                raise OracleViolation(f"{case.damage}: the whole file was lost ({item.name})")
            continue
        data = item.body if isinstance(item, Page) else item.data
        seen[item.url] += 1
        if item.url not in case.truth:
            raise OracleViolation(f"{case.damage}: a record not in the file: {item.url!a}")
        if item.url != case.damaged and data != case.truth[item.url]:
            raise OracleViolation(f"{case.damage}: wrong bytes for {item.url!a}")
    if case.damage == "bomb" and seen[case.damaged]:
        raise OracleViolation("bomb: a body decoded past the record size cap was read")
    if twice := [url for url, k in seen.items() if k > 1]:
        raise OracleViolation(f"{case.damage}: read more than once: {twice}")
    if lost := sorted(case.required - set(seen)):
        raise OracleViolation(f"{case.damage}: undamaged records lost: {lost}")


# grammar_html's vocabulary: real tags by the content they take, and the node kinds a parser treats apart
# fmt: off
_GRAMMAR_BLOCKS = (
    "div p section article main header footer nav aside blockquote figure figcaption form".split()
)
_GRAMMAR_INLINES = "a b i em strong span code small sub sup abbr time label q mark".split()
_GRAMMAR_HEADINGS = "h1 h2 h3 h4 h5 h6".split()
_GRAMMAR_VOIDS = [
    "br", "hr", "wbr", "img", 'img src="/a.png" alt="x"', "input", "meta", "link", "col", "source",
]
_GRAMMAR_ATTRS = [
    'class="nav"', 'class="content"', 'id="comment-7"', 'role="navigation"', "hidden", 'aria-hidden="true"',
    'style="display:none"', 'href="/x"', 'href="javascript:x"', 'href="https://other.example/"', 'lang="en"',
    'itemprop="name"', 'itemscope', 'xmlns:og="http://ogp.me/ns#"', 'xml:lang="de"', 'data-src="/b.jpg"',
    'width="1"', 'src="data:image/png;base64,AAAA"', "a=b=c", '"quoted"="v"', "x:y:z=1",
]
_GRAMMAR_TEXT = [
    "Lorem ipsum dolor sit amet.", "Read more", "Tags:", "© 2021 Example Inc.", "May 3, 2019 | Jane | News",
    "word", " ", "\n\t", "&amp;", "&nbsp;", "&shy;", "&#0;", "&#x1;", "&#xD800;", "&#xFFFE;", "&bogus;",
    "&#99999999;",
    "&lt;script&gt;", "[1]", "ünïcödé ✓", "\u00ad", "<", ">", "&", "Photo: AP",
]
_GRAMMAR_ODD_NODES = [
    "<!-- a comment -->", "<!---->", "<!-- <div> -->", "<?php echo 1; ?>", "<?xml version='1.0'?>",
    "<![CDATA[ x < y ]]>", "<!DOCTYPE html>", "<!doctype foo SYSTEM 'x'>", "<!ELEMENT x>", "<!>", "<?>",
    "<svg:rect/>", "<og:title>t</og:title>", "<x:y>z</x:y>", "</p>", "</table>", "</li></ul>", "<p",
    "<a href='",
    "<div <div>", "</>", "<>", "<\x00div>", "<script>var a = '<p>';</script>", "<style>p{}</style>",
    "<template><p>t</p></template>", "<noscript><p>n</p></noscript>", "<title>in body</title>",
]
# fmt: on


def grammar_html(rng: random.Random, budget: int = 200) -> bytes:
    """A page built from real HTML: random nesting of block, inline, heading, list and table markup with
    attributes the minimizer reads, text with entities, comments, processing instructions, CDATA, namespaced
    and broken tags. Mutating real pages seldom reaches such combinations (a comment inside a table cell right
    after a short line, a `&#xFFFE;` next to an element that empties)."""
    out: list[str] = []
    left = [budget]

    def attrs() -> str:
        return "".join(" " + rng.choice(_GRAMMAR_ATTRS) for _ in range(rng.choice((0, 0, 1, 2))))

    def leaf() -> str:
        kind = rng.random()
        if kind < 0.45:
            return rng.choice(_GRAMMAR_TEXT)
        if kind < 0.65:
            return f"<{rng.choice(_GRAMMAR_VOIDS)}{attrs()}>"
        return rng.choice(_GRAMMAR_ODD_NODES)

    def element(depth: int) -> None:
        left[0] -= 1
        if depth > 12 or left[0] <= 0 or rng.random() < 0.3:
            out.append(leaf())
            return
        kind = rng.random()
        if kind < 0.12:  # a table, its parts sometimes missing or misplaced
            out.append(f"<table{attrs()}>")
            for _ in range(rng.randint(0, 3)):
                out.append(rng.choice(("<tr>", "<tr>", "<tbody><tr>", "<td>", "<caption>")))
                for _ in range(rng.randint(0, 3)):
                    out.append(rng.choice(("<td>", "<th>", "<td colspan=2>")))
                    element(depth + 1)
                    if rng.random() < 0.7:
                        out.append("</td>")
                if rng.random() < 0.7:
                    out.append("</tr>")
            out.append("</table>" if rng.random() < 0.9 else "")
            return
        if kind < 0.22:  # a list (or a definition list)
            tag, item = rng.choice((("ul", "li"), ("ol", "li"), ("dl", "dt"), ("dl", "dd"), ("menu", "li")))
            out.append(f"<{tag}{attrs()}>")
            for _ in range(rng.randint(0, 5)):
                out.append(f"<{item}>")
                element(depth + 1)
                if rng.random() < 0.6:
                    out.append(f"</{item}>")
            out.append(f"</{tag}>")
            return
        tag = rng.choice(
            _GRAMMAR_BLOCKS if kind < 0.6 else _GRAMMAR_INLINES if kind < 0.9 else _GRAMMAR_HEADINGS
        )
        out.append(f"<{tag}{attrs()}>")
        for _ in range(rng.randint(0, 4)):
            element(depth + 1)
        if rng.random() < 0.85:  # sometimes left open, sometimes closed by another tag's end
            out.append(f"</{tag if rng.random() < 0.9 else rng.choice(_GRAMMAR_HEADINGS + _GRAMMAR_BLOCKS)}>")

    if rng.random() < 0.8:
        out.append(rng.choice(("<!DOCTYPE html>", "<?xml version='1.0'?>", "", "<!-- c -->")))
        out.append(f"<html{attrs()}><head><title>{rng.choice(_GRAMMAR_TEXT)}</title>")
        out.append(
            rng.choice(
                ("", '<base href="https://base.example/d/">', '<meta property="og:image" content="/i.png">')
            )
        )
        out.append(f"</head><body{attrs()}>")
    while left[0] > 0:
        element(0)
    return "".join(out).encode("utf-8", "surrogatepass")


def run_target(target: str, data: bytes, tmp: str, case: OracleCase | None = None) -> None:
    """Raises only for a crash (an undocumented exception) or, for an oracle case, an OracleViolation."""
    if case is not None:
        check_oracle(case, tmp)
        return
    if target in ("html", "grammar"):
        from c4_filters import C4Options, clean_html, clean_page
        from html_minimizer import MinimizeError, minimize, prune_empty, replace_images_and_prune

        try:
            minimal = minimize(data, "https://fuzz.example/page")
        except MinimizeError:
            return
        prune_empty(minimal.html)  # minimize's output reads back and prunes (`&#xFFFE;` once made it fail)
        cleaned = clean_html(minimal.html, C4Options())
        clean_page(minimal.html[:20_000])
        if cleaned is not None:
            from c4_filters import span_hashes

            list(span_hashes(cleaned.html))
            # the pipeline's last pass: images that failed go, then elements left empty
            replace_images_and_prune(cleaned.html, {image.src: None for image in minimal.images})
    elif target == "image":
        from image_tokenizer import ImageDecodeError, crop, decode_image

        try:
            crop(decode_image(data), "https://fuzz.example/i.png")
        except ImageDecodeError:
            return
    else:
        from pipeline.readers import read_input

        suffix = {
            "warc": ".warc.gz" if data[:2] == b"\x1f\x8b" else ".warc",
            "arc": ".arc",
            "dump": ".ndjson",
        }
        if target == "dump" and data[:2] == b"\x1f\x8b":
            suffix["dump"] = ".tar.gz"
        path = os.path.join(tmp, "input" + suffix[target])
        with open(path, "wb") as stream:
            stream.write(data)
        for _ in read_input(path):
            pass


def worker(task) -> dict:
    seed, n, time_bound, memory_bound_mb, out = task
    import logging

    logging.disable(logging.CRITICAL)  # the readers log each skipped file; the counts are what matters
    warnings.simplefilter("ignore")  # Pillow warns before it refuses a bomb; the refusal is what counts
    rng = random.Random(seed)
    corpus = seed_corpus()
    signal.signal(signal.SIGALRM, _alarm)
    counts = {t: Counter() for t in TARGETS}
    slowest = 0.0
    peak_mb = 0.0
    with tempfile.TemporaryDirectory(prefix="cm3-fuzz-") as tmp:
        for _ in range(n):
            target = rng.choices(TARGETS, WEIGHTS)[0]
            case = None
            if target in ORACLES:
                case = ORACLES[target](rng)
                data = case.data
            elif target == "html":
                data = html_input(rng, corpus["html"])
            elif target == "grammar":
                data = grammar_html(rng, rng.choice((20, 80, 300)))
            elif target == "dump" and rng.random() < 0.5:
                data = mutate(
                    gzip.compress(rng.choice(corpus["dump"])[:50_000], mtime=0), rng, corpus["dump"]
                )
            else:
                data = mutate(rng.choice(corpus[target]), rng, corpus[target])
            outcome, elapsed, used_mb = bounded_run(
                functools.partial(run_target, target, data, tmp, case), target, data, time_bound, out
            )
            slowest, peak_mb = max(slowest, elapsed), max(peak_mb, used_mb)
            tally(counts[target], outcome, used_mb, memory_bound_mb)
    return {"counts": {t: dict(c) for t, c in counts.items()}, "slowest_s": slowest, "peak_mb": peak_mb}


def bounded_run(
    run, target: str, data: bytes, time_bound: float, out: str
) -> tuple[str | None, float, float]:
    """(outcome, seconds, MB of peak memory over the start) of one input: None, "hang" past `time_bound`
    (SIGALRM), or "crash:<type>" for any exception that escapes `run`; a crashing input and its traceback
    are kept under `out`."""
    base = vm_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, time_bound)
    try:
        run()
        outcome = None
    except Hang:
        outcome = "hang"
    except Exception as error:  # any undocumented exception (or a failed oracle) is what we look for
        outcome = f"crash:{type(error).__name__}"
        name = hashlib.sha256(data).hexdigest()[:16]
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"{target}-{name}.bin").write_bytes(data)
        Path(out, f"{target}-{name}.txt").write_text(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return outcome, time.perf_counter() - started, (vm_kb("VmHWM") - base) / 1024


def tally(counts: Counter, outcome: str | None, used_mb: float, memory_bound_mb: float) -> None:
    counts["inputs"] += 1
    if outcome:
        counts[outcome] += 1
    if used_mb > memory_bound_mb:
        counts["over_memory"] += 1


# ---- hostile config and prompt files: the CLIs' own inputs, checked at their boundary.
# Oracle: an options file is a value or one ValueError line; a prompts file is a run whose every request is
# a record or one error line (exit 0, 1 or 2, one line per event on stderr, never a traceback); both in
# bounded time and memory (the same VmHWM and SIGALRM bounds as the targets above).

HOSTILE_TARGETS = ("options", "prompts")
_HOSTILE_SCALARS = [
    "1e999",
    "-.inf",
    ".nan",
    "0x" + "f" * 64,
    "9" * 5000,
    "'" + "x" * 300_000 + "'",
    "!!binary AAAA",
    "!!python/object/apply:os.system [echo]",
    "!!timestamp 2020-13-45",
    "~",
    "[]",
    "{}",
    "yes",
    "0o777",
    '"\\ud800"',
    '"\\x00"',
    "!!set {a, b}",
    "!!omap [a: 1]",
]
_OPTION_KEYS = ["min_sentences", "max_word_length", "language", "language_id", "max_tags", "max_input_bytes"]


def hostile_options(rng: random.Random) -> bytes:
    """An `--options-file`: alias bombs, deep nesting, huge scalars, duplicate keys, wrong types, tags,
    binary, or a mutation of a valid file."""
    kind = rng.randrange(9)
    if kind == 0:  # a "billion laughs" of random depth and width under c4 or limits
        width, depth = rng.randint(2, 12), rng.randint(2, 12)
        lines = [
            f"{rng.choice(['c4', 'limits'])}:",
            f"  {rng.choice(_OPTION_KEYS)}:",
            "  - &a [" + ",".join(["lol"] * width) + "]",
        ]
        for level in range(1, depth):
            lines.append(
                f"  - &a{level} [" + ",".join([f"*a{level - 1}" if level > 1 else "*a"] * width) + "]"
            )
        return "\n".join(lines).encode()
    if kind == 1:  # nesting, in flow or block style
        n = rng.choice([40, 1000, 100_000])
        if rng.random() < 0.5:
            return ("c4: " + "[" * n + "]" * n).encode()
        return "".join(" " * i + f"k{i}:\n" for i in range(min(n, 2000))).encode()
    if kind == 2:  # a huge or odd scalar for a real key
        return f"{rng.choice(['c4', 'limits'])}:\n  {rng.choice(_OPTION_KEYS)}: {rng.choice(_HOSTILE_SCALARS)}\n".encode()
    if kind == 3:  # a key given twice, at the top or inside
        key = rng.choice(_OPTION_KEYS)
        return f"c4:\n  {key}: 1\n  {key}: 2\nlimits: {{}}\nlimits: {{}}\n".encode()
    if kind == 4:  # wrong types where mappings belong
        return rng.choice(
            [b"c4: [1, 2]", b"limits: text", b"- c4", b"c4: {min_sentences: [1]}", b"42", b"null"]
        )
    if kind == 5:  # binary, NULs, BOMs, invalid UTF-8
        return rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"", b"c4:\x00"]) + rng.randbytes(
            rng.randint(0, 400)
        )
    if kind == 6:  # multi-document, merge keys, anchors on keys, tabs, directives
        return rng.choice(
            [
                b"c4: {}\n---\nc4: {}\n",
                b"base: &b {min_sentences: 1}\nc4:\n  <<: *b\n",
                b"? &k c4\n: {}\n",
                b"c4:\n\tmin_sentences: 1\n",
                b"%YAML 1.1\n---\nc4: {}\n",
                b"%TAG ! tag:x,2000:\n---\nc4: !x {}\n",
            ]
        )
    if kind == 7:  # over the size bound
        return b"c4:\n  language: [" + b"en, " * 400_000 + b"en]\n"
    valid = b"c4:\n  min_sentences: 3\n  language: [en, de]\nlimits:\n  max_tags: 5000\n"
    return mutate(valid, rng, [valid, b"&a *a <<: !!str ~ --- ... | > ? : - [ ] { } , # % @ `"])


def _hostile_value(rng: random.Random):
    return rng.choice(
        [
            "Infinity",
            "-Infinity",
            "NaN",
            "1e999",
            "1" + "0" * 5000,
            '"\\ud800"',
            '"\\udfff x"',
            "[" * 3000 + "]" * 3000,
            "10" + "0" * 5,
            "-1",
            "true",
            "null",
            '"/dev/zero"',
            "[1.5]",
            '"' + "x" * 100_000 + '"',
            '{"a": ' * 40 + "1" + "}" * 40,
            "[" + ", ".join(["1"] * 100_000) + "]",
        ]
    )


def hostile_prompts(rng: random.Random, special: list[str]) -> bytes:
    """A `--prompts` file: real requests with fields replaced by hostile values (non-finite numbers,
    surrogates, nesting, huge numbers and sizes, special files as images), broken JSON, binary."""
    from model.generate_cli import MODE_EXAMPLES

    lines = []
    for _ in range(rng.randint(1, 4)):
        request = dict(rng.choice(list(MODE_EXAMPLES.values())))
        if "image" in request and rng.random() < 0.5:  # real codes: the fields after them are read too
            request = {key: value for key, value in request.items() if key != "image"}
            request["codes"] = [i % 16 for i in range(256)]
        line = json.dumps(request)
        kind = rng.randrange(6)
        if kind == 0:
            field = rng.choice(["samples", "top", "codes", "span", "size_hint", "text", "html", "candidates"])
            line = line[:-1] + f', "{field}": {_hostile_value(rng)}}}'
        elif kind == 1:
            line = json.dumps({**request, "image": rng.choice(special)})
        elif kind == 2:
            line = json.dumps(
                {**request, "samples": rng.choice([10**6, 2**63, 257, 0]), "top": rng.choice([1, 10**9])}
            )
        elif kind == 3:
            line = mutate(line.encode(), rng, [line.encode()]).decode("utf-8", "surrogateescape")
        elif kind == 4:
            line = rng.choice(["not json", "[1, 2]", '"a"', "{", '{"mode": "continue", "html": "\\ud800"}'])
        lines.append(line)
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    return data if rng.random() < 0.95 else data + rng.randbytes(16)


def tiny_checkpoint(directory: str) -> str:
    """An untrained tiny model, written by the checkpoint writer: the prompts target runs the real CLI."""
    import torch

    from image_tokenizer import load_vqgan
    from model import CM3Config, CM3Tokenizer, CM3Transformer
    from model.checkpoint import write_model_files

    torch.set_num_threads(1)
    tok = CM3Tokenizer.train(
        ["<p>The cat sat on the mat.</p>"] * 8, vocab_size=300, n_embed=load_vqgan().n_embed
    )
    cfg = CM3Config(
        tok.vocab_size, d_model=32, n_layers=1, n_heads=2, d_ffn=64, max_seq_len=320, pad_id=tok.pad_id
    )
    torch.manual_seed(0)
    write_model_files(directory, CM3Transformer(cfg).state_dict(), cfg, tok)
    return directory


def run_hostile(target: str, data: bytes, tmp: str, checkpoint: str) -> None:
    """Raises (AssertionError or the exception that escaped) when the oracle above does not hold."""
    import contextlib

    path = os.path.join(tmp, "hostile")
    with open(path, "wb") as stream:
        stream.write(data)
    if target == "options":
        from model.config import TrainConfig
        from pipeline.cli import rule_options

        for load in (lambda: rule_options(path, None), lambda: TrainConfig.load(path)):
            try:
                load()
            except ValueError as error:
                assert "\n" not in str(error) and len(str(error)) < 1000, str(error)[:2000]
        return
    from model.generate_cli import main

    err = io.StringIO()
    out = os.path.join(tmp, "out")
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        argv = [checkpoint, "--prompts", path, "--out", out, "--overwrite", "--max-new-tokens", "4"]
        code = main([*argv, "--num-beams", "2"])
    lines = err.getvalue().splitlines()
    assert code in (0, 1, 2) and "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
    assert all(line.startswith(("cm3-generate", "[")) for line in lines), err.getvalue()[-2000:]
    if code != 2:
        records = Path(out, "results.jsonl").read_text(encoding="utf-8").splitlines()
        requests = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        assert len(records) == len(requests) and (code == 1) == any("error" in json.loads(r) for r in records)


def hostile_worker(task) -> dict:
    """`n` hostile files of each kind, under the time and memory bounds of `worker`."""
    seed, n, time_bound, memory_bound_mb, out = task
    import logging

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _alarm)
    counts = {t: Counter() for t in HOSTILE_TARGETS}
    slowest = peak_mb = 0.0
    with tempfile.TemporaryDirectory(prefix="cm3-fuzz-hostile-") as tmp:
        checkpoint = tiny_checkpoint(os.path.join(tmp, "ckpt"))
        special = ["/dev/zero", "/dev/urandom", tmp, os.path.join(tmp, "fifo"), "../" * 40 + "etc/shadow"]
        os.mkfifo(special[3])
        for i in range(2 * n):
            target = HOSTILE_TARGETS[i % 2]
            data = hostile_options(rng) if target == "options" else hostile_prompts(rng, special)
            outcome, elapsed, used_mb = bounded_run(  # AssertionError: the oracle failed
                functools.partial(run_hostile, target, data, tmp, checkpoint), target, data, time_bound, out
            )
            slowest, peak_mb = max(slowest, elapsed), max(peak_mb, used_mb)
            tally(counts[target], outcome, used_mb, memory_bound_mb)
    return {"counts": {t: dict(c) for t, c in counts.items()}, "slowest_s": slowest, "peak_mb": peak_mb}


def hostile_campaign(files: int, seed: int, time_bound: float, memory_bound_mb: float, out: str) -> dict:
    """`files` hostile options files and as many prompts files, in one spawned process."""
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(hostile_worker, ((seed, files, time_bound, memory_bound_mb, out),))
    result["failures"] = sum(n for c in result["counts"].values() for k, n in c.items() if k != "inputs")
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def campaign(
    inputs: int, workers: int, seed: int, time_bound: float, memory_bound_mb: float, out: str
) -> dict:
    chunk = 500
    tasks = [
        (seed * 1_000_003 + i, min(chunk, inputs - i * chunk), time_bound, memory_bound_mb, out)
        for i in range((inputs + chunk - 1) // chunk)
    ]
    totals = {t: Counter() for t in TARGETS}
    slowest = peak = 0.0
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=20) as pool:
        for done, result in enumerate(pool.imap_unordered(worker, tasks), 1):
            for target, counts in result["counts"].items():
                totals[target].update(counts)
            slowest, peak = max(slowest, result["slowest_s"]), max(peak, result["peak_mb"])
            if done % 20 == 0:
                print(
                    f"  {done * chunk:,} inputs, {time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    failures = sum(n for c in totals.values() for k, n in c.items() if k != "inputs")
    return {
        "inputs": sum(c["inputs"] for c in totals.values()),
        "per_target": {t: dict(c) for t, c in totals.items()},
        "failures": failures,
        "slowest_input_s": round(slowest, 3),
        "peak_mb_per_input": round(peak, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-bound", type=float, default=5.0, help="seconds per input before it is a hang")
    parser.add_argument("--memory-bound-mb", type=float, default=1024.0, help="peak RSS growth per input")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "cm3-fuzz"))
    parser.add_argument(
        "--hostile-files", type=int, default=0, help="also this many hostile options and prompts files each"
    )
    args = parser.parse_args()
    result = campaign(args.inputs, args.workers, args.seed, args.time_bound, args.memory_bound_mb, args.out)
    if args.hostile_files:
        hostile = hostile_campaign(
            args.hostile_files, args.seed, args.time_bound, args.memory_bound_mb, args.out
        )
        print(f"hostile files in {hostile['seconds']}s: {hostile['counts']}")
        result["hostile_files"] = hostile
        result["failures"] += hostile["failures"]
    print(f"{result['inputs']:,} inputs in {result['seconds']}s, seed {args.seed}")
    print(f"{'target':<8}{'inputs':>9}  failures")
    for target, counts in result["per_target"].items():
        failures = {k: n for k, n in counts.items() if k != "inputs"}
        print(f"{target:<8}{counts.get('inputs', 0):>9}  {failures or 'none'}")
    print(
        f"slowest input {result['slowest_input_s']}s (bound {args.time_bound}s); largest peak memory growth "
        f"of one input {result['peak_mb_per_input']} MB (bound {args.memory_bound_mb} MB)"
    )
    if result["failures"]:
        print(f"crashing inputs and tracebacks: {args.out}")
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
