"""Corpus hygiene through the whole job, on a small crawl the test writes: a logo on 12 pages, a 1x1 tracking
pixel, one photo served under two URLs, a page with more images than the cap, an altered copy of a photo
that shares its perceptual hash, and two near-duplicate articles; then an opt-out replay of the output that
`cm3-data verify` accepts."""

import contextlib
import dataclasses
import io
import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from image_tokenizer.train_small_vqgan import skimage_rgb
from pipeline import beam_steps, counters, doc_steps
from pipeline.cli import main, run_parser
from pipeline.hygiene import Hygiene
from pipeline.make_sample_corpus import TEXT
from pipeline.optout import OptOut, apply_optout
from pipeline.shards import verify
from pipeline.warc_writer import http_response, warc_record

SITE = "https://www.harbour.example/news/"
LOGO = "https://www.harbour.example/static/logo.png"
PIXEL = "https://track.example/p.gif"
PHOTO_A, PHOTO_B = "https://cdn-a.example/coffee.jpg", "https://cdn-b.example/img/coffee-small.jpg"
GALLERY = [f"https://cdn-a.example/{name}.jpg" for name in ("astronaut", "chelsea", "rocket")]
ALTERED = "https://a.attacker.example/cat.png"  # sorts before the gallery's chelsea.jpg


