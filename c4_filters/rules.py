"""The C4 rules (T5 paper section 2.2; tensorflow-datasets `c4_utils.clean_page`), one small function each.

Per line, in this order: a word over 1000 characters drops the line; citation markers are removed; a line
not ending in `. ? ! "` (or ending in `...`) is dropped; fewer than 5 words drops it; "lorem ipsum" drops the
page; "javascript" drops the line; `{` drops the page; policy phrases drop the line. Per page, in this order:
fewer than 3 sentences, any bad word, not English with p >= 0.99 (langdetect; `C4Options.language_id` can
choose fastText's lid.176 instead) -> the page is dropped.
Both `clean_page` (plain text) and `clean_html` (minimal HTML) apply them through `judge_line`/`judge_page`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from c4_filters.badwords import ldnoobw_english
from c4_filters.language import fasttext_top_language, top_language
from c4_filters.sentences import split_sentences
from html_minimizer.limits import record_from_dict

END_MARKS = (".", "?", "!", '"')
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
# "langdetect": C4's detector; "fasttext": lid.176 alone; "cascade": lid.176 where it is certain, else langdetect
LANGUAGE_IDS = ("langdetect", "fasttext", "cascade")
EXEMPT_TAGS = ("caption", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "img", "title")


@dataclass(frozen=True)
class C4Options:
    """Rule parameters; the defaults are C4's.

    Every field is a plain JSON value: `dataclasses.asdict(options)` is the record a job writes to its
    manifest and `C4Options.from_dict` rebuilds the options from it or from a config file.

    exempt_tags: text inside these elements (and image alt text, named "img") keeps the page's structure: it
    skips the end-mark and minimum-words rules, never the others. `()` treats all text as lines. Any
    collection of names is accepted and stored as a sorted tuple (same options -> same record).
    language: None skips language detection (e.g. when a job identifies language elsewhere). Codes are the
        detector's own (ISO 639-1 for the common languages in both).
    language_id: the detector (LANGUAGE_IDS). "langdetect" with min_language_probability is C4's rule.
        "fasttext" (lid.176, several times faster) requires fasttext_min_probability instead; "cascade" takes
        lid.176's answer when its top probability is >= cascade_min_probability and asks langdetect
        otherwise. c4_filters/README.md gives how often each agrees with C4's rule and why these thresholds.
    """

    max_word_length: int = 1000
    min_words_per_line: int = 5
    min_sentences: int = 3
    language: str | None = "en"
    language_id: str = "langdetect"
    min_language_probability: float = 0.99
    fasttext_min_probability: float = 0.5
    cascade_min_probability: float = 0.9
    exempt_tags: tuple[str, ...] = EXEMPT_TAGS

    def __post_init__(self) -> None:
        for name in ("max_word_length", "min_words_per_line", "min_sentences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"C4Options.{name} must be an int >= 0, not {value!r}")
        if self.language_id not in LANGUAGE_IDS:
            raise ValueError(
                f"C4Options.language_id must be one of {', '.join(LANGUAGE_IDS)}, not {self.language_id!r}"
            )
        if self.language is not None and not isinstance(self.language, str):
            raise ValueError(f"C4Options.language must be a language code or None, not {self.language!r}")
        for name in ("min_language_probability", "fasttext_min_probability", "cascade_min_probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"C4Options.{name} must be a number in [0, 1], not {value!r}")
        tags = self.exempt_tags
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise ValueError(f"C4Options.exempt_tags must be a list of tag names, not {tags!r}")
        object.__setattr__(self, "exempt_tags", tuple(sorted(set(tags))))

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> C4Options:
        """Options from a dict (a manifest's record, a config file); missing keys keep C4's defaults and an
        unknown key is a ValueError naming the closest known one (a typo must not silently keep a default)."""
        return record_from_dict(cls, values)


DEFAULT_OPTIONS = C4Options()


def has_too_long_word(line: str, max_word_length: int) -> bool:
    return len(line) > max_word_length and any(len(word) > max_word_length for word in line.split())


def remove_citations(line: str, pattern: re.Pattern[str] = CITATION) -> tuple[str, int]:
    """Removes `[1]`, `[]`, `[edit]`, `[citation needed]` (or what `pattern` matches), repeated until none
    is left (so "[[1]]" goes too and cleaning twice changes nothing); returns the new line and the count."""
    removed = 0
    while True:
        line, n = pattern.subn("", line)
        if not n:
            return line, removed
        removed += n


def lacks_end_mark(line: str) -> bool:
    return not line.endswith(END_MARKS)


def ends_with_ellipsis(line: str) -> bool:
    return line.endswith(ELLIPSIS)


def has_too_few_words(line: str, min_words: int) -> bool:
    return len(line.split()) < min_words


def has_lorem_ipsum(line_lower: str) -> bool:
    return "lorem ipsum" in line_lower


def mentions_javascript(line_lower: str) -> bool:
    return "javascript" in line_lower


def has_curly_bracket(line: str) -> bool:
    return "{" in line


def has_policy_phrase(line_lower: str) -> bool:
    return any(phrase in line_lower for phrase in POLICY_SUBSTRINGS)


def judge_line_shape(line: str, options: C4Options) -> str | None:
    """The end-mark and length rules (the ones exempt structure skips): failing rule name or None."""
    if lacks_end_mark(line):
        return "line:no_end_mark"
    if ends_with_ellipsis(line):
        return "line:ends_with_ellipsis"
    if has_too_few_words(line, options.min_words_per_line):
        return "line:too_few_words"
    return None


def judge_line_content(line: str) -> str | None:
    """The content rules after the shape rules, in C4 order: a "page:*" name drops the page, "line:*" the line."""
    lower = line.lower()
    if has_lorem_ipsum(lower):
        return "page:lorem_ipsum"
    if mentions_javascript(lower):
        return "line:javascript"
    if has_curly_bracket(line):
        return "page:curly_bracket"
    if has_policy_phrase(lower):
        return "line:policy"
    return None


def count_sentences(lines: Iterable[str]) -> int:
    return sum(len(split_sentences(line)) for line in lines)


def identify_language(text: str, options: C4Options) -> tuple[str | None, float, float]:
    """(top language, its probability, the probability the rule requires of the detector that answered)."""
    if options.language_id != "langdetect":
        lang, prob = fasttext_top_language(text)
        if options.language_id == "fasttext":
            return lang, prob, options.fasttext_min_probability
        if prob >= options.cascade_min_probability:  # lid.176 is certain: its answer stands
            return lang, prob, options.cascade_min_probability
    lang, prob = top_language(text)
    return lang, prob, options.min_language_probability


@dataclass(frozen=True)
class PageVerdict:
    failed: str | None  # "page:too_few_sentences" | "page:bad_words" | "page:not_english" | None
    n_sentences: int
    lang_score: float  # probability of the detector's top language; 0.0 when detection is off


def judge_page(sentence_lines: list[str], all_lines: list[str], options: C4Options) -> PageVerdict:
    """Page rules in order: >= min_sentences over `sentence_lines`, no bad word and the wanted language over
    `all_lines` (exempt structure included)."""
    n_sentences = count_sentences(sentence_lines)
    if n_sentences < options.min_sentences:
        return PageVerdict("page:too_few_sentences", n_sentences, 0.0)
    bad_words = ldnoobw_english()
    if any(bad_words.find(line) for line in all_lines):
        return PageVerdict("page:bad_words", n_sentences, 0.0)
    if options.language is None:
        return PageVerdict(None, n_sentences, 0.0)
    lang, prob, required = identify_language("\n".join(all_lines), options)
    if lang != options.language or prob < required:
        name = "page:not_english" if options.language == "en" else f"page:not_{options.language}"
        return PageVerdict(name, n_sentences, prob)
    return PageVerdict(None, n_sentences, prob)
