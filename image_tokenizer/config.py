"""The VQGAN's identity without torch: the bundled checkpoint's paths and the taming yaml's `model.params`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_files import read_config_file

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CHECKPOINT = str(DATA_DIR / "small_vqgan_f16.ckpt")
DEFAULT_CONFIG = str(DATA_DIR / "small_vqgan_f16.yaml")

# Model classes whose weights are exactly Encoder/Decoder/VectorQuantizer/quant convs.
SUPPORTED_TARGETS = ("taming.models.vqgan.VQModel",)


def model_params_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`model.params` of a taming yaml (or of the bare params mapping), checked for what we support."""
    model = config.get("model", config)
    target = model.get("target", SUPPORTED_TARGETS[0])
    if target not in SUPPORTED_TARGETS:
        raise ValueError(f"unsupported taming model {target!r}; supported: {', '.join(SUPPORTED_TARGETS)}")
    params = model.get("params", model)
    missing = {"ddconfig", "n_embed", "embed_dim"} - set(params)
    if missing:
        raise ValueError(f"taming config lacks {sorted(missing)} under model.params")
    return params


def vqgan_params(checkpoint: str | None = None, config: str | None = None) -> dict[str, Any]:
    """`model.params` of the yaml of `checkpoint` (None = the bundled model); `config` defaults to the `.yaml`
    beside the checkpoint with the same stem. Reads no weights, imports no torch."""
    config_path = Path(config) if config else Path(checkpoint or DEFAULT_CHECKPOINT).with_suffix(".yaml")
    if not config_path.is_file():
        raise FileNotFoundError(f"taming yaml config not found: {config_path} (pass config=...)")
    config = read_config_file(config_path, "taming yaml config")  # one rule for every config file
    if not isinstance(config, Mapping):
        raise ValueError(f"taming yaml config {config_path}: expected a mapping")
    return model_params_from_config(config)