def altered_copy(photo: Image.Image) -> Image.Image:
    """`photo` under a +-60 checkerboard of 3-pixel squares: same perceptual hash and colour key, another
    picture (tests/pipeline/test_hygiene.py measures it)."""
    rows, columns = np.mgrid[0 : photo.height, 0 : photo.width]
    pattern = np.where((rows // 3 + columns // 3) % 2 == 0, 60, -60)
    return Image.fromarray(
        np.clip(np.asarray(photo).astype(np.int16) + pattern[..., None], 0, 255).astype(np.uint8)
    )


def image_bytes(image: Image.Image, kind: str = "JPEG") -> bytes:
    stream = io.BytesIO()
    image.save(stream, kind)
    return stream.getvalue()


def page(url: str, paragraphs: list[str], srcs: list[str]) -> bytes:
    body = "".join(f"<p>{text}</p>" for text in paragraphs)
    figures = "".join(f'<figure><img alt="A photo from the story" src="{src}"></figure>' for src in srcs)
    html = f"<html><head><title>Harbour news</title></head><body><article>{body}{figures}</article></body></html>"
    return warc_record(url, http_response(html.encode(), "text/html; charset=utf-8"))


def crawl() -> bytes:
    news = TEXT["news"]
    records = [page(f"{SITE}logo-{i}", news[i]["paragraphs"], [LOGO]) for i in range(12)]
    records.append(page(f"{SITE}photo-a", news[12]["paragraphs"], [PIXEL, PHOTO_A]))
    records.append(page(f"{SITE}photo-b", news[13]["paragraphs"], [PHOTO_B]))
    records.append(page(f"{SITE}gallery", news[15]["paragraphs"], GALLERY))
    records.append(page("https://a.attacker.example/cats", news[16]["paragraphs"], [ALTERED]))
    original = news[14]["paragraphs"]
    edited = [original[0].replace(" the ", " this ", 1)] + original[1:]
    records += [page(f"{SITE}story", original, []), page(f"{SITE}story-copy", edited, [])]
    coffee = skimage_rgb("coffee")[0]
    pictures = {
        LOGO: image_bytes(Image.new("RGB", (240, 180), (200, 30, 30)), "PNG"),
        PIXEL: image_bytes(Image.new("RGB", (1, 1)), "GIF"),
        PHOTO_A: image_bytes(coffee),
        PHOTO_B: image_bytes(coffee.resize((300, 200))),  # the same picture, smaller, recompressed
        **{url: image_bytes(skimage_rgb(url.rsplit("/", 1)[1][:-4])[0]) for url in GALLERY},
        ALTERED: image_bytes(altered_copy(skimage_rgb("chelsea")[0]), "PNG"),
    }
    records += [warc_record(url, http_response(data, "image/jpeg")) for url, data in pictures.items()]
    return b"".join(records)


def rows(output: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((output / "data").glob("*.parquet")):
        found.update({row["url"]: row for row in pq.read_table(path).to_pylist()})
    return found


@pytest.fixture(scope="module")
def hygiene_run(tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("hygiene")
    (directory / "crawl.warc.gz").write_bytes(crawl())
    output = directory / "out"
    args = ["run", "--input", str(directory / "crawl.warc.gz"), "--output", str(output), "--no-fetch"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--max-images-per-doc", "2", "--quiet"]) == 0
    return output, json.loads((output / "_meta" / "report.json").read_text())


def test_the_logo_on_twelve_pages_is_removed_from_all_of_them_without_being_fetched(hygiene_run):
    output, report = hygiene_run
    assert report["images"]["filtered"]["url_repeats"] == 1
    assert report["counts"]["images.filtered_refs.url_repeats"] == 12
    logo_pages = [row for url, row in rows(output).items() if "/logo-" in url]
    assert len(logo_pages) == 12 and all(row["n_images"] == 0 and not row["image_urls"] for row in logo_pages)


def test_the_tracking_pixel_is_removed_before_encoding(hygiene_run):
    output, report = hygiene_run
    assert report["images"]["filtered"]["too_small"] == 1
    assert rows(output)[f"{SITE}photo-a"]["image_urls"] == [PHOTO_A]


def test_one_photo_under_two_urls_is_encoded_once_and_each_page_keeps_its_own_url(hygiene_run):
    output, report = hygiene_run
    docs = rows(output)
    a, b = docs[f"{SITE}photo-a"], docs[f"{SITE}photo-b"]
    assert (a["image_urls"], b["image_urls"]) == ([PHOTO_A], [PHOTO_B])
    assert doc_steps.image_srcs(a["html"]) == doc_steps.image_srcs(b["html"])  # the same 256 codes
    assert report["images"]["near_duplicate_urls"] == 1
    assert report["images"]["codes_written"] == 4  # the photo once, the gallery's first two, the altered copy


def test_an_altered_copy_sharing_the_hash_does_not_replace_the_real_photos_codes(hygiene_run):
    """Issue 27, item 8: the altered copy's URL sorts first in its perceptual-hash group, but the gallery's
    photo fails the pixel check against it, so it is encoded from its own pixels."""
    output, report = hygiene_run
    docs = rows(output)
    gallery, altered = docs[f"{SITE}gallery"], docs["https://a.attacker.example/cats"]
    assert gallery["image_urls"] == GALLERY[:2] and altered["image_urls"] == [ALTERED]
    assert doc_steps.image_srcs(altered["html"])[0] not in doc_steps.image_srcs(gallery["html"])
    assert report["counts"][counters.IMAGES_PHASH_PIXEL_MISMATCH] == 1


def test_a_document_keeps_its_first_n_images(hygiene_run):
    output, report = hygiene_run
    assert rows(output)[f"{SITE}gallery"]["image_urls"] == GALLERY[:2]
    assert report["images"]["refs_over_doc_cap"] == 1


def test_of_two_near_duplicate_articles_one_is_kept(hygiene_run):
    output, report = hygiene_run
    kept = {url for url in rows(output) if url.startswith(f"{SITE}story")}
    assert len(kept) == 1 and report["dropped"]["dedup.near_dup_docs_dropped"] == 1
    assert [stage["stage"] for stage in report["funnel"]][4] == "after near-dup dedup"
    assert verify(str(output)) == []


def test_opt_out_replay_writes_a_verified_output_without_the_listed_documents_and_images(
    hygiene_run, tmp_path
):
    output, _ = hygiene_run
    (tmp_path / "urls.txt").write_text(f"# opted out\n{SITE}photo-a\n{GALLERY[0]}\n")
    (tmp_path / "domains.txt").write_text("cdn-b.example\n")
    new = tmp_path / "new"
    args = [
        "optout",
        str(output),
        "--urls",
        str(tmp_path / "urls.txt"),
        "--domains",
        str(tmp_path / "domains.txt"),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--out", str(new)]) == 0
    assert verify(str(new)) == []
    before, after = rows(output), rows(new)
    assert set(before) - set(after) == {f"{SITE}photo-a"}
    assert after[f"{SITE}photo-b"]["n_images"] == 0 and after[f"{SITE}photo-b"]["image_urls"] == []
    assert after[f"{SITE}gallery"]["image_urls"] == [GALLERY[1]] and after[f"{SITE}gallery"]["n_images"] == 1
    assert "<p>" in after[f"{SITE}photo-b"]["html"]
    manifest = json.loads((new / "_meta" / "manifest.json").read_text())["optout"]
    assert manifest["urls_sha256"] and manifest["domains_sha256"] and manifest["previous_manifest_sha256"]
    assert manifest["counts"]["optout.documents_removed"] == 1
    assert manifest["counts"]["optout.image_refs_removed"] == 2
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([*args, "--out", str(new)]) == 2  # a non-empty --out is refused...
    assert "pass --overwrite" in err.getvalue()
    (new / "stale.txt").write_text("from before")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--out", str(new), "--overwrite"]) == 0  # ...unless --overwrite replaces it whole
    assert not (new / "stale.txt").exists() and verify(str(new)) == [] and rows(new) == after
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([*args, "--out", str(output.parent), "--overwrite"]) == 2
    assert "holds the output being replayed" in err.getvalue() and verify(str(output)) == []


def test_a_replay_that_fails_midway_leaves_the_previous_output_as_it_was(hygiene_run, tmp_path, monkeypatch):
    """--overwrite replaces the output only once the replay is complete, as `cm3-data run` does: a replay
    that stops (a failure, Ctrl-C) leaves the old output whole and no partial directory beside it."""
    from pipeline import optout

    output, _ = hygiene_run
    (tmp_path / "urls.txt").write_text(f"{SITE}photo-a\n")
    (tmp_path / "domains.txt").write_text("cdn-b.example\n")
    new = tmp_path / "new"
    assert optout.replay(str(output), str(new), optout.load_optout(str(tmp_path / "urls.txt"), None)) != {}
    before = {p.relative_to(new): p.read_bytes() for p in new.rglob("*") if p.is_file()}

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(optout.shards, "write_manifest", stop)  # after every shard was written
    with pytest.raises(KeyboardInterrupt):
        optout.replay(
            str(output), str(new), optout.load_optout(None, str(tmp_path / "domains.txt")), overwrite=True
        )
    assert {p.relative_to(new): p.read_bytes() for p in new.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domains.txt", "new", "urls.txt"]


def test_near_dup_dedup_step_keeps_the_smallest_url_hash():
    news = TEXT["news"]
    html = "<html><body>" + "".join(f"<p>{p}</p>" for p in news[0]["paragraphs"]) + "</body></html>"
    docs = [doc_steps.Doc(f"https://copy{i}.example/", "warc", html) for i in range(4)]
    docs.append(doc_steps.Doc("https://other.example/", "warc", html.replace("<p>", "<p>Other ", 1)[:400]))
    winners = {"https://other.example/", min((d.url for d in docs[:4]), key=beam_steps.stable_hash)}
    with TestPipeline() as pipeline:
        kept, counts = pipeline | beam.Create(docs) | beam_steps.NearDupDedup()
        assert_that(kept | beam.Map(lambda d: d.url), equal_to(sorted(winners)), label="Kept")
        assert_that(
            counts | beam.FlatMap(lambda c: c.items) | beam.CombinePerKey(sum),
            equal_to([("dedup.near_dup_docs_dropped", 3)]),
            label="Counts",
        )


def test_the_manifest_records_the_hygiene_used(hygiene_run):
    output, _ = hygiene_run
    options = json.loads((output / "_meta" / "manifest.json").read_text())["options"]["hygiene"]
    assert options == {**dataclasses.asdict(Hygiene()), "max_images_per_doc": 2}


@pytest.mark.parametrize(
    "argv",
    [
        ("--max-image-url-repeats", "-1"),
        ("--min-image-side", "x"),
        ("--max-image-aspect-ratio", "0.5"),
        ("--max-image-aspect-ratio", "inf"),
        ("--max-images-per-doc", "-2"),
    ],
)
def test_hygiene_flags_are_checked_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_parser().parse_known_args(["--output", "out", *argv])
    assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_opt_out_needs_a_list_and_a_new_directory(tmp_path, capsys):
    assert main(["optout", str(tmp_path), "--out", str(tmp_path / "new")]) == 2
    assert "--urls LIST and/or --domains LIST" in capsys.readouterr().err
    (tmp_path / "urls.txt").write_text("https://a.example/\n")
    assert main(["optout", str(tmp_path), "--urls", str(tmp_path / "urls.txt"), "--out", str(tmp_path)]) == 2
    assert (
        main(["optout", str(tmp_path), "--urls", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "n")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--output must differ" in err and "manifest.json is missing" in err and "Traceback" not in err


def test_opt_out_leaves_no_element_that_only_held_the_removed_image():
    optout = OptOut(urls=frozenset({"https://cdn.example/a.jpg"}), domains=frozenset())
    row = {
        "url": "https://a.example/1",
        "html": '<html><body><p>Text stays.</p><figure><a href="/x"><img src="1 2 3"></a></figure></body></html>',
        "image_urls": ["https://cdn.example/a.jpg"],
    }
    counts = Counter()
    (out,) = apply_optout([row], optout, counts)
    assert "<figure" not in out["html"] and "<a" not in out["html"] and "Text stays." in out["html"]
    assert out["n_images"] == 0 and out["image_urls"] == [] and counts["optout.empty_elements_removed"] >= 2


def test_opt_out_of_an_output_without_image_urls_removes_documents_and_says_images_could_not_be_matched():
    optout = OptOut(urls=frozenset({"https://a.example/1"}), domains=frozenset({"cdn.example"}))
    old_rows = [
        {"url": "https://a.example/1", "html": "<p>x</p>"},
        {"url": "https://a.example/2", "html": '<p>y</p><img src="1 2 3">'},
        {"url": "https://a.example/3", "html": "<p>z</p>"},
    ]
    counts = Counter()
    kept = list(apply_optout(old_rows, optout, counts))
    assert [row["url"] for row in kept] == ["https://a.example/2", "https://a.example/3"]
    assert counts == Counter(
        {"optout.documents_read": 3, "optout.documents_removed": 1, "optout.documents_without_image_urls": 1}
    )
    assert optout.listed("https://img.cdn.example/p.jpg") and not optout.listed(
        "https://notcdn.example/p.jpg"
    )
