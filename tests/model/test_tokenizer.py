"""CM3Tokenizer: layout, image ids from code strings, exact round trip (also under hypothesis)."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import CM3Tokenizer
from model.shards import iter_docs, read_docs_manifest, train_tokenizer


@pytest.fixture(scope="module")
def tok(tokenizer_dir) -> CM3Tokenizer:
    return CM3Tokenizer.load(tokenizer_dir)


N_EMBED = 64  # the fixture shards' VQGAN size (tests/model/conftest.py)


def _codes(seed: int, n: int = 256, n_embed: int = N_EMBED) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(n_embed) for _ in range(n)]


def test_layout_text_then_specials_then_image_codes(tok, doc_shards):
    assert tok.n_embed == read_docs_manifest(doc_shards)["image_codes"]["n_embed"]
    assert tok.pad_id == tok.n_text and tok.eos_id == tok.n_text + 1
    assert [tok.mask_id(i) for i in range(tok.n_masks)] == list(range(tok.n_text + 2, tok.image_code_offset))
    assert tok.vocab_size == tok.image_code_offset + tok.n_embed
    assert tok.n_text <= 320
    with pytest.raises(ValueError):
        tok.mask_id(tok.n_masks)


def test_tag_open_ids_are_the_text_ids_in_which_a_tag_opens(tok):
    opens = tok.tag_open_ids()
    assert opens == {i for i in range(tok.n_text) if "<" in tok.decode([i])}
    html = '<p>A cat &lt; a dog.</p><img alt="x &lt; y" src="1"><p>End.</p>'
    ids = tok.encode(html)
    at_tags = [i for i, t in enumerate(ids) if t in opens]
    # the tokens holding the 5 tags' `<`; the escaped `&lt;` in text and attributes opens none
    assert sum(tok.decode([ids[i]]).count("<") for i in at_tags) == 5 and at_tags[0] == 0


def test_image_src_becomes_256_image_ids(tok):
    codes = _codes(1)
    html = f'<p>A cat.</p><img alt="a cat" src="{" ".join(map(str, codes))}"><p>End.</p>'
    ids = tok.encode(html)
    image_ids = [i for i in ids if tok.is_image_id(i)]
    assert image_ids == [tok.image_code_offset + c for c in codes]
    # the image ids sit right after the text `src="` and before `"`
    first = ids.index(image_ids[0])
    assert tok.decode(ids[:first]).endswith('src="')
    assert tok.decode(ids).count(" ".join(map(str, codes))) == 1


@pytest.mark.parametrize(
    "src",
    [
        " ".join(map(str, _codes(2, 255))),  # too few codes
        " ".join(map(str, _codes(3, 257))),  # too many
        " ".join(["7"] * 255 + [str(N_EMBED)]),  # code out of range
        " ".join(["07"] + ["1"] * 255),  # not canonical: would not decode to the same text
        "  ".join(["1"] * 256),  # double spaces
    ],
)
def test_invalid_code_strings_stay_text(tok, src):
    html = f'<img alt="x" src="{src}">'
    ids = tok.encode(html)
    assert not any(tok.is_image_id(i) for i in ids)
    assert tok.decode(ids) == html


def test_every_fixture_document_round_trips(tok, doc_shards):
    assert tok.n_embed == N_EMBED
    docs = [
        row["html"] for path in sorted((doc_shards / "data").glob("*.parquet")) for row in iter_docs(path)
    ]
    assert len(docs) == 136
    for doc, ids in zip(docs, tok.encode_batch(docs), strict=True):
        assert tok.decode(ids) == doc


def test_special_ids_decode_to_names_and_literal_names_stay_text(tok):
    assert tok.decode([tok.mask_id(3), tok.eos_id, tok.pad_id]) == "<mask:3><eos><pad>"
    ids = tok.encode("<mask:0> <eos>")
    assert all(tok.is_text_id(i) for i in ids)


def test_save_load_is_identical(tok, tmp_path, html_factory):
    tok.save(tmp_path)
    again = CM3Tokenizer.load(tmp_path)
    assert again.layout() == tok.layout()
    html = html_factory(random.Random(5))
    assert again.encode(html) == tok.encode(html)
    layout = json.loads((tmp_path / "vocab_layout.json").read_text())
    layout["n_embed"] += 1
    (tmp_path / "vocab_layout.json").write_text(json.dumps(layout))
    with pytest.raises(ValueError):
        CM3Tokenizer.load(tmp_path)


def test_training_is_deterministic(doc_shards, tokenizer_dir, tmp_path):
    train_tokenizer(doc_shards, vocab_size=320, out_dir=tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()


_code_src = st.lists(st.integers(0, N_EMBED - 1), min_size=256, max_size=256).map(
    lambda c: " ".join(map(str, c))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_round_trip_any_text(tok, text):
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.one_of(st.text(max_size=40), _code_src.map(lambda s: f'<img alt="" src="{s}">')), max_size=5
    )
)
def test_round_trip_html_with_images(tok, parts):
    html = "".join(parts)
    ids = tok.encode(html)
    assert tok.decode(ids) == html
    n_images = sum(p.startswith('<img alt="" src="') for p in parts)
    assert sum(tok.is_image_id(i) for i in ids) >= 256 * n_images
