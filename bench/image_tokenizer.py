"""VQGAN encode/decode throughput (fetch-free): images/s per batch size against batch 1, peak memory.

    .venv/bin/python bench/image_tokenizer.py                       # bundled model, CPU fp32
    .venv/bin/python bench/image_tokenizer.py --arch taming-f16 --device cuda --dtype bf16 --channels-last \
        --batch-sizes 1 32 128 256                                  # the public f16 architecture on a GPU

Figures are medians of --repeats timed runs after one warm-up; the baseline (batch 1) is measured in the
same run. `--arch taming-f16` builds the 1024-code f16 ImageNet VQGAN architecture with random weights:
its speed is what matters here, not its codes. Nothing is estimated: without a GPU, the GPU figure is
reported as not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image_tokenizer import load_vqgan, preprocess  # noqa: E402
from image_tokenizer.vqgan import VQGAN  # noqa: E402

TAMING_F16_DDCONFIG = {
    "double_z": False,
    "z_channels": 256,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 1, 2, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [16],
    "dropout": 0.0,
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sample_batch(batch_size: int) -> np.ndarray:
    """Real photo content (scikit-image samples), tiled with different seeded crops."""
    from image_tokenizer.train_small_vqgan import skimage_rgb

    images = [skimage_rgb(name)[0] for name in ("astronaut", "coffee", "rocket", "chelsea")]
    return np.stack([preprocess(images[i % len(images)], f"bench-{i}") for i in range(batch_size)])


def peak_memory_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB, process peak so far


def timed(function, device: str, repeats: int) -> float:
    function()  # warm-up (cuDNN autotuning, allocator)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=("bundled", "taming-f16"), default="bundled")
    parser.add_argument("--checkpoint", help="a taming .ckpt (with --config) instead of --arch")
    parser.add_argument("--config")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--decode-batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"gpu": "not measured: no CUDA device available on this machine"}))
        return
    if args.checkpoint:
        vq = load_vqgan(args.checkpoint, args.config, device=args.device)
    elif args.arch == "taming-f16":
        torch.manual_seed(0)
        vq = VQGAN(TAMING_F16_DDCONFIG, n_embed=1024, embed_dim=256).to(args.device).eval()
    else:
        vq = load_vqgan(None, device=args.device)
    if args.channels_last:
        vq = vq.to(memory_format=torch.channels_last)
    dtype = DTYPES[args.dtype]
    # Reduced precision through autocast: weights stay fp32, convolutions/matmuls run in bf16/fp16.
    autocast = (
        torch.autocast(device_type=torch.device(args.device).type, dtype=dtype)
        if dtype != torch.float32
        else contextlib.nullcontext()
    )
    batch = sample_batch(max(args.batch_sizes + args.decode_batch_sizes))
    codes = vq.encode(batch[: max(args.decode_batch_sizes)])

    rows = []
    with autocast:
        for size in sorted(args.batch_sizes):
            inputs = torch.from_numpy(batch[:size]).to(args.device)
            if args.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            seconds = timed(lambda inputs=inputs: vq.encode(inputs), args.device, args.repeats)
            rows.append({"op": "encode", "batch": size, "images_per_s": size / seconds,
                         "peak_mib": round(peak_memory_mib(args.device), 1)})  # fmt: skip
        for size in sorted(args.decode_batch_sizes):
            seconds = timed(lambda size=size: vq.decode(codes[:size]), args.device, args.repeats)
            rows.append({"op": "decode", "batch": size, "images_per_s": size / seconds,
                         "peak_mib": round(peak_memory_mib(args.device), 1)})  # fmt: skip
    for op in ("encode", "decode"):
        base = next(r["images_per_s"] for r in rows if r["op"] == op)
        for row in rows:
            if row["op"] == op:
                row["vs_batch_1"] = round(row["images_per_s"] / base, 2)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{args.threads} threads"
    )
    params = sum(p.numel() for p in vq.parameters())
    print(f"# {args.arch if not args.checkpoint else args.checkpoint} ({params / 1e6:.1f} M params), {device_name}, "
          f"{args.dtype}{', channels_last' if args.channels_last else ''}, median of {args.repeats}")  # fmt: skip
    print("| op | batch | images/s | vs batch 1 | peak memory MiB |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['op']} | {row['batch']} | {row['images_per_s']:.2f} | {row['vs_batch_1']:.2f}x | {row['peak_mib']} |"
        )
    if not args.device.startswith("cuda"):
        print("GPU (bf16/fp16, channels_last, taming f16 architecture): not measured, no GPU in this run.")


if __name__ == "__main__":
    main()
