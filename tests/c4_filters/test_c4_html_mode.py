"""clean_html: the C4 rules on minimal HTML, block by block, with document structure exempt."""

import gc
import re

import pytest

from c4_filters import C4Options, C4Stats, CleanResult, clean_html

NOTHING_EXEMPT = C4Options(exempt_tags=())


def test_a_clean_page_keeps_its_markup(prose_html):
    html = prose_html(
        '<p>They say the <a href="https://example.org/bridge">old bridge</a> is worth a visit.</p>'
    )
    result = clean_html(html)
    assert isinstance(result, CleanResult)
    assert result.html == html
    assert result.n_sentences == 4
    assert result.lang_score >= 0.99
    assert result.text.split("\n") == [
        "Walking by the river",
        *[re.sub("<[^>]+>", "", p) for p in re.findall("<p>(.*?)</p>", html)],
    ]


def test_failing_paragraph_is_removed_from_the_html(prose_html):
    stats = C4Stats()
    result = clean_html(prose_html("<p>Share this page</p>"), stats=stats)
    assert "Share this page" not in result.html and "<p></p>" not in result.html
    assert result.html == prose_html()
    assert stats["line:no_end_mark"] == 1


def test_heading_without_end_mark_is_exempt(prose_html):
    html = prose_html().replace("<div>", "<div><h2>Old town</h2>")
    assert "<h2>Old town</h2>" in clean_html(html).html
    assert "Old town" not in clean_html(html, NOTHING_EXEMPT).html


def test_title_is_exempt(prose_html):
    result = clean_html(prose_html(title="Home"))
    assert "<title>Home</title>" in result.html and result.text.startswith("Home\n")
    assert "<title>" not in clean_html(prose_html(title="Home"), NOTHING_EXEMPT).html


def test_image_alt_is_exempt_and_images_are_kept(prose_html):
    figure = (
        '<figure><img alt="Bridge" src="https://example.org/b.jpg"><figcaption>Photo 3</figcaption></figure>'
    )
    result = clean_html(prose_html(figure))
    assert figure in result.html
    assert "\nBridge\nPhoto 3" in result.text
    strict = clean_html(prose_html(figure), NOTHING_EXEMPT).html
    assert '<img src="https://example.org/b.jpg">' in strict and "Photo 3" not in strict


def test_images_stay_when_their_paragraph_is_removed(prose_html):
    gallery = (
        '<ul><li><a href="/g/1"><img alt="Boats" src="https://example.org/1.jpg"> Next photo</a></li></ul>'
    )
    result = clean_html(prose_html(gallery))
    assert (
        '<ul><li><a href="/g/1"><img alt="Boats" src="https://example.org/1.jpg"></a></li></ul>'
        in result.html
    )
    assert "Next photo" not in result.html


def test_exempt_structure_still_faces_content_rules(prose_html):
    stats = C4Stats()
    result = clean_html(prose_html("<h3>Privacy Policy</h3>"), stats=stats)
    assert "Privacy" not in result.html and stats["line:policy"] == 1
    assert clean_html(prose_html(title="Lorem ipsum")) is None
    assert clean_html(prose_html('<img alt="a {json} thing" src="https://example.org/x.png">')) is None


def test_exempt_structure_is_not_exempt_from_bad_words(prose_html):
    stats = C4Stats()
    assert (
        clean_html(prose_html('<img alt="nude beach" src="https://example.org/x.png">'), stats=stats) is None
    )
    assert stats["page:bad_words"] == 1
    assert clean_html(prose_html("<h2>Nude beach</h2>")) is None


def test_headings_do_not_count_as_sentences(prose):
    html = (
        f"<html><body><h1>A first heading here.</h1><p>{prose[0]}</p><h2>A second one.</h2><p>{prose[1]}</p>"
    )
    stats = C4Stats()
    assert clean_html(html, stats=stats) is None
    assert stats["page:too_few_sentences"] == 1


def test_every_block_of_a_div_is_a_line(prose_html):
    html = prose_html("<div>Menu<p>Quite a long paragraph is here, five words.</p>Footer text here</div>")
    result = clean_html(html)
    assert "Menu" not in result.html and "Footer" not in result.html
    assert "<div><p>Quite a long paragraph is here, five words.</p></div>" in result.html


def test_line_break_splits_lines(prose_html):
    html = prose_html("<p>Call us today at the office.<br>Tel 555 0100</p>")
    result = clean_html(html)
    assert "<p>Call us today at the office.</p>" in result.html and "555" not in result.html


def test_removing_a_middle_block_does_not_join_its_neighbours(prose_html):
    html = prose_html("<div>First we walked along the quay.<p>Bye</p>Then we sat down by the water.</div>")
    result = clean_html(html)
    assert "Bye" not in result.html
    assert "First we walked along the quay.\nThen we sat down by the water." in result.text
    assert clean_html(result.html) == result


