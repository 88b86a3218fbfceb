"""C4Stats: what every rule removed, so a job can end with a funnel report."""

from __future__ import annotations

from collections import Counter


class C4Stats:
    """Counts per rule name ("line:too_few_words", "page:bad_words", "page:kept", ...).

    Not thread-safe by design: give each worker its own instance and merge them with `add`.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self._counts: Counter[str] = Counter(counts or {})

    def inc(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def add(self, other: C4Stats) -> C4Stats:
        """Adds `other`'s counts into this object (and returns it, for chaining)."""
        self._counts.update(other._counts)
        return self

    def __getitem__(self, name: str) -> int:
        return self._counts.get(name, 0)

    def as_dict(self) -> dict[str, int]:
        """Counts sorted by name (stable for manifests and logs)."""
        return {name: self._counts[name] for name in sorted(self._counts) if self._counts[name]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, C4Stats) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"C4Stats({self.as_dict()!r})"
