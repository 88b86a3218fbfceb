"""Model shapes (presets from CPU-test size to the paper's CM3-Medium/Large) and the one training config."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .objectives import MASKED_ATTENTION, N_EXTRA_IDS, OBJECTIVES


@dataclass(frozen=True)
class CM3Config:
    """Shape of the decoder-only transformer (fairseq dense-model layout, CM3 appendix A.1)."""

    vocab_size: int
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ffn: int = 3072
    max_seq_len: int = 2048
    positions: str = "sinusoidal"  # or "learned"
    dropout: float = 0.0
    pad_id: int | None = None
    block_positions: bool = False  # GLM's second position table (the glm objectives)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', not {self.positions!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CM3Config:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# (d_model, n_layers, n_heads, d_ffn); vocab comes from the tokenizer at training time.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, d_ffn=256),
    "small": dict(d_model=256, n_layers=4, n_heads=4, d_ffn=1024),
    "125m": dict(d_model=768, n_layers=12, n_heads=12, d_ffn=3072),
    "350m": dict(d_model=1024, n_layers=24, n_heads=16, d_ffn=4096),
    "1.3b": dict(d_model=2048, n_layers=24, n_heads=32, d_ffn=8192),
    "cm3-medium": dict(d_model=2560, n_layers=32, n_heads=32, d_ffn=10240),
    "cm3-large": dict(d_model=5120, n_layers=40, n_heads=40, d_ffn=20480),
}


@dataclass
class TrainConfig:
    """Everything `cm3-train train` needs; loaded from yaml/json and `key=value` overrides."""

    data: str = ""
    out: str = "runs/cm3"
    preset: str = "tiny"
    # model shape overrides (None: take the preset's value)
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    d_ffn: int | None = None
    positions: str = "sinusoidal"
    dropout: float = 0.0
    # objective and data
    objective: str = "cm3"  # see model.objectives.OBJECTIVES
    seq_len: int = 2048
    batch_size: int = 8  # per device, per micro-step
    grad_accum: int = 1
    document_attention: bool = True  # packed sequences do not attend to each other; positions restart
    seed: int = 0
    # optimisation (CM3 section 3.3)
    max_steps: int = 1000
    lr: float = 3e-4
    end_lr: float = 0.0
    warmup_steps: int = 1500
    lr_power: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    # runtime
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    precision: str = "auto"  # "auto" (bf16 on GPU, fp32 on CPU) | "bf16" | "fp32"
    parallel: str = "auto"  # "auto" (FSDP for presets >= 1.3b) | "ddp" | "fsdp"
    compile: bool = False
    # evaluation, logging, checkpoints
    eval_every: int = 500
    eval_batches: int = 20
    log_every: int = 10
    ckpt_every: int = 500
    keep_last: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        choices = {
            "objective": OBJECTIVES,
            "positions": ("sinusoidal", "learned"),
            "device": ("auto", "cpu", "cuda"),
            "precision": ("auto", "bf16", "fp32"),
            "parallel": ("auto", "ddp", "fsdp"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config {name}: {getattr(self, name)!r} is not one of {allowed}")
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "log_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"config {name} must be >= 1")
        for name in ("d_model", "n_layers", "n_heads", "d_ffn"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"config {name} must be >= 1")
        for name in (
            "warmup_steps",
            "eval_every",
            "eval_batches",
            "ckpt_every",
            "lr",
            "end_lr",
            "weight_decay",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"config {name} must be >= 0")
        if not 0.0 <= self.dropout < 1.0 or self.clip_norm <= 0 or self.adam_eps <= 0:
            raise ValueError("config: dropout must be in [0, 1), clip_norm and adam_eps > 0")

    def model_config(self, vocab_size: int, pad_id: int | None = None) -> CM3Config:
        """The model for the tokenizer's `vocab_size`; t5, glm and unilmv2 add the objectives' extra ids
        (sentinels, [MASK], [S], [P]) after it, so cm3/clm models and checkpoints keep their shape."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        shape = dict(PRESETS[self.preset])
        for name in ("d_model", "n_layers", "n_heads", "d_ffn"):
            if getattr(self, name) is not None:
                shape[name] = getattr(self, name)
        return CM3Config(
            vocab_size=vocab_size + (N_EXTRA_IDS if self.objective in MASKED_ATTENTION else 0),
            block_positions=self.objective in ("glm", "glm_doc"),
            max_seq_len=self.seq_len,
            positions=self.positions,
            dropout=self.dropout,
            pad_id=pad_id,
            **shape,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        """Read a yaml/json file (json is yaml) and apply `key=value` overrides, type-checked."""
        values: dict[str, Any] = {}
        if path is not None:
            loaded = _yaml(Path(path).read_text(), str(path)) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping of config keys")
            values.update(loaded)
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} is not key=value")
            values[key.strip()] = _yaml(raw, item)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid yaml: {e}") from e


def _coerce(key: str, value: Any, hint: Any) -> Any:
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"config {key}: None is not allowed")
    base = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint
    origin = typing.get_origin(base)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(base)):
            raise ValueError(f"config {key}: expected {len(typing.get_args(base))} values, got {value!r}")
        return tuple(_coerce(key, v, t) for v, t in zip(value, typing.get_args(base), strict=True))
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config {key}: expected true/false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config {key}: expected an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config {key}: expected a number, got {value!r}")
        return float(value)
    if base is str:
        return str(value)
    return value


__all__ = ["CM3Config", "PRESETS", "TrainConfig"]
