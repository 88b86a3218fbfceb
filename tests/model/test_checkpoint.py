"""The checkpoint manager: saves and restores any stateful objects, keeps the last k, and on resume
verifies every file against the sha256 recorded in the checkpoint's manifest, falling back to the newest
intact checkpoint with one warning that names what was wrong."""

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


def manager(root: Path, model, optimizer, progress, keep_last: int = 0) -> CheckpointManager:
    return CheckpointManager(
        root,
        {"trainer": progress, "model": model, "optimizer": optimizer},
        {"rng": RNGState(torch.device("cpu"))},
        keep_last=keep_last,
    )


def train_and_save(root: Path, steps: int, keep_last: int = 0) -> dict[int, dict]:
    """`steps` optimizer steps, a checkpoint after each; returns the model weights saved at each step."""
    model, optimizer, progress = make_states()
    saver = manager(root, model, optimizer, progress, keep_last)
    saved = {}
    for step in range(1, steps + 1):
        model(torch.randn(3, 8)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        progress.step = step
        saver.save(step)
        saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
    return saved


def resume(root: Path):
    model, optimizer, progress = make_states(seed=99)  # other weights: the checkpoint must replace them
    ckpt = manager(root, model, optimizer, progress).load()
    return ckpt, model, optimizer, progress


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
    assert set(manifest) == {"trainer.pt", "model.pt", "optimizer.pt", "rank-00000.pt"}
    assert all(manifest[name]["sha256"] == sha256_file(ckpt / name) for name in manifest)
    assert not list((tmp_path / "checkpoints").glob(".*"))


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


@pytest.mark.parametrize(
    "name, harm, said",
    [
        ("model.pt", flip_a_bit, "model.pt does not match its sha256"),
        ("model.pt", truncate, "model.pt has"),
        ("trainer.pt", empty, "trainer.pt has 0 bytes"),
        ("optimizer.pt", Path.unlink, "optimizer.pt missing"),
        (MANIFEST, truncate, f"{MANIFEST} unreadable"),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_with_one_warning(tmp_path, caplog, name, harm, said):
    saved = train_and_save(tmp_path, 3)
    harm(ckpt_dir(tmp_path, 3) / name)
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    ckpt, model, _, progress = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 2) and progress.step == 2
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[2].items())
    (warning,) = caplog.records
    assert "step-00000003" in warning.getMessage() and said in warning.getMessage()
    assert ckpt_dir(tmp_path, 3).exists()  # kept for inspection; the next save of step 3 replaces it


def test_no_intact_checkpoint_left_is_one_error_naming_each(tmp_path):
    train_and_save(tmp_path, 2)
    flip_a_bit(ckpt_dir(tmp_path, 2) / "model.pt")
    empty(ckpt_dir(tmp_path, 1) / "trainer.pt")
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith("no intact checkpoint under")
    assert (
        "step-00000002: model.pt does not match" in message and "step-00000001: trainer.pt has 0" in message
    )


def test_an_older_checkpoint_with_files_missing_is_removed(tmp_path, caplog):
    """A deletion of an old checkpoint cut short (keep_last pruning killed half-way) leaves a step
    directory with files missing: it is removed on resume, as are hidden leftovers of such deletions."""
    train_and_save(tmp_path, 3)
    (ckpt_dir(tmp_path, 1) / "model.pt").unlink()
    (ckpt_dir(tmp_path, 1) / MANIFEST).unlink()
    leftover = tmp_path / "checkpoints" / ".step-00000000.deleting"
    leftover.mkdir()
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    ckpt, _, _, _ = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 3)
    assert not ckpt_dir(tmp_path, 1).exists() and not leftover.exists() and ckpt_dir(tmp_path, 2).exists()
    assert ["removing" in r.getMessage() and "step-00000001" in r.getMessage() for r in caplog.records] == [
        True
    ]


def test_a_checkpoint_from_before_manifests_restores_with_a_warning(tmp_path, caplog):
    """Checkpoints written before checksums have the same files without manifest.json: they restore,
    unverified, and say so."""
    saved = train_and_save(tmp_path, 2)
    for step in (1, 2):
        (ckpt_dir(tmp_path, step) / MANIFEST).unlink()
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    ckpt, model, _, progress = resume(tmp_path)
    assert ckpt == ckpt_dir(tmp_path, 2) and progress.step == 2
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[2].items())
    (warning,) = caplog.records
    assert "before checkpoints had checksums" in warning.getMessage()


def test_an_unreadable_file_without_a_manifest_is_one_error(tmp_path):
    """Without a manifest nothing is verified ahead, but a file that cannot be read is still one line."""
    train_and_save(tmp_path, 1)
    (ckpt_dir(tmp_path, 1) / MANIFEST).unlink()
    truncate(ckpt_dir(tmp_path, 1) / "model.pt")
    with pytest.raises(CheckpointError, match=r"model.pt cannot be read") as err:
        resume(tmp_path)
    assert "\n" not in str(err.value)


def test_resaving_a_step_replaces_it(tmp_path):
    """After falling back from a damaged step 3, training reaches step 3 again and writes it anew."""
    train_and_save(tmp_path, 3)
    flip_a_bit(ckpt_dir(tmp_path, 3) / "model.pt")
    _, model, optimizer, progress = resume(tmp_path)
    progress.step = 3
    manager(tmp_path, model, optimizer, progress).save(3)
    assert resume(tmp_path)[0] == ckpt_dir(tmp_path, 3)


def test_a_save_after_falling_back_drops_the_damaged_newer_checkpoints(tmp_path):
    """Resumed from step 2 past a damaged step 4, the run writes step 3 (say, max_steps changed): step 4
    belongs to the abandoned run and goes, so keep_last=1 keeps the step just written."""
    train_and_save(tmp_path, 4)
    flip_a_bit(ckpt_dir(tmp_path, 4) / "model.pt")
    (ckpt_dir(tmp_path, 3) / "optimizer.pt").unlink()
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
    flip_a_bit(ckpt_dir(tmp_path, 4) / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt does not match"):
        load_checkpoint(ckpt_dir(tmp_path, 4))
    caplog.set_level(logging.WARNING, logger="cm3.checkpoint")
    assert Trainer(TrainConfig.load(None, overrides)).step == 2
    assert "step-00000004: model.pt does not match" in caplog.text.replace(
        str(tmp_path) + "/checkpoints/", ""
    )

    from model.cli import main

    empty(ckpt_dir(tmp_path, 2) / "trainer.pt")
    capsys.readouterr()
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err  # the resolved config block, then the error
    assert err.splitlines()[-1].startswith("cm3-train: error: no intact checkpoint under")
    assert "Traceback" not in err
