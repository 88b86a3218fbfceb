"""`cm3-train`: tokenizer | tokenize | train."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .shards import ShardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cm3-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tokenizer", help="learn the byte-level BPE vocabulary from document shards")
    p.add_argument("--data", required=True, help="document shard directory (cm3-data output)")
    p.add_argument("--vocab-size", type=int, required=True, help="number of BPE text tokens")
    p.add_argument("--out", required=True, help="directory for tokenizer.json + vocab_layout.json")

    p = sub.add_parser("tokenize", help="document shards -> memory-mapped token shards")
    p.add_argument("--data", required=True, help="document shard directory")
    p.add_argument("--tokenizer", required=True, help="directory written by `cm3-train tokenizer`")
    p.add_argument("--out", required=True, help="token shard directory")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    p = sub.add_parser("train", help="train (or resume) a model; run under torchrun for several processes")
    p.add_argument("--data", help="token shard directory (overrides the config's data)")
    p.add_argument("--config", help="yaml/json file with TrainConfig keys")
    p.add_argument("--preset", help="model preset (overrides the config's preset)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig overrides")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "tokenizer":
            from .shards import train_tokenizer

            tok = train_tokenizer(args.data, args.vocab_size, args.out)
            print(json.dumps(tok.layout()))
        elif args.command == "tokenize":
            from .shards import tokenize_shards

            manifest = tokenize_shards(args.data, args.tokenizer, args.out, workers=args.workers)
            print(
                json.dumps(
                    {k: {"docs": v["docs"], "tokens": v["tokens"]} for k, v in manifest["splits"].items()}
                )
            )
        else:
            from .config import TrainConfig
            from .trainer import train

            overrides = list(args.overrides)
            if args.data:
                overrides.append(f"data={args.data}")
            if args.preset:
                overrides.append(f"preset={args.preset}")
            metrics = train(TrainConfig.load(args.config, overrides))
            print(json.dumps(metrics))
    except (ShardError, ValueError, FileNotFoundError) as e:
        print(f"cm3-train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
