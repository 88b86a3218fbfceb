"""FSDP2 under bf16: parameters are gathered in bf16 for compute and gradients reduced and kept in fp32
(`fsdp_options`), so the fp32 master shards never run under autocast."""

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from model import CM3Config, CM3Transformer
from model.trainer import fsdp_options

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fp32_runs_shard_without_a_policy():
    assert fsdp_options(None) == {}


def test_bf16_shards_compute_in_bf16_and_keep_fp32_gradients(one_process_group):
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = CM3Transformer(
        CM3Config(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ffn=64, max_seq_len=16)
    )
    options = fsdp_options(torch.bfloat16)
    for block in model.layers:
        fully_shard(block, **options)
    fully_shard(model, **options)
    seen = []
    model.layers[0].fc1.register_forward_hook(lambda m, i, o: seen.append((m.weight.dtype, o.dtype)))
    tokens = torch.randint(0, 64, (2, 16))
    logits = model(tokens)
    assert seen == [(torch.bfloat16, torch.bfloat16)] and logits.dtype == torch.bfloat16
    F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, name


@pytest.mark.slow
def test_two_processes_train_fsdp_in_bf16_like_ddp_under_autocast(token_shards, tmp_path, losses_of):
    """torchrun, gloo: FSDP2 with the bf16 policy follows DDP under bf16 autocast (same data, same init)
    within bf16's rounding, and learns; recomputing each block (activation checkpointing) changes nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "model.cli",
    ]
    args = ["train", "--data", str(token_shards), "preset=tiny", "seq_len=64", "batch_size=4", "lr=3e-3"]
    args += [
        "warmup_steps=2",
        "max_steps=12",
        "log_every=1",
        "eval_every=0",
        "progress=false",
        "precision=bf16",
    ]
    losses = {}
    for name, extra in (
        ("ddp", ["parallel=ddp"]),
        ("fsdp", ["parallel=fsdp"]),
        ("fsdp recomputing", ["parallel=fsdp", "activation_checkpointing=true"]),
    ):
        run = tmp_path / name.replace(" ", "-")
        proc = subprocess.run(
            cmd + args + [*extra, f"out={run}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        losses[name] = [loss for _, loss in sorted(losses_of(run).items())]
    assert losses["fsdp"][-1] < losses["fsdp"][0] - 0.5
    assert losses["fsdp"] == pytest.approx(losses["ddp"], rel=2e-2)
    assert losses["fsdp recomputing"] == losses["fsdp"]  # activation checkpointing under FSDP: same steps
