"""Budgets that bound the time and memory `minimize` spends on one (possibly hostile) page."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-page budgets; a page over a hard budget raises a `MinimizeError`, soft budgets truncate.

    max_input_bytes: raw pages larger than this raise `InputTooLarge` (checked before any parsing).
    max_tags: pages with more '<' than this raise `InputTooLarge` (bounds the per-element Python work).
    max_attributes: a tag with more attributes loses all of them before parsing (libxml2 compares
        attribute names pairwise: 10^6 attributes in one tag would take hours).
    max_attribute_chars: a kept attribute value (href, alt, title, meta content) longer than this is dropped.
    max_data_uri_bytes: an `<img src="data:...">` longer than this is dropped (the image, not the page).
    max_output_chars: minimal HTML longer than this raises `InputTooLarge`.
    """

    max_input_bytes: int = 10_000_000
    max_tags: int = 1_000_000
    max_attributes: int = 1_000
    max_attribute_chars: int = 4_096
    max_data_uri_bytes: int = 1_000_000
    max_output_chars: int = 10_000_000
