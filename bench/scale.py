"""Worker memory and time per item of the data job's grouped steps as the work grows (N, 4N, 16N).

Each step gets its grouped values the way a runner hands them over, as an iterator (the perceptual-hash group
re-iterable, as GroupByKey values are: it is read twice), in the worst
case of one key holding everything: all crops of the job in one encode group (padded batches + the codes
routed to the documents of a logo used on every page), every document in one shard (external sort +
streaming Parquet), a three-sentence span found on every page, one URL crawled on every page, and the corpus
hygiene's shuffles: one picture served under every image URL (its perceptual-hash group and the routing of
its codes to every URL) and one MinHash band bucket holding every document. Every size
runs in a fresh process; its peak RSS is read from the kernel (VmHWM, reset after set-up so imports and the
model do not count). The baseline is the same work done the obvious way, materialising each group
(`list`, `sorted`, `pq.write_table` of the whole shard, a set of all occurrences), as the job did before.

    .venv/bin/python bench/scale.py [--base-images 1000 --base-docs 12500] [--vqgan] [--no-baseline]

The model call is a cheap stand-in (16x16 mean pooling quantised to 1024 codes) unless --vqgan, which
encodes with the bundled VQGAN on the CPU (about 7 images/s: use small sizes). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALES = (1, 4, 16)


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS (Linux >= 4.0)


class StandInVQGAN:
    """A model call whose cost grows with the batch like the VQGAN's: 16x16 pooling, 1024 levels."""

    n_embed = 1024

    def encode(self, pixels):
        import numpy as np

        b = pixels.shape[0]
        pooled = pixels.reshape(b, 3, 16, 16, 16, 16).mean(axis=(1, 3, 5))
        return np.clip(((pooled + 1) * 512).astype(np.int64), 0, 1023).reshape(b, 256)


def crops(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(64, 256, 256, 3), dtype=np.uint8)
    for i in range(n):
        crop = base[i % 64].copy()
        crop[0, 0, 0] = i % 251
        yield f"https://img.example/{i:08d}.jpg", crop


def html(i: int) -> str:
    words = " ".join(f"w{(i * 7919 + k) % 104729}" for k in range(400))
    return f"<html><body><p>{words}.</p></body></html>"


def doc_rows(n: int):
    from pipeline.doc_steps import doc_id

    for i in range(n):
        url = f"https://d.example/{i:09d}"
        body = html(i)
        yield {
            "id": doc_id(url),
            "url": url,
            "source": "warc",
            "html": body,
            "n_images": 0,
            "n_chars": len(body),
            "lang_score": 0.99,
        }


def streaming_steps(n_images: int, n_docs: int, model, batch_size: int, out_dir: str) -> dict:
    """The job's code for each grouped step, fed one-shot iterators (what a runner hands over)."""
    from pipeline import beam_steps, doc_steps, hygiene, images, shards

    def encode():
        for _ in images.encode_images(crops(n_images), model, batch_size):
            pass

    def codes_to_docs():
        outcome = images.ImageOutcome("https://img.example/logo.png", "1 2 3", "ok")
        refs = (f"https://d.example/{i:09d}" for i in range(n_docs))
        for _ in beam_steps._codes_to_docs(
            ("https://img.example/logo.png", {"ref": refs, "outcome": iter([outcome])})
        ):
            pass

    def write_shard():
        shards.write_shard(out_dir, "train", 0, 1, doc_rows(n_docs))

    def span_group():
        for _ in doc_steps.span_losers((f"https://d.example/{i:09d}", i % 7) for i in range(n_docs)):
            pass

    def url_group():
        docs = (doc_steps.Doc("https://d.example/crawled", "warc", html(i)) for i in range(n_docs))
        for _ in doc_steps.url_winner("https://d.example/crawled", docs):
            pass

    def phash_group():  # one picture served under every image URL: the representative's crop and thumbnail
        class Members:  # read twice (the representative, then each URL's pixel check), never materialised
            def __iter__(self):
                return ((url, crop, crop) for url, crop in crops(n_images))  # a thumbnail is 256x256x3 too

        for _ in beam_steps._share_group(("phash:0123456789abcdef", Members())):
            pass

    def phash_members():  # its codes routed to every URL of the group
        outcome = images.ImageOutcome("phash:0123456789abcdef", "1 2 3", "ok")
        urls = (f"https://img.example/{i:09d}.jpg" for i in range(n_docs))
        for _ in beam_steps._outcomes_to_members(
            ("phash:0123456789abcdef", {"codes": iter([outcome]), "member": urls})
        ):
            pass

    def band_group():  # a MinHash band bucket holding every document
        for _ in hygiene.band_losers(f"https://d.example/{i:09d}" for i in range(n_docs)):
            pass

    return {
        "encode": encode,
        "codes_to_docs": codes_to_docs,
        "write_shard": write_shard,
        "span_group": span_group,
        "url_group": url_group,
        "phash_group": phash_group,
        "phash_members": phash_members,
        "band_group": band_group,
    }


