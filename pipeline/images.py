"""Image stage: one unique image URL -> bytes (input record, else fetch) -> 256x256 uint8 crop -> VQGAN codes.

Plain functions; `pipeline.beam_steps` wires them. The per-URL outcome is data (`ImageOutcome`), so the funnel
is right even on runners that do not report Beam metrics. Nothing here imports torch at module level: a
worker that never encodes never loads it.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import counters
from pipeline.hygiene import (
    FILTER_REASONS,
    NEAR_DUPLICATE,
    Hygiene,
    image_shape_reason,
    perceptual_hash,
    thumbnail,
)
from pipeline.items import Count

NOT_IN_INPUT = "not_in_input"  # fetching disabled and no WARC record for the URL
# prepare_image's rules: none of the corpus-level hygiene (the image tokenizer's own limits still apply)
NO_HYGIENE = Hygiene(min_image_side=0, max_image_aspect_ratio=0, image_dedup=False)

LOG = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Default VQGAN batch sizes. CPU: batch 1, since bench/image_tokenizer.py (bundled model, 1 thread) measured
# batch 8 at 0.75x and batch 32 at 0.69x the images/s of batch 1. CUDA: batches are what keep a GPU busy.
CPU_BATCH_SIZE = 1
CUDA_BATCH_SIZE = 32


COPY_CHUNK_BYTES = 8 << 20
_local_copies: dict[str, str] = {}  # remote path -> its complete local copy, for this process
_local_copies_lock = threading.Lock()
_local_copies_dir: str | None = None


def local_copy(path: str, what: str) -> str:
    """A local path holding the bytes of `path`: a local path as it is; a path on another Beam filesystem
    (gs://, s3:// ...) copied once per process into a temporary directory (removed at exit).

    The copy is streamed to a temporary name and renamed when complete, under a lock: threads of one worker
    wait for the one copy, and a copy that failed half-way (a retried bundle) leaves nothing to read.
    FileNotFoundError naming `path` (and `what` it is) if it does not exist.
    """
    if FileSystems.get_scheme(path) is None:
        return path
    global _local_copies_dir
    with _local_copies_lock:
        copied = _local_copies.get(path)
        if copied is not None and os.path.isfile(copied):
            return copied
        if not FileSystems.exists(path):
            raise FileNotFoundError(f"{what} not found: {path}")
        if _local_copies_dir is None:
            _local_copies_dir = tempfile.mkdtemp(prefix="cm3-remote-")
            atexit.register(shutil.rmtree, _local_copies_dir, ignore_errors=True)
        # one directory per remote path: two paths with the same file name never share a copy
        directory = os.path.join(_local_copies_dir, hashlib.sha256(path.encode()).hexdigest()[:16])
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, posixpath.basename(path) or "file")
        partial = tempfile.NamedTemporaryFile(dir=directory, prefix=".partial-", delete=False)
        try:
            with partial, FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source:
                shutil.copyfileobj(source, partial, COPY_CHUNK_BYTES)
            os.replace(partial.name, target)
        except BaseException:
            os.unlink(partial.name)
            raise
        LOG.info("copied %s to %s", path, target)
        _local_copies[path] = target
        return target


def local_vqgan_files(checkpoint: str | None, config: str | None) -> tuple[str | None, str | None]:
    """(checkpoint, config) as local paths for image_tokenizer.load_vqgan, which reads only local files.

    Remote files are copied with `local_copy`; a remote checkpoint's config defaults, as load_vqgan's does,
    to the `.yaml` with the same stem beside it (on the same filesystem). None stays None (bundled model).
    """
    beside = None if checkpoint is None else posixpath.splitext(checkpoint)[0] + ".yaml"
    # a missing file is named first, before anything is read or copied (not as the yaml a missing .ckpt implies)
    for path, what in ((checkpoint, "VQGAN checkpoint"), (config or beside, "VQGAN config")):
        if path is not None and not FileSystems.exists(path):
            raise FileNotFoundError(f"{what} not found: {path}")
    if checkpoint is not None and config is None and FileSystems.get_scheme(checkpoint) is not None:
        config = beside
    # the small config first: a missing yaml fails before a large checkpoint is downloaded
    local_config = None if config is None else local_copy(config, "VQGAN config")
    return None if checkpoint is None else local_copy(checkpoint, "VQGAN checkpoint"), local_config


@dataclass(frozen=True)
class ImageOutcome:
    """Final state of one unique image URL: codes (256 ints as the src string) or the reason it failed."""

    url: str
    codes: str | None
    outcome: str


def choose_record(records: Iterable[bytes]) -> bytes | None:
    """Deterministic pick among several input records of the same URL: the smallest sha256 (streamed: one
    record held at a time, however often a URL was captured)."""
    best, best_key = None, None
    for data in records:
        key = (hashlib.sha256(data).digest(), len(data))
        if best_key is None or key < best_key:
            best, best_key = data, key
    return best


def image_bytes(url: str, records: Iterable[bytes], fetcher) -> tuple[bytes | None, str]:
    """(bytes, outcome): a record from the input wins; else the fetcher (None = fetching disabled)."""
    data = choose_record(records)
    if data is not None:
        return data, "from_input"
    if fetcher is None and not url.startswith("data:"):
        return None, NOT_IN_INPUT
    if fetcher is None:
        from image_tokenizer import FetchOptions, ImageFetcher

        fetcher = ImageFetcher(FetchOptions())
    result = fetcher.fetch(url)
    if not result.ok or result.data is None:
        return None, str(result.outcome)
    return result.data, "data_uri" if url.startswith("data:") else "fetched"


@dataclass(frozen=True)
class FetchRequest:
    """An image URL with no record in the input, left for the grouped fetch step."""

    url: str


@dataclass(frozen=True)
class Fetched:
    """One fetch and what became of it: the crop (with its group key and thumbnail), or why there is none.

    `fetch_outcome` is the fetcher's ("ok", "timeout" ...); `outcome` is the decoder's when the fetch was ok.
    """

    url: str
    fetch_outcome: str
    outcome: str
    crop: np.ndarray | None = None
    key: str | None = None
    thumbnail: np.ndarray | None = None


def fetch_and_prepare(
    url: str, fetcher, rules: Hygiene, decode_slots: threading.Semaphore | None = None
) -> Fetched:
    """Fetch, decode and crop one image. Runs in a fetch thread, so the bytes are dropped as soon as the crop
    exists. At most `decode_slots` threads decode at once: the others wait holding only the compressed bytes,
    not a decoded picture (a 2800x2100 photo is 18 MB of pixels), so memory stays near window x bytes."""
    result = fetcher.fetch(url)
    if not result.ok or result.data is None:
        return Fetched(url, str(result.outcome), str(result.outcome))
    with decode_slots or contextlib.nullcontext():
        crop, outcome, key, thumb = prepare(url, result.data, rules)
    return Fetched(url, "ok", outcome, crop, key, thumb)


# glibc mallopt parameters: a fixed mmap threshold (glibc otherwise raises it to the largest block freed, up to
# 32 MB, after which decoded pictures land in the heap arenas and fragment them), and few arenas (glibc gives
# up to 8 per core to a process with many threads). Measured with bench/fetch.py's fetch path, window 64, peak
# RSS at 64 -> 1,024 URLs: glibc's defaults 693 -> 1,100 MiB; 2 arenas alone 408 -> 542 MiB; these settings
# (with Pillow's block cache, which saves re-mapping a picture's memory each time) 357 -> 443 MiB.
M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES = -3, 256 << 10
M_ARENA_MAX, ARENAS = -8, 2
PILLOW_BLOCKS_KEPT = (
    16  # Pillow's freed 16 MB image blocks kept for the next picture: mapped once, not per image
)


def limit_malloc_growth() -> bool:
    """Keep a many-threaded image worker's memory from creeping with the number of images (glibc only;
    process-wide, called before the fetch threads start). True when applied."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    if mallopt is None:
        return False
    from PIL import Image

    Image.core.set_blocks_max(PILLOW_BLOCKS_KEPT)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENAS))


