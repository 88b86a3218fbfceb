"""Decoder-only transformer (pre-LayerNorm, tied embeddings, GELU MLP) with a preallocated KV cache.

Causal by default (the fast path: no mask, SDPA's `is_causal`, flash kernels on GPU); packed documents get a
block-diagonal causal mask from `segment_ids`, and the objectives with bidirectional parts (T5's prefix LM,
GLM, UniLMv2) a per-example mask from the `visible`/`sees`/`group` rule of `model.objectives.Example`.
Those masks take one of two paths (`attention`): `dense`, a (B, 1, T, T) boolean mask for SDPA (the
reference; it rules out the flash kernel), or `flex`, the same rule as a FlexAttention `mask_mod` whose
block mask skips the blocks no query sees (fused kernels on GPU; torch has no flex backward on CPU).
`activation_checkpointing` recomputes each block's activations in the backward pass instead of keeping them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
from torch.utils.checkpoint import checkpoint

from .config import CM3Config

ATTENTION_PATHS = ("dense", "flex")
_compiled_flex = None


def _flex(q, k, v, block_mask: BlockMask) -> torch.Tensor:
    """flex_attention, compiled on GPU (uncompiled it materialises every score: a check, not a kernel)."""
    global _compiled_flex
    if q.device.type != "cuda":
        return flex_attention(q, k, v, block_mask=block_mask)
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex(q, k, v, block_mask=block_mask)


def document_mask_mod(segment_ids, visible=None, sees=None, group=None):
    """The dense mask's rule as a FlexAttention `mask_mod(b, h, q, kv)`: inside equal segment ids, causal;
    with visible/sees/group, query q sees key kv iff visible[kv] <= sees[q] or both share a group >= 0
    (the prefix-LM, GLM and UniLMv2 rules of `model.objectives.Example`)."""
    if visible is None:

        def causal_documents(b, h, q, kv):
            return (segment_ids[b, q] == segment_ids[b, kv]) & (kv <= q)

        return causal_documents

    def example_rule(b, h, q, kv):
        seen = visible[b, kv] <= sees[b, q]
        grouped = (group[b, q] == group[b, kv]) & (group[b, q] >= 0)
        return (segment_ids[b, q] == segment_ids[b, kv]) & (seen | grouped)

    return example_rule


class KVCache:
    """Per-layer keys/values of shape (n_layers, batch, heads, max_len, head_dim), filled left to right."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k = k
        self.v = v
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def reorder(self, indices: torch.Tensor | list[int]) -> None:
        """Select (and possibly repeat) batch rows, e.g. the surviving beams; the batch size may change."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.k.device)
        self.k = self.k.index_select(1, index)
        self.v = self.v.index_select(1, index)


def sinusoidal_table(n_positions: int, dim: int) -> torch.Tensor:
    """fairseq's table: sin in the first half of the channels, cos in the second."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    angles = torch.arange(n_positions, dtype=torch.float32)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(n_positions, 1)], dim=1)
    return table


class SelfAttention(nn.Module):
    def __init__(self, cfg: CM3Config) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        kv_cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if isinstance(attn_mask, BlockMask):
            y = _flex(q, k, v, attn_mask)
            return self.out(y.transpose(1, 2).reshape(b, t, d))
        is_causal = attn_mask is None
        if kv_cache is not None:
            start = kv_cache.length
            kv_cache.k[layer, :, :, start : start + t] = k
            kv_cache.v[layer, :, :, start : start + t] = v
            k = kv_cache.k[layer, :, :, : start + t]
            v = kv_cache.v[layer, :, :, : start + t]
            if start > 0:
                # query i sits at absolute position start + i and sees keys 0 .. start + i
                is_causal = False
                if t > 1:
                    attn_mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(start)
        y = F.scaled_dot_product_attention(
            q,
            k.to(q.dtype),
            v.to(q.dtype),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and t > 1,
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: CM3Config) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.mlp_norm = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ffn)
        self.fc2 = nn.Linear(cfg.d_ffn, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, attn_mask, kv_cache, layer):
        x = x + self.dropout(self.attn(self.attn_norm(x), attn_mask, kv_cache, layer))
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.mlp_norm(x)))))


