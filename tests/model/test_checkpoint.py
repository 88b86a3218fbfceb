"""The checkpoint manager: saves and restores any stateful objects (sharded, torch.distributed.checkpoint,
at once or in the background), keeps the last k, and on resume verifies every file against the sha256
recorded in the checkpoint's manifest, falling back to the newest intact checkpoint with one warning that
names it and what was wrong. Without a valid manifest a checkpoint is not trusted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from model import TrainConfig, load_checkpoint
from model.checkpoint import (
    MANIFEST,
    CheckpointError,
    CheckpointManager,
    ModelState,
    OptimizerState,
    RNGState,
    list_checkpoints,
    sha256_file,
)
from model.trainer import Trainer


class Progress:
    """A stateful object that is not a torch one: the manager takes anything with state_dict."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def make_states(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    return model, optimizer, Progress()


def manager(root: Path, model, optimizer, progress, keep_last: int = 0, **kw) -> CheckpointManager:
    return CheckpointManager(
        root,
        {"trainer": progress, "model": ModelState(model), "optimizer": OptimizerState(model, optimizer)},
        {"rng": RNGState(torch.device("cpu"))},
        keep_last=keep_last,
        **kw,
    )


def train_and_save(root: Path, steps: int, keep_last: int = 0, async_save: bool = False) -> dict[int, dict]:
    """`steps` optimizer steps, a checkpoint after each; returns the model weights saved at each step."""
    model, optimizer, progress = make_states()
    saver = manager(root, model, optimizer, progress, keep_last, async_save=async_save)
    saved = {}
    for step in range(1, steps + 1):
        model(torch.randn(3, 8)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        progress.step = step
        saver.save(step)
        saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
    saver.wait()
    return saved


def resume(root: Path):
    model, optimizer, progress = make_states(seed=99)  # other weights: the checkpoint must replace them
    ckpt = manager(root, model, optimizer, progress).load()
    return ckpt, model, optimizer, progress


def ours(caplog) -> list:
    """The checkpoint manager's log records (torch.distributed.checkpoint logs its own)."""
    return [r for r in caplog.records if r.name == "cm3.checkpoint"]


def ckpt_dir(root: Path, step: int) -> Path:
    return root / "checkpoints" / f"step-{step:08d}"


def test_restores_every_state_and_keeps_the_last_k(tmp_path):
    saved = train_and_save(tmp_path, 3, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]
    random_after_save = torch.rand(4)
    ckpt, model, optimizer, progress = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 3) and progress.step == 3
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[3].items())
    assert optimizer.state_dict()["state"][0]["step"] == 3
    assert torch.equal(torch.rand(4), random_after_save)  # the RNG stream continues where it was saved
    manifest = json.loads((ckpt / MANIFEST).read_text())["files"]
    assert set(manifest) == {SHARDS, "state/.metadata", "rank-00000.pt"}
    assert all(manifest[name]["sha256"] == sha256_file(ckpt / name) for name in manifest)
    assert not list((tmp_path / "checkpoints").glob(".*"))


def test_a_background_save_is_the_state_when_it_started_and_published_when_complete(tmp_path):
    """async_save: the states are copied before training goes on (the steps after a save do not leak into
    it), the next save or wait() publishes it, and nothing unpublished is ever resumed from."""
    model, optimizer, progress = make_states()
    saver = manager(tmp_path, model, optimizer, progress, async_save=True)
    model(torch.randn(3, 8)).square().sum().backward()
    optimizer.step()
    progress.step = 1
    assert saver.save(1) is None  # in flight
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)  # training goes on
    assert list_checkpoints(tmp_path) == []
    assert saver.wait() == ckpt_dir(tmp_path, 1) and saver.wait() is None
    ckpt, restored, _, progress = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 1) and progress.step == 1
    assert all(torch.equal(restored.state_dict()[k], v) for k, v in saved.items())


def test_no_checkpoint_is_a_fresh_start(tmp_path):
    ckpt, _, _, progress = resume(tmp_path)
    assert ckpt is None and progress.step == 0


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


