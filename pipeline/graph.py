"""The job: its options (everything that decides the output bytes) and its graph, which reads like the CM3
paper's data section (3.1) and T5's cleaning (2.2) because each step is one composite of `pipeline.beam_steps`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import apache_beam as beam

from c4_filters import C4Options
from html_minimizer import Limits
from image_tokenizer.fetch import DEFAULT_USER_AGENT, FetchOptions
from pipeline import images, report, shards
from pipeline.beam_steps import (
    NAMESPACE,
    Counts,
    EncodeImages,
    MinimizeAndClean,
    NearDupDedup,
    ReadInputs,
    RemoveImages,
    RewriteImages,
    SpanDedup,
    SumCounts,
    UrlDedup,
    WriteShards,
    shard_counts,
)
from pipeline.environment import environment
from pipeline.hygiene import Hygiene

__all__ = ["NAMESPACE", "JobOptions", "build_pipeline"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """Everything that decides the output bytes, recorded in the manifest: inputs, split, shard sizing, the
    C4 rules (`c4`), the minimizer's budgets (`limits`) and the VQGAN's device and batch size (float32
    rounding differs between CPU and CUDA kernels and between batch shapes, which flips rare near-tie codes,
    so the batch size is fixed per device here, never by arrival or hardware).

    Shards: `target_shard_mb` of rows (uncompressed) per shard, the count derived from the data; a split
    with `train_shards` / `validation_shards` set gets exactly that many instead.
    """

    inputs: tuple[str, ...]
    output: str
    target_shard_mb: int = 256
    train_shards: int | None = None
    validation_shards: int | None = None
    validation_fraction: float = 0.05
    limit: int | None = None
    images: bool = True
    fetch_images: bool = True
    allow_private_image_hosts: bool = False
    vqgan_checkpoint: str | None = None
    vqgan_config: str | None = None
    vqgan_device: str = "auto"  # auto | cpu | cuda | cuda:N, resolved on each worker
    image_batch_size: int | None = None  # None: images.default_batch_size(vqgan_device), fixed here
    c4: C4Options = C4Options()
    limits: Limits = Limits()
    base_url: str | None = None  # URL of the input root for plain .html files (readers.html_file_urls)
    hygiene: Hygiene = Hygiene()  # corpus-level image and document rules (pipeline/hygiene.py)
    # how the job runs, not what it writes (not in the manifest):
    fetch_concurrency: int = field(default=64, compare=False)  # fetches in flight per fetch step instance
    fetch_timeout: float = field(
        default=30.0, compare=False
    )  # seconds per image, redirects and retries included
    user_agent: str = field(default=DEFAULT_USER_AGENT, compare=False)
    fetch_proxy: str | None = field(default=None, compare=False)
    max_image_failure_rate: float = field(default=0.5, compare=False)  # checked by the launcher at the end
    files: tuple[str, ...] = field(default=(), compare=False)
    input_bytes: int = field(default=0, compare=False)
    html_urls: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (.html file, its page URL)
    # when the job was set up (epoch seconds): the report's duration, the one thing in it that varies
    started: float = field(default_factory=time.time, compare=False)

    def __post_init__(self):
        if self.image_batch_size is None:  # recorded resolved, so the manifest says which batches were used
            object.__setattr__(self, "image_batch_size", images.default_batch_size(self.vqgan_device))
        images.check_device(self.vqgan_device)
        for name in ("image_batch_size", "target_shard_mb", "fetch_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_shards", "validation_shards", "limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {getattr(self, name)}")
        if not self.fetch_timeout > 0:
            raise ValueError(f"fetch_timeout must be > 0, got {self.fetch_timeout}")
        if not 0 <= self.max_image_failure_rate <= 1:
            raise ValueError(f"max_image_failure_rate must lie in [0, 1], got {self.max_image_failure_rate}")
        if not 0 <= self.validation_fraction <= 1:
            raise ValueError(f"validation_fraction must lie in [0, 1], got {self.validation_fraction}")

    @property
    def fixed_shards(self) -> dict[str, int | None]:
        return {"train": self.train_shards, "validation": self.validation_shards}

    def manifest_options(self) -> dict:
        options = asdict(self)
        options.pop("output")
        for run_only in fields(self):  # compare=False: how the job runs, not what it writes
            if not run_only.compare:
                options.pop(run_only.name)
        options["inputs"] = list(self.inputs)
        return options


def build_pipeline(pipeline: beam.Pipeline, job: JobOptions, image_codes: dict, code_version: str) -> None:
    """Apply the whole job to `pipeline`; its last transform is Finalize, which depends on every step."""
    pages, records, read_counts = pipeline | "ReadInputs" >> ReadInputs(
        job.files, job.limit, dict(job.html_urls)
    )
    docs, clean_counts = pages | "MinimizeAndClean" >> MinimizeAndClean(job.c4, job.limits)
    unique, url_counts = docs | "UrlDedup" >> UrlDedup()
    counts = [read_counts, clean_counts, url_counts]
    if job.hygiene.doc_dedup:  # before the span rule, so a near-copy goes whole instead of in fragments
        unique, near_counts = unique | "NearDupDedup" >> NearDupDedup()
        counts.append(near_counts)
    deduped, span_counts = unique | "SpanDedup" >> SpanDedup(job.c4)
    counts.append(span_counts)
    if job.images:
        codes, image_counts = (deduped, records) | "EncodeImages" >> encode_images(job, image_codes)
        rewrite = RewriteImages(job.hygiene.max_images_per_doc)
        final, rewrite_counts = (deduped, codes) | "RewriteImages" >> rewrite
        counts += [image_counts, rewrite_counts]
    else:  # image encoding off: every <img> is removed (counted as images.refs_removed)
        final, rewrite_counts = deduped | "RemoveImages" >> RemoveImages()
        counts.append(rewrite_counts)
    writer = WriteShards(job.output, job.validation_fraction, job.target_shard_mb, job.fixed_shards)
    entries, split_bytes = final | "WriteShards" >> writer
    totals = (
        counts
        | "AllCounts" >> beam.Flatten()
        | "KeyCounts" >> beam.Map(_keyed).with_output_types(tuple[str, Counts])
        | "SumCounts" >> beam.CombinePerKey(SumCounts()).with_output_types(tuple[str, dict[str, int]])
    )
    job_part = tuple[str, tuple[str, Any]]  # ("job", (kind, value)): one key gathers the job's results
    _ = (
        (
            entries | "TagShards" >> beam.Map(_tagged, "shard").with_output_types(job_part),
            totals | "TagCounts" >> beam.Map(_tagged_value, "counts").with_output_types(job_part),
            split_bytes | "TagSplitBytes" >> beam.Map(_tagged, "split_bytes").with_output_types(job_part),
        )
        | "JobParts" >> beam.Flatten()
        | "GatherJob" >> beam.GroupByKey()
        | "Finalize" >> beam.ParDo(Finalize(job, image_codes, code_version))
    )


def encode_images(job: JobOptions, image_codes: dict) -> EncodeImages:
    """The image step as the job's options configure it (the checkpoint's sha256 as the launcher saw it)."""
    vqgan = images.VQGANHandle(
        job.vqgan_checkpoint, job.vqgan_config, job.vqgan_device, image_codes["vqgan"]["sha256"]
    )
    return EncodeImages(
        job.fetch_images,
        job.allow_private_image_hosts,
        vqgan,
        job.image_batch_size,
        images.image_keys(job.input_bytes),
        job.hygiene,
        fetch_options(job),
        job.fetch_concurrency,
        images.fetch_keys(job.input_bytes),
    )


def fetch_options(job: JobOptions) -> FetchOptions:
    """The fetcher's budgets from the job's flags: --fetch-timeout bounds the whole fetch and caps the others."""
    default = FetchOptions()
    return FetchOptions(
        connect_timeout=min(default.connect_timeout, job.fetch_timeout),
        read_timeout=min(default.read_timeout, job.fetch_timeout),
        total_timeout=job.fetch_timeout,
        user_agent=job.user_agent,
        allow_private_hosts=job.allow_private_image_hosts,
        proxy=job.fetch_proxy,
    )


def _keyed(value):
    return "job", value


def _tagged(value, kind: str):
    return "job", (kind, value)


def _tagged_value(keyed, kind: str):
    return "job", (kind, keyed[1])


class Finalize(beam.DoFn):
    """Shard entries + counts + split sizes -> empty shards filled in, then in `_meta/`: report.json/html and
    manifest.json (last)."""

    def __init__(self, job: JobOptions, image_codes: dict, code_version: str):
        self._job = job
        self._image_codes = image_codes
        self._code_version = code_version

    def process(self, keyed):
        _, parts = keyed
        written, counts, split_bytes = [], {}, {}
        for kind, part in parts:
            if kind == "shard":
                written.append(part)
            elif kind == "counts":
                counts = part
            else:
                split_bytes[part[0]] = part[1]
        n_shards = shard_counts(split_bytes, self._job.target_shard_mb, self._job.fixed_shards)
        output = self._job.output
        splits = shards.finish_shards(output, written, n_shards)
        options = self._job.manifest_options()
        run = {
            "inputs": options["inputs"],
            "options": {name: value for name, value in options.items() if name != "inputs"},
            "code_version": self._code_version,
            "duration_s": round(time.time() - self._job.started, 1),
        }
        summary = report.build_report(counts, splits, run)
        shards.write_atomic(shards.report_json_path(output), report.report_json(summary))
        shards.write_atomic(shards.report_html_path(output), report.report_html(summary))
        manifest = {
            "format": shards.FORMAT,
            "splits": splits,
            "image_codes": self._image_codes,
            "options": options,
            "metrics": counts,
            "code_version": self._code_version,
            "environment": environment(),
        }
        shards.write_manifest(output, manifest)
        yield summary["written"]
