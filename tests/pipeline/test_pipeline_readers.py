"""Readers: real WARC files (including the broken ones), ARC, Wikipedia dumps, HTML files, hostile bytes."""

import gzip
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.readers import Count, ImageRecord, Page, input_kind, read_input
from pipeline.warc_writer import http_response, warc_record

SAMPLE = Path(__file__).resolve().parents[2] / "pipeline" / "data" / "sample_corpus"


def summarize(path) -> tuple[list, list, Counter]:
    pages, images, counts = [], [], Counter()
    for item in read_input(str(path)):
        if isinstance(item, Page):
            pages.append(item)
        elif isinstance(item, ImageRecord):
            images.append(item)
        else:
            assert isinstance(item, Count)
            counts[item.name] += item.n
    return pages, images, counts


@pytest.mark.parametrize(
    "name",
    [
        "example.warc",
        "example.warc.gz",
        "example-bad-non-chunked.warc.gz",
        "example-wget-bad-target-uri.warc.gz",
    ],
)
def test_real_warc_files_give_the_example_page(shared_dir, name):
    pages, _, counts = summarize(shared_dir / "data" / "warc" / name)
    assert [p.url for p in pages] == ["http://example.com/"]  # <> around the wget target URI stripped
    assert b"Example Domain" in pages[0].body  # gzip content-encoding decoded
    assert counts["read.pages.warc"] == 1


def test_charset_comes_from_the_http_header(shared_dir):
    pages, _, _ = summarize(shared_dir / "data" / "warc" / "example-iana.org-chunked.warc")
    assert pages[0].url == "http://www.iana.org/" and pages[0].charset.lower() == "utf-8"
    assert pages[0].body.rstrip().endswith(b"</html>")  # chunked transfer encoding decoded


def test_truncated_warc_is_counted_and_earlier_records_kept(shared_dir):
    pages, _, counts = summarize(shared_dir / "data" / "warc" / "example-trunc.warc")
    assert len(pages) == 1
    assert counts["read.broken_or_truncated_record"] == 1


def test_resource_records_images_and_pages(shared_dir):
    _, images, _ = summarize(shared_dir / "data" / "warc" / "example-space-in-target-uri.warc.gz")
    assert [i.url for i in images] == ["file:///example with spaces.png"]
    pages, _, _ = summarize(shared_dir / "data" / "warc" / "example-resource.warc.gz")
    assert [p.charset for p in pages] == ["utf-8"]


def test_broken_record_in_the_middle_is_skipped_and_the_rest_read(tmp_path):
    good = warc_record("https://a.example/1", http_response(b"<html><p>one</p></html>", "text/html"))
    good2 = warc_record("https://a.example/2", http_response(b"<html><p>two</p></html>", "text/html"))
    broken = gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 9999\r\n\r\nshort", mtime=0)
    path = tmp_path / "mixed.warc.gz"
    path.write_bytes(good + broken + b"\x1f\x8b\x08garbage" + good2)
    pages, _, counts = summarize(path)
    assert [p.url for p in pages] == ["https://a.example/1", "https://a.example/2"]
    assert counts["read.broken_or_truncated_record"] >= 1


def test_plain_warc_with_garbage_between_records(tmp_path):
    one = gzip.decompress(warc_record("https://a.example/1", http_response(b"<p>1</p>", "text/html")))
    two = gzip.decompress(warc_record("https://a.example/2", http_response(b"<p>2</p>", "text/html")))
    path = tmp_path / "plain.warc"
    path.write_bytes(one + b"WARC/1.0\r\nnot a header\r\n\r\n\x00\x01\x02" + two)
    pages, _, counts = summarize(path)
    assert [p.url for p in pages] == ["https://a.example/1", "https://a.example/2"]
    assert counts["read.broken_or_truncated_record"] == 1


@pytest.mark.parametrize("name", ["junk.warc", "junk.warc.gz", "junk.arc.gz", "junk.tar.gz", "junk.ndjson"])
def test_garbage_files_are_counted_not_fatal(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)
    pages, images, counts = summarize(path)
    assert not pages and not images
    assert sum(n for k, n in counts.items() if k.startswith("read.") and "files" not in k) >= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), flips=st.lists(st.integers(0, 4000), max_size=5))