SHARDS = "state/__0_0.distcp"  # the one process's shards: model, optimizer and trainer states


def edit_manifest(change):
    def harm(path: Path) -> None:
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return harm


def flip_the_shards_then_drop_the_manifest(path: Path) -> None:
    """Issue 27.13: the bit flip resumed with a warning (and diverging losses) once the manifest was gone."""
    flip_a_bit(path.parent / SHARDS)
    path.unlink()


@pytest.mark.parametrize(
    "name, harm, said",
    [
        (SHARDS, flip_a_bit, f"{SHARDS} does not match its sha256"),
        (SHARDS, truncate, f"{SHARDS} has"),
        ("rank-00000.pt", empty, "rank-00000.pt has 0 bytes"),
        ("state/.metadata", Path.unlink, "state/.metadata missing"),
        (MANIFEST, truncate, f"{MANIFEST} unreadable"),
        (MANIFEST, Path.unlink, f"{MANIFEST} missing"),
        (MANIFEST, flip_the_shards_then_drop_the_manifest, f"{MANIFEST} missing"),
        (MANIFEST, edit_manifest(lambda m: m.update(files=None)), f"{MANIFEST} malformed: no table of files"),
        (MANIFEST, edit_manifest(lambda m: m.update(files=[])), f"{MANIFEST} malformed"),
        (MANIFEST, edit_manifest(lambda m: m.update(files={})), f"{MANIFEST} malformed"),
        (MANIFEST, edit_manifest(lambda m: m.update(world_size="2")), f"{MANIFEST} malformed: world_size"),
        (MANIFEST, edit_manifest(lambda m: m["files"].update({SHARDS: None})), "malformed: entry"),
        (MANIFEST, edit_manifest(lambda m: m["files"][SHARDS].update(sha256=7)), "malformed: entry"),
        (MANIFEST, edit_manifest(lambda m: m["files"][SHARDS].update(bytes=-1)), "malformed: entry"),
        (MANIFEST, edit_manifest(lambda m: m["files"].pop(SHARDS)), f"does not list {SHARDS}"),
        (MANIFEST, edit_manifest(lambda m: m["files"].pop("rank-00000.pt")), "does not list rank-00000.pt"),
        (MANIFEST, edit_manifest(lambda m: m["files"].update({"../x": m["files"][SHARDS]})), "entry '../x'"),
        (MANIFEST, edit_manifest(lambda m: m.update(world_size=2)), "rank-00001.pt missing"),
        (MANIFEST, lambda p: p.write_text("[1, 2]"), f"{MANIFEST} malformed"),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_with_one_warning(tmp_path, caplog, name, harm, said):
    saved = train_and_save(tmp_path, 3)
    harm(ckpt_dir(tmp_path, 3) / name)
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    ckpt, model, _, progress = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 2) and progress.step == 2
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[2].items())
    (warning,) = ours(caplog)
    message = warning.getMessage()
    assert "\n" not in message and "resuming from" in message and "step-00000002" in message
    assert "step-00000003: " in message and said in message
    assert ckpt_dir(tmp_path, 3).exists()  # kept for inspection; the next save of step 3 replaces it


def test_no_intact_checkpoint_left_is_one_error_naming_each(tmp_path):
    train_and_save(tmp_path, 2)
    flip_a_bit(ckpt_dir(tmp_path, 2) / SHARDS)
    empty(ckpt_dir(tmp_path, 1) / "rank-00000.pt")
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith("no intact checkpoint under")
    assert (
        f"step-00000002: {SHARDS} does not match" in message
        and "step-00000001: rank-00000.pt has 0" in message
    )


def test_an_older_checkpoint_with_files_missing_is_removed(tmp_path, caplog):
    """A deletion of an old checkpoint cut short (by a version that deleted file by file) leaves a step
    directory whose manifest lists files that are gone: it is removed on resume, as are hidden leftovers
    of deletions."""
    train_and_save(tmp_path, 3)
    (ckpt_dir(tmp_path, 1) / SHARDS).unlink()
    leftover = tmp_path / "checkpoints" / ".step-00000000.deleting"
    leftover.mkdir()
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    ckpt, _, _, _ = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 3)
    assert not ckpt_dir(tmp_path, 1).exists() and not leftover.exists() and ckpt_dir(tmp_path, 2).exists()
    assert ["removing" in r.getMessage() and "step-00000001" in r.getMessage() for r in ours(caplog)] == [
        True
    ]


