"""Packed, resumable batches from memory-mapped token shards.

Each epoch visits the documents in an order keyed by (seed, epoch); rank r of w takes every w-th document
of that order, so ranks read disjoint documents. Documents are cut into windows of `seq_len` tokens, the
objective turns each window into a training sequence, and sequences are concatenated into one stream that
is cut into rows of `seq_len` (+1 token for the shifted targets), without padding. The loader's state
(epoch, cursor, the stream's unconsumed tail) goes into checkpoints, so a resumed run sees the very next
batch; the masking itself is a pure function of (seed, epoch, document key, window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .objectives import OBJECTIVES, apply_objective
from .shards import ShardError, TokenSplit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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
    document_attention: bool = False
    shuffle: bool = True


class PackedLoader:
    """`next_batch()` -> dict of numpy arrays: tokens, targets (B, T) int64, weights (B, T) float32, and with
    document attention segment_ids and positions (B, T) int64."""

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
        self._stream = np.zeros(0, dtype=np.int64)
        self._segments = np.zeros(0, dtype=np.int64)
        self._next_segment = 0
        self._docs_epoch = -1
        self._docs = np.zeros(0, dtype=np.int64)

    # ---- documents of this rank
    def documents(self, epoch: int) -> np.ndarray:
        """Indices of the documents this rank reads in `epoch`, in reading order."""
        n = len(self.split)
        order = (
            epoch_order(self.split.keys, self.options.seed, epoch) if self.options.shuffle else np.arange(n)
        )
        return order[self.rank :: self.world_size]

    def _rank_docs(self) -> np.ndarray:
        if self._docs_epoch != self.epoch:
            self._docs = self.documents(self.epoch)
            self._docs_epoch = self.epoch
        return self._docs

    def _fill(self, need: int) -> None:
        o = self.options
        have = len(self._stream)
        tokens, segments = [self._stream], [self._segments]
        while have < need:
            docs = self._rank_docs()
            if self.cursor >= len(docs):
                self.epoch += 1
                self.cursor = 0
                continue
            d = int(docs[self.cursor])
            self.cursor += 1
            doc = self.split.doc(d).astype(np.int64)
            seqs = apply_objective(
                o.objective,
                doc,
                window_len=o.seq_len,
                seed=o.seed,
                epoch=self.epoch,
                doc_key=int(self.split.keys[d]),
                mask_offset=o.mask_offset,
                eos_id=o.eos_id,
            )
            for seq in seqs:
                tokens.append(seq)
                segments.append(np.full(len(seq), self._next_segment, dtype=np.int64))
                have += len(seq)
                if o.objective == "cm3":  # each masked window is its own sequence
                    self._next_segment += 1
            if o.objective != "cm3":
                self._next_segment += 1
        self._stream = np.concatenate(tokens)
        self._segments = np.concatenate(segments)

    def next_batch(self) -> dict[str, np.ndarray]:
        o = self.options
        b, t = o.batch_size, o.seq_len
        self._fill(b * t + 1)
        index = np.arange(b)[:, None] * t + np.arange(t + 1)[None, :]
        rows = self._stream[index]
        targets = rows[:, 1:]
        is_mask = (targets >= o.mask_offset) & (targets < o.mask_offset + o.n_masks)
        batch = {"tokens": rows[:, :-1], "targets": targets, "weights": (~is_mask).astype(np.float32)}
        if o.document_attention:
            seg = self._segments[index[:, :-1]]
            seg = seg - seg[:, :1]  # small ids per row
            starts = np.concatenate([np.ones((b, 1), bool), seg[:, 1:] != seg[:, :-1]], axis=1)
            start_at = np.maximum.accumulate(np.where(starts, np.arange(t)[None, :], 0), axis=1)
            batch["segment_ids"] = seg
            batch["positions"] = np.arange(t)[None, :] - start_at
        self._stream = self._stream[b * t :]
        self._segments = self._segments[b * t :]
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

    def state_dict(self) -> dict:
        return {
            "fingerprint": self._fingerprint(),
            "epoch": self.epoch,
            "cursor": self.cursor,
            "next_segment": self._next_segment,
            "stream": self._stream.copy(),
            "segments": self._segments.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                f"loader state was saved for {state['fingerprint']}, this loader is {self._fingerprint()}; "
                "resume with the same data, objective, batch shape, seed and number of processes"
            )
        self.epoch = int(state["epoch"])
        self.cursor = int(state["cursor"])
        self._next_segment = int(state["next_segment"])
        self._stream = np.asarray(state["stream"], dtype=np.int64)
        self._segments = np.asarray(state["segments"], dtype=np.int64)


__all__ = ["LoaderOptions", "PackedLoader", "epoch_order"]
