"""`cm3-generate`: run a file of CM3 prompts (JSONL) through a checkpoint and write the results.

Every request gets a line in OUT/results.jsonl; every generated document is also written as
OUT/{index:04d}-{mode}-{k}.html with its images decoded by the VQGAN into PNG files beside it.
See model/GENERATE.md for the modes and their fields.
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from image_tokenizer.cli_parser import OneLineParser
from image_tokenizer.version import version_line

from .generate import (
    BeamOptions,
    CodeConstraint,
    GenerationSettings,
    SamplingOptions,
    run_request,
)
from .outputs import OutputError, check_apart, check_output, is_nonempty, remove_output
from .prompts import MAX_SAMPLES

_SRC_ATTR = re.compile(r'src="([^"]*)"')
_CODE_RUN = re.compile(r"\d+(?: \d+){255}")


# modes that read or write images: noise from a model whose training data held no image codes
IMAGE_MODES = (
    "unconditional_image",
    "conditional_image",
    "image_infill",
    "masked_caption",
    "causal_caption",
    "caption",
)
DEVICE_HELP = "torch device: cpu, cuda, cuda:N (a GPU torch can see) or mps (default: cpu)"
MODE_EXAMPLES = {
    "unconditional_image": {"mode": "unconditional_image"},
    "conditional_image": {"mode": "conditional_image", "text": "a cup of coffee on a table", "top": 4},
    "text_infill": {"mode": "text_infill", "html": "<p>The <mask:0> is the capital of France.</p>"},
    "image_infill": {"mode": "image_infill", "image": "cat.png", "span": [128, 256]},
    "masked_caption": {"mode": "masked_caption", "image": "cat.png"},
    "causal_caption": {"mode": "causal_caption", "image": "cat.png"},
    "caption": {"mode": "caption", "image": "cat.png", "samples": 64},
    "continue": {"mode": "continue", "html": "<img"},
    "score": {"mode": "score", "prompt": "<p>Paris is the capital of", "candidates": [" France.", " Spain."]},
    "entity": {
        "mode": "entity",
        "html": '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>',
        "candidates": ["Paris", "Paris Hilton"],
    },
    "link": {
        "mode": "link",
        "text": "Paris is the capital of France.",
        "mention": [0, 5],
        "candidates": ["Paris", "Paris Hilton"],
    },
    "summarize": {"mode": "summarize", "document": "The council voted on Monday to ...", "size_hint": 16},
}


def modes_help() -> str:
    """Each mode with its fields (from its builder's docstring) and an example request."""
    from .prompts import BUILDERS

    lines = ["modes (one JSON object per request; `?` marks an optional field):"]
    for mode, builder in BUILDERS.items():
        doc = " ".join((builder.__doc__ or "").split())
        fields = doc[: doc.index("}") + 1] if doc.startswith("{") else "(no fields)"
        lines.append(f"  {mode:<20} {fields}")
        lines.append(f"  {'':<20} e.g. {json.dumps(MODE_EXAMPLES[mode])}")
    return "\n".join(lines)


EPILOG = """
examples:
  cm3-generate runs/cm3 --prompt '{"mode": "continue", "html": "<img"}' --output out/ --num-samples 4
  cm3-generate runs/cm3 --prompts prompts.jsonl --output out/ --rerank clip --clip ./clip-vit-b32
  cm3-generate eval runs/cm3 tasks.jsonl --output eval/     (cm3-generate eval --help)

An existing non-empty --output is refused unless --overwrite, which replaces it whole.
Modes, fields and outputs: model/GENERATE.md.
"""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by a prompt run and `eval`: output, model loading, decoding, re-ranking."""
    p.add_argument(
        "--output",
        "--out",
        dest="out",
        required=True,
        help="output directory (must be empty or new, see --overwrite)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output whole")
    p.add_argument("--vqgan", default=None, help="VQGAN checkpoint (default: the bundled small one)")
    p.add_argument("--vqgan-config", default=None, help="yaml of a taming VQGAN checkpoint")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--seed", type=int, default=0, help="run seed; each request's seed derives from it")
    p.add_argument("--num-samples", type=int, default=1, help="samples per sampling-mode request")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1.0 = off")
    p.add_argument(
        "--num-beams", type=int, default=5, help="beams (and returned outputs) of beam search (CM3 4.2.3: 5)"
    )
    p.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam score = logprob / len ** this (link: total logprob, as entity)",
    )
    p.add_argument("--min-new-tokens", type=int, default=1, help="captions: no stop before this many tokens")
    p.add_argument("--max-new-tokens", type=int, default=64, help="text modes (image modes need 257)")
    p.add_argument(
        "--rerank",
        choices=["self", "clip"],
        default="self",
        help="scorer of sampled images (`top`) and captions (`samples`): self = the model's likelihood "
        "the other way round (default), clip = the CLIP model at --clip",
    )
    p.add_argument("--clip", default=None, help="local CLIP directory (transformers save_pretrained)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected failure")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(
        prog="cm3-generate",
        description="Prompt a CM3 checkpoint (CM3 section 4): image generation, infilling, captioning, free "
        "continuation, candidate scoring, entity linking, summarization.",
        epilog=modes_help() + "\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=version_line("cm3-generate"))
    p.add_argument("checkpoint", help="a checkpoint directory written by cm3-train, or its run directory")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help="JSONL file, one {mode, ...fields} object a line; - = stdin")
    source.add_argument(
        "--prompt", action="append", metavar="JSON", help="one request as a JSON object; repeatable"
    )
    _add_run_options(p)
    return p.parse_args(argv)


def parse_eval_args(argv: list[str]) -> argparse.Namespace:
    from .evaluate import __doc__ as tasks_doc

    table = tasks_doc[tasks_doc.index("| task") : tasks_doc.index("\n\n", tasks_doc.index("| task"))]
    p = OneLineParser(
        prog="cm3-generate eval",
        description="Run each CM3 prompt family over a JSONL task file and print the paper's metric per "
        "task (ROUGE-1/2/L, accuracy, caption perplexity); per-line results in OUT/eval.jsonl, the table in "
        "OUT/summary.json.",
        epilog="task lines (one JSON object a line, `?` optional):\n"
        + table
        + '\n\ne.g. {"task": "summarization", "document": "...", "summary": "...", "size_hint": 16}\n'
        + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="a checkpoint directory written by cm3-train, or its run directory")
    p.add_argument("tasks", help="JSONL task file; `image` paths are relative to it")
    _add_run_options(p)
    args = p.parse_args(argv)
    args.prompt, args.prompts = None, args.tasks
    return args


# Bounds on what a prompts file may make this process hold, checked before it is held.
MAX_PROMPTS_BYTES = 64 << 20  # a whole prompts file (or stdin)
MAX_REQUEST_CHARS = 4 << 20  # one line: a long document to summarize is well under
MAX_REQUEST_DEPTH = 16  # nested lists/objects in one request (the deepest mode needs 3)
MAX_IMAGE_BYTES = 16 << 20  # an `image` file, as the pipeline's fetch cap (FetchOptions.max_bytes)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _value_problem(value) -> str | None:
    """Why a parsed request cannot be run or echoed (nesting, a lone surrogate, which no UTF-8 output can
    hold), None if it can. Iterative: a hostile value never recurses."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_REQUEST_DEPTH:
            return f"nested deeper than {MAX_REQUEST_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                return f"a string holds a lone surrogate (\\u{ord(item[err.start]):04x}), which is not text"
    return None


def read_requests(lines: list[str]) -> list[tuple[dict | None, str | None]]:
    """(request, None) or (None, error) for every non-blank line; a line that cannot be a request (not JSON,
    Infinity/NaN, too long, too deep, a lone surrogate) is an error of its own, never the run's."""
    out: list[tuple[dict | None, str | None]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_REQUEST_CHARS:
            out.append(
                (None, f"line {number}: {len(line)} characters; a request has at most {MAX_REQUEST_CHARS}")
            )
            continue
        try:
            request = json.loads(line, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as err:  # JSONDecodeError, Infinity, 10**5 digits, [[[[...
            out.append((None, f"line {number}: not JSON: {' '.join(str(err).split())[:200]}"))
            continue
        if not isinstance(request, dict):
            out.append((None, f"line {number}: expected a JSON object"))
            continue
        problem = _value_problem(request)
        if problem:
            out.append((None, f"line {number}: {problem}"))
            continue
        out.append((request, None))
    return out


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file `path`, read with a bounded read: `/dev/zero`, a FIFO or a directory
    is refused, so is a file over `limit` bytes (OSError naming `what`)."""
    import stat

    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO without a writer does not block
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(f"{what} {path} is not a regular file")
    with open(descriptor, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{what} {path} is larger than {limit} bytes")
    return data


def page_html(mode: str, body: str) -> str:
    """A standalone page for a generated document; the policy keeps any generated script inert."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'; object-src 'none'\">"
        f"<title>cm3-generate: {mode}</title></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_document(
    document: str, vq, out_dir: Path, stem: str, mode: str, written: dict[str, str]
) -> list[str]:
    """Writes stem.html with every 256-code src shown as a PNG decoded by the VQGAN (stem-img{j}.png;
    `written` maps srcs already decoded in this run to their file, so candidates sharing an image share
    the file); returns the names of the files this page uses."""
    from PIL import Image

    from image_tokenizer import src_to_codes

    todo: list[tuple[str, list[int]]] = []
    for value in dict.fromkeys(m.group(1) for m in _SRC_ATTR.finditer(document)):
        if value in written:
            continue
        try:
            todo.append((value, src_to_codes(value, vq.n_embed)))
        except ValueError:
            continue
    if todo:
        pixels = vq.decode(np.array([codes for _, codes in todo], dtype=np.int64))
        for j, ((value, _), image) in enumerate(zip(todo, pixels, strict=True)):
            name = f"{stem}-img{j}.png"
            Image.fromarray(image).save(out_dir / name)
            written[value] = name
    used = [
        written[v] for v in dict.fromkeys(m.group(1) for m in _SRC_ATTR.finditer(document)) if v in written
    ]
    body = _SRC_ATTR.sub(
        lambda m: f'src="{written[m.group(1)]}"' if m.group(1) in written else m.group(0), document
    )
    (out_dir / f"{stem}.html").write_text(page_html(mode, body), encoding="utf-8")
    return [f"{stem}.html", *used]


def index_html(overview: list[tuple[dict, list[list[str]]]]) -> str:
    """One page over the run: each request, its outputs (linked pages, their images, scores); all
    model text escaped."""
    esc = html.escape
    parts = []
    for record, pages in overview:
        head = f"<h2>{record['index']}. {esc(str(record.get('mode', '?')))}</h2>"
        if "error" in record:
            parts.append(head + f"<p class=err>{esc(record['error'])}</p>")
            continue
        prompt = _CODE_RUN.sub("[256 codes]", record["prompt"])
        body = [head, f"<pre>{esc(prompt)}</pre>"]
        for k, files in enumerate(pages):
            out = record["outputs"][k] if k < len(record.get("outputs", [])) else None
            images = "".join(f'<img src="{esc(name)}" alt="" width=128 height=128>' for name in files[1:])
            detail = (
                f" perplexity {out['perplexity']:.2f}, {out['new_tokens']} tokens"
                f"{'' if out['finished'] else ', unfinished'}: {esc(_CODE_RUN.sub('[256 codes]', out['text'])[:300])}"
                if out
                else ""
            )
            body.append(f'<p><a href="{esc(files[0])}">{esc(files[0])}</a>{detail}</p>{images}')
        if "scores" in record:
            rows = "".join(
                f"<tr><td>{esc(s['candidate'])}</td><td>{s['logprob']:.3f}</td><td>{s['perplexity']:.2f}</td></tr>"
                for s in record["scores"]
            )
            body.append(f"<table><tr><th>candidate</th><th>log p</th><th>perplexity</th></tr>{rows}</table>")
        parts.append("".join(body))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>cm3-generate</title><style>'
        "body{font-family:sans-serif;margin:1.5em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"
        "img{margin:2px}.err{color:#a40}td,th{padding:2px 10px;text-align:left}</style></head><body>"
        "<h1>cm3-generate results</h1>" + "\n".join(parts) + "</body></html>\n"
    )


# what an earlier cm3-generate output holds: --overwrite replaces only such a directory
OUTPUT_MARKERS = ("results.jsonl", "eval.jsonl")


class _Refused(Exception):
    """A run that cannot start (bad option, missing or damaged checkpoint, unreadable prompts): one line."""


def _check_out(args: argparse.Namespace) -> Path:
    """The output rule of every CLI (model/outputs.py): a non-empty --output is refused unless --overwrite,
    which replaces it whole; never a directory holding the run's own inputs or an unrelated one."""
    out = Path(args.out)
    inputs = {"the checkpoint": args.checkpoint, "the working directory": Path.cwd()}
    if args.prompts not in (None, "-"):
        inputs["the prompts file"] = args.prompts
    try:
        if is_nonempty(out):
            check_apart(out, inputs)
        check_output(out, args.overwrite, markers=OUTPUT_MARKERS)
    except OutputError as err:
        raise _Refused(str(err)) from None
    return out


def _replace_out(out: Path) -> None:
    try:
        if out.exists():
            remove_output(out)
        out.mkdir(parents=True)
    except OSError as err:
        raise _Refused(f"cannot create --output {out}: {err.strerror or err}") from None


def _open_run(args: argparse.Namespace):
    """(settings, model, tokenizer, VQGAN, re-ranker, prompt lines, base directory of `image` paths);
    --output is emptied last, once everything else has loaded."""
    import torch

    from image_tokenizer import load_vqgan

    from .checkpoint import load_checkpoint
    from .rerank import ClipReranker, RerankError, SelfReranker

    try:
        settings = GenerationSettings(
            sampling=SamplingOptions(args.temperature, args.top_k, args.top_p),
            beam=BeamOptions(args.num_beams, args.length_penalty, args.min_new_tokens),
            num_samples=args.num_samples,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
    except ValueError as err:
        raise _Refused(str(err)) from None
    try:
        device = torch.device(args.device)
    except (ValueError, RuntimeError) as err:
        raise _Refused(f"--device {args.device}: {err} ({DEVICE_HELP})") from None
    if args.num_samples < 1 or args.max_new_tokens < 1:
        raise _Refused("--num-samples and --max-new-tokens must be >= 1")
    for flag, value in (("--num-samples", args.num_samples), ("--num-beams", args.num_beams)):
        if value > MAX_SAMPLES:  # one KV-cache row each, allocated at once
            raise _Refused(f"{flag} {value}: at most {MAX_SAMPLES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _Refused(f"--device {args.device}: no GPU is visible to torch")
    if args.rerank == "clip" and not args.clip:
        raise _Refused("--rerank clip needs --clip DIR (a local CLIP model)")
    out = _check_out(args)
    try:
        if args.prompt:
            lines, base = args.prompt, Path(".")
        elif args.prompts == "-":
            data = sys.stdin.buffer.read(MAX_PROMPTS_BYTES + 1)
            if len(data) > MAX_PROMPTS_BYTES:
                raise OSError(f"stdin holds more than {MAX_PROMPTS_BYTES} bytes of prompts")
            lines, base = data.decode("utf-8").splitlines(), Path(".")
        else:
            path = Path(args.prompts)
            data = read_bounded(path, MAX_PROMPTS_BYTES, "the prompts file")
            lines, base = data.decode("utf-8").splitlines(), path.parent
    except UnicodeDecodeError as err:
        raise _Refused(f"{args.prompts}: prompts are not UTF-8 (byte {err.start})") from None
    except OSError as err:
        raise _Refused(f"cannot read {args.prompts}: {err.strerror or err}") from None
    try:
        model, tok, _ = load_checkpoint(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        raise _Refused(str(err)) from None
    for flag, value in (("--vqgan", args.vqgan), ("--vqgan-config", args.vqgan_config)):
        if value is not None and not Path(value).is_file():
            raise _Refused(f"{flag} {value}: no such file")
    try:
        vq = load_vqgan(args.vqgan, args.vqgan_config, device=args.device)
    except Exception as err:  # missing file, bad yaml, mismatched weights ...
        raise _Refused(f"cannot load the VQGAN: {type(err).__name__}: {err}") from None
    if vq.n_embed != tok.n_embed:
        raise _Refused(f"VQGAN has {vq.n_embed} codes, the tokenizer {tok.n_embed}")
    if args.max_new_tokens >= model.config.max_seq_len:  # its KV cache is allocated up front
        raise _Refused(
            f"--max-new-tokens {args.max_new_tokens}: the model's max_seq_len is {model.config.max_seq_len}"
        )
    try:
        if args.rerank == "clip":
            reranker = ClipReranker(args.clip, vq.decode, device=args.device)
        else:
            reranker = SelfReranker(model, tok)
    except RerankError as err:
        raise _Refused(str(err)) from None
    _replace_out(out)
    return settings, model, tok, vq, reranker, lines, base


def _codes_reader(vq, base: Path):
    from image_tokenizer import decode_image, preprocess

    def codes_of_image(path: str) -> list[int]:
        image = decode_image(read_bounded(base / path, MAX_IMAGE_BYTES, "image"))
        return vq.encode(preprocess(image, seed_key=str(path))[None])[0].tolist()

    return codes_of_image


def no_images_warning(checkpoint: str | Path, modes: set[str]) -> str | None:
    """One line when image modes are asked of a model trained on shards without images (`cm3-data run
    --no-images`: the checkpoint's config.json says `image_tokens: 0`). A warning, not a refusal: the
    modes still run (a smoke test of the plumbing), but their images are noise."""
    from .checkpoint import read_config, resolve_checkpoint

    asked = sorted(modes & set(IMAGE_MODES))
    if not asked or read_config(resolve_checkpoint(checkpoint)).get("data", {}).get("image_tokens") != 0:
        return None
    return (
        f"cm3-generate: warning: {checkpoint} was trained on shards without images (cm3-data run "
        f"--no-images: no image tokens), so {', '.join(asked)} will give noise"
    )


def _generate(args: argparse.Namespace) -> int:
    import torch

    settings, model, tok, vq, reranker, lines, base = _open_run(args)
    constraint = CodeConstraint(tok)
    codes_of_image = _codes_reader(vq, base)
    out_dir = Path(args.out)
    requests = read_requests(lines)
    warning = no_images_warning(args.checkpoint, {r.get("mode") for r, _ in requests if r})
    if warning:
        print(warning, file=sys.stderr)
    failed = 0
    written: dict[str, str] = {}
    overview: list[tuple[dict, list[list[str]]]] = []
    with torch.inference_mode(), open(out_dir / "results.jsonl", "w", encoding="utf-8") as results:
        for index, (request, error) in enumerate(requests):
            started = time.perf_counter()
            record: dict = {"index": index, "request": request}
            if error is None:
                try:
                    record.update(
                        run_request(
                            model, tok, constraint, request, index, settings, codes_of_image, reranker
                        )
                    )
                except Exception as err:  # noqa: BLE001 (this request fails alone, in one line)
                    if args.debug:
                        raise
                    error = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
            if error is not None:
                failed += 1
                record["error"] = error
                overview.append((record, []))
            else:
                mode = record["mode"]
                documents = [o["document"] for o in record.get("outputs", [])]
                documents += [record["document"]] if "document" in record else []
                pages = [
                    write_document(document, vq, out_dir, f"{index:04d}-{mode}-{k}", mode, written)
                    for k, document in enumerate(documents)
                ]
                record["files"] = [name for files in pages for name in files]
                overview.append((record, pages))
            results.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            status = "error: " + error if error else "ok"
            mode = record.get("mode") or (request.get("mode") if isinstance(request, dict) else None)
            print(
                f"[{index + 1}/{len(requests)}] {str(mode or '?')[:40]}: {status} "
                f"({time.perf_counter() - started:.1f} s)",
                file=sys.stderr,
            )
    (out_dir / "index.html").write_text(index_html(overview), encoding="utf-8")
    print(f"cm3-generate: {len(requests) - failed} ok, {failed} failed -> {out_dir}", file=sys.stderr)
    return 1 if failed else 0


def _evaluate(args: argparse.Namespace) -> int:
    """`cm3-generate eval`: every task line run and scored; the per-task table printed and saved."""
    import torch

    from .evaluate import EvalError, evaluate_task, format_table, rouge_scorer, summarize_metrics

    settings, model, tok, vq, reranker, lines, base = _open_run(args)
    constraint = CodeConstraint(tok)
    # a captioning line encodes its image twice (the run, then the reference's perplexity): once suffices
    codes_of_image = functools.lru_cache(maxsize=1)(_codes_reader(vq, base))
    tasks = read_requests(lines)
    scorer = None
    if any(t is not None and t.get("task") == "summarization" for t, _ in tasks):
        try:
            scorer = rouge_scorer()
        except EvalError as err:
            raise _Refused(str(err)) from None
    out_dir = Path(args.out)

    def run(request: dict, index: int) -> dict:
        return run_request(model, tok, constraint, request, index, settings, codes_of_image, reranker)

    rows = []
    with torch.inference_mode(), open(out_dir / "eval.jsonl", "w", encoding="utf-8") as out:
        for index, (task, error) in enumerate(tasks):
            if error is None:
                row = evaluate_task(run, model, tok, constraint, task, index, codes_of_image, scorer)
            else:
                row = {"index": index, "task": None, "error": error}
            rows.append(row)
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            status = f"error: {row['error']}" if "error" in row else json.dumps(row["metrics"])
            print(f"[{index + 1}/{len(tasks)}] {row['task']}: {status}", file=sys.stderr)
    summary = summarize_metrics(rows)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(format_table(summary))
    return 1 if any("error" in row for row in rows) else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    evaluating = bool(argv) and argv[0] == "eval"
    args = parse_eval_args(argv[1:]) if evaluating else parse_args(argv)
    try:
        return _evaluate(args) if evaluating else _generate(args)
    except _Refused as err:
        print(f"cm3-generate: {err}", file=sys.stderr)
        return 2
    except Exception as error:  # an unexpected failure: one line, the traceback behind --debug
        if args.debug:
            raise
        print(
            f"cm3-generate: {type(error).__name__}: {' '.join(str(error).split())[:500]} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
