"""The data job's steps as Beam composites, one per step of the CM3 paper's data section (3.1) and T5's
cleaning (2.2): read, minimize + clean, URL dedup, span dedup, image encoding, image rewriting, shard writing.

Each step takes and returns PCollections and also returns its `Counts` (one element per processed input
element), so every runner gets the funnel from data. The logic lives in plain functions (readers,
`pipeline.doc_steps`, images, shards); here they are only wired.

Written for every runner, including the Dask runner of Beam 2.77, whose translation drops outputs emitted in
`finish_bundle`, mixes the tagged outputs of a multi-output ParDo and computes only the last transform
applied. So: no `finish_bundle` outputs, no `with_outputs` (results and counts are split by two filters),
joins by CoGroupByKey, our own shard writer, and the job ends in one `Finalize` that depends on everything.

Worker memory is bounded per element or per batch, never per group: grouped values are streamed (URL and
span winners are running minima, images are encoded in fixed-size batches as they arrive, shard rows go
through an external sort), so a key with a million values costs what a key with two does.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from c4_filters import C4Options, stable_hash
from html_minimizer import Limits
from pipeline import counters, doc_steps, images, progress, shards
from pipeline.hygiene import (
    NEAR_DUPLICATE,
    URL_REPEATS,
    Hygiene,
    band_keys,
    band_losers,
    capped_srcs,
    doc_text,
    over_url_repeats,
    share_codes,
)
from pipeline.items import Count, ImageRecord, Page
from pipeline.readers import read_input

LOG = logging.getLogger(__name__)
NAMESPACE = "cm3"
MB = 1 << 20

# Every PCollection that crosses a shuffle states its element type, so each runner encodes keys with the
# coder named here (UTF-8 strings, ints that fit signed 64 bits, tuples of those: all deterministic), never
# one a Beam version happened to infer. Values that are our own classes go through Beam's pickling coder.
DocByUrl = tuple[str, doc_steps.Doc]
SpanOccurrence = tuple[int, tuple[str, int]]  # (key_hash(span), (doc URL, span start))
DocImage = tuple[str, tuple[str, str | None]]  # (doc URL, (image URL, codes or None))


@dataclass(frozen=True)
class Counts:
    """The `Count` events of one processed element, summed by name (sorted)."""

    items: tuple[tuple[str, int], ...]


class SumCounts(beam.CombineFn):
    """All `Counts` of a job -> {name: total}. Lifted before the shuffle, so a worker holds one dict."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, total: Counter, counts: Counts) -> Counter:
        for name, n in counts.items:
            total[name] += n
        return total

    def merge_accumulators(self, totals) -> Counter:
        merged = Counter()
        for total in totals:
            merged.update(total)
        return merged

    def extract_output(self, total: Counter) -> dict[str, int]:
        return dict(sorted(total.items()))


def is_counts(item) -> bool:
    return isinstance(item, Counts)


def is_result(item) -> bool:
    return not isinstance(item, Counts)


def stage_outputs(fn, element, *args):
    """Run one plain generator function on `element`: its results as they come, then its `Count` events
    summed as one `Counts` element (also Beam metrics). An exception is a counted skip (`error.<function>`)."""
    counter: Counter = Counter()
    try:
        for item in fn(element, *args):
            if isinstance(item, Count):
                counter[item.name] += item.n
            else:
                yield item
    except Exception as error:  # last line of defence: one bad element is a counted skip, not a failed job
        LOG.warning("%s failed on one element: %r", fn.__name__, error)
        counter[counters.ERROR + fn.__name__.lstrip("_")] += 1
    if counter:
        for name, n in counter.items():
            Metrics.counter(NAMESPACE, name).inc(n)
        progress.add(counter)
        yield Counts(tuple(sorted(counter.items())))


class Stage(beam.DoFn):
    """A DoFn running one plain generator function through `stage_outputs`."""

    def __init__(self, fn, *args):
        self._fn = fn
        self._args = args

    def process(self, element):
        return stage_outputs(self._fn, element, *self._args)


def run_stage(pcoll, label: str, fn, *args):
    """pcoll | Stage(fn) -> (results, counts)."""
    out = pcoll | label >> beam.ParDo(Stage(fn, *args))
    return out | f"{label}Results" >> beam.Filter(is_result), out | f"{label}Counts" >> beam.Filter(is_counts)


