"""bench/gpu.py, the one script a GPU machine runs: its --smoke mode (toy sizes, CPU) goes through every
section and prints each figure, so a GPU session is not spent finding a typo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_section():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("flex vs dense on this device: max |logits diff|") for line in lines)
    for path in ("dense (reference)", "auto", "causal kernel, no document mask"):
        assert any(line.strip().startswith(path) and "tokens/s" in line for line in lines), path
    assert any(line.strip().startswith("fp32: batch 2:") for line in lines)  # VQGAN encode
    assert any(line.strip().startswith("bf16: batch 2:") for line in lines)
    assert any(line.strip().startswith("fp32:") and line.endswith("tokens/s") for line in lines)  # decode
    diff = next(line for line in lines if line.startswith("flex vs dense"))
    assert float(diff.split("max |logits diff| ")[1].split(";")[0]) < 1e-4
