"""`clean_html`: the C4 rules on minimal HTML, removing failing blocks and dropping failing pages.

Each block (see `blocks`) is a line. Blocks under `C4Options.exempt_tags` (headings, <title>, captions,
image alt) skip the end-mark and minimum-words rules but face all others: a heading "Privacy Policy" goes,
a title with "lorem ipsum" drops the page. Images stay when the text around them goes; a failing alt text
loses only its alt attribute. Page rules: sentences are counted over the kept non-exempt blocks; bad words
and language are checked over all kept text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from c4_filters.blocks import Block, read_blocks, remove_block
from c4_filters.rules import (
    CITATION,
    DEFAULT_OPTIONS,
    C4Options,
    count_verdict,
    has_too_long_word,
    judge_line_content,
    judge_line_shape,
    judge_page,
    remove_citations,
)
from c4_filters.stats import C4Stats
from html_minimizer.tree import parse_minimal, prune_empty_elements, serialize

# in HTML the space before a marker goes with it, so "word [1]." becomes "word."
_CITATION_WITH_SPACE = re.compile(r"\s*(?:" + CITATION.pattern + ")")


@dataclass(frozen=True)
class CleanResult:
    html: str  # the cleaned minimal HTML (same serialisation rules as html_minimizer)
    text: str  # the kept blocks' text joined by "\n", in block order
    lang_score: float  # probability of the detected language (0.0 when detection is off)
    n_sentences: int  # sentences in the kept non-exempt blocks
    language: str = ""  # the detected language (no region suffix); "" when detection is off


def remove_block_citations(block: Block) -> int:
    """Removes markers text node by text node (a marker split across elements stays); returns the count."""
    if "[" not in block.text:
        return 0
    if block.is_alt:
        alt, removed = remove_citations(block.image.get("alt") or "", _CITATION_WITH_SPACE)
        if removed:
            block.image.set("alt", alt)
        return removed
    removed = 0
    for el, slot in list(block.text_slots()):
        value = getattr(el, slot)
        if value and "[" in value:
            value, n = remove_citations(value, _CITATION_WITH_SPACE)
            if n:
                setattr(el, slot, value or None)
                removed += n
    return removed


def judge_block(block: Block, options: C4Options, stats: C4Stats) -> str | None:
    """The per-line rules in C4 order; removes citation markers from the tree on the way (counted in
    `stats`). Returns the first failing rule's name ("page:*" drops the page) or None."""
    if has_too_long_word(block.text, options.max_word_length):
        return "line:too_long_word"
    n_citations = remove_block_citations(block)
    if n_citations:
        stats.inc("citation:removed", n_citations)
        block.text = block.current_text()
        if not block.text:
            return "line:only_citations"
    if not block.exempt:
        failed = judge_line_shape(block.text, options)
        if failed is not None:
            return failed
    return judge_line_content(block.text)


def finish_page(
    root, kept: list[Block], options: C4Options, stats: C4Stats, prefix: str = ""
) -> CleanResult | None:
    """Page rules over the kept blocks, then pruning and serialisation; None when a page rule fails."""
    verdict = judge_page([b.text for b in kept], [b.exempt for b in kept], options)
    count_verdict(verdict, stats, prefix)
    if verdict.failed is not None:
        return None
    gone = {i for i, _ in verdict.own_language_failures}  # lines only another selected language allows
    for i in sorted(gone):
        remove_block(kept[i])
    kept = [block for i, block in enumerate(kept) if i not in gone]
    prune_empty_elements(root)
    stats.inc(prefix + "line:kept", len(kept))
    stats.inc(prefix + "page:kept")
    return CleanResult(
        serialize(root),
        "\n".join(b.text for b in kept),
        verdict.lang_score,
        verdict.n_sentences,
        verdict.language,
    )


def clean_html(
    html: str, options: C4Options = DEFAULT_OPTIONS, stats: C4Stats | None = None
) -> CleanResult | None:
    """C4-cleaned minimal HTML, or None when the page is dropped (or is no HTML document at all)."""
    stats = stats if stats is not None else C4Stats()
    stats.inc("page:read")
    root = parse_minimal(html)
    if root is None:
        stats.inc("page:unparseable")
        return None
    kept: list[Block] = []
    for block in read_blocks(root, options.exempt_tags):
        stats.inc("line:read")
        failed = judge_block(block, options, stats)
        if failed is None:
            kept.append(block)
            continue
        stats.inc(failed)
        if failed.startswith("page:"):
            return None
        remove_block(block)
    return finish_page(root, kept, options, stats)
