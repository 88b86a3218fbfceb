"""Tree edits of `minimize` beyond removing an element (html_minimizer.tree): unwrapping, folding <div> runs,
closing a heading that swallowed the article, keeping the tree as an HTML parser would read it back, and
cleaning the attributes of what stays (CM3 §3.1: only structured and link/image attributes stay)."""

from lxml import etree

from .rules import BLOCKS_IN_P, HEADING_MAX_CHARS, KEEP_EMPTY_TAGS, STRUCTURED_ATTRS, TAG_ATTRS
from .tree import remove_keeping_tail
from .urls import PageUrls

# markers given to elements as tags, then unwrapped / removed by one call in C
UNWRAP = "html-minimizer-unwrap"
DOOMED = "html-minimizer-doomed"
text_len = etree.XPath("string-length(normalize-space(string()))")
_ALLOWED_ATTRS = {tag: STRUCTURED_ATTRS | names for tag, names in TAG_ATTRS.items()}
# table parts that an HTML parser drops or moves when they are outside any table (see keep_parse_stable)
_TABLE_PARTS = frozenset("tr td th thead tbody tfoot caption".split())
_LINKS_AND_TABLE_PARTS = ("a", *sorted(_TABLE_PARTS))


def remove_if_emptied(el: etree._Element | None) -> None:
    """Remove el if removals left it without text or children (and so on up), as the walk would have."""
    while (
        el is not None
        and el.tag not in ("body", "html")
        and el.tag not in KEEP_EMPTY_TAGS
        and not len(el)
        and not (el.text or "").strip()
    ):
        parent = el.getparent()
        remove_keeping_tail(el)
        el = parent


def remove_with_emptied_parents(el: etree._Element) -> None:
    """Remove el, and the containers that held nothing else (no text, no other element)."""
    parent = el.getparent()
    remove_keeping_tail(el)
    while parent is not None and parent.tag != "body" and not len(parent) and not (parent.text or "").strip():
        el, parent = parent, parent.getparent()
        remove_keeping_tail(el)


def clean_attributes(body: etree._Element, holders: list, urls: PageUrls, max_chars: int) -> None:
    """Surviving elements keep only their allowed attributes, cleaned (URLs resolved, whitespace collapsed,
    over-long values but a data: src dropped) and re-inserted in name order; every other attribute
    (class, style, data-* ...) goes in one C call."""
    kept = []
    for el in holders:
        tag = el.tag
        allowed = _ALLOWED_ATTRS.get(tag, STRUCTURED_ATTRS)
        final = {
            name: " ".join(value.split())
            for name, value in el.items()
            if name in allowed and (len(value) <= max_chars or name == "src")
        }
        if tag == "img":
            final["src"] = urls.image_src(el)
        elif tag == "a" and "href" in final:
            href = urls.resolve(final["href"])
            if href is None:
                del final["href"]
            else:
                final["href"] = href
        elif tag == "span" and not final:
            el.tag = UNWRAP
        if final:
            kept.append((el, final))
    etree.strip_attributes(body, "{}*")
    for el, final in kept:
        for name in sorted(final):
            el.set(name, final[name])


def fold_divs(body: etree._Element) -> None:
    """div > div > div with no text between them -> one div with the merged attributes: the inner divs
    are unwrapped in one C call (whitespace left between them goes when serialising, next to block tags)."""
    folded = False
    # a div whose only child is a div (iterating in Python costs less than the XPath with count(*))
    heads = [d for d in body.iter("div") if len(d) == 1 and d[0].tag == "div"]
    for outer in heads:
        if outer.tag != "div":  # folded into the div above it
            continue
        node, merged = outer, None
        while len(node) == 1:
            inner = node[0]
            if inner.tag != "div" or (node.text or "").strip() or (inner.tail or "").strip():
                break
            if len(inner.attrib):
                attributes = _merge_attributes(outer.attrib if merged is None else merged, inner.attrib)
                if attributes is None:
                    break
                merged = attributes
            inner.tag = UNWRAP
            node = inner
            folded = True
        if merged is not None:
            outer.attrib.clear()
            for name in sorted(merged):
                outer.set(name, merged[name])
    if folded:
        etree.strip_tags(body, UNWRAP)


def _merge_attributes(a, b) -> dict[str, str] | None:
    """Union of two attribute sets; None when they disagree (two itemscopes stay two elements)."""
    merged = dict(a)
    for name, value in b.items():
        if name in merged and merged[name] != value:
            return None
        merged[name] = value
    if "itemscope" in a and "itemscope" in b:
        return None
    return merged


def keep_parse_stable(body: etree._Element, paragraphs: list) -> None:
    """Unwrapping can put a block inside a <p> (or a link inside a link), which an HTML parser would split
    when reading the minimal HTML back; such a <p> becomes a <div>, the inner link, like table cells and
    rows outside any table, loses its tag. `paragraphs`: those the walk saw holding a block."""
    for p in paragraphs:
        if next(p.iterdescendants(*BLOCKS_IN_P), None) is not None:  # still, after the removals
            p.tag = "div"
    # one pass over the tree for both (an XPath per question walks it once each)
    misplaced = [el for el in body.iter(*_LINKS_AND_TABLE_PARTS) if _misplaced(el)]
    if misplaced:
        for el in misplaced:
            el.tag = UNWRAP
        etree.strip_tags(body, UNWRAP)


def _misplaced(el: etree._Element) -> bool:
    """A link inside a link, or a table part outside any table."""
    if el.tag == "a":
        return next(el.iterancestors("a"), None) is not None
    return next(el.iterancestors("table"), None) is None


def close_swallowing_heading(heading: etree._Element) -> bool:
    """`<h2><a>Title</h3><p>...`: a browser closes the heading at the wrong end tag, libxml2 keeps it open
    (an inline element is open in between), so the heading swallows the article. A heading whose text comes
    before a block element and runs over HEADING_MAX_CHARS is closed before that block: the block and all
    that follows it inside the heading move after the heading, in order."""
    block = next(heading.iterdescendants(*BLOCKS_IN_P), None)
    if block is None or text_len(heading) <= HEADING_MAX_CHARS:
        return False
    if not _text_before(block, heading):
        return False  # <h2><div>Title</div>...</h2>: the heading's own text is inside the block
    moved: list = []
    node = block
    while node is not heading:
        moved += ([node] if node is block else []) + list(node.itersiblings())
        node = node.getparent()
    anchor = heading
    tail, heading.tail = heading.tail, None
    for el in moved:
        anchor.addnext(el)
        anchor = el
    anchor.tail = (anchor.tail or "") + (tail or "")
    return True


def _text_before(el: etree._Element, ancestor: etree._Element) -> bool:
    """Some text comes before el inside ancestor."""
    while el is not ancestor:
        parent = el.getparent()
        if parent.text and not parent.text.isspace():
            return True
        for sibling in el.itersiblings(preceding=True):
            if (sibling.tail and not sibling.tail.isspace()) or text_len(sibling):
                return True
        el = parent
    return False
