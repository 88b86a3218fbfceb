"""Each rule of the minimal HTML (html_minimizer/README.md), on small pages written in the test."""

from html_minimizer import Limits, minimize

URL = "https://example.org/news/story.html"
PARA = "A paragraph of real article text that is long enough to count as the content of this page."


def body_of(html: str) -> str:
    return html.split("<body>", 1)[1].rsplit("</body>", 1)[0]


def mini(body: str, head: str = "", url: str | None = URL) -> str:
    return minimize(f"<html><head>{head}</head><body>{body}</body></html>".encode(), url).html


def test_scripts_styles_and_embedded_objects_are_dropped_with_their_content():
    html = mini(
        f"<p>{PARA}</p><script>var x = 'script text';</script><style>p {{color: red}}</style>"
        "<noscript>enable js</noscript><template><p>tpl</p></template><svg><text>svg text</text></svg>"
        "<iframe src='x'>frame</iframe><object>obj</object><canvas>cv</canvas>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_page_furniture_tags_are_dropped():
    html = mini(
        "<header><a href='/'>Site</a> <a href='/a'>A</a></header><nav><a href='/x'>Menu</a></nav>"
        f"<p>{PARA}</p><aside>Sidebar words here</aside><footer>Footer words</footer>"
        "<form><input name=q><button>Search</button></form><dialog>Modal words</dialog>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_a_form_wrapping_the_whole_page_is_kept_as_a_div():
    html = mini(f"<form id='aspnetForm'><p>{PARA}</p><p>{PARA}</p><input name=x></form><nav>Menu</nav>")
    assert body_of(html) == f"<div><p>{PARA}</p><p>{PARA}</p></div>"


def test_header_holding_the_headline_is_kept():
    html = mini(f"<article><header><h1>The headline</h1></header><p>{PARA}</p></article>")
    assert "<h1>The headline</h1>" in html


def test_a_hinted_element_holding_the_h1_or_being_a_heading_is_kept():
    html = mini(
        "<div class='share-box'><h1>The headline</h1><p>Short intro</p></div>"
        "<h3 class='related'>Also see</h3><div class='sidebar'><h3>Gone with its box</h3></div>"
        f"<div class='share'>Tweet this</div><p>{PARA}</p>"
    )
    assert (
        body_of(html) == f"<div><h1>The headline</h1><p>Short intro</p></div><h3>Also see</h3><p>{PARA}</p>"
    )


def test_aria_roles_of_page_furniture_are_dropped():
    html = mini(
        f"<div role='navigation'>Nav words</div><div role='banner'>Banner</div><p>{PARA}</p>"
        "<div role='contentinfo'>Contact info</div><div role='dialog'>Popup words</div>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_class_and_id_hints_drop_cookie_share_related_and_newsletter_blocks():
    html = mini(
        "<div id='cookie-banner'>We use cookies</div><div class='share-buttons'>Share this</div>"
        f"<p>{PARA}</p><div class='related-posts'>Other story</div><div class='newsletter-signup'>Sign up</div>"
        "<div class='c-breadcrumb'>Home / News</div><div class='modal'>Subscribe now</div>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_class_hints_read_words_not_substrings_nor_modifiers():
    kept = (
        "<div class='canvas-wrapper'>canvas words</div>",  # 'nav' inside a word
        "<div class='field--label-hidden'>modifier words</div>",  # BEM modifier
        "<div class='has-sidebar'>state words</div>",  # state class
        "<div class='elementor-top-section'>middle words</div>",  # hint word in the middle
    )
    for block in kept:
        html = mini(f"{block}<p>{PARA}</p>")
        assert ">" + block.split(">")[1].split("<")[0] + "<" in html, block


def test_layout_hint_keeps_long_unlinked_text():
    article = "".join(f"<p>{PARA} {i}</p>" for i in range(8))
    html = mini(
        f"<div class='l-sidebar-fixed'>{article}</div><div class='sidebar'><a href='/x'>x</a> y</div>"
    )
    assert article in html
    assert "/x" not in html


def test_strong_hint_drops_even_long_text():
    comments_form = "<div class='comment-respond'>" + "".join(f"<p>{PARA}</p>" for i in range(8)) + "</div>"
    main = "".join(f"<p>{PARA} main</p>" for _ in range(12))
    html = mini(main + comments_form)
    assert body_of(html) == main


def test_a_wrapper_holding_most_of_the_page_is_never_dropped():
    html = mini(f"<div class='page has-ads ads-wrapper'><p>{PARA}</p><p>{PARA}</p></div><p>short</p>")
    assert html.count(PARA) == 2


def test_hidden_elements_are_dropped():
    html = mini(
        f"<p>{PARA}</p><div style='display: none'>hidden one</div><div hidden>hidden two</div>"
        "<div aria-hidden='true'>hidden three</div>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_copyright_notices_date_stamps_and_photo_credits_are_dropped():
    html = mini(
        f"<p>© 2019 Example Media. All rights reserved.</p><p>{PARA}</p><p><span>23.10.2018</span></p>"
        "<figure><img src='/a.jpg' alt='A goat'><figcaption>Photo: Jane Doe</figcaption></figure>"
    )
    assert (
        body_of(html) == f'<p>{PARA}</p><figure><img alt="A goat" src="https://example.org/a.jpg"></figure>'
    )


def test_link_lists_and_menus_are_dropped_but_prose_with_links_stays():
    menu = "<ul>" + "".join(f"<li><a href='/s{i}'>Section {i}</a></li>" for i in range(6)) + "</ul>"
    prose = f"<p>{PARA} See <a href='/source'>the source</a> and <a href='/more'>more</a>.</p>"
    html = mini(menu + prose)
    assert "Section" not in html
    assert "the source" in html and "https://example.org/source" in html


def test_heading_of_a_removed_link_list_goes_with_it():
    related = (
        "<h3>Related posts</h3><ul>"
        + "".join(f"<li><a href='/p{i}'>Post {i}</a></li>" for i in range(4))
        + "</ul>"
    )
    html = mini(f"<div><p>{PARA}</p></div><div>{related}</div>")
    assert "Related posts" not in html


def test_elements_without_text_or_image_are_dropped():
    html = mini(f"<div><span> </span><p></p><div><div></div></div></div><p>{PARA}</p><p><br></p>")
    assert body_of(html) == f"<p>{PARA}</p>"


def test_image_only_elements_stay():
    html = mini(f"<p>{PARA}</p><div><a href='/big.jpg'><img src='/small.jpg' alt=''></a></div>")
    assert 'src="https://example.org/small.jpg"' in html


def test_nested_div_chains_fold_into_one_div_with_merged_attributes():
    html = mini(f"<div><div itemscope><div itemprop='articleBody'><p>{PARA}</p></div></div></div>")
    assert body_of(html) == f'<div itemprop="articleBody" itemscope=""><p>{PARA}</p></div>'


def test_sibling_divs_stay_separate_blocks():
    html = mini(f"<div>{PARA} one</div><div>{PARA} two</div>")
    assert body_of(html) == f"<div>{PARA} one</div><div>{PARA} two</div>"


def test_only_structured_data_and_prompt_attributes_are_kept():
    html = mini(
        f"<p class='lead' id='p1' style='x' data-x='1' itemprop='description'>{PARA}"
        "<a href='/x' title='T' target='_blank' rel='nofollow' class='l'>link</a>"
        "<img src='/i.png' alt='Alt' title='Ti' width='10' class='c' loading='lazy'></p>"
    )
    assert body_of(html) == (
        f'<p itemprop="description">{PARA}<a href="https://example.org/x" title="T">link</a>'
        '<img alt="Alt" src="https://example.org/i.png" title="Ti"></p>'
    )


def test_non_semantic_tags_are_unwrapped_keeping_their_text():
    html = mini(f"<p><font color=red>{PARA}</font> <span>and</span> <my-widget>more</my-widget></p>")
    assert body_of(html) == f"<p>{PARA} and more</p>"


def test_head_keeps_title_and_structured_meta_only():
    head = (
        "<title> The  Title </title><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        "<meta property='og:title' content='OG title'><meta name='twitter:card' content='summary'>"
        "<meta property='og:image' content='/og.png'><meta name='description' content='plain'>"
        "<link rel='stylesheet' href='x.css'>"
    )
    page = minimize(f"<html lang='de'><head>{head}</head><body><p>{PARA}</p></body></html>", URL)
    assert page.html.startswith(
        '<html lang="de"><head><title>The Title</title><meta content="OG title" property="og:title">'
        '<meta content="summary" name="twitter:card"><meta content="https://example.org/og.png" '
        'property="og:image"></head><body>'
    )
    assert page.title == "The Title" and page.lang == "de"


def test_lazy_loaded_images_use_their_real_source():
    html = mini(
        f"<p>{PARA}</p><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw=' data-src='/real.jpg' alt='Real'>"
        "<img srcset='/s-400.jpg 400w, /s-800.jpg 800w' alt='Set'>"
    )
    assert '<img alt="Real" src="https://example.org/real.jpg">' in html
    assert '<img alt="Set" src="https://example.org/s-400.jpg">' in html


def test_images_without_an_absolute_source_are_dropped():
    page = minimize(f"<p>{PARA}<img src='/rel.png' alt='rel'><img alt='none'></p>".encode())
    assert "<img" not in page.html and page.images == ()


def test_bem_parts_are_read_separately():
    html = mini(
        f"<p>{PARA}</p><div class='entry-author__description'>The author writes about law.</div>"
        "<div class='TestReport__AuthorBox'>Editor bio words</div>"
    )
    assert body_of(html) == f"<p>{PARA}</p>"


def test_over_long_attribute_values_are_dropped_but_a_long_src_is_kept():
    long_path = "/" + "x" * 40
    page = (
        f"<p>{PARA} <a href='{long_path}' title='Short'>link</a> <span itemprop='{'y' * 40}'>span</span></p>"
    )
    page += f"<img src='{long_path}.png' alt='{'z' * 40}' title='Pic'>"
    html = minimize(
        f"<html><body>{page}</body></html>".encode(), URL, limits=Limits(max_attribute_chars=30)
    ).html
    assert body_of(html) == (
        f'<p>{PARA} <a title="Short">link</a> span</p>'
        f'<img src="https://example.org{long_path}.png" title="Pic">'
    )
