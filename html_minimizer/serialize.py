"""Deterministic HTML serialisation shared by `minimize` and `replace_images`.

Same tree -> same bytes on every machine: lower-case tags, attributes sorted by name (the CM3 paper relies
on `alt` before `src`), values always double-quoted with `&<>"` escaped, comments dropped, whitespace runs
collapsed to one space and removed next to block boundaries. libxml2's XML serialiser does the escaping at
C speed; its empty-element syntax becomes HTML (`<br>`, `<td></td>`).
"""

import re

from lxml import etree

VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
BLOCK_TAGS = frozenset(
    """html head body title meta p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr td th
    caption blockquote pre figure figcaption article section main br hr details summary address""".split()
)


def _alternation(tags) -> str:
    return "|".join(sorted(tags, key=lambda t: (-len(t), t)))


_SPACE_BEFORE_BLOCK = re.compile(rf" (?=</?(?:{_alternation(BLOCK_TAGS)})[ >])")
_SPACE_AFTER_BLOCK = re.compile(rf"(</?(?:{_alternation(BLOCK_TAGS)})(?: [^>]*)?>) ")
_ATTR_WS = re.compile(r"&#(?:9|10|13);")
# a <pre> element with everything inside it (minimal HTML nests no <pre> in a <pre>: libxml2 closes it)
_PRE = re.compile(r"(<pre(?: [^>]*)?>.*?</pre>)", re.S)
_childless = etree.XPath("descendant-or-self::*[not(node())]")


def serialize(root: etree._Element) -> str:
    """Serialise an lxml element (without its tail) whose attributes were inserted in sorted order."""
    for el in _childless(root):
        if el.tag not in VOID_TAGS:
            el.text = ""  # written <td></td>, so that every "/>" left below closes a void element
    xml = etree.tostring(root, encoding=str, with_tail=False).replace("/>", ">")
    if "&#" in xml:
        xml = _ATTR_WS.sub(" ", xml)
    return collapse_whitespace(xml)


def collapse_whitespace(html: str) -> str:
    """Whitespace runs -> one space, none next to a block tag (a browser would not render it); inside
    `<pre>` whitespace is kept as it is (a browser renders it: code keeps its line breaks and indents)."""
    if "<pre" not in html:
        return _collapse(html)
    parts = _PRE.split(html)  # odd items: <pre>...</pre>, kept byte for byte
    return "".join(part if i % 2 else _collapse(part) for i, part in enumerate(parts))


def _collapse(html: str) -> str:
    html = _SPACE_BEFORE_BLOCK.sub("", " ".join(html.split()))
    return _SPACE_AFTER_BLOCK.sub(r"\1", html)


def escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def start_tag(tag: str, attrib) -> str:
    """`<tag a="1" b="">` with attributes sorted by name (for the few tags built as strings)."""
    parts = [tag]
    for name, value in sorted(attrib.items()):
        parts.append(f'{name}="{escape_text(value).replace(chr(34), "&quot;")}"')
    return "<" + " ".join(parts) + ">"


def sort_attributes(root: etree._Element) -> None:
    """Re-insert attributes in name order where a tree (parsed from someone else's output) has them unsorted."""
    for el in root.iter():
        attrib = el.attrib
        if len(attrib) > 1:
            items = attrib.items()
            if items != sorted(items):
                attrib.clear()
                for name, value in sorted(items):
                    attrib[name] = value
