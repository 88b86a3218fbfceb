"""Each step of the data job as a Beam composite, run on Beam's TestPipeline: what it returns for small
inputs the tests build, and the counts it reports beside its results."""

import io

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to, is_not_empty

from c4_filters import C4Options
from html_minimizer import Limits
from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline import beam_steps, doc_steps, images
from pipeline.items import Count, Page
from pipeline.warc_writer import http_response, warc_record

SENTENCES = (
    "The harbour festival opened on Saturday with music on the quay. Fishing boats were decorated with flags "
    "and lanterns. Visitors queued for grilled sardines until late in the evening."
)


def article(url: str, extra: str = "", image: str | None = None) -> Page:
    img = f'<img alt="The quay at dusk with boats" src="{image}">' if image else ""
    html = (
        f"<html><head><title>Harbour news</title></head><body><article><h1>Festival</h1><p>{SENTENCES}</p>"
        f"<p>{extra}</p>{img}</article></body></html>"
    )
    return Page(url=url, source="warc", body=html.encode())


def summed(expected: dict):
    """An assert_that matcher: the Counts elements of a step add up to `expected` (for the names given)."""

    def check(actual):
        combine = beam_steps.SumCounts()
        total = combine.create_accumulator()
        for counts in actual:
            total = combine.add_input(total, counts)
        got = combine.extract_output(total)
        assert {name: got.get(name, 0) for name in expected} == expected, got

    return check


def test_stage_turns_an_exception_into_a_counted_skip():
    def explode(x):
        yield Count("seen")
        if x == 2:
            raise RuntimeError("hostile element")
        yield x

    with TestPipeline() as pipeline:
        results, counts = beam_steps.run_stage(pipeline | beam.Create([1, 2, 3]), "Explode", explode)
        assert_that(results, equal_to([1, 3]), label="Results")
        assert_that(counts, summed({"seen": 3, "error.explode": 1}), label="Counts")


def test_read_inputs_gives_pages_records_and_counts(tmp_path):
    page = article("https://news.example/a")
    warc = warc_record(page.url, http_response(page.body, "text/html; charset=utf-8"))
    warc += warc_record("https://img.example/p.png", http_response(b"\x89PNG fake", "image/png"))
    (tmp_path / "a.warc.gz").write_bytes(warc)
    with TestPipeline() as pipeline:
        pages, records, counts = pipeline | beam_steps.ReadInputs((str(tmp_path / "a.warc.gz"),), None)
        assert_that(pages | beam.Map(lambda p: (p.url, p.body)), equal_to([(page.url, page.body)]), "Pages")
        assert_that(records, equal_to([("https://img.example/p.png", b"\x89PNG fake")]), label="Records")
        assert_that(counts, summed({"read.files.warc": 1, "read.pages.warc": 1}), label="Counts")


def test_the_limit_keeps_the_first_pages_of_the_job_in_input_order(tmp_path):
    files = []
    for name in ("a", "b", "c"):  # 2 pages in a, 2 in b, 2 in c: --limit 3 keeps a's two and b's first
        warc = b"".join(
            warc_record(f"https://news.example/{name}{k}", http_response(b"<p>x</p>", "text/html"))
            for k in range(2)
        )
        (tmp_path / f"{name}.warc.gz").write_bytes(warc)
        files.append(str(tmp_path / f"{name}.warc.gz"))
    with TestPipeline() as pipeline:
        pages, _, counts = pipeline | beam_steps.ReadInputs(tuple(files), 3)
        urls = ["https://news.example/a0", "https://news.example/a1", "https://news.example/b0"]
        assert_that(pages | beam.Map(lambda p: p.url), equal_to(urls), label="Pages")
        assert_that(counts, summed({"read.pages.warc": 3, "read.pages_over_limit": 3}), label="Counts")


def test_minimize_and_clean_keeps_english_prose_and_counts_each_rule():
    pages = [article("https://news.example/a"), Page("https://news.example/b", "warc", b"\x00\x01" * 300)]
    with TestPipeline() as pipeline:
        docs, counts = pipeline | beam.Create(pages) | beam_steps.MinimizeAndClean(C4Options(), Limits())
        assert_that(docs | beam.Map(lambda d: d.url), equal_to(["https://news.example/a"]), label="Docs")
        assert_that(counts, summed({"minimize.ok": 1, "c4.kept": 1, "minimize.error.NotHTML": 1}), "Counts")


