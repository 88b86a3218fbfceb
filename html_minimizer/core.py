"""Raw HTML -> minimal HTML (CM3 section 3.1): see html_minimizer/README.md for the rules and budgets."""

import functools
import json
import re
from urllib.parse import urljoin, urlsplit

from lxml import etree

from .charset import to_clean_utf8
from .errors import BadMarkup, EmptyPage, InputTooLarge, MinimizeError, NotHTML
from .limits import Limits
from .page import ImageRef, MinimalPage
from .rules import (
    ARTICLE_BODY_MIN_CHARS,
    BLOCKS_IN_P,
    BOILERPLATE_ROLES,
    CONTENT_CHARS,
    CONTENT_IMAGE_PX,
    CONTENT_LINK_SHARE,
    COPYRIGHT,
    DATE_ONLY,
    DROP_TAGS,
    FURNITURE_TAGS,
    HEADING_MAX_CHARS,
    HEADINGS,
    ICON_PX,
    KEEP_EMPTY_TAGS,
    KEEP_TAGS,
    LAZY_SRC_ATTRS,
    LINK_DENSITY,
    LIST_LABEL_CHARS,
    LONE_LINK_BLOCKS,
    LONE_LINK_CHARS,
    MAIN_MIN_CHARS,
    MAIN_SHARE,
    MAX_JSON_LD_CHARS,
    META_BAR_CHARS,
    META_BAR_FIELDS,
    META_FIELD_CHARS,
    MIN_LINKS,
    NO_HINT,
    PHOTO_CREDIT,
    PLACEHOLDER_CHARS,
    STAMP_CHARS,
    STAMP_INITIALS,
    STRONG_HINT,
    STRUCTURED_ATTRS,
    STRUCTURED_META_PREFIXES,
    TAG_ATTRS,
    TRAILING_LINE_CHARS,
    WEAK_HINT,
    WRAPPER_SHARE,
    alt_names_furniture,
    boilerplate_hint,
    names_content,
    src_folders_name_furniture,
    style_hides,
)
from .tree import (
    escape_text,
    is_empty_body,
    parse_page,
    prune_empty_elements,
    remove_keeping_tail,
    serialize,
    start_tag,
)

