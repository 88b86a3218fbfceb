"""Shard writer, manifest and verify: deterministic bytes, atomic idempotent writes, tampering detected."""

import hashlib
import io
import json

import lxml.html
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import shards
from pipeline.report import build_report, report_html, report_json, report_table


def row(url: str, html: str = "<html><body><p>Text.</p></body></html>") -> dict:
    from c4_filters import stable_hash

    return {
        "id": f"{stable_hash(url):016x}",
        "url": url,
        "source": "warc",
        "html": html,
        "n_images": 0,
        "n_chars": len(html),
        "lang_score": 0.999,
        "language": "en",
        "image_urls": [],
    }


ROWS = [row(f"https://s.example/{i}") for i in range(20)]


def shard_bytes(rows, buffer_bytes=None) -> bytes:
    stream = io.BytesIO()
    shards.write_parquet(stream, shards.sorted_rows(rows, buffer_bytes))
    return stream.getvalue()


def test_shard_bytes_do_not_depend_on_row_order():
    assert shard_bytes(ROWS) == shard_bytes(list(reversed(ROWS)))
    table = pq.read_table(pa.BufferReader(shard_bytes(ROWS)))
    assert table.schema.equals(shards.SCHEMA, check_metadata=False)
    assert table.column("id").to_pylist() == sorted(r["id"] for r in ROWS)
    assert pq.read_metadata(pa.BufferReader(shard_bytes(ROWS))).row_group(0).column(0).compression == "ZSTD"


def test_streamed_shard_is_the_file_pyarrow_writes_in_one_go():
    """Row group by row group, the writer gives the bytes of pq.write_table on the whole sorted table."""
    rows = [row(f"https://s.example/{i}", "<p>" + "word " * (i % 97) + "</p>") for i in range(2500)]
    whole = io.BytesIO()
    ordered = pa.Table.from_pylist(sorted(rows, key=shards.row_key), schema=shards.SCHEMA)
    pq.write_table(ordered, whole, compression="zstd", row_group_size=shards.ROW_GROUP_ROWS)
    assert shard_bytes(rows) == whole.getvalue()
    assert pq.read_metadata(pa.BufferReader(whole.getvalue())).num_row_groups == 3
    empty = io.BytesIO()
    pq.write_table(ordered.slice(0, 0), empty, compression="zstd")
    assert shard_bytes([]) == empty.getvalue()


@given(st.lists(st.integers(0, 10**6), max_size=300), st.integers(1, 5000))
@settings(max_examples=30, deadline=None)
def test_external_sort_spills_yet_gives_the_sorted_rows(keys, buffer_bytes):
    rows = [row(f"https://s.example/{k}/{i}") for i, k in enumerate(keys)]
    assert list(shards.sorted_rows(iter(rows), buffer_bytes)) == sorted(rows, key=shards.row_key)


def test_a_shard_spilled_to_disk_has_the_bytes_of_one_sorted_in_memory(tmp_path):
    rows = [row(f"https://s.example/{i}", "<p>" + "x" * (i % 300) + "</p>") for i in range(3000)]
    spilled = shards.write_shard(str(tmp_path / "a"), "train", 0, 1, iter(rows), buffer_bytes=20_000)
    in_memory = shards.write_shard(str(tmp_path / "b"), "train", 0, 1, reversed(rows))
    assert spilled == in_memory and spilled["rows"] == 3000
    assert spilled["bytes"] == (tmp_path / "a" / "data" / spilled["file"]).stat().st_size


def test_write_shard_is_atomic_and_idempotent(tmp_path):
    first = shards.write_shard(str(tmp_path), "train", 0, 2, ROWS[:10])
    again = shards.write_shard(str(tmp_path), "train", 0, 2, list(reversed(ROWS[:10])))
    assert first == again
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "train-00000-of-00002.parquet"
    ]  # no temp
    data = (tmp_path / "data" / first["file"]).read_bytes()
    assert set(pq.read_table(pa.BufferReader(data))["split"].to_pylist()) == {"train"}
    assert hashlib.sha256(data).hexdigest() == first["sha256"] and first["rows"] == 10


