"""C4Options is the cleaning's whole configuration: a record of plain JSON values that rebuilds itself."""

import dataclasses
import json

import pytest

from c4_filters import C4Options, clean_html


def test_options_round_trip_through_json():
    options = C4Options(min_sentences=5, language=None, exempt_tags=["h2", "h1"])
    record = json.loads(json.dumps(dataclasses.asdict(options)))
    assert C4Options.from_dict(record) == options
    assert C4Options.from_dict({}) == C4Options()


def test_exempt_tags_are_stored_sorted_whatever_collection_they_came_in():
    assert C4Options(exempt_tags={"title", "h1"}).exempt_tags == ("h1", "title")
    assert C4Options(exempt_tags=frozenset({"h1", "title"})) == C4Options(exempt_tags=["title", "h1"])


def test_from_dict_names_the_closest_known_key_of_a_typo():
    with pytest.raises(ValueError, match=r"unknown C4Options key 'min_sentence'.*'min_sentences'") as error:
        C4Options.from_dict({"min_sentence": 2})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_words_per_line", -1),
        ("min_words_per_line", "5"),
        ("max_word_length", True),
        ("min_language_probability", 1.5),
        ("language", 7),
        ("exempt_tags", "h1"),
    ],
)
def test_a_wrong_value_is_a_one_line_error(key, value):
    with pytest.raises(ValueError, match=f"C4Options.{key} must be") as error:
        C4Options.from_dict({key: value})
    assert "\n" not in str(error.value)


def test_options_read_from_a_record_apply():
    lines = [f"Line number {n} of this page is a complete sentence." for n in range(4)]
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>"
    assert clean_html(html, C4Options.from_dict({"language": None})) is not None
    assert clean_html(html, C4Options.from_dict({"language": None, "min_sentences": 5})) is None