def decode_slots() -> threading.Semaphore:
    """One decode at a time per core this process may use (decoding is CPU work, fetching is waiting)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return threading.Semaphore(max(1, cores or 1))


def completed(fn: Callable, items: Iterable, executor: Executor, window: int) -> Iterator:
    """fn(item) for each item, yielded in completion order, with at most `window` results submitted and not
    yet yielded: items are pulled only as slots free, so memory is bounded by the window, never by how many
    items there are. (Order of results is the caller's concern: the job groups them by key afterwards.)"""
    pending: set[Future] = set()
    for item in items:
        pending.add(executor.submit(fn, item))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()


class FetchProgress:
    """Fetch outcomes of this process, for a progress line at most every `interval` seconds."""

    def __init__(self, interval: float = 15.0):
        self.interval = interval
        self._lock = threading.Lock()
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._started = time.monotonic()
        self._last_line = self._started
        self._last_total = 0

    def record(self, fetch_outcome: str) -> str | None:
        """Count one fetch; returns a progress line when one is due."""
        with self._lock:
            self._outcomes[fetch_outcome] += 1
            now = time.monotonic()
            if now - self._last_line < self.interval:
                return None
            total = sum(self._outcomes.values())
            rate = (total - self._last_total) / (now - self._last_line)
            self._last_line, self._last_total = now, total
            return progress_line(self._outcomes, rate)


def progress_line(outcomes: dict[str, int], rate: float) -> str:
    """ "images: 1234 fetched (56.7/s), 81% ok; failures: timeout 120, bad_status 80, connection_error 30"."""
    total = sum(outcomes.values())
    failures = sorted(((n, o) for o, n in outcomes.items() if o != "ok"), reverse=True)[:3]
    line = f"images: {total} fetched ({rate:.1f}/s), {outcomes.get('ok', 0) / max(total, 1):.0%} ok"
    if failures:
        line += "; failures: " + ", ".join(f"{o} {n}" for n, o in failures)
    return line


# A worker's fetch groups: one per this much input, at least MIN_FETCH_KEYS. Few and large, because each group
# ends by waiting for its slowest fetch (the window drains); the number changes no output.
INPUT_BYTES_PER_FETCH_KEY = 256 << 20
MIN_FETCH_KEYS = 4


def fetch_keys(input_bytes: int) -> int:
    """How many groups the job's image fetches are spread over, from the size of its input."""
    return max(MIN_FETCH_KEYS, -(-input_bytes // INPUT_BYTES_PER_FETCH_KEY))


def prepare_image(url: str, data: bytes) -> tuple[np.ndarray | None, str]:
    """Decode + the 256x256 uint8 crop seeded by the URL; (None, reason) for undecodable images."""
    crop, outcome, _, _ = prepare(url, data, NO_HYGIENE)
    return crop, outcome


def prepare(url: str, data: bytes, rules: Hygiene) -> tuple[np.ndarray | None, str, str, np.ndarray | None]:
    """(crop, outcome, group key, thumbnail): the header's size, mode and shape checked (the tokenizer's
    limits, then the size and shape rules: an image they remove is never decoded), the picture decoded only
    as large as the crop needs, then the 256x256 uint8 crop seeded by the URL. With `rules.image_dedup` the
    group key is the perceptual hash of the picture the crop is cut from (URLs serving the same picture share
    one encoding) and the thumbnail is what `share_codes` compares before they do; else the key is the URL
    and there is no thumbnail."""
    from image_tokenizer import ImageDecodeError, crop, decode_for_crop, resized_for_crop

    try:
        image, full_size = decode_for_crop(
            data, accept=lambda width, height: image_shape_reason(width, height, rules)
        )
    except ImageDecodeError as error:
        return None, str(error.reason), url, None
    except Exception:  # untrusted bytes: any decoder failure is a counted outcome
        return None, "decode_error", url, None
    try:
        resized = resized_for_crop(image, full_size)
        if rules.image_dedup:
            key, thumb = "phash:" + perceptual_hash(resized), thumbnail(resized)
        else:
            key, thumb = url, None
        return crop(resized, seed_key=url), "ok", key, thumb
    except ImageDecodeError as error:
        return None, str(error.reason), url, None
    except Exception:
        return None, "preprocess_error", url, None


def check_device(device: str) -> str:
    """`device` if it names a VQGAN device the job accepts (auto, cpu, cuda, cuda:N), else ValueError.
    Only the spelling is checked here: the launcher may have no GPU where workers do; workers resolve it."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise ValueError(f"VQGAN device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


def default_batch_size(device: str) -> int:
    """VQGAN batch size when none is given: 32 for an explicit cuda device, else 1.

    The graph fixes batches when it is built, on the launcher, which cannot know what "auto" resolves to on
    the workers; so "auto" counts as CPU, and GPU jobs pass --vqgan-device cuda.
    """
    return CUDA_BATCH_SIZE if check_device(device).startswith("cuda") else CPU_BATCH_SIZE


def failure_counts(outcome: ImageOutcome) -> Iterator[Count]:
    """One count per unique image URL: encoded, sharing another URL's codes, removed by a hygiene rule
    (images.filtered.<reason>) or failed (images.failed.<reason>)."""
    if outcome.codes is None:
        kind = counters.IMAGES_FILTERED if outcome.outcome in FILTER_REASONS else counters.IMAGES_FAILED
        yield Count(kind + outcome.outcome)
    elif outcome.outcome == NEAR_DUPLICATE:
        yield Count(counters.IMAGES_NEAR_DUPLICATE_URLS)
    else:
        yield Count(counters.IMAGES_ENCODED)


def padded_batches(
    items: Iterable[tuple[str, np.ndarray]], batch_size: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    """(urls, uint8 batch of exactly `batch_size` crops) as `items` stream in; the last batch is zero-padded.

    Every batch has the same shape, so an image's codes do not depend on which images share its batch or on
    its position there (float32 rounding depends on the batch shape only: tests/pipeline/test_vqgan_device.py), and the
    order in which a runner hands over grouped values cannot change a code. At most one batch is held.
    """
    urls: list[str] = []
    batch: np.ndarray | None = None
    for url, crop in items:
        if batch is None:
            batch = np.zeros((batch_size, *crop.shape), dtype=np.uint8)
        batch[len(urls)] = crop
        urls.append(url)
        if len(urls) == batch_size:
            yield urls, batch
            urls, batch = [], None
    if urls:
        yield urls, batch


def encode_images(
    items: Iterable[tuple[str, np.ndarray]], model, batch_size: int
) -> Iterator[tuple[str, str]]:
    """(url, uint8 crop) stream -> (url, the <img src> string of its codes), in fixed-shape padded batches."""
    from image_tokenizer import codes_to_src, to_pixels

    for urls, batch in padded_batches(items, batch_size):
        codes = model.encode(to_pixels(batch))
        for url, row in zip(urls, codes, strict=False):  # padding rows are dropped
            yield url, codes_to_src(row.tolist())


# One group of images to encode per this much input (a Common Crawl WARC file of 1 GB gives a few thousand
# images per group: a GPU batch's padding is then noise), and never fewer groups than MIN_IMAGE_KEYS, so small
# jobs still encode on every worker. The number of groups changes no code (see padded_batches).
INPUT_BYTES_PER_IMAGE_KEY = 256 << 20
MIN_IMAGE_KEYS = 64


def image_keys(input_bytes: int) -> int:
    """How many groups the job's crops are spread over for encoding, from the size of its input."""
    return max(MIN_IMAGE_KEYS, -(-input_bytes // INPUT_BYTES_PER_IMAGE_KEY))


_models: dict = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class VQGANHandle:
    """What a worker needs to load the job's VQGAN (picklable); `model()` loads it once per process and
    hands the same model to every thread of that process."""

    checkpoint: str | None = None
    config: str | None = None
    device: str = "auto"
    expected_sha256: str | None = None

    def __post_init__(self):
        check_device(self.device)

    def model(self):
        with _models_lock:
            if self not in _models:
                _models[self] = load_job_vqgan(
                    self.checkpoint, self.config, self.device, self.expected_sha256
                )
            return _models[self]


def load_job_vqgan(checkpoint: str | None, config: str | None, device: str, expected_sha256: str | None):
    """The job's VQGAN on this worker: device resolved here ("auto" = the GPU this worker has, if any),
    remote files copied once per process, the checkpoint's sha256 checked against the manifest's."""
    from image_tokenizer import DEFAULT_CHECKPOINT, load_vqgan, resolve_device

    resolved = resolve_device(device)
    LOG.info("loading the VQGAN on %s (asked: %s)", resolved, device)
    local_checkpoint, local_config = local_vqgan_files(checkpoint, config)
    if expected_sha256 is not None:
        # the launcher recorded this checkpoint in the manifest; a file replaced since (a bucket object
        # overwritten mid-job, another image) would silently give other codes
        found = file_sha256(local_checkpoint or DEFAULT_CHECKPOINT)
        if found != expected_sha256:
            raise ValueError(
                f"VQGAN checkpoint {checkpoint or 'bundled'} changed since the job was launched: "
                f"sha256 {found}, the manifest records {expected_sha256}"
            )
    if resolved.startswith("cuda"):
        import torch

        # fixed kernels for a fixed batch shape: codes must not depend on cuDNN's autotuning
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    # one model per worker process and one intra-op thread: the runner's workers give the parallelism
    return load_vqgan(local_checkpoint, local_config, device=resolved, num_threads=1)


def describe_vqgan(checkpoint: str | None, config: str | None, load: bool = True) -> dict:
    """The manifest's image_codes entry: n_embed, codes per image and the checkpoint's identity.

    Run on the launcher, so a missing or unreadable checkpoint fails the job before it starts; the sha256
    is that of the bytes loaded (the local copy of a remote checkpoint). `load=False` (a job without images)
    reads n_embed from the yaml and never imports torch.
    """
    from image_tokenizer.config import DEFAULT_CHECKPOINT, vqgan_params

    local_checkpoint, local_config = local_vqgan_files(checkpoint, config)
    path = local_checkpoint or DEFAULT_CHECKPOINT
    if load:
        from image_tokenizer import load_vqgan

        n_embed = load_vqgan(local_checkpoint, local_config).n_embed
    else:
        n_embed = vqgan_params(local_checkpoint, local_config)["n_embed"]
    name = checkpoint if checkpoint else "bundled:" + path.rsplit("/", 1)[-1]
    return {
        "n_embed": int(n_embed),
        "codes_per_image": 256,
        "vqgan": {"checkpoint": name, "sha256": file_sha256(path)},
    }


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
