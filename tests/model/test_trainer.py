"""Trainer on CPU: loss falls, checkpoints load standalone, config/schedule; slow: DDP and SIGKILL resume."""

import csv
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model import TrainConfig, load_checkpoint
from model.checkpoint import list_checkpoints, read_model_state
from model.trainer import Trainer, flops_per_token, lr_factor, peak_flops

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "preset=tiny",
    "seq_len=64",
    "batch_size=4",
    "warmup_steps=5",
    "lr=3e-3",
    "progress=false",
    "eval_batches=4",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(token_shards, out, *overrides) -> TrainConfig:
    return TrainConfig.load(None, [f"data={token_shards}", f"out={out}", *TINY, *overrides])


def test_tiny_model_loss_falls_and_checkpoint_loads_standalone(token_shards, tmp_path):
    trainer = Trainer(
        _config(
            token_shards,
            tmp_path / "run",
            "max_steps=40",
            "log_every=5",
            "eval_every=40",
            "ckpt_every=20",
            "keep_last=1",
        )
    )
    before = trainer.evaluate()
    metrics = trainer.fit()
    assert metrics["val_loss"] < before["val_loss"] - 0.7, (before, metrics)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]
    assert all(r["mfu"] is None and r["tokens_per_s"] > 0 for r in log if "loss" in r)  # CPU: MFU n/a
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", r["time"]) for r in log)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(row["time"], int(row["step"])) for row in table] == [(r["time"], r["step"]) for r in log]
    assert [float(row["loss"]) for row in table if row["loss"]] == losses
    assert float(table[-1]["val_loss"]) == metrics["val_loss"] and table[-1]["lr"] == ""  # the eval record
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000040"]  # keep_last=1
    (ckpt,) = list_checkpoints(tmp_path / "run")
    image_tokens = json.loads((token_shards / "manifest.json").read_text())["splits"]["train"]["image_tokens"]
    assert json.loads((ckpt / "config.json").read_text())["data"] == {"image_tokens": image_tokens}
    assert image_tokens > 0  # what cm3-generate reads to warn on image modes of a model that saw none
    model, tok, cfg = load_checkpoint(tmp_path / "run")
    assert cfg == trainer.model_cfg and tok.vocab_size == cfg.vocab_size
    tokens = torch.randint(0, cfg.vocab_size, (2, 16))
    trainer.raw_model.eval()
    assert torch.equal(model(tokens), trainer.raw_model(tokens))
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))


def test_progress_off_a_terminal_is_log_lines_not_a_bar(token_shards, tmp_path, caplog, capsys):
    """Under CI, Slurm or `make demo > log`, stderr is no terminal: one log line per log_every steps
    instead of thousands of carriage-return bar updates."""
    overrides = ["max_steps=4", "log_every=2", "eval_every=0", "ckpt_every=0", "progress=true"]
    caplog.set_level("INFO", logger="cm3.train")
    Trainer(_config(token_shards, tmp_path / "run", *overrides)).fit()
    assert "\r" not in capsys.readouterr().err
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"]
    for line in lines:  # what the bar would show: the learning rate and the time left
        assert re.search(r", lr [\d.e-]+, \d+ tokens/s, MFU n/a, ETA \d\d:\d\d$", line), line
    assert lines[-1].endswith("ETA 00:00")


