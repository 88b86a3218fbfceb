"""The offline sentence splitter used for the >= 3 sentences rule and for dedup spans."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("text", "marks", "expected"),
    [
        (
            "渡船中午出发。到达需要两个小时！票在哪里？",
            "。！？",
            ["渡船中午出发。", "到达需要两个小时！", "票在哪里？"],
        ),
        ("他说：「走吧。」然后走了。", "。！？", ["他说：「走吧。」", "然后走了。"]),
        ("नाव निकलती है। द्वीप दूर है।", "।॥", ["नाव निकलती है।", "द्वीप दूर है।"]),
        ("Mixed text. Then 中文。And more.", "。", ["Mixed text.", "Then 中文。", "And more."]),
        (
            "渡船中午出发。到达需要两个小时。",
            "",
            ["渡船中午出发。到达需要两个小时。"],
        ),  # C4's English splitter
    ],
)
def test_script_marks_end_sentences_wherever_they_stand(text, marks, expected):
    assert split_sentences(text, marks) == expected


@given(st.text(alphabet="ab A.?!。」 \n", max_size=40))
def test_sentences_are_the_texts_pieces_in_order(text):
    """drop_spans finds each sentence in its block after the previous one."""
    position = 0
    for sentence in split_sentences(text, "。"):
        assert sentence and sentence == sentence.strip()
        position = text.index(sentence, position) + len(sentence)
    assert not text[position:].strip()
