"""The LDNOOBW word lists, one per language, matched as tensorflow-datasets' current `c4_utils` matches them:
over the whole page text, lower-cased, with the list of the page's detected language. An entry matches
where no word character stands directly before or after it (TFDS's `(?:\\W|^)(entry)(?:\\W|$)`); for Chinese
and Thai, which do not separate words by spaces, anywhere (TFDS does the same for "zh" and "th").

English is the list C4 pinned (LDNOOBW commit 25e679f); the other languages are the files at commit 5faf2ba
that TFDS's mC4 config downloads (see data/README.md). To stay fast with hundreds of entries, a text is
first reduced to its set of words; only entries whose first word occurs are checked with a regex.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_WORD = re.compile(r"\w+")
# languages whose entries match inside words (no spaces between words in these scripts), as in TFDS
NO_WORD_BOUNDARIES = frozenset({"th", "zh"})
# detected language code -> the LDNOOBW files that hold its list (TFDS merges fr-CA into fr; the detectors
# here call Filipino/Tagalog "tl", LDNOOBW calls it "fil")
LIST_FILES = {
    **{
        code: (code,)
        for code in "ar cs da de en eo es fa fi hi hu it ja kab ko nl no pl pt ru sv th tlh tr zh".split()
    },
    "fr": ("fr", "fr-CA-u-sd-caqc"),
    "tl": ("fil",),
}


def _entry_pattern(entry: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(entry) + r"(?!\w)")


class BadWords:
    """A compiled word list; `find(text)` returns the first entry found (in list order) or None.

    word_boundaries=False matches entries anywhere (scripts without spaces between words)."""

    def __init__(self, entries: list[str], word_boundaries: bool = True) -> None:
        self.entries = tuple(dict.fromkeys(e.strip().lower() for e in entries if e.strip()))
        self.word_boundaries = word_boundaries
        self._by_first_word: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        self._always: list[tuple[str, re.Pattern[str]]] = []
        if not word_boundaries:
            return
        for entry in self.entries:
            first = _WORD.match(entry)
            target = self._by_first_word.setdefault(first.group(0), []) if first else self._always
            target.append((entry, _entry_pattern(entry)))

    def find(self, text: str) -> str | None:
        lower = text.lower()
        if not self.word_boundaries:
            return next((entry for entry in self.entries if entry in lower), None)
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
def ldnoobw(language: str) -> BadWords | None:
    """The package's LDNOOBW list for a detected language code, or None where LDNOOBW has none."""
    files = LIST_FILES.get(language)
    if files is None:
        return None
    data = resources.files("c4_filters").joinpath("data")
    entries = [
        line
        for name in files
        for line in data.joinpath(f"ldnoobw_{name}.txt").read_text(encoding="utf-8").splitlines()
    ]
    return BadWords(entries, word_boundaries=language not in NO_WORD_BOUNDARIES)


def ldnoobw_english() -> BadWords:
    """C4's list: LDNOOBW `en` at the commit C4 pinned."""
    return ldnoobw("en")
