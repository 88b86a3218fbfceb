"""`cm3-data`: run the CM3 data job (web HTML -> minimal HTML with VQGAN image codes -> Parquet shards),
verify a finished output, or view shards.

Other `--flags` are Beam pipeline options and pass through unchanged (`--runner`, `--direct_num_workers`,
`--direct_running_mode`, `--dask_client_address`, Dataflow's `--project/--region/--temp_location` ...); a flag
that no Beam options class knows either is an error naming the closest known one.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from image_tokenizer.cli_parser import OneLineParser
from image_tokenizer.version import version_line
from pipeline import counters

if TYPE_CHECKING:  # imported with Beam, when a job is built
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.graph import JobOptions

SAMPLE_CORPUS = Path(__file__).resolve().parent / "data" / "sample_corpus"

EXAMPLES = """examples:
  cm3-data run --output out/shards                      # the bundled sample corpus, DirectRunner
  cm3-data run --input 'crawl/*.warc.gz' --output out/shards --direct_running_mode=multi_processing \\
      --direct_num_workers=2
  cm3-data run --input 'gs://bucket/cc/*.warc.gz' --output gs://bucket/shards --runner=DataflowRunner ...
                                                        # (see python -m dataflow.launch --help)
  cm3-data verify out/shards
  cm3-data optout out/shards --urls optout-urls.txt --domains optout-domains.txt --output out/shards-2

