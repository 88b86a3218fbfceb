"""What `cm3-data run` writes and where: one overwrite rule, image references counted per <img>, plain .html
inputs with a URL that does not depend on how their path was typed, and a missing VQGAN file named."""

import base64
import contextlib
import io
import json
import os
from pathlib import Path

import lxml.html
import pyarrow.parquet as pq
import pytest
from PIL import Image

from html_minimizer import minimize
from pipeline import doc_steps, shards
from pipeline.cli import main
from pipeline.items import Count, Page
from pipeline.readers import declared_url, html_file_urls, input_root, read_input

TEXT = (
    "The harbour festival opened on Saturday with music on the quay. Fishing boats were decorated with flags "
    "and lanterns. Visitors queued for grilled sardines until late in the evening."
)


def png_data_uri() -> str:
    """A 200x160 gradient: past the job's default minimum side (150), so it is encoded."""
    image = Image.new("RGB", (200, 160))
    image.putdata([(x, y, (x + y) % 256) for y in range(160) for x in range(200)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def page_html(head: str = "", image: str = "img/quay.png") -> str:
    return (
        f"<html><head><title>Harbour news</title>{head}</head><body><article><h1>Festival</h1>"
        f'<p>{TEXT}</p><img alt="The quay at dusk" src="{image}"><p>{TEXT}</p>'
        f'<img alt="The quay again" src="{image}"></article></body></html>'
    )


def run(*args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["run", "--quiet", "--train-shards", "1", "--validation-shards", "1", *args])


def read_page(path: str, pattern: str, base_url: str | None = None) -> Page:
    """The page `cm3-data run` reads at `path` matched by `pattern` (URL fixed at launch, then read)."""
    url = html_file_urls([path], [pattern], base_url).get(path)
    (page,) = [item for item in read_input(path, url=url) if isinstance(item, Page)]
    return page


def page_url(path: str, pattern: str, base_url: str | None = None) -> str:
    return read_page(path, pattern, base_url).url


# ---- plain .html inputs: a stable URL


def test_a_page_typed_three_ways_has_one_url_id_and_split(tmp_path, monkeypatch):
    (tmp_path / "x.html").write_text(page_html())
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "x.html")
    for base in (None, "https://example.org/site/"):
        urls = {page_url(path, path, base) for path in ("./x.html", "x.html", absolute)}
        assert len(urls) == 1, urls
        (url,) = urls
        assert url == (
            "https://example.org/site/x.html" if base else (tmp_path / "x.html").resolve().as_uri()
        )
        ids = {doc_steps.doc_id(u) for u in urls}
        splits = {doc_steps.assign_split(u, 0.5) for u in urls}
        assert len(ids) == 1 and len(splits) == 1


def test_base_url_joins_the_path_under_the_glob_root(tmp_path, monkeypatch):
    (tmp_path / "site" / "news").mkdir(parents=True)
    (tmp_path / "site" / "news" / "a b.html").write_text(page_html())
    monkeypatch.chdir(tmp_path)
    assert input_root("site/**/*.html") == "site" and input_root("site/news/a*.html") == "site/news"
    base = "https://example.org/"
    assert page_url("site/news/a b.html", "site/**/*.html", base) == "https://example.org/news/a%20b.html"
    assert page_url("site/news/a b.html", "site/news/*.html", base) == "https://example.org/a%20b.html"


def test_the_pages_own_canonical_url_wins(tmp_path):
    canonical = '<link rel="Canonical" href="https://news.example/2024/festival">'
    og = '<meta property="og:url" content="https://news.example/og">'
    assert declared_url(page_html(canonical + og).encode()) == "https://news.example/2024/festival"
    assert declared_url(page_html(og).encode()) == "https://news.example/og"
    for not_absolute in (
        '<link rel="canonical" href="/2024/festival">',
        '<meta property="og:url" content="x">',
    ):
        assert declared_url(page_html(not_absolute).encode()) is None
    assert declared_url(b"") is None and declared_url(bytes(range(256))) is None
    (tmp_path / "x.html").write_text(page_html(canonical))
    path = str(tmp_path / "x.html")
    assert page_url(path, path, "https://example.org/") == "https://news.example/2024/festival"


def test_relative_image_links_resolve_against_the_page_url(tmp_path):
    (tmp_path / "x.html").write_text(page_html())
    path = str(tmp_path / "x.html")
    page = read_page(path, path, "https://example.org/site/")
    assert doc_steps.image_srcs(minimize(page.body, page.url).html) == [
        "https://example.org/site/img/quay.png"
    ]


# ---- image references: one per <img>


def test_references_are_counted_per_img_element_not_per_url():
    html = minimize(page_html(image="https://img.example/quay.png"), "https://news.example/a").html
    doc = doc_steps.Doc(url="https://news.example/a", source="html", html=html, lang_score=0.99)
    items = list(doc_steps.rewrite_images(doc, {"https://img.example/quay.png": "1 2 3"}, True))
    assert Count("images.refs_kept", 2) in items
    (rewritten,) = [item for item in items if isinstance(item, doc_steps.Doc)]
    assert rewritten.html.count("<img") == 2
    removed = list(doc_steps.rewrite_images(doc, {}, False))
    assert Count("images.refs_removed", 2) in removed


# ---- the job end to end on one page: layout, references, overwrite


@pytest.fixture(scope="module")
def one_page_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "site").mkdir()
    (root / "site" / "festival.html").write_text(page_html(image=png_data_uri()))
    output = root / "out"
    args = ["--input", str(root / "site" / "*.html"), "--base-url", "https://example.org/", "--no-fetch"]
    assert run("--output", str(output), *args) == 0
    return root, output, args


