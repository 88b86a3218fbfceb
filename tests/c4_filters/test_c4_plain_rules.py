"""clean_page: each C4 rule on plain text (T5 section 2.2), in the order c4_filters/rules.py lists them."""

import pytest

from c4_filters import C4Options, C4Stats, clean_page


def cleaned_lines(prose, *extra: str, stats: C4Stats | None = None) -> list[str] | None:
    result = clean_page("\n".join([*prose, *extra]), stats=stats)
    return None if result is None else result.split("\n")


def test_a_page_of_good_prose_is_kept_unchanged(prose):
    assert clean_page("\n".join(prose)) == "\n".join(prose)


def test_lines_are_stripped_and_blank_lines_dropped(prose):
    assert cleaned_lines(prose, "", "   ") == list(prose)
    assert clean_page("\n".join("  " + line + "\t" for line in prose)) == "\n".join(prose)


def test_line_with_a_word_over_1000_chars_is_dropped(prose):
    stats = C4Stats()
    long_line = "This line has one enormous word " + "x" * 1001 + " in it."
    assert cleaned_lines(prose, long_line, stats=stats) == list(prose)
    assert stats["line:too_long_word"] == 1
    ok_line = "This line has one big word " + "x" * 1000 + " in it."
    no_language = C4Options(language=None)  # a 1000-letter "word" is no English langdetect would vouch for
    assert ok_line in clean_page("\n".join([*prose, ok_line]), options=no_language).split("\n")


@pytest.mark.parametrize("marker", ["[1]", "[23]", "[]", "[edit]", "[citation needed]"])
def test_citation_markers_are_removed(prose, marker):
    stats = C4Stats()
    line = f"The bridge was built in the year 1850.{marker} It still stands today."
    assert "The bridge was built in the year 1850. It still stands today." in cleaned_lines(
        prose, line, stats=stats
    )
    assert stats["citation:removed"] == 1


def test_line_without_terminal_punctuation_is_dropped(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "Home about contact our shop and more", stats=stats) == list(prose)
    assert stats["line:no_end_mark"] == 1


@pytest.mark.parametrize("end", [".", "?", "!", '"'])
def test_line_ending_in_any_end_mark_is_kept(prose, end):
    line = "Would you like to see the river today" + end
    assert line in cleaned_lines(prose, line)


def test_line_ending_in_ellipsis_is_dropped(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "And then the story goes on and on...", stats=stats) == list(prose)
    assert stats["line:ends_with_ellipsis"] == 1


def test_line_with_fewer_than_five_words_is_dropped(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "Only four words here.", stats=stats) == list(prose)
    assert stats["line:too_few_words"] == 1
    assert "Exactly five words are here." in cleaned_lines(prose, "Exactly five words are here.")


def test_lorem_ipsum_drops_the_page(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "Lorem ipsum dolor sit amet, consectetur adipiscing.", stats=stats) is None
    assert stats["page:lorem_ipsum"] == 1
    assert stats["page:kept"] == 0


def test_javascript_drops_the_line(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "Please enable JavaScript in your browser to continue.", stats=stats) == list(
        prose
    )
    assert stats["line:javascript"] == 1


def test_curly_bracket_drops_the_page(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "The code reads { return the value; } as written.", stats=stats) is None
    assert stats["page:curly_bracket"] == 1


@pytest.mark.parametrize(
    "phrase",
    ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"],
)
def test_policy_phrases_drop_the_line(prose, phrase):
    stats = C4Stats()
    line = f"Please read the {phrase.upper()} before you go any further."
    assert cleaned_lines(prose, line, stats=stats) == list(prose)
    assert stats["line:policy"] == 1


def test_fewer_than_three_sentences_drops_the_page(prose):
    stats = C4Stats()
    assert clean_page("\n".join(prose[:2]), stats=stats) is None
    assert stats["page:too_few_sentences"] == 1


def test_sentences_are_counted_not_lines(prose):
    one_line = " ".join(prose)
    assert clean_page(one_line) == one_line


def test_bad_word_drops_the_page(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "The old town also has a famous nude beach nearby.", stats=stats) is None
    assert stats["page:bad_words"] == 1


def test_page_not_in_english_is_dropped():
    stats = C4Stats()
    french = [
        "La rivière traverse lentement la vieille ville au petit matin.",
        "Beaucoup de visiteurs viennent ici chaque été pour se promener.",
        "Des familles vivent dans ces maisons de pierre depuis des générations.",
    ]
    assert clean_page("\n".join(french), stats=stats) is None
    assert stats["page:not_english"] == 1
    assert clean_page("\n".join(french), options=C4Options(language="fr")) == "\n".join(french)
    assert clean_page("\n".join(french), options=C4Options(language=None)) == "\n".join(french)


def test_stats_make_a_funnel(prose):
    stats = C4Stats()
    clean_page("\n".join([*prose, "Menu", "Read our privacy policy now, please."]), stats=stats)
    clean_page("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", stats=stats)
    counts = stats.as_dict()
    assert counts["page:read"] == 2 and counts["page:kept"] == 1 and counts["page:lorem_ipsum"] == 1
    assert counts["line:read"] == 6 and counts["line:kept"] == 3
    assert counts["line:no_end_mark"] == 1 and counts["line:policy"] == 1
    merged = C4Stats().add(stats).add(stats)
    assert merged["page:read"] == 4


# Rule order: the first rule that applies decides, as in C4.


def test_too_long_word_is_checked_before_lorem_ipsum(prose):
    line = "Lorem ipsum dolor sit amet " + "y" * 1001 + "."
    assert cleaned_lines(prose, line) == list(prose)


def test_citations_are_removed_before_the_end_mark_check(prose):
    assert "The bridge still stands in the town." in cleaned_lines(
        prose, "The bridge still stands in the town.[2]"
    )


def test_end_mark_is_checked_before_lorem_ipsum(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "lorem ipsum dolor sit amet consectetur", stats=stats) == list(prose)
    assert stats["line:no_end_mark"] == 1 and stats["page:lorem_ipsum"] == 0


def test_word_count_is_checked_before_curly_bracket(prose):
    assert cleaned_lines(prose, "x = {1}.") == list(prose)


def test_javascript_is_checked_before_curly_bracket(prose):
    stats = C4Stats()
    assert cleaned_lines(prose, "var javascript = { enabled: true, on: yes }.", stats=stats) == list(prose)
    assert stats["line:javascript"] == 1 and stats["page:curly_bracket"] == 0


def test_curly_bracket_is_checked_before_policy(prose):
    assert cleaned_lines(prose, "See our privacy policy { for more details }.") is None


def test_sentence_count_is_checked_before_bad_words(prose):
    stats = C4Stats()
    assert clean_page("That beach is a nude beach, people say.", stats=stats) is None
    assert stats["page:too_few_sentences"] == 1 and stats["page:bad_words"] == 0
