"""Every value that crosses a shuffle has a stated type, and its key a coder that every runner accepts: UTF-8
strings, ints that fit signed 64 bits, or tuples of those. Beam 2.78 encodes an `int` key with VarIntCoder
(signed 64-bit), which refused half of the unsigned 64-bit span hashes the job used to shuffle on."""

import io

import apache_beam as beam
import pytest
from apache_beam.coders import registry
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.typehints import typehints
from hypothesis import given
from hypothesis import strategies as st

from c4_filters import C4Options, key_hash, span_hashes, stable_hash
from html_minimizer import Limits
from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline import beam_steps, doc_steps, images
from pipeline.graph import JobOptions, build_pipeline
from pipeline.items import Page

SIGNED_64 = range(-(2**63), 2**63)


@given(st.text())
def test_a_key_hash_is_the_stable_hash_read_as_a_signed_64_bit_int(text):
    assert key_hash(text) in SIGNED_64
    assert key_hash(text) % 2**64 == stable_hash(text)


def _key_types(element_type) -> list:
    """The key type of each KV type a GroupByKey receives (CoGroupByKey feeds it a Union of them)."""
    members = (
        element_type.union_types if isinstance(element_type, typehints.UnionConstraint) else [element_type]
    )
    keys = []
    for member in members:
        assert isinstance(member, typehints.TupleConstraint) and len(member.tuple_types) == 2, element_type
        keys.append(member.tuple_types[0])
    return keys


def _stated(key_type) -> bool:
    if isinstance(key_type, typehints.TupleConstraint):
        return all(_stated(t) for t in key_type.tuple_types)
    return key_type in (str, int, bool)


def _shuffle_inputs(job: JobOptions) -> dict:
    pipeline = beam.Pipeline()
    build_pipeline(pipeline, job, images.describe_vqgan(None, None, load=False), "test")
    found = {}

    class Shuffles(PipelineVisitor):
        def visit_transform(self, node):
            # Beam's own Reshuffle keys by a random int it makes; every other shuffle is ours
            if isinstance(node.transform, beam.GroupByKey) and "ReshufflePerKey" not in node.full_label:
                found[node.full_label] = node.inputs[0].element_type

    pipeline.visit(Shuffles())
    return found


@pytest.mark.parametrize("images_on", [True, False])
def test_every_shuffle_of_the_job_states_a_key_type_whose_coder_is_deterministic(images_on):
    job = JobOptions(inputs=("in.warc.gz",), output="never-written", files=("in.warc.gz",), images=images_on)
    shuffles = _shuffle_inputs(job)
    assert any("SpanDedup" in label for label in shuffles) and any("NearDup" in label for label in shuffles)
    assert any("EncodeImages" in label for label in shuffles) == images_on
    for label, element_type in shuffles.items():
        for key_type in _key_types(element_type):
            assert _stated(key_type), f"{label}: key type {key_type} is not stated"
            assert registry.get_coder(key_type).is_deterministic(), label


SENTENCES = [
    f"Paragraph {i} of the harbour report tells how the boats came home in the evening light."
    for i in range(12)
]


def _doc(url: str, sentences: list[str]) -> doc_steps.Doc:
    html = "<html><body><article>" + "".join(f"<p>{s}</p>" for s in sentences) + "</article></body></html>"
    page = Page(url=url, source="warc", body=html.encode())
    (doc,) = [
        d for d in doc_steps.minimize_and_clean(page, C4Options(), Limits()) if isinstance(d, doc_steps.Doc)
    ]
    return doc


def test_the_dedup_and_shard_steps_run_with_beam_type_checks_on_keys_past_2_to_the_63(tmp_path):
    """Three pages share a run of sentences; a fourth is a copy of the first under another URL. Their span
    hashes include unsigned values >= 2**63, which the old unsigned keys could not cross a shuffle with."""
    docs = [
        _doc("https://a.example/1", SENTENCES[:8]),
        _doc("https://b.example/2", SENTENCES[4:12]),
        _doc("https://c.example/3", SENTENCES[2:10]),
        _doc("https://d.example/4", SENTENCES[:8]),
        _doc("https://a.example/1", SENTENCES[:8]),
    ]
    unsigned = [h % 2**64 for doc in docs for _, h in span_hashes(doc.html)]
    assert any(h >= 2**63 for h in unsigned) and any(h < 2**63 for h in unsigned)

    def one_copy_of_each_span(docs):
        urls = sorted(doc.url for doc in docs)
        assert len([url for url in urls if url in ("https://a.example/1", "https://d.example/4")]) == 1, urls
        spans = [h for doc in docs for _, h in span_hashes(doc.html)]
        assert spans and len(spans) == len(set(spans))

    options = PipelineOptions(pipeline_type_check=True, runtime_type_check=True)
    with TestPipeline(options=options) as pipeline:
        unique, _ = pipeline | beam.Create(docs) | "Url" >> beam_steps.UrlDedup()
        distinct, _ = unique | "Near" >> beam_steps.NearDupDedup()
        deduped, _ = distinct | "Spans" >> beam_steps.SpanDedup(C4Options())
        entries, _ = deduped | beam_steps.WriteShards(str(tmp_path), 0.0, 1, {})
        assert_that(deduped, one_copy_of_each_span, label="Docs")
        assert_that(entries | beam.Map(lambda entry: entry["rows"] > 0), equal_to([True]), label="Rows")


def test_the_image_step_runs_with_beam_type_checks_on():
    """Images keyed by URL, encode groups keyed by int, codes routed back by document URL: checked at run
    time on a real photo and a broken record (no fetches)."""
    stream = io.BytesIO()
    skimage_rgb("coffee")[0].save(stream, "PNG")
    photo, broken = "https://img.example/coffee.png", "https://img.example/broken.jpg"
    html = f'<html><body><p>x</p><img src="{photo}"><img src="{broken}"></body></html>'
    docs = [doc_steps.Doc(f"https://news.example/{i}", "warc", html) for i in range(2)]
    records = [(photo, stream.getvalue()), (broken, b"\xff\xd8 not really a jpeg")]
    options = PipelineOptions(pipeline_type_check=True, runtime_type_check=True)
    with TestPipeline(options=options) as pipeline:
        per_doc, _ = (
            pipeline | "Docs" >> beam.Create(docs),
            pipeline | "Records" >> beam.Create(records),
        ) | beam_steps.EncodeImages(
            fetch=False,
            allow_private_hosts=False,
            handle=images.VQGANHandle(device="cpu"),
            batch_size=2,
            n_keys=3,
        )
        found = per_doc | beam.Map(
            lambda kv: (kv[0], kv[1][0], kv[1][1] is not None and len(kv[1][1].split()))
        )
        expected = [(d.url, photo, 256) for d in docs] + [(d.url, broken, False) for d in docs]
        assert_that(found, equal_to(expected))
