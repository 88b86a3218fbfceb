"""CM3 model: tokenizer, objectives, token shards, transformer, trainer (`cm3-train`)."""

from .checkpoint import load_checkpoint
from .config import PRESETS, CM3Config, TrainConfig
from .tokenizer import CM3Tokenizer
from .transformer import CM3Transformer, KVCache

__all__ = [
    "CM3Config",
    "CM3Tokenizer",
    "CM3Transformer",
    "KVCache",
    "PRESETS",
    "TrainConfig",
    "load_checkpoint",
]