# ---------------------------------------------------------------- reading


def _is_page(item) -> bool:
    return isinstance(item, Page)


def _record_pair(item):
    if isinstance(item, ImageRecord):
        yield item.url, item.data


def _read_file(path: str, limit: int | None, html_urls: dict[str, str]):
    yield from read_input(path, limit, html_urls.get(path))
    progress.file_read(path)


def _read_numbered(numbered: tuple[int, str], limit: int, html_urls: dict[str, str]):
    """The items of the file numbered `file_index`, each page as ((file_index, page_index), page). Pages
    are counted once the job-wide limit has kept or dropped them (`_within_limit`), not here."""
    file_index, path = numbered
    page_index = 0
    for item in read_input(path, limit, html_urls.get(path)):
        if isinstance(item, Page):
            yield (file_index, page_index), item
            page_index += 1
        elif not (isinstance(item, Count) and item.name.startswith(counters.READ_PAGES)):
            yield item
    progress.file_read(path)


def _is_numbered_page(item) -> bool:
    return isinstance(item, tuple) and isinstance(item[1], Page)


def _keyed_position(numbered_page):
    return "pages", numbered_page[0]


def _last_kept(keyed, limit: int):
    """The position of the job's `limit`-th page (or its last, if fewer). Distinct positions: the Dask
    runner of Beam 2.77 repeats elements of a group read as a side input. At most `limit` per file."""
    key, positions = keyed
    return key, max(heapq.nsmallest(limit, set(positions)))


def _within_limit(numbered_page, last_kept: dict):
    """The page if its position is among the job's first `limit` (up to the last kept one), else a count."""
    position, page = numbered_page
    if position <= last_kept["pages"]:
        yield Count(counters.READ_PAGES + page.source)
        yield page
    else:
        yield Count(counters.READ_PAGES_OVER_LIMIT)


def _limit_stage(numbered_page, last_kept: dict):
    return stage_outputs(_within_limit, numbered_page, last_kept)


class ReadInputs(beam.PTransform):
    """Input files -> (pages, image records as (url, bytes), counts). Files are spread over workers; each is
    read as a stream, so a worker holds one record at a time. With a `limit`, the job keeps the first
    `limit` pages in input order (files in their sorted order, records in file order) wherever they were
    read: no file gives more than `limit` pages, and the smallest positions of those are kept."""

    def __init__(self, files: tuple[str, ...], limit: int | None, html_urls: dict[str, str] | None = None):
        super().__init__()
        self._files = list(files)
        self._limit = limit
        self._html_urls = dict(html_urls or {})  # plain .html file -> its page URL (readers.html_file_urls)

    def expand(self, pipeline):
        if self._limit is None:
            files = pipeline | "InputFiles" >> beam.Create(self._files) | "SpreadFiles" >> beam.Reshuffle()
            items, counts = run_stage(files, "Read", _read_file, self._limit, self._html_urls)
            pages = items | "Pages" >> beam.Filter(_is_page)
            records = items | "ImageRecords" >> beam.FlatMap(_record_pair).with_output_types(
                tuple[str, bytes]
            )
            return pages, records, counts
        numbered = list(enumerate(self._files))
        files = pipeline | "InputFiles" >> beam.Create(numbered) | "SpreadFiles" >> beam.Reshuffle()
        items, read_counts = run_stage(files, "Read", _read_numbered, self._limit, self._html_urls)
        candidates = items | "Pages" >> beam.Filter(_is_numbered_page)
        records = items | "ImageRecords" >> beam.FlatMap(_record_pair).with_output_types(tuple[str, bytes])
        last_kept = (
            candidates
            | "Positions" >> beam.Map(_keyed_position).with_output_types(tuple[str, tuple[int, int]])
            | "GroupPositions" >> beam.GroupByKey()
            | "LastKept" >> beam.Map(_last_kept, self._limit)
        )
        limited = candidates | "Limit" >> beam.FlatMap(_limit_stage, beam.pvalue.AsDict(last_kept))
        pages = limited | "LimitResults" >> beam.Filter(is_result)
        limit_counts = limited | "LimitCounts" >> beam.Filter(is_counts)
        counts = (read_counts, limit_counts) | "AllReadCounts" >> beam.Flatten()
        return pages, records, counts


