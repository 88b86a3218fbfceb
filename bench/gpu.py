"""GPU figures in one run, for a GPU machine with no network (target: under 8 minutes on one H100):

1. Training, 125m preset, seq 2048, batch 8, bf16: tokens/s and MFU per attention path (dense mask, auto,
   flex, causal kernel without document masks), torch.compile off and on (bench/train.py's
   bench_attention_paths: same data and weights, interleaved rounds, medians, ratio to dense); first a
   check that flex's logits and gradients equal the dense mask's on this GPU (CPU tests cannot: torch has
   no flex backward there).
2. VQGAN encode, images/s at batch 32, 64, 128 in fp32 and bf16 (autocast, channels_last): the taming
   f16 ImageNet architecture (bench/image_tokenizer.py's TAMING_F16_DDCONFIG) with random weights, whose
   speed is what matters here (no checkpoint needed). image_tokenizer.vqgan builds it from the
   taming-transformers modules: the GPU machine has no network, so the `taming` package must come with the
   venv (carry the taming-transformers wheel or the installed venv); the sample photos are scikit-image's
   bundled data.
3. Generation: greedy decode with the KV cache (bench/generate.py's loop), 125m preset, 257 new tokens
   (one image and its closing token) after a 16-token prompt, batch 1, fp32 and bf16: tokens/s.

Everything it needs is in this tree and the project's venv (torch with CUDA); token shards are synthetic
(bench/train.py), written to a temporary directory. `--smoke` runs every section at toy sizes on the CPU in
seconds, so that the script is known to run before GPU time is spent on it.

    .venv/bin/python bench/gpu.py            # on the GPU machine
    .venv/bin/python bench/gpu.py --smoke    # anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from image_tokenizer.vqgan import VQGAN  # noqa: E402
from model import PRESETS, CM3Config, CM3Transformer  # noqa: E402


def _bench(name: str):
    """A sibling bench script as a module (bench/image_tokenizer.py would shadow the package by name)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_train, bench_images, bench_generate = _bench("train"), _bench("image_tokenizer"), _bench("generate")

FULL = {
    "device": "cuda",
    "train": ["preset=125m", "seq_len=2048", "batch_size=8", "precision=bf16", "device=cuda"],
    "train_rounds": 3,
    "train_steps": 5,
    "compile": (False, True),
    "vqgan": bench_images.TAMING_F16_DDCONFIG,
    "vqgan_batches": (32, 64, 128),
    "vqgan_dtypes": ("fp32", "bf16"),
    "decode_preset": "125m",
    "decode_dtypes": ("fp32", "bf16"),
}
SMOKE = {
    "device": "cpu",
    "train": ["preset=tiny", "seq_len=128", "batch_size=2", "device=cpu"],
    "train_rounds": 1,
    "train_steps": 1,
    "compile": (False,),
    "vqgan": {**bench_images.TAMING_F16_DDCONFIG, "ch": 32, "z_channels": 32, "num_res_blocks": 1},
    "vqgan_batches": (2,),
    "vqgan_dtypes": ("fp32", "bf16"),
    "decode_preset": "tiny",
    "decode_dtypes": ("fp32",),
}


def flex_matches_dense(device: str) -> str:
    """Max |difference| of logits and gradients between attention=flex and the dense mask (fp32, rows of
    three packed documents, the first with a bidirectional prefix); gradients only on a GPU (torch has no
    flex backward on CPU)."""
    torch.manual_seed(0)
    cfg = CM3Config(vocab_size=1000, d_model=256, n_layers=2, n_heads=4, d_ffn=1024, max_seq_len=512)
    tokens = torch.randint(0, 1000, (2, 512), device=device)
    at = torch.arange(512, device=device)
    starts = torch.tensor([[100], [300]], device=device)
    inputs = {
        "segment_ids": (at[None] >= starts).long() + (at >= 450).long(),
        "visible": torch.where(at < 64, 0, at)[None].expand(2, -1),  # a prefix every query of its row sees
        "sees": at[None].expand(2, -1),
        "group": torch.full_like(tokens, -1),
    }
    results = []
    for attention in ("dense", "flex"):
        torch.manual_seed(0)
        model = CM3Transformer(cfg, attention=attention).to(device)
        with contextlib.nullcontext() if device == "cuda" else torch.no_grad():
            logits = model(tokens, **inputs)
        if device == "cuda":
            F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
        results.append((logits.detach(), [p.grad for p in model.parameters() if p.grad is not None]))
    (dense, dense_grads), (flex, flex_grads) = results
    found = f"max |logits diff| {(dense - flex).abs().max().item():.2e}"
    if device != "cuda":
        return found + "; gradients not compared (torch has no flex backward on CPU)"
    grad_diff = max((a - b).abs().max().item() for a, b in zip(dense_grads, flex_grads, strict=True))
    return found + f", max |grad diff| {grad_diff:.2e}"


