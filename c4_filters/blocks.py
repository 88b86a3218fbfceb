"""Minimal HTML as C4 "lines": parsing, paragraph-like blocks, removing blocks, deterministic serialisation.

A block is a run of inline content (text, <a>, <b>, <img> ...) inside one block-level element, cut at
block-level children and at <br>/<hr>: `<div>intro<p>para</p>after</div>` has three blocks, "intro",
"para" and "after". Every non-empty image alt is a block of its own, right after the block holding the
image. Blocks are numbered in document order; `clean_html`, `span_hashes` and `drop_spans` all read them
the same way, which is what makes dedup indices line up.

Serialisation follows html_minimizer's rules so cleaned pages stay byte-compatible with its output: lower-case
tags, attributes sorted by name, values always double-quoted, `&<>"` escaped (libxml2's XML escaping, whose
empty-element syntax becomes HTML: `<br>`, `<td></td>`), no comments, whitespace runs collapsed to one space
and dropped next to block tags.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from lxml import etree

VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# tags next to which html_minimizer drops a space (byte compatibility of the serialisation)
SPACING_BLOCK_TAGS = frozenset(
    """html head body title meta p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr td th
    caption blockquote pre figure figcaption article section main br hr details summary address""".split()
)
# tags that end a line when reading blocks (HTML's block-level elements plus line breaks)
LINE_BREAKING_TAGS = SPACING_BLOCK_TAGS | frozenset(
    """aside center dialog fieldset footer form header hgroup legend menu nav noscript optgroup option
    search select textarea""".split()
)
_KEEP_ALWAYS = frozenset({"html", "head", "body"})
# void elements that carry something (an image, metadata); <br>, <hr>, <wbr> only separate text
_CONTENT_VOID_TAGS = VOID_TAGS - {"br", "hr", "wbr"}


_NON_SPACE = re.compile(r"\S+")


def normalise(text: str) -> str:
    """Whitespace runs -> one space, stripped: the line text the rules see."""
    return " ".join(text.split())


# characters lxml refuses in text it is given (libxml2 may still parse them into the tree)
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def parse(html: str) -> etree._Element | None:
    """The <html> root of `html`, or None when there is no document (empty / whitespace / unparseable).

    Control characters (and lone surrogates) are dropped first, and those that character references put
    into the tree (`&#1;`, `&#xFFFE;`) after parsing: they are no text, and lxml would refuse the edited
    text nodes and attributes that still contained them."""
    parser = etree.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(_NOT_XML_TEXT.sub("", html).encode("utf-8"), parser)
    except (etree.ParserError, ValueError):
        return None
    if root is not None and "&#" in html:
        _drop_referenced_controls(root)
    return root


def _drop_referenced_controls(root: etree._Element) -> None:
    for node in root.iter():
        if node.text and _NOT_XML_TEXT.search(node.text):
            node.text = _NOT_XML_TEXT.sub("", node.text)
        if node.tail and _NOT_XML_TEXT.search(node.tail):
            node.tail = _NOT_XML_TEXT.sub("", node.tail)
        for name, value in node.attrib.items():
            if _NOT_XML_TEXT.search(value):
                node.attrib[name] = _NOT_XML_TEXT.sub("", value)


def _is_element(node: etree._Element) -> bool:
    return isinstance(node.tag, str)


@dataclass
class Block:
    """One line. For text blocks: the run starts in `container.text` (lead None) or in `lead.tail`, and
    continues through `inlines` (each with its tail). For alt blocks: `image` holds the alt attribute."""

    index: int
    text: str
    exempt: bool
    container: etree._Element | None = None
    lead: etree._Element | None = None
    inlines: list[etree._Element] = field(default_factory=list)
    image: etree._Element | None = None

    @property
    def is_alt(self) -> bool:
        return self.image is not None

    def text_slots(self) -> Iterator[tuple[etree._Element, str]]:
        """(element, "text" | "tail") for every text node of the run, in document order."""
        if self.is_alt:
            return
        yield (self.container, "text") if self.lead is None else (self.lead, "tail")
        for inline in self.inlines:
            for node in inline.iter():
                if _is_element(node):
                    yield node, "text"
                if node is not inline:
                    yield node, "tail"
            yield inline, "tail"

    def current_text(self) -> str:
        if self.is_alt:
            return normalise(self.image.get("alt") or "")
        # a <br> left inside a run (a soft wrap, see is_soft_wrap) separates two words
        return normalise(
            "".join(
                " " if el.tag == "br" and slot == "text" else getattr(el, slot) or ""
                for el, slot in self.text_slots()
            )
        )

    def cut_text(self, spans: list[tuple[int, int]]) -> None:
        """Removes the characters that make up `self.text[start:end]` for each (start, end) from the tree,
        in whichever text nodes (or the alt attribute) they lie; the whitespace around them stays, so
        the words before and after keep their separation. Elements left empty are pruned later."""
        if self.is_alt:
            (alt,) = cut_normalised([self.image.get("alt") or ""], spans)
            self.image.set("alt", alt)
        else:
            slots = list(self.text_slots())
            values = cut_normalised([getattr(el, slot) or "" for el, slot in slots], spans)
            for (el, slot), value in zip(slots, values, strict=True):
                setattr(el, slot, value or None)
        self.text = self.current_text()


def cut_normalised(parts: list[str], spans: list[tuple[int, int]]) -> list[str]:
    """`parts` with the characters removed that make up `normalise("".join(parts))[start:end]` for each
    span: a normalised character is a raw non-space character, or the whole raw space run between two
    words."""
    raw = "".join(parts)
    ranges = []  # raw (start, end) of each character of normalise(raw)
    previous_end = None
    for word in _NON_SPACE.finditer(raw):
        if previous_end is not None:
            ranges.append((previous_end, word.start()))  # the space run between two words
        ranges.extend((i, i + 1) for i in range(word.start(), word.end()))
        previous_end = word.end()
    doomed = bytearray(len(raw))
    for start, end in spans:
        for raw_start, raw_end in ranges[max(start, 0) : max(end, 0)]:
            doomed[raw_start:raw_end] = b"\x01" * (raw_end - raw_start)
    out, offset = [], 0
    for part in parts:
        out.append("".join(c for i, c in enumerate(part, offset) if not doomed[i]))
        offset += len(part)
    return out


def line_breaking_elements(root: etree._Element) -> set[etree._Element]:
    """Elements that are line-breaking tags or contain one: everything else is inline content."""
    found: set[etree._Element] = set()
    for el in root.iter(etree.Element):
        if el.tag in LINE_BREAKING_TAGS and el not in found and not (el.tag == "br" and is_soft_wrap(el)):
            node = el
            while node is not None and node not in found:
                found.add(node)
                node = node.getparent()
    return found


# a line that ends with one of these (closing quotes and brackets aside) ends a sentence or announces a list
_LINE_ENDS = frozenset(".!?:;…")
_CLOSERS = "\"'”’»)]"


def is_soft_wrap(br: etree._Element) -> bool:
    """A `<br>` inside a sentence: prose hard-wrapped at a fixed width ("over the lazy<br>dog"). It joins its
    two lines into one, so the C4 line rules judge the whole sentence, not fragments without an end mark.
    A `<br>` after a sentence end or a colon, next to another `<br>`, or with no text on one side breaks."""
    prev = br.getprevious()
    if prev is None:
        before = br.getparent().text
    elif not _blank(prev.tail):
        before = prev.tail
    else:
        before = None if prev.tag == "br" or not _is_element(prev) else "".join(prev.itertext())
    before = (before or "").rstrip().rstrip(_CLOSERS)
    if not before or before[-1] in _LINE_ENDS:
        return False
    if not _blank(br.tail):
        return True
    following = br.getnext()
    return following is not None and following.tag not in LINE_BREAKING_TAGS and _is_element(following)


def read_blocks(root: etree._Element, exempt_tags: Collection[str]) -> list[Block]:
    """All blocks with non-blank text, in document order (see module docstring)."""
    exempt_tags = frozenset(exempt_tags)  # looked up once per element
    breaking = line_breaking_elements(root)
    blocks: list[Block] = []

    def flush(container: etree._Element, lead: etree._Element | None, inlines: list, exempt: bool) -> None:
        if not inlines and _blank(container.text if lead is None else lead.tail):
            return  # the common case between nested block elements
        block = Block(len(blocks), "", exempt, container, lead, inlines)
        block.text = block.current_text()
        if block.text:
            blocks.append(block)
        for inline in inlines:
            for image in inline.iter("img"):
                alt = normalise(image.get("alt") or "")
                if alt:
                    blocks.append(Block(len(blocks), alt, "img" in exempt_tags, image=image))

    def walk(container: etree._Element, exempt: bool) -> None:
        exempt = exempt or container.tag in exempt_tags
        lead, inlines = None, []
        for child in container:
            if child in breaking:
                flush(container, lead, inlines, exempt)
                walk(child, exempt)
                lead, inlines = child, []
            else:
                inlines.append(child)
        flush(container, lead, inlines, exempt)

    try:
        walk(root, False)
    finally:
        walk = None  # noqa: F841  (a recursive closure is a reference cycle: it would keep the tree alive)
    return blocks


def _strip_text_keep_images(inline: etree._Element) -> None:
    inline.tail = None
    for node in inline.iter():
        if _is_element(node):
            node.text = None
        if node is not inline:
            node.tail = None

    def prune(node: etree._Element) -> None:
        for child in list(node):
            if child.tag == "img":
                continue
            if next(child.iter("img"), None) is None:
                node.remove(child)
            else:
                prune(child)

    try:
        prune(inline)
    finally:
        prune = None  # noqa: F841  (break the recursive closure's reference cycle)


def remove_block(block: Block) -> None:
    """Removes the block's text from the tree; images inside it stay (their alt is a block of its own)."""
    if block.is_alt:
        del block.image.attrib["alt"]
        return
    if block.lead is None:
        block.container.text = None
    else:
        block.lead.tail = None
    for inline in block.inlines:
        if inline.tag == "img" or next(inline.iter("img"), None) is not None:
            _strip_text_keep_images(inline)
        else:
            inline.getparent().remove(inline)  # its tail (part of the run) goes with it