def test_citation_markers_are_removed_from_the_html(prose_html):
    stats = C4Stats()
    html = prose_html('<p>The bridge was built in 1850 [1] by the town.<sup><a href="#n2">[2]</a></sup></p>')
    result = clean_html(html, stats=stats)
    assert "<p>The bridge was built in 1850 by the town.</p>" in result.html
    assert stats["citation:removed"] == 2


@pytest.mark.parametrize(
    ("markup", "counter"),
    [
        ("<p>" + "z" * 1001 + " is a very long word.</p>", "line:too_long_word"),
        ("<p>And the story goes on and on...</p>", "line:ends_with_ellipsis"),
        ("<p>Only four words here.</p>", "line:too_few_words"),
        ("<p>Please enable JavaScript to see the map.</p>", "line:javascript"),
        ("<p>By browsing you accept that this site uses cookies.</p>", "line:policy"),
        ("<li>Navigation item</li>", "line:no_end_mark"),
    ],
)
def test_line_rules_remove_blocks(prose_html, markup, counter):
    stats = C4Stats()
    result = clean_html(prose_html(markup), stats=stats)
    assert result.html == prose_html() and stats[counter] == 1


@pytest.mark.parametrize(
    ("markup", "counter"),
    [
        ("<p>Lorem ipsum dolor sit amet, consectetur.</p>", "page:lorem_ipsum"),
        ("<pre>if (x) { return the answer; } else.</pre>", "page:curly_bracket"),
    ],
)
def test_page_rules_drop_the_page(prose_html, markup, counter):
    stats = C4Stats()
    assert clean_html(prose_html(markup), stats=stats) is None
    assert stats[counter] == 1 and stats["page:kept"] == 0


def test_page_in_another_language_is_dropped():
    stats = C4Stats()
    html = (
        "<html><body><p>La rivière traverse lentement la vieille ville au petit matin.</p>"
        "<p>Beaucoup de visiteurs viennent ici chaque été pour se promener.</p>"
        "<p>Des familles vivent dans ces maisons de pierre depuis des générations.</p></body></html>"
    )
    assert clean_html(html, stats=stats) is None and stats["page:not_english"] == 1
    assert clean_html(html, C4Options(language="fr")).lang_score >= 0.99


@pytest.mark.parametrize("junk", ["", "   ", "\x00"])
def test_no_document_is_a_counted_drop(junk):
    stats = C4Stats()
    assert clean_html(junk, stats=stats) is None
    assert stats["page:unparseable"] + stats["page:too_few_sentences"] == 1


def test_output_is_deterministic_with_sorted_attributes(prose_html):
    html = prose_html(
        '<p>See <a title="Bridge &amp; &quot;quay&quot;" href="/b?x=1&amp;y=2">this old bridge</a> in town today.</p>'
    )
    first = clean_html(html).html
    assert '<a href="/b?x=1&amp;y=2" title="Bridge &amp; &quot;quay&quot;">' in first
    assert all(clean_html(html).html == first for _ in range(3))
    assert clean_html(first).html == first


def test_line_break_between_kept_lines_stays(prose_html):
    html = prose_html(
        '<p>First we walked along the quay.<br><a href="/b">Then we sat down by the water.</a></p>'
        '<p><img alt="" src="https://example.org/q.jpg"><br>The quay is busy on market days.</p>'
    )
    result = clean_html(html)
    assert result.html == html
    assert "First we walked along the quay.\nThen we sat down by the water." in result.text


def test_xhtml_doctype_does_not_change_the_serialisation(prose_html):
    doctype = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
    html = prose_html(
        '<p>The quay is busy on market days.<br><img alt="Boats" src="https://example.org/q.jpg"></p>'
    )
    assert clean_html(doctype + html).html == html


def test_cleaning_a_page_leaves_no_reference_cycle():
    """Workers clean millions of pages: no recursive closure may keep a parsed tree alive until Python's
    cyclic garbage collector happens to run."""
    sentence = "This sentence is long enough to be kept by the rules. "
    html = "<html><body><div><span></span></div>" + f"<p>{sentence * 3}<b></b></p>" * 5 + "</body></html>"
    gc.collect()
    gc.disable()
    try:
        clean_html(html)
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("reference", ["&#1;", "&#x1;", "&#X1F", "&#0011;", "&#xfffe;", "&#65535;"])
def test_character_references_to_control_characters_are_dropped(prose_html, reference):
    """libxml2 decodes them into the tree, where lxml then refuses every edited text that holds them."""
    html = prose_html(
        f"<p>The old mill by the weir [1]{reference} is open <b>again</b> [2]{reference} every day.</p>"
        f'<p><img alt="The mill [3]{reference}" src="https://example.org/m.jpg"></p>'
    )
    result = clean_html(html)
    assert "<p>The old mill by the weir is open <b>again</b> every day.</p>" in result.html
    assert 'alt="The mill"' in result.html
