"""Rewriting `<img src>` in minimal HTML (the pipeline writes the 256 VQGAN codes into src with it)."""

from collections.abc import Mapping

from lxml import etree

from .serialize import serialize, sort_attributes

_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, default_doctype=False)


def parse_minimal(html: str) -> etree._Element:
    """Parse minimal HTML (ours, or kept in the same serialisation by c4_filters) into an lxml tree."""
    root = etree.fromstring(html, _PARSER) if html.strip() else None
    if root is None:
        root = etree.fromstring("<html><body></body></html>", _PARSER)
    return root


def replace_images(html: str, new_src: Mapping[str, str | None]) -> str:
    """Give each `<img>` whose src is a key of `new_src` that value as src; a None value removes the `<img>`.

    The removed image's tail text stays in place; images whose src is not a key are left untouched.
    The result uses the same deterministic serialisation as `minimize`.
    """
    root = parse_minimal(html)
    _replace(root, new_src)
    sort_attributes(root)
    return serialize(root)


def replace_images_and_prune(html: str, new_src: Mapping[str, str | None]) -> tuple[str, int]:
    """`prune_empty(replace_images(html, new_src))` on one parsed tree: the image rewrite and the final
    empty-element rule of the job and the opt-out replay, parsed and serialised once."""
    root = parse_minimal(html)
    _replace(root, new_src)
    removed = _prune(root)
    sort_attributes(root)
    return serialize(root), removed


def _replace(root: etree._Element, new_src: Mapping[str, str | None]) -> None:
    for img in list(root.iter("img")):
        src = img.get("src")
        if src is None or src not in new_src:
            continue
        replacement = new_src[src]
        if replacement is None:
            _remove_keep_tail(img)
        else:
            img.set("src", replacement)


def _remove_keep_tail(el: etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


# kept without text: an image; a line break between two texts (layout); table cells, which keep the columns of
# a row that has content elsewhere (a row or table without any goes whole)
_KEEP_EMPTY = frozenset(["img", "br", "td", "th"])
# an empty element of these between two texts still ends a line: it becomes a <br>, so the lines stay apart
_LINE_ENDING = frozenset(
    """p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table tr blockquote pre figure figcaption article section
    main details summary address hr""".split()
)


_SEPARATED = _LINE_ENDING | {"br"}  # already on a line of its own


def prune_empty(html: str) -> tuple[str, int]:
    """CM3 §3.1's rule on the final document: an element without text or an image goes (its tail stays).
    Run last, after every removal (C4 lines, images that failed, furniture images), so that their wrappers
    (`<a>`, `<figure>`, `<div>`, `<p>`) go too. Returns the document and how many elements went."""
    root = parse_minimal(html)
    removed = _prune(root)
    if not removed:
        return html, 0
    sort_attributes(root)
    return serialize(root), removed


def _prune(root: etree._Element) -> int:
    """prune_empty on a parsed tree: how many elements went."""
    body = root.find("body")
    if body is None:
        return 0
    removed = [0]

    def visit(el: etree._Element) -> bool:
        """Prunes el's children; True when el holds text or an image."""
        content = el.tag == "img" or bool(el.text and not el.text.isspace())
        for child in list(el):
            if visit(child):
                content = True
            elif child.tag in _KEEP_EMPTY:
                pass
            elif child.tag in _LINE_ENDING and _text_around(el, child):
                line_break = etree.Element("br")
                line_break.tail = child.tail
                child.addprevious(line_break)
                el.remove(child)
                removed[0] += 1
                child = line_break
            else:
                has_tail = bool(child.tail and not child.tail.isspace())
                _remove_keep_tail(child)
                removed[0] += 1
                content = content or has_tail
                continue
            if child.tail and not child.tail.isspace():
                content = True
        removed[0] += _drop_edge_breaks(el)
        return content

    try:
        visit(body)
    finally:
        visit = None  # noqa: F841  (a recursive closure is a reference cycle: it would keep the tree alive)
    return removed[0]


def _text_around(parent: etree._Element, child: etree._Element) -> bool:
    """Inline content (text, a link, an image) on both sides of child: removing it would join two lines."""
    prev, following = child.getprevious(), child.getnext()
    if prev is None:
        before = bool(parent.text and not parent.text.isspace())
    else:
        before = bool(prev.tail and not prev.tail.isspace()) or prev.tag not in _SEPARATED
    after = bool(child.tail and not child.tail.isspace()) or (
        following is not None and following.tag not in _SEPARATED
    )
    return before and after


def _drop_edge_breaks(el: etree._Element) -> int:
    """A <br> with nothing before or after it in its element separates nothing."""
    dropped = 0
    while len(el) and el[0].tag == "br" and not (el.text and not el.text.isspace()):
        _remove_keep_tail(el[0])
        dropped += 1
    while len(el) and el[-1].tag == "br" and not (el[-1].tail and not el[-1].tail.isspace()):
        _remove_keep_tail(el[-1])
        dropped += 1
    return dropped
