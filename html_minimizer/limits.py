"""Budgets that bound the time and memory `minimize` spends on one (possibly hostile) page."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-page budgets; a page over a hard budget raises a `MinimizeError`, soft budgets truncate.

    max_input_bytes: raw pages larger than this raise `InputTooLarge` (checked before any parsing).
    max_elements: parsing stops being useful past this many elements; larger trees raise `InputTooLarge`.
    max_depth: elements nested deeper than this are dropped with their subtree (libxml2 itself caps
        HTML nesting at 256, this keeps our own walks shallow whatever the parser does).
    max_attributes: attributes read per element; the rest are ignored (we keep at most a handful).
    max_attribute_chars: a kept attribute value (href, alt, title, meta content) longer than this is dropped.
    max_data_uri_bytes: an `<img src="data:...">` longer than this is dropped (the image, not the page).
    max_output_chars: minimal HTML longer than this raises `InputTooLarge`.
    """

    max_input_bytes: int = 20_000_000
    max_elements: int = 500_000
    max_depth: int = 256
    max_attributes: int = 64
    max_attribute_chars: int = 4_096
    max_data_uri_bytes: int = 1_000_000
    max_output_chars: int = 5_000_000