def test_damaged_sample_warc_never_raises(tmp_path_factory, cut, flips):
    data = bytearray((SAMPLE / "news.warc.gz").read_bytes()[: 4000 + cut * 50])
    for position in flips:
        if position < len(data):
            data[position] ^= 0xFF
    path = tmp_path_factory.mktemp("warc") / "damaged.warc.gz"
    path.write_bytes(bytes(data))
    pages, _, counts = summarize(path)
    assert all(p.url.startswith("https://") for p in pages)
    assert counts["read.files.warc"] == 1


def test_arc_files(tmp_path):
    page = http_response(b"<html><body><p>Arc page.</p></body></html>", "text/html; charset=iso-8859-1")
    image = http_response(b"\x89PNG fake", "image/png")
    arc = (
        b"filedesc://x.arc 0.0.0.0 20240101000000 text/plain 0\n\n"
        + f"http://arc.example/ 1.2.3.4 20240101000000 text/html {len(page)}\n".encode()
        + page
        + b"\n"
        + f"http://arc.example/a.png 1.2.3.4 20240101000000 image/png {len(image)}\n".encode()
        + image
        + b"\n"
    )
    (tmp_path / "a.arc.gz").write_bytes(gzip.compress(arc, mtime=0))
    pages, images, _ = summarize(tmp_path / "a.arc.gz")
    assert [(p.url, p.charset) for p in pages] == [("http://arc.example/", "iso-8859-1")]
    assert [i.url for i in images] == ["http://arc.example/a.png"]
    (tmp_path / "t.arc").write_bytes(arc[:-40])  # truncated record: counted
    pages, _, counts = summarize(tmp_path / "t.arc")
    assert len(pages) == 1 and counts["read.broken_or_truncated_record"] == 1


def test_wikipedia_dump_sample_and_bad_lines(tmp_path):
    pages, _, counts = summarize(SAMPLE / "enwiki-sample.ndjson.tar.gz")
    assert len(pages) == 8 and all(p.source == "wikipedia" for p in pages)
    assert all(p.url.startswith("https://en.wikipedia.org/wiki/") for p in pages)
    assert counts["read.bad_wikipedia_line"] == 1
    lines = [json.dumps({"url": "https://w.example/A", "article_body": {"html": "<p>A</p>"}}), "[1,2]", "{}"]
    data = ("\n".join(lines) + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("x.ndjson")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "dump.tar.gz").write_bytes(buffer.getvalue())
    pages, _, counts = summarize(tmp_path / "dump.tar.gz")
    assert [p.url for p in pages] == ["https://w.example/A"]
    assert counts["read.bad_wikipedia_line"] == 2
    (tmp_path / "cut.tar.gz").write_bytes(buffer.getvalue()[:-30])
    _, _, counts = summarize(tmp_path / "cut.tar.gz")
    assert counts["read.broken_or_truncated_record"] == 1


def test_html_files_and_kinds(tmp_path):
    (tmp_path / "a.html").write_bytes(b"<html><p>x</p></html>")
    pages, _, _ = summarize(tmp_path / "a.html")
    assert pages[0].source == "html" and pages[0].url.endswith("a.html")
    assert input_kind("gs://b/x.warc.gz") == "warc"
    assert input_kind("x.arc") == "arc"
    assert input_kind("enwiki_0.ndjson.tar.gz") == "wikipedia"
    with pytest.raises(ValueError):
        input_kind("x.pdf")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    assert list(read_input(str(tmp_path / "notes.pdf"))) == [Count("read.skipped_unknown_file_type")]
    (tmp_path / "folder.warc").mkdir()
    assert Count("read.unreadable_file.warc") in list(read_input(str(tmp_path / "folder.warc")))


def test_limit_counts_pages_over_the_limit():
    items = list(read_input(str(SAMPLE / "news.warc.gz"), limit=3))
    assert sum(isinstance(i, Page) for i in items) == 3
    assert sum(i.n for i in items if isinstance(i, Count) and i.name == "read.pages_over_limit") > 0
