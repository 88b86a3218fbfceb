"""Result types of `minimize`."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRef:
    """One kept `<img>`: `src` is exactly its value in the minimal HTML (absolute http(s) URL or data: URI)."""

    src: str
    alt: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class MinimalPage:
    """Minimal HTML of one page plus what callers need without re-parsing it."""

    html: str
    images: tuple[ImageRef, ...]
    title: str | None
    lang: str | None
    # elements each rule removed (rule name -> count), sorted by name: the funnel report counts them
    removed: tuple[tuple[str, int], ...] = ()
