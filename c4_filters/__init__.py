"""C4 cleaning (T5 section 2.2) for CM3: the exact plain-text rules, the same rules on minimal HTML, and the
span-hash helpers for corpus-wide three-sentence dedup. Pure functions: stdlib, langdetect, lxml."""

from c4_filters.dedup import drop_spans, span_hashes
from c4_filters.hashing import key_hash, stable_hash
from c4_filters.html_clean import CleanResult, clean_html
from c4_filters.plain import clean_page
from c4_filters.rules import C4Options
from c4_filters.stats import C4Stats

__all__ = [
    "C4Options",
    "C4Stats",
    "CleanResult",
    "clean_html",
    "clean_page",
    "drop_spans",
    "key_hash",
    "span_hashes",
    "stable_hash",
]
