"""A job without image encoding never imports torch or scipy (on the launcher or in DirectRunner's
in-process workers): a data engineer's text-only run does not pay seconds of imports per worker."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, sys
    from pipeline.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--output", sys.argv[1], "--no-images", "--quiet", "--train-shards", "2"])
    print(code, ",".join(sorted(m for m in ("torch", "scipy", "taming") if m in sys.modules)))
    """
)


def test_no_images_job_imports_no_torch_and_no_scipy(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "out")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[-2] == "0 ", out.stdout + out.stderr
    assert (tmp_path / "out" / "_meta" / "manifest.json").is_file()
