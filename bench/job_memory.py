"""Memory of the whole data job on this machine's runners, at 1x / 4x / 16x of a corpus that grows downstream.

The real `cm3-data run` as a subprocess (niced) on WARC files built from the real pages of
`../shared/data/boilerplate-dev` (the first `--pages` of them per copy, one WARC file per copy), each copy
made distinct so that no dedup collapses it: every copy lives under its own host names, and an English word
pair unique to the copy is put between every 4th and 5th word of each text run (so every word 5-gram, every
sentence and every span differs; line ends are untouched, so C4's rules judge the same lines), and each page
carries one photo of its own as an image record (a scikit-image photo, cropped, flipped and tinted per page
and copy so that its perceptual hash is its own; checked). `--languages all` keeps the German and French
pages too. Kept rows and encoded images therefore grow with the copies (printed).

Per runner: the in-process DirectRunner (the baseline: the job as it runs by default), `multi_processing`
with 2 workers, and `--runner dask --workers 2 --worker-memory 2GB` (a LocalCluster started by cm3-data).
The process tree's RSS is polled every 0.2 s (psutil): the peak of the tree's sum, the launcher's peak and
each other process's peak; seconds per page, rows written and images encoded. Runners interleaved per size,
one run each (the machine is shared; time figures are indicative, memory figures are the point).

    .venv/bin/python bench/job_memory.py [--pages 40] [--sizes 1,4,16] [--json out.json]
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.hygiene import perceptual_hash  # noqa: E402
from pipeline.warc_writer import http_response, warc_record, warcinfo_record  # noqa: E402

PAGES = ROOT.parent / "shared" / "data" / "boilerplate-dev"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
WORDS = (
    "river garden window harbour lantern meadow copper thunder silver orchard basket candle pepper marble "
    "violet saddle tunnel velvet walnut anchor beacon blossom canyon falcon granite hammock island jasmine "
    "kettle ladder mirror needle"
).split()
RUNNERS = {
    "in_process": [],
    "multi_processing_2": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "dask_local_2": ["--runner", "dask", "--workers", "2", "--worker-memory", "2GB"],
}
_MARKUP = re.compile(r"(<script\b.*?</script>|<style\b.*?</style>|<!--.*?-->|<[^>]*>)", re.I | re.S)


def copy_marker(copy: int) -> str:
    return f"{WORDS[copy % len(WORDS)]} {WORDS[copy // len(WORDS) % len(WORDS)]}"


def reworded(page: str, copy: int) -> str:
    """The page with the copy's word pair before every 5th word of each text run (never at a run's end)."""
    marker = copy_marker(copy)
    parts = _MARKUP.split(page)
    for i in range(0, len(parts), 2):  # text runs sit at even positions between markup
        words = parts[i].split(" ")
        if len(words) > 5:
            parts[i] = " ".join(w if j % 4 or j == 0 else f"{marker} {w}" for j, w in enumerate(words))
    return "".join(parts)


def with_figure(page: str, figure: str) -> str:
    """The figure after the page's longest paragraph (in the main text, where the minimizer keeps it)."""
    paragraphs = list(re.finditer(r"<p\b[^>]*>.*?</p>", page, re.I | re.S))
    if not paragraphs:
        return page.replace("</body>", figure + "</body>", 1)
    end = max(paragraphs, key=lambda m: len(m.group(0))).end()
    return page[:end] + figure + page[end:]


def photo(copy: int, index: int, seen: set[str]) -> bytes:
    """A JPEG whose perceptual hash no other page of the corpus has: a seeded crop, flip and tint."""
    import skimage.data

    rng = random.Random(f"{copy}:{index}")
    while True:
        array = getattr(skimage.data, PHOTOS[rng.randrange(len(PHOTOS))])()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        image = Image.fromarray(array[..., :3])
        w, h = image.size
        cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = image.crop((x, y, x + cw, y + ch)).resize((320, 240))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        tint = np.array([rng.uniform(0.6, 1.2) for _ in range(3)])
        image = Image.fromarray(np.clip(np.asarray(image) * tint, 0, 255).astype(np.uint8))
        key = perceptual_hash(image)
        if key not in seen:
            seen.add(key)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=85)
            return out.getvalue()


def build_corpus(directory: Path, copies: int, n_pages: int, seen: set[str]) -> list[str]:
    """One WARC file per copy (written once per copy and reused by the larger sizes)."""
    names = sorted(json.loads((PAGES / "evaldata.json").read_text()).items(), key=lambda kv: kv[1]["file"])
    paths = []
    for copy in range(copies):
        path = directory / f"copy{copy:03d}.warc.gz"
        paths.append(str(path))
        if path.exists():
            continue
        records = [warcinfo_record("bench/job_memory.py")]
        for index, (_, entry) in enumerate(names[:n_pages]):
            host = f"copy{copy}.{re.sub(r'[^a-z0-9]+', '-', entry['file'].lower())}.example"
            image_url = f"https://img.{host}/photo{index}.jpg"
            text = (PAGES / "pages" / entry["file"]).read_bytes().decode("utf-8", "replace")
            figure = (
                f'<figure><img src="{image_url}" alt="{html.escape(copy_marker(copy))} photo" width="320" '
                f'height="240"><figcaption>Photo {index} of copy {copy}.</figcaption></figure>'
            )
            text = with_figure(reworded(text, copy), figure)
            records.append(
                warc_record(f"https://{host}/page", http_response(text.encode(), "text/html; charset=utf-8"))
            )
            records.append(warc_record(image_url, http_response(photo(copy, index, seen), "image/jpeg")))
        path.write_bytes(b"".join(records))
    return paths


