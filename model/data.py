"""Packed, resumable batches from memory-mapped token shards.

Each epoch visits the documents in an order keyed by (seed, epoch); rank r of w takes every w-th document
of that order, so ranks read disjoint documents. The objective turns each document into examples that
each fit one row of `seq_len` inputs (`objectives.window_len`), and rows are filled with whole examples:
the first of the next `LOOKAHEAD` pending examples that still fits goes in, and a row that none fits is
padded (weight 0). No example is ever cut, so a CM3 span always shares its row with its <mask:i>
placeholder. The loader's state (epoch, cursor, the pending examples) goes into checkpoints, so a resumed
run sees the very next batch; the corruption itself is a pure function of (seed, epoch, document, window).

A run resumed on another number of processes (`PackedLoader.load_elastic`) reads each document exactly
once all the same: the epoch's documents that no old rank had read yet (a "read layer": the old world size
and how far each old rank had come) are dealt out again by rank, and the old ranks' pending examples are
shared out whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .objectives import MASKED_ATTENTION, OBJECTIVES, Example, SpecialIds, document_examples
from .shards import ShardError, TokenSplit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
LOOKAHEAD = 8
# batch keys the model takes as keyword arguments (besides tokens)
MODEL_INPUTS = ("segment_ids", "positions", "positions2", "visible", "sees", "group")
_EXAMPLE_FIELDS = ("inputs", "targets", "weights", "positions", "positions2", "visible", "sees", "group")


def _mix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def epoch_order(keys: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """A permutation of the documents that depends only on their keys, the seed and the epoch."""
    with np.errstate(over="ignore"):
        salt = _mix64(np.uint64(seed & (2**64 - 1)) + _GOLDEN) ^ _mix64(np.uint64(epoch) * _GOLDEN + _GOLDEN)
        return np.argsort(_mix64(keys.astype(np.uint64) ^ salt), kind="stable")


@dataclass(frozen=True)
class LoaderOptions:
    objective: str
    seq_len: int
    batch_size: int
    seed: int
    mask_offset: int
    n_masks: int
    eos_id: int
    pad_id: int
    extra_offset: int  # the tokenizer's vocab_size: first id of the objectives' extra specials
    document_attention: bool = False
    shuffle: bool = True

    @property
    def special_ids(self) -> SpecialIds:
        return SpecialIds(self.pad_id, self.eos_id, self.mask_offset, self.n_masks, self.extra_offset)


class PackedLoader:
    """`next_batch()` -> dict of numpy arrays: tokens, targets (B, T) int64, weights (B, T) float32; with
    document attention or a masked-attention objective segment_ids and positions (B, T) int64; for t5, glm
    and unilmv2 the attention rule visible, sees, group (see `objectives.Example`); glm adds positions2."""

    def __init__(self, split: TokenSplit, options: LoaderOptions, rank: int = 0, world_size: int = 1) -> None:
        if options.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {options.objective!r}; choose from {OBJECTIVES}")
        if len(split) < world_size:
            raise ShardError(f"{len(split)} documents cannot feed {world_size} ranks")
        self.split = split
        self.options = options
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.cursor = 0
        self._pending: list[Example] = []
        self._docs_epoch = -1
        self._docs = np.zeros(0, dtype=np.int64)
        # (epoch, old world size, documents each old rank had read in that epoch) of elastic resumes
        self._read_layers: list[tuple[int, int, np.ndarray]] = []
        masked = options.objective in MASKED_ATTENTION
        self.batch_keys = ["tokens", "targets", "weights"]
        if masked or options.document_attention:
            self.batch_keys += ["segment_ids", "positions"]
        if options.objective in ("glm", "glm_doc"):
            self.batch_keys.append("positions2")
        if masked:
            self.batch_keys += ["visible", "sees", "group"]

    # ---- documents of this rank
    def documents(self, epoch: int) -> np.ndarray:
        """Indices of the documents this rank reads in `epoch`, in reading order."""
        return self._unread(epoch)[self.rank :: self.world_size]

    def _unread(self, epoch: int) -> np.ndarray:
        """The epoch's documents in order, less those that processes of an earlier run had read."""
        n = len(self.split)
        order = (
            epoch_order(self.split.keys, self.options.seed, epoch) if self.options.shuffle else np.arange(n)
        )
        for layer_epoch, world_size, counts in self._read_layers:
            if layer_epoch == epoch:
                keep = np.ones(len(order), dtype=bool)
                for rank, count in enumerate(counts):
                    keep[np.arange(rank, len(order), world_size)[:count]] = False
                order = order[keep]
        return order

    def _rank_docs(self) -> np.ndarray:
        if self._docs_epoch != self.epoch:
            self._docs = self.documents(self.epoch)
            self._docs_epoch = self.epoch
        return self._docs

    def _fill(self) -> None:
        o = self.options
        while len(self._pending) < LOOKAHEAD:
            docs = self._rank_docs()
            if self.cursor >= len(docs):
                self.epoch += 1
                self.cursor = 0
                continue
            d = int(docs[self.cursor])
            self.cursor += 1
            self._pending += document_examples(
                o.objective,
                self.split.doc(d).astype(np.int64),
                seq_len=o.seq_len,
                seed=o.seed,
                epoch=self.epoch,
                doc_key=int(self.split.keys[d]),
                ids=o.special_ids,
            )

    def _row(self) -> list[Example]:
        """Whole examples for one row: in order, each of the next LOOKAHEAD pending ones that still fits."""
        self._fill()
        room, taken, i = self.options.seq_len, [], 0
        while i < min(LOOKAHEAD, len(self._pending)) and room:
            if len(self._pending[i]) <= room:
                room -= len(self._pending[i])
                taken.append(self._pending.pop(i))
            else:
                i += 1
        return taken

    def next_batch(self) -> dict[str, np.ndarray]:
        o = self.options
        b, t = o.batch_size, o.seq_len
        keys = self.batch_keys
        pad = {
            "tokens": o.pad_id,
            "targets": o.pad_id,
            "weights": 0,
            "positions": 0,
            "positions2": 0,
            "visible": 0,
            "sees": 0,
            "group": -1,
        }
        batch = {
            k: np.full((b, t), pad.get(k, 0), dtype=np.float32 if k == "weights" else np.int64) for k in keys
        }
        for r in range(b):
            at = 0
            for seg, ex in enumerate(self._row()):
                n = len(ex)
                row = slice(at, at + n)
                batch["tokens"][r, row] = ex.inputs
                batch["targets"][r, row] = ex.targets
                batch["weights"][r, row] = ex.weights
                if "segment_ids" in batch:
                    batch["segment_ids"][r, row] = seg
                    batch["positions"][r, row] = np.arange(n) if ex.positions is None else ex.positions
                for k in ("positions2", "visible", "sees", "group"):
                    if k in batch:
                        batch[k][r, row] = getattr(ex, k)
                at += n
            if "segment_ids" in batch and at < t:  # padding: its own segment, so every query sees a key
                batch["segment_ids"][r, at:] = seg + 1 if at else 0
        return batch

    # ---- resumable state
    def _fingerprint(self) -> dict:
        o = self.options
        return {
            "objective": o.objective,
            "seq_len": o.seq_len,
            "batch_size": o.batch_size,
            "seed": o.seed,
            "shuffle": o.shuffle,
            "rank": self.rank,
            "world_size": self.world_size,
            "n_docs": len(self.split),
        }

    def _layers_state(self) -> dict:
        layers = self._read_layers
        return {
            "epochs": np.asarray([e for e, _, _ in layers], dtype=np.int64),
            "world_sizes": np.asarray([w for _, w, _ in layers], dtype=np.int64),
            "counts": np.concatenate([c for _, _, c in layers]) if layers else np.zeros(0, dtype=np.int64),
        }

    def _load_layers(self, state: dict | None) -> None:
        self._read_layers = []
        if state is None:
            return
        counts, at = np.asarray(state["counts"], dtype=np.int64), 0
        for epoch, world_size in zip(state["epochs"], state["world_sizes"], strict=True):
            self._read_layers.append((int(epoch), int(world_size), counts[at : at + int(world_size)]))
            at += int(world_size)
        self._docs_epoch = -1

    def state_dict(self) -> dict:
        pending = {"lengths": np.asarray([len(ex) for ex in self._pending], dtype=np.int64)}
        for name in _EXAMPLE_FIELDS:
            parts = [getattr(ex, name) for ex in self._pending if getattr(ex, name) is not None]
            if parts:
                pending[name] = np.concatenate(parts)
        return {
            "fingerprint": self._fingerprint(),
            "epoch": self.epoch,
            "cursor": self.cursor,
            "pending": pending,
            "read_layers": self._layers_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                f"loader state was saved for {state['fingerprint']}, this loader is {self._fingerprint()}; "
                "resume with the same data, objective, batch shape, seed and number of processes"
            )
        if "pending" not in state:
            raise ValueError("loader state is from a version that cut examples across rows; start a new run")
        self.epoch = int(state["epoch"])
        self.cursor = int(state["cursor"])
        self._pending = _examples(state["pending"])
        self._load_layers(state.get("read_layers"))

    def load_elastic(self, states: list[dict]) -> None:
        """Continues from the states of every rank of a run on `len(states)` processes (this loader's
        rank and world size may differ): the documents none of them had read, dealt out by this run's
        ranks, after the pending examples of old ranks rank, rank + world_size, ..."""
        mine = {k: v for k, v in self._fingerprint().items() if k not in ("rank", "world_size")}
        for state in states:
            saved = {k: v for k, v in state["fingerprint"].items() if k not in ("rank", "world_size")}
            if saved != mine:
                raise ValueError(
                    f"loader state was saved for {saved}, this loader is {mine}; resume with the same "
                    "data, objective, batch shape and seed"
                )
        old = PackedLoader(self.split, self.options, 0, len(states))  # to count what the old ranks read
        old._load_layers(states[0].get("read_layers"))
        epochs = [int(s["epoch"]) for s in states]
        layers = [layer for layer in old._read_layers if layer[0] >= min(epochs)]
        for epoch in range(min(epochs), max(epochs) + 1):
            counts = []
            for rank, state in enumerate(states):
                old.rank = rank
                whole = len(old.documents(epoch))
                counts.append(
                    whole if epochs[rank] > epoch else int(state["cursor"]) if epochs[rank] == epoch else 0
                )
            layers.append((epoch, len(states), np.asarray(counts, dtype=np.int64)))
        self._read_layers = layers
        self._docs_epoch = -1
        self.epoch, self.cursor = min(epochs), 0
        self._pending = [ex for s in states[self.rank :: self.world_size] for ex in _examples(s["pending"])]


def _examples(pending: dict) -> list[Example]:
    """The pending examples of a saved loader state (concatenated fields, cut at `lengths`)."""
    bounds = np.concatenate([[0], np.cumsum(np.asarray(pending["lengths"]))]).astype(np.int64)
    return [
        Example(
            **{
                name: np.asarray(pending[name][bounds[i] : bounds[i + 1]])
                for name in _EXAMPLE_FIELDS
                if name in pending
            }
        )
        for i in range(len(bounds) - 1)
    ]


__all__ = ["LOOKAHEAD", "MODEL_INPUTS", "LoaderOptions", "PackedLoader", "epoch_order"]
