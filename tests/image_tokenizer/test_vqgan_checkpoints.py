"""taming-format checkpoints load unchanged and give exactly the codes of taming's own modules;
the bundled model encodes deterministically and reconstructs real images."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from taming.modules.diffusionmodules.model import Decoder, Encoder
from taming.modules.vqvae.quantize import VectorQuantizer

from image_tokenizer import DEFAULT_CHECKPOINT, codes_to_src, load_vqgan, preprocess, src_to_codes
from image_tokenizer.train_small_vqgan import HELD_OUT_IMAGES, evaluate, psnr, skimage_rgb

# A taming config as the public yaml files write it (tiny sizes so the test is fast).
TAMING_YAML = """
model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 16
    n_embed: 64
    ddconfig:
      double_z: false
      z_channels: 32
      resolution: 256
      in_channels: 3
      out_ch: 3
      ch: 32
      ch_mult: [1, 1, 2, 2, 2]
      num_res_blocks: 1
      attn_resolutions: [16]
      dropout: 0.0
    lossconfig:
      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params: {disc_conditional: false, disc_in_channels: 3, disc_start: 250001, disc_weight: 0.8}
"""


class TamingVQModelWeights(torch.nn.Module):
    """The parameter layout of taming's VQModel (whose Lightning class cannot be imported here)."""

    def __init__(self, params: dict):
        super().__init__()
        ddconfig = params["ddconfig"]
        with contextlib.redirect_stdout(io.StringIO()):
            self.encoder = Encoder(**ddconfig)
            self.decoder = Decoder(**ddconfig)
        self.loss = torch.nn.Conv2d(3, 1, 4)  # stands for the discriminator: "loss.*" keys must be ignored
        self.quantize = VectorQuantizer(params["n_embed"], params["embed_dim"], beta=0.25)
        self.quant_conv = torch.nn.Conv2d(ddconfig["z_channels"], params["embed_dim"], 1)
        self.post_quant_conv = torch.nn.Conv2d(params["embed_dim"], ddconfig["z_channels"], 1)


def _lightning_metadata_class():
    """A class that pickles as pytorch_lightning's ModelCheckpoint (a package not installed here)."""
    names = (
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.callbacks.model_checkpoint",
    )
    modules = [types.ModuleType(name) for name in names]
    module = modules[-1]

    class ModelCheckpoint:
        def __init__(self):
            self.best_model_score = torch.tensor(0.5)
            self.dirpath = "/logs/checkpoints"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    return modules, ModelCheckpoint


class RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path(__import__('os').environ['PWNED']).touch()",))


@pytest.fixture(scope="module")
def taming_checkpoint(tmp_path_factory):
    torch.manual_seed(1234)
    params = yaml.safe_load(TAMING_YAML)["model"]["params"]
    reference = TamingVQModelWeights(params).eval()
    with torch.no_grad():  # a spread-out codebook, so random encoder outputs hit many codes
        reference.quantize.embedding.weight.normal_()
    directory = tmp_path_factory.mktemp("taming")
    modules, model_checkpoint = _lightning_metadata_class()
    sys.modules.update({m.__name__: m for m in modules})
    try:
        torch.save(
            {
                "epoch": 3,
                "global_step": 1000,
                "pytorch-lightning_version": "1.0.8",
                "state_dict": reference.state_dict(),
                "callbacks": {model_checkpoint: model_checkpoint().__dict__, "object": model_checkpoint()},
                "hyper_parameters": argparse.Namespace(lr=4.5e-6, base="configs/custom_vqgan.yaml"),
                "numpy_metric": np.float64(0.25),
                "untrusted": RunsCodeWhenUnpickled(),
            },
            directory / "last.ckpt",
        )
    finally:
        for m in modules:
            del sys.modules[m.__name__]
    (directory / "model.yaml").write_text(TAMING_YAML)
    return reference, directory / "last.ckpt", directory / "model.yaml"


