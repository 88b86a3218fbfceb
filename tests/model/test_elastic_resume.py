"""Resuming on another number of processes: every document of an epoch is read exactly once over the old
run and the new one, whatever the old and new world sizes, and no pending example is lost or doubled."""

from collections import Counter

import numpy as np
import pytest

from model import CM3Tokenizer
from model.data import LoaderOptions, PackedLoader
from model.shards import TokenSplit


class ReadingLog:
    """A token split that notes (epoch, document) for each document a loader reads."""

    def __init__(self, split: TokenSplit) -> None:
        self.split, self.loader, self.reads = split, None, []
        self.keys = split.keys

    def __len__(self) -> int:
        return len(self.split)

    def doc(self, d: int) -> np.ndarray:
        self.reads.append((self.loader.epoch, d))
        return self.split.doc(d)


def loaders(token_shards, world_size: int, objective: str = "clm") -> list[PackedLoader]:
    tok = CM3Tokenizer.load(token_shards / "tokenizer")
    options = LoaderOptions(
        objective=objective,
        seq_len=64,
        batch_size=2,
        seed=5,
        mask_offset=tok.mask_offset,
        n_masks=tok.n_masks,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        extra_offset=tok.vocab_size,
        document_attention=True,
    )
    out = []
    for rank in range(world_size):
        log = ReadingLog(TokenSplit.open(token_shards, "train"))
        loader = PackedLoader(log, options, rank, world_size)
        log.loader = loader
        out.append(loader)
    return out


def pending_inputs(states: list[dict]) -> Counter:
    """The old ranks' pending examples, as a multiset of their inputs."""
    found = Counter()
    for state in states:
        bounds = np.concatenate([[0], np.cumsum(state["pending"]["lengths"])])
        inputs = state["pending"]["inputs"]
        found.update(inputs[a:b].tobytes() for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return found


@pytest.mark.parametrize(
    "old_world, new_world, batches", [(2, 1, (9, 9)), (1, 2, (7,)), (2, 3, (200, 4)), (3, 2, (3, 140, 8))]
)
def test_each_document_is_read_once_per_epoch_across_a_change_of_world_size(
    token_shards, old_world, new_world, batches
):
    old = loaders(token_shards, old_world)
    for loader, n in zip(old, batches, strict=True):  # uneven: ranks can be in different epochs
        for _ in range(n):
            loader.next_batch()
    states = [loader.state_dict() for loader in old]
    new = loaders(token_shards, new_world)
    for loader in new:
        loader.load_elastic(states)
    moved = Counter()
    for loader in new:
        moved.update(ex.inputs.tobytes() for ex in loader._pending)
    assert moved == pending_inputs(states)  # every pending example goes on, once
    last_epoch = max(s["epoch"] for s in states)
    for loader in new:
        while loader.epoch <= last_epoch + 1:
            loader.next_batch()
    reads = [r for loader in old + new for r in loader.split.reads]
    n_docs = len(new[0].split)
    for epoch in range(last_epoch + 1):
        read = Counter(d for e, d in reads if e == epoch)
        assert sorted(read) == list(range(n_docs)) and set(read.values()) == {1}, epoch
    # the epoch after: each new rank reads its own share, no document twice
    after = Counter(d for e, d in reads if e == last_epoch + 1)
    assert set(after.values()) == {1}


def test_a_second_elastic_resume_keeps_the_count(token_shards):
    """2 -> 3 -> 1 within one epoch: the read layers compose."""
    first = loaders(token_shards, 2)
    for loader in first:
        for _ in range(6):
            loader.next_batch()
    second = loaders(token_shards, 3)
    for loader in second:
        loader.load_elastic([loader.state_dict() for loader in first])
        for _ in range(5):
            loader.next_batch()
    assert all(loader.epoch == 0 for loader in second)
    third = loaders(token_shards, 1)
    third[0].load_elastic([loader.state_dict() for loader in second])
    while third[0].epoch == 0:
        third[0].next_batch()
    read = Counter(d for loader in first + second + third for e, d in loader.split.reads if e == 0)
    assert sorted(read) == list(range(len(third[0].split))) and set(read.values()) == {1}


def test_another_run_s_loader_state_is_refused(token_shards):
    states = [loader.state_dict() for loader in loaders(token_shards, 2, objective="cm3")]
    with pytest.raises(ValueError, match="same data, objective"):
        loaders(token_shards, 1)[0].load_elastic(states)


# ---- the trainer: torchrun (gloo, CPU) 2 -> 1 -> 2


@pytest.mark.slow
def test_a_run_saved_by_two_processes_resumes_on_one_and_back_on_two(token_shards, tmp_path, losses_of):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch

    from model import TrainConfig
    from model.checkpoint import list_checkpoints, read_model_state
    from model.trainer import Trainer

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    run = tmp_path / "run"
    args = [f"data={token_shards}", f"out={run}", "preset=tiny", "seq_len=64", "batch_size=4", "lr=3e-3"]
    args += ["warmup_steps=2", "log_every=1", "eval_every=0", "progress=false", "ckpt_every=4"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    torchrun += ["-m", "model.cli", "train"]

    def on_two(max_steps: int) -> None:
        proc = subprocess.run(
            [*torchrun, *args, f"max_steps={max_steps}"], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    on_two(4)
    saved = list_checkpoints(run)[-1]
    assert json.loads((saved / "manifest.json").read_text())["world_size"] == 2
    old_states = [torch.load(saved / f"rank-{r:05d}.pt", weights_only=True)["loader"] for r in range(2)]

    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.load(None, [*args, "max_steps=8"]))  # one process
    assert trainer.step == 4
    weights = read_model_state(saved)
    assert all(torch.equal(trainer.raw_model.state_dict()[k], v) for k, v in weights.items())
    moments = trainer.optimizer.state_dict()["state"]
    assert moments and all(int(m["step"]) == 4 for m in moments.values())
    # the documents of the epoch: those the two old ranks had read, then this process's, each once
    loader, epoch = trainer.loader, trainer.loader.epoch
    old = PackedLoader(loader.split, loader.options, 0, 2)
    read_before = []
    for rank, state in enumerate(old_states):
        old.rank = rank
        if int(state["epoch"]) == epoch:
            read_before += list(old.documents(epoch)[: int(state["cursor"])])
    together = read_before + list(loader.documents(epoch))
    assert sorted(together) == list(range(len(loader.split)))
    trainer.fit()
    assert json.loads((list_checkpoints(run)[-1] / "manifest.json").read_text())["world_size"] == 1

    on_two(10)  # and back on two processes
    last = list_checkpoints(run)[-1]
    assert last.name == "step-00000010"
    assert json.loads((last / "manifest.json").read_text())["world_size"] == 2
    losses = losses_of(run)
    assert sorted(losses) == list(range(1, 11)) and all(loss == loss for loss in losses.values())
