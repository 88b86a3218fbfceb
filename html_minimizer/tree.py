"""The minimal-HTML tree, owned in one place: how pages and minimal HTML are parsed, how an element is removed,
which empty elements go (CM3 §3.1's rule: an element without text or image goes), how a tree is written, and
which images a document holds. `minimize`, `replace_images`, the C4 filters in HTML mode and the pipeline all
use these, so that a fix to one of them reaches every stage.

Serialisation: same tree -> same bytes on every machine: lower-case tags, attributes sorted by name (the CM3
paper relies on `alt` before `src`), values always double-quoted with `&<>"` escaped, comments dropped,
whitespace runs collapsed to one space and removed next to block boundaries. libxml2's XML serialiser does the
escaping at C speed; its empty-element syntax becomes HTML (`<br>`, `<td></td>`).
"""

import copy
import re
import threading

from lxml import etree

VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# tags next to which a space is not rendered, so the serialiser drops it
BLOCK_TAGS = frozenset(
    """html head body title meta p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr td th
    caption blockquote pre figure figcaption article section main br hr details summary address""".split()
)

# ---------------------------------------------------------------- parsing

_LOCAL = threading.local()
# characters XML forbids: lxml refuses them in text it is given (libxml2 still parses character references to
# them into the tree: `&#xFFFE;`), so a tree holding one could not be edited
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NUMERIC_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+)")


def parser() -> etree.HTMLParser:
    """The one parser policy (one parser per thread: lxml parsers are not thread-safe): UTF-8 input, comments
    and processing instructions dropped, no network, no default doctype, no id table (nothing looks elements
    up by id)."""
    found = getattr(_LOCAL, "parser", None)
    if found is None:
        found = _LOCAL.parser = etree.HTMLParser(
            encoding="utf-8",
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            default_doctype=False,
            collect_ids=False,
        )
    return found


def parse_page(data: bytes) -> etree._Element | None:
    """The <html> root of UTF-8 bytes without XML-forbidden characters (see `charset.to_clean_utf8`), or None
    when there is nothing to parse. Raises lxml's errors for input libxml2 cannot read at all."""
    root = etree.fromstring(data, parser())
    if root is not None and b"&#" in data and _references_non_xml(data):
        _drop_non_xml_characters(root)
    return root


def _references_non_xml(data: bytes) -> bool:
    """A character reference to an XML-forbidden character (`&#1;`, `&#xFFFE;`, `&#xD800;`): the only way one
    gets into the tree once the bytes are clean. Checked per distinct reference, before any pass over the tree."""
    for reference in set(_NUMERIC_REFERENCE.findall(data)):
        try:
            code = int(reference[1:], 16) if reference[:1] in b"xX" else int(reference)
        except ValueError:
            continue
        if code > 0x10FFFF or _NOT_XML_TEXT.match(chr(code)):
            return True
    return False


def _drop_non_xml_characters(root: etree._Element) -> None:
    for node in root.iter():
        if node.text and _NOT_XML_TEXT.search(node.text):
            node.text = _NOT_XML_TEXT.sub("", node.text)
        if node.tail and _NOT_XML_TEXT.search(node.tail):
            node.tail = _NOT_XML_TEXT.sub("", node.tail)
        for name, value in node.attrib.items():
            if _NOT_XML_TEXT.search(value):
                node.attrib[name] = _NOT_XML_TEXT.sub("", value)


def parse_minimal(html: str) -> etree._Element | None:
    """Minimal HTML (ours, or any HTML a caller gives the C4 filters) as a tree ready to edit and `serialize`:
    forbidden characters dropped, junk tag names made `<span>`, junk attribute names dropped, attributes in
    name order. None when there is no document (empty, whitespace, unparseable)."""
    try:
        root = parse_page(_NOT_XML_TEXT.sub("", html).encode("utf-8"))
    except (etree.ParserError, ValueError):
        return None
    if root is not None:
        _make_writable(root)
    return root


def parse_minimal_or_empty(html: str) -> etree._Element:
    """`parse_minimal`, with an empty document for no document (the image rewrite writes one back)."""
    root = parse_minimal(html)
    return root if root is not None else parse_minimal("<html><body></body></html>")


