"""Budgets that bound the time and memory `minimize` spends on one (possibly hostile) page."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    """Per-page budgets; a page over a hard budget raises a `MinimizeError`, soft budgets truncate.

    Every field is a positive int (a plain JSON value): `dataclasses.asdict(limits)` records them in a job's
    manifest and `Limits.from_dict` rebuilds them from it or from a config file.

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

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive int, not {value!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> Limits:
        """Limits from a dict (a manifest's record, a config file); missing keys keep their defaults and an
        unknown key is a ValueError naming the closest known one (a typo must not silently keep a default)."""
        return record_from_dict(cls, values)


def record_from_dict(cls, values: Mapping[str, object]):
    """`cls(**values)` for a dataclass of options, where an unknown key is a ValueError naming the closest
    known one (shared by Limits and c4_filters.C4Options)."""
    known = [field.name for field in fields(cls)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise ValueError(f"unknown {cls.__name__} key {key!r}{hint}")
    return cls(**values)
