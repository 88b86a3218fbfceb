"""Readers on damaged files: every record that can still be found is read, every loss is counted by reason."""

import gzip
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.readers import Count, ImageRecord, Page, read_input
from pipeline.warc_writer import http_response, warc_record


def summarize(path) -> tuple[list[str], Counter]:
    urls, counts = [], Counter()
    for item in read_input(str(path)):
        if isinstance(item, Page):
            urls.append(item.url)
        elif isinstance(item, Count):
            counts[item.name] += item.n
    return urls, counts


def page_records(n: int = 10) -> list[bytes]:
    """n gzip members, one WARC response record each, holding a small HTML page."""
    return [
        warc_record(
            f"https://a.example/{i}", http_response(f"<html><p>page {i}</p></html>".encode(), "text/html")
        )
        for i in range(n)
    ]


def with_content_length(record: bytes, length: int) -> bytes:
    return re.sub(rb"Content-Length: \d+\r\n\r\n", b"Content-Length: %d\r\n\r\n" % length, record, count=1)


ALL_URLS = [f"https://a.example/{i}" for i in range(10)]


@pytest.mark.parametrize("length", [10**12, 2_000, 50_000_000])
def test_an_absurd_content_length_in_gzip_members_loses_only_its_own_record(tmp_path, length):
    """Gzip member starts are boundaries the writer made: a record starting at one is read even inside a
    damaged record's declared block."""
    plain = [gzip.decompress(r) for r in page_records()]
    plain[3] = with_content_length(plain[3], length)
    (tmp_path / "a.warc.gz").write_bytes(b"".join(gzip.compress(r, mtime=0) for r in plain))
    urls, counts = summarize(tmp_path / "a.warc.gz")
    assert urls == ALL_URLS[:3] + ALL_URLS[4:]
    assert counts["read.broken_or_truncated_record"] == 1
    assert counts["read.record_start_inside_damaged_record"] == 0


@pytest.mark.parametrize("length", [10**12, 2_000, 50_000_000])
def test_an_absurd_content_length_in_a_plain_warc_hides_the_records_inside_its_block(tmp_path, length):
    """In a plain file nothing tells a record inside a damaged record's declared block from page text that
    looks like one: those are skipped and counted, the records after the block read."""
    plain = [gzip.decompress(r) for r in page_records()]
    plain[3] = with_content_length(plain[3], length)
    (tmp_path / "a.warc").write_bytes(b"".join(plain))
    block_start = sum(map(len, plain[:3])) + plain[3].index(b"\r\n\r\n") + 4
    starts = [sum(map(len, plain[:i])) for i in range(len(plain))]
    hidden = [i for i in range(4, len(plain)) if starts[i] < block_start + length - 16]
    urls, counts = summarize(tmp_path / "a.warc")
    assert urls == [url for i, url in enumerate(ALL_URLS) if i != 3 and i not in hidden]
    assert 0 < len(hidden) < 6 if length == 2_000 else len(hidden) == 6
    assert counts["read.broken_or_truncated_record"] == 1
    assert counts["read.record_start_inside_damaged_record"] == len(hidden)


def test_a_record_over_the_size_cap_is_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.readers.MAX_RECORD_BYTES", 1_000)
    records = page_records(3)
    big = warc_record("https://a.example/big", http_response(b"<p>" + b"x" * 5_000 + b"</p>", "text/html"))
    (tmp_path / "big.warc.gz").write_bytes(records[0] + big + records[1] + records[2])
    urls, counts = summarize(tmp_path / "big.warc.gz")
    assert urls == ALL_URLS[:3]
    assert counts["read.record_over_size_cap"] == 1 and counts["read.broken_or_truncated_record"] == 0


def test_a_plain_warc_cut_inside_a_record_is_counted_as_truncated(tmp_path):
    records = [gzip.decompress(r) for r in page_records(6)]
    data = b"".join(records)
    for cut in (len(data) - len(records[-1]) + 40, len(data) - 10):  # in the last record's header, its body
        (tmp_path / "cut.warc").write_bytes(data[:cut])
        urls, counts = summarize(tmp_path / "cut.warc")
        assert urls == ALL_URLS[:5]
        assert counts["read.broken_or_truncated_record"] == 1


