"""Property tests: arbitrary bytes/markup raise nothing but MinimizeError; output parses back with the same
images and text and is fixed under re-serialisation (replace_images with an empty mapping); minimizing
the output again adds no text (what it keeps is a subsequence of the first output's text)."""

import codecs
import encodings.aliases

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from html_minimizer import MinimizeError, minimize, replace_images
from html_minimizer.charset import to_clean_utf8

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAGS = ["div", "p", "span", "a", "img", "ul", "li", "nav", "footer", "script", "table", "tr", "td", "h2", "b"]
ATTRS = ["class", "id", "href", "src", "alt", "title", "itemprop", "role", "style", "data-src", "hidden"]
WORDS = [
    "share",
    "menu",
    "content",
    "article",
    "footer",
    "x",
    "/a.png",
    "é",
    "&amp;",
    '"',
    "<",
    "display:none",
]


@st.composite
def markup(draw):
    """Real-looking tag soup: nested and unclosed tags, odd attributes, entities, stray brackets."""
    parts = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            tag = draw(st.sampled_from(TAGS))
            attrs = draw(st.lists(st.tuples(st.sampled_from(ATTRS), st.sampled_from(WORDS)), max_size=3))
            parts.append(f"<{tag}" + "".join(f' {k}="{v}"' for k, v in attrs) + ">")
        elif kind == 1:
            parts.append(f"</{draw(st.sampled_from(TAGS))}>")
        else:
            parts.append(draw(st.text(max_size=30)))
    return "".join(parts)


def check(result_or_raw, url=None, charset=None):
    try:
        page = minimize(result_or_raw, url, charset=charset)
    except MinimizeError:
        return None
    assert page.html.startswith("<html") and page.html.endswith("</body></html>")
    tree = etree.fromstring(page.html, etree.HTMLParser())
    assert tree.xpath("//img/@src") == [image.src for image in page.images]
    again = replace_images(page.html, {})
    assert again == page.html or (
        # tag soup can leave a structure an HTML parser reorders; its text survives and it is stable then
        replace_images(again, {}) == again and _text(again).split() == _text(page.html).split()
    )
    return page


def _text(html: str) -> str:
    return " ".join(etree.fromstring(html, etree.HTMLParser()).find("body").itertext())


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_minimize_errors(raw):
    check(raw)


@SETTINGS
@given(markup(), st.sampled_from([None, "https://x.org/a/", "not a url", "http://[::1"]))
def test_tag_soup_gives_stable_parseable_output(html, url):
    check(html, url)
    check(html.encode("utf-8"), url)


@SETTINGS
@given(markup())
def test_minimize_of_its_own_output_keeps_the_text(html):
    page = check(html, "https://x.org/")
    if page is None:
        return
    again = check(page.html, "https://x.org/")
    if again is None:
        return
    assert _is_subsequence("".join(_text(again.html).split()), "".join(_text(page.html).split()))


def _is_subsequence(short: str, long: str) -> bool:
    chars = iter(long)
    return all(c in chars for c in short)


@SETTINGS
@given(st.data())
def test_mutated_real_looking_pages(data):
    page = (
        "<html lang='en'><head><title>T</title><meta property='og:title' content='T'></head><body>"
        "<header><nav><ul><li><a href='/'>Home</a></li><li><a href='/b'>Blog</a></li></ul></nav></header>"
        "<article><h1>Headline</h1><p>First paragraph with <a href='/x'>a link</a> and text.</p>"
        "<figure><img src='/i.jpg' alt='pic'><figcaption>Caption words</figcaption></figure>"
        "<p>Second paragraph.</p></article><footer>© 2020 Site</footer></body></html>"
    ).encode()
    cuts = data.draw(st.lists(st.integers(0, len(page)), max_size=4))
    mutated = bytearray(page)
    for cut in sorted(cuts, reverse=True):
        op = data.draw(st.integers(0, 2))
        if op == 0:
            del mutated[cut : cut + data.draw(st.integers(1, 20))]
        elif op == 1:
            mutated[cut:cut] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            mutated[cut:cut] = data.draw(st.sampled_from([b"<", b">", b'"', b"</div>", b"<p class='share'>"]))
    check(bytes(mutated), "https://x.org/post/")


# every codec name Python knows (aliases included: idna, punycode, rot13, base64, uu, utf-7, undefined...):
# only WHATWG encoding labels are honoured, whatever the page's bytes
PYTHON_CODECS = sorted({*encodings.aliases.aliases, *encodings.aliases.aliases.values(), "idna", "punycode"})
HOSTILE_BYTES = [b"caf\xc3\xa9 \xff\xfe\x80 +AGEA- =?", bytes(range(256)), "日本語".encode("utf-16")]


@pytest.mark.parametrize(
    "label", [*PYTHON_CODECS, "undefined", "replacement", "hz-gb-2312", "x-user-defined"]
)
def test_every_python_codec_name_as_charset_raises_only_minimize_errors(label):
    for raw in HOSTILE_BYTES:
        check(b"<p>" + raw, charset=label)
        check(b"<meta charset='" + label.encode() + b"'><p>" + raw)


@SETTINGS
@given(
    st.one_of(st.sampled_from(PYTHON_CODECS), st.text(max_size=20)), st.binary(max_size=300), st.booleans()
)
def test_any_charset_label_with_any_bytes_raises_only_minimize_errors(label, raw, in_meta):
    if in_meta:
        check(b"<meta charset='" + label.encode("utf-8", "replace") + b"'><p>" + raw)
    else:
        check(b"<p>" + raw, charset=label)


def _cp1252_per_byte(err):
    return "".join(
        bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in err.object[err.start : err.end]
    ), err.end


codecs.register_error("test.cp1252_per_byte", _cp1252_per_byte)


@SETTINGS
@given(st.lists(st.sampled_from([b"a", b" ", b"<p>", "é".encode(), "€".encode(), "𝄞".encode(), b"\x80", b"\xe9",
                                 b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x81"]), max_size=60))  # fmt: skip
def test_bytes_that_are_not_utf8_read_as_cp1252_however_many(parts):
    """Few invalid bytes and many take different paths to the same text: each invalid byte as cp1252."""
    raw = b"".join(parts)
    expected = raw.decode("utf-8", errors="test.cp1252_per_byte").encode("utf-8")
    assert to_clean_utf8(raw)[0] == expected
