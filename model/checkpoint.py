"""Checkpoint directories written atomically (temp dir + rename), the last k kept, loadable standalone.

Layout of `<out>/checkpoints/step-00001000/`: model.pt (full state dict), optimizer.pt, trainer.pt
(step, scheduler), rank-00000.pt ... (each rank's loader state and RNG states), config.json
({"train": ..., "model": ...}), tokenizer/ (tokenizer.json + vocab_layout.json).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from .config import CM3Config
from .tokenizer import CM3Tokenizer
from .transformer import CM3Transformer

_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root/checkpoints` (or `root` itself), oldest first."""
    root = Path(root)
    base = root / "checkpoints" if (root / "checkpoints").is_dir() else root
    if not base.is_dir():
        return []
    found = [
        p for p in base.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / "trainer.pt").exists()
    ]
    return sorted(found, key=lambda p: p.name)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or the latest one of a run directory."""
    path = Path(path)
    if (path / "model.pt").exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {path}")
    return found[-1]


def begin_checkpoint(root: str | Path, step: int) -> Path:
    """The temporary directory every rank writes into before `commit_checkpoint` renames it."""
    tmp = Path(root) / "checkpoints" / f".{step_dir_name(step)}.tmp"
    return tmp


def commit_checkpoint(root: str | Path, step: int, keep_last: int) -> Path:
    """Atomically publish the temp dir as step-N, then delete all but the newest `keep_last`."""
    base = Path(root) / "checkpoints"
    tmp = begin_checkpoint(root, step)
    final = base / step_dir_name(step)
    if final.exists():  # re-written after a resume from an older checkpoint
        shutil.rmtree(final)
    _fsync_dir_files(tmp)
    os.replace(tmp, final)
    _fsync(base)
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir_files(directory: Path) -> None:
    for p in directory.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync(directory)


def write_model_files(
    directory: str | Path,
    state_dict: dict[str, torch.Tensor],
    model_cfg: CM3Config,
    tokenizer: CM3Tokenizer,
    train_cfg: dict | None = None,
) -> None:
    """The files `load_checkpoint` needs: model.pt, config.json, tokenizer/."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, directory / "model.pt")
    config = {"model": model_cfg.to_dict(), "train": train_cfg or {}}
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save(directory / "tokenizer")


def read_config(ckpt: Path) -> dict:
    return json.loads((ckpt / "config.json").read_text())


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[CM3Transformer, CM3Tokenizer, CM3Config]:
    """(model in eval mode on `device`, tokenizer, model config) from a checkpoint or run directory."""
    ckpt = resolve_checkpoint(path)
    cfg = CM3Config.from_dict(read_config(ckpt)["model"])
    tokenizer = CM3Tokenizer.load(ckpt / "tokenizer")
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(f"{ckpt}: tokenizer vocab {tokenizer.vocab_size} != model vocab {cfg.vocab_size}")
    with torch.device("meta"):
        model = CM3Transformer(cfg)
    state = torch.load(ckpt / "model.pt", map_location=device, weights_only=True)
    model = model.to_empty(device=device)
    model.load_state_dict(state)
    model.init_buffers()
    return model.eval(), tokenizer, cfg


__all__ = ["load_checkpoint", "list_checkpoints", "resolve_checkpoint"]
