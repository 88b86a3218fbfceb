"""A short, deterministic slice of bench/fuzz.py's campaign (seed 7, 300 inputs across minimize + C4, the
readers and image decoding): no crash, no hang, no input over the memory bound; and its readers' ground-truth
cases (one damaged record per file)."""

import importlib.util
import json
import random
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


def load_fuzz():
    """bench/fuzz.py as a module (registered, as its dataclasses need)."""
    if "bench_fuzz" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_fuzz", REPO / "bench" / "fuzz.py")
        sys.modules["bench_fuzz"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["bench_fuzz"])
    return sys.modules["bench_fuzz"]


@pytest.mark.parametrize("oracle", ["warc_oracle", "dump_oracle"])
def test_readers_keep_every_undamaged_record_of_a_file_with_one_damaged(tmp_path, oracle):
    """bench/fuzz.py's ground-truth cases, seeds 0-59: each file holds known records, one of them damaged
    (header cut, Content-Length 1-7 bytes off, decoding bomb, fake WARC text in a damaged page, bad NDJSON
    line). Every undamaged record is read once with its URL and bytes, and nothing else."""
    fuzz = load_fuzz()
    damages = set()
    for seed in range(60):
        case = fuzz.ORACLES[oracle](random.Random(seed))
        damages.add(case.damage)
        fuzz.check_oracle(case, str(tmp_path))
    assert len(damages) == 5  # every kind of damage was tried
