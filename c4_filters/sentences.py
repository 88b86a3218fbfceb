"""An offline English sentence splitter (C4 used NLTK punkt, which needs a data download).

Rule-based: a sentence ends at `.`, `?` or `!` (plus closing quotes/brackets) followed by whitespace and a
capital letter, digit or opening quote, unless the period belongs to a known abbreviation or a single-letter
initial. It is used to count sentences (the ">= 3 sentences" page rule) and to cut three-sentence spans for
dedup, where being deterministic matters more than matching punkt on every edge case.

Scripts whose sentences end in other marks (。！？ in Chinese and Japanese, । in Devanagari, ؟ in Arabic
script ...; see `rules.SCRIPT_END_MARKS`) are split after those marks wherever they stand, when the caller
passes them as `extra_marks` (a job that selects those languages does): they need no space after them and
the scripts have no capital letters.
"""

from __future__ import annotations

import functools
import re

_BOUNDARY = re.compile(r"[.?!]+[\"'\u201d\u2019)\]]*\s+")
_OPENERS = "\"'\u201c\u2018([¿¡"
_LAST_TOKEN = re.compile(r"(\S+)$")
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al inc ltd co corp dept univ no nos vol fig figs
    approx est gen gov sen rep rev hon capt col lt sgt jan feb mar apr jun jul aug sep sept oct nov dec
    u.s u.k u.n a.m p.m ph.d""".split()
)


def _is_abbreviation(before: str) -> bool:
    """True when the text before a single period ends in an abbreviation or an initial ("J.")."""
    match = _LAST_TOKEN.search(before)
    if match is None:
        return False
    token = match.group(1).lstrip(_OPENERS).lower()
    return (len(token) == 1 and token.isalpha()) or token in _ABBREVIATIONS


# closing quotes and brackets that may follow a sentence-final mark
CLOSERS = "\"'\u201d\u2019)]\u300d\u300f\uff09"


@functools.cache
def _extra_boundary(extra_marks: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(extra_marks)}]+[{re.escape(CLOSERS)}]*")


def split_sentences(text: str, extra_marks: str = "") -> list[str]:
    """Sentences of `text`, stripped, in order; no empty strings. `extra_marks`: sentence-final marks of
    other scripts, a boundary wherever they stand."""
    if extra_marks and any(mark in text for mark in extra_marks):
        pieces, start = [], 0
        for match in _extra_boundary(extra_marks).finditer(text):
            pieces.append(text[start : match.end()])
            start = match.end()
        pieces.append(text[start:])
        return [sentence for piece in pieces for sentence in _split_latin(piece)]
    return _split_latin(text)


def _split_latin(text: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        following = text[match.end() : match.end() + 3].lstrip(_OPENERS)
        if not following or not (following[0].isupper() or following[0].isdigit()):
            continue
        marks = match.group(0).rstrip()
        if marks.rstrip("\"'\u201d\u2019)]") == "." and _is_abbreviation(text[start : match.start()]):
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
