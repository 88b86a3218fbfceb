"""`cm3-generate` and hostile prompt files: each bad request fails alone, in one line (an error record in
results.jsonl and a line on stderr, the other requests still run, exit 1), and every size a request or a
flag asks for is bounded before anything is allocated."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model import CM3Config, CM3Tokenizer, CM3Transformer
from model.checkpoint import write_model_files
from model.generate_cli import MAX_IMAGE_BYTES, MAX_REQUEST_DEPTH, main, read_requests
from model.prompts import MAX_SAMPLES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GOOD = json.dumps({"mode": "continue", "html": "<p>The cat"})
CODES = list(range(256))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny model: these tests are about requests, not about what the model says."""
    from image_tokenizer import load_vqgan

    n_embed = load_vqgan().n_embed
    docs = ["<p>The cat sat on the mat.</p>", "<p>Paris is the capital of France.</p>"] * 4
    tok = CM3Tokenizer.train(docs, vocab_size=300, n_embed=n_embed)
    cfg = CM3Config(
        tok.vocab_size, d_model=32, n_layers=1, n_heads=2, d_ffn=64, max_seq_len=320, pad_id=tok.pad_id
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt")
    write_model_files(out, CM3Transformer(cfg).state_dict(), cfg, tok)
    return out


def _run(
    checkpoint: Path, tmp_path: Path, lines: list[str], *flags: str, capsys
) -> tuple[int, list[dict], str]:
    with open(tmp_path / "huge.png", "wb") as sparse:  # an image over the cap, without the disk it names
        sparse.truncate(MAX_IMAGE_BYTES + 1)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    argv = [
        str(checkpoint),
        "--prompts",
        str(prompts),
        "--out",
        str(tmp_path / "out"),
        "--max-new-tokens",
        "4",
    ]
    code = main([*argv, *flags])
    err = capsys.readouterr().err
    results = tmp_path / "out" / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return code, records, err


HOSTILE = {
    "Infinity in codes": '{"mode": "masked_caption", "codes": [Infinity' + ", 1" * 255 + "]}",
    "NaN as a field": '{"mode": "caption", "codes": "1 2", "samples": NaN}',
    "a lone surrogate in html": '{"mode": "continue", "html": "<p>\\ud800</p>"}',
    "a lone surrogate in a key": '{"mode": "continue", "html": "<p>x", "\\udfff": 1}',
    "deep nesting": '{"mode": "continue", "html": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "an integer of 10**5 digits": '{"mode": "caption", "codes": '
    + json.dumps(CODES)
    + ', "samples": 1'
    + "0" * 100_000
    + "}",
    "samples: 10**6": json.dumps({"mode": "caption", "codes": CODES, "samples": 10**6}),
    "a float code": json.dumps({"mode": "masked_caption", "codes": [1.5] * 256}),
    "a million codes": json.dumps({"mode": "masked_caption", "codes": "1 " * 1_000_000}),
    "image: /dev/zero": json.dumps({"mode": "masked_caption", "image": "/dev/zero"}),
    "image: a directory": json.dumps({"mode": "masked_caption", "image": "."}),
    "image: over the cap": json.dumps({"mode": "masked_caption", "image": "huge.png"}),
    "a JSON array": "[1, 2]",
}


def test_every_hostile_request_fails_alone_and_the_rest_run(checkpoint, tmp_path, capsys):
    lines = [GOOD, *HOSTILE.values(), GOOD]
    code, records, err = _run(checkpoint, tmp_path, lines, capsys=capsys)
    assert code == 1 and "Traceback" not in err
    assert len(records) == len(lines)
    assert "error" not in records[0] and "error" not in records[-1], (records[0], records[-1])
    for name, record in zip(HOSTILE, records[1:-1], strict=True):
        assert "error" in record and "\n" not in record["error"] and len(record["error"]) < 700, name
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert len(progress) == len(lines) and sum(": error: " in line for line in progress) == len(HOSTILE)
    assert f"{len(lines) - len(HOSTILE)} ok, {len(HOSTILE)} failed" in err.splitlines()[-1]


def test_each_size_is_named_in_its_error(checkpoint, tmp_path, capsys):
    _, records, _ = _run(checkpoint, tmp_path, list(HOSTILE.values()), capsys=capsys)
    errors = dict(zip(HOSTILE, (r["error"] for r in records), strict=True))
    assert f"between 0 and {MAX_SAMPLES}" in errors["samples: 10**6"]
    assert (
        "not a regular file" in errors["image: /dev/zero"]
        and "not a regular file" in errors["image: a directory"]
    )
    assert f"larger than {MAX_IMAGE_BYTES} bytes" in errors["image: over the cap"]
    assert (
        "lone surrogate" in errors["a lone surrogate in html"] and "Infinity" in errors["Infinity in codes"]
    )
    assert "got 1000000 of them" in errors["a million codes"] or "256 integers" in errors["a million codes"]


@pytest.mark.parametrize(
    "flags, said",
    [
        (("--num-samples", str(10**6)), f"--num-samples 1000000: at most {MAX_SAMPLES}"),
        (("--num-beams", str(10**6)), f"--num-beams 1000000: at most {MAX_SAMPLES}"),
        (("--max-new-tokens", str(10**9)), "--max-new-tokens 1000000000: the model's max_seq_len is 320"),
    ],
)
def test_a_size_flag_beyond_its_bound_refuses_the_run_in_one_line(checkpoint, tmp_path, capsys, flags, said):
    code, records, err = _run(checkpoint, tmp_path, [GOOD], *flags, capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and said in err and records == []


def _bounded(argv: list[str]) -> subprocess.CompletedProcess:
    """cm3-generate in a child that may not take more than 6 GB of address space (torch's own mappings
    need a few), with a time limit."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code = "import sys; from model.generate_cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        preexec_fn=limit,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "directory"])
def test_a_prompts_file_that_is_not_a_regular_file_is_one_line(checkpoint, tmp_path, source):
    path = {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"), "directory": str(tmp_path)}[source]
    if source == "fifo":
        os.mkfifo(path)  # no writer: a plain open would wait forever
    done = _bounded([str(checkpoint), "--prompts", path, "--out", str(tmp_path / "out")])
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "not a regular file" in done.stderr


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_line_is_a_request_or_one_error_line(line):
    for request, error in read_requests([line]):
        assert (request is None) != (error is None)
        if error is not None:
            assert "\n" not in error and len(error) < 400
        else:
            json.dumps(request, ensure_ascii=False).encode("utf-8")  # it can be echoed in results.jsonl


def test_nesting_is_bounded_without_recursion():
    deep = '{"a": ' + "[" * (MAX_REQUEST_DEPTH + 1) + "]" * (MAX_REQUEST_DEPTH + 1) + "}"
    ((request, error),) = read_requests([deep])
    assert request is None and "nested deeper than" in error
    ((request, error),) = read_requests(['{"a": [[1]]}'])
    assert error is None and request == {"a": [[1]]}
