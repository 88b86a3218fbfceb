"""Readers on tiny hostile inputs: memory bounded by the record size cap, time linear in the bytes read, one
bad line or record costs only itself."""

import gzip
import io
import json
import subprocess
import sys
import tarfile
import time
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import brotli
import pytest

from pipeline.readers import Count, Page, declared_url, read_input
from pipeline.warc_writer import http_response, warc_record

REPO = Path(__file__).resolve().parents[2]


def summarize(path) -> tuple[list[str], Counter]:
    urls, counts = [], Counter()
    for item in read_input(str(path)):
        if isinstance(item, Page):
            urls.append(item.url)
        elif isinstance(item, Count):
            counts[item.name] += item.n
    return urls, counts


def encoded_bomb(encoding: str, size: int) -> bytes:
    """`size` zero bytes compressed with a Content-Encoding, made in 1 MiB steps (never held whole)."""
    zeros = bytes(1 << 20)
    if encoding == "br":
        compressor = brotli.Compressor(quality=1)
        parts = [compressor.process(zeros) for _ in range(size >> 20)]
        return b"".join(parts) + compressor.finish()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as stream:
        for _ in range(size >> 20):
            stream.write(zeros)
    return out.getvalue()


def bomb_response(payload: bytes, encoding: str) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        f"Content-Encoding: {encoding}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