# ---------------------------------------------------------------- minimal HTML + C4


class MinimizeAndClean(beam.PTransform):
    """Pages -> minimal HTML (CM3 3.1) cleaned by the C4 rules in HTML mode (T5 2.2) -> (docs, counts)."""

    def __init__(self, c4: C4Options, limits: Limits):
        super().__init__()
        self._c4 = c4
        self._limits = limits

    def expand(self, pages):
        return run_stage(pages, "MinimizeClean", doc_steps.minimize_and_clean, self._c4, self._limits)


# ---------------------------------------------------------------- de-duplication


def _by_url(doc: doc_steps.Doc):
    return doc.url, doc


def _key_by_url() -> beam.Map:
    return beam.Map(_by_url).with_output_types(DocByUrl)


def _url_winner(keyed):
    url, docs = keyed
    return doc_steps.url_winner(url, docs)


class UrlDedup(beam.PTransform):
    """One document per URL, the winner chosen by content, not arrival -> (docs, counts)."""

    def expand(self, docs):
        grouped = docs | "KeyByUrl" >> _key_by_url() | "GroupByUrl" >> beam.GroupByKey()
        return run_stage(grouped, "UrlWinner", _url_winner)


def _span_losers(keyed):
    _, occurrences = keyed
    return doc_steps.span_losers(occurrences)


def _drop_span_losers(joined, options: C4Options):
    _, grouped = joined
    for doc in grouped["doc"]:
        yield from doc_steps.apply_span_dedup(doc, grouped["drop"], options)


class SpanDedup(beam.PTransform):
    """T5 2.2: of any three-sentence span occurring more than once, all but one occurrence go (every
    sentence of a losing occurrence is removed, then blocks left without text, and the page rules applied
    again) -> (docs, counts)."""

    def __init__(self, c4: C4Options):
        super().__init__()
        self._c4 = c4

    def expand(self, docs):
        losers = (
            docs
            | "Spans" >> beam.FlatMap(doc_steps.doc_spans, self._c4).with_output_types(SpanOccurrence)
            | "GroupSpans" >> beam.GroupByKey()
            | "SpanLosers" >> beam.FlatMap(_span_losers).with_output_types(tuple[str, int])
        )
        joined = {"doc": docs | "KeyDocs" >> _key_by_url(), "drop": losers} | "JoinLosers" >> (
            beam.CoGroupByKey()
        )
        return run_stage(joined, "DropLosers", _drop_span_losers, self._c4)


def _doc_bands(doc: doc_steps.Doc):
    return [(key, doc.url) for key in band_keys(doc_text(doc.html))]


def _bucket_losers(keyed):
    _, urls = keyed
    return band_losers(urls)


def _loser_key(url: str):
    return url, True


def _drop_near_duplicates(joined):
    _, grouped = joined
    lost = any(True for _ in grouped["drop"])
    for doc in grouped["doc"]:
        if lost:
            yield Count(counters.NEAR_DUP_DOCS_DROPPED)
        else:
            yield doc


class NearDupDedup(beam.PTransform):
    """Near-duplicate documents (OBELICS, datatrove's MinHash dedup): each document's MinHash signature over
    word 5-grams is cut into LSH bands; documents sharing a band key are grouped, and in every group all but
    the smallest stable_hash(url) lose (a running minimum, as the span dedup). Losers are joined back by URL
    and dropped whole -> (docs, counts). Worker memory: one document or one URL per group."""

    def expand(self, docs):
        losers = (
            docs
            | "BandKeys" >> beam.FlatMap(_doc_bands).with_output_types(tuple[str, str])
            | "GroupBands" >> beam.GroupByKey()
            | "BandLosers" >> beam.FlatMap(_bucket_losers).with_output_types(str)
            | "LoserKeys" >> beam.Map(_loser_key).with_output_types(tuple[str, bool])
        )
        joined = {"doc": docs | "KeyDocs" >> _key_by_url(), "drop": losers} | "JoinNearDups" >> (
            beam.CoGroupByKey()
        )
        return run_stage(joined, "DropNearDups", _drop_near_duplicates)


