"""Rules of issue 13: lines and headings that lead nowhere, headings a browser closes, <pre> whitespace, and the
per-rule removal counters (`MinimalPage.removed`)."""

import json

from html_minimizer import minimize, prune_empty, replace_images

URL = "https://example.org/news/story.html"
PARA = "A paragraph of real article text that is long enough to count as the content of this page."


def page(body: str, url: str | None = URL):
    return minimize(f"<html><head></head><body>{body}</body></html>".encode(), url)


def body_of(html: str) -> str:
    return html.split("<body>", 1)[1].rsplit("</body>", 1)[0]


def test_a_short_line_that_is_one_link_within_the_site_goes():
    result = page(
        f"<p>{PARA}</p><p><a href='/news/'>Back to the overview</a></p>"
        "<div><a href='#top'>To the top</a></div><p><a href='story2.html'>Read more</a></p>"
    )
    assert body_of(result.html) == f"<p>{PARA}</p>"
    assert dict(result.removed)["lone_link"] == 3


def test_a_line_that_is_one_link_to_another_site_or_a_long_line_stays():
    external = "<p><a href='https://other.org/petition'>www.other.org/petition</a></p>"
    long_line = f"<p><a href='/x'>{PARA}</a></p>"
    mixed = "<p>See the <a href='/x'>report</a> published by the city council.</p>"
    html = body_of(page(f"<p>{PARA}</p>{external}{long_line}{mixed}").html)
    assert "www.other.org/petition" in html and html.count(PARA) == 2 and "city council" in html


def test_a_heading_that_leads_nowhere_goes():
    # "Related posts" once its teaser list went: nothing follows before the next heading of its rank
    result = page(
        f"<h1>Title</h1><p>{PARA}</p><div><h2>Related posts</h2><ul><li><a href='/a'>One</a></li>"
        "<li><a href='/b'>Two</a></li></ul></div><h2>Trending</h2>"
    )
    assert body_of(result.html) == f"<h1>Title</h1><p>{PARA}</p>"
    assert dict(result.removed)["orphan_heading"] + dict(result.removed).get("list_label", 0) == 2


def test_a_heading_followed_by_its_subheading_and_text_stays():
    html = body_of(page(f"<h1>Title</h1><h4>The subtitle</h4><h4>First part</h4><p>{PARA}</p>").html)
    assert html == f"<h1>Title</h1><h4>The subtitle</h4><h4>First part</h4><p>{PARA}</p>"


def test_the_title_line_of_a_removed_link_list_goes_with_it():
    result = page(
        f"<p>{PARA}</p><div><p>You might also like:</p><ul><li><a href='/a'>Story A</a></li>"
        "<li><a href='/b'>Story B</a></li></ul></div>"
    )
    assert body_of(result.html) == f"<p>{PARA}</p>"
    assert dict(result.removed)["list_label"] == 1


def test_a_mis_closed_heading_does_not_swallow_the_article():
    # a browser closes <h2> at </h3>; libxml2 keeps it open because the <a> inside is still open
    result = page(f"<h2><a href='/s'>Headline</h3><p>{PARA}</p><p>{PARA}</p><p>{PARA}</p><p>{PARA}</p>")
    html = body_of(result.html)
    assert html.startswith('<h2><a href="https://example.org/s">Headline</a></h2><p>')
    assert html.count(f"<p>{PARA}</p>") == 4
    assert dict(result.removed)["heading_closed"] == 1


def test_a_heading_whose_text_is_inside_a_block_is_left_alone():
    html = body_of(page(f"<h2><div>Headline in a div</div></h2><p>{PARA}</p>").html)
    assert html == f"<h2><div>Headline in a div</div></h2><p>{PARA}</p>"


def test_pre_keeps_its_line_breaks_and_indentation():
    code = "def f(x):\n    return x + 1\n\n\nprint(f(2))"
    html = page(f"<p>{PARA}</p><pre><code>{code}</code></pre>  <p>after   this</p>").html
    assert f"<pre><code>{code}</code></pre><p>after this</p>" in html
    assert replace_images(html, {}) == html  # reads back to the same bytes


def test_counters_name_only_rules_that_removed_something():
    result = page(f"<p>{PARA}</p>")
    assert result.removed == ()


