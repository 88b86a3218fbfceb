"""Image stage: one unique image URL -> bytes (input record, else fetch) -> 256x256 array -> VQGAN codes.

Plain functions plus the RunInference ModelHandler; `pipeline.graph` wires them. The per-URL outcome is
data (`ImageOutcome`), so the funnel is right even on runners that do not report Beam metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler

from pipeline.readers import Count

NOT_IN_INPUT = "not_in_input"  # fetching disabled and no WARC record for the URL


@dataclass(frozen=True)
class ImageOutcome:
    """Final state of one unique image URL: codes (256 ints as the src string) or the reason it failed."""

    url: str
    codes: str | None
    outcome: str


def choose_record(records: Iterable[bytes]) -> bytes | None:
    """Deterministic pick among several WARC records of the same URL: the smallest sha256."""
    records = list(records)
    if not records:
        return None
    return min(records, key=lambda data: (hashlib.sha256(data).digest(), len(data)))


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


def prepare_image(url: str, data: bytes) -> tuple[np.ndarray | None, str]:
    """Decode + preprocess (crop seeded by the URL); (None, reason) for undecodable images."""
    from image_tokenizer import ImageDecodeError, decode_image, preprocess

    try:
        image = decode_image(data)
    except ImageDecodeError as error:
        return None, str(error.reason)
    except Exception:  # untrusted bytes: any decoder failure is a counted outcome
        return None, "decode_error"
    try:
        return preprocess(image, seed_key=url), "ok"
    except Exception:
        return None, "preprocess_error"


def failure_counts(outcome: ImageOutcome) -> Iterator[Count]:
    if outcome.codes is None:
        yield Count(f"images.failed.{outcome.outcome}")
    else:
        yield Count("images.encoded")


def batches(
    items: Sequence[tuple[str, np.ndarray]], batch_size: int
) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Fixed-size batches in URL order, so a batch's composition never depends on arrival order."""
    ordered = sorted(items, key=lambda item: item[0])
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


class VQGANModelHandler(ModelHandler[tuple[str, np.ndarray], tuple[str, str], Any]):
    """RunInference handler around image_tokenizer.load_vqgan: (url, array) records -> (url, code string).

    Used with `with_no_batching()`: the graph builds deterministic batches itself, because Beam's
    BatchElements flushes its last batch in finish_bundle, which the Dask runner drops.
    """

    def __init__(self, checkpoint: str | None = None, config: str | None = None, device: str = "cpu"):
        super().__init__()
        self._checkpoint = checkpoint
        self._config = config
        self._device = device

    def load_model(self):
        from image_tokenizer import load_vqgan

        # one model per worker process; the runner's workers give the parallelism
        return load_vqgan(self._checkpoint, self._config, device=self._device, num_threads=1)

    def run_inference(self, batch, model, inference_args=None) -> Iterable[tuple[str, str]]:
        from image_tokenizer import codes_to_src

        if not batch:
            return []
        urls = [url for url, _ in batch]
        codes = model.encode(np.stack([array for _, array in batch]))
        return [(url, codes_to_src(row.tolist())) for url, row in zip(urls, codes, strict=True)]

    def get_num_bytes(self, batch) -> int:
        return sum(int(array.nbytes) for _, array in batch)

    def get_metrics_namespace(self) -> str:
        return "cm3_vqgan"


def describe_vqgan(checkpoint: str | None, config: str | None) -> dict:
    """The manifest's image_codes entry: n_embed, codes per image and the checkpoint's identity."""
    from image_tokenizer import DEFAULT_CHECKPOINT, load_vqgan

    path = checkpoint or DEFAULT_CHECKPOINT
    digest = hashlib.sha256()
    with FileSystems.open(path) as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    model = load_vqgan(checkpoint, config)
    name = path if checkpoint else "bundled:" + path.rsplit("/", 1)[-1]
    return {
        "n_embed": int(model.n_embed),
        "codes_per_image": 256,
        "vqgan": {"checkpoint": name, "sha256": digest.hexdigest()},
    }