# ---------------------------------------------------------------- images


def _image_refs(doc: doc_steps.Doc, rules: Hygiene):
    """(image URL, document URL) for the document's first `max_images_per_doc` distinct images (the rest
    are never fetched: RewriteImages removes them)."""
    return [(src, doc.url) for src in capped_srcs(doc_steps.image_srcs(doc.html), rules)]


def _one(pair):
    return pair[0], 1


class ResolveImage(beam.DoFn):
    """(image URL, {"refs": [n references], "record": input records}) -> (url, group key, uint8 crop,
    thumbnail), a failed ImageOutcome, or a FetchRequest for the grouped fetch step, plus counts. Records are streamed."""

    def __init__(self, fetch: bool, rules: Hygiene):
        self._fetch = fetch
        self._rules = rules

    def process(self, joined):
        return stage_outputs(_resolve_image, joined, self._fetch, self._rules)


def _resolve_image(joined, fetch: bool, rules: Hygiene):
    url, grouped = joined
    n_documents = sum(grouped["refs"])
    if not n_documents:
        yield Count(counters.IMAGES_RECORDS_UNUSED, sum(1 for _ in grouped["record"]))
        return
    yield Count(counters.IMAGES_UNIQUE)
    if over_url_repeats(n_documents, rules):  # site furniture: never fetched, removed from every document
        yield Count(counters.IMAGES_FILTERED_REFS + URL_REPEATS, n_documents)
        yield images.ImageOutcome(url, None, URL_REPEATS)
        return
    record = images.choose_record(grouped["record"])
    if record is None and fetch and not url.startswith("data:"):
        yield images.FetchRequest(url)
        return
    data, outcome = images.image_bytes(url, () if record is None else (record,), None)
    if data is None:
        yield images.ImageOutcome(url, None, outcome)
        return
    yield Count(counters.IMAGES_SOURCE + outcome)
    crop, outcome, key, thumb = images.prepare(url, data, rules)
    if crop is None:
        yield images.ImageOutcome(url, None, outcome)
        return
    yield url, key, crop, thumb


_progress = images.FetchProgress()  # this process's fetches, for the progress lines


class FetchImages(beam.DoFn):
    """(fetch group, stream of image URLs) -> (url, group key, crop, thumbnail) or a failed ImageOutcome,
    plus counts.

    The group is streamed through a pool of `window` threads (fetch, decode, crop), results yielded as they
    complete: at most `window` images are held, whatever the group's size. The fetcher (per-host slots,
    DNS and robots caches, one session per thread) and the pool live as long as the DoFn instance."""

    def __init__(self, options, window: int, rules: Hygiene):
        self._options = options
        self._window = window
        self._rules = rules
        self._fetcher = None
        self._pool = None
        self._decode_slots = None

    def setup(self):
        from concurrent.futures import ThreadPoolExecutor

        from image_tokenizer import ImageFetcher

        images.limit_malloc_growth()
        self._fetcher = ImageFetcher(self._options)
        self._pool = ThreadPoolExecutor(self._window, thread_name_prefix="cm3-fetch")
        self._decode_slots = images.decode_slots()

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def process(self, keyed):
        return stage_outputs(
            _fetch_group, keyed, self._fetcher, self._pool, self._window, self._rules, self._decode_slots
        )


def _fetch_group(keyed, fetcher, pool, window: int, rules: Hygiene, decode_slots=None):
    _, urls = keyed

    def work(url: str) -> images.Fetched:
        return images.fetch_and_prepare(url, fetcher, rules, decode_slots)

    for fetched in images.completed(work, urls, pool, window):
        line = _progress.record(fetched.fetch_outcome)
        if line:
            LOG.info(line)
        yield Count(counters.IMAGES_FETCH + fetched.fetch_outcome)
        if fetched.fetch_outcome != "ok":
            yield images.ImageOutcome(fetched.url, None, fetched.fetch_outcome)
            continue
        yield Count(counters.IMAGES_FETCHED)
        if fetched.crop is None:
            yield images.ImageOutcome(fetched.url, None, fetched.outcome)
            continue
        yield fetched.url, fetched.key, fetched.crop, fetched.thumbnail