def _blank(text: str | None) -> bool:
    return not text or text.isspace()


def _remove_keeping_tail(el: etree._Element, had_space: bool) -> None:
    parent, prev = el.getparent(), el.getprevious()
    before = (prev.tail if prev is not None else parent.text) or ""
    tail = el.tail or ""
    if before and tail:
        if before[-1].isspace() and tail[0].isspace():
            tail = tail.lstrip()
        elif had_space and not before[-1].isspace() and not tail[0].isspace():
            tail = " " + tail
    if prev is not None:
        prev.tail = (before + tail) or None
    else:
        parent.text = (before + tail) or None
    parent.remove(el)


def prune_empty(root: etree._Element) -> None:
    """Drops elements left without text, image or other content-carrying void element (as html_minimizer
    does), line breaks with nothing to separate included, except where that would join two lines."""
    has_text: dict[etree._Element, bool] = {}
    has_content: dict[etree._Element, bool] = {}
    for el in reversed(list(root.iter())):
        if not _is_element(el):
            has_text[el] = has_content[el] = False
            continue
        text = not _blank(el.text) or any(has_text[c] or not _blank(c.tail) for c in el)
        has_text[el] = text
        has_content[el] = text or el.tag in _CONTENT_VOID_TAGS or any(has_content[c] for c in el)
    breaking = line_breaking_elements(root)

    def content_before_in_line(el: etree._Element) -> bool:
        prev = el.getprevious()
        while prev is not None:
            if not _blank(prev.tail):
                return True
            if prev in breaking:
                return False
            if has_content[prev]:
                return True
            prev = prev.getprevious()
        return not _blank(el.getparent().text)

    def content_after_in_line(el: etree._Element) -> bool:
        if not _blank(el.tail):
            return True
        following = el.getnext()
        while following is not None and following not in breaking:
            if has_content[following] or not _blank(following.tail):
                return True
            following = following.getnext()
        return False

    def visit(el: etree._Element) -> None:
        for child in list(el):
            if not _is_element(child) or has_content[child] or child.tag in _KEEP_ALWAYS:
                if _is_element(child):
                    visit(child)
                continue
            if child in breaking and content_after_in_line(child) and content_before_in_line(child):
                continue  # removing it would join two lines
            if child.tag == "br" and is_soft_wrap(child):
                continue  # removing it would join two words
            had_space = any(n.text for n in child.iter() if _is_element(n)) or any(
                n.tail for n in child.iter() if n is not child
            )
            _remove_keeping_tail(child, had_space)

    try:
        visit(root)
    finally:
        visit = None  # noqa: F841  (break the recursive closure's reference cycle)


