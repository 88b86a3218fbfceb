"""VQGAN image tokenizer assembled from taming-transformers' torch modules.

The module names (`encoder`, `decoder`, `quantize`, `quant_conv`, `post_quant_conv`) are those of
taming's `VQModel`, so the `state_dict` of a taming Lightning checkpoint loads unchanged; the yaml
config that comes with it gives the architecture (`model.params`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from taming.modules.diffusionmodules.model import Decoder, Encoder
from taming.modules.vqvae.quantize import VectorQuantizer

from image_tokenizer.config import DEFAULT_CHECKPOINT, SUPPORTED_TARGETS, vqgan_params

# taming's VQModel hard-codes the commitment cost; kept for the training loss only.
COMMITMENT_BETA = 0.25


class VQGAN(torch.nn.Module):
    """Encoder -> quant_conv -> VectorQuantizer -> post_quant_conv -> Decoder, as in taming's VQModel."""

    def __init__(self, ddconfig: Mapping[str, Any], n_embed: int, embed_dim: int):
        super().__init__()
        self.ddconfig = dict(ddconfig)
        self.n_embed = int(n_embed)
        self.embed_dim = int(embed_dim)
        self.downsample_factor = 2 ** (len(ddconfig["ch_mult"]) - 1)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its z shape
            self.encoder = Encoder(**ddconfig)
            self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim, beta=COMMITMENT_BETA)
        self.quant_conv = torch.nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = torch.nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    @property
    def device(self) -> torch.device:
        return self.quant_conv.weight.device

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, codebook + commitment loss, code indices (B, h*w))."""
        quant, codebook_loss, (_, _, indices) = self.quantize(self.quant_conv(self.encoder(images)))
        reconstruction = self.decoder(self.post_quant_conv(quant))
        return reconstruction, codebook_loss, indices.view(images.shape[0], -1)

    @torch.inference_mode()
    def encode(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) pixels in [-1, 1] -> int64 codes (B, H/f * W/f), row-major; 256 for 256x256 at f16.

        fp32, eval mode (no dropout, GroupNorm is per-sample): an image's codes depend on its batch only
        through float32 rounding, which differs with the batch shape (and between CPU and GPU kernels). That
        is ~1e-6 in the encoder output and flips a code only at a near-tie of two codebook entries (1 code of
        3840 on the sample corpus, batch 4 against batch 1), so jobs fix the batch size and device type and
        record them in their manifest.
        """
        images = torch.as_tensor(batch)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
        height, width = images.shape[2:]
        if height % self.downsample_factor or width % self.downsample_factor:
            raise ValueError(f"height and width must be multiples of {self.downsample_factor}")
        if images.shape[0] == 0:
            return np.zeros(
                (0, (height // self.downsample_factor) * (width // self.downsample_factor)), np.int64
            )
        images = images.to(device=self.device, dtype=torch.float32)
        _, _, (_, _, indices) = self.quantize(self.quant_conv(self.encoder(images)))
        return indices.view(images.shape[0], -1).to("cpu", torch.int64).numpy()

    @torch.inference_mode()
    def decode(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """int codes (B, h*w) of a square grid -> uint8 images (B, H, W, 3)."""
        indices = torch.as_tensor(np.asarray(codes), dtype=torch.int64)
        if indices.ndim != 2:
            raise ValueError(f"expected (B, n_codes) codes, got shape {tuple(indices.shape)}")
        side = int(round(indices.shape[1] ** 0.5))
        if side * side != indices.shape[1]:
            raise ValueError(f"{indices.shape[1]} codes do not form a square grid")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.n_embed):
            raise ValueError(f"codes must lie in [0, {self.n_embed})")
        indices = indices.to(self.device)
        quant = self.quantize.embedding(indices).view(indices.shape[0], side, side, self.embed_dim)
        images = self.decoder(self.post_quant_conv(quant.permute(0, 3, 1, 2).contiguous()))
        pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()


class _InertPickledObject:
    """Stand-in for non-tensor Python objects in a Lightning checkpoint (callbacks, hparams):
    constructed and filled with nothing, never imported or executed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def load_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """Model weights of a taming Lightning `.ckpt` (or of a bare state dict), loaded with weights_only=True.

    Lightning also pickles training metadata (callback states, hyper-parameters, numpy scalars); those
    globals are replaced by an inert placeholder instead of being imported, so no code from the file runs.
    """
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint)
    except (RuntimeError, ValueError):  # pre-1.6 (non-zip) files cannot be scanned; weights_only still guards
        unsafe = []
    with torch.serialization.safe_globals([(_InertPickledObject, name) for name in unsafe]):
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"{checkpoint}: no state_dict in checkpoint")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.startswith("loss.")}


def resolve_device(device: str = "auto") -> str:
    """The torch device to put the VQGAN on: "auto" is "cuda" when this process sees a CUDA GPU, else "cpu";
    "cpu", "cuda" and "cuda:N" are checked and returned.

    Call it where the model runs (a Beam worker loading it), not where a job is launched: a Dataflow GPU
    worker and the laptop that submitted the job see different hardware. Asking for CUDA where there is
    none raises instead of silently encoding on the CPU.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"not a torch device: {device!r} (use auto, cpu, cuda or cuda:N)") from error
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested, but torch sees no CUDA GPU in this process")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {device!r} requested, but torch sees {torch.cuda.device_count()} GPU(s)"
            )
    return str(parsed)


def load_vqgan(
    checkpoint: str | None = None,
    config: str | None = None,
    device: str = "cpu",
    num_threads: int | None = None,
) -> VQGAN:
    """Load a taming VQModel checkpoint + yaml (None = the bundled small model), in eval mode.

    `config` defaults to the `.yaml` beside the checkpoint with the same stem. `num_threads` sets torch's
    intra-op threads for this process (None keeps torch's default): a Beam worker process that hosts one
    model wants 1, since the runner's workers already give the parallelism.
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    checkpoint_path = Path(checkpoint or DEFAULT_CHECKPOINT)
    params = vqgan_params(checkpoint, config)
    model = VQGAN(params["ddconfig"], params["n_embed"], params["embed_dim"])
    model.load_state_dict(load_state_dict(checkpoint_path), strict=True)
    return model.to(device).eval()


def save_taming_checkpoint(model: VQGAN, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write `model` as a taming-style checkpoint: {"state_dict": ..., **extra} (tensors only by default)."""
    torch.save({"state_dict": model.state_dict(), **(extra or {})}, path)


def taming_config(model: VQGAN) -> dict[str, Any]:
    """The taming yaml structure that `load_vqgan` (and taming itself) reads for this model."""
    return {
        "model": {
            "target": SUPPORTED_TARGETS[0],
            "params": {
                "embed_dim": model.embed_dim,
                "n_embed": model.n_embed,
                "ddconfig": model.ddconfig,
                "lossconfig": {"target": "torch.nn.Identity"},
            },
        }
    }