def bench_training(sizes: dict) -> None:
    print(f"flex vs dense on this device: {flex_matches_dense(sizes['device'])}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        bench_train.write_synthetic_token_shards(data, n_docs=2000)
        for compiled in sizes["compile"]:
            started = time.perf_counter()
            overrides = [*sizes["train"], f"compile={str(compiled).lower()}"]
            result = bench_train.bench_attention_paths(
                data, overrides, sizes["train_rounds"], sizes["train_steps"]
            )
            bench_train.print_attention_paths(
                f"training, {' '.join(sizes['train'])}, compile={compiled}: tokens/s (all row slots), "
                f"median of {sizes['train_rounds']} x {sizes['train_steps']} steps "
                f"({time.perf_counter() - started:.0f} s with warm-up)",
                result,
            )
            sys.stdout.flush()


def bench_vqgan(sizes: dict) -> None:
    device = sizes["device"]
    torch.manual_seed(0)
    cfg = sizes["vqgan"]
    vq = VQGAN(cfg, n_embed=1024, embed_dim=cfg["z_channels"]).to(device).eval()
    vq = vq.to(memory_format=torch.channels_last)
    images = bench_images.sample_batch(max(sizes["vqgan_batches"]))
    print(f"VQGAN encode (taming f16 architecture, ch {cfg['ch']}, random weights), images/s, channels_last:")
    for dtype_name in sizes["vqgan_dtypes"]:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        cast = torch.autocast(device, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        row = []
        with cast:
            for size in sizes["vqgan_batches"]:
                inputs = (
                    torch.from_numpy(images[:size]).to(device).contiguous(memory_format=torch.channels_last)
                )
                seconds = bench_images.timed(lambda inputs=inputs: vq.encode(inputs), device, 3)
                row.append(f"batch {size}: {size / seconds:,.1f}")
        print(f"  {dtype_name}: " + ", ".join(row), flush=True)


def bench_decode(sizes: dict) -> None:
    device = sizes["device"]
    preset = sizes["decode_preset"]
    vocab = 4000 + 18 + 1024
    torch.manual_seed(0)
    model = CM3Transformer(CM3Config(vocab_size=vocab, max_seq_len=512, **PRESETS[preset])).to(device).eval()
    prompt = torch.randint(
        0, vocab, (1, bench_generate.PROMPT), generator=torch.Generator().manual_seed(1)
    ).to(device)
    print(
        f"generation, {preset} preset, greedy with the KV cache, batch 1, {bench_generate.NEW_TOKENS} new tokens after {bench_generate.PROMPT}:"
    )
    for dtype_name in sizes["decode_dtypes"]:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        cast = torch.autocast(device, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        with cast:
            seconds = bench_images.timed(lambda: bench_generate.decode_with_cache(model, prompt), device, 3)
        print(f"  {dtype_name}: {bench_generate.NEW_TOKENS / seconds:,.0f} tokens/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU, to check the script runs")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    if sizes["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA device here; --smoke runs the toy version on the CPU")
    if args.smoke:
        torch.set_num_threads(1)
    where = torch.cuda.get_device_name() if sizes["device"] == "cuda" else "CPU (smoke: toy sizes)"
    print(f"bench/gpu.py on {where}, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    for section in (bench_training, bench_vqgan, bench_decode):
        section(sizes)
        print(f"[{time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