def test_a_gzip_warc_cut_inside_a_member_is_counted(tmp_path):
    records = page_records(6)
    data = b"".join(records)
    (tmp_path / "cut.warc.gz").write_bytes(data[: len(data) - len(records[-1]) // 2])
    urls, counts = summarize(tmp_path / "cut.warc.gz")
    assert urls == ALL_URLS[:5]
    assert counts["read.broken_gzip_member"] == 1 and counts["read.broken_or_truncated_record"] == 1
    (tmp_path / "cut.warc.gz").write_bytes(data[: len(data) - len(records[-1]) + 20])  # nothing decodes
    urls, counts = summarize(tmp_path / "cut.warc.gz")
    assert urls == ALL_URLS[:5] and counts["read.broken_gzip_member"] == 1
    (tmp_path / "cut.warc.gz").write_bytes(data[:-3])  # in the gzip trailer: the record is whole
    urls, counts = summarize(tmp_path / "cut.warc.gz")
    assert urls == ALL_URLS[:6] and counts["read.broken_gzip_member"] == 1


ARC_HEAD = b"filedesc://x.arc 0.0.0.0 20240101000000 text/plain 0\n\n"
ARC_URLS = [f"http://arc.example/{i}" for i in range(10)]


def arc_records(n: int = 10) -> list[bytes]:
    """n ARC v1 records (header line, HTTP response, newline) holding a small HTML page each."""
    records = []
    for i in range(n):
        response = http_response(f"<html><p>arc page {i}</p></html>".encode(), "text/html")
        records.append(
            f"http://arc.example/{i} 1.2.3.4 20240101000000 text/html {len(response)}\n".encode()
            + response
            + b"\n"
        )
    return records


def test_arc_resyncs_after_a_garbage_line(tmp_path):
    records = arc_records()
    (tmp_path / "g.arc").write_bytes(
        ARC_HEAD + b"".join(records[:3]) + b"garbage line\n" + b"".join(records[3:])
    )
    urls, counts = summarize(tmp_path / "g.arc")
    assert urls == ARC_URLS
    assert counts["read.broken_or_truncated_record"] == 1


def test_arc_resyncs_after_a_long_stretch_of_garbage_lines(tmp_path):
    """Garbage is skipped a buffer at a time to the next line shaped like a header, across buffer ends."""
    garbage = b"".join(b"junk: %d a b c\n" % i + b"y" * (i % 977) + b"\n" for i in range(3000))
    garbage += b"z" * 200_000 + b" 1.2.3.4 20240101000000 text/html 5\n"  # too long to be a header line
    records = arc_records()
    (tmp_path / "g.arc").write_bytes(ARC_HEAD + records[0] + garbage + b"".join(records[1:]))
    urls, counts = summarize(tmp_path / "g.arc")
    assert urls == ARC_URLS
    assert counts["read.broken_or_truncated_record"] == 1


def test_arc_resyncs_after_a_bad_gzip_member(tmp_path):
    members = [gzip.compress(r, mtime=0) for r in [ARC_HEAD, *arc_records()]]
    members[4] = members[4][:20] + bytes(b ^ 0xFF for b in members[4][20:40]) + members[4][40:]  # record 3
    (tmp_path / "g.arc.gz").write_bytes(b"".join(members))
    urls, counts = summarize(tmp_path / "g.arc.gz")
    assert urls == ARC_URLS[:3] + ARC_URLS[4:]
    assert counts["read.broken_gzip_member"] == 1


@pytest.mark.parametrize("gzipped", [False, True])
def test_arc_absurd_length_loses_only_its_own_record_or_what_its_block_hides(tmp_path, gzipped):
    """As in WARC files: header lines inside a damaged record's declared content are not told from page text
    in a plain file (skipped, counted); a gzip member start is."""
    records = arc_records()
    records[3] = re.sub(rb" \d+\n", b" 999999999999\n", records[3], count=1)
    if gzipped:
        path, data = tmp_path / "a.arc.gz", b"".join(gzip.compress(r, mtime=0) for r in [ARC_HEAD, *records])
    else:
        path, data = tmp_path / "a.arc", ARC_HEAD + b"".join(records)
    path.write_bytes(data)
    urls, counts = summarize(path)
    assert urls == ARC_URLS[:3] + (ARC_URLS[4:] if gzipped else [])
    assert counts["read.broken_or_truncated_record"] == 1
    assert counts["read.record_start_inside_damaged_record"] == (0 if gzipped else 6)


def test_arc_header_lines_inside_a_cut_record_never_become_records(tmp_path):
    fake = b"http://victim.example/logo.png 1.2.3.4 20240101000000 image/png 20\n" + http_response(
        b"x", "image/png"
    )
    page = http_response(b"<html><pre>\n" + fake + b"\n</pre>" + b"x" * 2000 + b"</html>", "text/html")
    poisoned = f"http://arc.example/p 1.2.3.4 20240101000000 text/html {len(page)}\n".encode() + page + b"\n"
    (tmp_path / "p.arc").write_bytes(ARC_HEAD + arc_records(1)[0] + poisoned[:-1000])
    urls, counts = read_all(tmp_path / "p.arc")
    assert urls == ARC_URLS[:1]
    assert counts["read.record_start_inside_damaged_record"] == 1


@pytest.mark.parametrize("gzipped", [False, True])
def test_warc_garbage_after_a_record_loses_no_record(tmp_path, gzipped):
    records = page_records(4) if gzipped else [gzip.decompress(r) for r in page_records(4)]
    garbage = gzip.compress(b"no record here\r\n", mtime=0) if gzipped else b"no record here\r\n"
    path = tmp_path / ("g.warc.gz" if gzipped else "g.warc")
    path.write_bytes(records[0] + records[1] + garbage + records[2] + records[3])
    urls, counts = summarize(path)
    assert urls == ALL_URLS[:4]
    assert counts["read.broken_or_truncated_record"] == 1


PROPERTY_RECORDS = page_records(5)
NORMAL_COUNTS = {"read.files.warc", "read.warc_response", "read.pages.warc"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gzipped=st.booleans(),
    damage=st.sampled_from(["cut", "flip", "insert"]),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    junk=st.binary(min_size=1, max_size=40),
)
def test_damage_anywhere_loses_no_record_before_it_and_a_loss_is_counted(
    tmp_path, gzipped, damage, where, junk
):
    records = PROPERTY_RECORDS if gzipped else [gzip.decompress(r) for r in PROPERTY_RECORDS]
    data = b"".join(records)
    at = int(where * len(data))
    if damage == "cut":
        damaged = data[:at]
    elif damage == "flip":
        damaged = data[:at] + bytes([data[at] ^ (junk[0] or 0xFF)]) + data[at + 1 :]
    else:
        damaged = data[:at] + junk + data[at:]
    path = tmp_path / ("d.warc.gz" if gzipped else "d.warc")
    path.write_bytes(damaged)
    urls, counts = summarize(path)
    assert counts["read.unreadable_file.warc"] == 0  # read_input's catch-all for a reader that raised
    ends = [sum(len(r) for r in records[: i + 1]) for i in range(len(records))]
    assert {url for url, end in zip(ALL_URLS, ends, strict=False) if end <= at} <= set(urls)
    losses = sum(n for name, n in counts.items() if name not in NORMAL_COUNTS)
    if damage == "cut":  # a record cut in two is counted (unless the cut took only its closing line ends)
        start, end = max([0, *[e for e in ends if e <= at]]), min([e for e in ends if e > at], default=at)
        assert not (start < at and data[at:end].strip(b"\r\n")) or losses >= 1
    else:  # every record is read (perhaps with the damage in it: plain WARC has no checksum) or counted
        assert counts["read.warc_response"] == len(records) or losses >= 1


def plain_record(
    url: str, block: bytes, warc_type: str = "response", content_type: str | None = None
) -> bytes:
    return gzip.decompress(warc_record(url, block, warc_type, content_type))


def poisoned_page() -> bytes:
    """A page whose text is two WARC records: an image for a victim's URL and a page of another site."""
    fake_image = plain_record(
        "https://victim.example/logo.png", b"\x89PNG not the victim's", "resource", "image/png"
    )
    fake_page = plain_record("https://other.example/", http_response(b"<p>not theirs</p>", "text/html"))
    body = (
        b"<html><p>before</p><pre>"
        + fake_image
        + fake_page
        + b"</pre><p>after</p>"
        + b"x" * 2000
        + b"</html>"
    )
    return plain_record("https://a.example/poisoned", http_response(body, "text/html"))


def read_all(path) -> tuple[list[str], Counter]:
    urls, counts = [], Counter()
    for item in read_input(str(path)):
        if isinstance(item, (Page, ImageRecord)):
            urls.append(item.url)
        elif isinstance(item, Count):
            counts[item.name] += item.n
    return urls, counts


@pytest.mark.parametrize("damage", ["cut", "absurd_length", "cut_gzip_member"])
def test_warc_text_inside_a_damaged_record_never_becomes_a_record(tmp_path, damage):
    good = [
        plain_record(f"https://a.example/{i}", http_response(b"<p>%d</p>" % i, "text/html")) for i in range(2)
    ]
    poisoned = poisoned_page()
    cut = len(poisoned) - 1000  # after the fake records, inside the page
    if damage == "cut":
        path, data = tmp_path / "d.warc", good[0] + poisoned[:cut]
        expected = ["https://a.example/0"]
    elif damage == "absurd_length":
        path, data = tmp_path / "d.warc", good[0] + with_content_length(poisoned, 10**9) + good[1]
        expected = ["https://a.example/0"]  # good[1] lies inside the declared block: not told from page text
    else:
        member = gzip.compress(poisoned, mtime=0)
        path = tmp_path / "d.warc.gz"
        data = (
            gzip.compress(good[0], mtime=0) + member[: len(member) * 3 // 4] + gzip.compress(good[1], mtime=0)
        )
        expected = ["https://a.example/0", "https://a.example/1"]
    path.write_bytes(data)
    urls, counts = read_all(path)
    assert urls == expected
    hidden = 2 + (damage == "absurd_length")  # the two fake records (and good[1] in the declared block)
    assert counts["read.record_start_inside_damaged_record"] == hidden
    assert counts["read.broken_or_truncated_record"] == 1


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_record_cut_inside_its_header_loses_only_itself(tmp_path, gzipped):
    """The cut header used to run on into the next record's, which was then skipped or read under a
    garbage URL."""
    records = [gzip.decompress(r) for r in page_records(6)]
    header_end = records[3].index(b"\r\n\r\n") + 4
    for cut in range(1, header_end):
        damaged = [*records[:3], records[3][:cut], *records[4:]]
        path = tmp_path / ("c.warc.gz" if gzipped else "c.warc")
        path.write_bytes(
            b"".join(gzip.compress(r, mtime=0) for r in damaged) if gzipped else b"".join(damaged)
        )
        urls, counts = summarize(path)
        assert urls == ALL_URLS[:3] + ALL_URLS[4:6], cut
        assert counts["read.broken_or_truncated_record"] == 1, cut


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("error", [-7, -4, -1, 1, 2, 3, 4, 5, 6, 7])
def test_a_content_length_a_few_bytes_off_loses_no_other_record(tmp_path, gzipped, error):
    """A length 5-7 bytes too long ate the next record's `WARC/1.`, and with it the next record."""
    records = [gzip.decompress(r) for r in page_records(6)]
    length = int(re.search(rb"Content-Length: (\d+)\r\n\r\n", records[3])[1])
    records[3] = with_content_length(records[3], length + error)
    path = tmp_path / ("l.warc.gz" if gzipped else "l.warc")
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in records) if gzipped else b"".join(records))
    urls, counts = summarize(path)
    assert [url for url in urls if url != ALL_URLS[3]] == ALL_URLS[:3] + ALL_URLS[4:6]
    assert counts["read.record_start_inside_damaged_record"] == 0


def test_a_header_value_that_mentions_the_warc_version_is_not_a_cut_header(tmp_path):
    url = "https://a.example/specs/WARC/1.1/index.html"
    (tmp_path / "v.warc").write_bytes(plain_record(url, http_response(b"<p>spec</p>", "text/html")))
    assert summarize(tmp_path / "v.warc") == (
        [url],
        Counter({"read.files.warc": 1, "read.warc_response": 1, "read.pages.warc": 1}),
    )


@pytest.mark.parametrize("cut", [3, 20])
def test_a_page_that_mentions_warc_stays_whole_before_a_cut_record(tmp_path, cut):
    """Only a version line (`WARC/1.0` and a line end) inside a block shows that its length ran over a later
    record; a page that merely says `WARC/1.0` followed by garbage is still whole."""
    page = plain_record("https://a.example/p", http_response(b"<p>saved as WARC/1.0 files</p>", "text/html"))
    cut_record = plain_record("https://a.example/cut", http_response(b"<p>cut</p>", "text/html"))[:cut]
    (tmp_path / "m.warc").write_bytes(page + cut_record)
    urls, counts = summarize(tmp_path / "m.warc")
    assert urls == ["https://a.example/p"]
    assert counts["read.broken_or_truncated_record"] == 1
