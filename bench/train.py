"""Training figures for the `model` package, each against a baseline measured in the same run.

1. CPU training step: our Trainer (loader + masking + model + AdamW + clip + schedule) for cm3 (document
   attention, the default), cm3 without it and clm, against a minimal plain-PyTorch GPT loop of the same
   size and the same initialisation on pre-made random batches; interleaved rounds, medians.
2. Masking + packing throughput (PackedLoader.next_batch) in tokens/s on one core.
3. With --device cuda: MFU of the 125M preset at seq 2048 in bf16 (never estimated without a GPU).
4. Attention paths (model/transformer.py): the same training step with the dense boolean mask (the
   reference), `attention=auto` (SDPA's causal kernel for batches of one-document rows, else flex on GPU,
   dense on CPU), `flex` (GPU only: torch has no flex backward on CPU) and, as the kernel's upper bound, the
   causal kernel without document masks (document_attention=false, another rule); interleaved rounds,
   medians, ratio to dense. On CPU for the small model; bench/gpu.py runs it for 125m on a GPU.
5. With --against REV: the same cm3 training step of this tree and of git revision REV (checked out in a
   temporary worktree), each in its own process, alternating rounds on the same token shards: how much the
   change since REV costs the cm3 path.

    .venv/bin/python bench/train.py [--device cuda] [--rounds 5] [--against c7de864]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import TrainConfig  # noqa: E402
from model.data import LoaderOptions, PackedLoader  # noqa: E402
from model.shards import TokenSplit  # noqa: E402
from model.tokenizer import CM3Tokenizer  # noqa: E402
from model.trainer import Trainer  # noqa: E402

N_EMBED = 8192  # image codes, as the paper's VQGAN


def write_synthetic_token_shards(out: Path, n_docs: int, seed: int = 0) -> CM3Tokenizer:
    """Token shards in the cm3-tokens/1 format: web-like documents (text runs + 256-token images)."""
    words = "the a cat sat on mat river city light bread old new book page image photo of and in".split()
    rng = np.random.default_rng(seed)
    text = [" ".join(rng.choice(words, size=40)) for _ in range(200)]
    tok = CM3Tokenizer.train(text, vocab_size=512, n_embed=N_EMBED)
    tok.save(out / "tokenizer")
    manifest = {"format": "cm3-tokens/1", "splits": {}, "vocab": tok.layout()}
    for split, n in (("train", n_docs), ("validation", max(8, n_docs // 20))):
        docs = []
        for _ in range(n):
            n_text = int(rng.lognormal(6.0, 0.8))  # median ~400 text tokens
            parts = [rng.integers(0, tok.n_text, n_text)]
            for _ in range(rng.poisson(1.0)):
                parts.append(rng.integers(0, N_EMBED, 256) + tok.image_code_offset)
                parts.append(rng.integers(0, tok.n_text, int(rng.integers(5, 60))))
            docs.append(np.concatenate(parts).astype("<u4"))
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype("<i8")
        files = {
            "tokens": f"{split}.tokens.u32",
            "offsets": f"{split}.offsets.i64",
            "keys": f"{split}.keys.u64",
        }
        np.concatenate(docs).tofile(out / files["tokens"])
        offsets.tofile(out / files["offsets"])
        rng.integers(0, 2**63, n, dtype=np.int64).astype("<u8").tofile(out / files["keys"])
        sha256 = {kind: hashlib.sha256((out / name).read_bytes()).hexdigest() for kind, name in files.items()}
        manifest["splits"][split] = {"docs": n, "tokens": int(offsets[-1]), "files": files, "sha256": sha256}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return tok


# ---- baseline: a minimal GPT training loop in plain PyTorch (written for this bench)
class PlainBlock(nn.Module):
    def __init__(self, d: int, h: int, f: int) -> None:
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, f), nn.Linear(f, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class PlainGPT(nn.Module):
    """Initialised as CM3Transformer is: with nn.Embedding's N(0, 1) the tied output layer would make
    a third of the softmax probabilities denormal floats, and the backward pass ~40x slower."""

    def __init__(self, vocab: int, d: int, layers: int, h: int, f: int, seq: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(PlainBlock(d, h, f) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = 0.02 / (2 * layers) ** 0.5 if name.endswith(("proj", "down")) else 0.02
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
        for emb in (self.tok, self.pos):
            nn.init.normal_(emb.weight, std=d**-0.5)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln(x), self.tok.weight)


def bench_cpu_step(data: Path, rounds: int, steps: int) -> dict:
    overrides = [
        f"data={data}",
        "device=cpu",
        "preset=small",
        "d_model=128",
        "d_ffn=512",
        "seq_len=256",
        "batch_size=8",
        "max_steps=100000",
        "progress=false",
    ]
    variants = {
        "cm3": [],
        "cm3 document_attention=false": ["document_attention=false"],
        "clm": ["objective=clm"],
    }
    with tempfile.TemporaryDirectory() as out:
        trainers = {
            name: Trainer(
                TrainConfig.load(None, [*overrides, *extra, f"out={out}/{i}", "eval_every=0", "ckpt_every=0"])
            )
            for i, (name, extra) in enumerate(variants.items())
        }
        cfg = trainers["cm3"].model_cfg
        torch.manual_seed(0)
        plain = PlainGPT(cfg.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ffn, 256)
        opt = torch.optim.AdamW(plain.parameters(), lr=1e-4, betas=(0.9, 0.98))
        gen = torch.Generator().manual_seed(0)
        batches = [torch.randint(0, cfg.vocab_size, (8, 257), generator=gen) for _ in range(steps)]

        def plain_step(batch):
            logits = plain(batch[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        times: dict[str, list[float]] = {name: [] for name in [*variants, "plain"]}
        for trainer in trainers.values():
            trainer.train_step()
        plain_step(batches[0])  # warm-up all
        for _ in range(rounds):
            for name, trainer in trainers.items():
                t = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step()
                times[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            for batch in batches:
                plain_step(batch)
            times["plain"].append(time.perf_counter() - t)
    tokens = 8 * 256 * steps
    tps = {name: tokens / statistics.median(t) for name, t in times.items()}
    return {
        "model": f"d={cfg.d_model} L={cfg.n_layers} H={cfg.n_heads} ffn={cfg.d_ffn} vocab={cfg.vocab_size}",
        "params_m": round(sum(p.numel() for p in plain.parameters()) / 1e6, 2),
        "batch": "8 x 256",
        "threads": torch.get_num_threads(),
        "tokens_per_s": {name: round(v) for name, v in tps.items()},
        "overhead_pct": {name: round((tps["plain"] / tps[name] - 1) * 100, 1) for name in variants},
    }


ATTENTION_VARIANTS = {
    "dense (reference)": ["attention=dense"],
    "auto": ["attention=auto"],
    "flex": ["attention=flex"],
    "causal kernel, no document mask": ["document_attention=false"],
}


def bench_attention_paths(data: Path, overrides: list[str], rounds: int, steps: int) -> dict:
    """Training tokens/s (row slots, padding included) per attention path, same data and initial weights,
    interleaved rounds; `overrides` set the model, shape, device, precision and compile. MFU where the
    device's peak is known."""
    cuda = "device=cuda" in overrides
    variants = {name: extra for name, extra in ATTENTION_VARIANTS.items() if cuda or name != "flex"}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as out:
        base = [f"data={data}", "max_steps=100000", "progress=false", "eval_every=0", "ckpt_every=0"]
        trainers = {
            name: Trainer(TrainConfig.load(None, [*base, *overrides, *extra, f"out={out}/{i}"]))
            for i, (name, extra) in enumerate(variants.items())
        }
        for trainer in trainers.values():
            for _ in range(3 if cuda else 1):  # compile, autotune, allocator
                trainer.train_step()
        for _ in range(rounds):
            for name, trainer in trainers.items():
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step()
                if cuda:
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t)
        cfg = trainers["dense (reference)"].cfg
        tokens = cfg.batch_size * cfg.seq_len * steps
        result = {}
        for name, trainer in trainers.items():
            tok_s = tokens / statistics.median(times[name])
            mfu = tok_s * trainer.flops_per_token / trainer.peak if trainer.peak else None
            result[name] = {
                "tokens_per_s": round(tok_s),
                "mfu_pct": None if mfu is None else round(100 * mfu, 1),
            }
        dense = result["dense (reference)"]["tokens_per_s"]
        for row in result.values():
            row["vs_dense"] = round(row["tokens_per_s"] / dense, 3)
        return result


