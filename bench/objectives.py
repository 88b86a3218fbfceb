"""CM3 against the objectives it builds on, at equal compute: the same small model trained on the same
token shards for the same number of training tokens, once per objective (clm, cm3, t5, glm, glm_doc,
unilmv2), then scored the same way on the same held-out documents:

- left-to-right perplexity, each model in its own objective's form of reading a window left to right
  (clm, cm3: a plain causal pass; t5: the whole window as one noise span, `<X0>` -> `<X0> window <X1>`, the
  prefix LM with an empty prefix; glm, glm_doc: the whole window as one span, Part A `[MASK]`, Part B
  `[S] window` (GLM section 2.3's generation form); unilmv2: every token its own block in left-to-right
  factorization order, the context all `[M]`, token k predicted by its `[P]` seeing tokens < k (section
  3's partially autoregressive form)), the same tokens scored for every model (each window's first token is
  left out: a causal pass has nothing to predict it from); and, for reference, every model read by a plain
  causal pass (not the form t5, glm or unilmv2 were trained in);
- infilling perplexity: one span (3-12 tokens, in the middle half) per 200-token held-out window (400 spans), masked,
  and the span's tokens scored given both sides, each model in its own objective's infilling form (cm3:
  left <mask:0> right <mask:0> span; t5: prefix left <X0> right, then <X0> span; glm: Part A
  left [MASK] right, then [S] span; unilmv2: the span as [M]s, scored by the autoencoding head). clm cannot
  see the right side: its figure is the span given the left side only, the baseline infilling must beat.

Each objective is trained with several seeds (model initialisation, data order and masking); the table gives
mean +- sample standard deviation over the seeds, and the share of row slots that carry loss in training.

The corpus is the Python 3.11 documentation HTML of Debian's python3.11-doc package (installed by this
script with apt-get if missing; never shipped), minimized by html_minimizer, written as document shards by
the pipeline's shard writer, then through cm3-train's tokenizer and token shard writer.

    nice -n 10 .venv/bin/python bench/objectives.py [--steps 30] [--seeds 0,1,2] [--objectives clm,cm3,...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
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
from model.data import PackedLoader  # noqa: E402
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
L2R_WINDOW = 200  # fits every objective's own form in a row of SEQ_LEN positions (glm's window is 213)


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


def l2r_windows(docs: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """Consecutive windows of L2R_WINDOW tokens of the held-out documents, evenly thinned to `limit`."""
    windows = [d[i : i + L2R_WINDOW] for d in docs for i in range(0, len(d) - 1, L2R_WINDOW)]
    windows = [w for w in windows if len(w) > 1]
    return windows[:: max(1, len(windows) // limit)][:limit]


def l2r_example(form: str, window: np.ndarray, ids: SpecialIds) -> tuple[Example, np.ndarray]:
    """`window` read left to right in an objective's own form (`form`: an objective, or "plain"), and the
    positions whose targets are window[1:] (every form scores the same tokens)."""
    n = len(window)
    if form in ("plain", "clm", "cm3"):
        return Example(window[:-1], window[1:], np.ones(n - 1, np.float32)), np.arange(n - 1)
    if form == "t5":  # inputs <X0> <X0> w0 .. w_{n-1}: w_j is the target at j + 1
        return t5_example(window, [0], [n], ids), np.arange(2, n + 1)
    if form in ("glm", "glm_doc"):  # inputs [MASK] [S] w0 .. w_{n-1}: w_j is the target at j + 1
        return glm_example(window, np.array([[0, n]]), WindowRandom(0), ids), np.arange(2, n + 1)
    ex = unilm_example(window, [(k, k + 1) for k in range(n)], WindowRandom(0), ids)
    ex.inputs[:n] = ids.mask  # the context all [M]; [P] of token k is at n + 2k
    return ex, n + 2 * np.arange(1, n)


def left_to_right_nll(model, form: str, windows: list[np.ndarray], ids: SpecialIds) -> tuple[float, int]:
    total, n = 0.0, 0
    rule = form not in ("plain", "clm", "cm3")
    for i in range(0, len(windows), 16):
        built = [l2r_example(form, w, ids) for w in windows[i : i + 16]]
        for lp, (_, at) in zip(_forward(model, [e for e, _ in built], rule), built, strict=True):
            total -= float(lp[at].sum())
            n += len(at)
    return total, n


def loss_share(trainer: Trainer, batches: int = 40) -> float:
    """The share of row slots whose target carries loss, over fresh batches of the run's own loader."""
    loader = PackedLoader(trainer.train_split, trainer.loader_options)
    weights = [loader.next_batch()["weights"] for _ in range(batches)]
    return float(sum(w.sum() for w in weights) / sum(w.size for w in weights))


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


