"""html_minimizer.tree, the one owner of the minimal-HTML tree: its empty-element rule, its removal that keeps
the text after an element, its parse policy and its serialiser, as minimize, the C4 filters and the pipeline's
last pass all see them."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c4_filters import clean_html
from html_minimizer import EmptyPage, MinimizeError, all_image_srcs, minimize, prune_empty, replace_images
from html_minimizer.tree import parse_minimal, remove_keeping_tail, serialize


def body_of(html: str) -> str:
    return html.split("<body>", 1)[1].rsplit("</body>", 1)[0]


@pytest.mark.parametrize("line_break", ["<br>", "<br>\n"])
def test_a_run_of_line_breaks_is_pruned_in_linear_time(line_break):
    def seconds(n: int) -> float:  # the best of three: a shared machine only ever adds time
        html = f"<html><body><div>{line_break * n}</div><p>x</p></body></html>"
        times = []
        for _ in range(3):
            start = time.process_time()
            assert body_of(prune_empty(html)[0]) == "<p>x</p>"
            times.append(time.process_time() - start)
        return min(times)

    seconds(1000)  # warm up
    assert seconds(40_000) < 8 * max(seconds(10_000), 0.005)  # linear: about 4 times; quadratic: about 16


@pytest.mark.parametrize(
    ("body", "pruned"),
    [
        ("<div><br><br></div><p>x</p>", "<p>x</p>"),
        ("<table><tr><td></td></tr></table><p>x</p>", "<p>x</p>"),
        ("<table><tr><td>x</td><td></td></tr></table>", "<table><tr><td>x</td><td></td></tr></table>"),
        ("<div><p>a</p><br><p>b</p></div>", "<div><p>a</p><p>b</p></div>"),  # separates nothing
        ("<p>a<br><br>b</p>", "<p>a<br><br>b</p>"),  # a paragraph break stays
        ("<p><b>Title<br></b>text</p>", "<p><b>Title<br></b>text</p>"),  # ends a line inside a <b>
        ("<p><br>a<br></p>", "<p>a</p>"),
        ("<div>a<p></p>b</div>", "<div>a<br>b</div>"),
        ("<p>one<b>gone</b>two</p>", "<p>one<b>gone</b>two</p>"),
    ],
)
def test_one_rule_for_elements_without_text_or_image(body, pruned):
    html = f"<html><head></head><body>{body}</body></html>"
    assert body_of(prune_empty(html)[0]) == pruned


def test_the_rule_is_the_same_in_minimize_c4_and_the_final_pass():
    prose = "".join(
        f"<p>The river {w} flows slowly through the old town in the early morning.</p>" for w in "abc"
    )
    page = f"<html><body><div>{prose}<div><br><br></div></div><table><tr><td></td></tr></table></body></html>"
    minimal = minimize(page.encode()).html
    assert "<br>" not in minimal and "<table>" not in minimal
    cleaned = clean_html(minimal).html
    assert prune_empty(cleaned) == (cleaned, 0)
    assert prune_empty(minimal) == (minimal, 0)


def test_a_page_emptied_entirely_is_reported_not_returned_as_an_empty_body():
    with pytest.raises(EmptyPage):
        # two hidden halves (neither holds most of the page) and a <div> with a line break that separates nothing
        minimize(
            b"<html><body><div hidden>Cookies</div><div hidden>Consent</div><div><br></div></body></html>"
        )
    assert issubclass(EmptyPage, MinimizeError)


def test_removing_an_element_with_text_between_two_words_keeps_them_apart():
    root = parse_minimal("<p>one<b>gone</b>two <i>x</i> three</p>")
    bold, italic = root.iter("b", "i")
    remove_keeping_tail(bold)
    remove_keeping_tail(italic)
    assert body_of(serialize(root)) == "<p>one two three</p>"


def test_references_to_characters_xml_forbids_are_dropped_not_a_bad_markup_error():
    """`&#xFFFE;` parsed into a text node made every later edit of that node fail (BadMarkup) and put a
    character into minimize's output that prune_empty could not read back."""
    page = b"<p>Some words here.<b></b>&#xFFFE;and more &#1;words.</p><p>x<span hidden>y</span>&#xFFFF;z</p>"
    html = minimize(page).html
    assert body_of(html) == "<p>Some words here.and more words.</p><p>xz</p>"
    assert prune_empty(html) == (html, 0)


def test_an_xhtml_doctype_does_not_switch_the_output_to_xhtml():
    page = (
        b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>a<br/>b<img src="http://x.org/i.png"/></p></body></html>'
    )
    assert body_of(minimize(page).html) == '<p>a<br>b<img src="http://x.org/i.png"></p>'


def test_image_srcs_lists_every_img_with_a_src_in_order():
    html = '<html><body><img src="b"><p><img src="a"><img alt="none"><img src="b"></p></body></html>'
    assert all_image_srcs(html) == ["b", "a", "b"]
    assert all_image_srcs("<p>no images</p>") == []


_PIECES = st.sampled_from(
    ["<div>", "</div>", "<p>", "</p>", "<br>", "<b>", "</b>", "<td>", "<tr>", "<table>", "</table>", "word ",
     "x", " ", "<img src=i.png>", "<li>", "<ul>", "</ul>", "<h2>", "</h2>", "<pre>", "</pre>", "&#1;", "<!--c-->"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_pruning_keeps_every_word_and_image_and_is_idempotent(pieces):
    html = serialize(parse_minimal("<html><body>" + "".join(pieces) + "</body></html>"))
    pruned, _ = prune_empty(html)
    assert prune_empty(pruned) == (pruned, 0)
    root, after = parse_minimal(html), parse_minimal(pruned)
    assert "".join("".join(root.itertext()).split()) == "".join("".join(after.itertext()).split())
    assert len(list(root.iter("img"))) == len(list(after.iter("img")))
    assert replace_images(pruned, {}) == pruned
