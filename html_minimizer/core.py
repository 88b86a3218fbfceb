"""Raw HTML -> minimal HTML (CM3 section 3.1): see html_minimizer/README.md for the rules and budgets.

The steps of §3.1, each in its module: parse (html_minimizer.tree's policy), drop non-content tags and page
furniture (here), one walk that judges every element (`walk`), the passes that need the whole page after it
(`passes`), tree edits (`edits`), URLs resolved against the page (`urls`), then the empty-element rule and the
deterministic serialisation (`tree`)."""

import functools
import re

from lxml import etree

from .charset import to_clean_utf8
from .edits import (
    DOOMED,
    UNWRAP,
    clean_attributes,
    close_swallowing_heading,
    fold_divs,
    keep_parse_stable,
    remove_if_emptied,
    text_len,
)
from .errors import BadMarkup, EmptyPage, InputTooLarge, MinimizeError, NotHTML
from .limits import Limits
from .page import ImageRef, MinimalPage
from .passes import (
    drop_dangling_labels,
    drop_list_labels,
    drop_orphan_headings,
    drop_trailing_short_lines,
    insert_article_body,
    json_ld_article_body,
    misses_text,
)
from .rules import DROP_TAGS, FURNITURE_TAGS, HEADINGS, STRUCTURED_META_PREFIXES, WRAPPER_SHARE
from .tree import (
    escape_text,
    is_empty_body,
    parse_page,
    prune_empty_elements,
    remove_keeping_tail,
    serialize,
    start_tag,
)
from .urls import PageUrls
from .walk import BoilerplateWalk, furniture_holds_content, label_of

# soft hyphens are invisible hints where a browser may break a word: as text they split it in two
_SOFT_HYPHEN = "\xad"
_HEADINGS_AND_FURNITURE = tuple(sorted(HEADINGS | FURNITURE_TAGS))
_LANG = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,4}$")


def minimize(
    raw: bytes | str, url: str | None = None, *, charset: str | None = None, limits: Limits = Limits()
) -> MinimalPage:
    """Reduce a web page to minimal HTML: structure, text, images and structured data; no boilerplate.

    Raises a `MinimizeError` subclass (`InputTooLarge`, `NotHTML`, `BadMarkup`, `EmptyPage`) for pages to
    skip; never anything else.
    """
    size = len(raw.encode("utf-8", errors="replace")) if isinstance(raw, str) else len(raw)
    if size > limits.max_input_bytes:
        raise InputTooLarge(f"{size} bytes > max_input_bytes={limits.max_input_bytes}")
    data, _ = to_clean_utf8(raw, charset)
    if b"<" not in data:
        raise NotHTML("no markup")
    n_tags = data.count(b"<")
    if n_tags > limits.max_tags:
        raise InputTooLarge(f"{n_tags} tags > max_tags={limits.max_tags}")
    data = _cap_attributes(data, n_tags, limits.max_attributes)
    try:
        root = parse_page(data)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as e:
        raise NotHTML(f"unparseable: {e}") from None
    if root is None:
        raise NotHTML("nothing to parse")
    try:
        return _Minimizer(root, url, limits).run()
    except MinimizeError:
        raise
    except RecursionError:  # the later passes recurse over nesting too (at most 256 levels, like the walk)
        raise InputTooLarge("nesting too deep for the recursion limit left") from None
    except ValueError as e:  # lxml refuses a name or string that the parser let through
        raise BadMarkup(f"markup lxml cannot process: {e}") from None


def _cap_attributes(data: bytes, n_tags: int, max_attributes: int) -> bytes:
    """libxml2 compares attribute names pairwise: a tag with 10^6 attributes would take hours. A tag with more
    than max_attributes loses all of them before parsing. Cheap counts decide whether a page could hold such
    a tag: many '=' (values, maybe quoting '<' and '>'), or few tags for its size (valueless attributes)."""
    if data.count(b"=") > _BOMB_GATE or (len(data) > 256 * n_tags + _BOMB_GATE and _LONG_TAG.search(data)):
        return _overloaded_tag(max_attributes).sub(rb"<\1>", data)
    return data


_ATTRIBUTE = rb"""\s+[^\s<>="'/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s<>"']*))?"""


@functools.lru_cache(maxsize=8)
def _overloaded_tag(max_attributes: int) -> re.Pattern:
    """A whole start tag with more than max_attributes attributes (matched once, left to right)."""
    return re.compile(rb"<([A-Za-z][^\s<>/]*)(?:%s){%d,}\s*/?>?" % (_ATTRIBUTE, max_attributes + 1))


_LONG_TAG = re.compile(rb"<[a-zA-Z][^<>]{4096}")
# a page with fewer '=' and ordinary tag density cannot hide a tag with thousands of attributes
_BOMB_GATE = 20_000