PEAK_GROWTH = """
import json, resource, sys
from collections import Counter
from pipeline.readers import Count, Page, read_input
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
urls, counts = [], Counter()
for item in read_input(sys.argv[1]):
    if isinstance(item, Page):
        urls.append(item.url)
    elif isinstance(item, Count):
        counts[item.name] += item.n
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"growth_mb": growth // 1024, "urls": urls, "counts": counts}))
"""


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_a_content_encoding_bomb_is_a_counted_skip_in_bounded_memory(tmp_path, encoding):
    payload = encoded_bomb(encoding, 320 << 20)  # 320 MiB decoded, 5x the record size cap
    assert len(payload) < 2_000_000  # brotli: a few hundred bytes; gzip: about 1.4 MB
    before = warc_record("https://a.example/before", http_response(b"<p>before</p>", "text/html"))
    bomb = warc_record("https://a.example/bomb", bomb_response(payload, encoding))
    after = warc_record("https://a.example/after", http_response(b"<p>after</p>", "text/html"))
    (tmp_path / "bomb.warc.gz").write_bytes(before + bomb + after)
    out = subprocess.run(
        [sys.executable, "-c", PEAK_GROWTH, str(tmp_path / "bomb.warc.gz")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["urls"] == ["https://a.example/before", "https://a.example/after"]
    assert result["counts"]["read.decoded_record_over_size_cap"] == 1
    assert result["growth_mb"] < 200, result  # the 64 MiB cap and its join, not the 320 MiB page


def gzip_of_repeats(unit: bytes, size: int) -> bytes:
    """`size` bytes of `unit` repeated, as gzip members of 1 MiB each (about 1000:1)."""
    member = gzip.compress(unit * ((1 << 20) // len(unit)), mtime=0)
    return member * (size >> 20)


def decode_seconds(data: bytes) -> float:
    """CPU time of the linear baseline: decoding the same gzip members in 64 KiB steps, doing nothing else."""
    started = time.process_time()
    raw = io.BytesIO(data)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    while chunk := decoder.unconsumed_tail or decoder.unused_data or raw.read(1 << 16):
        if decoder.eof:
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        decoder.decompress(chunk, 1 << 16)
    return time.process_time() - started


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "name, unit, size",
    [
        ("lines.arc.gz", b"\n", 30 << 20),
        ("junk.arc.gz", b"x: y\n", 30 << 20),
        ("crlf.warc.gz", b"\r\n", 300 << 20),
    ],
)
def test_short_reads_cost_time_in_the_bytes_read_not_in_the_buffer(tmp_path, name, unit, size):
    """Each short read copied the rest of a 64 KiB buffer, and blank or garbage lines were read one (or 64
    bytes) at a time: a 1 MB .arc.gz of newlines (1 GB of them) took over 300 s, of CRLF 87 s (here, before
    the fix, 900 and 18 times the baseline's time). Reading costs a small multiple of decoding the bytes."""
    path = tmp_path / name
    path.write_bytes(gzip_of_repeats(unit, size))
    baseline = decode_seconds(path.read_bytes())
    started = time.process_time()
    items = list(read_input(str(path)))
    seconds = time.process_time() - started
    assert seconds < 10 * baseline + 1, (seconds, baseline)
    assert not any(isinstance(item, Page) for item in items)


@pytest.mark.timeout(120)
def test_declared_url_is_linear_in_the_number_of_attributes():
    def page(n: int) -> bytes:
        attributes = b" ".join(b"a%d=1" % i for i in range(n))
        return b'<html><head><meta %s><link rel="canonical" href="https://a.example/x"></head></html>' % (
            attributes
        )

    seconds = {}
    for n in (15_000, 60_000):
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            assert declared_url(page(n)) == "https://a.example/x"
            best = min(best, time.process_time() - started)
        seconds[n] = best
    assert seconds[60_000] < 8 * seconds[15_000] + 0.05, seconds  # libxml2 took 21 s on 60k attributes


def test_declared_url_ignores_comments_and_scripts_and_keeps_the_first_of_repeated_attributes():
    hidden = b'<!-- <link rel=canonical href="https://evil.example/"> --><script>"<link rel=canonical '
    hidden += b'href=https://evil.example/2>"</script>'
    body = hidden + b'<link href="https://a.example/&amp;x" href="https://b.example/" REL="Canonical">'
    assert declared_url(body) == "https://a.example/&x"
    assert declared_url(b'<meta content="https://a.example/>" name="og:url">') == "https://a.example/>"
    assert declared_url(b"<link rel=canonical href='http://[::1'>") is None


def wiki_line(name: str) -> bytes:
    return json.dumps(
        {"url": f"https://w.example/{name}", "article_body": {"html": f"<p>{name}</p>"}}
    ).encode()


def test_an_ndjson_line_over_the_cap_is_skipped_and_counted_without_holding_it(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.readers.MAX_RECORD_BYTES", 1 << 20)
    long_line = b'{"url": "https://w.example/long", "article_body": {"html": "' + b"x" * (30 << 20) + b'"}}'
    (tmp_path / "d.ndjson").write_bytes(b"\n".join([wiki_line("A"), long_line, wiki_line("B")]))
    tracemalloc.start()
    try:
        urls, counts = summarize(tmp_path / "d.ndjson")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert urls == ["https://w.example/A", "https://w.example/B"]
    assert counts["read.record_over_size_cap"] == 1
    assert peak < 8 << 20  # read in 64 KiB chunks, never the 30 MiB line


def test_an_html_file_over_the_cap_is_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.readers.MAX_RECORD_BYTES", 1_000)
    (tmp_path / "big.html").write_bytes(b"<p>" + b"x" * 5_000 + b"</p>")
    (tmp_path / "small.html").write_bytes(b"<p>x</p>")
    assert summarize(tmp_path / "big.html") == (
        [],
        Counter({"read.files.html": 1, "read.record_over_size_cap": 1}),
    )
    assert len(summarize(tmp_path / "small.html")[0]) == 1


def test_a_bad_ndjson_line_costs_only_itself(tmp_path):
    """Deep nesting raised RecursionError and a lone surrogate UnicodeEncodeError, which ended the whole file
    (later tar members too) as one `read.unreadable_file`."""
    deep = b'{"url": "https://w.example/deep", "article_body": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    surrogate = b'{"url": "https://w.example/s", "article_body": {"html": "<p>\\ud800</p>"}}'
    surrogate_url = b'{"url": "https://w.example/\\udfff", "article_body": {"html": "<p>u</p>"}}'
    first = b"\n".join([wiki_line("A"), deep, wiki_line("B"), surrogate, surrogate_url, wiki_line("C")])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("1.ndjson", first), ("2.ndjson", wiki_line("D"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "dump.tar.gz").write_bytes(buffer.getvalue())
    urls, counts = summarize(tmp_path / "dump.tar.gz")
    assert urls == [f"https://w.example/{name}" for name in "ABCD"]
    assert counts["read.bad_wikipedia_line"] == 3 and counts["read.unreadable_file.wikipedia"] == 0
