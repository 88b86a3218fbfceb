"""Corpus hygiene rules as plain functions: which images are site furniture, too small or too elongated, which
pictures are the same under different URLs, which documents are near-duplicates, and that every winner is a
function of content and URLs, never of arrival order."""

import hashlib
import io
import random
import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from c4_filters import stable_hash
from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline import hygiene, images
from pipeline.hygiene import (
    ASPECT_RATIO,
    TOO_SMALL,
    Hygiene,
    band_keys,
    band_losers,
    capped_srcs,
    image_shape_reason,
    minhash,
    over_url_repeats,
    perceptual_hash,
    representative,
    shingle_hashes,
    words,
)

ARTICLE = (
    "The harbour festival opened on Saturday with music on the quay and a parade of decorated fishing boats. "
    "Visitors queued for grilled sardines until late in the evening while the brass band played old sea "
    "shanties. The mayor thanked the volunteers who had cleaned the beach during the week and announced that "
    "the festival would return next year with a longer programme, a rowing race and a market for local crafts. "
    "Organisers counted more than four thousand visitors over the weekend, a record for the small town."
)


def png(image: Image.Image) -> bytes:
    stream = io.BytesIO()
    image.save(stream, "PNG")
    return stream.getvalue()


def jpeg(image: Image.Image, quality: int) -> bytes:
    stream = io.BytesIO()
    image.save(stream, "JPEG", quality=quality)
    return stream.getvalue()


def test_defaults_follow_the_anchors_and_zero_turns_a_limit_off():
    rules = Hygiene()
    assert (rules.max_image_url_repeats, rules.min_image_side, rules.max_images_per_doc) == (10, 150, 30)
    assert rules.image_dedup and rules.doc_dedup
    off = Hygiene(max_image_url_repeats=0, min_image_side=0, max_image_aspect_ratio=0, max_images_per_doc=0)
    assert not over_url_repeats(10**9, off)
    assert image_shape_reason(1, 1000, off) is None
    assert capped_srcs([str(i) for i in range(100)], off) == [str(i) for i in range(100)]


@pytest.mark.parametrize("bad", [{"min_image_side": -1}, {"max_image_aspect_ratio": 0.5}])
def test_impossible_limits_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Hygiene(**bad)


def test_an_image_url_on_more_documents_than_the_cap_is_site_furniture():
    rules = Hygiene(max_image_url_repeats=10)
    assert not over_url_repeats(10, rules)
    assert over_url_repeats(11, rules)


@pytest.mark.parametrize(
    "size, reason",
    [
        ((1, 1), TOO_SMALL),
        ((149, 600), TOO_SMALL),
        ((150, 450), None),
        ((150, 451), ASPECT_RATIO),
        ((900, 300), None),
    ],
)
def test_size_and_shape(size, reason):
    assert image_shape_reason(*size, Hygiene()) == reason


def test_a_tracking_pixel_is_removed_before_it_is_cropped():
    crop, outcome, _ = images.prepare("https://t.example/p.gif", png(Image.new("RGB", (1, 1))), Hygiene())
    assert crop is None and outcome == TOO_SMALL
    crop, outcome, _ = images.prepare("https://t.example/b.png", png(Image.new("RGB", (800, 160))), Hygiene())
    assert crop is None and outcome == ASPECT_RATIO


def test_first_n_images_in_document_order():
    assert capped_srcs(["a", "b", "c", "d"], Hygiene(max_images_per_doc=2)) == ["a", "b"]


def test_the_same_photo_recompressed_or_resized_gets_the_same_group_key():
    photo = skimage_rgb("coffee")[0]
    keys = {
        images.prepare(f"https://cdn{i}.example/coffee", data, Hygiene())[2]
        for i, data in enumerate([png(photo), jpeg(photo, 70), jpeg(photo.resize((300, 200)), 85)])
    }
    assert len(keys) == 1 and next(iter(keys)).startswith("phash:")
    others = {perceptual_hash(skimage_rgb(name)[0]) for name in ("astronaut", "chelsea", "rocket", "coffee")}
    assert len(others) == 4
    assert (
        images.prepare("https://a.example/x", png(photo), Hygiene(image_dedup=False))[2]
        == "https://a.example/x"
    )


