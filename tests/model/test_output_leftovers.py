"""A token output (or any CLI output) whose build was killed leaves `.NAME.partial-*`; the next build of
that output removes it, its owner being gone."""

import os
import subprocess
import sys


def test_a_token_output_killed_midway_is_cleaned_by_the_next_build(tmp_path):
    from model.outputs import build_output

    out = tmp_path / "tokens"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from model.outputs import build_output; "
            "build_output(sys.argv[1], lambda tmp: ((tmp / 'x').write_bytes(b'1' * 1000), os._exit(9)))",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert killed.returncode == 9
    (left,) = [p.name for p in tmp_path.iterdir()]
    assert left.startswith(".tokens.partial-")
    build_output(out, lambda tmp: (tmp / "manifest.json").write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens"]
