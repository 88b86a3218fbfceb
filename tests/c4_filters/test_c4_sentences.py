"""The offline sentence splitter used for the >= 3 sentences rule and for dedup spans."""

import pytest

from c4_filters.sentences import split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One here. Two here? Three here!", ["One here.", "Two here?", "Three here!"]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("It costs 3.50 dollars. That is cheap.", ["It costs 3.50 dollars.", "That is cheap."]),
        (
            "Dr. Smith met Mr. Jones in the U.S. on Monday.",
            ["Dr. Smith met Mr. Jones in the U.S. on Monday."],
        ),
        ("J. R. R. Tolkien wrote it. Many read it.", ["J. R. R. Tolkien wrote it.", "Many read it."]),
        ("Wait... what now. And then", ["Wait... what now.", "And then"]),
        ("no capital. after it", ["no capital. after it"]),
        ("The year was 1850. 1851 came next.", ["The year was 1850.", "1851 came next."]),
        ("", []),
        ("   ", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected
