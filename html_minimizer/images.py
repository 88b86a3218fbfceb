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
    for img in list(root.iter("img")):
        src = img.get("src")
        if src is None or src not in new_src:
            continue
        replacement = new_src[src]
        if replacement is None:
            _remove_keep_tail(img)
        else:
            img.set("src", replacement)
    sort_attributes(root)
    return serialize(root)


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
