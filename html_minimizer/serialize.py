"""Deterministic HTML serialisation shared by `minimize` and `replace_images`.

Same tree -> same bytes on every machine: lower-case tags, attributes sorted by name (the CM3 paper relies
on `alt` before `src`), values always double-quoted, `&<>"` escaped, comments dropped, whitespace runs
collapsed to one space and removed next to block boundaries.
"""

import re

from lxml import etree

VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
BLOCK_TAGS = frozenset(
    """html head body title meta p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr td th
    caption blockquote pre figure figcaption article section main br hr details summary address""".split()
)

_WS = re.compile(r"\s+")
_BLOCK_ALT = "|".join(sorted(BLOCK_TAGS, key=lambda t: (-len(t), t)))
# a space next to a block tag is not rendered, so it is not part of the content
_SPACE_AT_BLOCK = re.compile(rf" ?(</?(?:{_BLOCK_ALT})(?: [^>]*)?>) ?")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def escape_text(text: str) -> str:
    return _WS.sub(" ", text).translate(_TEXT_ESCAPES)


def start_tag(tag: str, attrib) -> str:
    """`<tag a="1" b>` with attributes sorted by name; an empty value is written as a bare name."""
    if not attrib:
        return f"<{tag}>"
    parts = [tag]
    for name, value in sorted(attrib.items()):
        parts.append(f'{name}="{value.translate(_ATTR_ESCAPES)}"' if value else name)
    return "<" + " ".join(parts) + ">"


def serialize(root: etree._Element) -> str:
    """Serialise an lxml tree whose tags and attribute names are already clean (lower-case, valid)."""
    out: list[str] = []
    append = out.append
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag
        if not isinstance(tag, str):  # comment / processing instruction: only its tail is content
            if event == "end" and el.tail:
                append(escape_text(el.tail))
            continue
        if event == "start":
            append(start_tag(tag, el.attrib))
            if el.text:
                append(escape_text(el.text))
        else:
            if tag not in VOID_TAGS:
                append(f"</{tag}>")
            if el.tail and el is not root:
                append(escape_text(el.tail))
    return _SPACE_AT_BLOCK.sub(r"\1", "".join(out))
