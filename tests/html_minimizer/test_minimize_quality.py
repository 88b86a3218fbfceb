"""Boilerplate quality on the labelled real pages in ../shared (evaluation data, not shipped)."""

import json
import subprocess
import sys


def test_recall_and_f1_on_labelled_pages(shared_dir):
    scorer = shared_dir / "tools" / "boilerplate_score.py"
    run = subprocess.run(
        [sys.executable, str(scorer)], capture_output=True, text=True, check=True, timeout=300
    )
    scores = json.loads(run.stdout.strip().splitlines()[-1])
    assert scores["pages"] == 106 and scores["errors"] == 0
    assert scores["recall"] >= 0.95
    assert scores["f1"] >= 0.90
