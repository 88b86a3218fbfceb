"""Determinism, URL resolution (page URL and <base>), charsets, result fields, round trip with replace_images."""

import pytest
from lxml import etree

from html_minimizer import ImageRef, MinimalPage, minimize, replace_images

PARA = "Ein Absatz mit genug Text, um als Inhalt dieser Seite zu gelten: Größe, Maß und Übermut."


def page(body: str, head: str = "") -> str:
    return f"<html><head>{head}</head><body>{body}</body></html>"


def test_same_bytes_twice_and_attributes_sorted():
    raw = page(f"<p itemprop='text' itemtype='t' itemscope>{PARA}<img title='t' src='/a.png' alt='a'></p>")
    first = minimize(raw.encode(), "https://x.org/")
    assert first == minimize(raw.encode(), "https://x.org/")
    assert '<p itemprop="text" itemscope="" itemtype="t">' in first.html
    assert '<img alt="a" src="https://x.org/a.png" title="t">' in first.html


def test_whitespace_is_collapsed():
    html = minimize(page(f"<p>\n   {PARA}\t\t<b> bold </b>\n\n  end </p>\n\n<p>x  y</p>").encode()).html
    assert f"<p>{PARA} <b> bold </b> end</p><p>x y</p>" in html


def test_result_fields():
    raw = page(f"<p>{PARA}<img src='https://x.org/b.png' alt='B' title='T'></p>", "<title>Titel</title>")
    result = minimize(f"<html lang='de-AT'>{raw[6:]}".encode())
    assert isinstance(result, MinimalPage)
    assert result.images == (ImageRef("https://x.org/b.png", "B", "T"),)
    assert result.title == "Titel" and result.lang == "de-AT"


@pytest.mark.parametrize(
    ("url", "base", "src", "expected"),
    [
        ("https://x.org/a/b.html", None, "c.png", "https://x.org/a/c.png"),
        ("https://x.org/a/b.html", None, "/c.png", "https://x.org/c.png"),
        ("https://x.org/a/b.html", None, "//cdn.org/c.png", "https://cdn.org/c.png"),
        ("https://x.org/a/b.html", None, "../c.png?q=1", "https://x.org/c.png?q=1"),
        ("https://x.org/a/b.html", "https://img.org/s/", "c.png", "https://img.org/s/c.png"),
        ("https://x.org/a/b.html", "/other/", "c.png", "https://x.org/other/c.png"),
        (None, "https://img.org/s/", "c.png", "https://img.org/s/c.png"),
        ("https://x.org/", None, " http://y.org/c.png ", "http://y.org/c.png"),
    ],
)
def test_image_urls_resolve_against_page_url_and_base(url, base, src, expected):
    head = f"<base href='{base}'>" if base else ""
    result = minimize(page(f"<p>{PARA}<img src='{src}'></p>", head).encode(), url)
    assert [i.src for i in result.images] == [expected]


def test_links_resolve_and_script_links_lose_their_href():
    html = minimize(
        page(f"<p>{PARA} <a href='x.html'>rel</a> <a href='javascript:void(0)'>js</a></p>").encode(),
        "https://x.org/d/",
    ).html
    assert '<a href="https://x.org/d/x.html">rel</a> <a>js</a>' in html


def test_data_uri_images_are_kept_up_to_the_size_limit():
    from html_minimizer import Limits

    data = "data:image/png;base64," + "iVBORw0KGgo" * 40
    html = page(f"<p>{PARA}<img src='{data}' alt='d'></p>")
    assert minimize(html.encode()).images[0].src == data
    assert minimize(html.encode(), limits=Limits(max_data_uri_bytes=100)).images == ()


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "iso-8859-1", "utf-16"])
def test_meta_charset_and_bom_are_honoured(encoding):
    head = f"<meta charset='{encoding}'>" if encoding != "utf-16" else ""
    raw = page(f"<p>{PARA}</p>", head).encode(encoding)  # Python's utf-16 codec writes a BOM
    assert PARA in minimize(raw).html


def test_http_charset_wins_over_meta():
    raw = page(f"<p>{PARA}</p>", "<meta charset='utf-8'>").encode("cp1252")
    assert PARA in minimize(raw, charset="windows-1252").html


def test_undeclared_charset_falls_back_to_cp1252_byte_by_byte():
    raw = (
        page(f"<p>{PARA} – “quoted”</p>").encode("utf-8").replace("Größe".encode(), "Größe".encode("cp1252"))
    )
    html = minimize(raw).html
    assert "Größe" in html and "“quoted”" in html


def test_unknown_or_non_text_charset_labels_are_ignored():
    raw = page(f"<p>{PARA}</p>").encode()
    assert PARA in minimize(raw, charset="no-such-charset").html
    assert PARA in minimize(raw, charset="base64").html


def test_str_input():
    assert PARA in minimize(page(f"<p>{PARA}</p>")).html


def test_output_parses_and_reserialises_to_itself():
    raw = page(
        f"<table><tr><td>{PARA}</td><td></td></tr></table><ul><li>{PARA}</li></ul><p>a<br>b</p>"
        f"<figure><img src='https://x.org/i.png' alt='i'><figcaption>{PARA}</figcaption></figure>"
    )
    html = minimize(raw.encode()).html
    assert etree.fromstring(html, etree.HTMLParser()) is not None
    assert replace_images(html, {}) == html
    assert replace_images(html, {"https://x.org/i.png": "1 2 3"}) == html.replace(
        "https://x.org/i.png", "1 2 3"
    )


@pytest.mark.parametrize(
    "label", ["idna", "punycode", "undefined", "utf-7", "rot13", "hex", "palmos", "mbcs"]
)
def test_python_codecs_that_are_no_whatwg_label_are_ignored(label):
    raw = page(f"<p>{PARA}</p>").encode()
    assert PARA in minimize(raw, charset=label).html
    assert PARA in minimize(page(f"<p>{PARA}</p>", f"<meta charset='{label}'>").encode()).html


@pytest.mark.parametrize(
    "label, encoding",
    [("Shift_JIS", "cp932"), ("x-sjis", "cp932"), ("ks_c_5601-1987", "cp949"), ("latin1", "cp1252"),
     ("csisolatin2", "iso8859-2"), ("x-mac-cyrillic", "mac-cyrillic"), ("dos-874", "cp874")],
)  # fmt: skip
def test_whatwg_labels_name_their_encoding(label, encoding):
    text = {
        "cp932": "日本語のページ",
        "cp949": "한국어 페이지",
        "cp874": "ภาษาไทย",
        "mac-cyrillic": "Привет",
    }.get(encoding, "Größe")
    raw = page(f"<p>{text}: a paragraph with enough words to count as the content of this page.</p>")
    assert text in minimize(raw.encode(encoding), charset=label).html
