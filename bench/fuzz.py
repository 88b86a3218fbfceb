"""A fuzz campaign over the parsers and filters that read untrusted bytes: `minimize`, `clean_html` and
`clean_page`, the WARC/ARC/dump readers and image decoding + cropping.

Inputs are generated and mutated from a seed corpus (the pages and WARC files in ../shared/data, the
sample corpus's records, and hand-made hostile cases) by a seeded generator: the same --seed gives the same
inputs; the `grammar` target builds pages from an HTML grammar instead (`grammar_html`). Each input runs
under a time bound (SIGALRM) and its peak memory is read from the kernel (VmHWM, reset before each input).
A crash is any exception that is not a documented error type (MinimizeError for `minimize`,
ImageDecodeError for decoding; the readers and C4 cleaning document none). Prints counts per target, keeps
each crashing input under --out, ends with a JSON line, and exits 1 on any crash, hang or input over the
memory bound.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--workers 2] [--seed 0] [--out /tmp/cm3-fuzz]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

TARGETS = ("html", "grammar", "warc", "arc", "dump", "image")
WEIGHTS = (0.40, 0.15, 0.15, 0.05, 0.05, 0.20)
TOKENS = [
    b"<meta charset=idna>",
    b"<meta charset=punycode>",
    b"<meta charset=rot13>",
    b"<meta charset=utf-7>",
    b"<meta charset=x-undefined>",
    b"&#0;",
    b"&#x1;",
    b"&#xD800;",
    b"[1]",
    b"[edit]",
    b"[citation needed]",
    b"<",
    b">",
    b"</div>",
    b"<div>" * 50,
    b"<![CDATA[",
    b"]]>",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"<img src=data:image/png;base64,AAAA>",
    b'<base href="javascript:x">',
    b"{",
    b"lorem ipsum",
    b"WARC/1.0\r\n",
    b"Content-Length: 99999999999\r\n",
    b"\r\n\r\n",
    b"\x1f\x8b\x08",
    b"filedesc://",
]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@functools.cache
def seed_corpus() -> dict[str, list[bytes]]:
    """Real material per target (a few hundred KB to a few MB), loaded once per worker process."""
    from image_tokenizer.train_small_vqgan import skimage_rgb
    from pipeline.cli import sample_inputs
    from pipeline.readers import ImageRecord, Page, read_input

    pages = [p.read_bytes() for p in sorted((SHARED / "boilerplate-dev" / "pages").glob("*.html"))]
    records = [item for path in sample_inputs() for item in read_input(path)]
    pages += [r.body for r in records if isinstance(r, Page)]
    images = [r.data for r in records if isinstance(r, ImageRecord)]
    for name in ("astronaut", "coffee"):
        for fmt in ("PNG", "GIF", "WEBP", "BMP"):
            stream = io.BytesIO()
            skimage_rgb(name)[0].resize((64, 48)).save(stream, fmt)
            images.append(stream.getvalue())
    warcs = [p.read_bytes() for p in sorted((SHARED / "warc").glob("*.warc*"))]
    warcs += [Path(path).read_bytes() for path in sample_inputs() if path.endswith(".warc.gz")]
    arcs = [p.read_bytes() for p in sorted((SHARED / "warc").glob("*.arc*"))]
    dumps = [Path(path).read_bytes() for path in sample_inputs() if path.endswith(".tar.gz")]
    lines = b"\n".join(
        json.dumps(
            {"url": f"https://w.example/{i}", "article_body": {"html": p[:4000].decode("utf-8", "replace")}}
        ).encode()
        for i, p in enumerate(pages[:20])
    )
    dumps.append(lines)
    return {"html": pages, "grammar": [], "warc": warcs, "arc": arcs or warcs, "dump": dumps, "image": images}


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """1-4 mutations: bit flips, byte runs inserted/deleted/duplicated, truncation, splicing, tokens."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[position:position] = rng.randbytes(rng.randint(1, 64))
        elif kind == 2:
            del data[position : position + rng.randint(1, 4096)]
        elif kind == 3 and data:
            start = rng.randrange(len(data))
            chunk = data[start : start + rng.randint(1, 2048)]
            data[position:position] = chunk * rng.randint(1, 8)
        elif kind == 4:
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 5:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data[position:] = other[cut:]
        else:
            data[position:position] = rng.choice(TOKENS)
    return bytes(data)


