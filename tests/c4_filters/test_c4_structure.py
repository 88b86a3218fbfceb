"""clean_html keeps what the minimal HTML's structure means: <pre> whitespace, and prose hard-wrapped with <br>
judged as whole sentences (issue 13)."""

from c4_filters import clean_html


def test_pre_keeps_its_line_breaks_through_c4(prose_html):
    code = "The loop below counts to three.\n  for i in range(3):\n      print(i)\n\nIt prints each number."
    html = prose_html(f"<pre>{code}</pre>")
    result = clean_html(html)
    assert f"<pre>{code}</pre>" in result.html


def test_prose_hard_wrapped_with_br_is_judged_as_whole_sentences(prose_html):
    wrapped = (
        "The old mill by the river was built<br>in the year of the great flood and<br>still grinds flour "
        "every summer.<br>Visitors can watch the wheel turn<br>from the wooden bridge nearby."
    )
    result = clean_html(prose_html(f"<p>{wrapped}</p>"))
    assert f"<p>{wrapped}</p>" in result.html  # every fragment stays, and so do the line breaks
    lines = result.text.split("\n")
    assert (
        "The old mill by the river was built in the year of the great flood and still grinds flour every summer."
        in lines
    )
    assert "Visitors can watch the wheel turn from the wooden bridge nearby." in lines


def test_br_after_a_sentence_or_a_colon_still_breaks_the_line(prose_html):
    html = prose_html(
        "<p>Opening hours of the mill museum:<br>Monday to Friday<br><br>Closed on Sundays.</p>"
    )
    result = clean_html(html)
    # "Opening hours ...:" and "Monday to Friday" are separate lines without an end mark: both go
    assert "Opening hours" not in result.html and "Monday to Friday" not in result.html
