"""`cm3-generate`: run a file of CM3 prompts (JSONL) through a checkpoint and write the results.

Every request gets a line in OUT/results.jsonl; every generated document is also written as
OUT/{index:04d}-{mode}-{k}.html with its images decoded by the VQGAN into PNG files beside it.
See model/GENERATE.md for the modes and their fields.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from .generate import (
    MODES,
    BeamOptions,
    CodeConstraint,
    GenerationSettings,
    PromptError,
    SamplingOptions,
    run_request,
)

_SRC_ATTR = re.compile(r'src="([^"]*)"')
_CODE_RUN = re.compile(r"\d+(?: \d+){255}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="cm3-generate",
        description="Prompt a CM3 checkpoint: image generation, infilling, captioning, candidate scoring. "
        f"Modes: {', '.join(MODES)}.",
    )
    p.add_argument("checkpoint", help="a checkpoint directory written by cm3-train, or its run directory")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help="JSONL file, one {mode, ...fields} object a line; - = stdin")
    source.add_argument(
        "--prompt", action="append", metavar="JSON", help="one request as a JSON object; repeatable"
    )
    p.add_argument("--out", required=True, help="output directory (results.jsonl, HTML pages, PNG images)")
    p.add_argument("--vqgan", default=None, help="VQGAN checkpoint (default: the bundled small one)")
    p.add_argument("--vqgan-config", default=None, help="yaml of a taming VQGAN checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="run seed; each request's seed derives from it")
    p.add_argument("--num-samples", type=int, default=1, help="samples per sampling-mode request")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1.0 = off")
    p.add_argument("--num-beams", type=int, default=4, help="beams (and returned captions) for captioning")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam score = logprob / len ** this")
    p.add_argument("--min-new-tokens", type=int, default=1, help="captions: no stop before this many tokens")
    p.add_argument("--max-new-tokens", type=int, default=64, help="text modes (image modes need 257)")
    return p.parse_args(argv)


def read_requests(lines: list[str]) -> list[tuple[dict | None, str | None]]:
    """(request, None) or (None, error) for every non-blank line."""
    out: list[tuple[dict | None, str | None]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as err:
            out.append((None, f"line {number}: not JSON: {err}"))
            continue
        if not isinstance(request, dict):
            out.append((None, f"line {number}: expected a JSON object"))
            continue
        out.append((request, None))
    return out


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


class _Refused(Exception):
    """A run that cannot start (bad option, missing or damaged checkpoint, unreadable prompts): one line."""


def _open_run(args: argparse.Namespace):
    """(settings, model, tokenizer, VQGAN, prompt lines, base directory of `image` paths)."""
    import torch

    from image_tokenizer import load_vqgan

    from .checkpoint import load_checkpoint

    try:
        settings = GenerationSettings(
            sampling=SamplingOptions(args.temperature, args.top_k, args.top_p),
            beam=BeamOptions(args.num_beams, args.length_penalty, args.min_new_tokens),
            num_samples=args.num_samples,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
        device = torch.device(args.device)
    except (ValueError, RuntimeError) as err:
        raise _Refused(str(err)) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _Refused(f"--device {args.device}: no GPU is visible to torch")
    try:
        if args.prompt:
            lines, base = args.prompt, Path(".")
        elif args.prompts == "-":
            lines, base = sys.stdin.read().splitlines(), Path(".")
        else:
            path = Path(args.prompts)
            lines, base = path.read_text(encoding="utf-8").splitlines(), path.parent
    except UnicodeDecodeError as err:
        raise _Refused(f"{args.prompts}: prompts are not UTF-8 ({err})") from None
    except OSError as err:
        raise _Refused(f"cannot read prompts: {err}") from None
    try:
        model, tok, _ = load_checkpoint(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        raise _Refused(str(err)) from None
    try:
        vq = load_vqgan(args.vqgan, args.vqgan_config, device=args.device)
    except Exception as err:  # missing file, bad yaml, mismatched weights ...
        raise _Refused(f"cannot load the VQGAN: {type(err).__name__}: {err}") from None
    if vq.n_embed != tok.n_embed:
        raise _Refused(f"VQGAN has {vq.n_embed} codes, the tokenizer {tok.n_embed}")
    return settings, model, tok, vq, lines, base


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from image_tokenizer import ImageDecodeError, decode_image, preprocess

    try:
        settings, model, tok, vq, lines, base = _open_run(args)
    except _Refused as err:
        print(f"cm3-generate: {err}", file=sys.stderr)
        return 2
    constraint = CodeConstraint(tok)

    def codes_of_image(path: str) -> list[int]:
        image_path = base / path
        image = decode_image(image_path.read_bytes())
        return vq.encode(preprocess(image, seed_key=str(path))[None])[0].tolist()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = read_requests(lines)
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
                        run_request(model, tok, constraint, request, index, settings, codes_of_image)
                    )
                except (PromptError, ValueError, OSError, ImageDecodeError) as err:
                    error = f"{type(err).__name__}: {err}"
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
            print(
                f"[{index + 1}/{len(requests)}] {record.get('mode', '?')}: {status} "
                f"({time.perf_counter() - started:.1f} s)",
                file=sys.stderr,
            )
    (out_dir / "index.html").write_text(index_html(overview), encoding="utf-8")
    print(f"cm3-generate: {len(requests) - failed} ok, {failed} failed -> {out_dir}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
