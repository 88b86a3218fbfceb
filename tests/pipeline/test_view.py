"""`cm3-data view`: a tiny shard in the contract format whose images are real skimage photos encoded
by the bundled VQGAN; the page is self-contained, escaped, deterministic, and headless Chromium shows
the decoded images (and no script runs)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import lxml.html
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.view import frame_document, image_sources, render_report, sample_documents, shard_files
from pipeline.view import main as view_main

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
HOSTILE = (
    '<html><head><title>"&gt;</title><meta http-equiv="refresh" content="0;url=https://evil.example/">'
    '<base href="https://evil.example/"></head><body><p>Hostile page.</p>'
    "<script>document.body.innerHTML='<div style=\"width:3000px;height:3000px;background:#ff00ff\"></div>'"
    '</script><img alt="x" src="https://evil.example/pixel.png"><p>End.</p></body></html>'
)
MAGENTA = np.array([255, 0, 255])


@pytest.fixture(autouse=True)
def one_thread():
    """VQGAN decoding on the shared CI cores: one thread avoids contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vq():
    from image_tokenizer import load_vqgan

    return load_vqgan()


@pytest.fixture(scope="module")
def photo_codes(vq) -> dict[str, list[int]]:
    from skimage import data as skdata

    from image_tokenizer import preprocess

    batch = np.stack([preprocess(Image.fromarray(getattr(skdata, name)()), seed_key=name) for name in PHOTOS])
    return {name: codes.tolist() for name, codes in zip(PHOTOS, vq.encode(batch), strict=True)}


def doc_row(url: str, html: str) -> dict:
    return {"url": url, "html": html, "lang_score": 0.995}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, photo_codes, write_document_shards) -> Path:
    from image_tokenizer import DEFAULT_CHECKPOINT
    from pipeline.report import build_report, report_json

    out = tmp_path_factory.mktemp("shards")
    src = {name: " ".join(map(str, codes)) for name, codes in photo_codes.items()}
    train = [
        doc_row(
            f"https://example.org/{name}",
            f'<html lang="en"><head><title>{name}</title></head><body><p>A photo of the {name}.</p>'
            f'<img alt="the {name}" src="{src[name]}"><p>More text about the {name} here.</p></body></html>',
        )
        for name in PHOTOS
    ]
    train.append(doc_row('https://evil.example/"><script>alert(1)</script>', HOSTILE))
    validation = [
        doc_row(
            "https://example.org/pair",
            f'<html><body><p>Two photos.</p><img alt="a" src="{src["coffee"]}"><img alt="b" src="{src["rocket"]}">'
            "</body></html>",
        )
    ]
    vqgan_sha = hashlib.sha256(Path(DEFAULT_CHECKPOINT).read_bytes()).hexdigest()
    write_document_shards(
        out,
        {"train": train, "validation": validation},
        n_embed=1024,
        vqgan={"checkpoint": "bundled", "sha256": vqgan_sha},
    )
    splits = json.loads((out / "_meta" / "manifest.json").read_text())["splits"]
    counts = {"read.pages.warc": 9, "minimize.ok": 8, "c4.kept": 6, "images.unique": 4, "images.encoded": 4}
    (out / "_meta" / "report.json").write_bytes(report_json(build_report(counts, splits)))
    return out


def view(shard_dir: Path, out: Path, *extra: str) -> lxml.html.HtmlElement:
    assert view_main([str(shard_dir), "--out", str(out), *extra]) == 0
    return lxml.html.fromstring(out.read_bytes())


