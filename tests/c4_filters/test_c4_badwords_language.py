"""Bad-word matching (LDNOOBW as C4 pinned it) and deterministic, thread-safe language detection."""

from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import pytest

from c4_filters import clean_html, clean_page
from c4_filters.badwords import LIST_FILES, BadWords, ldnoobw, ldnoobw_english
from c4_filters.language import top_language


def test_packaged_list_is_the_shared_c4_list_with_its_licence(shared_dir):
    data = resources.files("c4_filters").joinpath("data")
    assert data.joinpath("ldnoobw_en.txt").read_bytes() == (shared_dir / "data/ldnoobw/en.txt").read_bytes()
    assert data.joinpath("LICENSE.ldnoobw").read_bytes() == (shared_dir / "data/ldnoobw/LICENSE").read_bytes()
    assert len(ldnoobw_english().entries) == 377


@pytest.mark.parametrize(
    "text",
    [
        "ass",
        "What an ass.",
        "ASS!",
        "(ass)",
        "the ass, again",
        "2 girls 1 cup",
        "Two words: 2 GIRLS 1 CUP.",
    ],
)
def test_bad_word_matches_on_word_boundaries_any_case(text):
    assert ldnoobw_english().find(text) is not None


@pytest.mark.parametrize(
    "text", ["assassin", "grass", "class", "bass guitar", "2 girls 1 cupcake", "2 girls", "2 girls\n1 cup"]
)
def test_bad_word_inside_another_word_does_not_match(text):
    assert ldnoobw_english().find(text) is None


def test_multi_word_entries_match_whole_phrases():
    words = BadWords(["hot pocket", "pocket"])
    assert words.find("a hot pocket") == "hot pocket"
    assert words.find("a hotpocket") is None
    assert words.find("the pocket knife") == "pocket"
    assert BadWords(["alabama hot pocket"]).find("alabama hot") is None


def test_entries_with_punctuation_and_emoji_match():
    words = ldnoobw_english()
    assert words.find("an s&m club") == "s&m"
    assert words.find("the g-spot myth") == "g-spot"
    assert words.find("rude 🖕 sign") == "🖕"
    assert words.find("miss&more") is None


def test_every_entry_needs_non_word_characters_around_it_as_tfds_matches():
    """TFDS's current regex is `(?:\\W|^)(entry)(?:\\W|$)` on the lower-cased page, whatever the entry's
    first and last characters; a multi-word entry matches with the spaces it is written with."""
    words = ldnoobw_english()
    assert words.find("rude🖕sign") is None
    assert words.find("🖕") == "🖕"
    assert words.find("2  girls 1 cup") is None


def test_every_language_ldnoobw_has_ships_with_its_licence():
    data = resources.files("c4_filters").joinpath("data")
    for code, files in LIST_FILES.items():
        for name in files:
            assert data.joinpath(f"ldnoobw_{name}.txt").read_text(encoding="utf-8").strip(), code
        assert ldnoobw(code).entries
    assert ldnoobw("xx") is None


def test_each_language_is_checked_with_its_own_list():
    assert ldnoobw("de").find("Du Arschficker!") == "arschficker"
    assert ldnoobw("en").find("Du Arschficker!") is None
    assert ldnoobw("fr").find("un mot du Québec: crisse de nono") is not None  # fr-CA-u-sd-caqc merged in
    assert ldnoobw("tl") is not None  # LDNOOBW's "fil" under the detectors' code


def test_chinese_and_thai_entries_match_inside_text_without_spaces():
    assert ldnoobw("zh").find("这是三级片的广告") == "三级片"
    assert BadWords(["三级片"]).find("这是三级片的广告") is None  # word boundaries elsewhere
    assert ldnoobw("th").find("คำว่ากระดอในประโยค") is not None


ENGLISH = "The river flows slowly through the old town in the early morning light."
SHORT = "ok fine then"  # short text: langdetect's guess depends on its random draws
TEXTS = [ENGLISH, SHORT, "Der Fluss fließt langsam durch die Altstadt.", "x", "12345", "gracias amigo bueno"]


def test_english_is_detected_with_high_probability():
    lang, prob = top_language(ENGLISH)
    assert lang == "en" and prob >= 0.99
    assert top_language("Der Fluss fließt langsam durch die alte Stadt am Morgen.")[0] == "de"


def test_text_without_letters_has_no_language():
    assert top_language("12345 !!! ...") == (None, 0.0)
    assert top_language("") == (None, 0.0)


def test_language_detection_is_deterministic():
    for text in TEXTS:
        answers = {top_language(text) for _ in range(5)}
        assert len(answers) == 1, text


def test_language_detection_gives_the_same_answers_from_threads():
    expected = [top_language(text) for text in TEXTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(top_language, TEXTS * 20))
    assert results == expected * 20


def test_cleaning_from_threads_gives_the_sequential_results(prose, prose_html):
    texts = ["\n".join(prose), "\n".join(prose[:2]) + "\nDer Fluss fließt langsam durch die Altstadt.", SHORT]
    htmls = [prose_html(), prose_html("<p>Der Fluss fließt langsam durch die alte Stadt am Morgen.</p>")]
    expected = [clean_page(t) for t in texts], [clean_html(h) for h in htmls]
    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(clean_page, texts * 10))
        results = list(pool.map(clean_html, htmls * 10))
    assert (pages, results) == (expected[0] * 10, expected[1] * 10)