def _is_fetch_request(item) -> bool:
    return isinstance(item, images.FetchRequest)


def _key_fetch(request: images.FetchRequest, n_keys: int):
    return stable_hash(request.url) % n_keys, request.url


class EncodeBatches(beam.DoFn):
    """(key, stream of (url, crop)) -> ImageOutcome with codes, in fixed-shape batches of `batch_size`. The
    VQGAN is loaded once per worker process and shared by its threads."""

    def __init__(self, handle, batch_size: int):
        self._handle = handle
        self._batch_size = batch_size
        self._model = None

    def setup(self):
        self._model = self._handle.model()

    def process(self, keyed):
        _, prepared = keyed
        for url, codes in images.encode_images(prepared, self._model, self._batch_size):
            yield images.ImageOutcome(url, codes, "ok")


def _key_crop(item, n_keys: int):
    """(label, crop) -> (encode group, (label, crop)); the codes come back under the label."""
    return stable_hash(item[0]) % n_keys, item


def _by_group(prepared):
    url, key, crop, thumb = prepared
    return key, (url, crop, thumb)


def _share_group(keyed):
    """(group key, (url, crop, thumbnail) per URL) -> (label, url, crop to encode or None), pixel-checked."""
    key, members = keyed
    for label, url, crop in share_codes(key, members):
        if label != key:
            yield Count(counters.IMAGES_PHASH_PIXEL_MISMATCH)
        yield label, url, crop


def _has_crop(shared) -> bool:
    return shared[2] is not None


def _label_crop(shared):
    label, _, crop = shared
    return label, crop


def _label_member(shared):
    label, url, _ = shared
    return label, url


def _outcomes_to_members(joined):
    """(label, {"codes": [its encoded outcome], "member": its URLs}) -> one ImageOutcome per URL: the
    smallest URL (whose crop was encoded) "ok", every other URL NEAR_DUPLICATE with the same codes."""
    _, grouped = joined
    codes = next((outcome.codes for outcome in grouped["codes"]), None)
    members = iter(grouped["member"])
    first = next(members, None)
    if first is None:
        return
    smallest = first
    for url in members:  # one held beside the running minimum: the others are yielded as they come
        if url < smallest:
            url, smallest = smallest, url
        yield images.ImageOutcome(url, codes, NEAR_DUPLICATE)
    yield images.ImageOutcome(smallest, codes, "ok")


def _is_prepared(item) -> bool:
    return isinstance(item, tuple)


def _is_failed(item) -> bool:
    return isinstance(item, images.ImageOutcome)


def _by_image_url(outcome: images.ImageOutcome):
    return outcome.url, outcome


def _key_by_image_url() -> beam.Map:
    return beam.Map(_by_image_url).with_output_types(tuple[str, images.ImageOutcome])


def _codes_to_docs(joined):
    """(image URL, {"ref": doc URLs, "outcome": [its outcome]}) -> (doc URL, (image URL, codes or None)),
    streamed over the references (a logo on a million pages holds one outcome)."""
    url, grouped = joined
    codes = next((outcome.codes for outcome in grouped["outcome"]), None)
    for doc_url in grouped["ref"]:
        yield doc_url, (url, codes)


def _outcome_counts(outcome: images.ImageOutcome):
    return images.failure_counts(outcome)