def make_output(tmp_path) -> dict:
    written = [shards.write_shard(str(tmp_path), "train", 1, 3, ROWS[:15])]
    written.append(shards.write_shard(str(tmp_path), "validation", 0, 1, ROWS[15:]))
    (tmp_path / "data" / "train-00007-of-00009.parquet").write_bytes(b"stale shard of an older run")
    (tmp_path / "data" / "train-00001-of-00003.parquet.tmp-dead").write_bytes(b"temp of a crashed bundle")
    splits = shards.finish_shards(str(tmp_path), written, {"train": 3, "validation": 1})
    manifest = {
        "format": shards.FORMAT,
        "splits": splits,
        "image_codes": {"n_embed": 1024, "codes_per_image": 256, "vqgan": {"checkpoint": "x", "sha256": "y"}},
        "options": {},
        "metrics": {},
        "code_version": "test",
    }
    shards.write_manifest(str(tmp_path), manifest)
    return manifest


def test_finish_fills_empty_shards_and_removes_stale_files(tmp_path):
    manifest = make_output(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        "_meta/manifest.json",
        "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    assert manifest["splits"]["train"]["rows"] == 15 and manifest["splits"]["validation"]["rows"] == 5
    assert [s["rows"] for s in manifest["splits"]["train"]["shards"]] == [0, 15, 0]
    assert shards.verify(str(tmp_path)) == []


def older_layout(tmp_path, meta_beside: bool) -> None:
    """An output as the earlier releases wrote it: shards directly in it, without `split` column or
    `shards_dir`, the manifest in `_meta/` or (the first layout) beside the shards."""
    manifest = make_output(tmp_path)
    manifest.pop("shards_dir", None)
    for shard in (tmp_path / "data").iterdir():
        table = pq.read_table(shard).drop_columns(["split"])
        pq.write_table(table, tmp_path / shard.name, compression="zstd")
        shard.unlink()
        entry = next(
            s for info in manifest["splits"].values() for s in info["shards"] if s["file"] == shard.name
        )
        entry["sha256"] = hashlib.sha256((tmp_path / shard.name).read_bytes()).hexdigest()
    (tmp_path / "data").rmdir()
    (tmp_path / "_meta" / "manifest.json").write_bytes(shards.manifest_json(manifest))
    if meta_beside:
        (tmp_path / "_meta" / "manifest.json").rename(tmp_path / "manifest.json")
        (tmp_path / "_meta").rmdir()


@pytest.mark.parametrize("meta_beside", [True, False], ids=["manifest-beside", "meta-folder"])
def test_an_output_of_an_older_layout_is_verified_with_a_note_on_moving_it(tmp_path, capsys, meta_beside):
    """Shards directly in the output (their metadata beside them, or in _meta/): still verified, and
    `verify` prints the one line that moves it; once moved, it is the current layout (same manifest)."""
    from pipeline.cli import main

    make_output(tmp_path)
    assert shards.legacy_layout_note(str(tmp_path)) is None
    older_layout(tmp_path, meta_beside)
    assert shards.find_manifest(str(tmp_path)).endswith("/manifest.json")
    assert shards.verify(str(tmp_path)) == []
    assert main(["verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"note: {tmp_path} has an older layout") and "mv *.parquet data/" in out[0]
    assert ("mv manifest.json report.json report.html _meta/" in out[0]) == meta_beside
    assert out[1] == f"{tmp_path}: OK"
    (tmp_path / "_meta").mkdir(exist_ok=True)
    if meta_beside:
        (tmp_path / "manifest.json").rename(tmp_path / "_meta" / "manifest.json")
    (tmp_path / "data").mkdir()
    for shard in tmp_path.glob("*.parquet"):
        shard.rename(tmp_path / "data" / shard.name)
    assert shards.legacy_layout_note(str(tmp_path)) is None and shards.verify(str(tmp_path)) == []


def test_verify_checks_the_split_column(tmp_path):
    make_output(tmp_path)
    target = tmp_path / "data" / "validation-00000-of-00001.parquet"
    table = pq.read_table(target)
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(["train"] * len(table)))
    pq.write_table(table, target)
    assert any("split column is not validation" in p for p in shards.verify(str(tmp_path)))


def test_verify_detects_tampering(tmp_path):
    make_output(tmp_path)
    target = tmp_path / "data" / "train-00001-of-00003.parquet"
    target.write_bytes(shard_bytes([{**r, "split": "train"} for r in ROWS[:14]]))
    problems = shards.verify(str(tmp_path))
    assert any("sha256" in p for p in problems) and any("rows" in p for p in problems)
    target.unlink()
    assert any("missing" in p for p in shards.verify(str(tmp_path)))
    (tmp_path / "data" / "train-00005-of-00009.parquet").write_bytes(b"")
    assert any("not listed" in p for p in shards.verify(str(tmp_path)))
    (tmp_path / "data" / "notes.txt").write_text("pandas.read_parquet(directory) would fail on this")
    assert "notes.txt: not a shard, yet readers of the directory as a dataset would read it" in shards.verify(
        str(tmp_path)
    )
    (tmp_path / "README.txt").write_text("polars.scan_parquet(directory) would fail on this")
    assert "README.txt: not part of a cm3-docs output (only data/ and _meta/ are)" in shards.verify(
        str(tmp_path)
    )
    (tmp_path / "_meta" / "manifest.json").unlink()
    assert shards.verify(str(tmp_path))[0].endswith("(unfinished or not a cm3-docs output)")


@pytest.mark.parametrize("damage", ["truncate", "flip-data", "flip-footer"])
def test_verify_reports_a_damaged_shard_as_fail_lines(tmp_path, damage):
    """A damaged shard is FAIL lines (sha256, and unreadable Parquet where it is), never an exception."""
    make_output(tmp_path)
    target = tmp_path / "data" / "train-00001-of-00003.parquet"
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3 if damage == "flip-data" else -12] ^= 0xFF
    target.write_bytes(bytes(data))
    problems = shards.verify(str(tmp_path))
    assert any(p.startswith(f"{target.name}: sha256 differs") for p in problems)
    if damage == "truncate":
        assert any(p.startswith(f"{target.name}: not a readable Parquet file") for p in problems)


def test_verify_checks_image_codes_and_ids(tmp_path):
    codes = " ".join(["7"] * 256)
    good = row("https://s.example/img", f'<html><body><p>x</p><img alt="a" src="{codes}"></body></html>')
    bad = row("https://s.example/raw", '<html><body><img src="https://s.example/a.jpg"></body></html>')
    wrong_id = dict(row("https://s.example/w"), id="0" * 16)
    written = [shards.write_shard(str(tmp_path), "train", 0, 1, [good, bad, wrong_id])]
    splits = shards.finish_shards(str(tmp_path), written, {"train": 1, "validation": 1})
    shards.write_manifest(
        str(tmp_path), {"format": shards.FORMAT, "splits": splits, "image_codes": {"n_embed": 16}}
    )
    problems = shards.verify(str(tmp_path))
    assert len(problems) == 2
    assert any("https://s.example/raw" in p and "code string" in p for p in problems)
    assert any("not the hash of its url" in p for p in problems)
    assert shards.verify(str(tmp_path), check_content=False) == []


def test_report_from_counts():
    counts = {
        "read.pages.warc": 10,
        "read.pages.wikipedia": 2,
        "minimize.ok": 11,
        "minimize.error.NotHTML": 1,
        "c4.kept": 8,
        "c4.page:too_few_sentences": 2,
        "c4.page:language": 1,
        "dedup.url_duplicates_dropped": 1,
        "dedup.span_docs_dropped": 1,
        "images.unique": 3,
        "images.encoded": 2,
        "images.failed.decode_error": 1,
    }
    report = build_report(counts, {"train": {"rows": 5}, "validation": {"rows": 1}})
    assert [r["docs"] for r in report["funnel"]] == [12, 11, 8, 7, 7, 6, 6]
    assert report["dropped"]["c4.page:too_few_sentences"] == 2
    assert report["images"]["failed"] == {"decode_error": 1}
    text = report_table(report)
    assert "after span dedup" in text and "failed: decode_error" in text
    page = report_html(report).decode()
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "src=" not in page and "<link" not in page
    assert json.loads(report_json(report)) == report
    assert report_html(report) == report_html(build_report(dict(reversed(counts.items())), report_splits()))


RUN = {
    "inputs": ["crawl/a.warc.gz", "pages/*.html"],
    "options": {"images": True, "validation_fraction": 0.05, "c4": {"language": ["en"]}},
    "code_version": "cm3-data 0.1.0 (abc1234)",
    "duration_s": 83.4,
}


def test_report_says_what_produced_it_and_names_drop_reasons_in_words():
    counts = {
        "read.pages.warc": 10,
        "minimize.ok": 9,
        "minimize.error.NotHTML": 1,
        "c4.kept": 7,
        "c4.page:not_english": 1,
        "c4.page:not_de": 1,
        "c4.page:some_future_rule": 1,
        "images.unique": 10,
        "images.encoded": 9,
        "images.failed.fetch_error": 1,
    }
    report = build_report(counts, report_splits(), RUN)
    assert report["run"] == RUN and report["flags"] == []  # 10% of images failed: not flagged
    page = lxml.html.fromstring(report_html(report))
    rows = {
        tr[0].text_content(): tr[1].text_content()
        for tr in page.xpath("//h2[.='Run']/following-sibling::table[1]/tr")
    }
    assert rows["inputs"] == "crawl/a.warc.gz\npages/*.html" and rows["duration"] == "1 min 23 s"
    assert rows["code version"] == "cm3-data 0.1.0 (abc1234)" and rows["option images"] == "true"
    assert rows["option c4"] == '{"language": ["en"]}'
    dropped = page.xpath("//h2[.='Dropped by rule']/following-sibling::table[1]/tr")
    assert [th.text_content() for th in dropped[0]] == ["reason", "counter", "documents"]
    reasons = {tr[1].text_content(): tr[0].text_content() for tr in dropped[1:]}
    assert reasons == {
        "c4.page:not_de": "not in language de (the language rule)",
        "c4.page:not_english": "not English (C4's language rule)",
        "c4.page:some_future_rule": "c4.page:some_future_rule",  # a new rule shows its counter name
        "minimize.error.NotHTML": "not HTML (binary data, no markup, or an unreadable charset)",
    }
    table = report_table(report).splitlines()
    assert any(line.startswith("not English (C4's language rule) ") for line in table)
    long = next(line for line in table if line.startswith("not HTML"))  # whole, its count aligned
    assert long.startswith("not HTML (binary data, no markup, or an unreadable charset)  ")
    assert len(long) == len(next(line for line in table if line.startswith("not English")))
    style = page.xpath("//style")[0].text
    assert "td,th{border-bottom:1px solid #ddd;padding:3px 12px}" in style  # the Languages header too


def test_report_flags_images_off_and_a_high_image_failure_share():
    counts = {
        "images.unique": 10,
        "images.encoded": 6,
        "images.failed.fetch_error": 3,
        "images.failed.decode": 1,
    }
    failing = build_report(counts, report_splits(), RUN)
    assert failing["flags"] == [
        "4 of 10 images (40%) failed to load or decode (most: fetch_error); their <img> elements were removed."
    ]
    off = build_report({}, report_splits(), {**RUN, "options": {**RUN["options"], "images": False}})
    assert len(off["flags"]) == 1 and off["flags"][0].startswith("Images were off (--no-images)")
    for report in (failing, off):
        page = lxml.html.fromstring(report_html(report))
        assert [p.text_content() for p in page.xpath("//p[@class='flag']")] == report["flags"]
        assert report_table(report).startswith(f"NOTE: {report['flags'][0]}")


def report_splits():
    return {"train": {"rows": 5}, "validation": {"rows": 1}}


@pytest.mark.parametrize("name", ["train-00000-of-00001.parquet", "validation-00003-of-00010.parquet"])
def test_shard_names(name):
    assert shards.SHARD_NAME.match(name)