class CM3Transformer(nn.Module):
    """`model(tokens) -> logits`; `model(step, kv_cache=cache)` for incremental decoding.

    `attention` (dense | flex) and `activation_checkpointing` choose how, not what, it computes: they are
    not part of the config a checkpoint records."""

    def __init__(
        self, cfg: CM3Config, *, attention: str = "dense", activation_checkpointing: bool = False
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_PATHS:
            raise ValueError(f"attention must be one of {ATTENTION_PATHS}, not {attention!r}")
        if attention == "flex" and cfg.dropout > 0:
            raise ValueError("attention=flex has no attention dropout; use dropout=0 or attention=dense")
        self.config = cfg
        self.attention = attention
        self.activation_checkpointing = activation_checkpointing
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.embed_scale = math.sqrt(cfg.d_model)
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        else:
            self.register_buffer("pos_table", torch.empty(cfg.max_seq_len, cfg.d_model), persistent=False)
        if cfg.block_positions:  # GLM section 2.2.1: the second (intra-span) position has its own table
            self.block_pos_embed = nn.Embedding(cfg.max_seq_len + 1, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.reset_parameters()

    def init_buffers(self) -> None:
        """Fill the non-persistent buffers (after `to_empty` from the meta device, state dicts omit them)."""
        if self.config.positions == "sinusoidal":
            table = sinusoidal_table(self.config.max_seq_len, self.config.d_model)
            self.pos_table = table.to(device=self.pos_table.device)

    def reset_parameters(self) -> None:
        """GPT-2/fairseq init: N(0, 0.02) linears, residual outputs scaled by 1/sqrt(2L), embeddings d^-0.5."""
        self.init_buffers()
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("attn.out", "fc2")) else 0.02
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.embed.weight, std=self.config.d_model**-0.5)
        if self.config.positions == "learned":
            nn.init.normal_(self.pos_embed.weight, std=self.config.d_model**-0.5)
        if self.config.block_positions:
            nn.init.normal_(self.block_pos_embed.weight, std=self.config.d_model**-0.5)

    def num_params(self, include_embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not include_embeddings:
            n -= self.embed.weight.numel()
            if self.config.positions == "learned":
                n -= self.pos_embed.weight.numel()
        return n

    def new_kv_cache(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> KVCache:
        cfg = self.config
        if max_len > cfg.max_seq_len:
            raise ValueError(f"max_len {max_len} exceeds the model's max_seq_len {cfg.max_seq_len}")
        shape = (cfg.n_layers, batch_size, cfg.n_heads, max_len, cfg.d_model // cfg.n_heads)
        ref = self.embed.weight
        dtype = dtype or ref.dtype
        return KVCache(
            torch.zeros(shape, dtype=dtype, device=ref.device),
            torch.zeros(shape, dtype=dtype, device=ref.device),
        )

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        positions2: torch.Tensor | None = None,
        visible: torch.Tensor | None = None,
        sees: torch.Tensor | None = None,
        group: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, vocab).

        segment_ids (B, T): attention stays inside equal ids (documents packed in one row), causal inside;
        positions (B, T): explicit positions (restarting per document), else 0..T-1 after the cache;
        positions2 (B, T): GLM's intra-span positions (needs config.block_positions);
        visible, sees, group (B, T) with segment_ids: token i attends token j of its segment iff
        visible[j] <= sees[i] or group[i] == group[j] >= 0, instead of causally.
        """
        b, t = tokens.shape
        start = kv_cache.length if kv_cache is not None else 0
        if kv_cache is not None:
            if segment_ids is not None:
                raise ValueError("segment_ids cannot be combined with a KV cache")
            if b != kv_cache.batch_size:
                raise ValueError(f"batch {b} does not match the cache's batch {kv_cache.batch_size}")
            if start + t > kv_cache.max_len:
                raise ValueError(f"cache full: {start} + {t} > {kv_cache.max_len}")
        if positions is None:
            if start + t > self.config.max_seq_len:
                raise ValueError(f"sequence of {start + t} exceeds max_seq_len {self.config.max_seq_len}")
            positions = torch.arange(start, start + t, device=tokens.device)
        if self.config.positions == "learned":
            pos = self.pos_embed(positions)
        else:
            pos = self.pos_table[positions].to(self.embed.weight.dtype)
        if positions2 is not None:
            if not self.config.block_positions:
                raise ValueError("positions2 needs a model built with block_positions=True")
            pos = pos + self.block_pos_embed(positions2)
        x = self.drop(self.embed(tokens) * self.embed_scale + pos)
        if visible is not None and segment_ids is None:
            raise ValueError("visible/sees/group need segment_ids")
        attn_mask = None
        if segment_ids is not None and self.attention == "flex":
            rule = document_mask_mod(segment_ids, visible, sees, group)
            attn_mask = create_block_mask(rule, b, None, t, t, device=tokens.device)
        elif segment_ids is not None:
            same = segment_ids[:, :, None] == segment_ids[:, None, :]
            if visible is None:
                attn_mask = (same & torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril())[:, None]
            else:
                seen = visible[:, None, :] <= sees[:, :, None]
                grouped = (group[:, :, None] == group[:, None, :]) & (group[:, :, None] >= 0)
                attn_mask = (same & (seen | grouped))[:, None]
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            if recompute:
                x = checkpoint(layer, x, attn_mask, kv_cache, i, use_reentrant=False)
            else:
                x = layer(x, attn_mask, kv_cache, i)
        if kv_cache is not None:
            kv_cache.length = start + t
        return F.linear(self.final_norm(x), self.embed.weight)


__all__ = ["ATTENTION_PATHS", "CM3Transformer", "KVCache", "document_mask_mod"]