An unexpected failure is one line (exit 1); add --debug to any command for the traceback, and --verbose for
Beam's own log lines (hidden by default). Ctrl-C stops a command (exit 130) and leaves its output as it was;
so does a full disk or quota during `run` (exit 5, one line with the free space).
"""

# our packages: their log lines are shown; Beam's (and its worker processes') only with --verbose
OWN_LOGGERS = ("pipeline", "c4_filters", "html_minimizer", "image_tokenizer", "dataflow")


def sample_inputs() -> list[str]:
    """The bundled sample corpus: a WARC with news-like pages and their photos + a Wikipedia-format dump."""
    return sorted(
        str(path) for path in SAMPLE_CORPUS.iterdir() if path.name.endswith((".warc.gz", ".tar.gz"))
    )


def run_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cm3-data run",
        description="Run the data job. Other --options are Beam's (runner, workers, Dataflow ...); a flag neither "
        "knows is an error, and so is any other word: quote a glob (--input 'pages/*.html') so that the shell "
        "does not expand it, or repeat --input per file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    parser.passes_flags_on = True
    parser.add_argument(
        "--input",
        action="append",
        metavar="PATTERN",
        help="glob of WARC/ARC (.warc[.gz], .arc[.gz]), Wikipedia Enterprise dumps (.tar.gz/.ndjson) or "
        ".html files, on any Beam filesystem, quoted; a directory stands for the files under it named so; "
        "repeatable (default: the bundled sample corpus)",
    )
    parser.add_argument(
        "--base-url",
        type=base_url,
        default=None,
        metavar="URL",
        help="URL of the input root for plain .html files that name no canonical URL: a file's URL is URL + "
        "its path under the glob's directory (default: its file:// URL, which depends on where it lies)",
    )
    parser.add_argument(
        "--output",
        "--out",
        help="output directory (local, gs://, s3:// ...), required: the shards, and _meta/ with manifest.json, "
        "report.json and report.html; must be empty or new unless --overwrite. It is written beside, as "
        ".NAME.partial-*, and takes the place of NAME when the job has finished",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --output whole, once the new output is complete (a failed or interrupted "
        "run leaves the old one as it was)",
    )
    parser.add_argument(
        "--target-shard-mb",
        type=positive_int,
        default=None,
        metavar="MB",
        help="size of a shard's rows before compression; the number of shards follows from the data "
        "(default 256; files are smaller after zstd)",
    )
    parser.add_argument(
        "--train-shards",
        type=positive_int,
        default=None,
        metavar="N",
        help="exactly N train shards instead of sizing them by --target-shard-mb",
    )
    parser.add_argument(
        "--validation-shards",
        type=positive_int,
        default=None,
        metavar="N",
        help="exactly N validation shards instead of sizing them by --target-shard-mb",
    )
    parser.add_argument(
        "--validation-fraction",
        type=fraction,
        default=None,
        help="share of documents (by URL hash) in the validation split (default 0.05)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="read the first N pages of the job (quick looks): in input order, files sorted by path and "
        "records in file order, whichever workers read them",
    )
    parser.add_argument(
        "--no-images", action="store_true", help="skip image encoding: every <img> is removed"
    )
    parser.add_argument(
        "--no-fetch",
        action="store_true",
        help="never download images: only images found as records in the input are used",
    )
    parser.add_argument(
        "--allow-private-image-hosts",
        action="store_true",
        help="allow fetching images from loopback/private addresses (off by default)",
    )
    parser.add_argument(
        "--vqgan-checkpoint",
        default=None,
        help="taming VQModel .ckpt, local or on any Beam filesystem (gs://, s3:// ...): a remote one is "
        "copied to local disk once per process, launcher and each worker (default: the bundled model)",
    )
    parser.add_argument(
        "--vqgan-config",
        default=None,
        help="its yaml config, local or remote (default: the .yaml with the checkpoint's stem beside it)",
    )
    parser.add_argument(
        "--vqgan-device",
        type=vqgan_device,
        default=None,
        metavar="{auto,cpu,cuda,cuda:N}",
        help="where workers run the VQGAN; auto (default): cuda if the worker's torch sees a GPU, else cpu. "
        "GPU jobs pass cuda explicitly, which also selects GPU-sized batches",
    )
    parser.add_argument(
        "--image-batch-size",
        type=image_batch_size,
        default=None,
        metavar="{N,auto}",
        help="images per VQGAN batch; auto (default): 1, or 32 with --vqgan-device cuda[:N]. Batch 1 because "
        "on CPU (bench/image_tokenizer.py, 1 thread) batch 8 ran at 0.75x and batch 32 at 0.69x the images/s "
        "of batch 1. Batches are fixed at launch, where --vqgan-device auto cannot know the workers' "
        "hardware, so auto counts as CPU. Keep it fixed between runs you compare: a different batch size "
        "can flip rare near-tie codes (1 in 3840 on the sample corpus)",
    )
    parser.add_argument(
        "--language-id",
        choices=("langdetect", "fasttext", "cascade"),
        default=None,
        help="language identification: langdetect (default: C4's rule, p >= 0.99), fasttext (lid.176, "
        "faster) or cascade (lid.176 where it is sure, langdetect otherwise); see c4_filters/README.md",
    )
    parser.add_argument(
        "--languages",
        default=None,
        metavar="CODES",
        help="languages to keep, comma-separated (en,de,fr) or all: a page is kept when its top language "
        "with p >= the threshold is one of them (default en, C4's rule). Bad words use the page language's "
        "LDNOOBW list; lines may also end in the selected scripts' end marks (see c4_filters/README.md)",
    )
    parser.add_argument(
        "--options-file",
        default=None,
        metavar="FILE",
        help='JSON or YAML with "c4" (C4Options) and "limits" (minimizer Limits) overrides; unknown keys are '
        "an error. The values used are recorded in _meta/manifest.json",
    )
    # the flags of JobOptions' and Hygiene's fields default to None: a flag not given leaves the dataclass
    # default (job_flag_options), the one place the values live (the help texts quote them: a test checks)
    hygiene = parser.add_argument_group("corpus hygiene (pipeline/README.md#corpus-hygiene)")
    hygiene.add_argument(
        "--max-image-url-repeats",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="remove an image URL used by more than K documents from all of them (site furniture; "
        "OBELICS: 10, the default; 0 = off)",
    )
    hygiene.add_argument(
        "--min-image-side",
        type=non_negative_int,
        default=None,
        metavar="PX",
        help="remove images whose decoded short side is under PX, never encoding them (OBELICS: 150, the "
        "default; 0 = off)",
    )
    hygiene.add_argument(
        "--max-image-aspect-ratio",
        type=aspect_ratio,
        default=None,
        metavar="R",
        help="remove images whose long side is over R times the short one (default 3; 0 = off; the image "
        "tokenizer refuses beyond 10 in any case)",
    )
    hygiene.add_argument(
        "--max-images-per-doc",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="keep a document's first N distinct images, in document order (default 30; 0 = all)",
    )
    hygiene.add_argument(
        "--no-image-dedup",
        action="store_true",
        help="encode every image URL on its own instead of once per perceptual hash",
    )
    hygiene.add_argument(
        "--no-doc-dedup",
        action="store_true",
        help="keep near-duplicate documents (MinHash over word 5-grams; on by default)",
    )
    local = parser.add_argument_group("running on this machine (pipeline/README.md#memory-on-one-machine)")
    local.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="--runner dask: worker processes of the LocalCluster cm3-data starts (default: one per core)",
    )
    local.add_argument(
        "--worker-memory",
        type=memory_size,
        default=None,
        metavar="SIZE",
        help="--runner dask: memory limit per worker, such as 2GB; shuffle data beyond half of it spills to "
        "disk beside --output (default: 80%% of the available memory, shared)",
    )
    local.add_argument(
        "--force",
        action="store_true",
        help="run on the direct runner even when the input looks too large for this machine's memory",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--verbose", action="store_true", help="also Beam's own log lines (hidden by default)"
    )
    fetch_flags(parser)
    return parser


def fetch_flags(parser: argparse.ArgumentParser) -> None:
    """Image fetching: how, not what (none of these is recorded in the manifest's options)."""
    fetch = parser.add_argument_group("image fetching (pipeline/README.md#image-fetching)")
    fetch.add_argument(
        "--fetch-concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="image fetches in flight per fetch step instance (default 64: fetching waits on the network, "
        "not the CPU); per host at most 4 at once, 1 s apart",
    )
    fetch.add_argument(
        "--fetch-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="time budget of one image, redirects and retries included (default 30)",
    )
    fetch.add_argument("--user-agent", default=None, help="User-Agent sent with every image request")
    fetch.add_argument(
        "--fetch-proxy",
        default=None,
        metavar="URL",
        help="fetch images through this http(s) proxy, or 'env' for the launcher's HTTPS_PROXY; without it "
        "proxy variables are ignored. Behind a proxy the address guard checks names, not peers (README)",
    )
    fetch.add_argument(
        "--max-image-failure-rate",
        type=fraction,
        default=None,
        metavar="FRACTION",
        help="exit non-zero (after writing the report) when more than this share of at least 20 image "
        "fetches failed (default 0.5; 1 = never)",
    )


def positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return number


def _given(values: dict) -> dict:
    return {name: value for name, value in values.items() if value is not None}


def job_flag_options(args: argparse.Namespace) -> dict:
    """JobOptions fields from the output, image and hygiene flags given; a flag not given keeps the
    dataclass default (JobOptions', Hygiene's), so the defaults are written down once."""
    from pipeline.hygiene import Hygiene

    hygiene = _given(
        {
            "max_image_url_repeats": args.max_image_url_repeats,
            "min_image_side": args.min_image_side,
            "max_image_aspect_ratio": args.max_image_aspect_ratio,
            "max_images_per_doc": args.max_images_per_doc,
            "image_dedup": False if args.no_image_dedup else None,
            "doc_dedup": False if args.no_doc_dedup else None,
        }
    )
    return _given(
        {
            "target_shard_mb": args.target_shard_mb,
            "train_shards": args.train_shards,
            "validation_shards": args.validation_shards,
            "validation_fraction": args.validation_fraction,
            "limit": args.limit,
            "images": False if args.no_images else None,
            "fetch_images": False if args.no_fetch else None,
            "allow_private_image_hosts": True if args.allow_private_image_hosts else None,
            "vqgan_checkpoint": args.vqgan_checkpoint,
            "vqgan_config": args.vqgan_config,
            "vqgan_device": args.vqgan_device,
            "image_batch_size": args.image_batch_size,
            "base_url": args.base_url,
            "hygiene": Hygiene(**hygiene),
        }
    )


def fetch_job_options(args: argparse.Namespace) -> dict:
    """JobOptions fields from the fetch flags given (the dataclass keeps its defaults for the others);
    ValueError for --fetch-proxy env without a proxy in the environment."""
    proxy = args.fetch_proxy
    if proxy == "env":
        proxy = next((os.environ[n] for n in ("HTTPS_PROXY", "https_proxy") if os.environ.get(n)), None)
        if proxy is None:
            raise ValueError("--fetch-proxy env: HTTPS_PROXY is not set")
    given = {
        "fetch_concurrency": args.fetch_concurrency,
        "fetch_timeout": args.fetch_timeout,
        "user_agent": args.user_agent,
        "fetch_proxy": proxy,
        "max_image_failure_rate": args.max_image_failure_rate,
    }
    return _given(given)


def int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= `minimum`, else one line saying what it must be."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}")
        return number

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer >= 0")


def aspect_ratio(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (number == 0 or 1 <= number < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 1 (or 0 = off), got {value!r}")
    return number


def vqgan_device(value: str) -> str:
    from pipeline.images import check_device

    try:
        return check_device(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def base_url(value: str) -> str:
    """An absolute http(s) URL, read as a directory (a missing final / is added)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"must be an absolute http(s) URL, got {value!r}")
    return value if value.endswith("/") else value + "/"


def memory_size(value: str) -> int:
    from pipeline.one_machine import parse_size

    try:
        size = parse_size(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if size < 100_000_000:
        raise argparse.ArgumentTypeError(f"must be at least 100MB (a worker's own imports), got {value!r}")
    return size


def fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {value!r}")
    return number


def rule_options(path: str | None, language_id: str | None, languages: str | None = None):
    """(C4Options, Limits) from an options file (JSON or YAML: {"c4": {...}, "limits": {...}}),
    --language-id and --languages; ValueError with one line for anything wrong."""
    from c4_filters import C4Options
    from html_minimizer import Limits
    from image_tokenizer.config_files import read_config_file, shorten

    values: dict = {}
    if path is not None:
        values = read_config_file(path, "--options-file") or {}  # ValueError, one line: bombs, dup keys ...
        if not isinstance(values, dict) or set(values) - {"c4", "limits"}:
            raise ValueError(f'--options-file {path}: expected a mapping with "c4" and/or "limits"')
        for key, value in values.items():
            if not isinstance(value, dict | None):
                raise ValueError(
                    f"--options-file {path}: {key} must be a mapping of options, not {shorten(repr(value))}"
                )
    c4 = dict(values.get("c4") or {})
    if language_id is not None:
        c4["language_id"] = language_id
    if languages is not None:
        c4["language"] = languages
        try:  # named for what the user typed (the codes are checked against the chosen detector)
            C4Options(language=languages, language_id=c4.get("language_id", "langdetect"))
        except ValueError as error:
            raise ValueError(f"--languages {languages}: {error}") from None
    try:
        return C4Options.from_dict(c4), Limits.from_dict(values.get("limits") or {})
    except (TypeError, ValueError) as error:  # quotes the value: a 1 MB list is cut short
        raise ValueError(f"--options-file {path}: {shorten(str(error), 400)}") from None


def image_batch_size(value: str) -> int | None:
    """ "auto" -> None (JobOptions picks by device), else a positive int."""
    if value == "auto":
        return None
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {value!r}") from None


RUNNER_ALIASES = {
    "DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner",
    "dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
}


def beam_options(beam_args: list[str]) -> list[str]:
    """Beam's own flags, with short runner names Beam does not register itself (DaskRunner) expanded."""
    expanded = list(beam_args)
    for i, arg in enumerate(expanded):
        if arg.startswith("--runner=") and arg[len("--runner=") :] in RUNNER_ALIASES:
            expanded[i] = "--runner=" + RUNNER_ALIASES[arg[len("--runner=") :]]
        elif arg == "--runner" and i + 1 < len(expanded) and expanded[i + 1] in RUNNER_ALIASES:
            expanded[i + 1] = RUNNER_ALIASES[expanded[i + 1]]
    return expanded


def unknown_flags(beam_args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """One line per flag that neither cm3-data nor any Beam options class knows, with the closest known
    flag, and one for stray words: a typo such as --no-imgaes, or the files of a glob the shell expanded,
    must stop the job, not pass to Beam as ignored options."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    if any("dask_runner" in arg for arg in beam_options(beam_args)):
        import apache_beam.runners.dask.dask_runner  # noqa: F401  (defines the --dask_* options)
    beam_parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(beam_parser)
    _, unknown = beam_parser.parse_known_args(beam_args)
    known = [flag for p in (parser, beam_parser) for action in p._actions for flag in action.option_strings]
    lines = []
    for arg in unknown:
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            close = difflib.get_close_matches(flag, known, n=1)
            lines.append(f"unknown option {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
    stray = [arg for arg in unknown if not arg.startswith("-")]
    # Beam would discard stray words with a warning: an unquoted glob would read its first file only (after
    # an unknown flag, they are likely its value)
    if stray and not lines:
        shown = " ".join(stray[:3]) + (" ..." if len(stray) > 3 else "")
        lines.append(
            f"unexpected argument{'s' * (len(stray) > 1)} {shown}: quote a glob (--input 'pages/*.html') so "
            "that the shell does not expand it, or repeat --input per file"
        )
    return lines


def _progress_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress_lines(quiet: bool, local: bool, input_bytes: int):
    """Progress lines every 15 s while the block runs (pipeline/progress.py): counts summed from the files
    of the processes of this machine's runners, the elapsed time only for workers elsewhere."""
    from pipeline import progress

    if quiet:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="cm3-progress-") as directory:
        poller = progress.Poller(directory if local else None, input_bytes)
        previous = os.environ.get(progress.ENV)
        if local:
            os.environ[progress.ENV] = directory  # inherited by the worker processes started from now on
        threading.Thread(target=poller.run, args=(_progress_line,), daemon=True).start()
        try:
            yield
        finally:
            poller.stop.set()
            if previous is None:
                os.environ.pop(progress.ENV, None)
            else:
                os.environ[progress.ENV] = previous


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged, not the one it was made with: a caller
    (pytest, a notebook) may swap and close stderr between two commands of one process."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _OwnLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".", 1)[0] in OWN_LOGGERS


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    """Our own log lines (INFO unless --quiet); Beam's, such as its import-time `apitools not found`
    warning, only with --verbose. Set before Beam is imported, and again per command (idempotent)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "cm3_data", False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.cm3_data = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_OwnLines())
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("pipeline").setLevel(logging.WARNING if quiet else logging.INFO)


# a line a Beam worker process logs on its own (its harness, grpc, the apitools warning at import)
BEAM_LINE = re.compile(
    rb"^(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):(?:root|__main__|apache_beam|grpc|absl|distributed)[.:]"
    rb"|WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:\d\d)"
)


TRACEBACK_START = (b"Traceback (most recent call last)", b"Exception in thread")
TRACEBACK_GLUE = (
    b"\n",
    b"During handling of the above exception",
    b"The above exception was the direct cause",
)


def beam_lines_dropped(lines, interrupted: threading.Event):
    """The lines that are not Beam's: no log line of theirs, no traceback (while a job runs, ours are
    never printed to stderr: a failure of the job is one line, after it), nothing once interrupted."""
    in_traceback = after_traceback = False
    for line in lines:
        if interrupted.is_set() or BEAM_LINE.match(line):
            continue
        if line.startswith(TRACEBACK_START):
            in_traceback = True
        elif in_traceback:
            in_traceback = line[:1] in (b" ", b"\t")  # a frame; else the exception's own line ends it
            after_traceback = not in_traceback
        elif after_traceback and line.startswith(TRACEBACK_GLUE):
            continue
        else:
            after_traceback = False
            yield line


@contextlib.contextmanager
def quiet_workers(enabled: bool):
    """Beam's worker processes (--direct_running_mode=multi_processing) inherit stderr and log to it with
    their own logging set-up, at INFO, before any option of ours reaches them. While the job runs, file
    descriptor 2 is a pipe that passes every line but theirs on to the real stderr. A Ctrl-C from the
    terminal interrupts the workers too: from then on, their tracebacks are dropped."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    interrupted = threading.Event()

    def relay() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in beam_lines_dropped(lines, interrupted):
                with contextlib.suppress(OSError):
                    os.write(real, line)

    def on_interrupt(signum, frame):
        interrupted.set()  # at once: the workers print their tracebacks while ours unwinds
        raise KeyboardInterrupt

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        interrupted.set()
        threading.excepthook = lambda args: None  # Beam's threads report the interrupted workers; we exit
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe ends when the workers, which hold it too, have exited
        thread.join(timeout=5)
        if not thread.is_alive():  # else a worker still writes: the relay keeps its stderr
            os.close(real)


def runs_on_this_machine(options) -> bool:
    """Whether the job's workers run here: the direct runner (any mode), or the Dask runner without a
    cluster address. Then --vqgan-device can be checked at launch; on Dataflow it is the workers' GPU."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    if "Dask" in name:
        from pipeline.one_machine import dask_address

        return not dask_address(options)
    return name.rsplit(".", 1)[-1] in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def job_input_bytes(files: list[tuple[str, int]]) -> int:
    return sum(size for _, size in files)


def dask_cluster_size(options, args) -> tuple[int, int] | None:
    """(workers, bytes of memory each) of the LocalCluster `--runner dask` starts here; None for a runner
    that needs none (another runner, or Dask with --dask_client_address)."""
    from pipeline import one_machine

    if not one_machine.wants_local_dask(options):
        return None
    workers = args.workers or one_machine.default_workers()
    available = one_machine.available_memory()
    return workers, args.worker_memory or one_machine.default_worker_memory(workers, available)


def local_memory_problem(options, input_bytes: int, args) -> str | None:
    """One line when the job cannot run in this machine's memory as asked: the direct runner on an input
    whose measured footprint exceeds the available memory (unless --force), or Dask workers whose limits
    add up to more than is available; also --workers/--worker-memory given for another runner."""
    from pipeline import one_machine

    cluster = dask_cluster_size(options, args)
    if cluster is None and (args.workers or args.worker_memory):
        return "--workers and --worker-memory set up the cluster of --runner dask (without --dask_client_address)"
    mode = one_machine.direct_mode(options)
    if (mode is None and cluster is None) or args.force:
        return None
    available = one_machine.available_memory()
    if cluster is not None:
        workers, limit = cluster
        if workers * limit <= available:
            return None
        return (
            f"{workers} workers x {limit / (1 << 30):.1f} GB exceed the {available / (1 << 30):.1f} GB "
            "available; lower --workers or --worker-memory (--force runs it anyway)"
        )
    return one_machine.memory_problem(mode, input_bytes, available)


@contextlib.contextmanager
def local_cluster(options, cluster: tuple[int, int] | None, output: str):
    """With `cluster` (workers, memory each): a Dask LocalCluster of that size for the block, spilling
    beside `output`; yields the options pointing at it. Without: the options as they are."""
    from pipeline import one_machine

    if cluster is None:
        yield options
        return
    from apache_beam.runners.dask.dask_runner import DaskOptions

    workers, limit = cluster
    spill_parent = None if "://" in output else os.path.dirname(os.path.abspath(output))
    with one_machine.local_dask_cluster(workers, limit, spill_parent) as address:
        options.view_as(DaskOptions).address = address
        yield options
        try:
            spilled = one_machine.spilled_bytes(address)
        except (OSError, TimeoutError):  # a fact for the user, not worth failing a finished job over
            spilled = 0
        if spilled:
            print(
                f"[cm3-data] the Dask workers spilled {spilled / 1e6:.1f} MB of task results to disk "
                f"(--worker-memory {limit / 1e9:.2f} GB each)",
                file=sys.stderr,
            )


def device_problem(device: str) -> str | None:
    """One line when a cuda VQGAN device has no GPU here (checked when the workers run on this machine)."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:
        return f"--vqgan-device {device}, but torch is not installed; use --vqgan-device cpu or auto"
    index = int(device.partition(":")[2] or 0)
    if not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        return (
            f"--vqgan-device {device}, but torch ({built}) sees no GPU on this machine, where this runner "
            "runs the workers; use --vqgan-device cpu or auto"
        )
    if index >= torch.cuda.device_count():
        return f"--vqgan-device {device}, but torch sees {torch.cuda.device_count()} GPU(s) on this machine"
    return None


def nothing_read(patterns: list[str], n_files: int, counts: dict[str, int]) -> str | None:
    """One line when the job read no page: which inputs, and the counted reasons (the output is dropped)."""
    from pipeline.report import read_losses

    if any(name.startswith(counters.READ_PAGES) and n for name, n in counts.items()):
        return None
    reasons = ", ".join(f"{name} {n}" for name, n in read_losses(counts).items()) or "no page records in them"
    shown = ", ".join(patterns[:3]) + (", ..." if len(patterns) > 3 else "")
    return f"no page read from {shown} ({n_files} file{'s' * (n_files != 1)}): {reasons}"


class UsageError(Exception):
    """A job that cannot start, in one line, with the exit code `cm3-data run` returns for it."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Launch:
    """A job ready to run: its options, Beam's options, the VQGAN it encodes with, and what the console
    lines say. Its partial output (`job.output`, beside `output`) exists; `run_job` removes or swaps it in."""

    job: JobOptions
    beam: PipelineOptions
    image_codes: dict
    output: str  # where the finished output goes
    patterns: list[str]
    n_files: int
    sample_corpus: bool  # no --input: the bundled sample corpus
    existing: bool  # --output held an earlier output (kept as it was when the run fails)
    cluster: tuple[int, int] | None = None  # --runner dask here: (workers, memory limit of each)


def run_command(argv: list[str]) -> int:
    parser = run_parser()
    args, beam_args = parser.parse_known_args(argv)
    unknown = unknown_flags(beam_args, parser)
    if unknown:
        print(f"cm3-data run: {'; '.join(unknown)}", file=sys.stderr)
        return 2
    if args.output is None:
        print("cm3-data run: --output DIR is required (see cm3-data run --help)", file=sys.stderr)
        return 2
    setup_logging(args.verbose, args.quiet)
    try:
        launch = build_job(args, beam_args)
    except UsageError as error:
        print(f"cm3-data run: {error}", file=sys.stderr)
        return error.code
    return run_job(launch, quiet=args.quiet, verbose=args.verbose)


def build_job(args: argparse.Namespace, beam_args: list[str]) -> Launch:
    """The job the flags describe, checked before anything is written (inputs, options, output, device,
    VQGAN); last, its partial output is created. UsageError (one line) for anything wrong."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline import images, shards
    from pipeline.graph import JobOptions
    from pipeline.readers import expand_inputs, html_file_urls, input_glob

    patterns = args.input or sample_inputs()
    existing = not shards.is_empty(args.output)
    if not args.overwrite and existing:
        raise UsageError(
            f"--output {args.output} is not empty; choose another --output or pass --overwrite to replace it "
            "whole",
            code=3,
        )
    try:
        files = expand_inputs(patterns)
        c4, limits = rule_options(args.options_file, args.language_id, args.languages)
        fetching = fetch_job_options(args)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    if "://" not in args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f"--output {args.output} is a file, not a directory")
    if args.overwrite and any(shards.inside(args.output, path) for path, _ in files):
        raise UsageError(f"--overwrite would delete inputs inside --output {args.output}")
    partial = shards.partial_output(args.output)
    job = JobOptions(
        inputs=tuple(patterns),
        output=partial,
        c4=c4,
        limits=limits,
        files=tuple(path for path, _ in files),
        input_bytes=sum(size for _, size in files),
        html_urls=tuple(
            html_file_urls([path for path, _ in files], map(input_glob, patterns), args.base_url).items()
        ),
        **job_flag_options(args),
        **fetching,
    )
    options = PipelineOptions(beam_options(beam_args))
    problem = (
        None if not job.images or not runs_on_this_machine(options) else device_problem(job.vqgan_device)
    )
    if problem:
        raise UsageError(problem)
    refusal = local_memory_problem(options, job.input_bytes, args)
    if refusal:
        raise UsageError(refusal)
    try:
        image_codes = images.describe_vqgan(job.vqgan_checkpoint, job.vqgan_config, load=job.images)
    except FileNotFoundError as error:  # names the missing file: checkpoint, its yaml or --vqgan-config
        raise UsageError(str(error)) from None
    except Exception as error:  # missing file, bad yaml, mismatched weights, cloud credentials ...
        raise UsageError(f"cannot load the VQGAN: {type(error).__name__}: {error}") from None
    if "://" not in args.output:
        try:
            os.makedirs(partial)
        except OSError as error:
            raise UsageError(f"cannot create --output {args.output}: {error.strerror}") from None
    cluster = dask_cluster_size(options, args)
    return Launch(
        job, options, image_codes, args.output, patterns, len(files), not args.input, existing, cluster
    )


def run_job(launch: Launch, quiet: bool = False, verbose: bool = False) -> int:
    """Run a built job to its end: the output swapped in when it read pages, the report printed; the exit
    code (1 nothing read, 4 too many image fetches failed, 130 interrupted). Whatever happens, the
    partial output is gone afterwards and an earlier output is as it was unless replaced."""
    import apache_beam as beam

    from pipeline import shards
    from pipeline.graph import build_pipeline
    from pipeline.report import fetch_failure, report_table

    job, partial = launch.job, launch.job.output
    untouched = f"--output {launch.output} is as it was" if launch.existing else "nothing written"
    try:
        if launch.sample_corpus:
            print("[cm3-data] no --input given: processing the bundled sample corpus", file=sys.stderr)
        print(f"[cm3-data] {launch.n_files} input files -> {launch.output}", file=sys.stderr)
        started = time.monotonic()
        local = runs_on_this_machine(launch.beam)
        with progress_lines(quiet, local, job.input_bytes):
            with (
                quiet_workers(not verbose),
                local_cluster(launch.beam, launch.cluster, launch.output) as beam_options,
            ):
                pipeline = beam.Pipeline(options=beam_options)
                build_pipeline(pipeline, job, launch.image_codes, version_line("cm3-data"))
                result = pipeline.run()
                result.wait_until_finish()
                client = getattr(result, "client", None)
                if client is not None:  # the Dask runner leaves its distributed.Client (and cluster) open
                    client.close()
        summary = json.loads(shards.read_bytes(shards.report_json_path(partial)))
        empty = nothing_read(launch.patterns, launch.n_files, summary["counts"])
        if empty:
            print(f"cm3-data run: {empty}; {untouched}", file=sys.stderr)
            return 1
        shards.swap_output(partial, launch.output)
    except KeyboardInterrupt:
        print(f"cm3-data run: interrupted; {untouched}", file=sys.stderr)
        return 130
    except Exception as error:  # a full disk, however deep in Beam, is one line; the rest goes on up
        code = disk_full_error(error)
        if code is None:
            raise
        shards.discard_output(partial)  # first: the space it took is free again when measured
        free = free_space(launch.output)
        print(
            f"cm3-data run: {DISK_FULL[code]} writing --output {launch.output}"
            f"{f' ({free} now)' if free else ''}; {untouched}",
            file=sys.stderr,
        )
        return 5
    finally:
        shards.discard_output(partial)  # gone already when swapped in
    elapsed = time.monotonic() - started
    print(report_table(summary))
    print("\n" + metrics_check(result, summary["counts"]))
    print(
        f"\nfinished in {elapsed:.1f}s; report: {shards.report_html_path(launch.output)} (+ report.json), "
        f"verify: cm3-data verify {launch.output}"
    )
    failure = fetch_failure(summary["counts"], job.max_image_failure_rate) if job.fetch_images else None
    if failure:
        print(f"cm3-data run: {failure}", file=sys.stderr)
        return 4
    return 0


DISK_FULL = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded"}
# what survives when Beam re-raises a worker's error as text: "OSError: [Errno 28] No space left on device"
_DISK_FULL_TEXT = re.compile(
    "|".join(rf"\[Errno {code}\] {re.escape(os.strerror(code))}" for code in DISK_FULL)
)


def disk_full_error(error: BaseException) -> int | None:
    """ENOSPC or EDQUOT if `error`, or anything in its chain of causes and contexts, is a full disk or an
    exhausted quota (also when Beam kept only the message text), else None."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno in DISK_FULL:
            return item.errno
        match = _DISK_FULL_TEXT.search(str(item)[:100_000])
        if match:
            return int(re.search(r"\d+", match.group()).group())
        todo += [item.__cause__, item.__context__]
    return None


def free_space(path: str) -> str:
    """`N.N GB free` on the filesystem of local `path` (its nearest existing folder), else ''."""
    if "://" in path:
        return ""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return f"{shutil.disk_usage(folder).free / 1e9:.1f} GB free"
    except OSError:
        return ""


def metrics_check(result, counts: dict[str, int]) -> str:
    """Compare the runner's Beam counters (namespace cm3) with the funnel computed from data."""
    from apache_beam.metrics.metric import MetricsFilter

    from pipeline.graph import NAMESPACE

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except (NotImplementedError, AttributeError, KeyError):
        return "Beam metrics: not reported by this runner (the funnel above is computed from the data)"
    metrics = {counter.key.metric.name: counter.committed for counter in counters}
    differ = sorted(name for name, n in counts.items() if metrics.get(name) != n)
    if differ:
        return f"Beam metrics: {len(differ)} counters differ from the data counts: {', '.join(differ[:5])}"
    return f"Beam metrics: {len(counts)} counters agree with the data counts"


def verify_command(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="cm3-data verify",
        description="Check a finished output against its manifest: files, sha256, row counts, schema, sorted "
        "unique ids, and that every <img> carries a valid code string.",
    )
    parser.add_argument("output", help="output directory of `cm3-data run`")
    parser.add_argument(
        "--quick", action="store_true", help="files, sha256 and row counts only (no row content)"
    )
    args = parser.parse_args(argv)
    from pipeline.shards import legacy_layout_note, verify

    problems = verify(args.output, check_content=not args.quick)
    note = legacy_layout_note(args.output)
    if note:
        print(f"note: {note}")
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"{args.output}: {len(problems)} problem(s)")
        return 1
    print(f"{args.output}: OK")
    return 0


def optout_command(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="cm3-data optout",
        description="Write a new output without the documents and images that the lists name: a listed "
        "document URL or domain drops the document, a listed image URL or domain removes that image from "
        "the documents that kept it. The new manifest names the lists' sha256 and the previous manifest.",
    )
    parser.add_argument("output", help="a finished output of `cm3-data run` (or of an earlier optout)")
    parser.add_argument("--urls", metavar="LIST", help="file of URLs (documents or images), one a line")
    parser.add_argument("--domains", metavar="LIST", help="file of domains, one a line (subdomains included)")
    parser.add_argument(
        "--output",
        "--out",
        dest="out",
        required=True,
        help="the new output directory (new or empty, see --overwrite)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output whole")
    args = parser.parse_args(argv)
    from pipeline import shards
    from pipeline.optout import load_optout, replay

    if not args.urls and not args.domains:
        print("cm3-data optout: give --urls LIST and/or --domains LIST", file=sys.stderr)
        return 2
    if shards.inside(args.out, args.output) and shards.inside(args.output, args.out):  # however spelt
        print(
            "cm3-data optout: --output must differ from OUTPUT (the previous output is kept)", file=sys.stderr
        )
        return 2
    try:
        optout = load_optout(args.urls, args.domains)
        counts = replay(args.output, args.out, optout, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, UnicodeDecodeError, OSError) as error:
        print(f"cm3-data optout: {error}", file=sys.stderr)
        return 2
    for name, n in counts.items():
        print(f"{name:<44}{n:>10}")
    print(f"wrote {args.out}; verify: cm3-data verify {args.out}")
    return 0


def view_command(argv: list[str]) -> int:
    try:
        from pipeline.view import main as view_main
    except ImportError:
        print(
            "cm3-data view: the shard viewer (pipeline.view) is not available in this build", file=sys.stderr
        )
        return 2
    return view_main(argv)


COMMANDS = {"run": run_command, "verify": verify_command, "view": view_command, "optout": optout_command}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(version_line("cm3-data"))
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(
            "usage: cm3-data {run,verify,view,optout} ... | --version\n\n"
            "  run     run the data job (cm3-data run --help)\n"
            "  verify  check a finished output against its manifest\n"
            "  view    look at documents in shards (cm3-data view --help)\n"
            "  optout  a new output without listed documents and images (cm3-data optout --help)\n\n"
            + EXAMPLES
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, args = argv[0], argv[1:]
    debug = "--debug" in args
    setup_logging(verbose="--verbose" in args)
    ours = {"--debug"} if command == "run" else {"--debug", "--verbose"}  # run's parser lists --verbose
    try:
        return COMMANDS[command]([arg for arg in args if arg not in ours])
    except KeyboardInterrupt:
        print(f"cm3-data {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an unexpected failure: one line, the traceback behind --debug
        if debug:
            raise
        print(
            f"cm3-data {command}: {type(error).__name__}: {' '.join(str(error).split())[:500]} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
