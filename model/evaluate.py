"""`cm3-generate eval`: each prompt family of CM3 section 4 over a JSONL task file, scored with the
paper's metric, so a trained model can be set beside the paper's tables.

| task | fields | mode run | metric |
|---|---|---|---|
| `summarization` | `document`, `summary` (reference), `style?`, `size_hint?`, `max_len?` | `summarize` | ROUGE-1/2/L F1 (4.3.3, Table 6) |
| `disambiguation` | `html` with `<mask:0>` or `text` + `mention`, `candidates`, `answer` | `entity` | accuracy (4.3.1) |
| `linking` | `html` with `<mask:0>` (`<mask:1>` ... for more mentions) or `text` + `mention`, `candidates` (a list per mention), `answer` (a list per mention) | `link` | accuracy over mentions (4.3.2) |
| `captioning` | `codes` or `image`, `caption?` (reference), `samples?`, `top?` | `caption` | perplexity of the selected caption and of the reference (4.2.3) |

With one gold entity per mention, a prediction for every mention and the mentions given, the paper's
InKB micro-F1 equals accuracy over mentions. The paper scores captions with BERTScore (RoBERTa-large weights, which
this project does not download); perplexity needs nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from .decoding import PromptError, score_completions
from .prompts import attr, build_prompt

TASK_MODES = {
    "summarization": "summarize",
    "disambiguation": "entity",
    "linking": "link",
    "captioning": "caption",
}
_REFERENCE_FIELDS = {"task", "summary", "answer", "caption"}
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class EvalError(ValueError):
    """A task line that cannot be evaluated (unknown task, missing reference)."""


def task_request(task: Mapping) -> dict:
    """The `cm3-generate` request a task line runs: its fields less the task name and reference."""
    name = task.get("task")
    if name not in TASK_MODES:
        raise EvalError(f"unknown task {name!r}; choose from {', '.join(TASK_MODES)}")
    needed = {"summarization": "summary", "disambiguation": "answer", "linking": "answer"}.get(name)
    reference = task.get(needed)
    several = name == "linking" and isinstance(reference, list) and all(isinstance(a, str) for a in reference)
    if needed and not (isinstance(reference, str) or several):
        raise EvalError(f"{name} needs a string `{needed}` (the reference; for linking, a list per mention)")
    return {"mode": TASK_MODES[name]} | {k: v for k, v in task.items() if k not in _REFERENCE_FIELDS}


def rouge_scorer():
    """ROUGE-1/2/L with Porter stemming, as summarization papers report it (Lin 2004; rouge-score)."""
    try:
        from rouge_score import rouge_scorer as rs
    except ImportError:
        raise EvalError("summarization scores need rouge-score: pip install 'cm3-data[eval]'") from None
    return rs.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(scorer, prediction: str, reference: str) -> dict[str, float]:
    """F1 of each ROUGE type, in percent (the scale of the paper's Table 6)."""
    scores = scorer.score(reference, prediction)
    return {name: 100 * scores[name].fmeasure for name in ROUGE_TYPES}


def reference_caption_perplexity(
    model, tok, constraint, request: Mapping, reference: str, codes_of_image
) -> float:
    """Perplexity of the reference caption (then <eos>) as the masked captioning prompt's infill."""
    masked = build_prompt(tok, constraint, request, codes_of_image).parts[0]
    completion = tok.encode(attr(" " + reference.strip())) + [tok.eos_id]
    (logprob,) = score_completions(model, masked.ids, [completion])
    return math.exp(-logprob / len(completion))


def item_metrics(task: Mapping, result: Mapping, scorer=None) -> dict[str, float]:
    """The metric(s) of one finished task from its `run_request` result."""
    name = task["task"]
    if name == "summarization":
        return rouge(scorer or rouge_scorer(), result["summary"], task["summary"])
    if name in ("disambiguation", "linking"):
        answers, best = task["answer"], result.get("best")
        if isinstance(answers, str):
            return {"accuracy": 100.0 * (best == answers)}
        best = best if isinstance(best, list) else [None] * len(answers)
        return {"accuracy": 100.0 * sum(b == a for b, a in zip(best, answers, strict=True)) / len(answers)}
    return {"caption_perplexity": result["outputs"][0]["perplexity"]}


def summarize_metrics(rows: Sequence[Mapping]) -> dict[str, dict]:
    """Per task: `n` (lines), `failed`, and the mean of each metric over the lines that ran, each line
    weighted by its `mentions` (1 unless a linking line marks several): accuracy over mentions, the
    micro average the paper's InKB micro-F1 takes."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(row.get("task") or "?", {"n": 0, "failed": 0, "sums": {}, "counts": {}})
        entry["n"] += 1
        if "error" in row:
            entry["failed"] += 1
            continue
        weight = row.get("mentions", 1)
        for key, value in row["metrics"].items():
            entry["sums"][key] = entry["sums"].get(key, 0.0) + weight * value
            entry["counts"][key] = entry["counts"].get(key, 0) + weight
    return {
        task: {"n": e["n"], "failed": e["failed"]} | {k: e["sums"][k] / e["counts"][k] for k in e["sums"]}
        for task, e in sorted(out.items())
    }


def format_table(summary: Mapping[str, Mapping]) -> str:
    """A plain-text table: one row per task, its metrics by name."""
    lines = [f"{'task':<16}{'n':>5}{'failed':>8}  metrics"]
    for task, entry in summary.items():
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in entry.items() if k not in ("n", "failed"))
        lines.append(f"{task:<16}{entry['n']:>5}{entry['failed']:>8}  {metrics or '-'}")
    return "\n".join(lines)


def evaluate_task(
    run: Callable[[dict, int], dict],
    model,
    tok,
    constraint,
    task: Mapping,
    index: int,
    codes_of_image=None,
    scorer=None,
) -> dict:
    """One task line -> {index, task, metrics, result} (or {index, task, error}); `run(request, index)`
    is `run_request` with the run's model and settings bound."""
    record: dict = {"index": index, "task": task.get("task") if isinstance(task, Mapping) else None}
    try:
        if not isinstance(task, Mapping):
            raise EvalError("expected a JSON object")
        request = task_request(task)
        result = run(request, index)
        metrics = item_metrics(task, result, scorer)
        reference = task.get("caption")
        if task["task"] == "captioning" and isinstance(reference, str) and reference.strip():
            metrics["reference_perplexity"] = reference_caption_perplexity(
                model, tok, constraint, request, reference, codes_of_image
            )
        record |= {"metrics": metrics, "result": result}
        if isinstance(task.get("answer"), list):
            record["mentions"] = len(task["answer"])
    except (EvalError, PromptError, ValueError, OSError) as err:
        record["error"] = f"{type(err).__name__}: {err}"
    return record


__all__ = [
    "ROUGE_TYPES",
    "TASK_MODES",
    "EvalError",
    "evaluate_task",
    "format_table",
    "item_metrics",
    "reference_caption_perplexity",
    "rouge",
    "rouge_scorer",
    "summarize_metrics",
    "task_request",
]