def test_without_a_manifest_no_checkpoint_is_trusted(tmp_path):
    """A checkpoint without its manifest (from before checksums, or with it lost) is never restored
    unverified: with no other left, resume is one error that says why."""
    train_and_save(tmp_path, 2)
    for step in (1, 2):
        (ckpt_dir(tmp_path, step) / MANIFEST).unlink()
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith("no intact checkpoint under")
    assert f"step-00000002: {MANIFEST} missing" in message and f"step-00000001: {MANIFEST} missing" in message
    assert list_checkpoints(tmp_path) == []  # nor offered to cm3-generate


def test_resaving_a_step_replaces_it(tmp_path):
    """After falling back from a damaged step 3, training reaches step 3 again and writes it anew."""
    train_and_save(tmp_path, 3)
    flip_a_bit(ckpt_dir(tmp_path, 3) / SHARDS)
    _, model, optimizer, progress = resume(tmp_path)
    progress.step = 3
    manager(tmp_path, model, optimizer, progress).save(3)
    assert resume(tmp_path)[0] == ckpt_dir(tmp_path, 3)


def test_a_save_after_falling_back_drops_the_damaged_newer_checkpoints(tmp_path):
    """Resumed from step 2 past a damaged step 4, the run writes step 3 (say, max_steps changed): step 4
    belongs to the abandoned run and goes, so keep_last=1 keeps the step just written."""
    train_and_save(tmp_path, 4)
    flip_a_bit(ckpt_dir(tmp_path, 4) / SHARDS)
    (ckpt_dir(tmp_path, 3) / "rank-00000.pt").unlink()
    _, model, optimizer, progress = resume(tmp_path)
    assert progress.step == 2
    progress.step = 3
    manager(tmp_path, model, optimizer, progress, keep_last=1).save(3)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003"]


# ---- in the trainer, and for cm3-generate

TINY = ["preset=tiny", "seq_len=64", "batch_size=4", "progress=false", "eval_every=0", "log_every=1"]


def test_trainer_resumes_from_the_newest_intact_checkpoint(token_shards, tmp_path, caplog, capsys):
    torch.set_num_threads(1)
    overrides = [f"data={token_shards}", f"out={tmp_path}", *TINY, "max_steps=4", "ckpt_every=2"]
    Trainer(TrainConfig.load(None, overrides)).fit()
    flip_a_bit(ckpt_dir(tmp_path, 4) / SHARDS)
    with pytest.raises(CheckpointError, match=f"{SHARDS} does not match"):
        load_checkpoint(ckpt_dir(tmp_path, 4))
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    assert Trainer(TrainConfig.load(None, overrides)).step == 2
    assert f"step-00000004: {SHARDS} does not match" in caplog.text

    from model.cli import main

    empty(ckpt_dir(tmp_path, 2) / "rank-00000.pt")
    capsys.readouterr()
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err  # the resolved config block, then the error
    assert err.splitlines()[-1].startswith("cm3-train: error: no intact checkpoint under")
    assert "Traceback" not in err


def test_a_checkpoint_of_the_whole_state_format_is_named_as_such(tmp_path):
    """Checkpoints of the earlier format (model.pt, optimizer.pt: whole state dicts on rank 0) are not
    resumed as the sharded format; the one line says what they are."""
    from model.checkpoint import write_manifest

    old = ckpt_dir(tmp_path, 5)
    old.mkdir(parents=True)
    for name in ("model.pt", "optimizer.pt", "trainer.pt", "rank-00000.pt"):
        torch.save({}, old / name)
    write_manifest(old, 5)
    with pytest.raises(CheckpointError, match="step-00000005: written by an earlier version"):
        resume(tmp_path)
