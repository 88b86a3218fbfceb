"""The bundled sample corpus is generated, never hand-edited: the generator gives the committed bytes, and
corpus_copy gives benchmarks further copies that dedup does not fold into the original or into each other."""

from pathlib import Path

import pytest

from pipeline.items import Page
from pipeline.make_sample_corpus import SYNDICATED, build_warc, build_wikipedia_dump, corpus_copy
from pipeline.readers import read_input

SAMPLE = Path(__file__).resolve().parents[2] / "pipeline" / "data" / "sample_corpus"


def pages(warc: bytes, dump: bytes, folder: Path) -> list[Page]:
    (folder / "news.warc.gz").write_bytes(warc)
    (folder / "enwiki.ndjson.tar.gz").write_bytes(dump)
    return [
        item
        for name in ("news.warc.gz", "enwiki.ndjson.tar.gz")
        for item in read_input(str(folder / name))
        if isinstance(item, Page)
    ]


@pytest.fixture(scope="module")
def first_copy() -> tuple[bytes, bytes]:
    return corpus_copy(1)


def test_regenerating_the_sample_corpus_gives_the_committed_bytes():
    assert build_warc() == (SAMPLE / "news.warc.gz").read_bytes()
    assert build_wikipedia_dump() == (SAMPLE / "enwiki-sample.ndjson.tar.gz").read_bytes()


def test_a_copy_is_the_same_bytes_every_time_and_differs_per_index(first_copy):
    assert corpus_copy(1) == first_copy
    second_warc, second_dump = corpus_copy(2)
    assert second_warc != first_copy[0]
    assert second_dump != first_copy[1]


def test_a_copy_shares_no_page_url_or_syndicated_sentence_with_the_bundled_corpus(first_copy, tmp_path):
    (tmp_path / "bundled").mkdir()
    (tmp_path / "copy").mkdir()
    bundled = pages(build_warc(), build_wikipedia_dump(), tmp_path / "bundled")
    copied = pages(*first_copy, tmp_path / "copy")
    assert len(copied) == len(bundled)
    assert not {p.url for p in copied} & {p.url for p in bundled}
    # the paragraph span dedup removes: on several pages of the bundle, reworded in the copy
    assert sum(SYNDICATED.encode() in p.body for p in bundled) >= 2
    assert not any(SYNDICATED.encode() in p.body for p in copied)
