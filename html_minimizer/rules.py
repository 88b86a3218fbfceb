"""What the minimal HTML keeps: tag sets, structured-data attributes, boilerplate hints and the thresholds
of the boilerplate walk in `core` (which holds the mechanics only: one rule changes here, in one place).

Every rule here is general (tags, ARIA roles, class/id vocabulary); none names a site.
"""

import re
from functools import lru_cache

# removed with their whole subtree (their tail text stays: it belongs to the parent)
DROP_TAGS = frozenset(
    """script style noscript template svg math canvas iframe frame frameset object embed applet param
    button input select option optgroup textarea datalist output progress meter label fieldset
    legend audio video source track map area link meta base title head""".split()
)
# page furniture by HTML semantics: removed like DROP_TAGS unless they hold most of the page's text
# (a site that wraps its whole content in one <form> or <header> keeps it)
FURNITURE_TAGS = frozenset("nav aside footer header menu form dialog".split())
# kept as elements (everything else is unwrapped: its text and children move into the parent)
KEEP_TAGS = frozenset(
    """div p h1 h2 h3 h4 h5 h6 ul ol li dl dt dd table thead tbody tfoot tr th td caption blockquote pre
    code a img figure figcaption br em strong b i u s sub sup q cite abbr time mark small del ins kbd samp
    var dfn article section main details summary address span""".split()
)
# elements that stay even when empty: they carry layout that their siblings depend on
KEEP_EMPTY_TAGS = frozenset(["br", "td", "th", "img"])
# spans are kept only when they carry structured data
STRUCTURED_ATTRS = frozenset(["itemprop", "itemtype", "itemscope", "itemid"])
TAG_ATTRS = {
    "a": frozenset(["href", "title"]),
    "img": frozenset(["src", "alt", "title"]),
}
STRUCTURED_META_PREFIXES = ("og:", "twitter:", "article:")
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# structured data: a JSON-LD schema.org articleBody of at least this many characters is the article, used when the
# page renders it with scripts (the body lacks its opening words); larger JSON-LD scripts are not read
ARTICLE_BODY_MIN_CHARS = 200
MAX_JSON_LD_CHARS = 2_000_000
# position: the article is the deepest element holding MAIN_SHARE of the paragraph text (when the page has at
# least MAIN_MIN_CHARS of it); after it, lines shorter than TRAILING_LINE_CHARS go
MAIN_SHARE = 0.6
MAIN_MIN_CHARS = 500
TRAILING_LINE_CHARS = 80
# a heading with more text than this before a block element inside it swallowed what follows it
HEADING_MAX_CHARS = 300
# blocks an HTML parser does not let a <p> hold
BLOCKS_IN_P = frozenset(
    """div p ul ol li dl dt dd table tr td th h1 h2 h3 h4 h5 h6 blockquote pre figure section article main
    details address hr""".split()
)

# images: lazy-loading attributes that hold the real src, and the length under which a data: URI is a
# lazy-loading placeholder (a 1x1 GIF), not an image
LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-url")
PLACEHOLDER_CHARS = 200

# thresholds of the boilerplate walk (shares are of text characters, whitespace-normalised)
# furniture / hinted boilerplate holding more than this share of the page text is a wrapper, kept
WRAPPER_SHARE = 0.5
# hinted elements with at least this much text, at most this share of it in links, are kept
CONTENT_CHARS = 600
CONTENT_LINK_SHARE = 0.3
# a link list or menu: at least this many links whose text is more than this share of the text
MIN_LINKS = 2
LINK_DENSITY = 0.6
LONE_LINK_BLOCKS = frozenset("p div li dd dt".split())
LONE_LINK_CHARS = 80
# a metadata bar: a line of at most META_BAR_CHARS with at least META_BAR_FIELDS fields split by '|', each
# shorter than META_FIELD_CHARS
META_BAR_CHARS = 200
META_BAR_FIELDS = 3
META_FIELD_CHARS = 60
# the title line of a link list ("Related posts", "Tags:") is shorter than this
LIST_LABEL_CHARS = 80
# longest own text of an element checked for being only a date stamp or photo credit, and the characters
# such a text starts or ends with (a cheap filter before the regular expressions DATE_ONLY, PHOTO_CREDIT)
STAMP_CHARS = 120
STAMP_INITIALS = frozenset("0123456789FfPpBbIiCcQq")

