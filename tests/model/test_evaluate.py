"""Task metrics (`model.evaluate`)."""

from __future__ import annotations

import math

import pytest


def test_rouge_scores_are_rouge_score_f1_in_percent():
    from model.evaluate import format_table, rouge, rouge_scorer, summarize_metrics

    scorer = rouge_scorer()
    same = rouge(scorer, "the cat sat on the mat", "the cat sat on the mat")
    assert same == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    part = rouge(scorer, "the cat sat", "the cat sat on the mat")
    assert math.isclose(part["rouge1"], 100 * 2 * (1 * 0.5) / 1.5) and part["rouge2"] < part["rouge1"]
    rows = [
        {"task": "linking", "metrics": {"accuracy": 100.0}},
        {"task": "linking", "metrics": {"accuracy": 0.0}},
        {"task": "linking", "error": "bad"},
    ]
    summary = summarize_metrics(rows)
    assert summary == {"linking": {"n": 3, "failed": 1, "accuracy": 50.0}}
    rows.append({"task": "linking", "metrics": {"accuracy": 50.0}, "mentions": 4})  # 2 of 4 mentions
    assert summarize_metrics(rows)["linking"]["accuracy"] == pytest.approx(100 * 3 / 6)
    assert "linking" in format_table(summary) and "accuracy 50.00" in format_table(summary)
