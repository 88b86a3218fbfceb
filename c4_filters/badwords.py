"""The LDNOOBW English list C4 pinned, matched on word boundaries, case-insensitively.

Multi-word entries ("2 girls 1 cup") match across any run of whitespace. Entries that begin or end with a
non-word character (the emoji entry, "s&m") need no boundary on that side. To stay fast with 377 entries, a
text is first reduced to its set of words; only entries whose first word occurs are checked with a regex.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_WORD = re.compile(r"\w+")


def _entry_pattern(entry: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in entry.split())
    before = r"(?<!\w)" if _WORD.match(entry) else ""
    after = r"(?!\w)" if re.search(r"\w$", entry) else ""
    return re.compile(before + body + after)


class BadWords:
    """A compiled word list; `find(text)` returns the first entry found (in list order) or None."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = tuple(dict.fromkeys(e.strip().lower() for e in entries if e.strip()))
        self._by_first_word: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        self._always: list[tuple[str, re.Pattern[str]]] = []
        for entry in self.entries:
            first = _WORD.search(entry)
            target = self._by_first_word.setdefault(first.group(0), []) if first else self._always
            target.append((entry, _entry_pattern(entry)))

    def find(self, text: str) -> str | None:
        lower = text.lower()
        found = [
            entry
            for word in set(_WORD.findall(lower)) & self._by_first_word.keys()
            for entry, pattern in self._by_first_word[word]
            if pattern.search(lower)
        ]
        found += [entry for entry, pattern in self._always if pattern.search(lower)]
        if not found:
            return None
        order = {entry: i for i, entry in enumerate(self.entries)}
        return min(found, key=order.__getitem__)


@functools.cache
def ldnoobw_english() -> BadWords:
    """The package's copy of LDNOOBW `en` (see data/README.md for source and licence)."""
    text = (
        resources.files("c4_filters").joinpath("data").joinpath("ldnoobw_en.txt").read_text(encoding="utf-8")
    )
    return BadWords(text.splitlines())