def test_url_dedup_keeps_one_document_per_url_chosen_by_content():
    docs = [
        doc_steps.Doc("https://a.example/", "html", "<p>b</p>"),
        doc_steps.Doc("https://a.example/", "warc", "<p>z</p>"),
    ]
    docs.append(doc_steps.Doc("https://b.example/", "warc", "<p>c</p>"))
    with TestPipeline() as pipeline:
        unique, counts = pipeline | beam.Create(docs) | beam_steps.UrlDedup()
        assert_that(unique, equal_to([docs[1], docs[2]]), label="Docs")
        assert_that(counts, summed({"dedup.url_duplicates_dropped": 1}), label="Counts")


def test_span_dedup_removes_repeated_three_sentence_spans_from_all_but_one_page():
    c4 = C4Options()
    extra = "A new pontoon will open next spring for visiting yachts. " * 1
    pages = [
        article(f"https://news.example/{i}", extra + f"Reporter number {i} wrote this closing line.")
        for i in range(3)
    ]
    cleaned = [
        item
        for page in pages
        for item in doc_steps.minimize_and_clean(page, c4, Limits())
        if isinstance(item, doc_steps.Doc)
    ]
    assert len(cleaned) == 3
    with TestPipeline() as pipeline:
        deduped, counts = pipeline | beam.Create(cleaned) | beam_steps.SpanDedup(c4)
        texts = deduped | beam.Map(lambda d: d.html.count("grilled sardines"))
        assert_that(texts | beam.CombineGlobally(sum), equal_to([1]), label="OneCopyLeft")
        assert_that(counts, summed({"dedup.span_docs_touched": 2}), label="Counts")


OWN = (
    "Harbour master Anna Berg retires after thirty years at the port. She arrived as a young pilot in the "
    "spring. Her farewell party will be held in the old customs house."
)
RUN = [sentence.rstrip(".") + "." for sentence in SENTENCES.split(". ")]


def run_page(url: str, body: str) -> doc_steps.Doc:
    page = Page(url=url, source="warc", body=f"<html><body><article>{body}</article></body></html>".encode())
    (doc,) = [
        item
        for item in doc_steps.minimize_and_clean(page, C4Options(), Limits())
        if isinstance(item, doc_steps.Doc)
    ]
    return doc


@pytest.mark.parametrize("reverse", [False, True])
def test_a_page_that_loses_a_duplicated_run_loses_all_three_sentences_and_the_winner_keeps_all(reverse):
    """T5 2.2: all but one of any three-sentence span occurring more than once are discarded. The losing
    copy of the run is spread over three blocks, two of which hold sentences of their own."""
    winner = run_page("https://a.example/", f"<p>{SENTENCES}</p><p>{OWN}</p>")
    loser_url = next(
        url
        for url in (f"https://b.example/{i}" for i in range(20))
        if beam_steps.stable_hash(url) > beam_steps.stable_hash(winner.url)
    )
    loser = run_page(
        loser_url,
        f"<p>Boats return on Monday morning after the festival. {RUN[0]}</p><p>{RUN[1]}</p>"
        f"<p>{RUN[2]} The quay stays closed to cars during the whole weekend.</p>"
        "<p>Local bakers sold out of bread before noon on Sunday.</p>",
    )

    def check(docs):
        by_url = {doc.url: doc for doc in docs}
        assert by_url[winner.url] == winner  # the winning occurrence keeps every sentence
        kept = by_url[loser_url].html
        assert not any(sentence in kept for sentence in RUN)
        assert "Boats return on Monday morning after the festival.</p><p>The quay stays closed" in kept

    with TestPipeline() as pipeline:
        docs = [loser, winner] if reverse else [winner, loser]
        deduped, counts = pipeline | beam.Create(docs) | beam_steps.SpanDedup(C4Options())
        assert_that(deduped, check, label="Docs")
        expected = {
            "dedup.span_docs_touched": 1,
            "dedup.span_sentences_dropped": 3,
            "dedup.span_blocks_dropped": 1,
        }
        assert_that(counts, summed(expected), label="Counts")


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    stream = io.BytesIO()
    skimage_rgb("coffee")[0].save(stream, "PNG")
    return stream.getvalue()


