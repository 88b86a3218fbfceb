"""Checkpoints: a manager that saves and restores whatever stateful objects it is given (torchtitan-style),
written atomically (temp dir + rename), checked by sha256 on resume, the last k kept; and loading one
standalone for inference.

Layout of `<out>/checkpoints/step-00001000/`: one `{name}.pt` per shared state (the trainer's: model.pt
(full state dict), optimizer.pt, trainer.pt (step, scheduler)), rank-00000.pt ... (each rank's states:
loader, RNG), config.json ({"train": ..., "model": ...}), tokenizer/ (tokenizer.json + vocab_layout.json),
and manifest.json, written last: the sha256 and size of every other file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist

from .config import CM3Config
from .objectives import N_EXTRA_IDS
from .tokenizer import CM3Tokenizer
from .transformer import CM3Transformer

log = logging.getLogger("cm3.checkpoint")
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """No checkpoint can be restored (every one is damaged), or one to load is damaged."""


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class RNGState:
    """The torch RNG streams of this process (CPU, and `device`'s when it is a GPU): dropout after a
    resume draws what it would have drawn."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def state_dict(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def rank_file(rank: int) -> str:
    return f"rank-{rank:05d}.pt"


def _checkpoints_dir(root: Path) -> Path:
    return root / "checkpoints" if (root / "checkpoints").is_dir() else root


def _step_dirs(root: str | Path) -> list[Path]:
    base = _checkpoints_dir(Path(root))
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)), key=lambda p: p.name)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Published checkpoints under `root/checkpoints` (or `root` itself), oldest first: those with a
    manifest, and those written before manifests existed (trainer.pt was written last then)."""
    return [p for p in _step_dirs(root) if (p / MANIFEST).exists() or (p / "trainer.pt").exists()]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(directory: Path, step: int) -> None:
    files = {
        p.relative_to(directory).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in _files(directory)
    }
    (directory / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1, sort_keys=True))


def _manifest_files(ckpt: Path) -> dict | None:
    """The manifest's {name: {sha256, bytes}}; None without a manifest (written before they existed)."""
    path = ckpt / MANIFEST
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        return {name: (str(e["sha256"]), int(e["bytes"])) for name, e in files.items()}
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{MANIFEST} unreadable ({type(err).__name__}: {err})") from None


def missing_files(ckpt: Path, needed: list[str]) -> list[str]:
    """The files of `ckpt`'s manifest, and of `needed`, that are not there."""
    try:
        listed = list(_manifest_files(ckpt) or {})
    except CheckpointError:
        listed = []
    return [name for name in sorted({*listed, *needed}) if not (ckpt / name).is_file()]


