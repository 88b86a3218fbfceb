"""End to end: `cm3-data run` on the bundled corpus + the real WARC files gives verified shards with the
same bytes on DirectRunner (in-process and multi_processing) and Dask; hostile inputs are counted; Beam
metrics agree with the funnel computed from data; re-runs into a finished output are refused."""

import contextlib
import io
import json
import re
from pathlib import Path

import lxml.html
import pyarrow.parquet as pq
import pytest

import c4_filters
from dataflow import local_dask_cluster
from html_minimizer import MinimizeError
from image_tokenizer import resolve_device
from pipeline import counters
from pipeline.cli import main, nothing_read, sample_inputs
from pipeline.environment import environment
from pipeline.make_sample_corpus import SYNDICATED
from pipeline.report import DROP_REASONS, build_report, fetch_failure, read_losses
from pipeline.shards import manifest_path, report_html_path, report_json_path, verify

pytestmark = pytest.mark.slow

BASE = [
    "--no-fetch",
    "--train-shards",
    "3",
    "--validation-shards",
    "1",
    "--validation-fraction",
    "0.2",
    "--quiet",
]


def run(output: Path, *extra: str) -> int:
    return main(["run", "--output", str(output), *BASE, *extra])


def rerun_like(reference: Path, output: Path, *extra: str) -> int:
    """Run again with the reference run's inputs (from its manifest) and extra runner flags."""
    inputs = read_json(manifest_path(str(reference)))["options"]["inputs"]
    return run(output, *[arg for path in inputs for arg in ("--input", path)], *extra)


def read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def shard_files(output: Path) -> dict[str, bytes]:
    """Every file of an output (data/ and _meta/), by its path inside it; the reports without the run's
    duration, the one value that differs between runs (pipeline/README.md, Determinism)."""
    files = {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}
    report = json.loads(files["_meta/report.json"])
    assert report["run"].pop("duration_s") > 0
    files["_meta/report.json"] = json.dumps(report).encode()
    files["_meta/report.html"], n = DURATION_ROW.subn(b"", files["_meta/report.html"])
    assert n == 1
    return files


DURATION_ROW = re.compile(rb"<tr><td>duration</td><td class=v>[^<]*</td></tr>")
RUN_TABLE = re.compile(rb"<h2>Run</h2><table>.*?</table>", re.DOTALL)


def documents(output: Path) -> list[dict]:
    rows = []
    for path in sorted((output / "data").glob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, shared_dir) -> Path:
    """The bundled corpus plus the real WARC files, DirectRunner in-process (the reference run)."""
    output = tmp_path_factory.mktemp("direct") / "shards"
    inputs = [*sample_inputs(), str(shared_dir / "data" / "warc" / "*.warc*")]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run(output, *[arg for path in inputs for arg in ("--input", path)]) == 0
    assert "counters agree with the data counts" in stdout.getvalue()  # Beam metrics == funnel from data
    return output


def test_sample_corpus_gives_verified_shards(sample_run):
    assert verify(str(sample_run)) == []
    manifest = read_json(manifest_path(str(sample_run)))
    assert manifest["format"] == "cm3-docs/1"
    assert (
        len(manifest["splits"]["train"]["shards"]) == 3
        and len(manifest["splits"]["validation"]["shards"]) == 1
    )
    assert manifest["splits"]["train"]["rows"] > 0 and manifest["splits"]["validation"]["rows"] > 0
    assert manifest["image_codes"]["codes_per_image"] == 256
    assert manifest["environment"] == environment()  # version, lock sha256, the packages' versions
    assert Path(report_html_path(str(sample_run))).read_text().count("<svg") == 1
    run = read_json(report_json_path(str(sample_run)))["run"]
    assert run["inputs"] == manifest["options"]["inputs"] and run["code_version"] == manifest["code_version"]
    assert run["options"] == {k: v for k, v in manifest["options"].items() if k != "inputs"}
    assert 0 < run["duration_s"] < 3600


