"""The Beam job graph: wires the plain functions of readers/stages/images/shards together.

Written for every runner, including the Dask runner of Beam 2.77, whose translation (a) drops outputs
emitted in `finish_bundle`, (b) mixes the tagged outputs of a multi-output ParDo, (c) does not support
side inputs well and (d) computes only the last transform applied. So: no `finish_bundle` outputs, no
`with_outputs`, joins by CoGroupByKey only, counts travel as data, our own shard writer, and the job
ends in one `Finalize` step that depends on everything else.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference

from c4_filters import C4Options, stable_hash
from pipeline import images, report, shards, stages
from pipeline.readers import Count, ImageRecord, Page, read_input

LOG = logging.getLogger(__name__)
NAMESPACE = "cm3"


@dataclass(frozen=True)
class JobOptions:
    """Everything that decides the output bytes (recorded in the manifest). The VQGAN device and batch size
    are among them: float32 rounding differs between CPU and CUDA kernels and between batch shapes, which
    flips rare near-tie codes (1 in 3840 on the sample corpus, batch 4 vs 1), so the batch size is fixed
    per device here, never by arrival or hardware."""

    inputs: tuple[str, ...]
    output: str
    train_shards: int = 4
    validation_shards: int = 1
    validation_fraction: float = 0.05
    limit: int | None = None
    images: bool = True
    fetch_images: bool = True
    allow_private_image_hosts: bool = False
    vqgan_checkpoint: str | None = None
    vqgan_config: str | None = None
    vqgan_device: str = "auto"  # auto | cpu | cuda | cuda:N, resolved on each worker
    image_batch_size: int | None = None  # None: images.default_batch_size(vqgan_device), fixed here
    image_buckets: int = 16
    files: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.image_batch_size is None:  # recorded resolved, so the manifest says which batches were used
            object.__setattr__(self, "image_batch_size", images.default_batch_size(self.vqgan_device))
        images.check_device(self.vqgan_device)
        if self.image_batch_size < 1:
            raise ValueError(f"image_batch_size must be >= 1, got {self.image_batch_size}")

    def manifest_options(self) -> dict:
        options = asdict(self)
        options.pop("output")
        options.pop("files")
        options["inputs"] = list(self.inputs)
        return options


def count_metric(item: Count) -> None:
    Metrics.counter(NAMESPACE, item.name).inc(item.n)


class Stage(beam.DoFn):
    """Runs one plain generator function; `Count` items also go to Beam metrics (they stay in the output)."""

    def __init__(self, fn, *args):
        self._fn = fn
        self._args = args

    def process(self, element):
        try:
            for item in self._fn(element, *self._args):
                if isinstance(item, Count):
                    count_metric(item)
                yield item
        except (
            Exception
        ) as error:  # last line of defence: one bad element is a counted skip, not a failed job
            LOG.warning("%s failed on one element: %r", self._fn.__name__, error)
            item = Count(f"error.{self._fn.__name__.lstrip('_')}")
            count_metric(item)
            yield item


def is_count(item) -> bool:
    return isinstance(item, Count)


def is_not_count(item) -> bool:
    return not isinstance(item, Count)


def apply_stage(pcoll, label: str, fn, counts: list, *args):
    """pcoll | Stage(fn) -> results; its Count items are appended to `counts` (split by two filters)."""
    return split_counts(pcoll | label >> beam.ParDo(Stage(fn, *args)), label, counts)


def split_counts(out, label: str, counts: list):
    counts.append(out | f"{label}Counts" >> beam.Filter(is_count))
    return out | f"{label}Results" >> beam.Filter(is_not_count)


# ---------------------------------------------------------------- adapters (module level: picklable)


def _read(path: str, limit: int | None):
    LOG.info("reading %s", path)
    n = 0
    for item in read_input(path, limit):
        n += 1
        yield item
    LOG.info("read %s: %d items", path, n)


def _url_winner(keyed):
    url, docs = keyed
    return stages.url_winner(url, docs)


def _span_losers(keyed):
    _, occurrences = keyed
    occurrences = list(occurrences)
    if len(occurrences) < 2:
        return []
    return stages.span_losers(occurrences)


def _span_dedup(joined, options: C4Options):
    _, grouped = joined
    for doc in grouped["doc"]:
        yield from stages.apply_span_dedup(doc, grouped["drop"], options)


def _image_refs(doc: stages.Doc):
    return [(src, doc.url) for src in stages.image_srcs(doc.html)]


class ResolveImage(beam.DoFn):
    """(image URL, {"ref", "record"}) -> prepared (url, array) or a failed ImageOutcome, plus counts."""

    def __init__(self, fetch: bool, allow_private_hosts: bool):
        self._fetch = fetch
        self._allow_private = allow_private_hosts
        self._fetcher = None

    def setup(self):
        if self._fetch:
            from image_tokenizer import FetchOptions, ImageFetcher

            self._fetcher = ImageFetcher(FetchOptions(allow_private_hosts=self._allow_private))

    def process(self, joined):
        url, grouped = joined
        records = list(grouped["record"])
        if not list(grouped["ref"]):
            yield from _counted(Count("images.records_unused", len(records)))
            return
        yield from _counted(Count("images.unique"))
        data, outcome = images.image_bytes(url, records, self._fetcher)
        if data is None:
            yield images.ImageOutcome(url, None, outcome)
            return
        yield from _counted(Count(f"images.source.{outcome}"))
        array, outcome = images.prepare_image(url, data)
        if array is None:
            yield images.ImageOutcome(url, None, outcome)
            return
        yield (url, array)


def _counted(item: Count):
    count_metric(item)
    yield item


def _is_prepared(item) -> bool:
    return isinstance(item, tuple)


def _is_outcome(item) -> bool:
    return isinstance(item, images.ImageOutcome)


def _image_batches(keyed, batch_size: int):
    _, items = keyed
    return images.batches(list(items), batch_size)


def _outcome_counts(outcome: images.ImageOutcome):
    for item in images.failure_counts(outcome):
        count_metric(item)
        yield item


def _codes_to_docs(joined):
    """(image URL, {"ref": doc urls, "outcome": outcomes}) -> (doc url, (image URL, codes or None))."""
    url, grouped = joined
    outcomes = list(grouped["outcome"])
    codes = outcomes[0].codes if outcomes else None
    for doc_url in sorted(set(grouped["ref"])):
        yield doc_url, (url, codes)


def _rewrite(joined, images_enabled: bool):
    _, grouped = joined
    codes = dict(grouped["images"])
    for doc in grouped["doc"]:
        yield from stages.rewrite_images(doc, codes, images_enabled)


def _shard_key(doc: stages.Doc, validation_fraction: float, n_shards: dict):
    split = stages.assign_split(doc.url, validation_fraction)
    return (split, stages.shard_index(doc.url, n_shards[split])), stages.doc_row(doc)


class WriteShard(beam.DoFn):
    """((split, index), rows) -> shard written atomically; yields its manifest entry (in process())."""

    def __init__(self, output_dir: str, n_shards: dict):
        self._output_dir = output_dir
        self._n_shards = n_shards

    def process(self, keyed):
        (split, index), rows = keyed
        entry = shards.write_shard(self._output_dir, split, index, self._n_shards[split], rows)
        Metrics.counter(NAMESPACE, f"written.{split}").inc(entry["rows"])
        LOG.info("wrote %s (%d documents)", entry["file"], entry["rows"])
        yield entry


class Finalize(beam.DoFn):
    """All shard entries + all counts -> empty shards filled in, report.json/html, manifest.json (last)."""

    def __init__(self, job: JobOptions, n_shards: dict, image_codes: dict, code_version: str):
        self._job = job
        self._n_shards = n_shards
        self._image_codes = image_codes
        self._code_version = code_version

    def process(self, keyed):
        _, parts = keyed
        written = [part for kind, part in parts if kind == "shard"]
        counts = dict(sorted(part for kind, part in parts if kind == "count"))
        output = self._job.output
        splits = shards.finish_shards(output, written, self._n_shards)
        summary = report.build_report(counts, splits)
        shards.write_atomic(
            beam.io.filesystems.FileSystems.join(output, "report.json"), report.report_json(summary)
        )
        shards.write_atomic(
            beam.io.filesystems.FileSystems.join(output, "report.html"), report.report_html(summary)
        )
        manifest = {
            "format": shards.FORMAT,
            "splits": splits,
            "image_codes": self._image_codes,
            "options": self._job.manifest_options(),
            "metrics": counts,
            "code_version": self._code_version,
        }
        shards.write_manifest(output, manifest)
        yield summary["written"]


# ---------------------------------------------------------------- the graph


def build_pipeline(pipeline: beam.Pipeline, job: JobOptions, image_codes: dict, code_version: str) -> None:
    """Apply the whole job to `pipeline` (its last transform is Finalize, see the module docstring)."""
    c4_options = C4Options()
    n_shards = {"train": job.train_shards, "validation": job.validation_shards}
    counts: list = []

    items = (
        pipeline
        | "InputFiles" >> beam.Create(list(job.files))
        | "SpreadFiles" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_read, job.limit)
    )
    counts.append(items | "ReadCounts" >> beam.Filter(is_count).with_output_types(Count))
    pages = items | "Pages" >> beam.Filter(lambda item: isinstance(item, Page))
    records = (
        items
        | "ImageRecords" >> beam.Filter(lambda item: isinstance(item, ImageRecord))
        | "KeyRecords" >> beam.Map(lambda record: (record.url, record.data))
    )
    counts[-1] = counts[-1] | "ReadMetrics" >> beam.Map(_metric_passthrough)

    docs = apply_stage(pages, "MinimizeClean", stages.minimize_and_clean, counts, c4_options)

    unique = apply_stage(
        docs | "KeyByUrl" >> beam.Map(lambda doc: (doc.url, doc)) | "GroupByUrl" >> beam.GroupByKey(),
        "UrlDedup",
        _url_winner,
        counts,
    )

    losers = (
        unique
        | "Spans" >> beam.FlatMap(stages.doc_spans)
        | "GroupSpans" >> beam.GroupByKey()
        | "SpanLosers" >> beam.FlatMap(_span_losers)
    )
    deduped = apply_stage(
        {"doc": unique | "KeyDocs" >> beam.Map(lambda doc: (doc.url, doc)), "drop": losers}
        | "JoinSpanLosers" >> beam.CoGroupByKey(),
        "SpanDedup",
        _span_dedup,
        counts,
        c4_options,
    )

    keyed_docs = deduped | "KeyDedupedDocs" >> beam.Map(lambda doc: (doc.url, doc))
    if job.images:
        refs = deduped | "ImageRefs" >> beam.FlatMap(_image_refs)
        resolved = split_counts(
            {"ref": refs | "RefUrls" >> beam.Map(lambda ref: (ref[0], None)), "record": records}
            | "JoinImageRecords" >> beam.CoGroupByKey()
            | "ResolveImages" >> beam.ParDo(ResolveImage(job.fetch_images, job.allow_private_image_hosts)),
            "ResolveImages",
            counts,
        )
        failed = resolved | "FailedImages" >> beam.Filter(_is_outcome)
        handler = images.VQGANModelHandler(
            job.vqgan_checkpoint, job.vqgan_config, job.vqgan_device, image_codes["vqgan"]["sha256"]
        ).with_no_batching()
        encoded = (
            resolved
            | "PreparedImages" >> beam.Filter(_is_prepared)
            | "BucketImages" >> beam.Map(lambda item: (stable_hash(item[0]) % job.image_buckets, item))
            | "GroupBuckets" >> beam.GroupByKey()
            | "Batches" >> beam.FlatMap(_image_batches, job.image_batch_size)
            | "VQGANEncode" >> RunInference(handler)
            | "Outcomes" >> beam.MapTuple(lambda url, codes: images.ImageOutcome(url, codes, "ok"))
        )
        outcomes = (failed, encoded) | "AllOutcomes" >> beam.Flatten()
        counts.append(outcomes | "OutcomeCounts" >> beam.FlatMap(_outcome_counts))
        doc_images = {
            "ref": refs,
            "outcome": outcomes | "KeyOutcomes" >> beam.Map(lambda outcome: (outcome.url, outcome)),
        } | "JoinCodes" >> beam.CoGroupByKey()
        per_doc = doc_images | "CodesToDocs" >> beam.FlatMap(_codes_to_docs)
        joined = {"doc": keyed_docs, "images": per_doc} | "JoinDocImages" >> beam.CoGroupByKey()
    else:  # image encoding off: every <img> is removed (counted as images.refs_removed)
        joined = keyed_docs | "NoImages" >> beam.MapTuple(
            lambda url, doc: (url, {"doc": [doc], "images": []})
        )
    final = apply_stage(joined, "RewriteImages", _rewrite, counts, job.images)

    written = (
        final
        | "ShardKey" >> beam.Map(_shard_key, job.validation_fraction, n_shards)
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(job.output, n_shards))
    )
    totals = (
        counts
        | "AllCounts" >> beam.Flatten()
        | "CountPairs" >> beam.Map(lambda count: (count.name, count.n))
        | "SumCounts" >> beam.CombinePerKey(sum)
    )
    _ = (
        (
            written | "TagShards" >> beam.Map(lambda entry: ("job", ("shard", entry))),
            totals | "TagCounts" >> beam.Map(lambda total: ("job", ("count", total))),
        )
        | "JobParts" >> beam.Flatten()
        | "GatherJob" >> beam.GroupByKey()
        | "Finalize" >> beam.ParDo(Finalize(job, n_shards, image_codes, code_version))
    )


def _metric_passthrough(item: Count) -> Count:
    count_metric(item)
    return item