BOILERPLATE_ROLES = frozenset(
    """navigation banner contentinfo complementary search dialog alertdialog menu menubar toolbar form
    tablist tooltip""".split()
)

# class/id words that mark boilerplate when they head or end a class name ("site-footer", "mainNav",
# "share-buttons", "sidebar-left", layout words also inside one compound: "entryfooter"); a word in the middle ("elementor-top-section"), a BEM
# modifier ("field--label-hidden", "section--has-ads") or a state/utility class ("has-sidebar",
# "enable-pin-share") describes something else.
# STRONG words name what is never the page's content (only a wrapper holding most of the page survives);
# WEAK words name layout that sometimes wraps the content ("l-sidebar-fixed", "tab-menu", "blog_teaser"),
# so an element with long, mostly unlinked text survives them.
_STRONG = """breadcrumb breadcrumbs crumbs cookie cookies consent gdpr cmp modal popup popover share sharing sharer
    shares social socials sociallinks socialmedia sharebar sharebuttons related relatedposts recommended
    recommendations respond reply commentform newsletter subscribe subscription signup login signin register
    advert advertisement advertising ads ad adsense adslot sponsor sponsored promo promotion pagination pager
    paging skip skiplink skiplinks tagcloud tags copyright credit credits sronly screenreader visuallyhidden
    outbrain taboola rating ratings reactions byline author authors authorbox authorinfo authorbio bio meta postmeta
    entrymeta
    akismet form next prev nextpost prevpost nextstory prevstory cta logo logos icon icons avatar avatars gravatar emoji
    emoticon smiley smilies badge badges sprite spinner headshot""".split()
_WEAK = """nav navbar navigation navi menu menubar submenu megamenu mainmenu topmenu sidebar sidenav footer
    header masthead topbar toolbar banner overlay lightbox offcanvas dropdown hidden teaser teasers print widget
    widgets""".split()
# words that name boilerplate only at the head of a class name: WordPress's sidebar "widget", "widget_recent"
# and "widget-area", where page builders name their content blocks "elementor-widget"
# (and "next-post", "prev-link", but not "carousel-next")
_HEAD_ONLY = frozenset("widget widgets next prev".split())
_STATE_PREFIXES = frozenset("has is no not with without enable enabled disable show hide js".split())
_TOKEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_LAYOUT_ALT = "|".join(w for w in _WEAK if len(w) >= 5)
_LAYOUT_PREFIX = re.compile(f"(?:{_LAYOUT_ALT})")
_LAYOUT_SUFFIX = re.compile(f"(?:{_LAYOUT_ALT})$")
NO_HINT, WEAK_HINT, STRONG_HINT = 0, 1, 2


_WORD_HINTS = {**{w: WEAK_HINT for w in _WEAK}, **{w: STRONG_HINT for w in _STRONG}}


@lru_cache(maxsize=65536)
def _class_name_hint(name: str) -> int:
    """BEM names count per part: "entry-author__description" and "TestReport__AuthorBox" name an author box."""
    block = name.split("--", 1)[0]
    if "__" in block:
        return max(_word_hint(part) for part in block.split("__"))
    return _word_hint(block)


def _word_hint(name: str) -> int:
    words = _TOKEN.findall(name)
    if len(words) > 1 and len(words[0]) == 1:  # ITCSS/BEM namespace: "c-", "o-", "l-"
        del words[0]
    if not words:
        return NO_HINT
    first = words[0].lower()
    if first in _STATE_PREFIXES:
        return NO_HINT
    hint_of = _WORD_HINTS.get
    if len(words) == 1:
        found = hint_of(first, NO_HINT)
        if not found and (_LAYOUT_PREFIX.match(first) or _LAYOUT_SUFFIX.search(first)):
            found = WEAK_HINT  # one compound word: "entryfooter", "sidebarleft"
        return found
    last = words[-1].lower()
    hint = max(
        hint_of(first, NO_HINT),
        NO_HINT if last in _HEAD_ONLY else hint_of(last, NO_HINT),
        hint_of("".join(words).lower(), NO_HINT),
    )
    if hint != STRONG_HINT and len(words) > 2:
        # two words joined anywhere in the name: "mvp-author-box-text" names an author box
        lower = [w.lower() for w in words]
        for pair in map("".join, zip(lower, lower[1:], strict=False)):
            hint = max(hint, hint_of(pair, NO_HINT))
    return hint


