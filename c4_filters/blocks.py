"""Minimal HTML as C4 "lines": paragraph-like blocks, and removing them.

A block is a run of inline content (text, <a>, <b>, <img> ...) inside one block-level element, cut at
block-level children and at <br>/<hr>: `<div>intro<p>para</p>after</div>` has three blocks, "intro",
"para" and "after". Every non-empty image alt is a block of its own, right after the block holding the
image. Blocks are numbered in document order; `clean_html`, `span_hashes` and `drop_spans` all read them
the same way, which is what makes dedup indices line up.

Parsing, pruning the elements removals emptied and writing the tree back are html_minimizer.tree's (one
owner of the minimal-HTML tree), so cleaned pages keep the minimizer's serialisation byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from lxml import etree

from html_minimizer.tree import BLOCK_TAGS, blank

# tags that end a line when reading blocks (HTML's block-level elements plus line breaks)
LINE_BREAKING_TAGS = BLOCK_TAGS | frozenset(
    """aside center dialog fieldset footer form header hgroup legend menu nav noscript optgroup option
    search select textarea""".split()
)

_NON_SPACE = re.compile(r"\S+")


def normalise(text: str) -> str:
    """Whitespace runs -> one space, stripped: the line text the rules see."""
    return " ".join(text.split())


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
    elif not blank(prev.tail):
        before = prev.tail
    else:
        before = None if prev.tag == "br" or not _is_element(prev) else "".join(prev.itertext())
    before = (before or "").rstrip().rstrip(_CLOSERS)
    if not before or before[-1] in _LINE_ENDS:
        return False
    if not blank(br.tail):
        return True
    following = br.getnext()
    return following is not None and following.tag not in LINE_BREAKING_TAGS and _is_element(following)


def read_blocks(root: etree._Element, exempt_tags: Collection[str]) -> list[Block]:
    """All blocks with non-blank text, in document order (see module docstring)."""
    exempt_tags = frozenset(exempt_tags)  # looked up once per element
    breaking = line_breaking_elements(root)
    blocks: list[Block] = []

    def flush(container: etree._Element, lead: etree._Element | None, inlines: list, exempt: bool) -> None:
        if not inlines and blank(container.text if lead is None else lead.tail):
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