_SIMPLE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*\Z")


def _writable(name: str) -> bool:
    """A tag or attribute name that reads back as itself once written (junk markup parses into others)."""
    if _SIMPLE_NAME.match(name):
        return True
    return bool(name) and not any(c.isspace() or c in "\"'<>/=&" for c in name)


def _make_writable(root: etree._Element) -> None:
    for el in root.iter(etree.Element):
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


# ---------------------------------------------------------------- serialisation

_BLOCK_ALTERNATION = "|".join(sorted(BLOCK_TAGS, key=lambda t: (-len(t), t)))  # longest first
_SPACE_BEFORE_BLOCK = re.compile(rf" (?=</?(?:{_BLOCK_ALTERNATION})[ >])")
_SPACE_AFTER_BLOCK = re.compile(rf"(</?(?:{_BLOCK_ALTERNATION})(?: [^>]*)?>) ")
_ATTR_WS = re.compile(r"&#(?:9|10|13);")
# a <pre> element with everything inside it (minimal HTML nests no <pre> in a <pre>: libxml2 closes it)
_PRE = re.compile(r"(<pre(?: [^>]*)?>.*?</pre>)", re.S)
_childless = etree.XPath("descendant-or-self::*[not(node())]")


def serialize(root: etree._Element) -> str:
    """Serialise an element (without its tail) whose names are writable and attributes in name order: a tree
    from `parse_minimal`, or one whose attributes the caller inserted in order (`minimize`).

    A document with an XHTML doctype would switch libxml2 to XHTML output (`<br />`, added `xmlns`): such an
    element is written from a copy in a fresh document."""
    docinfo = root.getroottree().docinfo
    if "XHTML" in (docinfo.public_id or "") or "xhtml" in (docinfo.system_url or ""):
        root = copy.deepcopy(root)
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


# ---------------------------------------------------------------- edits


def blank(text: str | None) -> bool:
    return not text or text.isspace()


def remove_keeping_tail(el: etree._Element) -> None:
    """Remove an element and its subtree; the text after it (its tail) stays where it was. When the element
    held text and the words on both sides touch (`word<b>gone</b>word`), a space keeps them apart."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        before = (prev.tail if prev is not None else parent.text) or ""
        if before and not before[-1].isspace() and not tail[0].isspace() and _holds_text(el):
            tail = " " + tail
        if prev is not None:
            prev.tail = before + tail
        else:
            parent.text = before + tail
    parent.remove(el)


def _holds_text(el: etree._Element) -> bool:
    """Any text (even a space) inside el: removing it took a separator away."""
    return any(node.text for node in el.iter(etree.Element)) or any(
        node.tail for node in el.iterdescendants()
    )


# ---------------------------------------------------------------- the empty-element rule

# kept without text: an image; a line break between two texts (layout); table cells, which keep the columns of
# a row that has content elsewhere (a row or table without any goes whole); the document's parts, and a <meta>
# (its content is an attribute)
_KEEP_EMPTY = frozenset(["img", "br", "td", "th", "head", "body", "meta"])
# an empty element of these between two texts still ends a line: it becomes a <br>, so the lines stay apart
_LINE_ENDING = frozenset(
    """p div h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table tr blockquote pre figure figcaption article section
    main details summary address hr""".split()
)
_SEPARATED = _LINE_ENDING | {"br"}  # already on a line of its own
# elements whose first and last line start and end with them: a <br> at their edge separates nothing
_LINE_BOXES = _LINE_ENDING | {"body", "td", "th", "caption"}


def prune_empty_elements(root: etree._Element) -> int:
    """CM3 §3.1's rule on a document (or its body): an element without text or an image goes, its tail stays.
    Kept without text: `<img>`; `<td>`/`<th>` in a row with content elsewhere; a `<br>` unless it is next to
    a block element or first or last in one (a `<br>` that ends a `<b>` still ends a line; `a<br><br>b` is a
    paragraph break). An empty block element between two runs of inline text becomes a `<br>` (removing it
    would join two lines). Returns how many elements went (a removed subtree counts once per element the
    rule judged). Linear in the elements, runs of `<br>` included; pruning the result again removes nothing."""
    removed = [0]

    def visit(el: etree._Element) -> bool:
        """Prunes el's children; True when el holds text or an image."""
        content = el.tag == "img" or not blank(el.text)
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
                has_tail = not blank(child.tail)
                remove_keeping_tail(child)
                removed[0] += 1
                content = content or has_tail
                continue
            if not blank(child.tail):
                content = True
        removed[0] += _drop_separating_nothing(el)
        return content

    try:
        visit(root)
    finally:
        visit = None  # noqa: F841  (a recursive closure is a reference cycle: it would keep the tree alive)
    return removed[0]


