"""clean_html on html_minimizer.minimize output: same serialisation rules, images kept."""

import re

import pytest

from c4_filters import C4Stats, clean_html
from html_minimizer import minimize

RAW = """<!doctype html><html lang=en><head><title>Walking by the river</title><script>var x = 1;</script>
<meta property="og:title" content="River"></head><body><nav><a href=/>Home</a></nav><article>
<h1>The old town</h1><p class=lead>The river flows slowly through the old town in the early morning.</p>
<p>Many visitors come <a href="/visit" class=x>here</a> every summer to walk along the quiet banks.</p>
<figure><img src="/img/bridge.jpg" alt="The old bridge" width=10><figcaption>The bridge, 1850</figcaption></figure>
<p>Local families have lived in these stone houses for several generations.</p>
<p>Share this page</p></article><footer>Copyright 2024</footer></body></html>"""


def test_minimized_page_keeps_its_bytes_where_nothing_fails():
    page = minimize(RAW, url="https://example.org/walks/")
    result = clean_html(page.html)
    assert "Share this page" in page.html
    assert result.html == page.html.replace("<p>Share this page</p>", "")
    assert clean_html(result.html).html == result.html


@pytest.mark.slow
def test_minimized_real_pages_keep_every_image(shared_dir):
    stats = C4Stats()
    for path in sorted((shared_dir / "data/boilerplate-dev/pages").glob("*.html")):
        page = minimize(path.read_bytes(), url="https://example.org/page")
        result = clean_html(page.html, stats=stats)
        if result is not None:
            kept = re.findall(r'<img [^>]*src="([^"]*)"', result.html)
            assert kept == [image.src.replace("&", "&amp;") for image in page.images]
    assert stats["page:kept"] >= 10