def run(objective: str, seed: int, data: Path, steps: int, out: Path, windows, cases) -> dict:
    overrides = [f"data={data}", f"out={out}", *MODEL, f"objective={objective}", f"max_steps={steps}"]
    overrides += [
        f"seed={seed}",
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
    own, n_l2r = left_to_right_nll(model, objective, windows, ids)
    plain, _ = left_to_right_nll(model, "plain", windows, ids)
    fill, n_fill = infill_nll(model, objective, cases, ids)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "objective": objective,
        "seed": seed,
        "train_loss": last["loss"],
        "loss_share": loss_share(trainer),
        "l2r_ppl": math.exp(own / n_l2r),
        "l2r_plain_ppl": math.exp(plain / n_l2r),
        "infill_ppl": math.exp(fill / n_fill),
        "tokens_per_s": last["tokens_per_s"],
        "wall_s": wall,
        "l2r_tokens": n_l2r,
        "infill_tokens": n_fill,
    }


def mean_sd(values: list[float], digits: int) -> str:
    """`mean +- sample standard deviation` (the mean alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:,.{digits}f}"
    return f"{mean:,.{digits}f} +- {statistics.stdev(values):,.{digits}f}"


COLUMNS = (  # (header, result key, digits)
    ("train loss", "train_loss", 3),
    ("loss slots", "loss_share", 3),
    ("L2R ppl, own form", "l2r_ppl", 1),
    ("L2R ppl, plain causal", "l2r_plain_ppl", 1),
    ("infill ppl", "infill_ppl", 1),
    ("tokens/s", "tokens_per_s", 0),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="training steps of 8 x 256 tokens per run")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds per objective")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary size")
    parser.add_argument("--l2r-windows", type=int, default=80, help="held-out windows read left to right")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.stdout.reconfigure(line_buffering=True)  # each run's line as it is done
    objectives = args.objectives.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
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
        windows, cases = l2r_windows(val_docs, args.l2r_windows), infill_cases(val_docs)
        tokens = args.steps * 8 * SEQ_LEN
        print(
            f"model: {' '.join(MODEL)}; {args.steps} steps = {tokens:,} training tokens per run, 1 thread; "
            f"seeds {seeds}; L2R: {len(windows)} windows of {L2R_WINDOW}; infilling: {len(cases)} spans"
        )
        results = []
        for objective in objectives:
            for seed in seeds:
                r = run(
                    objective, seed, data, args.steps, Path(tmp) / f"run-{objective}-{seed}", windows, cases
                )
                results.append(r)
                print(
                    "  "
                    + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items())
                )
        print("| objective | " + " | ".join(h for h, _, _ in COLUMNS) + " |")
        print("|---" * (len(COLUMNS) + 1) + "|")
        for objective in objectives:
            rows = [r for r in results if r["objective"] == objective]
            cells = [mean_sd([r[key] for r in rows], digits) for _, key, digits in COLUMNS]
            cells[1] = mean_sd([100 * r["loss_share"] for r in rows], 1) + " %"
            print(f"| `{objective}` | " + " | ".join(cells) + " |")
        print(json.dumps({"corpus": info, "training_tokens": tokens, "seeds": seeds, "results": results}))


if __name__ == "__main__":
    main()