def test_a_warm_up_longer_than_the_run_is_a_warning(token_shards, tmp_path, caplog):
    """The defaults (max_steps 1000, warmup_steps 1500) never reach the peak learning rate: said once,
    with the peak actually reached; the run still goes (a short trial run is legitimate)."""
    default = TrainConfig()
    assert default.warmup_steps > default.max_steps
    assert "never reaches lr" in default.schedule_warning() and "0.0002 (67% of lr 0.0003)" in (
        default.schedule_warning()
    )
    assert TrainConfig(max_steps=1500, warmup_steps=1500).schedule_warning() is None
    caplog.set_level("INFO", logger="cm3.train")
    overrides = ["max_steps=2", "warmup_steps=4", "eval_every=0", "ckpt_every=0"]
    Trainer(_config(token_shards, tmp_path / "run", *overrides)).fit()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [TrainConfig(lr=3e-3, max_steps=2, warmup_steps=4).schedule_warning()]
    assert "warmup_steps 4 > max_steps 2" in warnings[0]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_do_not_break_the_progress_bar(token_shards, tmp_path, monkeypatch):
    """On a terminal, a validation line is written above the bar (tqdm.write), never glued to the end
    of the bar's line."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(terminal)
    logging.getLogger().addHandler(handler)
    logger = logging.getLogger("cm3.train")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        overrides = ["max_steps=4", "log_every=2", "eval_every=2", "ckpt_every=0", "progress=true"]
        Trainer(_config(token_shards, tmp_path / "run", *overrides)).fit()
    finally:
        logging.getLogger().removeHandler(handler)
        logger.setLevel(level)
    out = terminal.getvalue()
    assert "%|" in out  # the bar was drawn
    messages = re.findall(r"(.)step \d+: validation loss", out)
    assert len(messages) == 2 and set(messages) <= {"\r", "\n"}, out


def test_document_attention_and_grad_accumulation_train(token_shards, tmp_path):
    cfg = _config(
        token_shards,
        tmp_path,
        "max_steps=3",
        "grad_accum=2",
        "document_attention=true",
        "objective=clm",
        "eval_every=0",
        "positions=learned",
    )
    trainer = Trainer(cfg)
    trainer.fit()
    assert trainer.step == 3 and trainer.model_cfg.positions == "learned"


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: 125m\nlr: 6.0e-4\nadam_betas: [0.9, 0.98]\n")
    cfg = TrainConfig.load(path, ["lr=1e-3", "n_layers=2", "compile=true"])
    assert (cfg.preset, cfg.lr, cfg.n_layers, cfg.compile, cfg.adam_betas) == (
        "125m",
        1e-3,
        2,
        True,
        (0.9, 0.98),
    )
    assert cfg.model_config(1000).n_layers == 2 and cfg.model_config(1000).d_model == 768
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.load(json_path) == cfg
    for bad in (["nope=1"], ["lr=fast"], ["n_layers=2.5"], ["compile=yes please"], ["lr"]):
        with pytest.raises(ValueError):
            TrainConfig.load(None, bad)
    with pytest.raises(ValueError, match="preset"):
        TrainConfig.load(None, ["preset=huge"]).model_config(10)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(TrainConfig.__dataclass_fields__)), raw=st.text(max_size=30))
def test_any_override_parses_or_is_a_typed_error(key, raw):
    try:
        cfg = TrainConfig.load(None, [f"{key}={raw}"])
    except ValueError:
        return
    value = getattr(cfg, key)
    hint = typing.get_type_hints(TrainConfig)[key]
    allowed = tuple(typing.get_origin(t) or t for t in (typing.get_args(hint) or (hint,)))
    if isinstance(value, bool):
        assert bool in allowed
    else:
        assert isinstance(value, allowed), (key, value, hint)


@settings(max_examples=100, deadline=None)
@given(steps=st.integers(1, 10**6), lr=st.floats(1e-6, 1.0), batch=st.integers(1, 4096))
def test_numeric_overrides_round_trip(steps, lr, batch):
    cfg = TrainConfig.load(None, [f"max_steps={steps}", f"lr={lr!r}", f"batch_size={batch}"])
    assert (cfg.max_steps, cfg.lr, cfg.batch_size) == (steps, lr, batch)


def test_lr_schedule_warmup_then_polynomial_decay():
    cfg = TrainConfig(lr=1e-3, end_lr=1e-4, warmup_steps=10, max_steps=110)
    factors = [lr_factor(s, cfg) for s in range(111)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[110] == pytest.approx(0.1)
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))


def test_mfu_inputs():
    assert peak_flops(torch.device("cpu")) is None
    cfg = TrainConfig(preset="125m").model_config(50_000)
    assert flops_per_token(cfg, 10**8, 2048) == 6 * 10**8 + 12 * 12 * 768 * 2048


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "model.cli", *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_sigkill_and_resume_reproduces_the_uninterrupted_run(token_shards, tmp_path, losses_of):
    args = [
        "train",
        "--data",
        str(token_shards),
        *TINY,
        "max_steps=60",
        "log_every=1",
        "ckpt_every=10",
        "eval_every=0",
        "keep_last=2",
        "dropout=0.1",
    ]
    subprocess.run(
        _cli(*args, f"out={tmp_path / 'straight'}"), env=_env(), check=True, capture_output=True, timeout=300
    )

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*args, f"out={run}"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(run) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    killed_at = max(losses_of(run))
    assert killed_at < 60, "the run finished before it could be killed"

    subprocess.run(_cli(*args, f"out={run}"), env=_env(), check=True, capture_output=True, timeout=300)
    straight, resumed = losses_of(tmp_path / "straight"), losses_of(run)
    assert sorted(resumed) == list(range(1, 61))
    assert resumed == straight  # bit-identical floats, every step
    a = read_model_state(tmp_path / "straight" / "checkpoints" / "step-00000060")
    b = read_model_state(run / "checkpoints" / "step-00000060")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_processes_ddp_and_fsdp_on_loopback_agree(token_shards, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "model.cli",
    ]
    args = ["train", "--data", str(token_shards), *TINY, "max_steps=30", "log_every=5", "ckpt_every=15"]
    args += ["eval_every=30", "grad_accum=2"]
    losses, weights = {}, {}
    for parallel in ("ddp", "fsdp"):
        run = tmp_path / parallel
        proc = subprocess.run(
            cmd + args + [f"parallel={parallel}", f"out={run}"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        ckpt = list_checkpoints(run)[-1]
        assert ckpt.name == "step-00000030"
        assert (ckpt / "rank-00000.pt").exists() and (ckpt / "rank-00001.pt").exists()
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        losses[parallel] = [r["loss"] for r in log if "loss" in r]
        assert losses[parallel][-1] < losses[parallel][0]
        assert any("val_ppl" in r for r in log)
        # the two ranks read different documents
        s0 = torch.load(ckpt / "rank-00000.pt", weights_only=True)["loader"]
        s1 = torch.load(ckpt / "rank-00001.pt", weights_only=True)["loader"]
        assert s0["fingerprint"]["rank"] == 0 and s1["fingerprint"]["rank"] == 1
        assert not torch.equal(s0["pending"]["inputs"][:64], s1["pending"]["inputs"][:64])
        model, _, _ = load_checkpoint(run)
        weights[parallel] = model.state_dict()
    # same seed, same data partition: sharded training follows the replicated one up to float reordering
    assert losses["fsdp"] == pytest.approx(losses["ddp"], rel=1e-4)
    for name, value in weights["ddp"].items():
        torch.testing.assert_close(weights["fsdp"][name], value, rtol=1e-3, atol=1e-4)


def test_cli_reports_bad_input_as_errors(tmp_path, capsys):
    from model.cli import main

    assert main(["train", "preset=tiny"]) == 2
    assert "no data" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "max_steps=1"]) == 2
    assert "cm3-train tokenize" in capsys.readouterr().err
    assert (
        main(
            ["tokenize", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "manifest.json" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "objective=bert"]) == 2
    assert "objective" in capsys.readouterr().err