def materialising_steps(n_images: int, n_docs: int, model, batch_size: int, out_dir: str) -> dict:
    """The obvious way: each group listed and sorted in memory, the shard built as one table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from c4_filters import stable_hash
    from image_tokenizer import to_pixels
    from pipeline import doc_steps, hygiene, shards

    def encode():
        items = sorted(crops(n_images), key=lambda item: item[0])
        for i in range(0, len(items), batch_size):
            model.encode(to_pixels(np.stack([crop for _, crop in items[i : i + batch_size]])))

    def codes_to_docs():
        for _ in sorted(set(f"https://d.example/{i:09d}" for i in range(n_docs))):
            pass

    def write_shard():
        table = pa.Table.from_pylist(sorted(doc_rows(n_docs), key=shards.row_key), schema=shards.SCHEMA)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd", row_group_size=shards.ROW_GROUP_ROWS)
        Path(out_dir, "shard.parquet").write_bytes(sink.getvalue())

    def span_group():
        occurrences = set((f"https://d.example/{i:09d}", i % 7) for i in range(n_docs))
        sorted(occurrences, key=lambda o: (stable_hash(o[0]), o[0], o[1]))

    def url_group():
        docs = [doc_steps.Doc("https://d.example/crawled", "warc", html(i)) for i in range(n_docs)]
        min(docs, key=lambda d: (d.source, d.html))

    def phash_group():
        members = list(crops(n_images))
        best = min(members, key=lambda member: member[0])
        [hygiene.near_identical(crop, best[1]) for _, crop in members]

    def phash_members():
        for _ in sorted(f"https://img.example/{i:09d}.jpg" for i in range(n_docs)):
            pass

    def band_group():
        urls = [f"https://d.example/{i:09d}" for i in range(n_docs)]
        winner = min(urls, key=lambda url: (stable_hash(url), url))
        [url for url in urls if url != winner]

    return {
        "encode": encode,
        "codes_to_docs": codes_to_docs,
        "write_shard": write_shard,
        "span_group": span_group,
        "url_group": url_group,
        "phash_group": phash_group,
        "phash_members": phash_members,
        "band_group": band_group,
    }


def child(args) -> None:
    """One size, one variant, in this fresh process: prints a JSON line."""
    from pipeline import shards

    shards.SORT_BUFFER_BYTES = args.sort_buffer_mb << 20
    if args.vqgan:
        from image_tokenizer import load_vqgan

        model = load_vqgan(num_threads=1)
    else:
        model = StandInVQGAN()
    make_steps = streaming_steps if args.variant == "streaming" else materialising_steps
    for step in make_steps(8, 8, model, args.batch_size, tempfile.mkdtemp()).values():
        step()  # imports and first-call costs out of the figures
    times, peaks = {}, {}
    with tempfile.TemporaryDirectory(prefix="cm3-scale-") as out_dir:
        for name, step in make_steps(args.images, args.docs, model, args.batch_size, out_dir).items():
            baseline_kb = vm_kb("VmRSS")
            reset_peak()
            start = time.perf_counter()
            step()
            times[name] = time.perf_counter() - start
            peaks[name] = (vm_kb("VmHWM") - baseline_kb) / 1024
    print(json.dumps({"times": times, "peaks": peaks, "work_peak_mb": max(peaks.values())}))


def measure(variant: str, n_images: int, n_docs: int, args) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--images", str(n_images), "--docs", str(n_docs)]
    command += ["--batch-size", str(args.batch_size), "--sort-buffer-mb", str(args.sort_buffer_mb)]
    if args.vqgan:
        command.append("--vqgan")
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-images", type=int, default=1000, help="images at size N (16N >= 16,000)")
    parser.add_argument("--base-docs", type=int, default=12500, help="documents at size N (16N >= 200,000)")
    parser.add_argument("--batch-size", type=int, default=32, help="VQGAN batch (32: the GPU default)")
    parser.add_argument(
        "--sort-buffer-mb", type=int, default=16, help="shard writer's sort buffer (job default 64)"
    )
    parser.add_argument("--vqgan", action="store_true", help="the bundled VQGAN instead of the stand-in")
    parser.add_argument("--no-baseline", action="store_true", help="skip the materialising baseline")
    parser.add_argument("--child", choices=("streaming", "materialising"), help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.variant = args.child
        child(args)
        return

    variants = ["streaming"] + ([] if args.no_baseline else ["materialising"])
    results: dict[str, list[dict]] = {variant: [] for variant in variants}
    sizes = [(args.base_images * k, args.base_docs * k) for k in SCALES]
    for n_images, n_docs in sizes:  # the variants interleaved per size
        for variant in variants:
            results[variant].append(measure(variant, n_images, n_docs, args))
            print(f"  done: {variant} {n_images} images, {n_docs} documents", file=sys.stderr, flush=True)

    print(f"model: {'bundled VQGAN' if args.vqgan else 'stand-in'}, batch {args.batch_size}, ")
    print(
        f"sort buffer {args.sort_buffer_mb} MB; peak = the largest step's RSS above the process before it (VmHWM)"
    )
    steps = list(results["streaming"][0]["times"])
    header = f"{'variant':<14}{'size':>5}{'images':>8}{'docs':>9}{'peak MB':>9}" + "".join(
        f"{name:>14}" for name in steps
    )
    print(header + f"{'s/item':>12}")
    summary = {}
    for variant, runs in results.items():
        peaks, per_item = [], []
        for k, (n_images, n_docs), run in zip(SCALES, sizes, runs, strict=True):
            total = sum(run["times"].values())
            per_item.append(total / (n_images + n_docs))
            peaks.append(run["work_peak_mb"])
            cells = "".join(f"{run['times'][name]:>13.2f}s" for name in steps)
            print(
                f"{variant:<14}{k:>4}N{n_images:>8}{n_docs:>9}{run['work_peak_mb']:>9.1f}{cells}{per_item[-1]:>12.2e}"
            )
            print(
                f"{'':<14}{'':>5}{'':>8}{'':>9}{'step peaks':>9}"
                + "".join(f"{run['peaks'][name]:>12.1f}MB" for name in steps)
            )
        summary[variant] = {"peak_mb": peaks, "seconds_per_item": per_item}
    streaming = summary["streaming"]
    print(
        f"streaming: peak 16N / N = {streaming['peak_mb'][-1] / streaming['peak_mb'][0]:.2f}x (target <= 1.3), "
        f"s/item 16N / N = {streaming['seconds_per_item'][-1] / streaming['seconds_per_item'][0]:.2f}x (target <= 1.3)"
    )
    if "materialising" in summary:
        base = summary["materialising"]
        print(
            f"materialising baseline: peak 16N / N = {base['peak_mb'][-1] / base['peak_mb'][0]:.2f}x, "
            f"peak at 16N {base['peak_mb'][-1]:.0f} MB vs {streaming['peak_mb'][-1]:.0f} MB streaming"
        )
    print(
        json.dumps(
            {
                "sizes": [{"images": i, "documents": d} for i, d in sizes],
                "peak_mb": [round(p, 1) for p in streaming["peak_mb"]],
                "seconds_per_item": [round(s, 8) for s in streaming["seconds_per_item"]],
                "baseline_peak_mb": [
                    round(p, 1) for p in summary.get("materialising", {}).get("peak_mb", [])
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
