"""Languages beyond English (as mC4 went beyond C4): C4Options.language as a set of codes or "all", with the
English-specific rules (bad-word list, `. ? ! "` end marks, whitespace words) applied per language."""

import dataclasses
import json

import pytest

from c4_filters import C4Options, C4Stats, clean_html, clean_page

ENGLISH = [
    "The ferry leaves the harbour at noon every day.",
    "It takes about two hours to reach the island.",
    "Tickets can be bought at the small office by the pier.",
    "The island has a small village and an old lighthouse.",
]
GERMAN = [
    "Die Fähre verlässt den Hafen jeden Tag um zwölf Uhr.",
    "Die Überfahrt zur Insel dauert etwa zwei Stunden.",
    "Fahrkarten gibt es im kleinen Büro am Anleger.",
    "Auf der Insel gibt es ein kleines Dorf und einen alten Leuchtturm.",
]
CHINESE = [
    "渡船每天中午从港口出发。",
    "到达小岛大约需要两个小时。",
    "船票可以在码头旁边的小办公室购买。",
    "岛上有一个很小的村庄和一座古老的灯塔。",
]
HINDI = [
    "नाव हर दिन दोपहर को बंदरगाह से निकलती है।",
    "द्वीप तक पहुँचने में लगभग दो घंटे लगते हैं।",
    "टिकट घाट के पास छोटे कार्यालय में मिलते हैं।",
    "द्वीप पर एक छोटा गाँव और एक पुराना प्रकाशस्तंभ है।",
]


def page(sentences: list[str]) -> str:
    return "<html><body>" + "".join(f"<p>{s}</p>" for s in sentences) + "</body></html>"


def test_english_stays_the_default_with_c4s_rules_only():
    options = C4Options()
    assert options.language == "en" and options.selected_languages == {"en"}
    assert options.script_end_marks == "" and not options.spaceless_words
    stats = C4Stats()
    assert clean_html(page(GERMAN), stats=stats) is None
    assert stats["page:not_english"] == 1 and stats["language:de:dropped"] == 1
    assert clean_html(page(ENGLISH), stats=stats).language == "en"
    assert stats["language:en:kept"] == 1


def test_a_page_is_kept_when_its_language_is_selected_and_says_which():
    options = C4Options(language="en,de")
    assert options.language == ("de", "en")
    assert clean_html(page(GERMAN), options).language == "de"
    assert clean_html(page(ENGLISH), options).language == "en"
    french = [
        "Le bateau quitte le port chaque jour à midi.",
        "La traversée vers l'île dure environ deux heures.",
        "On achète les billets au petit bureau près du quai.",
    ]
    stats = C4Stats()
    assert clean_page("\n".join(french), options, stats) is None
    assert stats["page:not_selected_language"] == 1 and stats["language:fr:dropped"] == 1


def test_all_keeps_any_language_the_detector_is_sure_of():
    options = C4Options(language="all")
    assert clean_html(page(GERMAN), options).language == "de"
    assert clean_html(page(CHINESE), options).language == "zh"  # langdetect's zh-cn without its region
    stats = C4Stats()
    assert (
        clean_html(page(["Ok. Yes. No. Fine. Right."]), C4Options(language="all", min_sentences=1), stats)
        is None
    )
    assert stats["page:not_selected_language"] == 1  # below p >= 0.99


def test_script_end_marks_count_only_when_a_language_that_writes_them_is_selected():
    stats = C4Stats()
    assert clean_html(page(CHINESE), C4Options(language="de,en"), stats) is None
    assert stats["line:no_end_mark"] == 4
    kept = clean_html(page(HINDI), C4Options(language="hi"))
    assert kept.language == "hi" and kept.n_sentences == 4
    assert clean_html(page(CHINESE), C4Options(language="zh")).n_sentences == 4


def test_lines_are_finally_judged_by_the_conventions_of_the_pages_own_language():
    """The line rules run before detection and accept every selected language's end marks and words; once
    the page's language is known, lines that only another language allows go."""
    lines = [*ENGLISH, "The sign at the ferry pier shows 渡船出发。", "Please visit 渡船码头 soon."]
    stats = C4Stats()
    mixed = clean_html(page(lines), C4Options(language="en,zh"), stats)
    english_only = clean_html(page(lines), C4Options(language="en"))
    assert (mixed.html, mixed.text, mixed.n_sentences) == (english_only.html, english_only.text, 4)
    assert stats["line:no_end_mark"] == 1 and stats["line:too_few_words"] == 1 and stats["line:kept"] == 4
    assert clean_page("\n".join(lines), C4Options(language="all")) == "\n".join(ENGLISH)


def test_chinese_characters_count_as_words_when_chinese_is_selected():
    assert clean_html(page(CHINESE), C4Options(language="zh")) is not None
    stats = C4Stats()
    short = ["你好。", *CHINESE]  # two characters: fewer than C4's five words
    assert clean_html(page(short), C4Options(language="zh"), stats).text.count("\n") == 3
    assert stats["line:too_few_words"] == 1


def test_bad_words_are_those_of_the_detected_language():
    rude = [*GERMAN, "Der Kapitän nannte ihn einen Arschficker und ging."]
    stats = C4Stats()
    assert clean_html(page(rude), C4Options(language="de"), stats) is None
    assert stats["page:bad_words"] == 1 and stats["language:de:kept"] == 0
    # without detection the list is C4's English one, which does not have the word
    assert clean_html(page(rude), C4Options(language=None)) is not None


@pytest.mark.parametrize("value", ["xx", "en,xx", "en,all", ""])
def test_an_unknown_or_empty_language_is_a_one_line_error(value):
    with pytest.raises(ValueError) as error:
        C4Options(language=value)
    assert "\n" not in str(error.value)
    if "xx" in value:
        assert "'xx'" in str(error.value)


def test_codes_are_checked_against_the_chosen_detector():
    assert C4Options(language="yo", language_id="fasttext").language == "yo"  # lid.176 knows Yoruba
    with pytest.raises(ValueError, match="'yo'"):
        C4Options(language="yo")  # langdetect does not


def test_the_language_record_is_plain_json_and_stable():
    for value, stored in [
        ("de,en", ("de", "en")),
        (["en", "de", "en"], ("de", "en")),
        ("all", "all"),
        ("en", "en"),
    ]:
        options = C4Options(language=value)
        assert options.language == stored
        record = json.loads(json.dumps(dataclasses.asdict(options)))
        assert C4Options.from_dict(record) == options
