"""Decoding speed of one image (256 codes + the closing token) with the KV cache, against recomputing
the full forward at every step (the baseline, same model, same run).

Both loops decode greedily from the same prompt and must give the same tokens; the script checks it.
Prints seconds per decode (median of --repeats, the two loops interleaved) and the speed-up.

Then entity linking over --candidates names (CM3 4.3.2): beam search limited to the candidates by a
prefix trie (GENRE's 5 beams, and `link` as it runs: min(candidates, 256) beams ranked by total log p, the
`entity` rule) against scoring every candidate (`entity`), same model and prompt; prints
both times and whether they agree on the best candidate.

    .venv/bin/python bench/generate.py [--presets tiny small] [--repeats 3] [--threads 1] [--candidates 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import PRESETS, CM3Config, CM3Tokenizer, CM3Transformer  # noqa: E402
from model.generate import (  # noqa: E402
    EXHAUSTIVE_LINK_BEAMS,
    BeamOptions,
    CodeConstraint,
    beam_search,
    build_prompt,
    score_completions,
)

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
    ap.add_argument("--candidates", type=int, default=2000, help="entity names for the linking figure")
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
    print(
        "\nentity linking: trie-limited beam search (5 beams; link's width) against scoring every candidate"
    )
    print(
        f"{'preset':<8}{'candidates':>11}{'their tokens':>14}{'5 beams s':>10}{'link s':>9}{'beams':>7}"
        f"{'score s':>9}{'5 beams same best':>19}{'link same best':>16}"
    )
    for name in args.presets:
        bench_linking(name, args.candidates, args.repeats)


def entity_names(n: int) -> list[str]:
    """n distinct made-up entity names ("Kovara Lesti (river)"), seeded."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "ve", "ri", "sta", "mon", "del", "ur", "pe", "an", "gri", "to"]
    kinds = ["river", "city", "band", "film", "person", "company"]
    names: set[str] = set()
    while len(names) < n:
        words = [
            "".join(rng.choices(syllables, k=rng.randint(2, 3))).title() for _ in range(rng.randint(1, 2))
        ]
        names.add(" ".join(words) + f" ({rng.choice(kinds)})")
    return sorted(names)


def bench_linking(preset: str, n: int, repeats: int) -> None:
    names = entity_names(n)
    docs = [f'<p><a title="{name}">{name.split(" (")[0]}</a> is mentioned here.</p>' for name in names]
    tok = CM3Tokenizer.train(docs, vocab_size=2000, n_embed=1024)
    torch.manual_seed(0)
    model = CM3Transformer(CM3Config(vocab_size=tok.vocab_size, max_seq_len=512, **PRESETS[preset])).eval()
    constraint = CodeConstraint(tok)
    html = '<p>The <a title="<mask:0>">Kalove</a> flooded the valley again this spring.</p>'
    prompt = build_prompt(tok, constraint, {"mode": "link", "html": html, "candidates": names})
    scoring = build_prompt(tok, constraint, {"mode": "entity", "html": html, "candidates": names})
    width = min(prompt.trie.n_sequences, EXHAUSTIVE_LINK_BEAMS)
    times: dict[str, list[float]] = {"5": [], "link": [], "score": []}
    for _ in range(repeats):
        found = {}
        for label, options in (("5", BeamOptions(5, 1.0, 0)), ("link", BeamOptions(width, 0.0, 0))):
            t0 = time.perf_counter()
            found[label] = beam_search(
                model,
                constraint,
                prompt.ids,
                prompt.state,
                prompt.stop,
                options,
                max_new_tokens=prompt.new_tokens,
                trie=prompt.trie,
            )[0].ids
            times[label].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = score_completions(model, scoring.ids, scoring.candidates)
        times["score"].append(time.perf_counter() - t0)
    best_scored = scoring.candidates[max(range(n), key=scores.__getitem__)]
    tokens = sum(map(len, scoring.candidates))
    five, link, score = (statistics.median(times[k]) for k in ("5", "link", "score"))
    print(
        f"{preset:<8}{n:>11}{tokens:>14}{five:>10.2f}{link:>9.2f}{width:>7}{score:>9.2f}"
        f"{'yes' if found['5'] == best_scored else 'no':>19}{'yes' if found['link'] == best_scored else 'no':>16}"
    )


if __name__ == "__main__":
    main()
