"""Small document shards of random fixture documents, written by the pipeline's own shard writer."""

from __future__ import annotations

import json
import random
from pathlib import Path

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


def doc_rows(split: str, n_rows: int, n_embed: int = N_EMBED) -> list[dict]:
    rng = random.Random(f"{split}-{n_rows}")
    return [
        {"url": f"https://example.org/{split}/{i}", "html": make_html(rng, n_embed), "lang_score": 0.99}
        for i in range(n_rows)
    ]


@pytest.fixture(scope="session")
def shard_writer(write_document_shards):
    """shard_writer(directory, {split: n_rows}, n_shards) -> directory of random fixture documents."""

    def write(directory: Path, rows: dict[str, int], n_shards: int = 2, n_embed: int = N_EMBED) -> Path:
        docs = {split: doc_rows(split, n, n_embed) for split, n in rows.items()}
        return write_document_shards(directory, docs, n_embed=n_embed, n_shards=n_shards)

    return write


@pytest.fixture(scope="session")
def doc_shards(tmp_path_factory, shard_writer) -> Path:
    return shard_writer(tmp_path_factory.mktemp("docs"), {"train": 120, "validation": 16})


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


def logged_losses(run: Path) -> dict[int, float]:
    """Last logged loss per step of a run's log.jsonl (a resumed run re-logs the steps after its checkpoint)."""
    out = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            out[record["step"]] = record["loss"]
    return out


@pytest.fixture(scope="session")
def losses_of():
    """logged_losses(run) -> {step: loss} (importlib mode: tests cannot import conftest)."""
    return logged_losses


def whole_images(tok, doc, bounds) -> tuple[int, int]:
    """(images in the document, images some window holds whole: `<img`, its attributes, `src="` and the 256
    codes), read from the decoded text, independently of how the windows were cut."""
    import re

    image = re.compile(r'<img[^<>]*src="(?:\d+ ){255}\d+(?!\d)')
    windows = [tok.decode(doc[a:z].tolist()) for a, z in bounds]
    return len(image.findall(tok.decode(doc.tolist()))), sum(len(image.findall(w)) for w in windows)


@pytest.fixture(scope="session")
def images_in_windows():
    """whole_images(tok, doc, bounds) -> (images, images held whole by one window)."""
    return whole_images


@pytest.fixture
def one_torch_thread():
    """Tiny models on the shared 2-core CI machine: extra intra-op threads only contend (and spin-wait)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
