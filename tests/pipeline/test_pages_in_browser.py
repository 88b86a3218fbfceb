"""The pages people look at, loaded in headless Chromium: the funnel report (_meta/report.html) and the shard
viewer (`cm3-data view`) of a real run show every image, log no console error, and show the numbers of
report.json."""

import contextlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline import shards
from pipeline.cli import main
from pipeline.screenshot import open_page, problems, save_screenshot
from pipeline.view import main as view_main

pytestmark = pytest.mark.slow

# The report's tables as the browser renders them: {heading: [[name, number], ...]}.
TABLES = """
const out = {};
for (const h of document.querySelectorAll('h2')) {
  const table = h.nextElementSibling;
  if (table && table.tagName === 'TABLE')
    out[h.innerText] = Array.from(table.rows).map(r => Array.from(r.cells).map(c => c.innerText));
}
return out;
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    """A run on a few pages of the bundled sample corpus and the viewer's page of its shards."""
    root = tmp_path_factory.mktemp("pages")
    output = root / "shards"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "--output", str(output), "--limit", "4", "--no-fetch", "--quiet"]) == 0
    assert view_main([str(output), "--out", str(root / "view.html"), "--n", "6"]) == 0
    report = json.loads(Path(shards.report_json_path(str(output))).read_text())
    return {
        "report": report,
        "report.html": Path(shards.report_html_path(str(output))),
        "view": root / "view.html",
    }


def test_report_page_loads_cleanly_and_shows_the_numbers_of_report_json(browser, pages):
    report = pages["report"]
    page = open_page(browser, pages["report.html"])
    assert problems(page) == []
    texts = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg text')).map(t => t.textContent)"
    )
    assert [[label, int(n)] for label, n in zip(texts[::2], texts[1::2], strict=True)] == [
        [row["stage"], row["docs"]] for row in report["funnel"]
    ]
    raw = browser.execute_script(TABLES)
    languages = raw.pop("Languages")
    assert {code: {"kept": int(kept), "dropped": int(dropped)} for code, kept, dropped in languages[1:]} == (
        report["languages"]
    )
    run = dict(raw.pop("Run"))
    assert run["inputs"].split("\n") == report["run"]["inputs"]
    assert run["code version"] == report["run"]["code_version"] and run["duration"].endswith(" s")
    assert run["option images"] == "true" and run["option limit"] == "4"
    dropped = raw.pop("Dropped by rule")
    assert dropped[0] == ["reason", "counter", "documents"]
    assert {counter: int(n) for _, counter, n in dropped[1:]} == report["dropped"]
    assert all(reason != counter for reason, counter, _ in dropped[1:])  # each in words
    tables = {name: {k: int(v) for k, v in rows} for name, rows in raw.items()}
    assert tables["Written"] == report["written"]
    assert tables["All counters"] == report["counts"]
    images = report["images"]
    assert tables["Images"]["references kept"] == images["refs_kept"] > 0
    padding = browser.execute_script(
        "return Array.from(document.querySelectorAll('th')).map(th => getComputedStyle(th).paddingLeft)"
    )
    assert padding and set(padding) == {"12px"}  # the Languages and Dropped headers are padded as the cells
    assert tables["Images"]["references removed"] == images["refs_removed"]
    assert tables["Images"]["unique image URLs"] == images["unique"]
    for key in ("from_input", "fetched", "data_uri", "codes_written"):
        assert tables["Images"][key] == images[key]


def test_viewer_page_shows_every_decoded_image_and_the_funnel(browser, pages):
    page = open_page(browser, pages["view"])
    assert problems(page) == []
    assert len(page["images"]) >= 2 and all(width > 0 for _, _, width in page["images"])
    funnel = browser.execute_script(
        "return Array.from(document.querySelectorAll('#report table')[0].rows).slice(1)"
        ".map(r => [r.cells[0].innerText, r.cells[1].innerText])"
    )
    assert [[stage, int(n)] for stage, n in funnel] == [
        [r["stage"], r["docs"]] for r in pages["report"]["funnel"]
    ]


def test_the_check_sees_a_broken_image_and_a_console_error(browser, tmp_path):
    """The checks above are not vacuous: a missing image and a script error are both reported."""
    (tmp_path / "bad.html").write_text(
        '<!DOCTYPE html><html><body><img src="missing.png" alt="">'
        '<script>console.error("broken on purpose")</script></body></html>'
    )
    found = problems(open_page(browser, tmp_path / "bad.html"))
    assert len(found) >= 2
    assert any(p.startswith("image did not load: file://") and p.endswith("missing.png") for p in found)
    assert any("broken on purpose" in p for p in found)


def test_a_screenshot_paints_every_frame_down_the_page(browser, tmp_path):
    """The viewer shows each document in a sandboxed frame; frames far below the first screen are painted
    too, not left blank."""
    frame = (
        '<iframe sandbox="" style="display:block;width:600px;height:1500px;border:0" srcdoc="{}"></iframe>'
    )
    body = "".join(
        frame.format(f"&lt;body style='margin:0;background:{c}'&gt;") for c in ("red", "lime", "blue")
    )
    (tmp_path / "frames.html").write_text(f"<!DOCTYPE html><html><body style='margin:0'>{body}</body></html>")
    save_screenshot(browser, tmp_path / "frames.html", tmp_path / "frames.png")
    shot = Image.open(tmp_path / "frames.png").convert("RGB")
    assert [shot.getpixel((300, 750 + 1500 * i)) for i in range(3)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
