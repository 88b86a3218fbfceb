"""Decoding speed of one image (256 codes + the closing token) with the KV cache, against recomputing
the full forward at every step (the baseline, same model, same run).

Both loops decode greedily from the same prompt and must give the same tokens; the script checks it.
Prints seconds per decode (median of --repeats, the two loops interleaved) and the speed-up.

    .venv/bin/python bench/generate.py [--presets tiny small] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import PRESETS, CM3Config, CM3Transformer  # noqa: E402

VOCAB = 4000 + 18 + 1024  # BPE text + specials + one id per code of the bundled VQGAN
PROMPT = 16
NEW_TOKENS = 257


@torch.no_grad()
def decode_with_cache(model: CM3Transformer, prompt: torch.Tensor) -> list[int]:
    cache = model.new_kv_cache(1, PROMPT + NEW_TOKENS)
    logits = model(prompt, kv_cache=cache)[:, -1]
    out = []
    for _ in range(NEW_TOKENS):
        token = logits.argmax(-1)
        out.append(int(token))
        logits = model(token[:, None], kv_cache=cache)[:, -1]
    return out


@torch.no_grad()
def decode_recomputing(model: CM3Transformer, prompt: torch.Tensor) -> list[int]:
    seq = prompt
    out = []
    for _ in range(NEW_TOKENS):
        token = model(seq)[:, -1].argmax(-1)
        out.append(int(token))
        seq = torch.cat([seq, token[:, None]], dim=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=sorted(PRESETS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"greedy decode of {NEW_TOKENS} tokens after a {PROMPT}-token prompt, CPU, {args.threads} thread(s)"
    )
    print(f"{'preset':<8}{'KV cache s':>12}{'recompute s':>13}{'speed-up':>10}")
    for name in args.presets:
        torch.manual_seed(0)
        model = CM3Transformer(CM3Config(vocab_size=VOCAB, max_seq_len=512, **PRESETS[name])).eval()
        prompt = torch.randint(0, VOCAB, (1, PROMPT), generator=torch.Generator().manual_seed(1))
        cached, full = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            a = decode_with_cache(model, prompt)
            cached.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = decode_recomputing(model, prompt)
            full.append(time.perf_counter() - t0)
            if a != b:
                raise SystemExit(f"{name}: the KV-cache decode differs from the full recompute")
        c, f = statistics.median(cached), statistics.median(full)
        print(f"{name:<8}{c:>12.2f}{f:>13.2f}{f / c:>9.1f}x")


if __name__ == "__main__":
    main()
