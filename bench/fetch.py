"""Image fetching on a local farm: the job's fetch path against the sequential one it replaced, img2dataset,
and decode + crop alone (the CPU floor), on the same URLs in the same run.

    .venv/bin/python bench/fetch.py                          # 64 hosts, 100 ms +- 30 ms, 64 URLs and 16x
    .venv/bin/python bench/fetch.py --img2dataset /tmp/i2d/bin/img2dataset   # (c) from its own venv

The farm: `--hosts` loopback servers (127.0.0.20, .21 ...) in a separate process, serving real photos
(scikit-image samples and the sample corpus's JPEGs, resized and re-encoded to 50 KB - 2 MB) after
`--latency` +- `--jitter` seconds, with faults spread over the URLs: 404, 500, connection resets, slow drip
(16 KB/s), and 429 with Retry-After: 1 (the same URL is served once its Retry-After has passed).

Variants, each a fresh process on the same URL list, run one after another, in `--repeats` rounds (the
figures are medians over the rounds; (a) runs in the first only):
  (a) before: the job's old step, one URL at a time through ImageFetcher.fetch, with the fetcher of
      `--old-ref` (git show; the commit before concurrent fetching), then decode + crop
  (b) now: `pipeline.images.completed` over `fetch_and_prepare`, --concurrency in flight, as the job's
      fetch step runs each group
  (c) img2dataset (its own venv), 1 process, --concurrency threads, center-crop to 256, no retries
  (d) decode + crop alone, from bytes in memory: the CPU floor
images/s = images cropped per second of the variant's work (after its imports and set-up; for img2dataset
the duration in its own stats); per CPU-s = images cropped per CPU-second of that work (all threads; for
img2dataset its process tree's CPU less that of a 1-URL run); peak RSS = the process's maximum resident set
(for img2dataset the largest of its processes). The 1x list has as many URLs as the window by default, so
both runs fill it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
LONG_SIDES = (1000, 1800, 2800)  # with these JPEG qualities: about 50 KB to 2 MB
QUALITIES = (88, 90, 95)
FAULTS = ("404", "500", "reset", "drip", "429")
FAULT_SHARE = 0.02  # of the URLs, per fault kind
DRIP_BYTES_PER_S = 16 * 1024
OLD_REF = "4da4363"  # the commit before concurrent fetching


# ---------------------------------------------------------------- the photos


def photo_pool(directory: Path) -> list[Path]:
    """Real photos re-encoded at several sizes, cached in `directory`; sorted by size."""
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("*.jpg")):
        from image_tokenizer.train_small_vqgan import skimage_rgb

        sources = [(name, skimage_rgb(name)[0]) for name in PHOTOS] + corpus_photos()
        for name, image in sources:
            for side, quality in zip(LONG_SIDES, QUALITIES, strict=True):
                scale = side / max(image.size)
                resized = image.resize((round(image.width * scale), round(image.height * scale)))
                resized.save(directory / f"{name}-{side}.jpg", "JPEG", quality=quality)
    return sorted(directory.glob("*.jpg"), key=lambda path: path.stat().st_size)


def corpus_photos() -> list:
    """The JPEG records of the bundled sample WARC (news photos)."""
    from image_tokenizer import ImageDecodeError, decode_image
    from pipeline.items import ImageRecord
    from pipeline.readers import read_input

    warc = REPO / "pipeline" / "data" / "sample_corpus" / "news.warc.gz"
    found = []
    for item in read_input(str(warc), None):
        if isinstance(item, ImageRecord) and item.data[:2] == b"\xff\xd8":
            try:  # the corpus carries damaged images on purpose
                found.append((f"corpus{len(found)}", decode_image(item.data)))
            except ImageDecodeError:
                continue
    return found[:4]


# ---------------------------------------------------------------- the farm (its own process)


def url_list(hosts: list[tuple[str, int]], n_photos: int, n: int, seed: int = 0) -> list[str]:
    """`n` URLs over the hosts; FAULT_SHARE of them per fault kind, the rest photos (kind in the path)."""
    rng = random.Random(seed)
    urls = []
    for i in range(n):
        host, port = hosts[i % len(hosts)]
        draw = rng.random()
        kind = FAULTS[int(draw / FAULT_SHARE)] if draw < FAULT_SHARE * len(FAULTS) else "ok"
        urls.append(f"http://{host}:{port}/{kind}/{rng.randrange(n_photos)}/{i}.jpg")
    return urls


def serve(n_hosts: int, pool_dir: Path, latency: float, jitter: float, ready: Path) -> None:
    """Run the farm until killed; writes [[host, port], ...] to `ready` once every server listens."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    photos = [path.read_bytes() for path in photo_pool(pool_dir)]
    told: dict[str, float] = {}  # path -> when its 429 was sent
    lock = threading.Lock()

    class Farm(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(max(0.0, random.uniform(latency - jitter, latency + jitter)))
            _, kind, index, _ = self.path.split("/", 3)
            body = photos[int(index) % len(photos)]
            if kind == "404":
                return self.send(404, b"not found", "text/plain")
            if kind == "500":
                return self.send(500, b"oops", "text/plain")
            if kind == "reset":  # RST instead of an answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return None
            if kind == "429":
                with lock:
                    since = time.monotonic() - told.get(self.path, -100.0)
                    if not 0.9 <= since <= 5.0:
                        told[self.path] = time.monotonic()
                        return self.send(429, b"", "text/plain", {"Retry-After": "1"})
            if kind == "drip":
                body = photos[0]
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for start in range(0, len(body), 1024):
                    self.wfile.write(body[start : start + 1024])
                    self.wfile.flush()
                    time.sleep(1024 / DRIP_BYTES_PER_S)
                return None
            return self.send(200, body, "image/jpeg")

        def send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def handle_error(self, request, client_address) -> None:
            pass  # clients hang up; resets are on purpose

    hosts = []
    for i in range(n_hosts):
        server = Server((f"127.0.0.{20 + i}", 0), Farm)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hosts.append(list(server.server_address))
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps({"hosts": hosts, "sizes": [len(photo) for photo in photos]}))
    partial.rename(ready)
    threading.Event().wait()


