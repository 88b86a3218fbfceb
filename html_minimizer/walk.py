"""The walk of `minimize` (CM3 §3.1: boilerplate, and elements without text or image, go): one recursive pass
over the body that judges every element, and the signals it reads (class/id/ARIA hints, furniture images,
date stamps, copyright lines, metadata bars, link density). What needs the whole page is left to the passes
after it (html_minimizer.passes), which read the candidates the walk notes."""

from lxml import etree

from .edits import UNWRAP, text_len
from .errors import InputTooLarge
from .rules import (
    BLOCKS_IN_P,
    BOILERPLATE_ROLES,
    CONTENT_CHARS,
    CONTENT_IMAGE_PX,
    CONTENT_LINK_SHARE,
    COPYRIGHT,
    DATE_ONLY,
    HEADINGS,
    ICON_PX,
    KEEP_EMPTY_TAGS,
    KEEP_TAGS,
    LINK_DENSITY,
    LONE_LINK_BLOCKS,
    LONE_LINK_CHARS,
    MAIN_MIN_CHARS,
    META_BAR_CHARS,
    META_BAR_FIELDS,
    META_FIELD_CHARS,
    MIN_LINKS,
    NO_HINT,
    PHOTO_CREDIT,
    STAMP_CHARS,
    STAMP_INITIALS,
    STRONG_HINT,
    STRUCTURED_ATTRS,
    TAG_ATTRS,
    WEAK_HINT,
    alt_names_furniture,
    boilerplate_hint,
    names_content,
    src_folders_name_furniture,
    style_hides,
)
from .urls import PageUrls

# strong hints from other signals than class/id words, counted apart
META_BAR, FURNITURE_IMAGE = STRONG_HINT + 1, STRONG_HINT + 2
HINT_RULES = {META_BAR: "meta_bar", FURNITURE_IMAGE: "furniture_image"}
_KEPT_ATTRS = STRUCTURED_ATTRS.union(*TAG_ATTRS.values())
_link_texts = etree.XPath(".//a//text()", smart_strings=False)


