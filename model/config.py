"""Model shapes (presets from CPU-test size to the paper's CM3-Medium/Large) and the one training config."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import textwrap
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from image_tokenizer.config_files import parse_config, read_config_file, shorten

from .objectives import MASKED_ATTENTION, N_EXTRA_IDS, OBJECTIVES, window_len


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


@dataclass(frozen=True)
class Rule:
    """What a config key means and which values it takes: the one source of `cm3-train train --help`, of the
    checks on every value, and of which keys a resumed run may change."""

    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is excluded
    high_open: bool = False
    choices: tuple[str, ...] = ()
    on_resume: bool = False  # may differ from the run directory's saved config

    def describe(self) -> str:
        if self.choices:
            return "one of " + " | ".join(self.choices)
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {_number(self.low)}"
        high = None if self.high is None else f"{'<' if self.high_open else '<='} {_number(self.high)}"
        if low and high:
            return f"{low} and {high}"
        return low or high or ""

    def allows(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _key(default: Any, meaning: str, **rule: Any) -> Any:
    return field(default=default, metadata={"rule": Rule(meaning, **rule)})


MAX_SEQ_LEN = 2**20  # a typo such as seq_len=20480000 is refused before a position table is allocated
MAX_INT = 2**63 - 1  # counts and seeds go through int64 (numpy, torch)
SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "d_ffn")


@dataclass
class TrainConfig:
    """Everything `cm3-train train` needs; loaded from yaml/json and `key=value` overrides, every value
    checked against its key's `Rule` when the config is made."""

    data: str = _key("", "token shard directory (`cm3-train tokenize` output); --data sets it")
    out: str = _key("runs/cm3", "run directory: config.json, log.jsonl, checkpoints/", on_resume=True)
    preset: str = _key("tiny", "model shape (the presets above)", choices=tuple(PRESETS))
    # model shape overrides (None: take the preset's value)
    d_model: int | None = _key(None, "model width (null: the preset's)", low=1)
    n_layers: int | None = _key(None, "transformer blocks (null: the preset's)", low=1)
    n_heads: int | None = _key(None, "attention heads, must divide d_model (null: the preset's)", low=1)
    d_ffn: int | None = _key(None, "MLP hidden width (null: the preset's)", low=1)
    positions: str = _key("sinusoidal", "position embeddings", choices=("sinusoidal", "learned"))
    dropout: float = _key(0.0, "dropout probability", low=0.0, high=1.0, high_open=True)
    # objective and data
    objective: str = _key("cm3", "training objective (model/README.md, Objectives)", choices=OBJECTIVES)
    seq_len: int = _key(
        2048, "tokens per row (long enough for the objective's sentinels)", low=1, high=MAX_SEQ_LEN
    )
    batch_size: int = _key(8, "rows per device per micro-step", low=1)
    grad_accum: int = _key(1, "micro-steps per optimizer step", low=1)
    document_attention: bool = _key(True, "packed examples do not attend to each other; positions restart")
    seed: int = _key(0, "seeds the initial weights, document order and masking", low=0, high=MAX_INT)
    # optimisation (CM3 section 3.3)
    max_steps: int = _key(1000, "optimizer steps in all (raise it to extend a run)", low=1, on_resume=True)
    lr: float = _key(3e-4, "peak learning rate, reached after warm-up", low=0, low_open=True)
    end_lr: float = _key(0.0, "learning rate at max_steps (<= lr)", low=0)
    warmup_steps: int = _key(1500, "steps of linear warm-up from 0 to lr", low=0)
    lr_power: float = _key(1.0, "power of the decay from lr to end_lr (1: linear)", low=0, low_open=True)
    adam_betas: tuple[float, float] = _key(
        (0.9, 0.98), "Adam's two betas, each", low=0.0, high=1.0, high_open=True
    )
    adam_eps: float = _key(1e-8, "Adam's epsilon", low=0, low_open=True)
    weight_decay: float = _key(0.01, "AdamW weight decay (matrices only)", low=0)
    clip_norm: float = _key(1.0, "gradient-norm clipping threshold", low=0, low_open=True)
    # runtime
    device: str = _key(
        "auto", "auto: cuda when torch sees a GPU, else cpu", choices=("auto", "cpu", "cuda"), on_resume=True
    )
    precision: str = _key("auto", "auto: bf16 autocast on GPU, fp32 on CPU", choices=("auto", "bf16", "fp32"))
    parallel: str = _key(
        "auto",
        "under torchrun; auto: fsdp for 1.3b and larger, else ddp",
        choices=("auto", "ddp", "fsdp"),
        on_resume=True,
    )
    compile: bool = _key(False, "torch.compile the model", on_resume=True)
    attention: str = _key(
        "auto",
        "masked attention path; auto: SDPA's causal kernel for batches whose rows hold one document, "
        "else flex on GPU, dense on CPU (torch has no flex backward there)",
        choices=("auto", "dense", "flex"),
        on_resume=True,
    )
    activation_checkpointing: bool = _key(
        False, "recompute each block's activations in the backward pass (memory for compute)", on_resume=True
    )
    # evaluation, logging, checkpoints
    eval_every: int = _key(500, "validation loss every N steps (0: never)", low=0, on_resume=True)
    eval_batches: int = _key(20, "validation batches per evaluation", low=0, on_resume=True)
    log_every: int = _key(10, "log.jsonl record every N steps", low=1, on_resume=True)
    ckpt_every: int = _key(500, "checkpoint every N steps (0: only at the end)", low=0, on_resume=True)
    keep_last: int = _key(3, "checkpoints kept", low=1, on_resume=True)
    progress: bool = _key(True, "progress bar on a terminal", on_resume=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            rule: Rule = f.metadata["rule"]
            value = getattr(self, f.name)
            for item in value if isinstance(value, tuple) else (value,):
                if item is not None and not rule.allows(item):
                    close = difflib.get_close_matches(str(item), rule.choices, n=1, cutoff=0.5)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    raise ValueError(f"config {f.name}: must be {rule.describe()}, got {item!r}{hint}")
                if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
                    raise ValueError(f"config {f.name}: {item} is out of range")
        if self.end_lr > self.lr:
            raise ValueError(f"config end_lr: {self.end_lr:g} is above lr {self.lr:g}")
        shape = self.shape()
        if shape["d_model"] % shape["n_heads"]:
            raise ValueError(
                f"config: d_model {shape['d_model']} is not divisible by n_heads {shape['n_heads']}"
            )
        if not _fits(self.objective, self.seq_len):
            shortest = next(n for n in range(1, MAX_SEQ_LEN) if _fits(self.objective, n))
            raise ValueError(
                f"config seq_len: {self.seq_len} is too short for the {self.objective} objective "
                f"(at least {shortest})"
            )

    def schedule_warning(self) -> str | None:
        """One line when the warm-up outlasts the run, so the learning rate never reaches `lr` (the defaults
        do this: max_steps 1000, warmup_steps 1500). A warning, not a refusal: a short trial run is one."""
        if self.warmup_steps <= self.max_steps:
            return None
        top = self.lr * self.max_steps / self.warmup_steps
        return (
            f"warmup_steps {self.warmup_steps} > max_steps {self.max_steps}: the learning rate rises to "
            f"{top:.3g} ({self.max_steps / self.warmup_steps:.0%} of lr {self.lr:g}) and never reaches lr "
            f"nor decays; set warmup_steps below max_steps (e.g. warmup_steps={max(1, self.max_steps // 10)})"
        )

    def shape(self) -> dict[str, int]:
        """(d_model, n_layers, n_heads, d_ffn): the preset's, with the overrides that are set."""
        shape = dict(PRESETS[self.preset])
        shape.update({name: getattr(self, name) for name in SHAPE_KEYS if getattr(self, name) is not None})
        return shape

    def model_config(self, vocab_size: int, pad_id: int | None = None) -> CM3Config:
        """The model for the tokenizer's `vocab_size`; t5, glm and unilmv2 add the objectives' extra ids
        (sentinels, [MASK], [S], [P]) after it, so cm3/clm models and checkpoints keep their shape."""
        return CM3Config(
            vocab_size=vocab_size + (N_EXTRA_IDS if self.objective in MASKED_ATTENTION else 0),
            block_positions=self.objective in ("glm", "glm_doc"),
            max_seq_len=self.seq_len,
            positions=self.positions,
            dropout=self.dropout,
            pad_id=pad_id,
            **self.shape(),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    def to_yaml(self) -> str:
        """The config as yaml in field order: what `--config` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def resume_conflicts(self, saved: dict[str, Any]) -> list[str]:
        """`key: saved -> new` for each key a resumed run may not change (the objective, batch shape, model,
        optimiser, seed, data: what exact resume depends on). Keys the saved config lacks are not compared."""
        new = self.to_dict()
        out = []
        for f in fields(self):
            if f.metadata["rule"].on_resume or f.name not in saved or saved[f.name] == new[f.name]:
                continue
            if f.name == "data" and _same_token_shards(saved["data"], self.data):
                continue
            out.append(f"{f.name}: {saved[f.name]!r} -> {new[f.name]!r}")
        return out

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        """Read a yaml/json file (json is yaml) and apply `key=value` overrides, type-checked."""
        values: dict[str, Any] = {}
        if path is not None:
            loaded = read_config_file(path, "--config") or {}  # ValueError, one line: bombs, dup keys ...
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping of config keys")
            values.update(loaded)
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} is not key=value")
            values[key.strip()] = parse_config(raw, shorten(item))
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        hints = typing.get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                (close,) = difflib.get_close_matches(str(key), known, n=1, cutoff=0.0)
                raise ValueError(
                    f"unknown config key {key!r}; the closest known key is {close} "
                    "(cm3-train train --help lists them all)"
                )
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _fits(objective: str, seq_len: int) -> bool:
    try:
        window_len(objective, seq_len)
    except ValueError:
        return False
    return True


def _same_token_shards(saved: str, new: str) -> bool:
    """A resumed run may read the same token shards from another place: same path, the old path gone
    (moved), or an identical manifest (which holds every file's sha256)."""
    old_path, new_path = Path(saved), Path(new)
    if old_path.resolve() == new_path.resolve() or not (old_path / "manifest.json").exists():
        return True
    try:
        return (old_path / "manifest.json").read_bytes() == (new_path / "manifest.json").read_bytes()
    except OSError:
        return False


def config_help() -> str:
    """The presets and every config key with its default, meaning and range (for `cm3-train train --help`),
    written from the dataclass so that it cannot drift from what is checked."""
    lines = ["presets (d_model, n_layers, n_heads, d_ffn):"]
    for name, p in PRESETS.items():
        lines.append(f"  {name:<11} {p['d_model']:>5} {p['n_layers']:>3} {p['n_heads']:>3} {p['d_ffn']:>6}")
    lines += [
        "",
        "config keys (key=value after the options, or a yaml/json --config file); * = may differ when a run",
        "directory is resumed (the others must match its saved config.json, or pass --overwrite):",
    ]
    for f in fields(TrainConfig):
        rule: Rule = f.metadata["rule"]
        default = f.default
        shown = (
            "null"
            if default is None
            else json.dumps(list(default) if isinstance(default, tuple) else default)
        )
        allowed = rule.describe()
        text = rule.meaning + (f"; {allowed}" if allowed else "")
        star = "*" if rule.on_resume else " "
        lines += textwrap.wrap(
            f" {star}{f.name:<18} {shown:<12} {text}", width=108, subsequent_indent=" " * 34
        )
    return "\n".join(lines)


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"config {key}: expected a finite number, got {value!r}")
        return float(value)
    if base is str:
        return str(value)
    return value


__all__ = ["CM3Config", "PRESETS", "Rule", "TrainConfig", "config_help"]