def frames(page: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    return [lxml.html.fromstring(f.get("srcdoc")) for f in page.iter("iframe")]


def test_page_is_self_contained_and_escaped(shard_dir, tmp_path):
    out = tmp_path / "page.html"
    page = view(shard_dir, out, "--n", "10")
    raw = out.read_text()
    assert "<script" not in raw.lower()  # the hostile document's script survives only as escaped text
    assert not list(page.iter("script", "link", "object", "embed"))
    iframes = list(page.iter("iframe"))
    assert len(iframes) == 6 and all(f.get("sandbox") == "" for f in iframes)
    docs = frames(page)
    for doc in docs:
        assert [m.get("http-equiv") for m in doc.xpath("//meta[@http-equiv]")] == ["Content-Security-Policy"]
        assert not doc.xpath("//base")
        for img in doc.iter("img"):
            assert img.get("src").startswith("data:image/png;base64,")
    images = [img for doc in docs for img in doc.iter("img")]
    assert len(images) == 6  # 4 + 2 photos; the hostile page's external image is removed
    text = page.text_content()
    assert 'https://evil.example/"><script>alert(1)</script>' in text  # shown, as text
    assert "1 image(s) without a valid code src" in text
    assert "Images decoded with the VQGAN the manifest names." in text
    for key in ("pages read", "kept by C4", "written"):
        assert key in text
    assert "lang_score" in text and "0.9950" in text


def test_sample_is_deterministic_and_sized(shard_dir, tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    from pipeline.cli import main as cm3_data

    view(shard_dir, a, "--n", "2", "--seed", "5")
    assert cm3_data(["view", str(shard_dir), "--out", str(b), "--n", "2", "--seed", "5"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert len(lxml.html.fromstring(a.read_bytes()).find_class("doc")) == 2
    files = shard_files(shard_dir, "all")
    samples = {tuple(d.row["id"] for d in sample_documents(files, 3, seed)[0]) for seed in range(8)}
    assert len(samples) > 1 and all(len(s) == 3 for s in samples)
    assert sample_documents(files, 3, 4) == sample_documents(files, 3, 4)
    assert sample_documents(files, 100, 0)[1] == 6
    validation, total = sample_documents(shard_files(shard_dir, "validation"), 5, 0)
    assert total == 1 and [d.row["url"] for d in validation] == ["https://example.org/pair"]


def test_bad_directories_are_reported(tmp_path, capsys):
    assert view_main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "no document shards" in capsys.readouterr().err
    pq.write_table(pa.table({"id": ["a"], "url": ["u"]}), tmp_path / "train-00000-of-00001.parquet")
    assert view_main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "missing columns" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5), st.text())
def test_any_report_and_html_render_escaped(report, doc_html):
    """Whatever report.json and document strings hold, no markup of theirs reaches the page."""
    page = lxml.html.fromstring("<div>" + render_report(report, None) + "</div>")
    allowed = {"div", "h3", "table", "tr", "th", "td", "details", "summary", "em", "span", "p"}
    assert {el.tag for el in page.iter()} <= allowed
    image_sources(doc_html)  # never raises on garbage
    frame = lxml.html.fromstring(frame_document(doc_html, {}))
    assert not [i for i in frame.iter("img")] and len(frame.xpath("//meta[@http-equiv]")) == 1


# ---- headless Chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Debian `chromium` binary, installed with apt when missing and we are root."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run(install, capture_output=True)
    if not Path(path).exists():
        pytest.fail(
            "headless Chromium is needed: install the Debian `chromium` package (apt-get install chromium)"
        )
    return path


def screenshot(chromium: str, page: Path, out: Path, profile: Path) -> np.ndarray:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1000,4000",  # tall enough for all three sampled documents
        "--virtual-time-budget=5000",  # let the srcdoc frames load and paint before the capture
        f"--screenshot={out}",
    ]
    run = subprocess.run([chromium, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.is_file(), run.stderr[-2000:]
    with Image.open(out) as shot:
        return np.asarray(shot.convert("RGB"))


def best_match(shot: np.ndarray, template: np.ndarray) -> float:
    """Smallest mean squared difference (grey levels) of `template` over every position in `shot`."""
    from scipy.signal import fftconvolve

    s = shot.mean(axis=2)
    t = template.mean(axis=2)
    h, w = t.shape
    sq = np.pad(np.cumsum(np.cumsum(s**2, 0), 1), ((1, 0), (1, 0)))
    window_sq = sq[h:, w:] - sq[:-h, w:] - sq[h:, :-w] + sq[:-h, :-w]
    corr = fftconvolve(s, t[::-1, ::-1], mode="valid")
    return float((window_sq - 2 * corr + (t**2).sum()).min() / (h * w))


@pytest.mark.slow
def test_chromium_shows_the_decoded_images(shard_dir, photo_codes, vq, chromium, tmp_path):
    page = tmp_path / "page.html"
    root = view(shard_dir, page, "--n", "3", "--seed", "0")
    shot = screenshot(chromium, page, tmp_path / "shot.png", tmp_path / "profile")
    shown = [img.get("alt") for doc in frames(root) for img in doc.iter("img")]
    assert shown, "the sample should hold documents with images"
    by_alt = {f"the {name}": codes for name, codes in photo_codes.items()}
    by_alt.update({"a": photo_codes["coffee"], "b": photo_codes["rocket"]})
    pixels = vq.decode(np.array([by_alt[alt] for alt in shown]))
    for alt, image in zip(shown, pixels, strict=True):
        assert image.std() > 10, f"{alt}: decoded image is flat"
        assert best_match(shot, image) < 30.0, f"{alt}: decoded image not found in the screenshot"
    # a blank region has no such match: the check can fail
    assert best_match(np.full_like(shot, 255), pixels[0]) > 30.0
    assert not (shot == MAGENTA).all(axis=2).any(), "a script ran"


@pytest.mark.parametrize(
    "damage", ["truncated", "flipped byte", "truncated, no manifest", "flipped byte, no manifest"]
)
def test_a_damaged_shard_is_one_line_naming_it(tmp_path, capsys, write_document_shards, damage):
    rows = [
        doc_row(f"https://example.org/{i}", f"<html><body><p>Page {i}.</p></body></html>") for i in range(40)
    ]
    write_document_shards(tmp_path, {"train": rows}, n_embed=1024)
    (shard,) = (tmp_path / "data").glob("train-*.parquet")
    raw = bytearray(shard.read_bytes())
    if damage.startswith("flipped byte"):
        # the first page header of the html column: without a manifest only Parquet can notice, and a flip
        # inside values or statistics may still decode
        html = pq.ParquetFile(shard).metadata.row_group(0).column(3)
        raw[html.dictionary_page_offset or html.data_page_offset] ^= 0x01
    else:
        raw = raw[: len(raw) // 2]
    shard.write_bytes(bytes(raw))
    if damage.endswith("no manifest"):
        (tmp_path / "_meta" / "manifest.json").unlink()
    assert view_main([str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"cm3-data view: {shard}: "), err
    assert not (tmp_path / "x.html").exists()


def test_the_report_flags_open_the_viewer_report_section():
    from pipeline.report import build_report

    run = {"inputs": ["a.warc"], "options": {"images": False}, "code_version": "x", "duration_s": 1.0}
    report = build_report({"read.pages.warc": 1}, {"train": {"rows": 1}}, run)
    html_text = render_report(json.loads(json.dumps(report)), None)
    assert html_text.startswith(f"<p class=warn>{report['flags'][0][:30]}")
    assert "<summary>flags</summary>" not in html_text and "<summary>run</summary>" in html_text
