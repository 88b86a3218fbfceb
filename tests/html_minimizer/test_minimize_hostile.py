"""Hostile input: a result or a typed MinimizeError, within a time bound (sizes keep the suite fast while
showing the bound: each case would take minutes or hours without its guard)."""

import gc
import os
import sys
import time

import pytest

from html_minimizer import InputTooLarge, Limits, MinimizeError, NotHTML, minimize

SECONDS = 5.0  # generous for a loaded 2-core CI machine; the cases run in well under a second alone


def timed(raw, **kwargs):
    start = time.process_time()
    try:
        result = minimize(raw, "https://x.org/", **kwargs)
    except MinimizeError as e:
        result = e
    assert time.process_time() - start < SECONDS
    return result


def test_tag_with_a_million_attributes_loses_them():
    raw = b"<p " + b" ".join(b"a%d=1" % i for i in range(1_000_000)) + b">kept text</p>"
    assert "<p>kept text</p>" in timed(raw).html


def test_attribute_bomb_with_quoted_angle_brackets_and_valueless_attributes():
    quoted = b"<p " + b" ".join(b'a%d=">"' % i for i in range(100_000)) + b">text</p>"
    bare = b"<p " + b" ".join(b"a%d" % i for i in range(300_000)) + b">text</p>"
    assert "<p>text</p>" in timed(quoted).html
    assert "<p>text</p>" in timed(bare).html


def test_deep_nesting_is_bounded():
    for tag in (b"div", b"span", b"table"):
        result = timed(b"<%s>" % tag * 100_000 + b"deep text")
        assert isinstance(result, MinimizeError) or result.html.startswith("<html>")


def test_deep_nesting_in_a_deep_call_stack_is_a_typed_error():
    """The walk recurses once per nesting level (at most 256 after parsing): a caller that leaves less
    room under Python's recursion limit gets InputTooLarge, never a RecursionError."""
    raw = b"<div>" * 250 + b"deep text"  # as deep as libxml2 keeps
    assert "deep text" in timed(raw).html
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(150)
    try:
        assert isinstance(timed(raw), InputTooLarge)
    finally:
        sys.setrecursionlimit(limit)


def test_oversized_input_is_refused_before_parsing():
    assert isinstance(
        timed(b"<p>" + b"w " * 6_000_000, limits=Limits(max_input_bytes=10_000_000)), InputTooLarge
    )
    assert isinstance(timed("<p>" + "é" * 600, limits=Limits(max_input_bytes=1000)), InputTooLarge)


def test_too_many_tags_is_refused():
    assert isinstance(timed(b"<b>x</b>" * 300_000, limits=Limits(max_tags=200_000)), InputTooLarge)


def test_huge_data_uri_is_dropped_not_the_page():
    raw = b"<p>text<img src='data:image/png;base64," + b"A" * 3_000_000 + b"'></p>"
    result = timed(raw)
    assert "<p>text</p>" in result.html and result.images == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"plain text without markup",
        os.urandom(200_000),
        b"\x00\x01\x02" * 10_000,
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50,
    ],
)
def test_binary_and_empty_input_is_not_html(raw):
    assert isinstance(timed(raw), NotHTML)


def test_garbage_with_markup_gives_a_result_or_typed_error():
    rng_bytes = bytes((i * 7919 + 13) % 256 for i in range(300_000))
    raw = b"<p>" + rng_bytes.replace(b"\x00", b"<") + b"</p>"
    result = timed(raw)  # raises nothing but MinimizeError (timed catches only that)
    assert isinstance(result, MinimizeError) or result.html.startswith("<html>")


def test_wrong_and_mixed_encodings():
    text = "Zürich – “quoted” ünd €"
    assert "Zürich" in timed(f"<p>{text}</p>".encode("cp1252"), charset="utf-8").html  # wrong header
    mixed = f"<p>{text}</p>".encode() + f"<p>{text}</p>".encode("cp1252")
    assert timed(mixed).html.count("Zürich") == 2
    assert "<p>" in timed(f"<p>{text}</p>".encode("utf-16-le"), charset="utf-16le").html


@pytest.mark.parametrize("where", ["alone", "in a paragraph", "between words"])
def test_megabytes_of_invalid_utf8_take_well_under_a_second(where):
    """Each invalid byte reads as cp1252: a Python error handler called once per byte took 5 s here."""
    invalid = bytes(range(128, 256)) * 40_000  # 5 MB, not one byte valid UTF-8 where it stands
    raw = {
        "alone": invalid,
        "in a paragraph": b"<p>" + invalid + b"</p>",
        "between words": b"<p>" + invalid.replace(b"\xc0", b" word ") + b"</p>",
    }[where]
    start = time.process_time()
    try:
        minimize(raw)
    except MinimizeError:
        pass
    assert time.process_time() - start < 2.0


def test_huge_text_node_and_many_elements_stay_in_budget():
    assert timed(b"<p>" + b"word " * 1_000_000 + b"</p>").html.count("word") > 0
    assert timed(b"<div><p>x</p>" * 60_000).html.count("<p>x</p>") > 0


def test_a_parsed_page_is_freed_without_the_cycle_collector():
    """Millions of pages go through one worker: minimize must leave no reference cycle that would keep a
    parsed tree alive until Python's cyclic garbage collector happens to run."""
    page = b"<html><body><nav><a href=/a>A</a><a href=/b>B</a></nav>" + b"<p>Some text here.</p>" * 50
    gc.collect()
    gc.disable()
    try:
        minimize(page + b"</body></html>", url="https://example.org/")
        assert gc.collect() == 0
    finally:
        gc.enable()
