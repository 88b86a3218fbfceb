"""An opt-out replay never deletes or damages its source, and never launders a damaged source: the new
output must be another directory however the two are spelt, and the source must pass `verify` first."""

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.shards import verify

PAGE = "<html><body><p>A harbour story that is long enough to keep. It has two sentences.</p></body></html>"


@pytest.fixture
def source(tmp_path, write_document_shards) -> Path:
    rows = [{"url": f"https://site.example/{i}", "html": PAGE, "lang_score": 0.9} for i in range(6)]
    out = write_document_shards(tmp_path / "src", {"train": rows[:4], "validation": rows[4:]}, n_embed=16)
    (tmp_path / "urls.txt").write_text("https://site.example/1\n")
    return out


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def optout(source: Path, out: str, *extra: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["optout", str(source), "--urls", str(source.parent / "urls.txt"), "--out", out, *extra])
    return code, err.getvalue()


@pytest.mark.parametrize("spelling", ["{src}/.", "{src}/", "./src", "../{name}/src", "link", "{src}/data/.."])
def test_the_source_under_another_spelling_is_refused_and_kept(source, spelling, monkeypatch):
    (source.parent / "link").symlink_to(source)
    monkeypatch.chdir(source.parent)
    before = files(source)
    out = spelling.format(src=source, name=source.parent.name)
    code, err = optout(source, out, "--overwrite")
    assert code == 2 and err.count("\n") == 1 and "must differ" in err
    assert files(source) == before and verify(str(source)) == []


def test_an_output_inside_the_source_or_holding_it_is_refused_before_anything_is_written(source):
    before = files(source)
    code, err = optout(source, str(source / "new"), "--overwrite")
    assert code == 2 and "lies inside the output being replayed" in err and err.count("\n") == 1
    code, err = optout(source, str(source.parent), "--overwrite")
    assert code == 2 and "holds the output being replayed" in err and err.count("\n") == 1
    assert files(source) == before and sorted(p.name for p in source.parent.iterdir()) == ["src", "urls.txt"]


def test_a_clean_replay_still_works(source, tmp_path):
    code, err = optout(source, str(tmp_path / "new"))
    assert (code, err) == (0, "") and verify(str(tmp_path / "new")) == []


def _first_shard(source: Path) -> Path:
    return source / "data" / "train-00000-of-00001.parquet"


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_source_is_refused_in_one_line_and_nothing_is_written(source, tmp_path, damage):
    shard = _first_shard(source)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 2]
    shard.write_bytes(bytes(data))
    code, err = optout(source, str(tmp_path / "new"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "fails verification" in err and "train-00000-of-00001.parquet" in err
    assert not (tmp_path / "new").exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.pop("splits"),
        lambda m: m["splits"]["train"]["shards"][0].pop("sha256"),
        lambda m: m["splits"]["train"].update(shards=None),
        lambda m: m["splits"]["train"]["shards"][0].update(rows="4"),
        lambda m: m["splits"].update(train=[1]),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_fail_lines_not_a_key_error(source, tmp_path, change, capsys):
    path = source / "_meta" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    problems = verify(str(source))
    assert problems and all("manifest.json" in problem for problem in problems)
    assert main(["verify", str(source)]) == 1
    out = capsys.readouterr()
    assert out.out.startswith("FAIL ") and "problem(s)" in out.out and out.err == ""
    code, err = optout(source, str(tmp_path / "new"))
    assert code == 2 and err.count("\n") == 1 and "manifest.json" in err


def test_a_manifest_nested_thousands_deep_is_a_fail_line(source):
    (source / "_meta" / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    (problem,) = verify(str(source))
    assert "is not JSON" in problem and "\n" not in problem


def test_run_refuses_an_output_that_is_an_input_folder_however_spelt(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.html").write_text(PAGE)
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--input", "in/a.html", "--output", os.path.join("in", "."), "--overwrite"])
    assert code == 2 and "would delete inputs" in err.getvalue()
    assert (tmp_path / "in" / "a.html").read_text() == PAGE
