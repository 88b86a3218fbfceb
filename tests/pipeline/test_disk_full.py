"""A full disk (ENOSPC) or an exhausted quota (EDQUOT) during `cm3-data run` is one line naming the output
and its free space, a non-zero exit, and no partial output published, however deep in Beam it happened."""

import contextlib
import errno
import io
import os

import pytest

from pipeline import shards
from pipeline.cli import disk_full_error, main
from pipeline.make_sample_corpus import TEXT

PAGE = (
    "<html><body><article>"
    + "".join(f"<p>{p}</p>" for p in TEXT["news"][0]["paragraphs"])
    + "</article></body></html>"
)


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("where", ["shard", "manifest"])
def test_a_full_disk_during_the_run_is_one_line_and_nothing_is_published(tmp_path, monkeypatch, code, where):
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the previous output")

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(shards, "write_parquet" if where == "shard" else "write_manifest", full)
    status, err = run(
        ["run", "--input", str(page), "--output", str(out), "--overwrite", "--no-images", "--quiet"]
    )
    *progress, last = err.splitlines()
    assert status == 5 and "Traceback" not in err and all(line.startswith("[cm3-data]") for line in progress)
    said = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
    assert last.startswith(f"cm3-data run: {said} writing --output {out} (") and "GB free now)" in last
    assert last.endswith(f"; --output {out} is as it was")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "page.html"]


def test_disk_full_is_found_through_causes_contexts_and_reraised_messages():
    full = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full_error(full) == errno.ENOSPC
    wrapped = RuntimeError("a step failed")
    wrapped.__cause__ = ValueError("inner")
    wrapped.__cause__.__context__ = full
    assert disk_full_error(wrapped)
    # Beam's re-raise keeps only the text: "OSError: [Errno 28] No space left on device [while running 'W']"
    assert disk_full_error(
        RuntimeError("OSError: [Errno 28] No space left on device [while running 'Write']")
    )
    assert disk_full_error(OSError("[Errno 122] Disk quota exceeded"))
    assert not disk_full_error(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full_error(RuntimeError("a page about [Errno 28] in a log"))
    loop = RuntimeError("loop")
    loop.__context__ = loop
    assert not disk_full_error(loop)