def watch(process: psutil.Popen, peaks: dict[int, float], tree_peak: list[float], done: threading.Event):
    """Every 0.2 s: each process's RSS (peak per pid) and the tree's sum (its peak)."""
    while not done.wait(0.2):
        total = 0.0
        try:
            members = [process] + process.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for member in members:
            try:
                rss = member.memory_info().rss / 2**20
            except psutil.Error:
                continue
            total += rss
            peaks[member.pid] = max(peaks.get(member.pid, 0.0), rss)
        tree_peak[0] = max(tree_peak[0], total)


def run_job(inputs: list[str], output: Path, runner: list[str]) -> dict:
    command = ["nice", sys.executable, "-m", "pipeline.cli", "run", "--output", str(output), "--no-fetch"]
    command += ["--languages", "all", "--force", "--quiet"] + runner
    for path in inputs:
        command += ["--input", path]
    peaks: dict[int, float] = {}
    tree_peak = [0.0]
    done = threading.Event()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = psutil.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = threading.Thread(target=watch, args=(process, peaks, tree_peak, done))
    watcher.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"run failed ({process.returncode}): {runner}\n{stderr.decode()[-2000:]}")
    report = json.loads((output / "_meta" / "report.json").read_text())
    pages = sum(n for name, n in report["counts"].items() if name.startswith("read.pages."))
    launcher = peaks.pop(process.pid)
    return {
        "pages": pages,
        "rows": sum(report["written"].values()),
        "images_encoded": report["counts"].get("images.encoded", 0),
        "seconds": round(seconds, 1),
        "seconds_per_page": round(seconds / max(pages, 1), 4),
        "tree_peak_mb": round(tree_peak[0]),
        "launcher_peak_mb": round(launcher),
        "other_process_peaks_mb": sorted((round(p) for p in peaks.values() if p > 50), reverse=True),
    }


def capacity(rows: list[dict], input_mb: dict[int, float]) -> dict:
    """MB of peak RSS per GB of input: the slope of the tree's peak between the smallest and largest size."""
    small, large = rows[0], rows[-1]
    slope = (large["tree_peak_mb"] - small["tree_peak_mb"]) / (
        (input_mb[large["size"]] - input_mb[small["size"]]) / 1024
    )
    return {
        "mb_per_input_gb": round(slope),
        "base_mb": round(small["tree_peak_mb"] - slope * input_mb[small["size"]] / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40, help="real pages per copy (1x)")
    parser.add_argument("--sizes", default="1,4,16", help="copies per size")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runners = args.runners.split(",")
    results: dict[str, list[dict]] = {name: [] for name in runners}
    input_mb: dict[int, float] = {}
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="cm3-job-memory-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for size in sizes:
            inputs = build_corpus(corpus, size, args.pages, seen)
            input_mb[size] = sum(os.path.getsize(p) for p in inputs) / 2**20
            for name in runners:  # interleaved: every runner at this size before the next size
                row = {"size": size, "input_mb": round(input_mb[size], 2)}
                row.update(run_job(inputs, Path(tmp) / f"{name}-{size}", RUNNERS[name]))
                results[name].append(row)
                print(f"  {name} {size}x: {json.dumps(row)}", file=sys.stderr, flush=True)
    print(f"{args.pages} real pages per copy, images on (one distinct photo per page), --languages all")
    print(
        f"{'runner':<20}{'size':>5}{'input MB':>9}{'pages':>6}{'rows':>6}{'images':>7}{'s/page':>8}"
        f"{'tree MB':>8}{'launcher':>9}  other processes (MB)"
    )
    for name, rows in results.items():
        for row in rows:
            others = " / ".join(map(str, row["other_process_peaks_mb"][:4]))
            print(
                f"{name:<20}{row['size']:>4}x{row['input_mb']:>9}{row['pages']:>6}{row['rows']:>6}"
                f"{row['images_encoded']:>7}{row['seconds_per_page']:>8}{row['tree_peak_mb']:>8}"
                f"{row['launcher_peak_mb']:>9}  {others}"
            )
    capacities = {name: capacity(rows, input_mb) for name, rows in results.items() if len(rows) > 1}
    for name, fit in capacities.items():
        print(f"{name}: {fit['mb_per_input_gb']} MB of RAM per GB of input (+ {fit['base_mb']} MB)")
    out = {"pages_per_copy": args.pages, "results": results, "capacity": capacities}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
