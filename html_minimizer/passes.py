"""The passes after the walk (CM3 §3.1's boilerplate rules that need the whole page first): titles of removed
link lists, labels left dangling, short lines after the article, headings that lead nowhere, and the JSON-LD
article a script would have rendered."""

import json
import re

from lxml import etree

from .edits import DOOMED, remove_with_emptied_parents, text_len
from .rules import (
    ARTICLE_BODY_MIN_CHARS,
    HEADINGS,
    LIST_LABEL_CHARS,
    MAIN_SHARE,
    MAX_JSON_LD_CHARS,
    TRAILING_LINE_CHARS,
)

_LEAF_BLOCKS = frozenset("p div dd dt h1 h2 h3 h4 h5 h6 figcaption blockquote".split())


def drop_list_labels(labels: list) -> int:
    """The title of a link list that went ("Related posts", "Tags:", "Read more") goes with it: a heading or
    a short line (under LIST_LABEL_CHARS) that was right before the list and is now last in its container."""
    removed = 0
    for label in labels:
        if (
            label is not None
            and label.getparent() is not None
            and label.getnext() is None
            and not (label.tail and not label.tail.isspace())
            and label.tag != DOOMED
            and (label.tag in HEADINGS or text_len(label) < LIST_LABEL_CHARS)
            and next(label.iter("img"), None) is None
        ):
            remove_with_emptied_parents(label)
            removed += 1
    return removed


def drop_dangling_labels(lines: list) -> int:
    """A short line ending with ':' that ends its section announces what a removal took ("Anzeige:",
    "Related:", "Tags:", "Photo:"): nothing follows it in its element's parent nor in the grandparent."""
    removed = 0
    for line in lines:
        if line.getparent() is None or line.tag == DOOMED or line.tag in HEADINGS:
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
            remove_with_emptied_parents(line)
            removed += 1
    return removed


def _main_container(candidates: list, kept_chars: int) -> etree._Element | None:
    """The deepest element holding most (MAIN_SHARE) of the page's text once boilerplate went: the article.
    Such elements nest (each holds more than half the text), so the deepest holds the least."""
    best, best_chars = None, kept_chars + 1
    for chars, el in candidates:
        if MAIN_SHARE * kept_chars <= chars < best_chars:
            best, best_chars = el, chars
    return best


def drop_trailing_short_lines(body: etree._Element, candidates: list, kept_chars: int) -> int:
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
        remove_with_emptied_parents(el)
    return len(doomed)


def drop_orphan_headings(body: etree._Element, headings: list) -> int:
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
            remove_with_emptied_parents(heading)
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


def json_ld_article_body(root: etree._Element) -> str | None:
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


def misses_text(body: etree._Element, article_body: str) -> bool:
    """The cleaned body lacks the article's opening words: the text is rendered by scripts from JSON-LD."""
    opening = " ".join(article_body.split()[:12])
    return opening not in " ".join("".join(body.itertext()).split())


def insert_article_body(body: etree._Element, article_body: str) -> None:
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
