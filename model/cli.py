"""`cm3-train`: tokenizer | tokenize | train."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from image_tokenizer.cli_parser import OneLineParser
from image_tokenizer.version import version_line

from .config import TrainConfig, config_help
from .outputs import OutputError, build_output, check_apart, check_output, is_nonempty, remove_output
from .shards import ShardError
from .tokenizer import MAX_TEXT_VOCAB, MIN_TEXT_VOCAB

EXAMPLES = """examples:
  cm3-train tokenizer --data DOCS --vocab-size 50000 --output TOK
  cm3-train tokenize --data DOCS --tokenizer TOK --output TOKENS
  cm3-train train --data TOKENS --preset 125m out=runs/125m max_steps=20000
  torchrun --nproc_per_node 8 -m model.cli train --data TOKENS --preset cm3-medium out=runs/m

A non-empty --output is refused unless --overwrite, which replaces it whole; `train` resumes its run directory
(out=) when the saved config agrees. An unexpected failure is one line (exit 1); --debug shows the traceback.
"""


class _Parser(OneLineParser):
    """Usage mistakes are one line (exit 2), like every other error of the command; a config key typed as
    a flag (`train --out X`) is answered with its key=value form."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = config_flags_hint(getattr(self, "_argv", []))
        lines = self.misspelt(getattr(self, "_argv", []))
        self.exit(2, f"cm3-train: error: {hint or '; '.join(lines) or message} (see {self.prog} --help)\n")


def config_flags_hint(argv: list[str]) -> str | None:
    """`train --out X --max_steps 2` -> "config keys are key=value: out=X max_steps=2"."""
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "train":
        return None
    keys = {f.name for f in fields(TrainConfig)}
    words = argv[command + 1 :]
    pairs = []
    for i, word in enumerate(words):
        flag, has_value, value = word.partition("=")
        key = flag.lstrip("-").replace("-", "_")
        if not word.startswith("--") or key not in keys or flag in ("--data", "--config", "--preset"):
            continue
        if not has_value:
            value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else "VALUE"
        pairs.append(f"{key}={value}")
    return f"config keys are key=value: {' '.join(pairs)}" if pairs else None


