"""`cm3-data run --languages`: pages of the selected languages are kept (C4 stays English-only by default),
each row says its language, the funnel counts pages per language, and outputs of the first release
(no `language` or `image_urls` column, manifest beside the shards) still verify and view."""

import contextlib
import hashlib
import io
import json

import pyarrow.parquet as pq
import pytest

from c4_filters import C4Options
from pipeline.cli import main, rule_options
from pipeline.shards import verify
from pipeline.view import main as view_main


def test_languages_build_the_rules():
    c4, _ = rule_options(None, None, "en,de")
    assert c4 == C4Options(language=("de", "en"))
    assert rule_options(None, "fasttext", "all")[0] == C4Options(language="all", language_id="fasttext")


@pytest.mark.parametrize("value", ["en,xx", "klingon", "en,all"])
def test_an_unknown_language_is_one_line_with_exit_2(tmp_path, capsys, value):
    assert main(["run", "--output", str(tmp_path / "out"), "--languages", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cm3-data run: --languages {value}: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def german_too(tmp_path_factory):
    out = tmp_path_factory.mktemp("languages") / "out"
    with contextlib.redirect_stdout(io.StringIO()) as table:
        code = main(["run", "--output", str(out), "--no-images", "--quiet", "--languages", "en,de"])
    assert code == 0
    return out, table.getvalue()


@pytest.mark.slow
def test_a_german_page_is_kept_with_its_language_and_counted(german_too):
    out, table = german_too
    rows = [
        row for path in sorted((out / "data").glob("*.parquet")) for row in pq.read_table(path).to_pylist()
    ]
    languages = [row["language"] for row in rows]
    assert languages.count("de") == 1 and set(languages) == {"de", "en"}
    report = json.loads((out / "_meta" / "report.json").read_text())
    assert report["languages"]["de"] == {"kept": 1, "dropped": 0}
    assert report["languages"]["fr"] == {"kept": 0, "dropped": 1}
    assert report["languages"]["en"]["kept"] == languages.count("en") + report["counts"].get(
        "dedup.url_duplicates_dropped", 0
    )
    assert report["dropped"]["c4.page:not_selected_language"] == 1
    html = (out / "_meta" / "report.html").read_text()
    assert "<h2>Languages</h2>" in html and "<tr><td>de</td><td class=n>1</td><td class=n>0</td></tr>" in html
    assert "\nde " in table
    assert json.loads((out / "_meta" / "manifest.json").read_text())["options"]["c4"]["language"] == [
        "de",
        "en",
    ]
    assert verify(str(out)) == []


@pytest.mark.slow
def test_an_output_of_the_first_release_still_verifies_and_views(german_too, tmp_path, capsys):
    out, _ = german_too
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((out / "_meta" / "manifest.json").read_text())
    del manifest["shards_dir"]
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            table = pq.read_table(out / "data" / shard["file"])
            pq.write_table(
                table.drop_columns(["language", "image_urls", "split"]),
                old / shard["file"],
                compression="zstd",
            )
            shard["sha256"] = hashlib.sha256((old / shard["file"]).read_bytes()).hexdigest()
    (old / "manifest.json").write_text(json.dumps(manifest))  # the first release's layout: no _meta/
    assert verify(str(old)) == []
    assert view_main([str(old), "--out", str(tmp_path / "view.html"), "--n", "3"]) == 0
    assert "<th>language</th><td></td>" in (tmp_path / "view.html").read_text()
