"""Page furniture found by signals other than tags: furniture images (size, folder, alt, home link), metadata
bars, sidebar widgets, next/previous-post teasers and compound class names (issue 13)."""

import pytest

from html_minimizer import minimize

URL = "https://example.org/news/story.html"
PARA = "A paragraph of real article text that is long enough to count as the content of this page."
PHOTO = "https://example.org/media/2019/06/harbour.jpg"


def page(body: str):
    return minimize(f"<html><head></head><body><p>{PARA}</p>{body}</body></html>".encode(), URL)


def images_of(body: str) -> list[str]:
    return [image.src for image in page(body).images]


@pytest.mark.parametrize(
    "furniture",
    [
        "<img src='/i/rss.png' width='16' height='16'>",  # icon-sized
        "<img src='/t/pixel' width='1' height='1'>",  # tracking pixel
        "<img src='/themes/site/icons/print.png'>",  # a folder of icons
        "<img src='https://secure.gravatar.com/avatar/ab12cd'>",
        "<img src='/media/brand.png' alt='Company logo'>",  # a short alt naming a logo
        "<a href='/'><img src='/media/brand.png'></a>",  # the image of a link to the home page
        "<img class='author-avatar' src='/media/jane.jpg'>",  # class words
    ],
)
def test_a_furniture_image_goes(furniture):
    result = page(furniture)
    assert result.images == ()
    assert dict(result.removed).get("furniture_image", 0) + dict(result.removed).get("hinted", 0) == 1


@pytest.mark.parametrize(
    "content",
    [
        f"<img src='{PHOTO}' alt='The harbour at dawn'>",
        f"<img src='{PHOTO}' width='1200' height='800' alt='Shop front with the new logo'>",  # large photo
        f"<a href='/news/harbour'><img src='{PHOTO}'></a>",  # a link to another page, not home
        f"<img src='{PHOTO}' width='640' height='40'>",  # a thin banner is still not icon-sized
    ],
)
def test_a_content_image_stays(content):
    assert images_of(content) == [PHOTO]


def test_a_metadata_bar_goes_but_prose_with_a_pipe_stays():
    result = page(
        "<div>May 3, 2019 | Jane Doe | Politics | <a href='#c'>4 comments</a></div>"
        "<p>The vote was close | and everyone in the hall knew that the result would be contested.</p>"
    )
    html = result.html
    assert "Jane Doe" not in html and "everyone in the hall" in html
    assert dict(result.removed)["meta_bar"] == 1


def test_a_sidebar_widget_goes_but_a_page_builder_widget_stays():
    html = page(
        "<div class='widget widget_recent_entries'><p>Recent: a short teaser</p></div>"
        f"<div class='elementor-widget'><div class='elementor-widget-container'><p>{PARA} Builder.</p></div></div>"
    ).html
    assert "Recent: a short teaser" not in html and "Builder." in html


def test_next_post_teasers_and_two_word_compounds_inside_a_class_name_are_hints():
    html = page(
        "<div class='nextpost'><p>Next: another story</p></div>"
        "<div class='next-post-thumbnails'><p>More stories</p></div>"
        "<div id='mvp-author-box-text'><p>Senior editor. Follow me on social media.</p></div>"
    ).html
    assert "another story" not in html and "More stories" not in html and "Senior editor" not in html