@lru_cache(maxsize=65536)
def boilerplate_hint(names: str) -> int:
    """How strongly a class/id string names boilerplate: 'site-footer', 'mainNav', 'share_buttons' ..."""
    best = NO_HINT
    for name in names.split():
        hint = _class_name_hint(name)
        if hint > best:
            best = hint
            if best == STRONG_HINT:
                break
    return best


_CONTENT_WORDS = frozenset("content article main post entry story body text".split())


@lru_cache(maxsize=4096)
def names_content(names: str) -> bool:
    """True when a class/id string names the page's content ("nfy-pa-direct-content", "article-body")."""
    return any(w.lower() in _CONTENT_WORDS for w in _TOKEN.findall(names))


# furniture images: a logo, an icon, a headshot, an emoji, a spacer; each would be 256 image tokens of noise.
# Their class/id words are STRONG hints above; these are the other signals of `core._furniture_image`:
# width and height both at most this many pixels (icons, emoji; 1x1 tracking pixels)
ICON_PX = 48
# an image wider or higher than this is content whatever its alt or folder says
CONTENT_IMAGE_PX = 300
# a folder of the src named like this ("/images/icons/rss.png", "/avatar/ab12"), or a short alt of at most
# FURNITURE_ALT_WORDS words with one of these words ("Site logo", "Author avatar")
FURNITURE_IMAGE_WORDS = frozenset(
    """logo logos icon icons avatar avatars gravatar emoji emojis emoticons smilies smileys badge badges sprite
    sprites spacer headshot headshots""".split()
)
FURNITURE_ALT_WORDS = 4
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
COPYRIGHT = re.compile(r"^\W{0,3}(?:©|\(c\)|copyright\b|all rights reserved)", re.I)
# a short element that is only a photo credit ("Foto: dpa", "Photograph by ...", "Credit: ...")
PHOTO_CREDIT = re.compile(
    r"\W{0,3}(?:fotos?|photos?|photograph|bild(?:er)?|images?|pictures?|credits?|bildquelle|quelle)"
    r"\s*(?::|by\b|von\b)",
    re.I,
)
_MONTHS = (
    "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|januar|februar|märz|mai|juni|juli|august|september"
    "|oktober|dezember|january|february|march|april|june|july|october|november|december|janvier|février|mars"
    "|avril|juin|juillet|août|septembre|octobre|novembre|décembre"
)
_WEEKDAYS = (
    "mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday|montag|dienstag"
    "|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche"
)
# a short element that is only a date and/or time: publication stamps, not content
DATE_ONLY = re.compile(
    rf"(?:(?:{_WEEKDAYS})\.?,?\s+)?"
    rf"(?:\d{{1,4}}[./-]\s?\d{{1,2}}[./-]\s?\d{{2,4}}|\d{{1,2}}\.?\s+(?:{_MONTHS})\.?(?:\s+\d{{4}})?"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?(?:\s+\d{{4}})?)?"
    r"(?:,?\s*(?:um\s+|at\s+|à\s+)?\d{1,2}[:.h]\d{2}(?:\s*(?:uhr|am|pm|h))?)?",
    re.I,
)


_WORDS = re.compile(r"[a-z]+")


@lru_cache(maxsize=4096)
def src_folders_name_furniture(src: str) -> bool:
    """A folder of the image URL's path names furniture: ".../themes/x/icons/rss.png"."""
    path = src.split("?", 1)[0].split("#", 1)[0].lower().split("/")[3:-1]  # scheme, "", host ... file
    return any(part in FURNITURE_IMAGE_WORDS for part in path)


def alt_names_furniture(alt: str) -> bool:
    words = _WORDS.findall(alt.lower())
    return len(words) <= FURNITURE_ALT_WORDS and any(w in FURNITURE_IMAGE_WORDS for w in words)


def style_hides(style: str) -> bool:
    return bool(_HIDDEN_STYLE.search(style))