def vocab_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not MIN_TEXT_VOCAB <= number <= MAX_TEXT_VOCAB:
        raise argparse.ArgumentTypeError(
            f"must be an integer from {MIN_TEXT_VOCAB} (byte-level BPE starts from the 256 byte symbols) "
            f"to {MAX_TEXT_VOCAB}, got {value!r}"
        )
    return number


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an unexpected failure")
    overwrite = argparse.ArgumentParser(add_help=False)
    overwrite.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --output whole (default: refuse it)"
    )
    parser = _Parser(
        prog="cm3-train",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line("cm3-train"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "tokenizer",
        parents=[common, overwrite],
        help="learn the byte-level BPE vocabulary from document shards",
        description="Learn the byte-level BPE vocabulary from the train split of document shards.",
    )
    p.add_argument("--data", required=True, help="document shard directory (cm3-data output)")
    p.add_argument(
        "--vocab-size",
        type=vocab_size,
        required=True,
        metavar="N",
        help=f"number of BPE text tokens, {MIN_TEXT_VOCAB} to {MAX_TEXT_VOCAB} (the <pad>, <eos>, <mask:i> "
        "and image-code ids come after them)",
    )
    p.add_argument(
        "--output",
        "--out",
        dest="out",
        required=True,
        help="directory for tokenizer.json + vocab_layout.json",
    )

    p = sub.add_parser(
        "tokenize",
        parents=[common, overwrite],
        help="document shards -> memory-mapped token shards",
        description="Document shards -> memory-mapped token shards (every split).",
    )
    p.add_argument("--data", required=True, help="document shard directory")
    p.add_argument("--tokenizer", required=True, help="directory written by `cm3-train tokenizer`")
    p.add_argument("--output", "--out", dest="out", required=True, help="token shard directory")
    p.add_argument(
        "--workers", type=positive_int, default=None, metavar="N", help="processes (default: all cores)"
    )

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train (or resume) a model; run under torchrun for several processes",
        description=textwrap.fill(
            "Train a model, or resume the run directory `out` from its newest intact checkpoint. The config "
            "is the defaults below, then --config, then --preset/--data, then key=value overrides; it is "
            "printed (as yaml) when the run starts.",
            width=100,
        ),
        epilog=config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", help="token shard directory (sets the config's data)")
    p.add_argument("--config", help="yaml/json file of config keys (listed below)")
    p.add_argument("--preset", help="model preset (sets the config's preset; listed below)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in `out`, deleting the run there (default: resume it, if its saved config agrees)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (keys listed below)")
    return parser


def run_tokenizer(args: argparse.Namespace) -> int:
    from .shards import train_tokenizer

    check_apart(args.out, {"--data": args.data})
    check_output(args.out, args.overwrite, ("vocab_layout.json",))
    tok = build_output(args.out, lambda tmp: train_tokenizer(args.data, args.vocab_size, tmp))
    print(json.dumps(tok.layout()))
    return 0


def run_tokenize(args: argparse.Namespace) -> int:
    from .shards import tokenize_shards

    check_apart(args.out, {"--data": args.data, "--tokenizer": args.tokenizer})
    check_output(args.out, args.overwrite, ("manifest.json",))
    manifest = build_output(
        args.out, lambda tmp: tokenize_shards(args.data, args.tokenizer, tmp, workers=args.workers)
    )
    print(json.dumps({k: {"docs": v["docs"], "tokens": v["tokens"]} for k, v in manifest["splits"].items()}))
    return 0


def saved_run_config(out: Path) -> dict | None:
    """The config a run directory was trained with: its config.json, else its newest checkpoint's (whose
    config.json holds {"model": ..., "train": ...})."""
    checkpoints = sorted((out / "checkpoints").glob("step-*/config.json"), reverse=True)
    for path, key in [(out / "config.json", None)] + [(c, "train") for c in checkpoints]:
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise OutputError(f"{path} is unreadable ({e}); pass --overwrite to start afresh") from None
            return saved.get(key, {}) if key else saved
    return None


def prepare_run_dir(cfg: TrainConfig, overwrite: bool, is_main: bool) -> str:
    """Resume, start or (with --overwrite) restart the run directory `cfg.out`; returns what happens.

    Resuming is exact (same batches, bit-identical losses), so it must not silently continue a run under
    another objective, model, optimiser, batch shape, seed or data: those keys must match the saved config.
    Keys marked on_resume (max_steps, logging, checkpoints, device ...) may change."""
    out = Path(cfg.out)
    check_output(out, True, ("config.json", "checkpoints"), flag="out")
    if not is_nonempty(out):
        return "a new run"
    if overwrite:
        if is_main:  # other ranks reach the out directory only after init_process_group, i.e. after this
            remove_output(out)
        return "a new run (--overwrite: the run that was there is deleted)"
    saved = saved_run_config(out)
    if saved is None:
        return "a new run (the directory holds no checkpoint yet)"
    conflicts = cfg.resume_conflicts(saved)
    if conflicts:
        raise OutputError(
            f"out {out} holds a run with another config ({'; '.join(conflicts)}); resume it with the same "
            "values, pass --overwrite to delete it and start afresh, or choose another out"
        )
    return "resuming the run there (from its newest intact checkpoint, if it has one)"


def run_train(args: argparse.Namespace) -> int:
    from .shards import read_token_manifest
    from .trainer import check_device, train

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data={args.data}")
    if args.preset:
        overrides.append(f"preset={args.preset}")
    cfg = TrainConfig.load(args.config, overrides)
    if not cfg.data:
        raise ValueError("no data: pass --data TOKEN_SHARD_DIR (from `cm3-train tokenize`)")
    read_token_manifest(cfg.data)  # before --overwrite deletes anything
    check_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    is_main = os.environ.get("RANK", "0") == "0"
    what = prepare_run_dir(cfg, args.overwrite, is_main)
    if is_main:
        shape = ", ".join(f"{k} {v}" for k, v in cfg.shape().items())
        print(
            f"cm3-train train: {Path(cfg.out)}/: {what}; writes config.json, log.jsonl, checkpoints/step-N/\n"
            f"# resolved config ({cfg.preset}: {shape}); as yaml, --config reads it back\n" + cfg.to_yaml(),
            file=sys.stderr,
            end="",
            flush=True,
        )
    print(json.dumps(train(cfg)))
    return 0


COMMANDS = {"tokenizer": run_tokenizer, "tokenize": run_tokenize, "train": run_train}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (ShardError, OutputError, ValueError, FileNotFoundError) as e:  # an ordinary mistake
        if args.debug:
            raise
        print(f"cm3-train: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cm3-train: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: one line, the traceback behind --debug
        if args.debug:
            raise
        print(
            f"cm3-train {args.command}: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
