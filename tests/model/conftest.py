"""Small document shards in the pipeline's format (CONTRACTS.md "Document shards"), built with pyarrow."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

N_EMBED = 64
WORDS = (
    "the cat sat on a mat and looked at the sky while birds sang songs about rivers mountains "
    "bread coffee morning light city streets old books quiet rooms warm rain"
).split()


def make_html(rng: random.Random, n_embed: int = N_EMBED) -> str:
    paragraphs = []
    for _ in range(rng.randint(1, 4)):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))
        paragraphs.append(f"<p>{sentence.capitalize()}.</p>")
    for _ in range(rng.randint(0, 2)):
        codes = " ".join(str(rng.randrange(n_embed)) for _ in range(256))
        alt = " ".join(rng.choice(WORDS) for _ in range(3))
        paragraphs.insert(rng.randint(0, len(paragraphs)), f'<img alt="{alt}" src="{codes}">')
    title = " ".join(rng.choice(WORDS) for _ in range(3))
    return f'<html lang="en"><head><title>{title}</title></head><body>{"".join(paragraphs)}</body></html>'


def write_doc_shards(
    directory: Path, rows: dict[str, int], n_shards: int = 2, n_embed: int = N_EMBED
) -> Path:
    """Writes `{split}-{i:05d}-of-{n:05d}.parquet` + manifest.json exactly as the contract describes."""
    directory.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n_rows in rows.items():
        rng = random.Random(f"{split}-{n_rows}")
        docs = []
        for i in range(n_rows):
            url = f"https://example.org/{split}/{i}"
            html = make_html(rng, n_embed)
            docs.append(
                {
                    "id": hashlib.blake2b(url.encode(), digest_size=8).hexdigest(),
                    "url": url,
                    "source": "html",
                    "html": html,
                    "n_images": html.count("<img"),
                    "n_chars": len(html),
                    "lang_score": 0.99,
                }
            )
        docs.sort(key=lambda d: d["id"])
        shards = []
        for i in range(n_shards):
            part = docs[i::n_shards]
            part.sort(key=lambda d: d["id"])
            table = pa.table(
                {
                    "id": pa.array([d["id"] for d in part], pa.string()),
                    "url": pa.array([d["url"] for d in part], pa.string()),
                    "source": pa.array([d["source"] for d in part], pa.string()),
                    "html": pa.array([d["html"] for d in part], pa.string()),
                    "n_images": pa.array([d["n_images"] for d in part], pa.int32()),
                    "n_chars": pa.array([d["n_chars"] for d in part], pa.int32()),
                    "lang_score": pa.array([d["lang_score"] for d in part], pa.float32()),
                }
            )
            name = f"{split}-{i:05d}-of-{n_shards:05d}.parquet"
            pq.write_table(table, directory / name, compression="zstd")
            sha = hashlib.sha256((directory / name).read_bytes()).hexdigest()
            shards.append({"file": name, "rows": len(part), "sha256": sha})
        splits[split] = {"shards": shards, "rows": n_rows}
    manifest = {
        "format": "cm3-docs/1",
        "splits": splits,
        "image_codes": {
            "n_embed": n_embed,
            "codes_per_image": 256,
            "vqgan": {"checkpoint": "test", "sha256": ""},
        },
        "options": {},
        "metrics": {},
        "code_version": "test",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


@pytest.fixture(scope="session")
def doc_shards(tmp_path_factory) -> Path:
    return write_doc_shards(tmp_path_factory.mktemp("docs"), {"train": 120, "validation": 16})


@pytest.fixture(scope="session")
def tokenizer_dir(doc_shards, tmp_path_factory) -> Path:
    from model.shards import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(doc_shards, vocab_size=320, out_dir=out)
    return out


@pytest.fixture(scope="session")
def token_shards(doc_shards, tokenizer_dir, tmp_path_factory) -> Path:
    from model.shards import tokenize_shards

    out = tmp_path_factory.mktemp("tokens")
    tokenize_shards(doc_shards, tokenizer_dir, out, workers=1)
    return out


@pytest.fixture(scope="session")
def html_factory():
    """make_html(rng) -> a random fixture document (importlib mode: tests cannot import conftest)."""
    return make_html


@pytest.fixture(scope="session")
def shard_writer():
    """write_doc_shards(directory, {split: rows}, n_shards) -> directory."""
    return write_doc_shards
