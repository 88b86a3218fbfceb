"""span_hashes / drop_spans / stable_hash: T5 2.2's "discarded all but one of any three-sentence span occurring
more than once", the contract the pipeline's dedup shuffle is built on."""

import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from c4_filters import C4Stats, clean_html, drop_spans, span_hashes, stable_hash
from c4_filters.blocks import cut_normalised, normalise

SHARED_PARAGRAPH = (
    "The ferry leaves the harbour at noon every day. It takes about two hours to reach the island. "
    "Tickets can be bought at the small office by the pier."
)


def page(body: str) -> str:
    return f"<html><head><title>Island trips</title></head><body>{body}</body></html>"


def test_stable_hash_is_64_bit_and_the_same_in_another_process():
    values = [stable_hash(s) for s in ["", "a", "https://example.org/x", "ünïcode"]]
    assert all(0 <= v < 2**64 for v in values) and len(set(values)) == 4
    code = "from c4_filters import stable_hash; print(stable_hash('https://example.org/x'))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout) == values[2]


OWN = "Our guide knows every path on the hills. She grew up in the village. Walks start at nine."


def test_every_three_sentence_span_is_hashed_with_its_first_sentence_number():
    html = clean_html(
        page(f"<h1>Trips</h1><p>{SHARED_PARAGRAPH}</p><p>Boats are small. Seas can be rough.</p>")
    ).html
    spans = span_hashes(html)
    # five sentences outside the exempt title and heading: spans start at sentences 0, 1 and 2
    assert [start for start, _ in spans] == [0, 1, 2]
    assert len({h for _, h in spans}) == 3


def test_span_hashes_ignore_case_whitespace_and_markup():
    a = clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html
    b = clean_html(page(f"<div><p>{SHARED_PARAGRAPH.upper().replace(' ', '  ')}</p></div>")).html
    assert [h for _, h in span_hashes(a)] == [h for _, h in span_hashes(b)]


def test_span_hashes_are_stable_across_calls_and_processes():
    html = clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html
    code = f"from c4_filters import span_hashes; print(span_hashes({html!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(span_hashes(html))


def losing_starts(html: str, duplicate_of: str) -> set[int]:
    duplicate = {h for _, h in span_hashes(duplicate_of)}
    return {start for start, h in span_hashes(html) if h in duplicate}


def test_a_page_that_loses_a_duplicated_run_loses_all_three_sentences():
    # the duplicated run is spread over three blocks (and shares none with the page's own sentences)
    run = [
        "The ferry leaves the harbour at noon every day.",
        "It takes about two hours to reach the island.",
        "Tickets can be bought at the small office by the pier.",
    ]
    loser = clean_html(page(f"<p>{OWN} {run[0]}</p><p>{run[1]}</p><p>{run[2]} Dogs travel free.</p>")).html
    winner = clean_html(page(f"<p>{' '.join(run)}</p>")).html
    starts = losing_starts(loser, winner)
    assert len(starts) == 1
    stats = C4Stats()
    result = drop_spans(loser, starts, stats=stats)
    assert not any(sentence.split()[1] in result.text for sentence in run)
    assert (
        "Our guide" in result.text
        and "Walks start at nine." in result.text
        and "Dogs travel free." in result.text
    )
    assert not {h for _, h in span_hashes(winner)} & {h for _, h in span_hashes(result.html)}
    assert stats["dedup:sentence:duplicate"] == 3
    assert stats["dedup:line:duplicate"] == 1  # the middle block had nothing else
    assert stats["dedup:line:shortened"] == 2
    assert stats["dedup:page:kept"] == 1


def test_overlapping_duplicated_spans_lose_the_union_of_their_sentences():
    run = SHARED_PARAGRAPH + " Children under five travel free."  # four sentences: two spans
    loser = clean_html(page(f"<p>{OWN}</p><p>{run}</p>")).html
    starts = losing_starts(loser, clean_html(page(f"<p>{run}</p>")).html)
    assert len(starts) == 2
    stats = C4Stats()
    result = drop_spans(loser, starts, stats=stats)
    assert result.text == "Island trips\n" + OWN
    assert stats["dedup:sentence:duplicate"] == 4 and stats["dedup:line:duplicate"] == 1


def test_drop_spans_with_nothing_to_drop_keeps_the_cleaned_page():
    result = clean_html(page(f"<h1>Trips</h1><p>{SHARED_PARAGRAPH}</p>"))
    assert drop_spans(result.html, []) == result


def test_drop_spans_drops_the_page_when_too_few_sentences_remain():
    html = clean_html(page(f"<p>{OWN}</p><p>{SHARED_PARAGRAPH}</p>")).html
    stats = C4Stats()
    assert drop_spans(html, [2, 3], stats=stats) is None  # sentences 2-5 of 6 go
    assert stats["dedup:page:too_few_sentences"] == 1


def test_drop_spans_counts_starts_that_name_no_span():
    html = clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html
    stats = C4Stats()
    assert drop_spans(html, [1, 99, -1], stats=stats).html == html
    assert stats["dedup:unknown_span"] == 3


def test_drop_spans_keeps_images_of_emptied_blocks_and_cuts_inside_inline_markup():
    image = '<img alt="The ferry" src="https://example.org/f.jpg">'
    html = clean_html(page(f"<p>{OWN}</p><p>{SHARED_PARAGRAPH} {image}</p>")).html
    result = drop_spans(html, [span_hashes(html)[-1][0]])
    assert image in result.html and "harbour" not in result.html
    marked = clean_html(
        page(f"<p>{OWN} <b>The ferry leaves at noon.</b> It is <i>slow</i>. Fares are low.</p>")
    ).html
    result = drop_spans(marked, [3])  # sentences 3-5: the bold one and the two after it
    assert result.html.endswith(
        "<p>Our guide knows every path on the hills. She grew up in the village. Walks start at nine.</p></body></html>"
    )


@given(
    st.lists(st.text(alphabet="ab .\n\t", max_size=12), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=3),
)
def test_cutting_normalised_text_removes_exactly_those_characters_from_the_text_nodes(parts, spans):
    """What drop_spans relies on: a range of the normalised block text maps back onto the raw text nodes."""
    text = normalise("".join(parts))
    doomed = {i for start, end in spans for i in range(start, min(end, len(text)))}
    expected = normalise("".join(c if i not in doomed else "" for i, c in enumerate(text)))
    cut = cut_normalised(parts, spans)
    assert len(cut) == len(parts)
    assert normalise("".join(cut)) == expected
