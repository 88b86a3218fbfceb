"""`cm3-train` as a user meets it: numbers and config keys checked when parsed, one line per mistake, one
line (and --debug) for an unexpected failure, outputs never overwritten by accident, help generated from
the config, the resolved config printed when a run starts."""

import json
import math
import shutil
import typing
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from model.cli import build_parser, main
from model.config import MAX_INT, PRESETS, TrainConfig
from model.outputs import OutputError, build_output
from model.tokenizer import CM3Tokenizer

TINY = ["preset=tiny", "seq_len=64", "batch_size=4", "progress=false", "eval_every=0", "log_every=1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("cm3-train")
    return err.strip()


def _exit_code(argv: list[str]) -> int:
    """main's return value, or the code of argparse's SystemExit (parse-time errors, --help)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# ---- 1. numbers are checked when parsed


@pytest.mark.parametrize("value", ["-5", "10", "0", "255", str(2**20 + 1), "2**40", "many", "3.5"])
def test_vocab_size_below_the_byte_alphabet_or_absurdly_large_is_one_line_exit_2(value, tmp_path, capsys):
    argv = ["tokenizer", "--data", str(tmp_path), "--vocab-size", value, "--out", str(tmp_path / "tok")]
    assert _exit_code(argv) == 2
    line = _one_error_line(capsys)
    assert "--vocab-size" in line and "from 256" in line and "byte" in line and repr(value) in line
    assert not (tmp_path / "tok").exists()


def test_the_smallest_vocabulary_is_the_byte_alphabet(doc_shards, tmp_path, capsys):
    assert (
        main(["tokenizer", "--data", str(doc_shards), "--vocab-size", "256", "--out", str(tmp_path / "t")])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_text"] == 256


def test_a_config_key_typed_as_a_flag_is_answered_with_its_key_value_form(capsys):
    assert _exit_code(["train", "--out", "X", "--max_steps", "2"]) == 2
    assert "out=X max_steps=2" in _one_error_line(capsys)


def test_output_is_the_flag_and_out_its_alias(tmp_path, capsys):
    argv = ["tokenize", "--data", str(tmp_path), "--tokenizer", str(tmp_path)]
    assert _exit_code([*argv, "--ouput", str(tmp_path / "o")]) == 2
    assert "unknown option --ouput (did you mean --output?)" in _one_error_line(capsys)
    assert build_parser().parse_args([*argv, "--out", "o"]).out == "o"


@pytest.mark.parametrize("vocab_size", [-5, 10, 255, 2**20 + 1])
def test_the_tokenizer_itself_refuses_a_vocabulary_outside_the_bounds(vocab_size):
    with pytest.raises(ValueError, match="from 256 \\(the byte-level alphabet\\)"):
        CM3Tokenizer.train(["some text"], vocab_size=vocab_size, n_embed=8)


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_workers_must_be_a_positive_integer(value, tmp_path, capsys):
    argv = ["tokenize", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "--out", str(tmp_path / "o")]
    assert _exit_code([*argv, "--workers", value]) == 2
    assert "--workers: must be a positive integer" in _one_error_line(capsys)


def _rule(name: str):
    return TrainConfig.__dataclass_fields__[name].metadata["rule"]


NUMERIC = [
    f.name for f in fields(TrainConfig) if _rule(f.name).low is not None or _rule(f.name).high is not None
]


def _outside(name: str) -> list[str]:
    """Override values just outside a numeric key's range, of the key's type."""
    rule, hint = _rule(name), typing.get_type_hints(TrainConfig)[name]
    is_int = int in (typing.get_args(hint) or (hint,))
    step = 1 if is_int else 1e-9
    values = []
    if rule.low is not None:
        values.append(rule.low if rule.low_open else rule.low - step)
    if rule.high is not None:
        values.append(rule.high if rule.high_open else rule.high + step)
    if name == "adam_betas":
        return [f"[0.9, {v!r}]" for v in values]
    return [repr(v) for v in values]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_config_key_refuses_values_outside_its_range_with_one_line(name, tmp_path, capsys):
    for raw in _outside(name):
        assert main(["train", "--data", str(tmp_path), f"{name}={raw}"]) == 2, raw
        line = _one_error_line(capsys)
        assert (
            line.startswith(f"cm3-train: error: config {name}: must be ") and _rule(name).describe() in line
        )


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("max_steps=1.5", "max_steps: expected an integer, got 1.5"),
        ("batch_size=many", "batch_size: expected an integer, got 'many'"),
        ("lr=.nan", "lr: expected a finite number"),
        ("lr=inf", "lr: expected a finite number"),
        ("compile=maybe", "compile: expected true/false"),
        ("adam_betas=0.9", "adam_betas: expected 2 values"),
        ("seed=99999999999999999999", "seed: must be >= 0 and <= 9223372036854775807"),
        ("end_lr=0.01", "end_lr: 0.01 is above lr 0.0003"),
        ("n_heads=5", "d_model 64 is not divisible by n_heads 5"),
        ("seq_len=16", "seq_len: 16 is too short for the cm3 objective (at least 40)"),
        ("preset=125M", "preset: must be one of tiny | small | 125m"),
        ("objective=t6", "did you mean t5?"),
    ],
)
def test_config_values_of_the_wrong_type_or_meaning_are_one_line(override, says, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), override]) == 2
    assert says in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("typo", "closest"), [("steps", "max_steps"), ("stpes", "max_steps"), ("lr_warmup", "warmup_steps")]
)
def test_an_unknown_config_key_names_the_closest_known_key(typo, closest, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), f"{typo}=3"]) == 2
    assert f"unknown config key '{typo}'; the closest known key is {closest}" in _one_error_line(capsys)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(NUMERIC), value=st.floats(allow_nan=False) | st.integers(-(2**70), 2**70))
def test_a_numeric_key_holds_exactly_the_values_its_rule_allows(name, value):
    """What the config accepts is what `--help` says: a value passes iff its type and range fit the rule."""
    raw = f"[0.9, {value!r}]" if name == "adam_betas" else repr(value)
    try:
        cfg = TrainConfig.load(None, [f"{name}={raw}"])
    except ValueError:
        return
    got = getattr(cfg, name)
    got = got[1] if name == "adam_betas" else got
    assert _rule(name).allows(got) and math.isfinite(got)
    assert isinstance(got, float) or abs(got) <= MAX_INT


# ---- 2. the device


def test_device_help_says_what_it_accepts(capsys):
    assert _exit_code(["train", "--help"]) == 0
    device_line = next(
        line for line in capsys.readouterr().out.splitlines() if line.lstrip(" *").startswith("device ")
    )
    assert "one of auto | cpu | cuda" in device_line and "auto: cuda when torch sees a GPU" in device_line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line_exit_2(token_shards, tmp_path, capsys):
    assert main(["train", "--data", str(token_shards), *TINY, "device=cuda", f"out={tmp_path / 'run'}"]) == 2
    assert "device=cuda, but torch" in _one_error_line(capsys) and not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_process_without_a_gpu_of_its_own_is_one_line_exit_2(token_shards, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count()))
    assert main(["train", "--data", str(token_shards), *TINY, "device=cuda", f"out={tmp_path / 'run'}"]) == 2
    assert f"needs GPU {torch.cuda.device_count()}" in _one_error_line(capsys)


def test_device_gpu_is_not_a_device(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "device=gpu"]) == 2
    assert "device: must be one of auto | cpu | cuda, got 'gpu'" in _one_error_line(capsys)


# ---- 3. unexpected failures: one line, --debug for the traceback


def _broken_tokenizer(tmp_path: Path, tokenizer_dir: Path) -> Path:
    """A tokenizer directory whose tokenizer.json is not JSON: the Rust loader fails with a bare Exception."""
    broken = tmp_path / "broken-tok"
    shutil.copytree(tokenizer_dir, broken)
    (broken / "tokenizer.json").write_text("{ not json")
    return broken


def test_an_unexpected_failure_is_one_line_with_a_hint_and_exit_1(
    doc_shards, tokenizer_dir, tmp_path, capsys
):
    broken = _broken_tokenizer(tmp_path, tokenizer_dir)
    argv = ["tokenize", "--data", str(doc_shards), "--tokenizer", str(broken), "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    line = _one_error_line(capsys)
    assert line.startswith("cm3-train tokenize: Exception: ") and line.endswith(
        "(rerun with --debug for the traceback)"
    )
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_debug_shows_the_traceback(doc_shards, tokenizer_dir, tmp_path):
    broken = _broken_tokenizer(tmp_path, tokenizer_dir)
    argv = ["tokenize", "--data", str(doc_shards), "--tokenizer", str(broken), "--out", str(tmp_path / "o")]
    with pytest.raises(Exception, match="line 1 column"):
        main([*argv, "--debug"])


def test_a_config_file_that_cannot_be_read_is_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read --config" in _one_error_line(capsys)
    (tmp_path / "bad.yaml").write_text("lr: [1,\n  2\nmax_steps: 3\n")
    assert main(["train", "--data", str(tmp_path), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "not valid yaml" in _one_error_line(capsys)


def test_a_config_file_with_aliases_or_a_repeated_key_is_one_line(tmp_path, capsys):
    (tmp_path / "bomb.yaml").write_text("lr: &a 0.1\nwarmup_steps: *a\n")
    assert main(["train", "--data", str(tmp_path), "--config", str(tmp_path / "bomb.yaml")]) == 2
    assert "anchors and aliases" in _one_error_line(capsys)
    (tmp_path / "twice.yaml").write_text("lr: 0.1\nmax_steps: 3\nlr: 0.2\n")
    assert main(["train", "--data", str(tmp_path), "--config", str(tmp_path / "twice.yaml")]) == 2
    assert "line 3, column 1: key 'lr' is given twice" in _one_error_line(capsys)


# ---- 4. outputs: refused when not empty, replaced whole with --overwrite, never left half-written


def _tokenizer(docs: Path, out: Path, *extra: str) -> int:
    return main(["tokenizer", "--data", str(docs), "--vocab-size", "300", "--out", str(out), *extra])


def _tokenize(docs: Path, tok: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "tokenize",
            "--data",
            str(docs),
            "--tokenizer",
            str(tok),
            "--out",
            str(out),
            "--workers",
            "1",
            *extra,
        ]
    )


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_tokenizer_and_tokenize_refuse_a_non_empty_out(doc_shards, tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _tokenizer(doc_shards, out) == 2
    assert f"--output {out} is not empty; pass --overwrite to replace it whole" in _one_error_line(capsys)
    assert _tokenize(doc_shards, tokenizer_dir, out) == 2
    assert "is not empty; pass --overwrite" in _one_error_line(capsys)
    assert _tree(out) == {"notes.txt": b"mine"}
    (out / "notes.txt").unlink()
    assert _tokenizer(doc_shards, out) == 0  # an empty directory is fine


def test_overwrite_replaces_the_output_whole_with_the_bytes_of_a_fresh_one(
    doc_shards, tokenizer_dir, tmp_path
):
    fresh, out = tmp_path / "fresh", tmp_path / "out"
    assert _tokenize(doc_shards, tokenizer_dir, fresh) == 0
    assert _tokenize(doc_shards, tokenizer_dir, out) == 0
    (out / "stale.txt").write_text("from an older run")
    assert _tokenize(doc_shards, tokenizer_dir, out, "--overwrite") == 0
    assert _tree(out) == _tree(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]  # no temporary directory left

    assert _tokenizer(doc_shards, tmp_path / "tok") == 0
    (tmp_path / "tok" / "stale.txt").write_text("x")
    assert _tokenizer(doc_shards, tmp_path / "tok", "--overwrite") == 0
    assert sorted(_tree(tmp_path / "tok")) == ["tokenizer.json", "vocab_layout.json"]


def test_a_failed_overwrite_leaves_the_previous_output_as_it_was(doc_shards, tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _tokenize(doc_shards, tokenizer_dir, out) == 0
    before = _tree(out)
    broken = _broken_tokenizer(tmp_path, tokenizer_dir)
    assert _tokenize(doc_shards, broken, out, "--overwrite") == 1
    capsys.readouterr()
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-tok", "out"]


def test_overwrite_never_deletes_a_directory_that_holds_no_earlier_output(doc_shards, tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert _tokenizer(doc_shards, home, "--overwrite") == 2
    assert "holds no earlier output (vocab_layout.json)" in _one_error_line(capsys)
    assert _tree(home) == {"thesis.tex": b"years of work"}


def test_an_output_that_would_replace_an_input_is_refused(doc_shards, tokenizer_dir, tmp_path, capsys):
    tok = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, tok)
    assert _tokenize(doc_shards, tok, tok, "--overwrite") == 2
    assert "would replace --tokenizer" in _one_error_line(capsys)
    assert _tokenize(doc_shards, tok, tmp_path, "--overwrite") == 2  # an input inside --out
    capsys.readouterr()
    assert _tree(tok) == _tree(tokenizer_dir)


def test_build_output_in_a_place_that_cannot_be_created_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create"):
        build_output(tmp_path / "file" / "out", lambda tmp: None)


# ---- 4. the run directory: resumed when its saved config agrees, else refused unless --overwrite


def _train(token_shards: Path, run: Path, *extra: str) -> int:
    return main(["train", "--data", str(token_shards), *TINY, f"out={run}", *extra])


def test_a_run_directory_resumes_when_the_config_agrees_and_max_steps_may_grow(
    token_shards, tmp_path, capsys, losses_of
):
    run = tmp_path / "run"
    assert _train(token_shards, run, "max_steps=2") == 0
    assert _train(token_shards, run, "max_steps=3", "log_every=1", "keep_last=2") == 0  # * keys may change
    assert (
        f"cm3-train train: {run}/: resuming the run there (from its newest intact checkpoint"
        in capsys.readouterr().err
    )
    assert sorted(losses_of(run)) == [1, 2, 3]


def test_a_run_directory_with_another_config_is_refused_unless_overwrite(
    token_shards, tmp_path, capsys, losses_of
):
    run = tmp_path / "run"
    assert _train(token_shards, run, "max_steps=2", "lr=0.003") == 0
    capsys.readouterr()
    assert _train(token_shards, run, "max_steps=3", "lr=0.001", "seed=1") == 2
    line = _one_error_line(capsys)
    assert "holds a run with another config (seed: 0 -> 1; lr: 0.003 -> 0.001)" in line
    assert "pass --overwrite to delete it and start afresh" in line
    assert json.loads((run / "config.json").read_text())["lr"] == 0.003  # untouched

    assert _train(token_shards, run, "max_steps=1", "lr=0.001", "seed=1", "--overwrite") == 0
    assert "a new run (--overwrite: the run that was there is deleted)" in capsys.readouterr().err
    assert sorted(losses_of(run)) == [1]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000001"]
    assert json.loads((run / "config.json").read_text())["lr"] == 0.001


def test_overwrite_with_data_that_is_not_token_shards_keeps_the_run(token_shards, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(token_shards, run, "max_steps=1") == 0
    before = _tree(run)
    assert main(["train", "--data", str(tmp_path / "nope"), *TINY, f"out={run}", "--overwrite"]) == 2
    assert "no manifest.json" in capsys.readouterr().err.splitlines()[-1]
    assert _tree(run) == before


def test_a_run_directory_may_read_a_copy_of_the_same_token_shards(token_shards, tmp_path, capsys):
    run, copy = tmp_path / "run", tmp_path / "copy"
    assert _train(token_shards, run, "max_steps=1") == 0
    shutil.copytree(token_shards, copy)
    assert main(["train", "--data", str(copy), *TINY, f"out={run}", "max_steps=2"]) == 0
    capsys.readouterr()


def test_a_non_empty_out_that_holds_no_run_is_refused_even_with_overwrite(token_shards, tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert _train(token_shards, tmp_path, "max_steps=1", "--overwrite") == 2
    assert "holds no earlier output (config.json or checkpoints)" in _one_error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


# ---- 5. help that teaches, and the resolved config when a run starts


def test_train_help_lists_the_presets_and_every_config_key_with_its_default_and_meaning(capsys):
    assert _exit_code(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for preset in PRESETS:
        assert f" {preset} " in text
    for f in fields(TrainConfig):
        default = (
            "null"
            if f.default is None
            else json.dumps(list(f.default) if isinstance(f.default, tuple) else f.default)
        )
        meaning = " ".join(_rule(f.name).meaning.split())
        assert f"{f.name} {default} {meaning}" in text, f.name


def test_a_run_prints_the_resolved_config_as_yaml_and_where_it_writes(token_shards, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", "--data", str(token_shards), "--preset", "tiny", *TINY, f"out={run}", "max_steps=1"])
        == 0
    )
    err = capsys.readouterr().err
    assert f"cm3-train train: {run}/: a new run; writes config.json, log.jsonl, checkpoints/step-N/" in err
    block = err[err.index("# resolved config") :]
    block = block[: block.index("progress: false\n") + len("progress: false\n")]
    assert "tiny: d_model 64, n_layers 2, n_heads 4, d_ffn 256" in block
    printed = TrainConfig.from_dict(yaml.safe_load(block))
    assert printed == TrainConfig.load(None, [f"data={token_shards}", *TINY, f"out={run}", "max_steps=1"])
    assert printed == TrainConfig.load(run / "config.json")


# ---- 6. (earlier work) a corrupt document shard: tests/model/test_token_shards.py