class _Minimizer:
    def __init__(self, root: etree._Element, url: str | None, limits: Limits):
        self.root = root
        self.limits = limits
        self.urls = PageUrls(root, url, limits.max_data_uri_bytes)
        self.removed: dict[str, int] = {}

    def run(self) -> MinimalPage:
        root = self.root
        lang = (root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") or "").strip()
        lang = lang if _LANG.match(lang) else None
        title, metas = self._head(root.find("head"))
        body = root.find("body")
        if body is None:
            body = etree.Element("body")
        body.attrib.clear()
        article_body = json_ld_article_body(root)
        self._clean(body)
        if article_body and misses_text(body, article_body):
            insert_article_body(body, article_body)
            self.count("article_body_added")
        # what the passes after the walk emptied (a table row whose text was a short line, a <div> of <br>s)
        self.count("empty", prune_empty_elements(body))
        if is_empty_body(body):
            raise EmptyPage("no text or image left once boilerplate went")
        images = tuple(ImageRef(img.get("src"), img.get("alt"), img.get("title")) for img in body.iter("img"))
        parts = [start_tag("html", {"lang": lang} if lang else {}), "<head>"]
        if title:
            parts.append(f"<title>{escape_text(title)}</title>")
        parts += [start_tag("meta", m) for m in metas]
        parts += ["</head>", serialize(body), "</html>"]
        html = "".join(parts)
        if _SOFT_HYPHEN in html:  # searched in the output: a fraction of the page, entities already resolved
            html = html.replace(_SOFT_HYPHEN, "")
            title = title.replace(_SOFT_HYPHEN, "") if title else title
            images = tuple(ImageRef(i.src, _no_soft_hyphen(i.alt), _no_soft_hyphen(i.title)) for i in images)
        if len(html) > self.limits.max_output_chars:
            raise InputTooLarge(f"minimal html of {len(html)} chars > max_output_chars")
        removed = tuple(sorted(self.removed.items()))
        return MinimalPage(html=html, images=images, title=title, lang=lang, removed=removed)

    def count(self, rule: str, n: int = 1) -> None:
        if n:
            self.removed[rule] = self.removed.get(rule, 0) + n

    def _head(self, head: etree._Element | None) -> tuple[str | None, list[dict[str, str]]]:
        if head is None:
            return None, []
        title_el = head.find("title")
        title = " ".join((title_el.text or "").split()) if title_el is not None else ""
        metas = []
        for meta in head.iter("meta"):
            key_attr = next((k for k in ("property", "name", "itemprop") if meta.get(k)), None)
            content = meta.get("content")
            if key_attr is None or content is None or len(content) > self.limits.max_attribute_chars:
                continue
            key = meta.get(key_attr).strip()
            if key_attr != "itemprop" and not key.lower().startswith(STRUCTURED_META_PREFIXES):
                continue
            content = " ".join(content.split())
            if key.lower().endswith((":image", ":url", ":image:url", ":image:secure_url")):
                content = self.urls.resolve(content) or content
            metas.append({key_attr: key, "content": content})
        return title or None, metas

    def _clean(self, body: etree._Element) -> None:
        etree.strip_elements(body, *DROP_TAGS, with_tail=False)
        # one pass over the tree finds headings and furniture (each pass costs about 0.1x of the parse)
        headings, furniture = [], []
        for el in body.iter(*_HEADINGS_AND_FURNITURE):
            (headings if el.tag in HEADINGS else furniture).append(el)
        for heading in headings:
            # a heading left open runs to the end of its parent: nothing follows it there
            if len(heading) and heading.getnext() is None and close_swallowing_heading(heading):
                self.count("heading_closed")
        body_chars = text_len(body) or 1
        wrapper_chars = WRAPPER_SHARE * body_chars
        for el in furniture:
            if furniture_holds_content(el, wrapper_chars):
                el.tag = "div"  # a page that wraps its content in a <form>, <aside> or <header>
            else:
                remove_keeping_tail(el)
        paragraphs = self._drop_boilerplate(body, wrapper_chars, headings)
        etree.strip_tags(body, UNWRAP)
        keep_parse_stable(body, paragraphs)
        fold_divs(body)

    def _drop_boilerplate(self, body: etree._Element, wrapper_chars: float, headings: list) -> list:
        """The walk (`BoilerplateWalk`), then what it doomed goes in one C call, then the passes that need the
        whole page, then the surviving elements' attributes are cleaned. Returns the paragraphs that may hold
        a block."""
        walk = BoilerplateWalk(body, wrapper_chars, headings, self.urls, self.count)
        kept_chars = walk.run()
        # the rest of the doomed elements were left without text or image
        by_hint = sum(self.removed.get(r, 0) for r in ("hinted", "meta_bar", "furniture_image", "link_list"))
        self.count("empty", len(walk.doomed) - by_hint)
        for el in walk.doomed:
            el.tag = DOOMED
        # lone links inside a menu that went as a whole are not looked at (the host check is the costly part)
        lone = [el for el in walk.lone_candidates if self.urls.links_within_site(el)]
        self.count("lone_link", len(lone))
        emptied = []
        for el in lone:
            walk.labels.append(label_of(el, body))
            emptied.append(el.getparent())
            el.tag = DOOMED
        etree.strip_elements(body, DOOMED, with_tail=False)  # in C; their tail text stays
        for parent in emptied:
            remove_if_emptied(parent)
        self.count("list_label", drop_list_labels(walk.labels))
        self.count("dangling_label", drop_dangling_labels(walk.colon_lines))
        self.count("trailing_short_line", drop_trailing_short_lines(body, walk.main_candidates, kept_chars))
        self.count("orphan_heading", drop_orphan_headings(body, headings))
        clean_attributes(body, walk.holders, self.urls, self.limits.max_attribute_chars)
        return walk.paragraphs


def _no_soft_hyphen(text: str | None) -> str | None:
    return text.replace(_SOFT_HYPHEN, "") if text else text
