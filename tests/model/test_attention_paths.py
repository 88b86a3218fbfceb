"""The attention paths compute the same attention: FlexAttention block masks (`attention="flex"`) and SDPA's
plain causal kernel (rows holding one document) against the dense boolean mask (the reference), on real
packed batches of every objective; activation checkpointing changes neither the loss nor the gradients.

torch has no FlexAttention backward on CPU, so the flex path is compared forward here (eager, unfused);
bench/gpu.py compares its gradients on a GPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import CM3Config, CM3Tokenizer, CM3Transformer
from model.data import MODEL_INPUTS, LoaderOptions, PackedLoader
from model.objectives import MASKED_ATTENTION, N_EXTRA_IDS, OBJECTIVES
from model.shards import TokenSplit
from model.trainer import one_document_per_row

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile"),
]
SEQ_LEN = 128


@pytest.fixture(scope="module")
def tok(token_shards):
    return CM3Tokenizer.load(token_shards / "tokenizer")


def packed_batch(token_shards, tok, objective: str) -> dict[str, torch.Tensor]:
    options = LoaderOptions(
        objective=objective,
        seq_len=SEQ_LEN,
        batch_size=3,
        seed=1,
        mask_offset=tok.mask_offset,
        n_masks=tok.n_masks,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        extra_offset=tok.vocab_size,
        document_attention=True,
    )
    loader = PackedLoader(TokenSplit.open(token_shards, "train"), options)
    batches = (loader.next_batch() for _ in range(50))
    batch = next(b for b in batches if (b["segment_ids"][:, -1] >= 2).any())
    # a row packs several examples (padding is one segment more): the mask matters
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def model_for(tok, objective: str, **paths) -> CM3Transformer:
    torch.manual_seed(0)
    cfg = CM3Config(
        vocab_size=tok.vocab_size + (N_EXTRA_IDS if objective in MASKED_ATTENTION else 0),
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_ffn=64,
        max_seq_len=SEQ_LEN,
        block_positions=objective in ("glm", "glm_doc"),
    )
    return CM3Transformer(cfg, **paths)


def logits(model: CM3Transformer, batch: dict[str, torch.Tensor], drop=()) -> torch.Tensor:
    return model(batch["tokens"], **{k: batch[k] for k in MODEL_INPUTS if k in batch and k not in drop})


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_flex_block_masks_equal_the_dense_mask(token_shards, tok, objective):
    batch = packed_batch(token_shards, tok, objective)
    dense, flex = model_for(tok, objective).eval(), model_for(tok, objective, attention="flex").eval()
    with torch.no_grad():
        torch.testing.assert_close(logits(flex, batch), logits(dense, batch), atol=2e-5, rtol=1e-5)


def test_flex_sees_what_the_dense_mask_sees_cell_by_cell(token_shards, tok):
    """Not only equal outputs: the mask_mod's every (query, key) cell is the dense mask's, per objective."""
    from model.transformer import document_mask_mod

    for objective in OBJECTIVES:
        batch = packed_batch(token_shards, tok, objective)
        rule_inputs = [batch.get(k) for k in ("segment_ids", "visible", "sees", "group")]
        rule = document_mask_mod(*rule_inputs)
        b, q, kv = torch.meshgrid(*(torch.arange(n) for n in (3, SEQ_LEN, SEQ_LEN)), indexing="ij")
        cells = rule(b, 0, q, kv)
        seg = batch["segment_ids"]
        same = seg[:, :, None] == seg[:, None, :]
        if "visible" in batch:
            v, s, g = batch["visible"], batch["sees"], batch["group"]
            expected = same & (
                (v[:, None, :] <= s[:, :, None]) | ((g[:, :, None] == g[:, None, :]) & (g[:, :, None] >= 0))
            )
        else:
            expected = same & torch.ones(SEQ_LEN, SEQ_LEN, dtype=torch.bool).tril()
        assert torch.equal(cells, expected), objective


@pytest.mark.parametrize("objective", ["cm3", "clm"])
def test_causal_kernel_equals_the_dense_mask_on_rows_of_one_document(token_shards, tok, objective):
    """Rows that each hold one example (then padding) need no mask: SDPA's is_causal gives the same logits on
    every token that carries loss, and the same gradients."""
    batch = packed_batch(token_shards, tok, objective)
    first = batch["segment_ids"] == 0  # keep each row's first example, pad the rest
    for k, pad in (("tokens", tok.pad_id), ("targets", tok.pad_id), ("weights", 0), ("positions", 0)):
        batch[k] = torch.where(first, batch[k], torch.full_like(batch[k], pad))
    batch["segment_ids"] = (~first).long()
    assert one_document_per_row({k: v.numpy() for k, v in batch.items()}, tok.pad_id)
    grads, outs = [], []
    for drop in ((), ("segment_ids",)):
        model = model_for(tok, objective).train()
        out = logits(model, batch, drop)
        losses = F.cross_entropy(out.flatten(0, 1), batch["targets"].flatten(), reduction="none")
        (losses * batch["weights"].flatten()).sum().backward()
        outs.append(out[first])
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], atol=2e-5, rtol=1e-5)
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4)


def test_rows_of_several_documents_or_a_bidirectional_rule_keep_their_mask(token_shards, tok):
    as_numpy = {k: v.numpy() for k, v in packed_batch(token_shards, tok, "cm3").items()}
    assert not one_document_per_row(as_numpy, tok.pad_id)
    one_each = {**as_numpy, "segment_ids": np.zeros_like(as_numpy["segment_ids"])}
    assert one_document_per_row(one_each, tok.pad_id)
    t5 = {k: v.numpy() for k, v in packed_batch(token_shards, tok, "t5").items()}
    assert not one_document_per_row({**t5, "segment_ids": np.zeros_like(t5["segment_ids"])}, tok.pad_id)


@pytest.mark.parametrize("objective", ["cm3", "glm"])
def test_activation_checkpointing_keeps_loss_and_gradients(token_shards, tok, objective):
    batch = packed_batch(token_shards, tok, objective)
    results = []
    for recompute in (False, True):
        model = model_for(tok, objective, activation_checkpointing=recompute).train()
        out = logits(model, batch)
        loss = (
            F.cross_entropy(out.flatten(0, 1), batch["targets"].flatten(), reduction="none")
            * batch["weights"].flatten()
        ).sum()
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, atol=0, rtol=0)


def test_flex_refuses_dropout_in_one_line(tok):
    with pytest.raises(ValueError, match="attention=flex has no attention dropout"):
        CM3Transformer(
            CM3Config(vocab_size=50, d_model=16, n_layers=1, n_heads=2, dropout=0.1), attention="flex"
        )


def test_the_trainer_refuses_flex_on_cpu_in_one_line(token_shards, tmp_path, capsys):
    from model.cli import main

    args = ["train", f"--data={token_shards}", f"out={tmp_path}", "preset=tiny", "seq_len=64", "device=cpu"]
    assert main([*args, "attention=flex", "max_steps=1"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("cm3-train: error: attention=flex needs a GPU")


def test_the_trainer_resolves_auto_per_device():
    from model.trainer import resolve_attention

    assert resolve_attention("auto", torch.device("cpu"), 0.0) == "dense"
    assert resolve_attention("auto", torch.device("cuda"), 0.0) == "flex"
    assert resolve_attention("auto", torch.device("cuda"), 0.1) == "dense"  # flex has no attention dropout
    assert resolve_attention("dense", torch.device("cuda"), 0.0) == "dense"


def test_the_trainer_takes_its_paths_from_the_config(token_shards, tmp_path):
    """activation_checkpointing=true trains the same step as without; attention=dense is the reference."""
    from model import TrainConfig
    from model.trainer import Trainer

    base = [f"data={token_shards}", "preset=tiny", "seq_len=64", "batch_size=4", "progress=false"]
    losses = []
    for extra in (["attention=dense"], ["attention=auto", "activation_checkpointing=true"]):
        trainer = Trainer(TrainConfig.load(None, [*base, *extra, f"out={tmp_path / str(len(losses))}"]))
        assert trainer.raw_model.activation_checkpointing == ("activation_checkpointing=true" in extra)
        assert trainer.raw_model.attention == "dense"  # on CPU
        losses.append([float(trainer.train_step()[0]) for _ in range(3)])
    assert losses[0] == losses[1]