def test_sample_corpus_rules_were_applied(sample_run):
    docs = documents(sample_run)
    urls = [d["url"] for d in docs]
    assert len(urls) == len(set(urls))  # URL dedup
    text = " ".join(d["html"] for d in docs)
    assert text.count("Temperatures should climb to nineteen degrees") <= 1  # three-sentence span dedup
    assert SYNDICATED.split(". ")[0] in text  # ... which keeps one copy
    for gone in ("Stadtfest", "marché", "Lorem ipsum", "uses cookies", "Subscribe", "Page not found"):
        assert gone not in text
    assert any("wikipedia.org" in u for u in urls) and any("harbourtown-herald" in u for u in urls)
    assert sum(d["n_images"] for d in docs) >= 8
    assert "https://media." not in text and "data:image" not in text  # every kept <img> carries codes
    report = read_json(report_json_path(str(sample_run)))
    counts = report["counts"]
    assert counts["dedup.url_duplicates_dropped"] >= 1
    assert counts["read.broken_or_truncated_record"] >= 1  # example-trunc.warc
    assert counts["dedup.span_blocks_dropped"] >= 3
    assert counts["images.records_unused"] >= 1  # the colour wheel photo no page shows
    assert any(name.startswith("images.failed.decode") for name in counts)  # the damaged JPEG record
    assert counts["images.source.data_uri"] == 1  # the inline data: URI image was decoded too ...
    assert counts["images.filtered.too_small"] >= 1  # ... and removed: it is smaller than --min-image-side
    assert counts["minimize.error.NotHTML"] == 1  # the binary record served as text/html
    assert not any(name.startswith("error.") for name in counts)  # no stage needed its safety net
    assert report["images"]["codes_written"] == counts["images.encoded"] >= 10
    failed = sum(n for name, n in counts.items() if name.startswith(("images.failed.", "images.filtered.")))
    shared = counts.get("images.near_duplicate_urls", 0)  # codes of another URL's identical picture
    assert counts["images.unique"] == counts["images.encoded"] + shared + failed  # each resolved once
    references = counts["images.refs_kept"] + counts["images.refs_removed"]
    assert references > counts["images.unique"]  # some images are shared by several documents
    assert report["funnel"][-1]["docs"] == len(docs)


def names_the_report_reads() -> tuple[set[str], set[str]]:
    """(exact counter names, name prefixes) the report and the console lines look up, recorded by running
    them on a counts mapping that notes every lookup and every prefix test of a name."""
    exact: set[str] = set(DROP_REASONS)
    prefixes: set[str] = set()

    class Name(str):
        def startswith(self, prefix, *args) -> bool:
            prefixes.update((prefix,) if isinstance(prefix, str) else prefix)
            return False

    class Counts(dict):
        def get(self, name, default=None):
            exact.add(name)
            return super().get(name, default)

        def __getitem__(self, name):
            exact.add(name)
            return super().__getitem__(name)

    counts = Counts({Name("probe"): 1})
    build_report(counts, {"train": {"rows": 0}})
    read_losses(counts)
    fetch_failure(counts, 0.0, 0)
    nothing_read(["in/*"], 1, counts)
    return exact, prefixes


def counted_by_the_code(name: str) -> bool:
    """A name some producer counts, by reading the code: a `counters` constant a step counts under, the name
    of a MinimizeError subclass after minimize.error., a C4 page rule c4_filters names after c4.page:."""
    producers = "\n".join(
        path.read_text()
        for path in Path(counters.__file__).parent.glob("*.py")
        if path.name not in ("counters.py", "report.py")
    )
    constants = [const for const, value in vars(counters).items() if value == name and const.isupper()]
    if any(re.search(rf"counters\.{const}\b", producers) for const in constants):
        return True
    if name.startswith(counters.MINIMIZE_ERROR):
        subclasses, found = [MinimizeError], set()
        while subclasses:
            for subclass in subclasses.pop().__subclasses__():
                found.add(subclass.__name__)
                subclasses.append(subclass)
        return name[len(counters.MINIMIZE_ERROR) :] in found
    if name.startswith(counters.C4_PAGE):
        rule = '"page:' + name[len(counters.C4_PAGE) :] + '"'
        return any(rule in path.read_text() for path in Path(c4_filters.__file__).parent.glob("*.py"))
    return False


