"""The fetch step's window, progress lines and failure-rate line, as plain functions."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.images import FetchProgress, completed, progress_line
from pipeline.report import fetch_failure


@pytest.mark.parametrize("window", [1, 4, 16])
def test_the_window_bounds_work_in_flight_and_items_pulled(window):
    lock = threading.Lock()
    state = {"running": 0, "most": 0, "pulled": 0}

    def items():
        for i in range(60):
            state["pulled"] += 1
            yield i

    def work(i: int) -> int:
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        time.sleep(0.001 * (i % 7))  # completion order differs from submission order
        with lock:
            state["running"] -= 1
        return i * i

    results = []
    with ThreadPoolExecutor(32) as pool:
        for result in completed(work, items(), pool, window):
            assert state["pulled"] - len(results) <= window  # held: submitted but not yet handed on
            results.append(result)
    assert sorted(results) == [i * i for i in range(60)]
    assert state["most"] <= window
    if window > 1:
        assert state["most"] > 1


def test_an_empty_group_yields_nothing():
    with ThreadPoolExecutor(2) as pool:
        assert list(completed(lambda x: x, [], pool, 4)) == []


def test_progress_line_names_rate_share_and_top_failures():
    line = progress_line({"ok": 80, "timeout": 12, "bad_status": 5, "not_image": 2, "too_large": 1}, 56.7)
    assert line == "images: 100 fetched (56.7/s), 80% ok; failures: timeout 12, bad_status 5, not_image 2"
    assert progress_line({"ok": 3}, 1.0) == "images: 3 fetched (1.0/s), 100% ok"


def test_progress_is_due_at_most_every_interval():
    progress = FetchProgress(interval=0.2)
    assert progress.record("ok") is None
    time.sleep(0.25)
    line = progress.record("timeout")
    assert line is not None and line.startswith("images: 2 fetched") and "timeout 1" in line
    assert progress.record("ok") is None


def test_failure_rate_line_names_the_main_failure_and_what_to_do():
    counts = {"images.fetch.connection_error": 2400, "images.fetch.timeout": 119, "images.unique": 2519}
    line = fetch_failure(counts, 0.5)
    assert line.startswith("2519 of 2519 image fetches failed (100%")
    assert "mostly connection_error (2400)" in line and "--no-fetch" in line and "proxy" in line


def test_failure_rate_is_not_judged_on_few_fetches_or_below_the_limit():
    assert fetch_failure({"images.fetch.timeout": 19}, 0.5) is None
    assert fetch_failure({"images.fetch.ok": 50, "images.fetch.timeout": 50}, 0.5) is None
    assert fetch_failure({"images.fetch.ok": 49, "images.fetch.timeout": 51}, 0.5) is not None
    assert fetch_failure({"images.fetch.timeout": 100}, 1.0) is None


def test_at_most_decode_slots_images_are_decoded_at_once(monkeypatch):
    from image_tokenizer import FetchResult
    from pipeline import images
    from pipeline.hygiene import Hygiene

    lock = threading.Lock()
    state = {"decoding": 0, "most": 0}

    class Fetcher:
        def fetch(self, url):
            time.sleep(0.005)
            return FetchResult(url, True, b"bytes", "ok")

    def prepare(url, data, rules):
        with lock:
            state["decoding"] += 1
            state["most"] = max(state["most"], state["decoding"])
        time.sleep(0.01)
        with lock:
            state["decoding"] -= 1
        return None, "decode_error", url, None

    monkeypatch.setattr(images, "prepare", prepare)
    slots = threading.Semaphore(2)

    def work(url):
        return images.fetch_and_prepare(url, Fetcher(), Hygiene(), slots)

    with ThreadPoolExecutor(16) as pool:
        results = list(completed(work, [f"u{i}" for i in range(40)], pool, 16))
    assert len(results) == 40 and {r.fetch_outcome for r in results} == {"ok"}
    assert {r.outcome for r in results} == {"decode_error"}
    assert state["most"] == 2
