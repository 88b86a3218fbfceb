"""span_hashes / drop_blocks / stable_hash: the contract the pipeline's dedup shuffle is built on."""

import os
import subprocess
import sys

from c4_filters import C4Stats, clean_html, drop_blocks, span_hashes, stable_hash

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


def test_every_three_sentence_span_is_hashed_with_its_starting_block():
    html = clean_html(
        page(f"<h1>Trips</h1><p>{SHARED_PARAGRAPH}</p><p>Boats are small. Seas can be rough.</p>")
    ).html
    spans = span_hashes(html)
    # blocks: 0 title, 1 heading, 2 shared paragraph (3 sentences), 3 second paragraph (2 sentences)
    assert [block for block, _ in spans] == [2, 2, 2]
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


def test_drop_blocks_removes_the_blocks_span_hashes_named():
    own = "Our guide knows every path on the hills. She grew up in the village. Walks start at nine."
    html = clean_html(page(f"<p>{own}</p><p>{SHARED_PARAGRAPH}</p>")).html
    duplicate = {h for _, h in span_hashes(clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html)}
    losers = {block for block, h in span_hashes(html) if h in duplicate}
    stats = C4Stats()
    result = drop_blocks(html, losers, stats=stats)
    assert "ferry" not in result.html and "Our guide" in result.html
    assert not duplicate & {h for _, h in span_hashes(result.html)}
    assert stats["dedup:line:duplicate"] == 1 and stats["dedup:page:kept"] == 1


def test_drop_blocks_with_nothing_to_drop_keeps_the_cleaned_page():
    result = clean_html(page(f"<h1>Trips</h1><p>{SHARED_PARAGRAPH}</p>"))
    assert drop_blocks(result.html, []) == result


def test_drop_blocks_drops_the_page_when_too_few_sentences_remain():
    html = clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html
    stats = C4Stats()
    assert drop_blocks(html, [block for block, _ in span_hashes(html)], stats=stats) is None
    assert stats["dedup:page:too_few_sentences"] == 1


def test_drop_blocks_counts_indices_that_name_no_block():
    html = clean_html(page(f"<p>{SHARED_PARAGRAPH}</p>")).html
    stats = C4Stats()
    assert drop_blocks(html, [99, -1], stats=stats).html == html
    assert stats["dedup:unknown_block"] == 2


def test_drop_blocks_keeps_images_of_dropped_blocks():
    image = '<img alt="The ferry" src="https://example.org/f.jpg">'
    own = "Our guide knows every path on the hills. She grew up in the village. Walks start at nine."
    html = clean_html(page(f"<p>{own}</p><p>{SHARED_PARAGRAPH} {image}</p>")).html
    block = span_hashes(html)[-1][0]
    result = drop_blocks(html, [block])
    assert image in result.html and "harbour" not in result.html