class EncodeImages(beam.PTransform):
    """Each unique image URL of the documents resolved once (an input record first, else fetched), cropped,
    encoded by the VQGAN, and its codes routed back to every document that uses it.

    URLs to fetch are keyed by URL hash into `fetch_keys` groups, each streamed through `FetchImages`'
    window of `fetch_concurrency` threads (no finish_bundle: every runner gets the results).

    (docs, records) -> ((doc URL, (image URL, codes or None)), counts). Crops are keyed by URL hash into
    `n_keys` groups, each streamed through fixed-shape batches, so neither a group's size nor arrival order
    changes a code or a worker's memory.

    Hygiene (`rules`): a document's images past `max_images_per_doc` are not referenced; an image URL that
    more than `max_image_url_repeats` documents reference is removed without being fetched (the references
    are counted by a combiner); images too small or too elongated are removed before cropping. With
    `image_dedup`, crops are grouped by perceptual hash: the smallest URL's crop is encoded and its codes go
    to every URL of the group whose picture passes a strict pixel check against it (`share_codes`, one crop
    and one thumbnail held per group); a URL that fails it is encoded on its own."""

    def __init__(
        self,
        fetch: bool,
        allow_private_hosts: bool,
        handle,
        batch_size: int,
        n_keys: int,
        rules: Hygiene = Hygiene(),
        fetch_options=None,
        fetch_concurrency: int = 64,
        fetch_keys: int = images.MIN_FETCH_KEYS,
    ):
        super().__init__()
        from image_tokenizer.fetch import FetchOptions

        self._fetch = fetch
        self._fetch_options = fetch_options or FetchOptions(allow_private_hosts=allow_private_hosts)
        self._fetch_concurrency = fetch_concurrency
        self._fetch_keys = fetch_keys
        self._handle = handle
        self._batch_size = batch_size
        self._n_keys = n_keys
        self._rules = rules

    def expand(self, inputs):
        docs, records = inputs
        refs = docs | "ImageRefs" >> beam.FlatMap(_image_refs, self._rules).with_output_types(tuple[str, str])
        unique = (
            refs
            | "RefPairs" >> beam.Map(_one).with_output_types(tuple[str, int])
            | "CountRefs" >> beam.CombinePerKey(sum).with_output_types(tuple[str, int])
        )
        resolved = {"refs": unique, "record": records} | "JoinRecords" >> beam.CoGroupByKey()
        local = resolved | "Resolve" >> beam.ParDo(ResolveImage(self._fetch, self._rules))
        fetched = (
            local
            | "FetchRequests" >> beam.Filter(_is_fetch_request)
            | "KeyFetches" >> beam.Map(_key_fetch, self._fetch_keys).with_output_types(tuple[int, str])
            | "GroupFetches" >> beam.GroupByKey()
            | "Fetch" >> beam.ParDo(FetchImages(self._fetch_options, self._fetch_concurrency, self._rules))
        )
        out = (local, fetched) | "Resolved" >> beam.Flatten()
        prepared = out | "Prepared" >> beam.Filter(_is_prepared)
        shared, share_counts = run_stage(
            prepared
            | "ByGroup" >> beam.Map(_by_group).with_output_types(tuple[str, tuple[str, Any, Any]])
            | "GroupSamePicture" >> beam.GroupByKey(),
            "SharePicture",
            _share_group,
        )
        encoded = (
            shared
            | "ToEncode" >> beam.Filter(_has_crop)
            | "LabelCrops" >> beam.Map(_label_crop).with_output_types(tuple[str, Any])
            | "KeyCrops" >> beam.Map(_key_crop, self._n_keys).with_output_types(tuple[int, tuple[str, Any]])
            | "GroupCrops" >> beam.GroupByKey()
            | "VQGANEncode" >> beam.ParDo(EncodeBatches(self._handle, self._batch_size))
        )
        per_url = {
            "codes": encoded | "KeyGroupCodes" >> _key_by_image_url(),
            "member": shared | "Members" >> beam.Map(_label_member).with_output_types(tuple[str, str]),
        } | "JoinMembers" >> beam.CoGroupByKey()
        members = per_url | "CodesToMembers" >> beam.FlatMap(_outcomes_to_members)
        outcomes = (out | "Failed" >> beam.Filter(_is_failed), members) | "Outcomes" >> beam.Flatten()
        _, outcome_counts = run_stage(outcomes, "OutcomeCounts", _outcome_counts)
        doc_codes = {
            "ref": refs,
            "outcome": outcomes | "KeyOutcomes" >> _key_by_image_url(),
        } | "JoinCodes" >> beam.CoGroupByKey()
        per_doc = doc_codes | "CodesToDocs" >> beam.FlatMap(_codes_to_docs).with_output_types(DocImage)
        counts = (
            out | "ResolveCounts" >> beam.Filter(is_counts),
            share_counts,
            outcome_counts,
        ) | "ImageCounts" >> beam.Flatten()
        return per_doc, counts


