"""Checkpoints: a manager that saves and restores whatever stateful objects it is given (torchtitan-style),
sharded (torch.distributed.checkpoint: each process writes its own shards, nothing is gathered on one
host), optionally asynchronously, published atomically (temp dir + rename) with the sha256 of every file,
checked on resume, the last k kept; resumable on another number of processes; and loading one standalone
for inference.

Layout of `<out>/checkpoints/step-00001000/`: `state/` (one DCP checkpoint of the shared states: the
trainer's model, optimizer and trainer (step, scheduler); `.metadata` plus each process's `__R_N.distcp`),
rank-00000.pt ... (each rank's states: loader, RNG), config.json ({"train": ..., "model": ...}), tokenizer/
(tokenizer.json + vocab_layout.json), and manifest.json, written last: the number of processes and the
sha256 and size of every other file. A checkpoint is trusted only through its manifest: one that is
missing or malformed makes the checkpoint unverifiable, and resume falls back to an older one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from .config import CM3Config
from .objectives import N_EXTRA_IDS
from .tokenizer import CM3Tokenizer
from .transformer import CM3Transformer

log = logging.getLogger("cm3.checkpoint")


# DCP warns on every save and load without a process group that it assumes one process: exactly what our
# no_dist=True asks for (one-process runs only). Filtered for good, as an async save warns from its thread.
warnings.filterwarnings("ignore", message="torch.distributed is .*single process", category=UserWarning)

MANIFEST = "manifest.json"
STATE_DIR = "state"  # the DCP checkpoint of the shared states
_STEP_DIR = re.compile(r"^step-(\d{8})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """No checkpoint can be restored (every one is damaged), or one to load is damaged."""


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class ModelState:
    """A model's state dict as its processes hold it (FSDP: each its shards; DDP: replicated), for DCP,
    which writes each shard once and reshards on load; the same names with or without DDP, FSDP, compile."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def state_dict(self) -> dict:
        return get_model_state_dict(self.model)

    def load_state_dict(self, state: dict) -> None:
        set_model_state_dict(self.model, state)


class OptimizerState:
    """The optimizer's state dict keyed by parameter name, sharded like the model (its moments exist
    before the first step, so that DCP can load into them)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict:
        return get_optimizer_state_dict(self.model, self.optimizer)

    def load_state_dict(self, state: dict) -> None:
        set_optimizer_state_dict(self.model, self.optimizer, state)


class RNGState:
    """The torch RNG streams of this process (CPU, and `device`'s when it is a GPU): dropout after a
    resume draws what it would have drawn."""

    def __init__(self, device: torch.device, rank: int = 0) -> None:
        self.device = device
        self.rank = rank

    def state_dict(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def load_elastic(self, states: list[dict]) -> None:
        """Another number of processes: a stream seeded from the saved ones and this rank, so that no two
        ranks draw the same dropout masks and a rerun draws the same ones."""
        digest = hashlib.sha256(self.rank.to_bytes(8, "little"))
        for state in states:
            digest.update(state["torch"].numpy().tobytes())
        torch.manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)


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
    """Published checkpoints (those with a manifest) under `root/checkpoints` (or `root` itself), oldest
    first."""
    return [p for p in _step_dirs(root) if (p / MANIFEST).is_file()]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def _file_entries(directory: Path, files: list[Path]) -> dict[str, dict]:
    """{relative name: {sha256, bytes}} of `files`, each flushed to disk first."""
    entries = {}
    for p in files:
        _fsync(p)
        entries[p.relative_to(directory).as_posix()] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return entries


def write_manifest(directory: Path, step: int, world_size: int = 1, files: dict | None = None) -> None:
    """manifest.json: the step, the number of processes that wrote it, every file's sha256 and size
    (`files`, when the processes hashed their shares already)."""
    if files is None:
        files = _file_entries(directory, _files(directory))
    manifest = {"step": step, "world_size": world_size, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _plain_name(name: object) -> bool:
    """A relative path inside the checkpoint (no '..', not absolute, not the manifest itself)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    parts = PurePosixPath(name).parts
    return not name.startswith("/") and ".." not in parts and name != MANIFEST


def read_manifest(ckpt: Path) -> dict:
    """The manifest, checked: {"step", "world_size", "files": {name: (sha256, bytes)}}; CheckpointError
    with one line where it is missing, unreadable or malformed (then nothing in the checkpoint can be
    verified, so nothing in it is trusted)."""
    path = ckpt / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{MANIFEST} missing, so none of its files can be verified")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{MANIFEST} unreadable ({type(err).__name__}: {err})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{MANIFEST} malformed: no table of files")
    world_size = manifest.get("world_size", 1)
    if type(world_size) is not int or world_size < 1:
        raise CheckpointError(f"{MANIFEST} malformed: world_size {str(world_size)[:40]!r}")
    checked = {}
    for name, entry in files.items():
        sha256 = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if not (_plain_name(name) and isinstance(sha256, str) and _SHA256.match(sha256)):
            raise CheckpointError(f"{MANIFEST} malformed: entry {str(name)[:80]!r}")
        if type(size) is not int or size < 0:
            raise CheckpointError(f"{MANIFEST} malformed: entry {name[:80]!r}")
        checked[name] = (sha256, size)
    return {"step": manifest.get("step"), "world_size": world_size, "files": checked}


