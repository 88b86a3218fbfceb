"""Fixtures shared by every package's tests."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A shared 2-core machine makes per-example timing meaningless: no deadlines anywhere. Under CI
# (CI=true) hypothesis loads its own "ci" profile: derandomized, no deadline, no example database.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
if not os.environ.get("CI"):
    settings.load_profile("dev")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout: real WARC files, labelled pages, the LDNOOBW list."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: CI and developers have ../shared beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def tests_data() -> Path:
    return REPO / "tests" / "data"


def _write_document_shards(
    directory: Path,
    rows_by_split: dict[str, list[dict]],
    *,
    n_embed: int,
    n_shards: int = 1,
    vqgan: dict | None = None,
) -> Path:
    """Document shards + manifest.json written by the pipeline's own writer, so every reader (tokenizer,
    viewer) is tested on the real format. Rows need `url`, `html` and `lang_score`; the rest is derived."""
    from pipeline.doc_steps import doc_id
    from pipeline.shards import FORMAT, SPLITS, finish_shards, write_manifest, write_shard

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for split, rows in rows_by_split.items():
        full = [
            {
                "id": doc_id(row["url"]),
                "url": row["url"],
                "source": row.get("source", "html"),
                "html": row["html"],
                "n_images": row["html"].count("<img"),
                "n_chars": len(row["html"]),
                "lang_score": row["lang_score"],
                "language": row.get("language", "en"),
                "image_urls": row.get("image_urls", []),
            }
            for row in rows
        ]
        full.sort(key=lambda row: row["id"])
        written += [
            write_shard(str(directory), split, i, n_shards, full[i::n_shards]) for i in range(n_shards)
        ]
    manifest = {
        "format": FORMAT,
        "splits": finish_shards(str(directory), written, {split: n_shards for split in SPLITS}),
        "image_codes": {
            "n_embed": n_embed,
            "codes_per_image": 256,
            "vqgan": vqgan or {"checkpoint": "test", "sha256": ""},
        },
        "options": {},
        "metrics": {},
        "code_version": "test",
    }
    write_manifest(str(directory), manifest)
    return directory


@pytest.fixture(scope="session")
def write_document_shards():
    """write_document_shards(directory, {split: [row]}, n_embed=..., n_shards=1, vqgan=None) -> directory
    (a fixture because test modules cannot import conftest in importlib mode)."""
    return _write_document_shards


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by selenium (Debian's chromium + chromium-driver, which `make test` installs
    when missing); skipped, saying why, only where none could be installed."""
    from pipeline.screenshot import NoBrowser, chromium_driver

    try:
        driver = chromium_driver()
    except NoBrowser as err:
        pytest.skip(f"no headless Chromium: {err}")
    yield driver
    driver.quit()