def html_input(rng: random.Random, corpus: list[bytes]) -> bytes:
    page = rng.choice(corpus)
    if len(page) > 20_000 and rng.random() < 0.8:  # a window of a page: faster, and still real markup
        start = rng.randrange(len(page) - 10_000)
        page = page[start : start + rng.randint(2_000, 20_000)]
    return mutate(page, rng, corpus)


# grammar_html's vocabulary: real tags by the content they take, and the node kinds a parser treats apart
# fmt: off
_GRAMMAR_BLOCKS = (
    "div p section article main header footer nav aside blockquote figure figcaption form".split()
)
_GRAMMAR_INLINES = "a b i em strong span code small sub sup abbr time label q mark".split()
_GRAMMAR_HEADINGS = "h1 h2 h3 h4 h5 h6".split()
_GRAMMAR_VOIDS = [
    "br", "hr", "wbr", "img", 'img src="/a.png" alt="x"', "input", "meta", "link", "col", "source",
]
_GRAMMAR_ATTRS = [
    'class="nav"', 'class="content"', 'id="comment-7"', 'role="navigation"', "hidden", 'aria-hidden="true"',
    'style="display:none"', 'href="/x"', 'href="javascript:x"', 'href="https://other.example/"', 'lang="en"',
    'itemprop="name"', 'itemscope', 'xmlns:og="http://ogp.me/ns#"', 'xml:lang="de"', 'data-src="/b.jpg"',
    'width="1"', 'src="data:image/png;base64,AAAA"', "a=b=c", '"quoted"="v"', "x:y:z=1",
]
_GRAMMAR_TEXT = [
    "Lorem ipsum dolor sit amet.", "Read more", "Tags:", "© 2021 Example Inc.", "May 3, 2019 | Jane | News",
    "word", " ", "\n\t", "&amp;", "&nbsp;", "&shy;", "&#0;", "&#x1;", "&#xD800;", "&#xFFFE;", "&bogus;",
    "&#99999999;",
    "&lt;script&gt;", "[1]", "ünïcödé ✓", "\u00ad", "<", ">", "&", "Photo: AP",
]
_GRAMMAR_ODD_NODES = [
    "<!-- a comment -->", "<!---->", "<!-- <div> -->", "<?php echo 1; ?>", "<?xml version='1.0'?>",
    "<![CDATA[ x < y ]]>", "<!DOCTYPE html>", "<!doctype foo SYSTEM 'x'>", "<!ELEMENT x>", "<!>", "<?>",
    "<svg:rect/>", "<og:title>t</og:title>", "<x:y>z</x:y>", "</p>", "</table>", "</li></ul>", "<p",
    "<a href='",
    "<div <div>", "</>", "<>", "<\x00div>", "<script>var a = '<p>';</script>", "<style>p{}</style>",
    "<template><p>t</p></template>", "<noscript><p>n</p></noscript>", "<title>in body</title>",
]
# fmt: on