def test_every_counter_the_report_reads_is_counted(sample_run):
    """A funnel row reads 0 when its name is misspelt: each name the report reads is counted by the sample
    run, or (crashes, fetches, rules the sample corpus does not trip) by a producer found in the code."""
    exact, prefixes = names_the_report_reads()
    assert counters.READ_PAGES in prefixes and counters.MINIMIZE_OK in exact  # the probe sees the funnel
    counts = read_json(report_json_path(str(sample_run)))["counts"]
    not_in_sample = sorted(
        [name for name in exact if name not in counts]
        + [prefix for prefix in prefixes if not any(name.startswith(prefix) for name in counts)]
    )
    assert len(not_in_sample) < len(exact | prefixes) / 2  # the sample run is the main witness
    assert [name for name in not_in_sample if not counted_by_the_code(name)] == []


def test_every_parquet_reader_opens_the_output_directory(sample_run, tmp_path):
    """data/ holds only shards, so each reader's plain call on it reads every document (polars and DuckDB's
    `**` read every file under the path: the metadata in _meta/ must lie outside it); pandas,
    pyarrow.dataset and Hugging Face `datasets` also open the output folder itself (they skip _meta/). The
    `split` column keeps train and validation apart in readers that read both."""
    import datasets
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    data = sample_run / "data"
    docs = documents(sample_run)
    ids = sorted(d["id"] for d in docs)
    manifest = read_json(manifest_path(str(sample_run)))
    by_split = {split: manifest["splits"][split]["rows"] for split in ("train", "validation")}
    assert all(by_split.values()) and {d["split"] for d in docs} == set(by_split)
    for folder in (data, sample_run):
        assert sorted(pd.read_parquet(folder)["id"]) == ids
        assert sorted(ds.dataset(folder, format="parquet").to_table()["id"].to_pylist()) == ids
        splits = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
        assert {split: splits[split].num_rows for split in splits} == by_split
        assert set(splits["validation"]["split"]) == {"validation"}
    assert sorted(pl.scan_parquet(data).select("id").collect()["id"]) == ids
    assert sorted(pl.read_parquet(data)["id"]) == ids
    for pattern in ("*", "**", "*.parquet"):
        rows = duckdb.sql(f"SELECT id FROM read_parquet('{data}/{pattern}')").fetchall()
        assert sorted(row[0] for row in rows) == ids
    counts = duckdb.sql(f"SELECT split, count(*) FROM read_parquet('{data}/**') GROUP BY split").fetchall()
    assert dict(counts) == by_split
    for split, n in by_split.items():
        ((found,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{data}/{split}-*.parquet')").fetchall()
        assert found == n
    assert (
        pl.scan_parquet(data).filter(pl.col("split") == "train").select(pl.len()).collect().item()
        == (by_split["train"])
    )


def test_references_kept_equal_the_img_elements_written(sample_run):
    report = read_json(report_json_path(str(sample_run)))
    written = sum(len(lxml.html.document_fromstring(d["html"]).xpath("//img")) for d in documents(sample_run))
    assert report["images"]["refs_kept"] == report["counts"]["images.refs_kept"] == written > 0


def test_rerun_into_a_finished_output_is_refused(sample_run, tmp_path):
    before = shard_files(sample_run)
    assert rerun_like(sample_run, sample_run) == 3
    assert shard_files(sample_run) == before
    assert run(tmp_path / "x", "--input", str(tmp_path / "nothing-*.warc")) == 2  # no input matches
    assert run(tmp_path / "y", "--vqgan-checkpoint", str(tmp_path / "missing.ckpt")) == 2


def test_same_bytes_on_direct_multiprocessing_and_dask(sample_run, tmp_path):
    expected = shard_files(sample_run)
    multi = tmp_path / "multi"
    assert (
        rerun_like(sample_run, multi, "--direct_running_mode=multi_processing", "--direct_num_workers=2") == 0
    )
    assert shard_files(multi) == expected
    with local_dask_cluster(2) as address:
        dask = tmp_path / "dask"
        assert rerun_like(sample_run, dask, "--runner=DaskRunner", f"--dask_client_address={address}") == 0
    assert verify(str(dask)) == []
    assert shard_files(dask) == expected


CODE_SRC = re.compile(r'src="([0-9 ]+)"')


def test_image_batch_size_changes_at_most_rare_near_tie_codes(sample_run, tmp_path):
    """The reference ran with the defaults (--vqgan-device auto: batch 1 on the CPU). Batches of 4 give the
    same documents, counts and report; VQGAN codes may differ only where two codebook entries are near-ties
    in float32 (the encoder's conv kernels round differently per batch shape): 1 code of 3840 in this
    corpus. So the batch size is an output option (in the manifest), fixed per device.
    """
    reference = sample_run
    if resolve_device("auto") != "cpu":  # the reference encoded on this machine's GPU: compare CPU with CPU
        reference = tmp_path / "cpu-batch-1"
        assert rerun_like(sample_run, reference, "--vqgan-device", "cpu") == 0
    batch_4 = tmp_path / "cpu-batch-4"
    flags = ("--vqgan-device", "cpu", "--image-batch-size", "4")
    assert rerun_like(sample_run, batch_4, *flags) == 0
    reports = [json.loads(Path(report_json_path(str(out))).read_text()) for out in (reference, batch_4)]
    assert [r.pop("run")["options"]["image_batch_size"] for r in reports] == [1, 4]
    assert reports[0] == reports[1]
    pages = [
        RUN_TABLE.subn(b"", Path(report_html_path(str(out))).read_bytes()) for out in (reference, batch_4)
    ]
    assert pages[0] == pages[1] and pages[0][1] == 1
    manifest, manifest_4 = (read_json(manifest_path(str(out))) for out in (reference, batch_4))
    assert manifest_4["metrics"] == manifest["metrics"]
    assert manifest_4["options"]["image_batch_size"] == 4 and manifest["options"]["image_batch_size"] == 1
    assert [s["rows"] for s in manifest_4["splits"]["train"]["shards"]] == [
        s["rows"] for s in manifest["splits"]["train"]["shards"]
    ]
    rows, rows_4 = documents(reference), documents(batch_4)
    codes, codes_4 = [], []
    for row, row_4 in zip(rows, rows_4, strict=True):
        assert CODE_SRC.sub("", row["html"]) == CODE_SRC.sub("", row_4["html"])
        assert (row["id"], row["n_images"], row["lang_score"]) == (
            row_4["id"],
            row_4["n_images"],
            row_4["lang_score"],
        )
        codes += " ".join(CODE_SRC.findall(row["html"])).split()
        codes_4 += " ".join(CODE_SRC.findall(row_4["html"])).split()
    assert len(codes) == len(codes_4) >= 10 * 256
    assert sum(a != b for a, b in zip(codes, codes_4, strict=True)) <= len(codes) // 1000


def test_real_warc_files_and_hostile_inputs(shared_dir, tmp_path):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "garbage.warc.gz").write_bytes(b"\x1f\x8b\x08" + bytes(range(256)) * 4)
    (hostile / "garbage.warc").write_bytes(b"not a warc at all\n" * 50)
    (hostile / "empty.html").write_bytes(b"")
    (hostile / "binary.html").write_bytes(bytes(range(256)) * 16)
    output = tmp_path / "out"
    code = run(
        output,
        "--input",
        str(shared_dir / "data" / "warc" / "*.warc*"),
        "--input",
        str(hostile / "*"),
        "--no-images",
    )
    assert code == 0
    assert verify(str(output)) == []
    counts = read_json(report_json_path(str(output)))["counts"]
    assert counts["read.files.warc"] == 12
    assert counts["read.broken_or_truncated_record"] >= 2 and counts["read.broken_gzip_member"] == 1
    assert counts["read.pages.warc"] == 8  # one page in each WARC that has a response/resource page
    flags = read_json(report_json_path(str(output)))["flags"]
    assert flags[0].startswith("Images were off (--no-images)")
    assert "Images were off (--no-images)" in Path(report_html_path(str(output))).read_text()
    assert sum(n for name, n in counts.items() if name.startswith("minimize.error.")) >= 1