def print_attention_paths(title: str, result: dict) -> None:
    print(title)
    for name, row in result.items():
        mfu = f", MFU {row['mfu_pct']} %" if row["mfu_pct"] is not None else ""
        print(f"  {name:<34} {row['tokens_per_s']:>10,} tokens/s{mfu}, {row['vs_dense']:.2f}x dense")


def bench_packing(data: Path, tok: CM3Tokenizer, rounds: int) -> dict:
    split = TokenSplit.open(data, "train")
    result = {}
    for objective, doc_attention in (("cm3", False), ("cm3", True), ("clm", False)):
        options = LoaderOptions(
            objective,
            2048,
            8,
            0,
            tok.mask_offset,
            tok.n_masks,
            tok.eos_id,
            tok.pad_id,
            tok.vocab_size,
            doc_attention,
        )
        rates = []
        for r in range(rounds):
            loader = PackedLoader(split, options, rank=r % 2, world_size=2)
            loader.next_batch()
            t, n = time.perf_counter(), 0
            while time.perf_counter() - t < 1.0:
                loader.next_batch()
                n += 8 * 2048
            rates.append(n / (time.perf_counter() - t))
        key = objective + ("+document_attention" if doc_attention else "")
        result[key] = round(statistics.median(rates))
    return result


def bench_gpu_mfu(data: Path, steps: int) -> dict:
    overrides = [
        f"data={data}",
        "preset=125m",
        "seq_len=2048",
        "batch_size=8",
        "precision=bf16",
        "device=cuda",
    ]
    overrides += ["compile=true", "max_steps=100000", "progress=false", "eval_every=0", "ckpt_every=0"]
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(TrainConfig.load(None, [*overrides, f"out={out}"]))
        if trainer.peak is None:
            return {"gpu": torch.cuda.get_device_name(), "mfu": "n/a (no peak-FLOPs entry for this device)"}
        for _ in range(10):  # compile + warm-up
            trainer.train_step()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize()
        tok_s = 8 * 2048 * steps / (time.perf_counter() - t)
    return {
        "gpu": torch.cuda.get_device_name(),
        "tokens_per_s": round(tok_s),
        "mfu_pct": round(100 * tok_s * trainer.flops_per_token / trainer.peak, 1),
    }