_SIMPLE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*\Z")
_CHILDLESS = etree.XPath("descendant-or-self::*[not(node())]")
_SPACING_ALTERNATION = "|".join(sorted(SPACING_BLOCK_TAGS, key=lambda t: (-len(t), t)))
_SPACE_BEFORE_BLOCK = re.compile(rf" (?=</?(?:{_SPACING_ALTERNATION})[ >])")
_SPACE_AFTER_BLOCK = re.compile(rf"(</?(?:{_SPACING_ALTERNATION})(?: [^>]*)?>) ")
_PRE = re.compile(r"(<pre(?: [^>]*)?>.*?</pre>)", re.S)
_ESCAPED_WHITESPACE = re.compile(r"&#(?:9|10|13);")


def _writable(name: str) -> bool:
    """A tag or attribute name that reads back as itself once written (junk markup parses into others)."""
    if _SIMPLE_NAME.match(name):
        return True
    return bool(name) and not any(c.isspace() or c in "\"'<>/=&" for c in name)


def _make_writable(root: etree._Element) -> None:
    """Attributes in name order; junk tag names become <span>, junk attribute names are dropped."""
    for el in root.iter():
        if not _is_element(el):
            continue
        if not _writable(el.tag):
            el.tag = "span"
        items = el.attrib.items()
        if items and (items != sorted(items) or not all(_writable(name) for name, _ in items)):
            el.attrib.clear()
            for name, value in sorted(items):
                if _writable(name):
                    try:
                        el.set(name, value)
                    except ValueError:  # a name lxml will not create (e.g. with a namespace prefix)
                        pass


def serialise(root: etree._Element) -> str:
    """Deterministic text for the same tree (see module docstring).

    Works on a copy in a fresh document: a source with an XHTML doctype would switch libxml2 to XHTML output
    (`<br />`, added `xmlns` and `xml:lang`)."""
    root = copy.deepcopy(root)
    _make_writable(root)
    for el in _CHILDLESS(root):
        if el.tag not in VOID_TAGS:
            el.text = ""  # written as <td></td>: every "/>" left in the XML output closes a void element
    html = etree.tostring(root, encoding=str, with_tail=False).replace("/>", ">")
    if "&#" in html:
        html = _ESCAPED_WHITESPACE.sub(" ", html)
    if "<pre" not in html:
        return _collapse(html)
    parts = _PRE.split(html)  # odd items: <pre>...</pre>, whose whitespace a browser renders: kept as is
    return "".join(part if i % 2 else _collapse(part) for i, part in enumerate(parts))


def _collapse(html: str) -> str:
    html = _SPACE_BEFORE_BLOCK.sub("", " ".join(html.split()))
    return _SPACE_AFTER_BLOCK.sub(r"\1", html)