def rows(output: Path) -> list[dict]:
    return [
        row for path in sorted((output / "data").glob("*.parquet")) for row in pq.read_table(path).to_pylist()
    ]


def test_one_page_run_writes_data_and_meta_and_counts_each_reference(one_page_run):
    _, output, _ = one_page_run
    assert sorted(p.name for p in output.iterdir()) == ["_meta", "data"]
    assert sorted(p.name for p in (output / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    assert sorted(p.name for p in (output / "_meta").iterdir()) == [
        "manifest.json",
        "report.html",
        "report.json",
    ]
    assert shards.verify(str(output)) == []
    (row,) = rows(output)
    assert row["url"] == "https://example.org/festival.html"
    report = json.loads(Path(shards.report_json_path(str(output))).read_text())
    img = len(lxml.html.document_fromstring(row["html"]).xpath("//img"))
    assert report["images"]["refs_kept"] == img == 2 and report["images"]["unique"] == 1
    manifest = json.loads(Path(shards.manifest_path(str(output))).read_text())
    assert manifest["options"]["base_url"] == "https://example.org/"


def test_a_non_empty_output_is_refused_and_overwrite_replaces_it_whole(one_page_run, tmp_path, capsys):
    root, output, args = one_page_run
    before = {p.name: p.read_bytes() for p in (output / "data").glob("*.parquet")}
    capsys.readouterr()
    assert run("--output", str(output), *args) == 3  # a finished output
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "notes.txt").write_text("not ours")
    assert run("--output", str(unfinished), *args) == 3  # anything at all in it
    assert (unfinished / "notes.txt").is_file()
    (output / "data" / "stale.parquet").write_bytes(b"from an earlier run")
    assert run("--output", str(output), *args, "--overwrite") == 0
    assert not (output / "data" / "stale.parquet").exists()
    assert {p.name: p.read_bytes() for p in (output / "data").glob("*.parquet")} == before
    assert shards.verify(str(output)) == []
    inputs_inside = ["--input", str(root / "site" / "*.html"), "--output", str(root), "--overwrite"]
    assert run(*inputs_inside) == 2  # --overwrite never deletes the inputs
    assert "would delete inputs" in capsys.readouterr().err
    assert (root / "site" / "festival.html").is_file()


# ---- a missing VQGAN file is named


def test_a_missing_vqgan_file_is_named_in_one_line(tmp_path, capsys):
    from image_tokenizer.config import DEFAULT_CHECKPOINT

    out = str(tmp_path / "out")
    cases = [
        (["--vqgan-checkpoint", "/nope.ckpt"], "VQGAN checkpoint not found: /nope.ckpt"),
        (["--vqgan-config", "/nope.yaml"], "VQGAN config not found: /nope.yaml"),
    ]
    lonely = tmp_path / "lonely.ckpt"  # a checkpoint without the yaml beside it
    os.symlink(DEFAULT_CHECKPOINT, lonely)
    cases.append((["--vqgan-checkpoint", str(lonely)], f"VQGAN config not found: {tmp_path / 'lonely.yaml'}"))
    for flags, message in cases:
        assert run("--output", out, *flags) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"cm3-data run: {message}", err
