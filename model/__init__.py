"""CM3 model: tokenizer, objectives, token shards, transformer, trainer (`cm3-train`).

Names are imported lazily so that tokenizer/shard worker processes do not pay for importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "CM3Config": ".config",
    "PRESETS": ".config",
    "TrainConfig": ".config",
    "CM3Tokenizer": ".tokenizer",
    "CM3Transformer": ".transformer",
    "KVCache": ".transformer",
    "load_checkpoint": ".checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