STEP_OVERRIDES = ["device=cpu", "preset=small", "d_model=128", "d_ffn=512", "seq_len=256", "batch_size=8"]
STEP_OVERRIDES += ["max_steps=100000", "progress=false", "eval_every=0", "ckpt_every=0"]
CHILD = """
import sys, tempfile, time, torch
sys.path.insert(0, sys.argv[1])
from model.config import TrainConfig
from model.trainer import Trainer
torch.set_num_threads(1)
steps = int(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(TrainConfig.load(None, [*sys.argv[4:], f"data={sys.argv[2]}", f"out={out}"]))
    trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    print(8 * 256 * steps / (time.perf_counter() - start))
"""


def bench_against(data: Path, revision: str, rounds: int, steps: int) -> dict:
    """cm3 step tokens/s of this tree and of `revision`, alternating fresh processes; medians."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "-q", "--detach", str(worktree), revision], check=True
        )
        try:
            trees = {"this tree": root, revision: worktree}
            rates: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(rounds):
                for name, tree in trees.items():
                    command = [sys.executable, "-c", CHILD, str(tree), str(data), str(steps), *STEP_OVERRIDES]
                    out = subprocess.run(command, check=True, capture_output=True, text=True)
                    rates[name].append(float(out.stdout.split()[-1]))
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(worktree)], check=True
            )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "tokens_per_s": {k: round(v) for k, v in medians.items()},
        "ratio": medians["this tree"] / medians[revision],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--against", metavar="REV", help="also time the cm3 step of git revision REV")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        tok = write_synthetic_token_shards(data, n_docs=2000)
        n_tokens = len(TokenSplit.open(data, "train").tokens)
        print(f"synthetic token shards: 2000 documents, {n_tokens:,} tokens, vocab {tok.vocab_size}")
        packing = bench_packing(data, tok, args.rounds)
        print("masking + packing, tokens/s on one core (seq 2048, batch 8):")
        for key, rate in packing.items():
            print(f"  {key:<24} {rate:>14,}  ({'>=' if rate >= 1e6 else 'BELOW'} 1M target)")
        step = bench_cpu_step(data, args.rounds, args.steps)
        print(
            f"CPU training step, {step['model']} ({step['params_m']}M params), batch {step['batch']}, "
            f"{step['threads']} thread(s), median of {args.rounds} interleaved rounds:"
        )
        print(f"  plain PyTorch GPT loop (same init)          {step['tokens_per_s']['plain']:>8,} tokens/s")
        for name, overhead in step["overhead_pct"].items():
            print(
                f"  cm3-train step incl. data: {name:<28} {step['tokens_per_s'][name]:>8,} tokens/s, "
                f"overhead {overhead:.1f} % (target <= 10 %)"
            )
        cpu_paths = bench_attention_paths(data, STEP_OVERRIDES[:6], args.rounds, args.steps)
        print_attention_paths(
            f"attention paths, CPU training step (same model and batches), median of {args.rounds} rounds "
            "(flex: not measured, torch has no flex backward on CPU):",
            cpu_paths,
        )
        against = None
        if args.against:
            against = bench_against(data, args.against, args.rounds, 10 * args.steps)
            rates = ", ".join(f"{name} {rate:,}" for name, rate in against["tokens_per_s"].items())
            print(
                f"cm3 step (defaults of each tree), tokens/s: {rates}: {against['ratio']:.3f}x (target >= 0.95)"
            )
        print(
            json.dumps(
                {
                    "packing_tokens_per_s": packing,
                    "cpu_step": step,
                    "cpu_attention_paths": cpu_paths,
                    "against": against,
                }
            )
        )
        if args.device == "cuda" and torch.cuda.is_available():
            gpu = bench_gpu_mfu(data, steps=20)
            print(
                f"GPU: 125m preset (vocab {tok.vocab_size}), seq 2048, batch 8, bf16, torch.compile on {gpu['gpu']}: "
                f"{gpu.get('tokens_per_s', 'n/a')} tokens/s, MFU {gpu.get('mfu_pct', gpu.get('mfu'))} % (target >= 40 %)"
            )
        else:
            reason = "--device cuda not given" if args.device == "cpu" else "no CUDA device present"
            print(f"GPU MFU (125m, seq 2048, bf16): not measured ({reason}); never estimated")


if __name__ == "__main__":
    main()