def grammar_html(rng: random.Random, budget: int = 200) -> bytes:
    """A page built from real HTML: random nesting of block, inline, heading, list and table markup with
    attributes the minimizer reads, text with entities, comments, processing instructions, CDATA, namespaced
    and broken tags. Mutating real pages seldom reaches such combinations (a comment inside a table cell right
    after a short line, a `&#xFFFE;` next to an element that empties)."""
    out: list[str] = []
    left = [budget]

    def attrs() -> str:
        return "".join(" " + rng.choice(_GRAMMAR_ATTRS) for _ in range(rng.choice((0, 0, 1, 2))))

    def leaf() -> str:
        kind = rng.random()
        if kind < 0.45:
            return rng.choice(_GRAMMAR_TEXT)
        if kind < 0.65:
            return f"<{rng.choice(_GRAMMAR_VOIDS)}{attrs()}>"
        return rng.choice(_GRAMMAR_ODD_NODES)

    def element(depth: int) -> None:
        left[0] -= 1
        if depth > 12 or left[0] <= 0 or rng.random() < 0.3:
            out.append(leaf())
            return
        kind = rng.random()
        if kind < 0.12:  # a table, its parts sometimes missing or misplaced
            out.append(f"<table{attrs()}>")
            for _ in range(rng.randint(0, 3)):
                out.append(rng.choice(("<tr>", "<tr>", "<tbody><tr>", "<td>", "<caption>")))
                for _ in range(rng.randint(0, 3)):
                    out.append(rng.choice(("<td>", "<th>", "<td colspan=2>")))
                    element(depth + 1)
                    if rng.random() < 0.7:
                        out.append("</td>")
                if rng.random() < 0.7:
                    out.append("</tr>")
            out.append("</table>" if rng.random() < 0.9 else "")
            return
        if kind < 0.22:  # a list (or a definition list)
            tag, item = rng.choice((("ul", "li"), ("ol", "li"), ("dl", "dt"), ("dl", "dd"), ("menu", "li")))
            out.append(f"<{tag}{attrs()}>")
            for _ in range(rng.randint(0, 5)):
                out.append(f"<{item}>")
                element(depth + 1)
                if rng.random() < 0.6:
                    out.append(f"</{item}>")
            out.append(f"</{tag}>")
            return
        tag = rng.choice(
            _GRAMMAR_BLOCKS if kind < 0.6 else _GRAMMAR_INLINES if kind < 0.9 else _GRAMMAR_HEADINGS
        )
        out.append(f"<{tag}{attrs()}>")
        for _ in range(rng.randint(0, 4)):
            element(depth + 1)
        if rng.random() < 0.85:  # sometimes left open, sometimes closed by another tag's end
            out.append(f"</{tag if rng.random() < 0.9 else rng.choice(_GRAMMAR_HEADINGS + _GRAMMAR_BLOCKS)}>")

    if rng.random() < 0.8:
        out.append(rng.choice(("<!DOCTYPE html>", "<?xml version='1.0'?>", "", "<!-- c -->")))
        out.append(f"<html{attrs()}><head><title>{rng.choice(_GRAMMAR_TEXT)}</title>")
        out.append(
            rng.choice(
                ("", '<base href="https://base.example/d/">', '<meta property="og:image" content="/i.png">')
            )
        )
        out.append(f"</head><body{attrs()}>")
    while left[0] > 0:
        element(0)
    return "".join(out).encode("utf-8", "surrogatepass")


def run_target(target: str, data: bytes, tmp: str) -> None:
    """Raises only for a crash (an undocumented exception)."""
    if target in ("html", "grammar"):
        from c4_filters import C4Options, clean_html, clean_page
        from html_minimizer import MinimizeError, minimize, prune_empty, replace_images_and_prune

        try:
            minimal = minimize(data, "https://fuzz.example/page")
        except MinimizeError:
            return
        prune_empty(minimal.html)  # minimize's output reads back and prunes (`&#xFFFE;` once made it fail)
        cleaned = clean_html(minimal.html, C4Options())
        clean_page(minimal.html[:20_000])
        if cleaned is not None:
            from c4_filters import span_hashes

            list(span_hashes(cleaned.html))
            # the pipeline's last pass: images that failed go, then elements left empty
            replace_images_and_prune(cleaned.html, {image.src: None for image in minimal.images})
    elif target == "image":
        from image_tokenizer import ImageDecodeError, crop, decode_image

        try:
            crop(decode_image(data), "https://fuzz.example/i.png")
        except ImageDecodeError:
            return
    else:
        from pipeline.readers import read_input

        suffix = {
            "warc": ".warc.gz" if data[:2] == b"\x1f\x8b" else ".warc",
            "arc": ".arc",
            "dump": ".ndjson",
        }
        if target == "dump" and data[:2] == b"\x1f\x8b":
            suffix["dump"] = ".tar.gz"
        path = os.path.join(tmp, "input" + suffix[target])
        with open(path, "wb") as stream:
            stream.write(data)
        for _ in read_input(path):
            pass