class BoilerplateWalk:
    """One recursive walk over the body (libxml2 caps nesting at 256 levels: at most 256 Python frames).
    Going down: elements that ARIA roles, class/id hints, hidden flags or a copyright notice mark as
    boilerplate lose their whole subtree (unless they hold most of the page: a wrapper). Coming back up:
    elements left without text or image, and link lists (menus), are doomed. Elements that are not kept tags
    are marked for unwrapping. The lists it fills are what the passes after it work on.

    A recursive method over the children costs less per element than `iterwalk` with start and end events
    (no event tuples, no explicit stack, no second visit of leaves)."""

    def __init__(self, body: etree._Element, wrapper_chars: float, headings: list, urls: PageUrls, count):
        self.body, self.wrapper_chars, self.urls, self.count = body, wrapper_chars, urls, count
        self.doomed: list = []
        self.labels: list = []  # what comes right before each link list: maybe its title ("Related posts")
        # short lines that are one link, outermost only, none inside a removed element
        self.lone_candidates: list = []
        self.main_candidates: list = []  # (text chars, element) of kept elements with text enough to be the article
        self.colon_lines: list = []  # short leaves ending with ":", maybe announcing something that went
        self.paragraphs: list = []  # <p>s holding a block
        self.holders: list = []  # kept elements with attributes to keep, in document order
        # the elements holding an h1 (a hint never removes them), found once instead of searching below every
        # hinted element; the set keeps their proxies alive, so the walk meets the same objects
        # (an h1 inside removed furniture adds only detached ancestors, which the walk never meets)
        self.headline_holders = {a for h in headings if h.tag == "h1" for a in h.iterancestors()}

    def run(self) -> int:
        """Walks the body; returns the text characters of what stays."""
        try:
            return self._walk(self.body)[0]
        except RecursionError:  # only when the caller already uses most of Python's recursion limit
            raise InputTooLarge("nesting too deep for the recursion limit left") from None

    def _walk(self, parent: etree._Element) -> tuple[int, int, int, int, bool]:
        """Visit parent's children; returns the text chars, link text chars, links and images of what stays
        of them (tails included) and whether a kept block is among them."""
        chars = link_chars = links = images = 0
        has_block = False
        for el in parent:
            tag, text, names, n_children = el.tag, el.text, el.keys(), len(el)
            hint = self._hint(el, parent, tag, text, names, n_children)
            own = len(text.strip()) if text else 0
            if hint and not (
                tag in HEADINGS
                or el in self.headline_holders
                or looks_like_content(el, self.wrapper_chars, hint == WEAK_HINT)
            ):
                self.doomed.append(el)
                self.count(HINT_RULES.get(hint, "hinted"))
            else:
                marks = len(self.holders), len(self.lone_candidates), len(self.main_candidates)
                tag = self._unwrap_or_hold(el, tag, names)
                if n_children:
                    sub_chars, sub_link_chars, sub_links, sub_images, sub_block = self._walk(el)
                    sub_chars += own
                else:
                    sub_chars, sub_link_chars, sub_links, sub_images, sub_block = own, 0, 0, 0, False
                if tag == "a":
                    sub_link_chars = sub_chars
                    sub_links += 1
                elif tag == "img":
                    sub_images += 1
                if self._kept(el, tag, sub_chars, sub_link_chars, sub_links, sub_images, marks):
                    if n_children and sub_chars >= MAIN_MIN_CHARS:
                        self.main_candidates.append((sub_chars, el))
                    if sub_block and tag == "p":
                        self.paragraphs.append(el)
                    chars += sub_chars
                    link_chars += sub_link_chars
                    links += sub_links
                    images += sub_images
                    has_block = has_block or sub_block or tag in BLOCKS_IN_P
            tail = el.tail
            if tail:
                chars += len(tail.strip())
        return chars, link_chars, links, images, has_block

    def _hint(self, el, parent, tag, text: str | None, names: list, n_children: int) -> int:
        """How strongly el is marked as boilerplate going down: attributes, a furniture image, a date stamp or
        photo credit, a copyright line, a metadata bar. Notes short lines ending with ':' on the way."""
        if not names:
            hint = NO_HINT
        elif len(names) == 1:  # the most frequent cases: class="...", <a href>, <img src>
            name = names[0]
            if name == "class":
                hint = boilerplate_hint(el.get("class"))
            else:
                hint = NO_HINT if name in _KEPT_ATTRS else attribute_hint(el, names)
        else:
            hint = attribute_hint(el, names)
        if tag == "img" and not hint and self._furniture_image(el, parent):
            hint = FURNITURE_IMAGE
        if not text or hint:
            return hint
        if len(text) < STAMP_CHARS and not n_children:
            stripped = text.strip()
            if stripped[-1:] == ":":
                self.colon_lines.append(el)
            if stripped and (stripped[0] in STAMP_INITIALS or stripped[-1] in STAMP_INITIALS):
                hint = STRONG_HINT if _is_stamp(stripped) else NO_HINT
        if ("©" in text or "opyright" in text or "OPYRIGHT" in text) and COPYRIGHT.match(text.strip()):
            hint = STRONG_HINT
        if "|" in text and tag not in HEADINGS and _is_meta_bar(el):
            hint = META_BAR
        return hint

    def _unwrap_or_hold(self, el: etree._Element, tag: str, names: list) -> str:
        """A tag that minimal HTML does not keep (an image without a usable src, a span without structured
        data) is marked for unwrapping; a kept element with attributes to keep is noted. Returns el's tag."""
        if (
            tag not in KEEP_TAGS
            or (tag == "img" and self.urls.image_src(el) is None)
            or (tag == "span" and STRUCTURED_ATTRS.isdisjoint(names))
        ):
            el.tag = UNWRAP
            return UNWRAP
        if tag == "img" or (names and not _KEPT_ATTRS.isdisjoint(names)):
            self.holders.append(el)
        return tag

    def _kept(self, el, tag: str, chars: int, link_chars: int, links: int, images: int, marks: tuple) -> bool:
        """Coming back up: an element without text or image goes (CM3 §3.1), a link list (a menu) goes, and
        what the walk noted inside a doomed element goes with it (a link list can hold a long text). A short
        line that is mostly one link is decided after the walk (`lone_link`)."""
        if chars == 0:
            kept = images or tag in KEEP_EMPTY_TAGS
        elif link_chars <= LINK_DENSITY * chars or chars >= self.wrapper_chars:
            kept = True
        elif links >= MIN_LINKS:
            kept = False
            self.count("link_list")
            self.labels.append(label_of(el, self.body))
        else:
            kept = True
            if chars < LONE_LINK_CHARS and tag in LONE_LINK_BLOCKS:
                del self.lone_candidates[marks[1] :]  # the outermost line is the candidate
                self.lone_candidates.append(el)
        if not kept:
            self.doomed.append(el)
            del self.holders[marks[0] :]
            del self.lone_candidates[marks[1] :]
            del self.main_candidates[marks[2] :]
        return bool(kept)

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
        src = self.urls.image_src(img)
        if src is not None and not src.startswith("data:") and src_folders_name_furniture(src):
            return True
        if parent.tag == "a" and self.urls.host is not None:
            return self.urls.is_home_page(parent.get("href") or "")
        return False


def label_of(el: etree._Element, body: etree._Element) -> etree._Element | None:
    """The element right before el in document order, climbing out of containers el starts."""
    while el.getprevious() is None:
        el = el.getparent()
        if el is body or el is None:
            return None
        if el.text and not el.text.isspace():
            return None  # a container with its own label text: `<div>Tags: <a>..</a> <a>..</a></div>`
    return el.getprevious()


def attribute_hint(el: etree._Element, names: list) -> int:
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


def furniture_holds_content(el: etree._Element, wrapper_chars: float) -> bool:
    """<header> with the headline, <form> with long text (ASP.NET wraps whole pages in one), an <aside> or
    <nav> whose class/id names content, or any of them holding most of the page, is not furniture."""
    tag = el.tag
    if tag == "header":
        return next(el.iterdescendants("h1", "h2"), None) is not None or text_len(el) > wrapper_chars
    if tag == "form":
        return looks_like_content(el, wrapper_chars)
    names = (el.get("class") or "") + " " + (el.get("id") or "")
    return text_len(el) > wrapper_chars or (bool(names.strip()) and names_content(names))


def looks_like_content(el: etree._Element, wrapper_chars: float, long_text_counts: bool = True) -> bool:
    """A hinted or furniture element is still content when it holds most of the page (more than wrapper_chars),
    or long text that is mostly not links (an article body inside a "tab-menu" or "l-sidebar" wrapper)."""
    chars = text_len(el)
    if chars > wrapper_chars:
        return True
    if not long_text_counts or chars < CONTENT_CHARS:
        return False
    return sum(len(t.strip()) for t in _link_texts(el)) < CONTENT_LINK_SHARE * chars


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
