"""Benchmark C4's language rule: fastText lid.176 beside langdetect, agreement and time per document.

Texts: exactly what the language rule reads in the pipeline, i.e. `html_minimizer.minimize` then
`c4_filters.clean_html` with detection off (`CleanResult.text`: the kept blocks joined by "\\n"); pages that an
earlier rule drops (too few sentences, bad words) or that do not minimise never reach the rule and are
counted, not measured. Two sets: the 106 labelled pages of ../shared/data/boilerplate-dev (several
languages) and the sample corpus (pipeline/data/sample_corpus: WARC + Wikipedia dump, read with
`pipeline.readers.read_input`).

English decisions come from `c4_filters.rules.identify_language` with `C4Options(language_id=...)`'s
defaults: langdetect's is C4's rule (top language "en" with p >= 0.99), fastText's is "en" with
p >= fasttext_min_probability, the cascade's is fastText's where its top p >= cascade_min_probability and
langdetect's elsewhere. Also printed: fastText's agreement at other thresholds, the cascade at other cuts
(with the pages it spares langdetect), and the margins (lowest fastText "en" probability on pages langdetect
calls English, highest on the others). Times: the three language_id values on the same texts, one after
the other in rotating order, --repeats rounds; the figures are medians over rounds. Last line: one JSON object.

    .venv/bin/python bench/language_id.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would shadow the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

from c4_filters import C4Options, clean_html  # noqa: E402
from c4_filters.language import fasttext_top_language, top_language  # noqa: E402
from c4_filters.rules import LANGUAGE_IDS, identify_language  # noqa: E402
from html_minimizer import MinimizeError, minimize  # noqa: E402
from pipeline.items import Page  # noqa: E402
from pipeline.readers import read_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOILERPLATE_DEV = ROOT.parent / "shared" / "data" / "boilerplate-dev"
SAMPLE_CORPUS = ROOT / "pipeline" / "data" / "sample_corpus"
OPTIONS = {language_id: C4Options(language_id=language_id) for language_id in LANGUAGE_IDS}
SWEEP = (0.3, 0.5, 0.65, 0.8, 0.9, 0.95, 0.99)
CASCADE_CUTS = (0.5, 0.8, 0.9, 0.95, 0.99)
NO_LANGUAGE = C4Options(language=None)


def rule_text(raw: bytes, url: str | None, charset: str | None = None) -> str | None:
    """The text C4's language rule reads for this page in the pipeline, or None when it never gets there."""
    try:
        minimal = minimize(raw, url, charset=charset)
    except MinimizeError:
        return None
    cleaned = clean_html(minimal.html, NO_LANGUAGE)
    return None if cleaned is None else cleaned.text


def boilerplate_dev_pages(folder: Path) -> list[tuple[str, bytes, str | None]]:
    labelled = json.loads((folder / "evaldata.json").read_text())
    return [
        (url, (folder / "pages" / entry["file"]).read_bytes(), None)
        for url, entry in sorted(labelled.items())
    ]


def sample_corpus_pages(folder: Path) -> list[tuple[str, bytes, str | None]]:
    pages = []
    for path in sorted(folder.glob("*.warc.gz")) + sorted(folder.glob("*.tar.gz")):
        pages += [(i.url, i.body, i.charset) for i in read_input(str(path)) if isinstance(i, Page)]
    return pages


def decides_english(text: str, options: C4Options) -> bool:
    lang, prob, required = identify_language(text, options)
    return lang == "en" and prob >= required


def is_english(guess: tuple[str | None, float], threshold: float) -> bool:
    return guess[0] == "en" and guess[1] >= threshold


