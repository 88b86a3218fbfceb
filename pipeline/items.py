"""What the job's plain functions yield: pages and image records read from the input, and `Count` events.

Readers, doc_steps and images yield these; `pipeline.beam_steps` routes them (results on, counts summed
for the funnel). Plain frozen dataclasses, Beam-free, so every module can import them without a reader.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One HTML document as read from the input, before minimisation."""

    url: str
    source: str  # "warc" | "wikipedia" | "html"
    body: bytes
    charset: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """Image bytes found in the input itself (WARC response/resource record), keyed by its URL."""

    url: str
    data: bytes


@dataclass(frozen=True)
class Count:
    """A counted event (a rule or outcome) with its amount; summed over the whole job for the funnel."""

    name: str
    n: int = 1


Item = Page | ImageRecord | Count
