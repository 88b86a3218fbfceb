"""`clean_page`: C4 on plain text, line by line, as tensorflow-datasets' `c4_utils.clean_page` does it.

Two deliberate differences, neither changes which lines are kept: lines are split on "\\n" only (the
contract), and a kept line is emitted stripped with citation markers removed to a fixed point, so cleaning
is idempotent (`clean_page(clean_page(x)) == clean_page(x)`).
"""

from __future__ import annotations

from c4_filters.rules import (
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


def clean_page(text: str, options: C4Options = DEFAULT_OPTIONS, stats: C4Stats | None = None) -> str | None:
    """The page's kept lines joined by "\\n", or None when a rule drops the page. Same argument order as
    `clean_html` and `drop_spans`: the text, then the options, then the counters.

    `options.exempt_tags` does not apply (plain text has no structure); `options.language=None` skips
    language detection.
    """
    stats = stats if stats is not None else C4Stats()
    stats.inc("page:read")
    kept: list[str] = []
    for raw in text.split("\n"):
        stats.inc("line:read")
        line = raw.strip()
        if has_too_long_word(line, options.max_word_length):
            stats.inc("line:too_long_word")
            continue
        line, n_citations = remove_citations(line)
        stats.inc("citation:removed", n_citations)
        failed = judge_line_shape(line, options) or judge_line_content(line)
        if failed is not None:
            stats.inc(failed)
            if failed.startswith("page:"):
                return None
            continue
        kept.append(line.strip())
    verdict = judge_page(kept, [False] * len(kept), options)
    count_verdict(verdict, stats)
    if verdict.failed is not None:
        return None
    gone = {i for i, _ in verdict.own_language_failures}
    kept = [line for i, line in enumerate(kept) if i not in gone]
    stats.inc("line:kept", len(kept))
    stats.inc("page:kept")
    return "\n".join(kept)