# ---------------------------------------------------------------- the variants (each its own process)


def old_fetcher_class(ref: str):
    """ImageFetcher and FetchOptions as they were at `ref` (the module's source from git)."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:image_tokenizer/fetch.py"], capture_output=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_fetch.py"
    path.write_bytes(source)
    sys.path.insert(0, str(path.parent))
    import old_fetch

    return old_fetch.ImageFetcher, old_fetch.FetchOptions


def run_variant(variant: str, urls: list[str], concurrency: int, pool_dir: Path, old_ref: str) -> dict:
    """Crop every URL's image the variant's way -> {"ok": images cropped, "outcomes": {...}}."""
    from collections import Counter

    from pipeline import images
    from pipeline.hygiene import Hygiene

    rules = Hygiene()  # the job's default rules, as the fetch step applies them
    outcomes: Counter = Counter()
    if variant == "a":
        fetcher_class, options_class = old_fetcher_class(old_ref)
        fetcher = fetcher_class(options_class(allow_private_hosts=True))
        for url in urls:  # the old _resolve_image: one URL at a time
            data, outcome = images.image_bytes(url, (), fetcher)
            if data is not None:
                outcome = images.prepare(url, data, rules)[1]
            outcomes[outcome] += 1
    elif variant == "b":
        from concurrent.futures import ThreadPoolExecutor

        from image_tokenizer import FetchOptions, ImageFetcher

        images.limit_malloc_growth()  # as the job's fetch step does
        fetcher = ImageFetcher(FetchOptions(allow_private_hosts=True))

        slots = images.decode_slots()

        def work(url: str):
            return images.fetch_and_prepare(url, fetcher, rules, slots)

        with ThreadPoolExecutor(concurrency) as pool:
            for fetched in images.completed(work, urls, pool, concurrency):
                outcomes[fetched.outcome] += 1
    else:  # "d": the bytes the farm serves for every URL that can succeed, from memory
        photos = [path.read_bytes() for path in photo_pool(pool_dir)]
        for url in urls:
            kind, index = url.split("/")[3:5]
            if kind in ("ok", "429", "drip"):
                data = photos[0] if kind == "drip" else photos[int(index) % len(photos)]
                outcomes[images.prepare(url, data, rules)[1]] += 1
    return {"ok": outcomes.get("ok", 0), "outcomes": dict(outcomes)}


def worker_main(args) -> None:
    """One variant in this process: its result with the wall and CPU seconds of the work alone (after
    imports and set-up), as img2dataset's own stats give its duration."""
    urls = Path(args.url_file).read_text().split()
    # imports are set-up, as img2dataset's are (its 1-URL run is taken off its CPU): the job's modules, and
    # imagehash and scipy, which the perceptual hash imports on first use (~1 CPU-s)
    import imagehash  # noqa: F401
    import scipy.fftpack  # noqa: F401

    from pipeline import images  # noqa: F401

    wall, cpu = time.monotonic(), time.process_time()
    result = run_variant(args.worker, urls, args.concurrency, Path(args.pool), args.old_ref)
    result.update(seconds=time.monotonic() - wall, cpu_seconds=time.process_time() - cpu)
    print(json.dumps(result))


