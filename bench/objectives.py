"""CM3 against the objectives it builds on, at equal compute: the same small model trained on the same
token shards for the same number of training tokens, once per objective (clm, cm3, t5, glm, glm_doc,
unilmv2), then scored the same way on the same held-out documents:

- left-to-right perplexity: every model read causally over windows of the held-out documents;
- infilling perplexity: one span (3-12 tokens, in the middle half) per 200-token held-out window (400 spans), masked,
  and the span's tokens scored given both sides, each model in its own objective's infilling form (cm3:
  left <mask:0> right <mask:0> span; t5: prefix left <X0> right, then <X0> span; glm: Part A
  left [MASK] right, then [S] span; unilmv2: the span as [M]s, scored by the autoencoding head). clm cannot
  see the right side: its figure is the span given the left side only, the baseline infilling must beat.

The corpus is the Python 3.11 documentation HTML of Debian's python3.11-doc package (installed by this
script with apt-get if missing; never shipped), minimized by html_minimizer, written as document shards by
the pipeline's shard writer, then through cm3-train's tokenizer and token shard writer.

    nice -n 10 .venv/bin/python bench/objectives.py [--steps 100] [--objectives clm,cm3,...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from html_minimizer import MinimizeError, minimize  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.objectives import (  # noqa: E402
    OBJECTIVES,
    Example,
    SpecialIds,
    WindowRandom,
    cm3_mask,
    glm_example,
    t5_example,
    unilm_example,
)
from model.shards import TokenSplit, tokenize_shards, train_tokenizer  # noqa: E402
from model.trainer import Trainer  # noqa: E402
from pipeline.doc_steps import doc_id  # noqa: E402
from pipeline.shards import FORMAT, SPLITS, finish_shards, write_manifest, write_shard  # noqa: E402

DOC_ROOT = Path("/usr/share/doc/python3.11/html")
N_EMBED = 16  # no images in this corpus; a token range for codes is kept as the layout requires
MODEL = ["preset=small", "d_model=128", "n_layers=4", "n_heads=4", "d_ffn=512", "seq_len=256", "batch_size=8"]
SEQ_LEN = 256


def python_docs() -> list[Path]:
    if not DOC_ROOT.is_dir():
        print("installing python3.11-doc (the corpus) with apt-get ...", file=sys.stderr)
        done = subprocess.run(["apt-get", "install", "-y", "-q", "python3.11-doc"], capture_output=True)
        if done.returncode or not DOC_ROOT.is_dir():
            sys.exit(f"bench/objectives.py: needs {DOC_ROOT} (apt-get install python3.11-doc failed)")
    return sorted(DOC_ROOT.rglob("*.html"))


def build_corpus(out: Path, vocab_size: int) -> tuple[Path, dict]:
    """Document shards (5 % of pages held out by a hash of their path), tokenizer, token shards."""
    rows: dict[str, list[dict]] = {"train": [], "validation": []}
    skipped = 0
    for path in python_docs():
        url = "https://docs.python.org/3.11/" + str(path.relative_to(DOC_ROOT))
        try:
            page = minimize(path.read_bytes(), url)
        except MinimizeError:
            skipped += 1
            continue
        split = "validation" if zlib.crc32(url.encode()) % 20 == 0 else "train"
        html = page.html
        rows[split].append(
            {
                "id": doc_id(url),
                "url": url,
                "source": "html",
                "html": html,
                "n_images": html.count("<img"),
                "n_chars": len(html),
                "lang_score": 1.0,
            }
        )
    docs = out / "docs"
    docs.mkdir(parents=True)
    written = []
    for split, split_rows in rows.items():
        split_rows.sort(key=lambda r: r["id"])
        written.append(write_shard(str(docs), split, 0, 1, split_rows))
    manifest = {
        "format": FORMAT,
        "splits": finish_shards(str(docs), written, {split: 1 for split in SPLITS}),
        "image_codes": {
            "n_embed": N_EMBED,
            "codes_per_image": 256,
            "vqgan": {"checkpoint": "none", "sha256": ""},
        },
        "options": {},
        "metrics": {},
        "code_version": "bench",
    }
    write_manifest(str(docs), manifest)
    train_tokenizer(docs, vocab_size=vocab_size, out_dir=out / "tokenizer")
    tokenize_shards(docs, out / "tokenizer", out / "tokens", workers=1)
    info = {
        "pages": sum(len(r) for r in rows.values()),
        "skipped": skipped,
        "train_docs": len(rows["train"]),
        "validation_docs": len(rows["validation"]),
        "html_mb": round(sum(r["n_chars"] for r in rows["train"] + rows["validation"]) / 1e6, 1),
    }
    return out / "tokens", info


# ---------------------------------------------------------------- scoring, the same for every model
def _forward(model, examples: list[Example], rule: bool) -> list[torch.Tensor]:
    """Per-position log-probabilities of each example's targets (examples right-padded into one batch)."""
    width = max(len(e) for e in examples)
    batch = {k: torch.zeros(len(examples), width, dtype=torch.long) for k in ("tokens", "positions")}
    if rule:
        for k in ("segment_ids", "visible", "sees", "group", "positions2"):
            batch[k] = torch.zeros(len(examples), width, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        batch["tokens"][i, :n] = torch.from_numpy(e.inputs)
        batch["positions"][i, :n] = torch.from_numpy(e.positions if e.positions is not None else np.arange(n))
        batch["positions"][i, n:] = torch.arange(width - n)
        if rule:
            batch["segment_ids"][i, n:] = 1
            batch["visible"][i, :n] = torch.from_numpy(e.visible)
            batch["sees"][i, :n] = torch.from_numpy(e.sees)
            batch["group"][i, :n] = torch.from_numpy(e.group)
            if e.positions2 is not None:
                batch["positions2"][i, :n] = torch.from_numpy(e.positions2)
    if not model.config.block_positions:
        batch.pop("positions2", None)
    tokens = batch.pop("tokens")
    with torch.no_grad():
        logp = F.log_softmax(model(tokens, **batch).float(), dim=-1)
    return [
        logp[i, : len(e)].gather(1, torch.from_numpy(e.targets)[:, None])[:, 0]
        for i, e in enumerate(examples)
    ]


def left_to_right_nll(model, docs: list[np.ndarray]) -> tuple[float, int]:
    windows = [d[i : i + SEQ_LEN + 1] for d in docs for i in range(0, len(d) - 1, SEQ_LEN)]
    examples = [Example(w[:-1], w[1:], np.ones(len(w) - 1, np.float32)) for w in windows if len(w) > 1]
    total, n = 0.0, 0
    for i in range(0, len(examples), 16):
        for lp in _forward(model, examples[i : i + 16], rule=False):
            total -= float(lp.sum())
            n += len(lp)
    return total, n


def infill_cases(docs: list[np.ndarray], limit: int = 400) -> list[tuple[np.ndarray, int, int]]:
    """(window, start, end): one span of 3-12 tokens in the middle half of each 200-token window."""
    cases = []
    for k, d in enumerate(docs):
        for at in range(0, len(d) - 40, 200):
            w = d[at : at + 200]
            rng = WindowRandom(2024, k, at)
            n = 3 + rng.below(10)
            start = len(w) // 4 + rng.below(len(w) // 2 - n)
            cases.append((w, start, start + n))
    step = max(1, len(cases) // limit)
    return cases[::step][:limit]


def infill_example(objective: str, window, start, end, ids: SpecialIds) -> tuple[Example, np.ndarray]:
    """The objective's own infilling input and the positions whose targets are the span's tokens."""
    n = end - start
    if objective == "clm":
        seq = window[:end]
        return Example(seq[:-1], seq[1:], np.ones(end - 1, np.float32)), np.arange(start - 1, end - 1)
    if objective == "cm3":
        seq = cm3_mask(window, np.array([[start, end]]), ids.mask_offset, ids.eos_id)
        head = len(window) - n + 1  # the second <mask:0>
        return Example(seq[:-1], seq[1:], np.ones(len(seq) - 1, np.float32)), np.arange(head, head + n)
    if objective == "t5":
        ex = t5_example(window, [start, len(window) - end], [n], ids)
        first = int(np.flatnonzero(ex.weights)[0]) + 1  # <X0> is predicted first, then the span
        return ex, np.arange(first, first + n)
    if objective in ("glm", "glm_doc"):
        ex = glm_example(window, np.array([[start, end]]), WindowRandom(0), ids)
        first = int(np.flatnonzero(ex.weights)[0])
        return ex, np.arange(first, first + n)
    ex = unilm_example(window, [(start, end)], WindowRandom(0), ids)
    ex.inputs[start:end] = ids.mask  # every span token as [M] (no 10 % random / kept at scoring time)
    return ex, np.arange(start, end)


def infill_nll(model, objective: str, cases, ids: SpecialIds) -> tuple[float, int]:
    total, n = 0.0, 0
    rule = objective not in ("clm", "cm3")
    for i in range(0, len(cases), 16):
        built = [infill_example(objective, *c, ids) for c in cases[i : i + 16]]
        for lp, (_, at) in zip(_forward(model, [e for e, _ in built], rule), built, strict=True):
            total -= float(lp[at].sum())
            n += len(at)
    return total, n


def run(objective: str, data: Path, steps: int, out: Path, val_docs, cases) -> dict:
    overrides = [f"data={data}", f"out={out}", *MODEL, f"objective={objective}", f"max_steps={steps}"]
    overrides += [
        "device=cpu",
        "progress=false",
        "eval_every=0",
        "ckpt_every=0",
        "warmup_steps=20",
        "lr=1e-3",
    ]
    trainer = Trainer(TrainConfig.load(None, overrides))
    t = time.perf_counter()
    last = trainer.fit()
    wall = time.perf_counter() - t
    model = trainer.raw_model.eval()
    ids = trainer.loader_options.special_ids
    l2r, n_l2r = left_to_right_nll(model, val_docs)
    fill, n_fill = infill_nll(model, objective, cases, ids)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "objective": objective,
        "train_loss": round(last["loss"], 3),
        "l2r_ppl": round(math.exp(l2r / n_l2r), 2),
        "infill_ppl": round(math.exp(fill / n_fill), 2),
        "tokens_per_s": round(steps * 8 * SEQ_LEN / wall),
        "wall_s": round(wall, 1),
        "l2r_tokens": n_l2r,
        "infill_tokens": n_fill,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=100, help="training steps of 8 x 256 tokens per objective"
    )
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.stdout.reconfigure(line_buffering=True)  # each objective's row as it is done
    objectives = args.objectives.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        data, info = build_corpus(Path(tmp), args.vocab)
        train, val = TokenSplit.open(data, "train"), TokenSplit.open(data, "validation")
        info["train_tokens"], info["validation_tokens"] = len(train.tokens), len(val.tokens)
        print(
            f"corpus: Python 3.11 docs, {info['pages']} pages ({info['skipped']} skipped), {info['html_mb']} MB "
            f"minimal HTML; train {info['train_docs']} docs / {info['train_tokens']:,} tokens, held out "
            f"{info['validation_docs']} docs / {info['validation_tokens']:,} tokens; built in "
            f"{time.perf_counter() - t:.0f} s"
        )
        val_docs = [val.doc(i).astype(np.int64) for i in range(len(val))]
        cases = infill_cases(val_docs)
        tokens = args.steps * 8 * SEQ_LEN
        print(
            f"model: {' '.join(MODEL)}; {args.steps} steps = {tokens:,} training tokens per objective, 1 thread"
        )
        results = []
        print(
            f"{'objective':<10} {'train loss':>10} {'L2R ppl':>9} {'infill ppl':>10} {'tokens/s':>9} {'wall s':>7}"
        )
        for objective in objectives:
            r = run(objective, data, args.steps, Path(tmp) / f"run-{objective}", val_docs, cases)
            results.append(r)
            print(
                f"{objective:<10} {r['train_loss']:>10.3f} {r['l2r_ppl']:>9.2f} {r['infill_ppl']:>10.2f} "
                f"{r['tokens_per_s']:>9,} {r['wall_s']:>7.1f}"
            )
        print(
            json.dumps(
                {"corpus": info, "training_tokens": tokens, "infill_spans": len(cases), "results": results}
            )
        )


if __name__ == "__main__":
    main()
