"""The C4 rules (T5 paper section 2.2; tensorflow-datasets `c4_utils.clean_page`), one small function each.

Per line, in this order: a word over 1000 characters drops the line; citation markers are removed; a line
not ending in `. ? ! "` (or ending in `...`) is dropped; fewer than 5 words drops it; "lorem ipsum" drops the
page; "javascript" drops the line; `{` drops the page; policy phrases drop the line. Per page, in this order:
fewer than 3 sentences, not English with p >= 0.99 (langdetect; `C4Options.language_id` can choose fastText's
lid.176 instead), any bad word of the detected language's list (tensorflow-datasets' current order: the
bad-words filter runs on the whole page after language detection) -> the page is dropped.

Beyond English (`C4Options.language` a set of codes or "all", as mC4 went beyond C4): a page is kept when
its top language with p >= the threshold is selected; lines may also end in the sentence-final marks of the
selected languages' scripts (SCRIPT_END_MARKS) and, for scripts without spaces, count characters as words;
once the page's language is known, lines that only another selected language allows go; the bad-word list
is the detected language's.
Both `clean_page` (plain text) and `clean_html` (minimal HTML) apply them through `judge_line`/`judge_page`.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from c4_filters.badwords import ldnoobw, ldnoobw_english
from c4_filters.language import base_code, fasttext_top_language, known_languages, top_language
from c4_filters.sentences import CLOSERS, split_sentences
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
# Sentence-final marks of scripts that do not end sentences with . ? ! (C4's rule keeps only lines ending in
# . ? ! "): a line may end in one of these, optionally followed by closing quotes/brackets, when its language
# is selected. Greek's question mark is ";" (also the semicolon, so not listed); Thai and Lao mark no
# sentence end at all (see README: C4's end-mark rule keeps almost no line of theirs).
SCRIPT_END_MARKS = {
    **dict.fromkeys(("zh", "ja", "wuu"), "\u3002\uff01\uff1f"),  # 。！？
    **dict.fromkeys(("hi", "mr", "ne", "sa", "bn", "pa", "as", "mai", "bh", "new"), "\u0964\u0965"),  # । ॥
    **dict.fromkeys(("ar", "fa", "ur", "ps", "ckb", "sd", "ug", "azb", "arz", "pnb"), "\u061f\u06d4"),  # ؟ ۔
    "hy": "\u0589",  # ։
    "my": "\u104b",  # ။
    "km": "\u17d4",  # ។
    "am": "\u1362\u1367",  # ። ፧
    "bo": "\u0f0d",  # །
}
# languages written without spaces between words: C4's "5 words" counts each of their characters as a word
SPACELESS_LANGUAGES = frozenset({"zh", "ja", "wuu", "th", "lo", "km", "my", "bo"})
# Thai, Lao, Tibetan, Myanmar, Khmer, kana, CJK ideographs (and their compatibility block)
_SPACELESS_CHARACTER = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)
ALL_LANGUAGES = "all"
UNDETERMINED = "und"  # no language found (TFDS's name for it)
EXEMPT_TAGS = ("caption", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "img", "title")


@dataclass(frozen=True)
class C4Options:
    """Rule parameters; the defaults are C4's.

    Every field is a plain JSON value: `dataclasses.asdict(options)` is the record a job writes to its
    manifest and `C4Options.from_dict` rebuilds the options from it or from a config file.

    exempt_tags: text inside these elements (and image alt text, named "img") keeps the page's structure: it
    skips the end-mark and minimum-words rules, never the others. `()` treats all text as lines. Any
    collection of names is accepted and stored as a sorted tuple (same options -> same record).
    language: the language(s) to keep: one code ("en", C4's rule), several (a list, or "en,de"; stored as a
        sorted tuple), "all" (any language the detector is sure of), or None to skip language detection
        (e.g. when a job identifies language elsewhere). Codes are the detector's own without a region
        ("zh" covers langdetect's zh-cn and zh-tw, as TFDS strips suffixes); an unknown one is a ValueError.
    language_id: the detector (LANGUAGE_IDS). "langdetect" with min_language_probability is C4's rule.
        "fasttext" (lid.176, several times faster) requires fasttext_min_probability instead; "cascade" takes
        lid.176's answer when its top probability is >= cascade_min_probability and asks langdetect
        otherwise. c4_filters/README.md gives how often each agrees with C4's rule and why these thresholds.
    """

    max_word_length: int = 1000
    min_words_per_line: int = 5
    min_sentences: int = 3
    language: str | tuple[str, ...] | None = "en"
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
        object.__setattr__(self, "language", _language_record(self.language, self.language_id))
        for name in ("min_language_probability", "fasttext_min_probability", "cascade_min_probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"C4Options.{name} must be a number in [0, 1], not {value!r}")
        tags = self.exempt_tags
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise ValueError(f"C4Options.exempt_tags must be a list of tag names, not {tags!r}")
        object.__setattr__(self, "exempt_tags", tuple(sorted(set(tags))))

    @functools.cached_property
    def selected_languages(self) -> frozenset[str] | None:
        """The codes a page's language must be one of; None: any language ("all")."""
        if self.language == ALL_LANGUAGES:
            return None
        return frozenset((self.language,) if isinstance(self.language, str) else self.language or ())

    @functools.cached_property
    def script_end_marks(self) -> str:
        """Sentence-final marks of the selected languages' scripts (SCRIPT_END_MARKS), "" for English: lines
        may end in them and the sentence splitter cuts after them."""
        selected = self.selected_languages
        marks = "".join(m for code, m in SCRIPT_END_MARKS.items() if selected is None or code in selected)
        return "".join(sorted(set(marks)))

    @functools.cached_property
    def spaceless_words(self) -> bool:
        """Whether a selected language is written without spaces (its characters count as words)."""
        selected = self.selected_languages
        return selected is None or bool(selected & SPACELESS_LANGUAGES)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> C4Options:
        """Options from a dict (a manifest's record, a config file); missing keys keep C4's defaults and an
        unknown key is a ValueError naming the closest known one (a typo must not silently keep a default)."""
        return record_from_dict(cls, values)


def _language_record(value, language_id: str) -> str | tuple[str, ...] | None:
    """C4Options.language as stored: None, "all", one code, or a sorted tuple of several; codes checked
    against what the detector can answer."""
    if isinstance(value, str) and value.strip().lower() == ALL_LANGUAGES:
        return ALL_LANGUAGES
    if value is None:
        return value
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, bool) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(
            f"C4Options.language must be a language code, a list of them, all or None, not {value!r}"
        )
    codes = sorted({str(code).strip().lower() for code in value} - {""})
    if codes == [ALL_LANGUAGES]:
        return ALL_LANGUAGES
    if not codes or ALL_LANGUAGES in codes:
        raise ValueError(
            f"C4Options.language must name at least one language (or be all alone), not {value!r}"
        )
    for code in codes:  # langdetect's codes are all lid.176 labels too: lid.176 is read only for others
        if code not in known_languages("langdetect") and (
            language_id == "langdetect" or code not in known_languages(language_id)
        ):
            known = known_languages(language_id)
            close = difflib.get_close_matches(code, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown language code {code!r} for language_id {language_id}{hint}")
    return codes[0] if len(codes) == 1 else tuple(codes)


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


def lacks_end_mark(line: str, script_end_marks: str = "") -> bool:
    """C4's `. ? ! "`; with script_end_marks, also a line ending in one of them (closers may follow)."""
    if line.endswith(END_MARKS):
        return False
    return not (script_end_marks and line.rstrip(CLOSERS).endswith(tuple(script_end_marks)))


def ends_with_ellipsis(line: str) -> bool:
    return line.endswith(ELLIPSIS)


def has_too_few_words(line: str, min_words: int, spaceless_words: bool = False) -> bool:
    """C4 counts whitespace-separated words; with spaceless_words, a token of a script written without
    spaces counts as its number of such characters (a Chinese line of 5 characters is 5 words)."""
    tokens = line.split()
    if not spaceless_words or len(tokens) >= min_words:
        return len(tokens) < min_words
    return sum(max(1, len(_SPACELESS_CHARACTER.findall(token))) for token in tokens) < min_words


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
    if lacks_end_mark(line, options.script_end_marks):
        return "line:no_end_mark"
    if ends_with_ellipsis(line):
        return "line:ends_with_ellipsis"
    if has_too_few_words(line, options.min_words_per_line, options.spaceless_words):
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


def count_sentences(lines: Iterable[str], extra_marks: str = "") -> int:
    return sum(len(split_sentences(line, extra_marks)) for line in lines)


def identify_language(text: str, options: C4Options) -> tuple[str | None, float, float]:
    """(top language without region suffix, its probability, the probability the rule requires of the
    detector that answered)."""
    if options.language_id != "langdetect":
        lang, prob = fasttext_top_language(text)
        if options.language_id == "fasttext":
            return base_code(lang), prob, options.fasttext_min_probability
        if prob >= options.cascade_min_probability:  # lid.176 is certain: its answer stands
            return base_code(lang), prob, options.cascade_min_probability
    lang, prob = top_language(text)
    return base_code(lang), prob, options.min_language_probability


def language_failure(options: C4Options) -> str:
    """The counter of a page the language rule drops: C4's name for English, one per single language,
    one name for a set."""
    if isinstance(options.language, str) and options.language != ALL_LANGUAGES:
        return "page:not_english" if options.language == "en" else f"page:not_{options.language}"
    return "page:not_selected_language"


@dataclass(frozen=True)
class PageVerdict:
    failed: str | None  # "page:too_few_sentences" | language_failure(options) | "page:bad_words" | None
    n_sentences: int
    lang_score: float  # probability of the detector's top language; 0.0 when detection is off
    language: str = ""  # the detector's top language ("und": none); "" when detection is off or not reached
    # (line index, rule) of lines that passed the selected languages' end marks / word counting but not
    # those of the page's own language: the caller removes them
    own_language_failures: tuple[tuple[int, str], ...] = ()


def own_language_failures(
    lines: list[str], exempt: list[bool], language: str, options: C4Options
) -> tuple[tuple[int, str], ...]:
    """Lines judged by the conventions of every selected language (the line rules run before detection)
    that fail those of the page's own language: a Chinese page in an "en,zh" job keeps no line ending in
    "." only, an English page no line ending in "。"."""
    marks = SCRIPT_END_MARKS.get(language, "")
    spaceless = language in SPACELESS_LANGUAGES
    if marks == options.script_end_marks and spaceless == options.spaceless_words:
        return ()  # the same conventions (always so for a single selected language)
    failures = []
    for i, line in enumerate(lines):
        if exempt[i]:
            continue
        if lacks_end_mark(line, marks):
            failures.append((i, "line:no_end_mark"))
        elif has_too_few_words(line, options.min_words_per_line, spaceless):
            failures.append((i, "line:too_few_words"))
    return tuple(failures)


def judge_page(lines: list[str], exempt: list[bool], options: C4Options) -> PageVerdict:
    """Page rules in order over the kept lines (`exempt`: structure, e.g. headings): >= min_sentences over
    the non-exempt lines; then over the page text (all lines joined by "\n"): a selected language, the line
    shape rules of that language where the selected languages differ (see own_language_failures; sentences
    are counted again without the lines that fail them), no entry of that language's bad-word list (C4's
    English list when detection is off; no check for a language LDNOOBW has no list for)."""
    n_sentences = count_sentences(
        (line for line, skip in zip(lines, exempt, strict=True) if not skip), options.script_end_marks
    )
    if n_sentences < options.min_sentences:
        return PageVerdict("page:too_few_sentences", n_sentences, 0.0)
    text = "\n".join(lines)
    if options.language is None:
        failed = "page:bad_words" if ldnoobw_english().find(text) else None
        return PageVerdict(failed, n_sentences, 0.0)
    lang, prob, required = identify_language(text, options)
    language = lang or UNDETERMINED
    selected = options.selected_languages
    if prob < required or (selected is not None and lang not in selected):
        return PageVerdict(language_failure(options), n_sentences, prob, language)
    failures = own_language_failures(lines, exempt, lang, options)
    if failures:
        gone = {i for i, _ in failures}
        kept = [
            (line, skip) for i, (line, skip) in enumerate(zip(lines, exempt, strict=True)) if i not in gone
        ]
        marks = SCRIPT_END_MARKS.get(lang, "")
        n_sentences = count_sentences((line for line, skip in kept if not skip), marks)
        if n_sentences < options.min_sentences:
            return PageVerdict("page:too_few_sentences", n_sentences, prob, language, failures)
        text = "\n".join(line for line, _ in kept)
    bad_words = ldnoobw(lang)
    if bad_words is not None and bad_words.find(text):
        return PageVerdict("page:bad_words", n_sentences, prob, language, failures)
    return PageVerdict(None, n_sentences, prob, language, failures)


def count_verdict(verdict: PageVerdict, stats, prefix: str = "") -> None:
    """The page rule that failed, and the page's language: "language:<code>:kept" for a kept page,
    "language:<code>:dropped" for one the language rule dropped (the per-language funnel)."""
    for _, rule in verdict.own_language_failures:
        stats.inc(prefix + rule)
    if verdict.failed is not None:
        stats.inc(prefix + verdict.failed)
    if verdict.language and verdict.failed is None:
        stats.inc(f"{prefix}language:{verdict.language}:kept")
    elif verdict.language and verdict.failed.startswith("page:not_"):
        stats.inc(f"{prefix}language:{verdict.language}:dropped")
