"""Fixtures for c4_filters tests: real English prose that passes every C4 rule on its own."""

import pytest

PROSE = (
    "The river flows slowly through the old town in the early morning.",
    "Many visitors come here every summer to walk along the quiet banks.",
    "Local families have lived in these stone houses for several generations.",
)


@pytest.fixture
def prose() -> tuple[str, ...]:
    """Three lines, one sentence each: exactly the minimum a page needs."""
    return PROSE


@pytest.fixture
def prose_html():
    """Builds a minimal-HTML page: the three prose lines as <p> plus `extra` body markup after them."""

    def build(extra: str = "", title: str = "Walking by the river", head_extra: str = "") -> str:
        paragraphs = "".join(f"<p>{line}</p>" for line in PROSE)
        return (
            f'<html lang="en"><head><title>{title}</title>{head_extra}</head>'
            f"<body><div>{paragraphs}{extra}</div></body></html>"
        )

    return build