@given(st.permutations([f"https://cdn{i}.example/p.jpg" for i in range(6)]))
def test_the_representative_is_the_smallest_url_whatever_the_order(urls):
    assert representative((url, url.upper()) for url in urls) == (
        "https://cdn0.example/p.jpg",
        "HTTPS://CDN0.EXAMPLE/P.JPG",
    )


def test_shingles_ignore_case_and_punctuation():
    assert list(words("Harbour, festival!  OPENED")) == ["harbour", "festival", "opened"]
    assert (shingle_hashes(words("A b c d e f"), 5) == shingle_hashes(words("a, B. c d E f"), 5)).all()
    assert shingle_hashes(words("two words"), 5).size == 1 and shingle_hashes([], 5).size == 0


def signature_by_whole_outer_product(text: str, count: int) -> np.ndarray:
    """The signature as first written: every distinct 5-gram string collected, then one (shingles x count)
    outer product (~1.8 KB per word)."""
    tokens = hygiene._WORD.findall(text.lower())
    grams = {" ".join(tokens[i : i + 5]) for i in range(max(1, len(tokens) - 5 + 1))}
    values = [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little") for g in grams]
    a, b = hygiene._permutations(count)
    permuted = (np.outer(np.array(sorted(values), dtype=np.uint64), a) + b) % np.uint64(hygiene._PRIME)
    return permuted.min(axis=0).astype(np.uint32)


@given(
    st.lists(
        st.sampled_from(["harbour", "Festival", "quay", "boats", "été", "42", "-", ", "]),
        min_size=1,
        max_size=400,
    ),
    st.sampled_from([1, 3, 64, hygiene._MINHASH_BLOCK]),
)
def test_the_blockwise_signature_equals_the_whole_outer_product(tokens, block):
    text = " ".join(tokens)
    if not list(words(text)):
        return
    with mock.patch.object(hygiene, "_MINHASH_BLOCK", block):
        signature = minhash(shingle_hashes(words(text), 5), 112)
    assert (signature == signature_by_whole_outer_product(text, 112)).all()


def test_a_multi_megabyte_article_is_hashed_in_bounded_memory():
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(5000)]
    text = " ".join(rng.choice(vocabulary) for _ in range(100_000))  # ~650 KB, ~100k shingles
    tracemalloc.start()
    try:
        keys = band_keys(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(keys) == 14
    # the text's lower-cased copy, 8 bytes per shingle (twice while sorted) and one block buffer; the whole
    # outer product would take ~180 MB here
    assert peak < 2 * len(text) + 16 * 100_000 + 2 * 2048 * 112 * 8, peak


def test_near_duplicate_articles_share_a_band_and_different_ones_do_not():
    edited = ARTICLE.replace("four thousand", "five thousand").replace("Saturday", "Sunday")
    other = " ".join(reversed(ARTICLE.split()))
    assert set(band_keys(ARTICLE)) & set(band_keys(edited))
    assert not set(band_keys(ARTICLE)) & set(band_keys(other))
    assert len(band_keys(ARTICLE)) == 14 and band_keys(ARTICLE) == band_keys(ARTICLE)
    assert band_keys("") == []


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12, unique=True), st.randoms())
def test_every_url_but_the_smallest_hash_loses_whatever_the_order(urls, random):
    shuffled = list(urls)
    random.shuffle(shuffled)
    winner = min(urls, key=lambda url: (stable_hash(url), url))
    assert set(band_losers(shuffled)) == set(urls) - {winner}


def test_pictures_that_differ_only_in_colour_are_not_grouped():
    red, blue = Image.new("RGB", (200, 200), (200, 30, 30)), Image.new("RGB", (200, 200), (30, 30, 200))
    assert perceptual_hash(red) != perceptual_hash(blue)  # phash alone sees two flat grey squares
    assert perceptual_hash(red) == perceptual_hash(Image.new("RGB", (300, 300), (200, 30, 30)))