def _text_around(parent: etree._Element, child: etree._Element) -> bool:
    """Inline content (text, a link, an image) on both sides of child: removing it would join two lines."""
    prev, following = child.getprevious(), child.getnext()
    if prev is None:
        before = not blank(parent.text)
    else:
        before = not blank(prev.tail) or prev.tag not in _SEPARATED
    after = not blank(child.tail) or (following is not None and following.tag not in _SEPARATED)
    return before and after


def _drop_separating_nothing(el: etree._Element) -> int:
    """The <br> children of el that separate nothing: with no text between them and a block element (or the
    edge of el, when el is a block), on either side. Once el's other children are pruned, in two passes over
    the children listed once: what follows each <br> (through a run of them), right to left; then what
    precedes it, left to right, as removals leave it."""
    children = list(el)
    box = el.tag in _LINE_BOXES
    nothing_after = [False] * len(children)
    following_blocks = box  # nothing but blank <br>s up to a block element or el's end
    for i in range(len(children) - 1, -1, -1):
        child = children[i]
        if child.tag == "br":
            nothing_after[i] = following_blocks = blank(child.tail) and following_blocks
        else:
            following_blocks = child.tag in _LINE_ENDING
    dropped = 0
    prev = None  # the last child kept so far
    # blank tails of removed <br>s, joined once (appending each to a growing text costs a run's square)
    spaces: list[str] = []
    for i, child in enumerate(children):
        if child.tag == "br":
            if prev is None:
                nothing_before = box and blank(el.text)
            else:
                nothing_before = prev.tag in _LINE_ENDING and blank(prev.tail)
            if nothing_before or nothing_after[i]:
                dropped += 1
                if blank(child.tail):
                    spaces.append(child.tail or "")
                    el.remove(child)
                    continue
                _append_spaces(el, prev, spaces)
                remove_keeping_tail(child)
                continue
        _append_spaces(el, prev, spaces)
        prev = child
    _append_spaces(el, prev, spaces)
    return dropped


def _append_spaces(el: etree._Element, prev: etree._Element | None, spaces: list[str]) -> None:
    joined = "".join(spaces)
    spaces.clear()
    if not joined:
        return
    if prev is None:
        el.text = (el.text or "") + joined
    else:
        prev.tail = (prev.tail or "") + joined


def is_empty_body(body: etree._Element) -> bool:
    """Nothing left: no element and no text (what `prune_empty_elements` leaves of a page without content)."""
    return not len(body) and blank(body.text)


def prune_empty(html: str) -> tuple[str, int]:
    """`prune_empty_elements` on a finished document: the last pass of the pipeline, after every removal (C4
    lines, images that failed, furniture images), so that their wrappers (`<a>`, `<figure>`, `<div>`, `<p>`)
    go too. Returns the document and how many elements went."""
    root = parse_minimal_or_empty(html)
    removed = prune_empty_elements(root)
    if not removed:
        return html, 0
    return serialize(root), removed


# ---------------------------------------------------------------- images


def all_image_srcs(html: str) -> list[str]:
    """The src of every <img> that has one, repeats included, in document order."""
    if "<img" not in html:
        return []
    root = parse_minimal(html)
    return [] if root is None else [img.get("src") for img in root.iter("img") if img.get("src") is not None]