def test_encode_images_resolves_each_image_once_and_routes_codes_to_every_document(photo_png):
    photo, broken = "https://img.example/coffee.png", "https://img.example/broken.jpg"
    docs = [
        doc_steps.Doc(
            f"https://news.example/{i}",
            "warc",
            f'<html><body><p>x</p><img src="{photo}"><img src="{broken}"></body></html>',
        )
        for i in range(3)
    ]
    records = [
        (photo, photo_png),
        (broken, b"\xff\xd8 not really a jpeg"),
        ("https://img.example/unused.png", photo_png),
    ]
    handle = images.VQGANHandle(device="cpu")
    expected_codes = dict(
        images.encode_images([(photo, images.prepare_image(photo, photo_png)[0])], handle.model(), 1)
    )
    with TestPipeline() as pipeline:
        per_doc, counts = (
            pipeline | "Docs" >> beam.Create(docs),
            pipeline | "Records" >> beam.Create(records),
        ) | (
            beam_steps.EncodeImages(
                fetch=False, allow_private_hosts=False, handle=handle, batch_size=2, n_keys=3
            )
        )
        expected = [(d.url, (photo, expected_codes[photo])) for d in docs] + [
            (d.url, (broken, None)) for d in docs
        ]
        assert_that(per_doc, equal_to(expected), label="PerDoc")
        assert_that(
            counts,
            summed(
                {
                    "images.unique": 2,
                    "images.encoded": 1,
                    "images.failed.not_image": 1,
                    "images.records_unused": 1,
                }
            ),
            label="Counts",
        )


def test_rewrite_and_remove_images():
    doc = doc_steps.Doc(
        "https://news.example/a",
        "warc",
        '<html><body><p>x</p><img src="https://i.example/1.png"><img src="https://i.example/2.png"></body></html>',
    )
    codes = " ".join(["5"] * 256)
    per_doc = [(doc.url, ("https://i.example/1.png", codes)), (doc.url, ("https://i.example/2.png", None))]
    with TestPipeline() as pipeline:
        docs = pipeline | "Docs" >> beam.Create([doc])
        final, counts = (docs, pipeline | "Codes" >> beam.Create(per_doc)) | beam_steps.RewriteImages()
        assert_that(
            final | beam.Map(lambda d: doc_steps.image_srcs(d.html)), equal_to([[codes]]), label="Rewritten"
        )
        assert_that(counts, summed({"images.refs_kept": 1, "images.refs_removed": 1}), label="Counts")
        bare, bare_counts = docs | "NoImages" >> beam_steps.RemoveImages()
        assert_that(
            bare | "Srcs" >> beam.Map(lambda d: doc_steps.image_srcs(d.html)), equal_to([[]]), label="Removed"
        )
        assert_that(bare_counts, summed({"images.refs_removed": 2}), label="RemovedCounts")


def test_shard_count_follows_the_data_unless_fixed():
    mb = beam_steps.MB
    assert beam_steps.shard_counts({"train": 0}, 256, {}) == {"train": 1, "validation": 1}
    assert beam_steps.shard_counts({"train": 3 * mb + 1, "validation": mb}, 1, {}) == {
        "train": 4,
        "validation": 1,
    }
    assert beam_steps.shard_counts({"train": 10 * mb}, 1, {"train": 2, "validation": None}) == {
        "train": 2,
        "validation": 1,
    }


def test_write_shards_sizes_shards_by_target(tmp_path):
    docs = [
        doc_steps.Doc(f"https://d.example/{i}", "warc", "<p>" + "w" * 200_000 + f"{i}</p>") for i in range(12)
    ]
    with TestPipeline() as pipeline:
        entries, split_bytes = (
            pipeline | beam.Create(docs) | beam_steps.WriteShards(str(tmp_path), 0.0, 1, {})
        )
        assert_that(entries | beam.Map(lambda e: e["file"][-22:]), is_not_empty(), label="Entries")
        assert_that(
            split_bytes | beam.Map(lambda kv: (kv[0], kv[1] // beam_steps.MB)),
            equal_to([("train", 2)]),
            "Bytes",
        )
    files = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert files == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    rows = sum(pq.read_metadata(tmp_path / "data" / name).num_rows for name in files)
    assert rows == 12