def report_agreement(name: str, n_pages: int, texts: dict[str, str]) -> dict:
    n = len(texts)
    print(f"\n{name}: {n_pages} pages, {n} reach the language rule")
    decisions = {
        language_id: {url: decides_english(text, options) for url, text in texts.items()}
        for language_id, options in OPTIONS.items()
    }
    c4 = decisions["langdetect"]
    fasttext_guess = {url: fasttext_top_language(text) for url, text in texts.items()}
    langdetect_guess = {url: top_language(text) for url, text in texts.items()}
    print(f"  English by langdetect (C4's rule): {sum(c4.values())}/{n}")
    agree = {}
    for language_id in ("fasttext", "cascade"):
        agree[language_id] = sum(decisions[language_id][url] == c4[url] for url in texts)
        different = [url for url in texts if decisions[language_id][url] != c4[url]]
        print(
            f"  {language_id:<9} (defaults) agrees on {agree[language_id]}/{n} ({100 * agree[language_id] / max(n, 1):.1f} %)"
        )
        for url in different:
            (ld_lang, ld_p), (ft_lang, ft_p) = langdetect_guess[url], fasttext_guess[url]
            print(f"    langdetect {ld_lang} {ld_p:.3f} | fastText {ft_lang} {ft_p:.3f} | {url}")
    sweep = {}
    for cut in SWEEP:
        sweep[cut] = sum(is_english(fasttext_guess[url], cut) == c4[url] for url in texts)
        print(f"  fastText alone, en p >= {cut:<5} agrees on {sweep[cut]}/{n}")
    cascade = {}
    for cut in CASCADE_CUTS:
        clear = [url for url in texts if fasttext_guess[url][1] >= cut]
        same = sum(is_english(fasttext_guess[url], cut) == c4[url] for url in clear) == len(clear)
        cascade[cut] = {"identical": same, "spared": len(clear)}
        print(
            f"  cascade at p >= {cut:<5} spares langdetect on {len(clear)}/{n}, decisions {'identical' if same else 'DIFFERENT'}"
        )
    en_probs = {url: p if lang == "en" else 0.0 for url, (lang, p) in fasttext_guess.items()}
    lowest_english = min((en_probs[url] for url in texts if c4[url]), default=None)
    highest_other = max((en_probs[url] for url in texts if not c4[url]), default=None)
    print(
        f"  fastText en probability: lowest on langdetect-English pages {lowest_english}, highest on others {highest_other}"
    )
    return {
        "pages": n_pages,
        "reach_rule": n,
        "english_langdetect": sum(c4.values()),
        "agree": agree,
        "fasttext_agree_by_threshold": {str(k): v for k, v in sweep.items()},
        "cascade_by_cut": {str(k): v for k, v in cascade.items()},
        "fasttext_en_margin": [lowest_english, highest_other],
    }


def time_per_document(texts: list[str], repeats: int) -> dict[str, float]:
    """Median over rounds of seconds per document; the order of the detectors rotates from round to round."""
    runs: dict[str, list[float]] = {language_id: [] for language_id in OPTIONS}
    for round_ in range(repeats):
        order = list(OPTIONS)[round_ % len(OPTIONS) :] + list(OPTIONS)[: round_ % len(OPTIONS)]
        for language_id in order:
            options = OPTIONS[language_id]
            start = time.perf_counter()
            for text in texts:
                identify_language(text, options)
            runs[language_id].append((time.perf_counter() - start) / len(texts))
    return {language_id: statistics.median(seconds) for language_id, seconds in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    top_language("warm up the language profiles")
    fasttext_top_language("warm up the model")
    sets = {
        "boilerplate-dev": boilerplate_dev_pages(BOILERPLATE_DEV),
        "sample corpus": sample_corpus_pages(SAMPLE_CORPUS),
    }
    defaults = OPTIONS["cascade"]
    result: dict[str, object] = {
        "thresholds": {
            "langdetect": defaults.min_language_probability,
            "fasttext": defaults.fasttext_min_probability,
            "cascade": defaults.cascade_min_probability,
        }
    }
    all_texts: list[str] = []
    for name, pages in sets.items():
        texts = {
            url: text for url, raw, charset in pages if (text := rule_text(raw, url, charset)) is not None
        }
        result[name] = report_agreement(name, len(pages), texts)
        all_texts += texts.values()

    seconds = time_per_document(all_texts, args.repeats)
    print(
        f"\ntime per document over both sets ({len(all_texts)} texts, "
        f"{sum(map(len, all_texts)) / len(all_texts) / 1000:.1f} kB each on average), median of {args.repeats} "
        "rotating rounds, one core:"
    )
    for language_id, s in seconds.items():
        print(f"  {language_id:<11} {1000 * s:8.3f} ms  {seconds['langdetect'] / s:5.1f}x langdetect's speed")
    result["ms_per_doc"] = {language_id: round(1000 * s, 4) for language_id, s in seconds.items()}
    result["speedup"] = {
        language_id: round(seconds["langdetect"] / s, 1) for language_id, s in seconds.items()
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