def test_prune_empty_removes_elements_without_text_or_image_and_keeps_lines_apart():
    html = (
        "<html><head><title>t</title><meta content='x' property='og:x'></head><body><div>"
        "<a href='x'></a><figure><figcaption> </figcaption></figure><p>Text<br></p><div>a<div></div>b</div>"
        "<table><tr><td>x</td><td></td></tr><tr><td></td></tr></table><p><br>y</p>"
        "<figure><img alt='' src='https://example.org/i.png'></figure></div><div></div></body></html>"
    )
    pruned, n = prune_empty(html)
    assert body_of(pruned) == (
        "<div><p>Text</p><div>a<br>b</div><table><tr><td>x</td><td></td></tr></table><p>y</p>"
        '<figure><img alt="" src="https://example.org/i.png"></figure></div>'
    )
    assert '<meta content="x" property="og:x">' in pruned
    assert n == 8
    assert prune_empty(pruned) == (pruned, 0)


def test_a_label_ending_its_section_goes_but_a_label_before_its_content_stays():
    result = page(
        f"<p>{PARA}</p><div><div><small>Advertisement:</small></div></div>"
        f"<div><p>He said:</p><blockquote>{PARA}</blockquote></div>"
    )
    html = body_of(result.html)
    assert "Advertisement" not in html and "<p>He said:</p><blockquote>" in html
    assert dict(result.removed)["dangling_label"] == 1


def test_soft_hyphens_do_not_split_words():
    html = body_of(page("<p>Sans recherche auto\u00adnome, nous n&#8217;avons pas d&shy;avenir.</p>").html)
    assert html == "<p>Sans recherche autonome, nous n’avons pas davenir.</p>"


def json_ld_page(body: str, article_body: str):
    data = json.dumps(
        {"@context": "https://schema.org", "@graph": [{"@type": "NewsArticle", "articleBody": article_body}]}
    )
    head = f'<script type="application/ld+json">{data}</script>'
    return minimize(f"<html><head>{head}</head><body>{body}</body></html>".encode(), URL)


ARTICLE = f"{PARA} The first part ends here.\n\n{PARA} The second part ends here."


def test_a_page_rendered_from_json_ld_gets_its_article_body_after_the_headline():
    result = json_ld_page("<h1>Headline</h1><div id='app'></div><p>Footer words</p>", ARTICLE)
    assert body_of(result.html) == (
        f'<h1>Headline</h1><div itemprop="articleBody"><p>{PARA} The first part ends here.</p>'
        f"<p>{PARA} The second part ends here.</p></div><p>Footer words</p>"
    )
    assert dict(result.removed)["article_body_added"] == 1


def test_a_page_showing_its_article_does_not_get_it_twice():
    shown = "".join(f"<p>{p}</p>" for p in ARTICLE.split("\n\n"))
    result = json_ld_page(f"<h1>Headline</h1>{shown}", ARTICLE)
    assert body_of(result.html) == f"<h1>Headline</h1>{shown}"
    assert "article_body_added" not in dict(result.removed)


def test_short_lines_after_the_article_go_but_lists_tables_and_long_lines_stay():
    article = "<div class='story'>" + "".join(f"<p>{PARA} Part {i}.</p>" for i in range(8)) + "</div>"
    after = (
        "<div><h3>Recommended</h3><div>Load more stories</div><p>Comment</p></div>"
        "<ul><li>First item</li><li>Second item</li></ul><table><tr><td>Price</td><td>4 EUR</td></tr></table>"
        f"<p>{PARA} A long line after the article.</p>"
    )
    result = page(f"<h1>Title</h1><p>Intro line</p>{article}{after}")
    html = body_of(result.html)
    for gone in ("Recommended", "Load more stories", "Comment<"):
        assert gone not in html
    for kept in (
        "<h1>Title</h1>",
        "Intro line",
        "First item",
        "<td>4 EUR</td>",
        "A long line after the article.",
    ):
        assert kept in html
    assert dict(result.removed)["trailing_short_line"] == 3


def test_a_page_too_short_to_tell_its_article_keeps_its_short_lines():
    html = body_of(page(f"<p>{PARA}</p><div>Short line one</div><p>{PARA}</p><div>Short line two</div>").html)
    assert "Short line one" in html and "Short line two" in html


def test_a_long_text_inside_a_removed_link_list_is_not_taken_for_the_article():
    """A div holding a 600-character text and two long links is a link list (most of its text is links) and
    goes; the text inside it must not then be chosen as the article the trailing-line rule starts from."""
    inner = f"<div><p>{'Main article words here. ' * 24}</p><p>x</p></div>"
    links = f"<a href='/a'>{'link text ' * 50}</a><a href='/b'>{'link text ' * 50}</a>"
    hidden = f"<div hidden>{'hidden ' * 220}</div>"
    result = page(f"{hidden}<div>{inner}{links}</div><p>{'Other kept prose. ' * 40}</p>")
    assert body_of(result.html) == f"<p>{'Other kept prose. ' * 40}".rstrip() + "</p>"
    assert dict(result.removed)["link_list"] == 1