def damage(ckpt: Path, needed: list[str], only: tuple[str, ...] | None = None) -> str | None:
    """What is wrong with `ckpt`, or None: its manifest's files (those starting with one of `only`, when
    given) must match their size and sha256, and `needed` must be there. A checkpoint written before
    manifests existed is only checked for `needed` being there."""
    try:
        files = _manifest_files(ckpt)
    except CheckpointError as err:
        return str(err)
    missing = missing_files(ckpt, needed)
    if missing:
        return f"{', '.join(missing)} missing"
    for name, (sha256, size) in (files or {}).items():
        if only is not None and not name.startswith(only):
            continue
        found = (ckpt / name).stat().st_size
        if found != size:
            return f"{name} has {found} bytes, the manifest says {size}"
        if sha256_file(ckpt / name) != sha256:
            return f"{name} does not match its sha256 in the manifest"
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Renames, then deletes: a deletion cut short leaves a hidden directory, never a half checkpoint."""
    doomed = path.with_name(f".{path.name}.deleting")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed)


class CheckpointManager:
    """Saves and restores named stateful objects (anything with `state_dict` / `load_state_dict`).

    `states` are the same on every rank (model, optimizer, progress): every rank calls `state_dict` (it
    may be a collective, e.g. gathering FSDP shards), rank 0 writes `{name}.pt`. `rank_states` differ per
    rank (loader position, RNG) and go to that rank's file. `extra_files(directory)` writes what makes a
    checkpoint usable on its own (config, tokenizer). `save` and `load` are called by every rank."""

    def __init__(
        self,
        root: str | Path,
        states: Mapping[str, Stateful],
        rank_states: Mapping[str, Stateful],
        *,
        rank: int = 0,
        world_size: int = 1,
        keep_last: int = 0,
        extra_files: Callable[[Path], None] | None = None,
    ) -> None:
        self.base = Path(root) / "checkpoints"
        self.states = states
        self.rank_states = rank_states
        self.rank = rank
        self.world_size = world_size
        self.keep_last = keep_last
        self.extra_files = extra_files

    # ---- saving
    def save(self, step: int) -> Path | None:
        """Writes step-N atomically and prunes to the newest `keep_last`; the path on rank 0."""
        shared = {name: obj.state_dict() for name, obj in self.states.items()}
        tmp = self.base / f".{step_dir_name(step)}.tmp"
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name, state in shared.items():
                torch.save(state, tmp / f"{name}.pt")
            if self.extra_files is not None:
                self.extra_files(tmp)
        self._barrier()
        torch.save(
            {name: obj.state_dict() for name, obj in self.rank_states.items()}, tmp / rank_file(self.rank)
        )
        self._barrier()
        final = None
        if self.rank == 0:
            final = self._publish(tmp, step)
        self._barrier()
        return final

    def _publish(self, tmp: Path, step: int) -> Path:
        for p in _files(tmp):
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        write_manifest(tmp, step)
        _fsync(tmp / MANIFEST)
        _fsync(tmp)
        final = self.base / step_dir_name(step)
        if final.exists():  # re-written after a resume from an older checkpoint
            _remove(final)
        os.replace(tmp, final)
        _fsync(self.base)
        published = list_checkpoints(self.base)
        for stale in (p for p in published if p.name > final.name):  # damaged ones resume fell back from
            _remove(stale)
        older = [p for p in published if p.name <= final.name]
        for old in older[: -self.keep_last] if self.keep_last > 0 else []:
            _remove(old)
        for leftover in self.base.glob(".step-*.deleting"):
            shutil.rmtree(leftover, ignore_errors=True)
        return final

    # ---- restoring
    def _needed(self) -> list[str]:
        """Files every checkpoint has (the manifest names the other ranks' files)."""
        return [f"{name}.pt" for name in self.states] + [rank_file(0)]

    def _choose(self) -> Path | str | None:
        """The newest intact checkpoint; warns about each damaged newer one, removes older ones with
        files missing (a deletion cut short). A string: why none is left; None: there was none."""
        if not self.base.is_dir():
            return None
        for leftover in self.base.glob(".step-*.deleting"):
            shutil.rmtree(leftover, ignore_errors=True)
        candidates = _step_dirs(self.base)
        problems = []
        for i in range(len(candidates) - 1, -1, -1):
            ckpt = candidates[i]
            wrong = damage(ckpt, self._needed())
            if wrong is None:
                if not (ckpt / MANIFEST).exists():
                    log.warning("%s was written before checkpoints had checksums: restored unverified", ckpt)
                for older in candidates[:i]:
                    if missing_files(older, self._needed()):
                        log.warning("removing %s: files missing, a deletion cut short", older)
                        shutil.rmtree(older)
                return ckpt
            problems.append(f"{ckpt.name}: {wrong}")
            log.warning("not resuming from %s: %s", ckpt, wrong)
        return f"no intact checkpoint under {self.base} ({'; '.join(problems)})" if problems else None

    def load(self, check: Callable[[Path], None] | None = None) -> Path | None:
        """Restores every state from the newest intact checkpoint (None: there is none, a fresh start);
        `check(checkpoint)` may refuse it (a different model) before anything is restored."""
        choice = [self._choose() if self.rank == 0 else None]
        if self.world_size > 1:
            dist.broadcast_object_list(choice, src=0)
        ckpt = choice[0]
        if isinstance(ckpt, str):
            raise CheckpointError(ckpt)
        if ckpt is None:
            return None
        if check is not None:
            check(ckpt)
        for name, obj in self.states.items():
            obj.load_state_dict(_load(ckpt / f"{name}.pt"))
        own = _load(ckpt / rank_file(self.rank))
        for name, obj in self.rank_states.items():
            obj.load_state_dict(own[name])
        return ckpt

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _load(path: Path, device: str | torch.device = "cpu"):
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # a damaged file of an unverified checkpoint
        first_line = next(iter(str(err).splitlines()), "")
        raise CheckpointError(f"{path} cannot be read: {type(err).__name__} {first_line}".rstrip()) from None


# ---- standalone loading


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or the latest one of a run directory."""
    path = Path(path)
    if (path / "model.pt").exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {path}")
    return found[-1]


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
    write_model_config(directory, model_cfg, tokenizer, train_cfg)


def write_model_config(
    directory: Path,
    model_cfg: CM3Config,
    tokenizer: CM3Tokenizer,
    train_cfg: dict | None = None,
    data: dict | None = None,
) -> None:
    """config.json and tokenizer/: with model.pt, a checkpoint that loads on its own. `data` says what the
    training data held (`image_tokens`: none means the model never saw an image)."""
    config = {"model": model_cfg.to_dict(), "train": train_cfg or {}}
    if data is not None:
        config["data"] = data
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save(directory / "tokenizer")


def read_config(ckpt: Path) -> dict:
    return json.loads((ckpt / "config.json").read_text())


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[CM3Transformer, CM3Tokenizer, CM3Config]:
    """(model in eval mode on `device`, tokenizer, model config) from a checkpoint or run directory;
    a checkpoint with a manifest is checked against it first."""
    ckpt = resolve_checkpoint(path)
    wrong = damage(ckpt, ["model.pt", "config.json"], only=("model.pt", "config.json", "tokenizer/"))
    if wrong is not None:
        raise CheckpointError(f"{ckpt}: {wrong}")
    cfg = CM3Config.from_dict(read_config(ckpt)["model"])
    tokenizer = CM3Tokenizer.load(ckpt / "tokenizer")
    if cfg.vocab_size == tokenizer.vocab_size + N_EXTRA_IDS:
        objective = read_config(ckpt)["train"].get("objective", "t5, glm or unilmv2")
        raise CheckpointError(
            f"{ckpt}: trained with objective={objective}, whose extra ids ({N_EXTRA_IDS}: T5 sentinels, "
            "[MASK], [S], [P]) CM3's prompts never use; prompt a cm3 or clm model (bench/objectives.py "
            "scores the others)"
        )
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(f"{ckpt}: tokenizer vocab {tokenizer.vocab_size} != model vocab {cfg.vocab_size}")
    with torch.device("meta"):
        model = CM3Transformer(cfg)
    state = _load(ckpt / "model.pt", device)
    model = model.to_empty(device=device)
    model.load_state_dict(state)
    model.init_buffers()
    return model.eval(), tokenizer, cfg


__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "RNGState",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_checkpoint",
]