def test_taming_checkpoint_gives_exactly_taming_codes(taming_checkpoint, tmp_path, monkeypatch):
    reference, checkpoint, config = taming_checkpoint
    monkeypatch.setenv("PWNED", str(tmp_path / "pwned"))
    vq = load_vqgan(str(checkpoint), str(config))
    assert not (tmp_path / "pwned").exists()  # pickled code was replaced by an inert placeholder
    assert vq.n_embed == 64
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        z = reference.quant_conv(reference.encoder(images))
        _, _, (_, _, expected) = reference.quantize(z)
        expected = expected.view(2, 256).numpy()
        expected_pixels = reference.decoder(
            reference.post_quant_conv(
                reference.quantize.get_codebook_entry(torch.from_numpy(expected).flatten(), (2, 16, 16, 16))
            )
        )
    codes = vq.encode(images.numpy())
    assert codes.dtype == np.int64 and codes.shape == (2, 256)
    np.testing.assert_array_equal(codes, expected)
    assert len(np.unique(codes)) > 8
    expected_uint8 = ((expected_pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(vq.decode(codes), expected_uint8.numpy())


def test_state_dict_loads_strictly(taming_checkpoint):
    reference, checkpoint, config = taming_checkpoint
    vq = load_vqgan(str(checkpoint), str(config))
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("loss.")}
    assert set(vq.state_dict()) == set(expected)
    assert all(torch.equal(vq.state_dict()[k], v) for k, v in expected.items())


def test_config_errors_are_clear(taming_checkpoint, tmp_path):
    _, checkpoint, _ = taming_checkpoint
    with pytest.raises(FileNotFoundError, match="yaml"):
        load_vqgan(str(checkpoint))
    gumbel = tmp_path / "gumbel.yaml"
    gumbel.write_text(TAMING_YAML.replace("taming.models.vqgan.VQModel", "taming.models.vqgan.GumbelVQ"))
    with pytest.raises(ValueError, match="unsupported"):
        load_vqgan(str(checkpoint), str(gumbel))


@pytest.fixture(scope="module")
def bundled():
    return load_vqgan(None)


def test_bundled_model_shapes(bundled):
    assert DEFAULT_CHECKPOINT.endswith(".ckpt") and bundled.n_embed <= 1024
    pixels = preprocess(skimage_rgb("chelsea")[0], "skimage:chelsea")
    codes = bundled.encode(pixels[None])
    assert codes.shape == (1, 256) and codes.dtype == np.int64
    assert 0 <= codes.min() and codes.max() < bundled.n_embed
    assert src_to_codes(codes_to_src(codes[0]), bundled.n_embed) == codes[0].tolist()
    images = bundled.decode(codes)
    assert images.shape == (1, 256, 256, 3) and images.dtype == np.uint8
    with pytest.raises(ValueError):
        bundled.decode(np.full((1, 256), bundled.n_embed))
    with pytest.raises(ValueError):
        bundled.encode(np.zeros((1, 3, 250, 256), np.float32))
    assert bundled.encode(np.zeros((0, 3, 256, 256), np.float32)).shape == (0, 256)


@pytest.mark.slow
def test_encode_depends_on_the_batch_only_at_near_ties(bundled):
    """Batch 32 vs one by one (at 64 px to keep CPU time low: same network, same kernels), then 256 px.
    float32 rounding differs with the batch shape (and the CPU's kernels), so a code may flip where two
    codebook entries are nearly equally close; anything beyond such rare ties would be a bug (e.g. a
    batch-coupled normalisation)."""
    images = {name: skimage_rgb(name)[0] for name in ("astronaut", "rocket")}
    keys = [f"https://example.org/{name}-{i}.jpg" for name in images for i in range(16)]
    full = np.stack([preprocess(images[key.split("/")[-1].split("-")[0]], key) for key in keys])
    small = np.ascontiguousarray(full[:, :, ::4, ::4])
    together = bundled.encode(small)
    assert together.shape == (32, 16)
    alone = np.concatenate([bundled.encode(small[i : i + 1]) for i in range(32)])
    assert (together != alone).mean() <= 0.01
    picks = full[[0, 9, 16, 31]]
    together = bundled.encode(picks)
    assert together.shape == (4, 256)
    assert (together != np.concatenate([bundled.encode(p[None]) for p in picks])).mean() <= 0.01


def test_reconstruction_of_held_out_image_beats_flat_colour(bundled):
    name = HELD_OUT_IMAGES[0]  # never seen in training
    pixels = preprocess(skimage_rgb(name)[0], f"skimage:{name}")
    reference = ((pixels.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
    reconstruction = bundled.decode(bundled.encode(pixels[None]))[0]
    flat = np.broadcast_to(reference.reshape(-1, 3).mean(0).round(), reference.shape)
    assert psnr(reference, reconstruction) > psnr(reference, flat) + 2.0


@pytest.mark.slow
def test_committed_figures_are_those_of_the_bundled_checkpoint(bundled):
    """The json (and so the docs' table) reports what the committed checkpoint measures on the held-out crops."""
    measured = evaluate(bundled)
    committed = json.loads(Path(DEFAULT_CHECKPOINT).with_suffix(".json").read_text())
    for key in ("vqgan_psnr_db", "bicubic_10x10_psnr_db", "bicubic_16x16_psnr_db"):
        assert measured[key] == pytest.approx(committed[key], abs=0.05)
    assert measured["codebook_used_on_held_out"] == pytest.approx(
        committed["codebook_used_on_held_out"], abs=5
    )