# soft hyphens are invisible hints where a browser may break a word: as text they split it in two
_SOFT_HYPHEN = "\xad"
# strong hints from other signals than class/id words, counted apart
META_BAR, FURNITURE_IMAGE = STRONG_HINT + 1, STRONG_HINT + 2
_HINT_RULES = {META_BAR: "meta_bar", FURNITURE_IMAGE: "furniture_image"}
_UNWRAP = "html-minimizer-unwrap"
_DOOMED = "html-minimizer-doomed"
_HEADINGS_AND_FURNITURE = tuple(sorted(HEADINGS | FURNITURE_TAGS))
_base_href = etree.XPath("string((//base[@href])[1]/@href)")
_text_len = etree.XPath("string-length(normalize-space(string()))")
_KEPT_ATTRS = STRUCTURED_ATTRS.union(*TAG_ATTRS.values())
_ALLOWED_ATTRS = {tag: STRUCTURED_ATTRS | names for tag, names in TAG_ATTRS.items()}
_link_texts = etree.XPath(".//a//text()", smart_strings=False)
# table parts that an HTML parser drops or moves when they are outside any table (see _keep_parse_stable)
_TABLE_PARTS = frozenset("tr td th thead tbody tfoot caption".split())
_LINKS_AND_TABLE_PARTS = ("a", *sorted(_TABLE_PARTS))
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
        self.base = url
        try:
            self.host = urlsplit(url).hostname if url else None
        except ValueError:
            self.host = None
        self._joined: dict[str, str | None] = {}
        self.removed: dict[str, int] = {}
        self._hosts: dict[str, str] = {}
        self._homes: dict[str, bool] = {}
        self._image_srcs: dict[etree._Element, str | None] = {}

    def run(self) -> MinimalPage:
        root = self.root
        head = root.find("head")
        base = _base_href(root).strip()
        if base:
            try:
                self.base = urljoin(self.base or "", base) or self.base
            except ValueError:  # an invalid IPv6 host in <base>
                pass
        try:
            self.base_host = urlsplit(self.base).hostname if self.base else None
        except ValueError:
            self.base_host = None
        lang = (root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") or "").strip()
        lang = lang if _LANG.match(lang) else None
        title, metas = self._head(head)
        body = root.find("body")
        if body is None:
            body = etree.Element("body")
        body.attrib.clear()
        article_body = _json_ld_article_body(root)
        self._clean(body)
        if article_body and _misses_text(body, article_body):
            _insert_article_body(body, article_body)
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
        parts.append("</head>")
        parts.append(serialize(body))
        parts.append("</html>")
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
                content = self._resolve(content) or content
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
            if len(heading) and heading.getnext() is None and _close_swallowing_heading(heading):
                self.count("heading_closed")
        body_chars = _text_len(body) or 1
        wrapper_chars = WRAPPER_SHARE * body_chars
        for el in furniture:
            if _furniture_holds_content(el, wrapper_chars):
                el.tag = "div"  # a page that wraps its content in a <form>, <aside> or <header>
            else:
                remove_keeping_tail(el)
        paragraphs = self._drop_boilerplate(body, wrapper_chars, headings)
        etree.strip_tags(body, _UNWRAP)
        _keep_parse_stable(body, paragraphs)
        self._fold_divs(body)

    def _drop_boilerplate(self, body: etree._Element, wrapper_chars: float, headings: list) -> list:
        """One recursive walk over the body (libxml2 caps nesting at 256 levels: at most 256 Python frames).
        Going down: elements that ARIA roles, class/id hints, hidden flags or a copyright notice mark as
        boilerplate lose their whole subtree (unless they hold most of the page: a wrapper). Coming back up:
        elements left without text or image, and link lists (menus), go. Then the surviving elements'
        attributes are cleaned. Returns the paragraphs that may hold a block.

        A recursive function over the children costs less per element than `iterwalk` with start and end
        events (no event tuples, no explicit stack, no second visit of leaves)."""
        doomed: list = []
        labels: list = []  # what comes right before each link list: maybe its title ("Related posts")
        # short lines that are one link, outermost only, none inside a removed element
        lone_candidates: list = []
        main_candidates: list = []  # (text chars, element) of kept elements with enough text to be the article
        colon_lines: list = []  # short leaves ending with ":", maybe announcing something that went
        paragraphs: list = []
        holders: list = []  # kept elements with attributes to keep, in document order
        doom, hold, note_paragraph = doomed.append, holders.append, paragraphs.append
        keep_tags, keep_empty, kept_names, structured = (
            KEEP_TAGS,
            KEEP_EMPTY_TAGS,
            _KEPT_ATTRS,
            STRUCTURED_ATTRS,
        )
        stamp_initials, stamp_chars, blocks = STAMP_INITIALS, STAMP_CHARS, BLOCKS_IN_P
        main_min = MAIN_MIN_CHARS
        image_src, count = self._image_src, self.count
        # the elements holding an h1 (a hint never removes them), found once instead of searching below every
        # hinted element; the set keeps their proxies alive, so the walk meets the same objects
        # (an h1 inside removed furniture adds only detached ancestors, which the walk never meets)
        headline_holders = {a for h in headings if h.tag == "h1" for a in h.iterancestors()}

        def walk(parent: etree._Element) -> tuple[int, int, int, int, bool]:
            """Visit parent's children; returns the text chars, link text chars, links and images of what
            stays of them (tails included) and whether a kept block is among them."""
            chars = link_chars = links = images = 0
            has_block = False
            for el in parent:
                tag = el.tag
                text = el.text
                names = el.keys()
                n_children = len(el)
                if not names:
                    hint = NO_HINT
                elif len(names) == 1:  # the most frequent cases: class="...", <a href>, <img src>
                    name = names[0]
                    if name == "class":
                        hint = boilerplate_hint(el.get("class"))
                    else:
                        hint = NO_HINT if name in kept_names else _attribute_hint(el, names)
                else:
                    hint = _attribute_hint(el, names)
                if tag == "img" and not hint and self._furniture_image(el, parent):
                    hint = FURNITURE_IMAGE
                if text:
                    if not hint:
                        if len(text) < stamp_chars and not n_children:
                            stripped = text.strip()
                            if stripped[-1:] == ":":
                                colon_lines.append(el)
                            if stripped and (stripped[0] in stamp_initials or stripped[-1] in stamp_initials):
                                hint = STRONG_HINT if _is_stamp(stripped) else NO_HINT
                        if ("©" in text or "opyright" in text or "OPYRIGHT" in text) and COPYRIGHT.match(
                            text.strip()
                        ):
                            hint = STRONG_HINT
                        if "|" in text and el.tag not in HEADINGS and _is_meta_bar(el):
                            hint = META_BAR
                    own = len(text.strip())
                else:
                    own = 0
                if hint and not (
                    el.tag in HEADINGS
                    or el in headline_holders
                    or _looks_like_content(el, wrapper_chars, hint == WEAK_HINT)
                ):
                    doom(el)
                    count(_HINT_RULES.get(hint, "hinted"))
                else:
                    mark, lone_mark, main_mark = len(holders), len(lone_candidates), len(main_candidates)
                    if (
                        tag not in keep_tags
                        or (tag == "img" and image_src(el) is None)
                        or (tag == "span" and structured.isdisjoint(names))  # spans without structured data
                    ):
                        el.tag = tag = _UNWRAP
                    elif tag == "img" or (names and not kept_names.isdisjoint(names)):
                        hold(el)
                    if n_children:
                        sub_chars, sub_link_chars, sub_links, sub_images, sub_block = walk(el)
                        sub_chars += own
                    else:
                        sub_chars, sub_link_chars, sub_links, sub_images, sub_block = own, 0, 0, 0, False
                    if tag == "a":
                        sub_link_chars = sub_chars
                        sub_links += 1
                    elif tag == "img":
                        sub_images += 1
                    if sub_chars == 0:
                        kept = sub_images or tag in keep_empty
                    elif sub_link_chars <= LINK_DENSITY * sub_chars or sub_chars >= wrapper_chars:
                        kept = True
                    elif sub_links >= MIN_LINKS:
                        kept = False
                        count("link_list")
                        labels.append(_label_of(el, body))
                    else:  # one link making most of a line: if short, decided after the walk (lone_links)
                        kept = True
                        if sub_chars < LONE_LINK_CHARS and tag in LONE_LINK_BLOCKS:
                            del lone_candidates[lone_mark:]  # the outermost line is the candidate
                            lone_candidates.append(el)
                    if kept:
                        if n_children and sub_chars >= main_min:
                            main_candidates.append((sub_chars, el))
                        if sub_block and tag == "p":
                            note_paragraph(el)
                        chars += sub_chars
                        link_chars += sub_link_chars
                        links += sub_links
                        images += sub_images
                        has_block = has_block or sub_block or tag in blocks
                    else:
                        doom(el)
                        # what the walk noted inside el goes with it (a link list can hold a long text)
                        del holders[mark:]
                        del lone_candidates[lone_mark:]
                        del main_candidates[main_mark:]
                tail = el.tail
                if tail:
                    chars += len(tail.strip())
            return chars, link_chars, links, images, has_block

        try:
            kept_chars = walk(body)[0]
        except RecursionError:  # only when the caller already uses most of Python's recursion limit
            raise InputTooLarge("nesting too deep for the recursion limit left") from None
        finally:
            # the closure refers to itself: without this the cycle keeps the whole parsed page (and the
            # elements of this walk) alive until the cyclic garbage collector happens to run
            walk = None  # noqa: F841
        removed = self.removed
        # the rest of the doomed elements were left without text or image
        self.count(
            "empty",
            len(doomed)
            - sum(removed.get(r, 0) for r in ("hinted", "meta_bar", "furniture_image", "link_list")),
        )
        for el in doomed:
            el.tag = _DOOMED
        # lone links inside a menu that went as a whole are not looked at (the host check is the costly part)
        lone = [el for el in lone_candidates if self._links_within_site(el)]
        self.count("lone_link", len(lone))
        emptied = []
        for el in lone:
            labels.append(_label_of(el, body))
            emptied.append(el.getparent())
            el.tag = _DOOMED
        etree.strip_elements(body, _DOOMED, with_tail=False)  # in C; their tail text stays
        for parent in emptied:
            _remove_if_emptied(parent)
        self.count("list_label", _drop_list_labels(labels))
        self.count("dangling_label", _drop_dangling_labels(colon_lines))
        self.count("trailing_short_line", _drop_trailing_short_lines(body, main_candidates, kept_chars))
        self.count("orphan_heading", _drop_orphan_headings(body, headings))
        self._clean_attributes(body, holders)
        return paragraphs

    def _furniture_image(self, img: etree._Element, parent: etree._Element) -> bool:
        """A logo, icon, headshot or spacer: tiny by its width/height; or, unless its width/height say it is
        large, named so by a folder of its src or by a short alt, or the image of a link to the site's home page
        (the site logo)."""
        width, height = _pixels(img.get("width")), _pixels(img.get("height"))
        if width is not None and height is not None and width <= ICON_PX and height <= ICON_PX:
            return True
        if (width or 0) > CONTENT_IMAGE_PX or (height or 0) > CONTENT_IMAGE_PX:
            return False  # large: a photo whose alt says "logo" ("the new logo on the shop front")
        alt = img.get("alt")
        if alt and alt_names_furniture(alt):
            return True
        src = self._image_src(img)
        if src is not None and not src.startswith("data:") and src_folders_name_furniture(src):
            return True
        if parent.tag == "a" and self.host is not None:
            return self._is_home_page(parent.get("href") or "")
        return False

    def _is_home_page(self, href: str) -> bool:
        """href leads to this site's home page (cached per href: a page links its logo the same way)."""
        home = self._homes.get(href)
        if home is None:
            resolved = self._resolve(href.strip())
            try:
                parts = urlsplit(resolved) if resolved is not None else None
            except ValueError:
                parts = None
            home = self._homes[href] = (
                parts is not None
                and parts.hostname == self.host
                and parts.path in ("", "/")
                and not parts.query
            )
        return home

    def _links_within_site(self, el: etree._Element) -> bool:
        """The one link in el points to this site (another page of it, or an anchor on this one)."""
        link = el if el.tag == "a" else next(el.iter("a"), None)
        href = (link.get("href") or "").strip() if link is not None else ""
        if not href or self.host is None or href[:11].lower().startswith(("javascript:", "mailto:", "tel:")):
            return False
        if "//" not in href[:8]:  # relative: resolved against this page (or its <base>)
            return self.base_host == self.host
        host = self._hosts.get(href)
        if host is None:  # what urlsplit(href).hostname gives, without building the whole split
            authority = href.split("//", 1)[1]
            for end in "/?#":
                authority = authority.split(end, 1)[0]
            host = self._hosts[href] = authority.rpartition("@")[2].split(":", 1)[0].lower()
        return host == self.host

    def _clean_attributes(self, body: etree._Element, holders: list) -> None:
        """Surviving elements keep only their allowed attributes, cleaned (URLs resolved, whitespace collapsed,
        over-long values but a data: src dropped) and re-inserted in name order; every other attribute
        (class, style, data-* ...) goes in one C call."""
        max_chars = self.limits.max_attribute_chars
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
                final["src"] = self._image_src(el)
            elif tag == "a" and "href" in final:
                href = self._resolve(final["href"])
                if href is None:
                    del final["href"]
                else:
                    final["href"] = href
            elif tag == "span" and not final:
                el.tag = _UNWRAP
            if final:
                kept.append((el, final))
        etree.strip_attributes(body, "{}*")
        for el, final in kept:
            for name in sorted(final):
                el.set(name, final[name])

    def _image_src(self, img: etree._Element) -> str | None:
        """The real image of an <img>: lazy-loading attributes win over a placeholder src (cached per img)."""
        if img in self._image_srcs:
            return self._image_srcs[img]
        src = self._find_image_src(img)
        self._image_srcs[img] = src
        return src

    def _find_image_src(self, img: etree._Element) -> str | None:
        src = (img.get("src") or "").strip()
        if not src or (src[:5].lower() == "data:" and len(src) < PLACEHOLDER_CHARS):
            src = ""  # lazy loading: the real image is in a data-* attribute or srcset
            for name in LAZY_SRC_ATTRS:
                lazy = (img.get(name) or "").strip()
                if lazy and lazy[:5].lower() != "data:":
                    src = lazy
                    break
            else:
                candidates = (img.get("srcset") or img.get("data-srcset") or "").split(",")[0].split()
                src = candidates[0] if candidates else ""
        if not src:
            return None
        if src[:5].lower() == "data:":
            if len(src) > self.limits.max_data_uri_bytes or src[5:11].lower() != "image/":
                return None
            return "".join(src.split())
        resolved = self._resolve(src)
        if resolved is None or not resolved.startswith(("http://", "https://")):
            return None
        return resolved

    def _resolve(self, href: str) -> str | None:
        """Absolute URL against the page URL / <base href>; None for javascript: and other non-links."""
        if href.startswith(("http://", "https://")):
            return href
        cached = self._joined.get(href, False)
        if cached is not False:
            return cached
        low = href[:11].lower()
        if low.startswith(("javascript:", "vbscript:", "data:")):
            out = None
        else:
            try:
                out = urljoin(self.base, href) if self.base else href
            except ValueError:  # e.g. an invalid IPv6 host
                out = None
        self._joined[href] = out
        return out

    def _fold_divs(self, body: etree._Element) -> None:
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
                inner.tag = _UNWRAP
                node = inner
                folded = True
            if merged is not None:
                outer.attrib.clear()
                for name in sorted(merged):
                    outer.set(name, merged[name])
        if folded:
            etree.strip_tags(body, _UNWRAP)


def _attribute_hint(el: etree._Element, names: list) -> int:
    """How strongly an element's attributes (class/id words, ARIA role, hidden flags) mark it as boilerplate."""
    if "hidden" in names or ("aria-hidden" in names and el.get("aria-hidden") == "true"):
        return STRONG_HINT
    if "role" in names and el.get("role").strip().lower() in BOILERPLATE_ROLES:
        return STRONG_HINT
    if "style" in names and style_hides(el.get("style")):
        return STRONG_HINT
    hint = boilerplate_hint(el.get("class")) if "class" in names else NO_HINT
    if "id" in names and hint != STRONG_HINT:
        # ids end in serial numbers ("comment-7573"): without them they repeat, and the cache hits
        hint = max(hint, boilerplate_hint(el.get("id").rstrip("0123456789")))
    return hint


def _no_soft_hyphen(text: str | None) -> str | None:
    return text.replace(_SOFT_HYPHEN, "") if text else text


def _json_ld_article_body(root: etree._Element) -> str | None:
    """schema.org `articleBody` of the page's JSON-LD (the first one long enough to be an article)."""
    for script in root.iter("script"):
        if "ld+json" not in (script.get("type") or ""):
            continue  # before reading the text: inline scripts can be large
        text = script.text
        if not text or "articleBody" not in text or len(text) > MAX_JSON_LD_CHARS:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        found = _find_article_body(data, 0)
        if found:
            return found
    return None


def _find_article_body(data, depth: int) -> str | None:
    if depth > 8:  # schema.org nests @graph and mainEntity a few levels deep, never more
        return None
    if isinstance(data, dict):
        body = data.get("articleBody")
        if isinstance(body, str) and len(body.strip()) >= ARTICLE_BODY_MIN_CHARS:
            return body
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            if isinstance(item, (dict, list)):
                found = _find_article_body(item, depth + 1)
                if found:
                    return found
    return None


def _misses_text(body: etree._Element, article_body: str) -> bool:
    """The cleaned body lacks the article's opening words: the text is rendered by scripts from JSON-LD."""
    opening = " ".join(article_body.split()[:12])
    return opening not in " ".join("".join(body.itertext()).split())


def _insert_article_body(body: etree._Element, article_body: str) -> None:
    """The JSON-LD article as paragraphs (its line breaks), after the headline (else at the end)."""
    container = etree.Element("div", itemprop="articleBody")
    for paragraph in re.split(r"\n\s*\n|\n", article_body):
        if paragraph.strip():
            etree.SubElement(container, "p").text = " ".join(paragraph.split())
    headline = next(body.iter("h1"), None)
    if headline is not None and headline.getparent() is not None:
        container.tail, headline.tail = headline.tail, None
        headline.addnext(container)
    else:
        body.append(container)


def _close_swallowing_heading(heading: etree._Element) -> bool:
    """`<h2><a>Title</h3><p>...`: a browser closes the heading at the wrong end tag, libxml2 keeps it open
    (an inline element is open in between), so the heading swallows the article. A heading whose text comes
    before a block element and runs over HEADING_MAX_CHARS is closed before that block: the block and all
    that follows it inside the heading move after the heading, in order."""
    block = next(heading.iterdescendants(*BLOCKS_IN_P), None)
    if block is None or _text_len(heading) <= HEADING_MAX_CHARS:
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
            if (sibling.tail and not sibling.tail.isspace()) or _text_len(sibling):
                return True
        el = parent
    return False


def _label_of(el: etree._Element, body: etree._Element) -> etree._Element | None:
    """The element right before el in document order, climbing out of containers el starts."""
    while el.getprevious() is None:
        el = el.getparent()
        if el is body or el is None:
            return None
        if el.text and not el.text.isspace():
            return None  # a container with its own label text: `<div>Tags: <a>..</a> <a>..</a></div>`
    return el.getprevious()


def _drop_list_labels(labels: list) -> int:
    """The title of a link list that went ("Related posts", "Tags:", "Read more") goes with it: a heading or
    a short line (under LIST_LABEL_CHARS) that was right before the list and is now last in its container."""
    removed = 0
    for label in labels:
        if (
            label is not None
            and label.getparent() is not None
            and label.getnext() is None
            and not (label.tail and not label.tail.isspace())
            and label.tag != _DOOMED
            and (label.tag in HEADINGS or _text_len(label) < LIST_LABEL_CHARS)
            and next(label.iter("img"), None) is None
        ):
            _remove_with_emptied_parents(label)
            removed += 1
    return removed


def _drop_dangling_labels(lines: list) -> int:
    """A short line ending with ':' that ends its section announces what a removal took ("Anzeige:",
    "Related:", "Tags:", "Photo:"): nothing follows it in its element's parent nor in the grandparent."""
    removed = 0
    for line in lines:
        if line.getparent() is None or line.tag == _DOOMED or line.tag in HEADINGS:
            continue
        node, ends = line, True
        for _ in range(2):
            parent = node.getparent()
            if node.getnext() is not None or (node.tail and not node.tail.isspace()) or parent is None:
                ends = False
                break
            if parent.tag == "body":
                break
            node = parent
        if ends and line.getparent() is not None:
            _remove_with_emptied_parents(line)
            removed += 1
    return removed


_LEAF_BLOCKS = frozenset("p div dd dt h1 h2 h3 h4 h5 h6 figcaption blockquote".split())


def _main_container(candidates: list, kept_chars: int) -> etree._Element | None:
    """The deepest element holding most (MAIN_SHARE) of the page's text once boilerplate went: the article.
    Such elements nest (each holds more than half the text), so the deepest holds the least."""
    best, best_chars = None, kept_chars + 1
    for chars, el in candidates:
        if MAIN_SHARE * kept_chars <= chars < best_chars:
            best, best_chars = el, chars
    return best


def _drop_trailing_short_lines(body: etree._Element, candidates: list, kept_chars: int) -> int:
    """Position: after the article (outside the element holding most of its paragraphs), a short line with no
    line inside it is a teaser, a prompt or a label ("Load more", "Comment", "Recommended"), not prose."""
    main = _main_container(candidates, kept_chars)
    if main is None or main is body or main.getparent() is None:
        return 0
    doomed = []
    node = main
    while node is not body:
        for sibling in node.itersiblings():
            for el in sibling.iter(*_LEAF_BLOCKS):
                if not len(el):  # the common case: a line of plain text
                    if len((el.text or "").strip()) < TRAILING_LINE_CHARS:
                        doomed.append(el)
                elif next(el.iterdescendants(*_LEAF_BLOCKS, "img"), None) is None:
                    if len("".join(el.itertext()).strip()) < TRAILING_LINE_CHARS:
                        doomed.append(el)
        node = node.getparent()
    for el in doomed:
        _remove_with_emptied_parents(el)
    return len(doomed)


def _drop_orphan_headings(body: etree._Element, headings: list) -> int:
    """A heading that leads nowhere ("Related posts", "Comments", "Trending" once the list under it went)
    goes: nothing follows it in its container, and no text or image follows that container before the next
    heading of the same or a higher rank. Last heading first, so that a section whose subheadings all went is
    judged without them. `headings`: those the page had before the walk, in document order (searching the tree
    again would cost a pass over it); the ones removed since are skipped."""
    removed = 0
    for heading in reversed(headings):
        if not _within(heading, body):
            continue
        if not _leads_somewhere(heading, body):
            _remove_with_emptied_parents(heading)
            removed += 1
    return removed


def _within(el: etree._Element, body: etree._Element) -> bool:
    return any(ancestor is body for ancestor in el.iterancestors())


def _leads_somewhere(heading: etree._Element, body: etree._Element) -> bool:
    """Text or an image follows `heading` (in document order) before a heading of its rank or higher."""
    rank = heading.tag
    node = heading
    while node is not body:
        if node.tail and not node.tail.isspace():
            return True
        for sibling in node.itersiblings():
            # a heading followed by another in the same container is a title with its subtitle
            found = _content_before_heading(sibling, "h0" if node is heading else rank)
            if found is not None:
                return found
            if sibling.tail and not sibling.tail.isspace():
                return True
        node = node.getparent()
        if node is None:
            return False
    return False


def _content_before_heading(el: etree._Element, rank: str) -> bool | None:
    """True: el starts with text or an image; False: with a heading of `rank` or higher (h1 < h2 ...); None:
    it holds neither (the search goes on after it)."""
    tag = el.tag
    if tag in HEADINGS:
        return False if tag <= rank else None
    if tag == "img" or (el.text and not el.text.isspace()):
        return True
    for child in el:
        found = _content_before_heading(child, rank)
        if found is not None:
            return found
        if child.tail and not child.tail.isspace():
            return True
    return None


def _pixels(value: str | None) -> int | None:
    """An HTML width/height attribute in pixels ("48", "48px"); None when absent or not a pixel count."""
    if not value:
        return None
    value = value.strip().lower().removesuffix("px").strip()
    return int(value) if value.isdigit() and len(value) < 6 else None


def _is_meta_bar(el: etree._Element) -> bool:
    """A short line of short fields between '|' ("May 3, 2019 | Jane Doe | Politics | 4 comments"): the post's
    metadata bar, not its prose."""
    text = "".join(el.itertext())
    if len(text) > META_BAR_CHARS:
        return False
    fields = [f for f in text.split("|") if f.strip()]
    return len(fields) >= META_BAR_FIELDS and all(len(f.strip()) < META_FIELD_CHARS for f in fields)


def _is_stamp(text: str) -> bool:
    """A date/time stamp or a photo credit standing alone in its element (text is stripped, not empty)."""
    if (text[0].isdigit() or text[-1].isdigit()) and DATE_ONLY.fullmatch(text):
        return True
    return PHOTO_CREDIT.match(text) is not None


def _keep_parse_stable(body: etree._Element, paragraphs: list) -> None:
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
            el.tag = _UNWRAP
        etree.strip_tags(body, _UNWRAP)


def _misplaced(el: etree._Element) -> bool:
    """A link inside a link, or a table part outside any table."""
    if el.tag == "a":
        return next(el.iterancestors("a"), None) is not None
    return next(el.iterancestors("table"), None) is None


def _furniture_holds_content(el: etree._Element, wrapper_chars: float) -> bool:
    """<header> with the headline, <form> with long text (ASP.NET wraps whole pages in one), an <aside> or
    <nav> whose class/id names content, or any of them holding most of the page, is not furniture."""
    tag = el.tag
    if tag == "header":
        return next(el.iterdescendants("h1", "h2"), None) is not None or _text_len(el) > wrapper_chars
    if tag == "form":
        return _looks_like_content(el, wrapper_chars)
    names = (el.get("class") or "") + " " + (el.get("id") or "")
    return _text_len(el) > wrapper_chars or (bool(names.strip()) and names_content(names))


def _looks_like_content(el: etree._Element, wrapper_chars: float, long_text_counts: bool = True) -> bool:
    """A hinted or furniture element is still content when it holds most of the page (more than wrapper_chars),
    or long text that is mostly not links (an article body inside a "tab-menu" or "l-sidebar" wrapper)."""
    chars = _text_len(el)
    if chars > wrapper_chars:
        return True
    if not long_text_counts or chars < CONTENT_CHARS:
        return False
    return sum(len(t.strip()) for t in _link_texts(el)) < CONTENT_LINK_SHARE * chars


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


def _remove_if_emptied(el: etree._Element | None) -> None:
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


def _remove_with_emptied_parents(el: etree._Element) -> None:
    """Remove el, and the containers that held nothing else (no text, no other element)."""
    parent = el.getparent()
    remove_keeping_tail(el)
    while parent is not None and parent.tag != "body" and not len(parent) and not (parent.text or "").strip():
        el, parent = parent, parent.getparent()
        remove_keeping_tail(el)
