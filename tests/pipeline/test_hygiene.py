"""Corpus hygiene rules as plain functions: which images are site furniture, too small or too elongated, which
pictures are the same under different URLs, which documents are near-duplicates, and that every winner is a
function of content and URLs, never of arrival order."""

import functools
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
    near_identical,
    over_url_repeats,
    perceptual_hash,
    representative,
    share_codes,
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
    crop, outcome, _, _ = images.prepare("https://t.example/p.gif", png(Image.new("RGB", (1, 1))), Hygiene())
    assert crop is None and outcome == TOO_SMALL
    crop, outcome, _, _ = images.prepare(
        "https://t.example/b.png", png(Image.new("RGB", (800, 160))), Hygiene()
    )
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


def altered_copy(photo: Image.Image, cell: int) -> Image.Image:
    """`photo` under a +-60 checkerboard of `cell`-pixel squares: its coarse DCT and mean colour barely move,
    so it keeps the perceptual hash and colour key of the real photo, yet it is plainly another picture
    (issue 27, item 8: what an attacker serves to take over a real photo's codes)."""
    rows, columns = np.mgrid[0 : photo.height, 0 : photo.width]
    pattern = np.where((rows // cell + columns // cell) % 2 == 0, 60, -60)
    pixels = np.asarray(photo).astype(np.int16) + pattern[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_an_altered_copy_with_the_same_hash_does_not_lend_its_codes_to_the_real_photo():
    photo = skimage_rgb("chelsea")[0]
    real = images.prepare("https://news.example/cat.jpg", jpeg(photo, 90), Hygiene())
    poison = images.prepare("https://a.attacker.example/cat.png", png(altered_copy(photo, 3)), Hygiene())
    assert real[1] == poison[1] == "ok" and real[2] == poison[2]  # same phash and colour key: one group
    assert np.abs(real[0].astype(int) - poison[0].astype(int)).mean() > 40  # crops: another picture
    members = [("https://news.example/cat.jpg", real[0], real[3])]
    members.append(("https://a.attacker.example/cat.png", poison[0], poison[3]))
    shared = {url: (label, crop) for label, url, crop in share_codes(real[2], members)}
    # the attacker's URL sorts first and is the representative; the real photo is encoded from its own pixels
    assert shared["https://a.attacker.example/cat.png"][0] == real[2]
    label, crop = shared["https://news.example/cat.jpg"]
    assert label != real[2] and crop is real[0]


def test_true_near_duplicates_still_share_one_encoding():
    photo = skimage_rgb("coffee")[0]
    urls = ["https://cdn0.example/c.jpg", "https://cdn1.example/c.jpg", "https://cdn2.example/c.png"]
    datas = [jpeg(photo, 95), jpeg(photo, 40), png(photo.resize((300, 200)))]
    prepared = [images.prepare(url, data, Hygiene()) for url, data in zip(urls, datas, strict=True)]
    assert len({item[2] for item in prepared}) == 1
    members = [(url, item[0], item[3]) for url, item in zip(urls, prepared, strict=True)]
    shared = list(share_codes(prepared[0][2], members))
    assert {label for label, _, _ in shared} == {prepared[0][2]}
    assert [url for _, url, crop in shared if crop is not None] == [urls[0]]  # one crop encoded


@functools.cache
def cat_copies() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(url, crop, thumbnail): two re-encodings of a photo (cdn0, cdn1) and two altered copies (cdn2, cdn3)."""
    photo = skimage_rgb("chelsea")[0]
    datas = [jpeg(photo, 95), jpeg(photo, 60), png(altered_copy(photo, 3)), png(altered_copy(photo, 6))]
    members = []
    for i, data in enumerate(datas):
        url = f"https://cdn{i}.example/cat"
        crop, _, _, thumb = images.prepare(url, data, Hygiene())
        members.append((url, crop, thumb))
    return members


@given(st.permutations(range(4)))
def test_who_shares_does_not_depend_on_the_order(order):
    members = [cat_copies()[i] for i in order]
    assert {(label, url) for label, url, _ in share_codes("k", members)} == {
        ("k", "https://cdn0.example/cat"),
        ("k", "https://cdn1.example/cat"),
        ("k https://cdn2.example/cat", "https://cdn2.example/cat"),
        ("k https://cdn3.example/cat", "https://cdn3.example/cat"),
    }


def test_near_identical_is_a_strict_mean_pixel_difference():
    base = np.full((256, 256, 3), 100, dtype=np.uint8)
    assert near_identical(base, base + 5) and not near_identical(base, base + 6)
    one_channel = base.copy()
    one_channel[..., 0] += 15  # 15 on one channel of three: a mean of 5
    assert near_identical(base, one_channel)