def measured(command: list[str], directory: Path) -> tuple[str, float, float, float]:
    """Run one process: (its stdout, wall s, CPU s, peak RSS MiB), CPU and RSS from its rusage (which
    covers the children it waited for; RSS is the largest process's, not a sum)."""
    out_path, err_path = directory / "stdout", directory / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=directory)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(
            f"{' '.join(command[:3])} exited {process.returncode}: {err_path.read_text()[-3000:]}"
        )
    return out_path.read_text(), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def ours(args, variant: str, urls: list[str], work: Path) -> dict:
    url_file = work / "urls.txt"
    url_file.write_text("".join(url + "\n" for url in urls))
    command = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--url-file",
        str(url_file),
        "--pool",
        args.pool,
    ]
    command += ["--concurrency", str(args.concurrency), "--old-ref", args.old_ref]
    out, wall, cpu, rss = measured(command, work)
    return {**json.loads(out.strip().splitlines()[-1]), "wall": wall, "cpu": cpu, "rss": rss}


def img2dataset(args, urls: list[str], work: Path) -> dict:
    url_file = work / "urls.txt"
    url_file.write_text("".join(url + "\n" for url in urls))
    # a fresh folder for every run: given the last one, img2dataset resumes it and fetches nothing
    output = Path(tempfile.mkdtemp(prefix=f"i2d-{len(urls)}-", dir=work))
    command = [args.img2dataset, "--url_list", str(url_file), "--output_folder", str(output)]
    command += ["--processes_count", "1", "--thread_count", str(args.concurrency), "--image_size", "256"]
    command += ["--resize_mode", "center_crop", "--output_format", "files", "--timeout", "30"]
    command += ["--retries", "0", "--disallowed_header_directives", "[]", "--enable_wandb", "False"]
    command += ["--number_sample_per_shard", str(max(len(urls), 1)), "--distributor", "multiprocessing"]
    _, wall, cpu, rss = measured(command, work)
    stats = [json.loads(path.read_text()) for path in output.glob("*_stats.json")]
    ok = sum(stat.get("successes", 0) for stat in stats)
    seconds = sum(stat.get("duration", 0.0) for stat in stats)
    failures = {}
    for stat in stats:
        for reason, n in stat.get("status_dict", {}).items():
            failures[reason[:40]] = failures.get(reason[:40], 0) + n
    return {"ok": ok, "outcomes": failures, "wall": wall, "cpu": cpu, "rss": rss, "seconds": seconds}


NAMES = {
    "a": "(a) before: sequential",
    "b": "(b) now: window",
    "c": "(c) img2dataset",
    "d": "(d) decode+crop only",
}