def worker(task) -> dict:
    seed, n, time_bound, memory_bound_mb, out = task
    import logging

    logging.disable(logging.CRITICAL)  # the readers log each skipped file; the counts are what matters
    warnings.simplefilter("ignore")  # Pillow warns before it refuses a bomb; the refusal is what counts
    rng = random.Random(seed)
    corpus = seed_corpus()
    signal.signal(signal.SIGALRM, _alarm)
    counts = {t: Counter() for t in TARGETS}
    slowest = 0.0
    peak_mb = 0.0
    with tempfile.TemporaryDirectory(prefix="cm3-fuzz-") as tmp:
        for _ in range(n):
            target = rng.choices(TARGETS, WEIGHTS)[0]
            if target == "html":
                data = html_input(rng, corpus["html"])
            elif target == "grammar":
                data = grammar_html(rng, rng.choice((20, 80, 300)))
            elif target == "dump" and rng.random() < 0.5:
                data = mutate(
                    gzip.compress(rng.choice(corpus["dump"])[:50_000], mtime=0), rng, corpus["dump"]
                )
            else:
                data = mutate(rng.choice(corpus[target]), rng, corpus[target])
            counts[target]["inputs"] += 1
            base = vm_kb("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, time_bound)
            try:
                run_target(target, data, tmp)
                outcome = None
            except Hang:
                outcome = "hang"
            except Exception as error:  # any undocumented exception is what we look for
                outcome = f"crash:{type(error).__name__}"
                name = hashlib.sha256(data).hexdigest()[:16]
                Path(out).mkdir(parents=True, exist_ok=True)
                Path(out, f"{target}-{name}.bin").write_bytes(data)
                Path(out, f"{target}-{name}.txt").write_text(traceback.format_exc())
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - started
            slowest = max(slowest, elapsed)
            used_mb = (vm_kb("VmHWM") - base) / 1024
            peak_mb = max(peak_mb, used_mb)
            if outcome:
                counts[target][outcome] += 1
            if used_mb > memory_bound_mb:
                counts[target]["over_memory"] += 1
    return {"counts": {t: dict(c) for t, c in counts.items()}, "slowest_s": slowest, "peak_mb": peak_mb}


def campaign(
    inputs: int, workers: int, seed: int, time_bound: float, memory_bound_mb: float, out: str
) -> dict:
    chunk = 500
    tasks = [
        (seed * 1_000_003 + i, min(chunk, inputs - i * chunk), time_bound, memory_bound_mb, out)
        for i in range((inputs + chunk - 1) // chunk)
    ]
    totals = {t: Counter() for t in TARGETS}
    slowest = peak = 0.0
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=20) as pool:
        for done, result in enumerate(pool.imap_unordered(worker, tasks), 1):
            for target, counts in result["counts"].items():
                totals[target].update(counts)
            slowest, peak = max(slowest, result["slowest_s"]), max(peak, result["peak_mb"])
            if done % 20 == 0:
                print(
                    f"  {done * chunk:,} inputs, {time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    failures = sum(n for c in totals.values() for k, n in c.items() if k != "inputs")
    return {
        "inputs": sum(c["inputs"] for c in totals.values()),
        "per_target": {t: dict(c) for t, c in totals.items()},
        "failures": failures,
        "slowest_input_s": round(slowest, 3),
        "peak_mb_per_input": round(peak, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-bound", type=float, default=5.0, help="seconds per input before it is a hang")
    parser.add_argument("--memory-bound-mb", type=float, default=1024.0, help="peak RSS growth per input")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "cm3-fuzz"))
    args = parser.parse_args()
    result = campaign(args.inputs, args.workers, args.seed, args.time_bound, args.memory_bound_mb, args.out)
    print(f"{result['inputs']:,} inputs in {result['seconds']}s, seed {args.seed}")
    print(f"{'target':<8}{'inputs':>9}  failures")
    for target, counts in result["per_target"].items():
        failures = {k: n for k, n in counts.items() if k != "inputs"}
        print(f"{target:<8}{counts.get('inputs', 0):>9}  {failures or 'none'}")
    print(
        f"slowest input {result['slowest_input_s']}s (bound {args.time_bound}s); largest peak memory growth "
        f"of one input {result['peak_mb_per_input']} MB (bound {args.memory_bound_mb} MB)"
    )
    if result["failures"]:
        print(f"crashing inputs and tracebacks: {args.out}")
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
