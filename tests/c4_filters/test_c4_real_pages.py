"""Both modes on the 106 labelled real pages of ../shared/data/boilerplate-dev (several languages).

The pages are reduced with plain lxml here (scripts, styles, head and non-structural attributes dropped), not
with html_minimizer, so these tests stand on their own.
"""

import json

import pytest
from lxml import etree

from c4_filters import C4Stats, clean_html, clean_page
from c4_filters.blocks import read_blocks
from html_minimizer.tree import serialize

DROP = ("script", "style", "noscript", "template", "svg", "iframe", "form", "head")
KEEP_ATTRIBUTES = {"a": {"href", "title"}, "img": {"alt", "src", "title"}, "html": {"lang"}}


def reduce_page(raw: bytes) -> etree._Element:
    root = etree.fromstring(raw, etree.HTMLParser(remove_comments=True, remove_pis=True))
    etree.strip_elements(root, *DROP, with_tail=False)
    for el in root.iter():
        for name in list(el.attrib):
            if name not in KEEP_ATTRIBUTES.get(el.tag, ()):
                del el.attrib[name]
    return root


@pytest.fixture(scope="module")
def real_pages(shared_dir):
    """(html, text, labels) per page: text is one line per block, like a WET file."""
    labels = {
        e["file"]: e
        for e in json.loads((shared_dir / "data/boilerplate-dev/evaldata.json").read_text()).values()
    }
    pages = []
    for path in sorted((shared_dir / "data/boilerplate-dev/pages").glob("*.html")):
        root = reduce_page(path.read_bytes())
        text = "\n".join(block.text for block in read_blocks(root, frozenset()))
        pages.append((serialize(root), text, labels.get(path.name)))
    return pages


PAGE_DROPS = (
    "page:lorem_ipsum",
    "page:curly_bracket",
    "page:too_few_sentences",
    "page:bad_words",
    "page:not_english",
)


@pytest.mark.slow
def test_plain_c4_on_real_pages_keeps_english_prose_and_drops_boilerplate(real_pages):
    stats = C4Stats()
    found_before = found_after = 0
    for _, text, labels in real_pages:
        cleaned = clean_page(text, stats=stats)
        if cleaned is not None and labels:
            found_before += sum(snippet in text for snippet in labels["without"])
            found_after += sum(snippet in cleaned for snippet in labels["without"])
    assert stats["page:read"] == len(real_pages)
    assert stats["page:kept"] + sum(stats[name] for name in PAGE_DROPS) == stats["page:read"]
    assert stats["page:kept"] >= 10 and stats["page:not_english"] >= 30
    assert found_after < found_before / 2


@pytest.mark.slow
def test_html_mode_on_real_pages_keeps_every_image_and_is_idempotent(real_pages):
    stats = C4Stats()
    for html, _, _ in real_pages:
        result = clean_html(html, stats=stats)
        if result is None:
            continue
        assert result.html.count("<img ") == html.count("<img ")
        assert clean_html(result.html) == result
    assert stats["page:kept"] >= 10
    assert stats["page:kept"] + sum(stats[name] for name in PAGE_DROPS) == stats["page:read"]
