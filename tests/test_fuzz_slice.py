"""A short, deterministic slice of bench/fuzz.py's campaign (seed 7, 300 inputs across minimize + C4, the
readers and image decoding): no crash, no hang, no input over the memory bound."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fuzz_slice_finds_nothing(tmp_path, shared_dir):
    command = [sys.executable, str(REPO / "bench" / "fuzz.py"), "--inputs", "300", "--workers", "1"]
    command += ["--seed", "7", "--time-bound", "20", "--out", str(tmp_path / "crashes")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["inputs"] == 300
    assert out.returncode == 0 and result["failures"] == 0, out.stdout[-2000:]


@pytest.mark.slow
def test_hostile_files_slice_finds_nothing(tmp_path):
    """20 hostile options files and 20 hostile prompt files (bench/fuzz.py --hostile-files): each is a
    value or one line, in bounded time and memory."""
    command = [sys.executable, str(REPO / "bench" / "fuzz.py"), "--inputs", "0", "--hostile-files", "20"]
    command += ["--seed", "7", "--time-bound", "20", "--out", str(tmp_path / "crashes")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])["hostile_files"]
    assert result["counts"]["options"]["inputs"] == result["counts"]["prompts"]["inputs"] == 20
    assert out.returncode == 0 and result["failures"] == 0, out.stdout[-2000:]