def missing_files(ckpt: Path, needed: list[str]) -> list[str]:
    """The files of `ckpt`'s manifest, and of `needed`, that are not there."""
    try:
        listed = list(read_manifest(ckpt)["files"])
    except CheckpointError:
        listed = []
    return [name for name in sorted({*listed, *needed}) if not (ckpt / name).is_file()]


def damage(
    ckpt: Path, needed: list[str], only: tuple[str, ...] | None = None, part: tuple[int, int] = (0, 1)
) -> str | None:
    """What is wrong with `ckpt`, or None: it must have a valid manifest that lists `needed` and every
    file there, and the
    manifest's files (those starting with one of `only`, when given; of those, share `part` = (i, n):
    every n-th from the i-th, so that n processes check a big checkpoint together) must match their size
    and sha256."""
    try:
        files = read_manifest(ckpt)["files"]
    except CheckpointError as err:
        return str(err)
    missing = missing_files(ckpt, needed)
    if missing:
        return f"{', '.join(missing)} missing"
    unlisted = [name for name in needed if name not in files]
    unlisted += [p.relative_to(ckpt).as_posix() for p in _files(ckpt)]
    unlisted = sorted({name for name in unlisted if name not in files})
    if unlisted:  # a file nothing vouches for
        return f"{MANIFEST} does not list {', '.join(unlisted[:3])}"
    names = sorted(name for name in files if only is None or name.startswith(only))
    for name in names[part[0] :: part[1]]:
        sha256, size = files[name]
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

    `states` are one state across the processes (model, optimizer, progress), possibly sharded: every
    rank calls `state_dict` and DCP writes each rank's shards into `state/` (and reshards them on load, for
    any number of processes). `rank_states` differ per rank (loader position, RNG) and go to that rank's
    file; resumed on another number of processes, each such object's `load_elastic(states of every old
    rank)` restores this rank's share. `extra_files(directory)` writes what makes a checkpoint usable on
    its own (config, tokenizer). With `async_save`, the shards are copied to host memory and written in
    the background while training goes on; the save is published (hashed, manifest, renamed) by the next
    `save` or by `wait()`, which the caller must call before exiting. `save`, `wait` and `load` are called
    by every rank."""

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
        async_save: bool = False,
    ) -> None:
        self.base = Path(root) / "checkpoints"
        self.states = states
        self.rank_states = rank_states
        self.rank = rank
        self.world_size = world_size
        self.keep_last = keep_last
        self.extra_files = extra_files
        self.async_save = async_save
        self._in_flight = None  # (future, temp dir, step) of an asynchronous save
        # background writes coordinate over their own (CPU) group, never interleaved with training's
        self._group = dist.new_group(backend="gloo") if async_save and world_size > 1 else None

    # ---- saving
    def save(self, step: int) -> Path | None:
        """Writes step-N (after completing the save in flight); the path on rank 0 once published:
        at once, or None with `async_save` (then `wait` publishes it)."""
        self.wait()
        tmp = self.base / f".{step_dir_name(step)}.tmp"
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if self.extra_files is not None:
                self.extra_files(tmp)
        self._barrier()
        torch.save(
            {name: obj.state_dict() for name, obj in self.rank_states.items()}, tmp / rank_file(self.rank)
        )
        shared = {name: obj.state_dict() for name, obj in self.states.items()}
        single = self.world_size == 1
        if self.async_save:
            future = dcp.async_save(
                shared, checkpoint_id=tmp / STATE_DIR, process_group=self._group, no_dist=single
            )
            self._in_flight = (future, tmp, step)
            return None
        dcp.save(shared, checkpoint_id=tmp / STATE_DIR, no_dist=single)
        return self._publish(tmp, step)

    def wait(self) -> Path | None:
        """Completes the save in flight, if any, and publishes it; its path on rank 0."""
        if self._in_flight is None:
            return None
        future, tmp, step = self._in_flight
        self._in_flight = None
        future.result()
        return self._publish(tmp, step)

    def _publish(self, tmp: Path, step: int) -> Path | None:
        """Every rank hashes (and flushes) its share of the files, rank 0 writes the manifest and renames
        the directory into place: until then resume does not see it."""
        self._barrier()
        files = _files(tmp)
        hashed = [_file_entries(tmp, files[self.rank :: self.world_size])]
        if self.world_size > 1:
            every = [None] * self.world_size
            dist.all_gather_object(every, hashed[0])
            hashed = every
        final = None
        if self.rank == 0:
            entries = {name: entry for part in hashed for name, entry in part.items()}
            write_manifest(tmp, step, self.world_size, entries)
            _fsync(tmp / MANIFEST)
            _fsync(tmp)
            final = self.base / step_dir_name(step)
            if final.exists():  # re-written after a resume from an older checkpoint
                _remove(final)
            os.replace(tmp, final)
            _fsync(self.base)
            for stale in (p for p in _step_dirs(self.base) if p.name > final.name):  # resume fell back
                _remove(stale)
            older = [p for p in list_checkpoints(self.base) if p.name <= final.name]
            for old in older[: -self.keep_last] if self.keep_last > 0 else []:
                _remove(old)
            for leftover in self.base.glob(".step-*.deleting"):
                shutil.rmtree(leftover, ignore_errors=True)
        self._barrier()
        return final

    # ---- restoring
    def _needed(self, world_size: int) -> list[str]:
        """Files every checkpoint written by `world_size` processes has."""
        return [f"{STATE_DIR}/.metadata"] + [rank_file(r) for r in range(world_size)]

    def _damage(self, ckpt: Path) -> str | None:
        """`damage`, each rank checking its share of the files (the same answer on every rank)."""
        try:
            manifest = read_manifest(ckpt)
        except CheckpointError as err:
            return str(err)
        if "model.pt" in manifest["files"] and not (ckpt / STATE_DIR).is_dir():
            return (
                "written by an earlier version (whole state dicts in model.pt, optimizer.pt): resume it "
                "with that version; cm3-generate still loads it"
            )
        saved_world = manifest["world_size"]
        wrong = damage(ckpt, self._needed(saved_world), part=(self.rank, self.world_size))
        if self.world_size > 1:
            every = [None] * self.world_size
            dist.all_gather_object(every, wrong)
            wrong = next((w for w in every if w is not None), None)
        return wrong

    def _choose(self) -> Path | str | None:
        """The newest intact checkpoint, with one warning naming it and what is wrong with each newer
        one; removes older ones with files missing (a deletion cut short). A string: why none is left;
        None: there was none."""
        if not self.base.is_dir():
            return None
        if self.rank == 0:
            for leftover in self.base.glob(".step-*.deleting"):
                shutil.rmtree(leftover, ignore_errors=True)
        candidates = _step_dirs(self.base)
        problems = []
        for i in range(len(candidates) - 1, -1, -1):
            ckpt = candidates[i]
            wrong = self._damage(ckpt)
            if wrong is not None:
                problems.append(f"{ckpt.name}: {wrong}")
                continue
            if self.rank == 0:
                if problems:
                    log.warning("resuming from %s, not from the newer %s", ckpt, "; ".join(problems))
                for older in candidates[:i]:
                    if (older / MANIFEST).is_file() and missing_files(older, []):
                        log.warning("removing %s: files missing, a deletion cut short", older)
                        shutil.rmtree(older)
            return ckpt
        return f"no intact checkpoint under {self.base} ({'; '.join(problems)})" if problems else None

    def load(self, check: Callable[[Path], None] | None = None) -> Path | None:
        """Restores every state from the newest intact checkpoint (None: there is none, a fresh start);
        `check(checkpoint)` may refuse it (a different model) before anything is restored."""
        ckpt = self._choose()
        if isinstance(ckpt, str):
            raise CheckpointError(ckpt)
        if ckpt is None:
            return None
        if check is not None:
            check(ckpt)
        shared = {name: obj.state_dict() for name, obj in self.states.items()}
        dcp.load(shared, checkpoint_id=ckpt / STATE_DIR, no_dist=self.world_size == 1)
        for name, obj in self.states.items():
            obj.load_state_dict(shared[name])
        saved_world = read_manifest(ckpt)["world_size"]
        if saved_world == self.world_size:
            own = _load(ckpt / rank_file(self.rank))
            for name, obj in self.rank_states.items():
                obj.load_state_dict(own[name])
            return ckpt
        every = [_load(ckpt / rank_file(r)) for r in range(saved_world)]
        for name, obj in self.rank_states.items():
            if not hasattr(obj, "load_elastic"):
                raise CheckpointError(
                    f"{ckpt} was written by {saved_world} processes and its {name} state cannot be shared "
                    f"out among {self.world_size}; resume with {saved_world}"
                )
            obj.load_elastic([state[name] for state in every])
        if self.rank == 0:
            log.info("resumed %s, written by %d processes, on %d", ckpt, saved_world, self.world_size)
        return ckpt

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _load(path: Path, device: str | torch.device = "cpu"):
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # verified, yet not a torch file
        first_line = next(iter(str(err).splitlines()), "")
        raise CheckpointError(f"{path} cannot be read: {type(err).__name__} {first_line}".rstrip()) from None


# ---- standalone loading


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or the latest one of a run directory."""
    path = Path(path)
    if (path / MANIFEST).exists() or (path / "model.pt").exists():
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
    """The files `load_checkpoint` needs: model.pt, config.json, tokenizer/, and their manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, directory / "model.pt")
    write_model_config(directory, model_cfg, tokenizer, train_cfg)
    write_manifest(directory, step=0)


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


def read_model_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """The model's whole state dict on the host, from a training checkpoint's sharded `state/` (any number
    of processes wrote it) or a model directory's model.pt; no process group needed."""
    if not (ckpt / STATE_DIR).is_dir():
        return _load(ckpt / "model.pt")
    metadata = dcp.FileSystemReader(ckpt / STATE_DIR).read_metadata().state_dict_metadata
    model = {
        name.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
        for name, meta in metadata.items()
        if name.startswith("model.") and isinstance(meta, TensorStorageMetadata)
    }
    state = {"model": model}
    dcp.load(state, checkpoint_id=ckpt / STATE_DIR, no_dist=True)
    return state["model"]


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[CM3Transformer, CM3Tokenizer, CM3Config]:
    """(model in eval mode on `device`, tokenizer, model config) from a checkpoint or run directory,
    checked against its manifest first."""
    ckpt = resolve_checkpoint(path)
    sharded = (ckpt / STATE_DIR).is_dir()
    weights = f"{STATE_DIR}/.metadata" if sharded else "model.pt"
    only = (f"{STATE_DIR}/" if sharded else "model.pt", "config.json", "tokenizer/")
    wrong = damage(ckpt, [weights, "config.json"], only=only)
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
    model = model.to_empty(device=device)
    model.load_state_dict(read_model_state(ckpt))
    model.init_buffers()
    return model.eval(), tokenizer, cfg


__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "ModelState",
    "OptimizerState",
    "RNGState",
    "list_checkpoints",
    "load_checkpoint",
    "read_manifest",
    "read_model_state",
    "resolve_checkpoint",
]