def bench(args) -> int:
    """Runs in a small process (stdlib only): a forked child's peak RSS starts from its parent's."""
    work = Path(tempfile.mkdtemp(prefix="cm3-bench-fetch-"))
    ready = work / "farm.json"
    farm = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--hosts", str(args.hosts), "--pool", args.pool]
        + ["--latency", str(args.latency), "--jitter", str(args.jitter), "--ready", str(ready)]
    )
    try:
        while not ready.exists():  # the farm builds the photos first (once: they are cached)
            if farm.poll() is not None:
                raise RuntimeError("the farm did not start")
            time.sleep(0.2)
        farm_info = json.loads(ready.read_text())
        hosts, sizes = [tuple(host) for host in farm_info["hosts"]], sorted(farm_info["sizes"])
        pool = sizes
        variants = ["a", "b", "d"] + (["c"] if args.img2dataset else [])
        print(
            f"farm: {len(hosts)} hosts, {len(pool)} photos of {sizes[0] // 1024} KB - {sizes[-1] // 1024} KB, "
            f"latency {args.latency * 1000:.0f} +- {args.jitter * 1000:.0f} ms, faults {FAULT_SHARE:.0%} each: "
            f"{', '.join(FAULTS)}; window {args.concurrency}; cpu cores visible: {os.cpu_count()}"
        )
        # img2dataset's start-up CPU (imports, its processes), measured on a 1-URL list, is taken off its CPU
        if "c" in variants:
            base_cpu = img2dataset(args, url_list(hosts, len(pool), 1), work)["cpu"]
        print(
            f"{'variant':<26}{'URLs':>6}{'ok':>6}{'images/s':>10}{'per CPU-s':>11}{'peak RSS MiB':>14}  failures"
        )
        runs: dict[tuple[str, int], list[dict]] = {}
        for repeat in range(args.repeats):  # every variant once per round, the rounds one after another
            for scale in (1, args.scale):
                urls = url_list(hosts, len(pool), args.urls * scale)
                for variant in variants:
                    if variant == "a" and (scale > 1 and not args.old_at_scale or repeat > 0):
                        continue  # minutes at one URL at a time; --old-at-scale runs it
                    run = ours(args, variant, urls, work) if variant != "c" else img2dataset(args, urls, work)
                    cpu = run["cpu"] - base_cpu if variant == "c" else run["cpu_seconds"]
                    run.update(rate=run["ok"] / run["seconds"], per_cpu=run["ok"] / max(cpu, 1e-9))
                    runs.setdefault((variant, scale), []).append(run)
                    failures = ", ".join(f"{k} {n}" for k, n in sorted(run["outcomes"].items()) if k != "ok")
                    print(
                        f"{NAMES[variant]:<26}{len(urls):>6}{run['ok']:>6}{run['rate']:>10.1f}"
                        f"{run['per_cpu']:>11.1f}{run['rss']:>14.0f}  {failures}",
                        flush=True,
                    )
        results = {
            key: {name: statistics.median(run[name] for run in group) for name in ("rate", "per_cpu", "rss")}
            for key, group in runs.items()
        }
        print(f"medians of {args.repeats} rounds:")
        for (variant, scale), result in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
            print(
                f"{NAMES[variant]:<26}{args.urls * scale:>6}{'':>6}{result['rate']:>10.1f}"
                f"{result['per_cpu']:>11.1f}{result['rss']:>14.0f}"
            )
        for scale in (1, args.scale):
            b, d = results["b", scale], results["d", scale]
            line = f"{scale}x: (b)/(d) images/s {b['rate'] / d['rate']:.2f} (target >= 0.8)"
            if ("c", scale) in results:
                c = results["c", scale]
                line += f"; (b)/(c) per CPU-s {b['per_cpu'] / c['per_cpu']:.2f}, images/s {b['rate'] / c['rate']:.2f}"
                line += " (target >= 1)"
            print(line)
        for variant in ("b", "c"):
            if (variant, 1) in results:
                ratio = results[variant, args.scale]["rss"] / results[variant, 1]["rss"]
                print(f"{NAMES[variant]}: peak RSS {args.scale}x / 1x = {ratio:.2f} (target <= 1.3 for (b))")
    finally:
        farm.kill()
        farm.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--urls", type=int, default=64, help="URLs at 1x")
    parser.add_argument("--scale", type=int, default=16, help="the larger run has this many times the URLs")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--jitter", type=float, default=0.03)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--img2dataset", default=None, help="img2dataset executable (its own venv)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; figures are their medians")
    parser.add_argument("--old-ref", default=OLD_REF)
    parser.add_argument("--old-at-scale", action="store_true", help="also run (a) on the larger list")
    parser.add_argument("--pool", default=str(Path(tempfile.gettempdir()) / "cm3-bench-fetch-photos"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("a", "b", "d"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.hosts, Path(args.pool), args.latency, args.jitter, Path(args.ready))
        return 0
    if args.worker:
        worker_main(args)
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
