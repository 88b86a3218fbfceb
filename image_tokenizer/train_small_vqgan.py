"""Train the bundled small VQGAN (f16, 256 px -> 16x16 codes) on scikit-image's sample images, on CPU.

    python -m image_tokenizer.train_small_vqgan --out-dir image_tokenizer/data

What it is: a demonstration tokenizer that makes the pipeline run end to end offline, trained for minutes
on ~20 public sample images with L1 + L2 + codebook/commitment loss (no LPIPS or GAN loss: their weights
cannot be downloaded here). Real runs load a public taming checkpoint instead (see image_tokenizer/README.md).
Deterministic: seeded model init, seeded crops/flips, fixed thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from image_tokenizer.config import DATA_DIR
from image_tokenizer.decode import preprocess
from image_tokenizer.vqgan import VQGAN, load_vqgan, save_taming_checkpoint, taming_config

SMALL_DDCONFIG = {
    "double_z": False,
    "z_channels": 64,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 2, 2, 4],
    "num_res_blocks": 1,
    "attn_resolutions": [16],
    "dropout": 0.0,
}
N_EMBED = 1024
EMBED_DIM = (
    16  # low-dimensional codes are used more evenly (as in ViT-VQGAN); any embed_dim is taming-compatible
)
TRAIN_IMAGES = (
    "brick", "cat", "cell", "clock", "coins", "colorwheel", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket", "text",
    "stereo_motorcycle", "checkerboard", "horse", "shepp_logan_phantom",
)  # fmt: skip
HELD_OUT_IMAGES = ("astronaut", "coffee", "camera")
CROPS_PER_HELD_OUT_IMAGE = 4
BITS_PER_IMAGE = 256 * math.log2(N_EMBED)


def skimage_rgb(name: str) -> list[Image.Image]:
    """A scikit-image sample as RGB Pillow image(s) (the stereo pair gives two)."""
    import skimage.data

    loaded = getattr(skimage.data, name)()
    arrays = loaded[:2] if name == "stereo_motorcycle" else [loaded]
    images = []
    for array in arrays:
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        elif array.dtype.kind == "f":  # shepp_logan_phantom: floats in [0, 1]
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.shape[-1] == 4:  # logo: alpha onto white, as decode_image does
            alpha = array[..., 3:4].astype(np.float32) / 255
            array = (array[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
        images.append(Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB"))
    return images


def training_pyramid(images: list[Image.Image]) -> list[np.ndarray]:
    """Each image at short side 256 (what preprocess feeds the model) and, when larger, at 384 and full size."""
    levels = []
    for image in images:
        short = min(image.size)
        for target in sorted({256, min(384, max(short, 256)), max(short, 256)}):
            scale = target / short
            size = (max(target, round(image.size[0] * scale)), max(target, round(image.size[1] * scale)))
            resized = image.resize(size, Image.Resampling.BICUBIC)
            levels.append(np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0)
    return levels


def sample_batch(levels: list[np.ndarray], rng: np.random.Generator, batch: int, crop: int) -> torch.Tensor:
    """Random crops, uniformly over pyramid levels, with random horizontal flips and, for half of them, a
    random order of the colour channels (few of the sample images are in colour)."""
    out = np.empty((batch, 3, crop, crop), dtype=np.float32)
    for i in range(batch):
        level = levels[rng.integers(len(levels))]
        top = rng.integers(level.shape[1] - crop + 1)
        left = rng.integers(level.shape[2] - crop + 1)
        patch = level[:, top : top + crop, left : left + crop]
        patch = patch[:, :, ::-1] if rng.random() < 0.5 else patch
        out[i] = patch[rng.permutation(3)] if rng.random() < 0.5 else patch
    return torch.from_numpy(out)


def psnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB of uint8 images."""
    mse = np.mean((reference.astype(np.float64) - estimate.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def bicubic_baseline(image: np.ndarray, side: int) -> np.ndarray:
    """Bicubic down to side x side RGB (8 bits/channel) and back up: a thumbnail codec."""
    small = Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(small.resize(image.shape[:2][::-1], Image.Resampling.BICUBIC))


def evaluate(model: VQGAN) -> dict[str, float]:
    """Mean PSNR on held-out 256x256 crops: the VQGAN vs bicubic thumbnails at about the same bit budget."""
    crops = []
    for name in HELD_OUT_IMAGES:
        for image in skimage_rgb(name):
            crops += [preprocess(image, f"skimage:{name}#{i}") for i in range(CROPS_PER_HELD_OUT_IMAGE)]
    batch = np.stack(crops)
    reference = ((batch.transpose(0, 2, 3, 1) + 1) * 127.5).round().astype(np.uint8)
    reconstruction = model.decode(model.encode(batch))
    # 10x10x3 bytes = 2400 bits ~ the 2560 bits of 256 codes of 10 bits; 16x16 uses 2.4x the budget.
    return {
        "held_out_crops": len(crops),
        "vqgan_psnr_db": float(np.mean([psnr(r, x) for r, x in zip(reference, reconstruction, strict=True)])),
        "bicubic_10x10_psnr_db": float(np.mean([psnr(r, bicubic_baseline(r, 10)) for r in reference])),
        "bicubic_16x16_psnr_db": float(np.mean([psnr(r, bicubic_baseline(r, 16)) for r in reference])),
        "vqgan_bits_per_image": BITS_PER_IMAGE,
        "codebook_used_on_held_out": int(np.unique(model.encode(batch)).size),
    }


@torch.no_grad()
def restart_dead_codes(
    model: VQGAN, usage: torch.Tensor, latents: torch.Tensor, generator: torch.Generator
) -> int:
    """Move codebook entries unused since the last restart onto random current encoder outputs."""
    dead = torch.nonzero(usage == 0).flatten()
    if dead.numel():
        picks = torch.randint(latents.shape[0], (dead.numel(),), generator=generator)
        model.quantize.embedding.weight[dead] = latents[picks]
    return int(dead.numel())


@torch.no_grad()
def kmeans_codebook(
    model: VQGAN, batches: list[torch.Tensor], generator: torch.Generator, iterations: int = 10
) -> None:
    """Initialise the codebook by k-means on encoder outputs, so every code starts on the data."""
    latents = torch.cat(
        [model.quant_conv(model.encoder(b)).permute(0, 2, 3, 1).reshape(-1, EMBED_DIM) for b in batches]
    )
    centroids = latents[torch.randint(latents.shape[0], (N_EMBED,), generator=generator)].clone()
    for _ in range(iterations):
        assignment = torch.cdist(latents, centroids).argmin(1)
        counts = torch.bincount(assignment, minlength=N_EMBED).unsqueeze(1)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, latents)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    model.quantize.embedding.weight.copy_(centroids)


def crop_and_batch(args: argparse.Namespace, step: int) -> tuple[int, int]:
    """Crop side and batch size at `step`: the last `final_fraction` of the steps at `final_crop` (the 256 px
    that the model encodes: same attention length and normalisation statistics), with the batch shrunk so
    that a step costs about the same."""
    if step < args.steps * (1 - args.final_fraction):
        return args.crop, args.batch_size
    return args.final_crop, max(1, round(args.batch_size * (args.crop / args.final_crop) ** 2))


def train(args: argparse.Namespace) -> dict:
    """Autoencoder warm-up without quantization, k-means codebook, then VQ training with dead-code restarts,
    finishing at full 256 px crops."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    levels = training_pyramid([im for name in TRAIN_IMAGES for im in skimage_rgb(name)])
    model = VQGAN(SMALL_DDCONFIG, N_EMBED, EMBED_DIM).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    usage = torch.zeros(N_EMBED, dtype=torch.long)
    autoencoder_steps = int(args.steps * args.autoencoder_fraction)
    started = time.monotonic()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        crop, batch_size = crop_and_batch(args, step)
        if step == autoencoder_steps:
            kmeans_codebook(
                model, [sample_batch(levels, rng, batch_size, crop) for _ in range(48)], generator
            )
        if step and crop != crop_and_batch(args, step - 1)[0]:  # progress check before the last phase
            print(f"held-out VQGAN PSNR {evaluate(model.eval())['vqgan_psnr_db']:.2f} dB", flush=True)
            model.train()
        images = sample_batch(levels, rng, batch_size, crop)
        latents = model.quant_conv(model.encoder(images))
        if step < autoencoder_steps:
            quant, codebook_loss, indices = latents, torch.zeros(()), None
        else:
            quant, codebook_loss, (_, _, indices) = model.quantize(latents)
        reconstruction = model.decoder(model.post_quant_conv(quant))
        l1 = (reconstruction - images).abs().mean()
        l2 = ((reconstruction - images) ** 2).mean()
        loss = l1 + l2 + codebook_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        restarted = 0
        if indices is not None:
            usage += torch.bincount(indices.flatten(), minlength=N_EMBED)
            if (step + 1 - autoencoder_steps) % args.restart_every == 0 and step + 1 < args.steps * 0.9:
                flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, EMBED_DIM)
                restarted = restart_dead_codes(model, usage, flat, generator)
                usage.zero_()
        if step % args.log_every == 0 or step + 1 == args.steps or restarted:
            psnr_train = 10 * math.log10(4.0 / max(l2.item(), 1e-12))
            phase = "ae" if indices is None else "vq"
            print(
                f"step {step:5d} {phase} loss {loss.item():.4f} train-psnr {psnr_train:5.2f} dB lr {lr:.2e} "
                f"restarted {restarted} {time.monotonic() - started:6.0f}s",
                flush=True,
            )
    return {"train_seconds": round(time.monotonic() - started, 1), "model": model}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--crop", type=int, default=128, help="training crop side (the model is convolutional)"
    )
    parser.add_argument("--final-crop", type=int, default=256, help="crop side for the last steps")
    parser.add_argument("--final-fraction", type=float, default=0.35, help="share of steps at --final-crop")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--autoencoder-fraction", type=float, default=0.3, help="first steps without quantizer"
    )
    parser.add_argument("--restart-every", type=int, default=25, help="steps between dead-code restarts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)

    result = train(args)
    model = result.pop("model").eval()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out_dir / "small_vqgan_f16.ckpt"
    # fp16 weights halve the file; load_vqgan copies them into the fp32 model. Metrics below are
    # measured on the reloaded file, i.e. exactly what users get.
    model.half()
    save_taming_checkpoint(model, checkpoint)
    (args.out_dir / "small_vqgan_f16.yaml").write_text(yaml.safe_dump(taming_config(model), sort_keys=False))
    metrics = {
        "trained_on": f"scikit-image sample images {', '.join(TRAIN_IMAGES)}",
        "held_out": f"{', '.join(HELD_OUT_IMAGES)} ({CROPS_PER_HELD_OUT_IMAGE} seeded 256x256 crops each)",
        "loss": "L1 + L2 (+ codebook/commitment, beta 0.25, after the autoencoder warm-up); no LPIPS, no GAN",
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out_dir"},
        "torch": torch.__version__,
        **result,
        **evaluate(load_vqgan(str(checkpoint))),
    }
    (args.out_dir / "small_vqgan_f16.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