def _rewrite(joined, max_images: int):
    _, grouped = joined
    codes = dict(grouped["images"])
    for doc in grouped["doc"]:
        yield from doc_steps.rewrite_images(doc, codes, True, max_images)


def _remove_images(doc: doc_steps.Doc):
    return doc_steps.rewrite_images(doc, {}, False)


class RewriteImages(beam.PTransform):
    """(docs, per-doc codes) -> codes written into each document's `<img src>`, failed images removed, and
    images past the first `max_images` (0 = no cap) removed -> (docs, counts)."""

    def __init__(self, max_images: int = 0):
        super().__init__()
        self._max_images = max_images

    def expand(self, inputs):
        docs, per_doc = inputs
        joined = {"doc": docs | "KeyDocs" >> _key_by_url(), "images": per_doc} | "JoinDocImages" >> (
            beam.CoGroupByKey()
        )
        return run_stage(joined, "Rewrite", _rewrite, self._max_images)


class RemoveImages(beam.PTransform):
    """Docs -> every `<img>` removed (a job without image encoding) -> (docs, counts)."""

    def expand(self, docs):
        return run_stage(docs, "Remove", _remove_images)


# ---------------------------------------------------------------- shards


def shard_counts(split_bytes: dict[str, int], target_mb: int, fixed: dict[str, int | None]) -> dict[str, int]:
    """Shards per split: the fixed count where the user gave one, else ceil(bytes / target) (at least 1).

    Sized on the rows' uncompressed bytes (as Hugging Face `datasets` sizes its shards), so the count is a
    function of the documents alone; zstd makes the files smaller (the manifest records each file's bytes).
    """
    counts = {}
    for split in shards.SPLITS:
        if fixed.get(split):
            counts[split] = fixed[split]
        else:
            counts[split] = max(1, math.ceil(split_bytes.get(split, 0) / (target_mb * MB)))
    return counts


def _split_row(doc: doc_steps.Doc, validation_fraction: float):
    return doc_steps.assign_split(doc.url, validation_fraction), doc_steps.doc_row(doc)


def _row_bytes(split_row):
    split, row = split_row
    return split, shards.row_size(row)


def _shard_key(split_row, split_bytes: dict, target_mb: int, fixed: dict):
    split, row = split_row
    n_shards = shard_counts(split_bytes, target_mb, fixed)[split]
    return (split, doc_steps.shard_index(row["url"], n_shards), n_shards), row


class WriteShard(beam.DoFn):
    """((split, index, n_shards), rows) -> the shard written streaming and atomically; yields its entry."""

    def __init__(self, output_dir: str):
        self._output_dir = output_dir

    def process(self, keyed):
        (split, index, n_shards), rows = keyed
        entry = shards.write_shard(self._output_dir, split, index, n_shards, rows)
        Metrics.counter(NAMESPACE, counters.WRITTEN + split).inc(entry["rows"])
        progress.add({progress.SHARDS: 1})
        LOG.info("wrote %s (%d documents)", entry["file"], entry["rows"])
        yield entry


class WriteShards(beam.PTransform):
    """Docs -> train/validation split by URL hash -> shards of about `target_mb` (or fixed counts) ->
    (shard entries, bytes per split). The split sizes are summed first (a combiner) and reach the keying
    step as a side input, so the shard count follows from the data, deterministically."""

    def __init__(self, output_dir: str, validation_fraction: float, target_mb: int, fixed: dict):
        super().__init__()
        self._output_dir = output_dir
        self._validation_fraction = validation_fraction
        self._target_mb = target_mb
        self._fixed = fixed

    def expand(self, docs):
        rows = docs | "SplitRows" >> beam.Map(_split_row, self._validation_fraction).with_output_types(
            tuple[str, dict]
        )
        split_bytes = (
            rows
            | "RowBytes" >> beam.Map(_row_bytes).with_output_types(tuple[str, int])
            | "SplitBytes" >> beam.CombinePerKey(sum).with_output_types(tuple[str, int])
        )
        entries = (
            rows
            | "ShardKey"
            >> beam.Map(
                _shard_key, beam.pvalue.AsDict(split_bytes), self._target_mb, self._fixed
            ).with_output_types(tuple[tuple[str, int, int], dict])
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShard(self._output_dir))
        )
        return entries, split_bytes
