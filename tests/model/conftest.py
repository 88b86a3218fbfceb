"""Small document shards of random fixture documents, written by the pipeline's own shard writer; the tiny
generation model (trained once per session) and the helpers its tests share."""

from __future__ import annotations

import json
import random
import re
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


# ---- the tiny generation model, shared by the generation tests


CAPTIONS = ["a red square", "a blue circle", "a green field", "a grey cat"]


SENTENCES = [
    "The cat sat on the mat.",
    "Paris is the capital of France.",
    "Birds sing songs about rivers.",
    "Coffee in the morning light.",
]


IMG_SRC = re.compile(r'<img\b[^<>]*?src="([^"]*)"')


def _caption_codes(caption: str, n_embed: int) -> list[int]:
    """A smooth, caption-specific code pattern, so a few training steps can pick it up."""
    rng = random.Random(caption)
    base = [rng.randrange(n_embed) for _ in range(4)]
    return [base[(i // 16) // 4] for i in range(256)]


def _training_docs(n_embed: int) -> list[str]:
    docs = []
    for i in range(24):
        caption = CAPTIONS[i % len(CAPTIONS)]
        src = " ".join(map(str, _caption_codes(caption, n_embed)))
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
        docs.append(
            f'<html><body><p>{text}</p><img alt="{caption}" src="{src}"><p>{SENTENCES[1]}</p></body></html>'
        )
    return docs


@pytest.fixture(scope="session")
def vq():
    from image_tokenizer import load_vqgan

    return load_vqgan()


@pytest.fixture(scope="session")
def checkpoint(vq, tmp_path_factory):
    """A tiny CM3 model trained for 40 steps with the CM3 objective, saved by the checkpoint writer."""
    import numpy as np
    import torch

    from model import CM3Config, CM3Tokenizer, CM3Transformer
    from model.checkpoint import write_model_files
    from model.objectives import SpecialIds, apply_objective

    torch.set_num_threads(1)
    docs = _training_docs(vq.n_embed)
    tok = CM3Tokenizer.train(docs, vocab_size=300, n_embed=vq.n_embed)
    cfg = CM3Config(
        vocab_size=tok.vocab_size,
        d_model=64,
        n_layers=2,
        n_heads=4,
        d_ffn=256,
        max_seq_len=768,
        pad_id=tok.pad_id,
    )
    torch.manual_seed(0)
    model = CM3Transformer(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    encoded = [np.asarray(ids, dtype=np.int64) for ids in tok.encode_batch(docs)]
    for step in range(40):
        batch = []
        for j in range(4):
            k = (4 * step + j) % len(encoded)
            batch += apply_objective(
                "cm3",
                encoded[k],
                window_len=700,
                seed=0,
                epoch=step,
                doc_key=k,
                ids=SpecialIds(tok.pad_id, tok.eos_id, tok.mask_offset, tok.n_masks, tok.vocab_size),
            )
        width = max(len(s) for s in batch)
        tokens = torch.full((len(batch), width), tok.pad_id)
        for row, seq in enumerate(batch):
            tokens[row, : len(seq)] = torch.from_numpy(seq)
        targets = tokens[:, 1:].clone()
        targets[
            (targets == tok.pad_id) | ((targets >= tok.mask_id(0)) & (targets < tok.image_code_offset))
        ] = -100
        loss = torch.nn.functional.cross_entropy(
            model(tokens[:, :-1]).flatten(0, 1), targets.flatten(), ignore_index=-100
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = tmp_path_factory.mktemp("ckpt")
    write_model_files(out, model.state_dict(), cfg, tok)
    return out


@pytest.fixture(scope="session")
def loaded(checkpoint):
    """(model, tokenizer, CodeConstraint) of the tiny trained checkpoint."""
    from model import load_checkpoint
    from model.generate import CodeConstraint

    model, tok, _ = load_checkpoint(checkpoint)
    return model, tok, CodeConstraint(tok)


def _request_for(mode: str, n_embed: int) -> dict:
    codes = _caption_codes(CAPTIONS[0], n_embed)
    return {
        "unconditional_image": {"mode": mode},
        "conditional_image": {"mode": mode, "text": "a blue circle"},
        "text_infill": {
            "mode": mode,
            "html": "<p>The cat <mask:0> the mat.</p><p>Paris is the capital of France.</p>",
        },
        "image_infill": {"mode": mode, "codes": codes, "span": [64, 128], "text": CAPTIONS[0]},
        "masked_caption": {"mode": mode, "codes": codes},
        "causal_caption": {"mode": mode, "codes": " ".join(map(str, codes))},
        "score": {
            "mode": mode,
            "prompt": "<p>Paris is the capital of",
            "candidates": [" France.", " Spain."],
        },
        "entity": {
            "mode": mode,
            "html": '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>',
            "candidates": ["Paris", "Paris Hilton"],
        },
        "caption": {"mode": mode, "codes": codes},
        "continue": {"mode": mode, "html": "<img"},
        "link": {
            "mode": mode,
            "html": '<p><a title="<mask:0>">Paris</a> is the capital of France.</p>',
            "candidates": ["Paris", "Paris Hilton", "France"],
        },
        "summarize": {
            "mode": mode,
            "document": "The cat sat on the mat.\nBirds sing songs about rivers.",
            "size_hint": 8,
            "max_len": 120,
        },
    }[mode]


def _src_values(text: str) -> list[str]:
    return IMG_SRC.findall(text)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIP with a tiny config and a byte-level vocabulary, saved with
    save_pretrained the way a user saves a real one; nothing downloaded."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = tmp_path_factory.mktemp("clip")
    chars = sorted(ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars])}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config=small | {"vocab_size": len(vocab), "max_position_embeddings": 32},
        vision_config=small | {"image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    return out


# ---- generation tests (test_generate*.py, test_prompts.py, test_decoding.py, ...): the helpers as fixtures,
# since test modules cannot import conftest in importlib mode


@pytest.fixture(scope="session")
def captions() -> list[str]:
    """The image captions of the tiny generation model's training documents."""
    return CAPTIONS


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """The sentences of the tiny generation model's training documents."""
    return SENTENCES


@pytest.fixture(scope="session")
def caption_codes():
    """caption_codes(caption, n_embed) -> the 256 codes of that caption's training image."""
    return _caption_codes


@pytest.fixture(scope="session")
def training_docs():
    """training_docs(n_embed) -> the tiny generation model's 24 training documents."""
    return _training_docs


@pytest.fixture(scope="session")
def request_for():
    """request_for(mode, n_embed) -> a well-formed request of that generation mode."""
    return _request_for


@pytest.fixture(scope="session")
def src_values():
    """src_values(html) -> every `<img>` src value in the text."""
    return _src_values
