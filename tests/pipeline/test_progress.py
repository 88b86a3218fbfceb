"""Progress lines of a long run: what the job has done so far (pages and their rate, kept, images, shards,
the share of the input read), summed over every process that runs its steps on this machine."""

import contextlib
import io
import multiprocessing
import re
import time

from pipeline import progress
from pipeline.cli import main


def add_in_child(directory: str, counts: dict) -> None:
    import os

    os.environ[progress.ENV] = directory
    progress.add(counts)
    time.sleep(2.5 * progress.WRITE_INTERVAL)  # a worker lives on while its file is written


def test_the_counts_of_every_process_are_summed(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, str(tmp_path))
    monkeypatch.setattr(progress, "_process", None)
    progress.add({"minimize.ok": 3, "c4.kept": 2})
    time.sleep(2.5 * progress.WRITE_INTERVAL)
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=add_in_child, args=(str(tmp_path), {"minimize.ok": 4, progress.SHARDS: 1}))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert progress.totals(str(tmp_path)) == {"minimize.ok": 7, "c4.kept": 2, progress.SHARDS: 1}


def test_a_process_writes_its_counts_within_a_second_and_a_broken_file_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, str(tmp_path))
    monkeypatch.setattr(progress, "_process", None)
    progress.add({"minimize.ok": 1})
    progress.add({"minimize.ok": 1})  # the last count of a process that then idles is written too
    (tmp_path / "99999.json").write_text('{"minimize.ok": ')  # a file caught half-written
    time.sleep(2.5 * progress.WRITE_INTERVAL)
    assert progress.totals(str(tmp_path)) == {"minimize.ok": 2}


def test_without_the_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.add({"minimize.ok": 1})
    progress.file_read(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_the_line_says_what_is_happening():
    counts = {
        "minimize.ok": 48_000,
        "minimize.error.NotHTML": 210,
        "c4.kept": 9_870,
        "images.source.from_input": 1_000,
        "images.source.fetched": 1_310,
        "images.encoded": 2_004,
        progress.SHARDS: 3,
        progress.INPUT_BYTES: 1 << 30,
    }
    line = progress.progress_line(counts, 725, 66.5, 4 << 30)
    assert line == (
        "12m05s: 48,210 pages (66.5/s), 9,870 kept by C4; images 2,310 obtained, 2,004 encoded; "
        "3 shards written; input 25% read (1.0 GB of 4.0 GB), about 36m left"
    )


def test_images_are_left_out_of_a_job_without_them_and_the_estimate_once_all_is_read():
    line = progress.progress_line({"minimize.ok": 10, progress.INPUT_BYTES: 5 << 20}, 30, 0.3, 5 << 20)
    assert (
        line == "0m30s: 10 pages (0.3/s), 0 kept by C4; 0 shards written; input 100% read (5.0 MB of 5.0 MB)"
    )


def test_the_poller_gives_the_rate_since_its_last_line(tmp_path, monkeypatch):
    poller = progress.Poller(str(tmp_path), 0)
    assert poller.line().startswith("still running: ") and "no progress reported yet" in poller.line()
    (tmp_path / "1.json").write_text('{"minimize.ok": 100}')
    assert re.match(r"\d+m\d\ds: 100 pages \([\d.]+/s\)", poller.line())
    assert "the workers are elsewhere" in progress.Poller(None, 0).line()


def test_a_running_job_prints_progress_lines(tmp_path, monkeypatch):
    """The in-process runner on the sample corpus, a line every 0.2 s: they count pages as they go."""
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.2)
    monkeypatch.setattr(progress, "WRITE_INTERVAL", 0.05)  # the sample job runs in a second or two
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "--output", str(tmp_path / "out"), "--no-images"]) == 0
    lines = [line for line in err.getvalue().splitlines() if re.search(r"\d+m\d\ds: [\d,]+ pages", line)]
    assert lines, err.getvalue()
    last = lines[-1]
    assert re.search(
        r"[1-9][\d,]* pages \([\d.]+/s\), \d+ kept by C4; \d+ shards written; input \d+% read", last
    )
