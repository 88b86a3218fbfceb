"""Dedup winners, split and shard assignment: deterministic and independent of arrival order."""

from hypothesis import given
from hypothesis import strategies as st

from pipeline import doc_steps
from pipeline.items import Count

URLS = st.lists(st.sampled_from([f"https://d.example/{i}" for i in range(8)]), min_size=1, max_size=8)


@given(
    st.lists(
        st.tuples(st.sampled_from([f"https://d.example/{i}" for i in range(6)]), st.integers(0, 5)),
        min_size=1,
        max_size=12,
    ),
    st.randoms(),
)
def test_span_losers_keep_exactly_one_occurrence_whatever_the_order(occurrences, rnd):
    shuffled = list(occurrences)
    rnd.shuffle(shuffled)
    losers = set(doc_steps.span_losers(occurrences))
    assert losers == set(doc_steps.span_losers(shuffled))
    unique = set(occurrences)
    assert len(losers) == len(unique) - 1
    (survivor,) = unique - losers
    from c4_filters import stable_hash

    assert stable_hash(survivor[0]) == min(stable_hash(url) for url, _ in unique)


def test_url_winner_does_not_depend_on_order():
    docs = [
        doc_steps.Doc("https://d.example/a", "wikipedia", "<html>b</html>"),
        doc_steps.Doc("https://d.example/a", "warc", "<html>z</html>"),
        doc_steps.Doc("https://d.example/a", "warc", "<html>a</html>"),
    ]
    first = list(doc_steps.url_winner("https://d.example/a", docs))
    assert first == list(doc_steps.url_winner("https://d.example/a", list(reversed(docs))))
    assert first[-1].html == "<html>a</html>"
    assert Count("dedup.url_duplicates_dropped", 2) in first


@given(URLS)
def test_split_and_shard_are_functions_of_the_url(urls):
    for url in urls:
        assert doc_steps.assign_split(url, 0.5) == doc_steps.assign_split(url, 0.5)
        assert 0 <= doc_steps.shard_index(url, 7) < 7
        assert (
            doc_steps.assign_split(url, 0.0) == "train" and doc_steps.assign_split(url, 1.0) == "validation"
        )


def test_validation_fraction_is_respected_roughly():
    urls = [f"https://d.example/{i}" for i in range(4000)]
    share = sum(doc_steps.assign_split(u, 0.1) == "validation" for u in urls) / len(urls)
    assert 0.08 < share < 0.12


def test_image_srcs_and_doc_row():
    html = '<html><body><p>x</p><img alt="a" src="https://i.example/1.jpg"><img src="https://i.example/1.jpg"></body></html>'
    assert doc_steps.image_srcs(html) == ["https://i.example/1.jpg"]
    assert doc_steps.image_srcs("<html><body><p>none</p></body></html>") == []
    row = doc_steps.doc_row(doc_steps.Doc("https://d.example/x", "warc", html, 0.99))
    assert (
        row["n_images"] == 2
        and row["n_chars"] == len(html)
        and row["id"] == doc_steps.doc_id("https://d.example/x")
    )


def test_winners_are_streamed_from_one_pass_over_the_group():
    """A runner hands grouped values as a one-shot iterator; the winners need nothing else."""
    occurrences = [(f"https://d.example/{i}", i % 3) for i in range(1000)] * 2
    losers = set(doc_steps.span_losers(iter(occurrences)))
    assert len(losers) == 999
    docs = (doc_steps.Doc("https://d.example/a", "html", f"<p>{i}</p>") for i in range(500))
    out = list(doc_steps.url_winner("https://d.example/a", docs))
    assert out == [
        Count("dedup.url_duplicates_dropped", 499),
        doc_steps.Doc("https://d.example/a", "html", "<p>0</p>"),
    ]


def test_the_final_document_has_no_element_without_text_or_image():
    # the <a> and <figure> around an image that failed, and the <div> a dropped line left, go last
    html = (
        '<html><head><title>t</title></head><body><p>Kept text.</p><figure><a href="https://d.example/big">'
        '<img alt="" src="https://i.example/failed.jpg"></a></figure><div><p></p></div>'
        '<figure><img alt="ok" src="https://i.example/ok.jpg"></figure></body></html>'
    )
    doc = doc_steps.Doc("https://d.example/x", "warc", html, 0.9)
    out = list(doc_steps.rewrite_images(doc, {"https://i.example/ok.jpg": "1 2 3"}, True))
    final = next(o for o in out if isinstance(o, doc_steps.Doc))
    assert final.html == (
        '<html><head><title>t</title></head><body><p>Kept text.</p><figure><img alt="ok" src="1 2 3"></figure>'
        "</body></html>"
    )
    counts = {c.name: c.n for c in out if isinstance(c, Count)}
    assert counts["final.empty_elements_removed"] == 4
    assert counts["images.refs_removed"] == 1


def test_minimize_removals_are_counted_per_rule():
    from c4_filters import C4Options
    from html_minimizer import Limits
    from pipeline.items import Page

    para = "A paragraph of real article text that is long enough to count as the content of this page."
    body = f"<p>{para} {para} {para}</p><p>{para}</p><p>{para}</p><p><a href='/back'>Back to the overview</a></p>"
    page = Page(
        url="https://d.example/story", source="html", body=f"<html><body>{body}</body></html>".encode()
    )
    counts = {
        c.name: c.n for c in doc_steps.minimize_and_clean(page, C4Options(), Limits()) if isinstance(c, Count)
    }
    assert counts["minimize.removed.lone_link"] == 1
