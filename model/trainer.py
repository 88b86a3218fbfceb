"""`cm3-train train`: one process or many under torchrun (DDP, or FSDP for large presets).

Adam (0.9, 0.98), linear warm-up then polynomial decay, grad-norm clipping, gradient accumulation, bf16
on GPU (autocast; under FSDP its mixed-precision policy), validation perplexity, tokens/s and MFU logs, and checkpoints that restore the model,
optimizer, scheduler, RNG and each rank's exact data position (sharded, torch.distributed.checkpoint,
written in the background; resumable on another number of processes, each document read once per epoch).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .checkpoint import (
    CheckpointManager,
    ModelState,
    OptimizerState,
    RNGState,
    read_config,
    write_model_config,
)
from .config import CM3Config, TrainConfig
from .data import MODEL_INPUTS, LoaderOptions, PackedLoader
from .shards import TokenSplit, read_token_manifest
from .tokenizer import CM3Tokenizer
from .transformer import CM3Transformer

log = logging.getLogger("cm3.train")
# metrics.csv's columns: every key a log.jsonl record can have, in a fixed order (a record fills its own)
CSV_COLUMNS = (
    "time",
    "step",
    "loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "mfu",
    "val_loss",
    "val_ppl",
)
FSDP_PRESETS = ("1.3b", "cm3-medium", "cm3-large")
# dense bf16 tensor-core peaks (FLOP/s) by device-name substring; first match wins
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def peak_flops(device: torch.device) -> float | None:
    """Peak bf16 FLOP/s of one device, None where unknown (CPU, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


def flops_per_token(cfg: CM3Config, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 per weight (forward + backward) plus attention scores (PaLM appendix B)."""
    return 6 * n_params + 12 * cfg.n_layers * cfg.d_model * seq_len


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then polynomial decay to end_lr / lr at max_steps (fairseq polynomial_decay)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    end = cfg.end_lr / cfg.lr if cfg.lr else 0.0
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    remaining = max(0.0, 1.0 - (step - cfg.warmup_steps) / span)
    return end + (1.0 - end) * remaining**cfg.lr_power


def resolve_attention(choice: str, device: torch.device, dropout: float) -> str:
    """The model's masked-attention path for the `attention` key: flex (fused block-sparse kernels) where
    it trains, dense (the reference boolean mask) elsewhere; ValueError with one line for flex where
    torch cannot train it."""
    if choice == "flex" and device.type != "cuda":
        raise ValueError(
            f"attention=flex needs a GPU: torch {torch.__version__} has no FlexAttention backward on CPU; "
            "use attention=auto or dense"
        )
    if choice == "auto":
        return "flex" if device.type == "cuda" and dropout == 0 else "dense"
    return choice


def one_document_per_row(batch: dict[str, np.ndarray], pad_id: int) -> bool:
    """Whether every row holds at most one example (then padding) under a causal rule: plain causal
    attention is then exact on every token that carries loss, and needs no mask (False: there is no mask
    to drop, or it is not causal)."""
    if "segment_ids" not in batch or "visible" in batch:
        return False
    return bool(np.all((batch["segment_ids"] == 0) | (batch["tokens"] == pad_id)))


def fsdp_options(autocast_dtype: torch.dtype | None) -> dict:
    """fully_shard's options: under bf16, FSDP2 gathers parameters in bf16 for compute and reduces
    gradients in fp32 (torchtitan's policy), instead of fp32 shards cast by autocast in every op."""
    if autocast_dtype is None:
        return {}
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return {"mp_policy": MixedPrecisionPolicy(param_dtype=autocast_dtype, reduce_dtype=torch.float32)}


@dataclass
class Runtime:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    autocast_dtype: torch.dtype | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def check_device(device: str, local_rank: int = 0) -> bool:
    """Whether `device` (auto | cpu | cuda) runs on a GPU; ValueError with one line where device=cuda finds
    none, or this process's LOCAL_RANK has no GPU of its own (torch would fail deep inside set_device)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        raise ValueError(f"device=cuda, but torch ({built}) sees no GPU; use device=cpu or device=auto")
    if use_cuda and local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but torch sees {torch.cuda.device_count()}; "
            "start at most that many processes per node"
        )
    return use_cuda


def setup_runtime(cfg: TrainConfig) -> Runtime:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = check_device(cfg.device, local_rank)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if use_cuda else "fp32")
    return Runtime(rank, world_size, local_rank, device, torch.bfloat16 if precision == "bf16" else None)


def _to_torch(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    return obj


def _to_numpy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


class _LoaderState:
    """The loader's position with its numpy arrays as tensors (checkpoints load with weights_only)."""

    def __init__(self, loader: PackedLoader) -> None:
        self.loader = loader

    def state_dict(self) -> dict:
        return _to_torch(self.loader.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(_to_numpy(state))

    def load_elastic(self, states: list[dict]) -> None:
        self.loader.load_elastic([_to_numpy(state) for state in states])


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        if not cfg.data:
            raise ValueError("no data: pass --data TOKEN_SHARD_DIR (from `cm3-train tokenize`)")
        self.cfg = cfg
        self.rt = setup_runtime(cfg)
        self.out = Path(cfg.out)
        data = Path(cfg.data)
        read_token_manifest(data)
        self.tokenizer = CM3Tokenizer.load(data / "tokenizer")
        self.model_cfg = cfg.model_config(self.tokenizer.vocab_size, self.tokenizer.pad_id)
        tok = self.tokenizer
        self.loader_options = LoaderOptions(
            objective=cfg.objective,
            seq_len=cfg.seq_len,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            mask_offset=tok.mask_offset,
            n_masks=tok.n_masks,
            eos_id=tok.eos_id,
            document_attention=cfg.document_attention,
            pad_id=tok.pad_id,
            extra_offset=tok.vocab_size,
        )
        self.train_split = TokenSplit.open(data, "train")
        self.loader = PackedLoader(self.train_split, self.loader_options, self.rt.rank, self.rt.world_size)
        manifest = read_token_manifest(data)
        self.val_split = TokenSplit.open(data, "validation") if "validation" in manifest["splits"] else None
        # image tokens the model will see (None: token shards written before they were counted)
        self.data_info = {"image_tokens": manifest["splits"]["train"].get("image_tokens")}

        self.model_paths = {
            "attention": resolve_attention(cfg.attention, self.rt.device, cfg.dropout),
            "activation_checkpointing": cfg.activation_checkpointing,
        }
        self.sharded_precision = False  # FSDP2 casts parameters itself (MixedPrecisionPolicy), no autocast
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = self._build_model()
        self.raw_model = self.model.module if hasattr(self.model, "module") else self.model
        self.n_params = sum(p.numel() for p in self.raw_model.parameters())
        # the tied embedding counts once, as the output projection's matmul; position lookups cost nothing
        matmul_params = self.n_params - (
            self.raw_model.pos_embed.weight.numel() if self.model_cfg.positions == "learned" else 0
        )
        self.flops_per_token = flops_per_token(self.model_cfg, matmul_params, cfg.seq_len)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=tuple(cfg.adam_betas),
            eps=cfg.adam_eps,
            fused=self.rt.device.type == "cuda",
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        self.step = 0
        self.peak = peak_flops(self.rt.device) if self.rt.autocast_dtype == torch.bfloat16 else None
        self.checkpoints = CheckpointManager(
            self.out,
            {
                "trainer": self,
                "model": ModelState(self.model),
                "optimizer": OptimizerState(self.model, self.optimizer),
            },
            {"loader": _LoaderState(self.loader), "rng": RNGState(self.rt.device, self.rt.rank)},
            rank=self.rt.rank,
            world_size=self.rt.world_size,
            keep_last=cfg.keep_last,
            extra_files=lambda d: write_model_config(
                d, self.model_cfg, self.tokenizer, cfg.to_dict(), self.data_info
            ),
            async_save=True,  # training goes on while the shards are written (copied to host memory first)
        )
        self._resume()

    # ---- setup
    def _build_model(self) -> torch.nn.Module:
        """Plain, DDP-wrapped, or FSDP-sharded model (built on the meta device and filled from rank 0's
        host-memory init, so a 13B model never exists whole on a GPU)."""
        cfg, rt = self.cfg, self.rt
        parallel = cfg.parallel
        if parallel == "auto":
            parallel = "fsdp" if cfg.preset in FSDP_PRESETS else "ddp"
        if parallel not in ("ddp", "fsdp"):
            raise ValueError(f"parallel must be auto, ddp or fsdp, not {cfg.parallel!r}")
        if rt.world_size > 1 and parallel == "fsdp":
            try:
                from torch.distributed.fsdp import fully_shard
            except ImportError as e:  # public since torch 2.6
                raise ValueError(
                    "parallel=fsdp needs torch >= 2.6 (torch.distributed.fsdp.fully_shard)"
                ) from e
            with torch.device("meta"):
                model = CM3Transformer(self.model_cfg, **self.model_paths)
            shard_options = fsdp_options(rt.autocast_dtype)
            for block in model.layers:
                fully_shard(block, **shard_options)
            fully_shard(model, **shard_options)
            self.sharded_precision = "mp_policy" in shard_options
            model.to_empty(device=rt.device)
            # rank 0 initialises the whole model in host memory and broadcasts the shards: the same
            # weights as a single-process run with this seed, whatever the number of processes
            full = CM3Transformer(self.model_cfg).state_dict() if rt.is_main else {}
            opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
            set_model_state_dict(model, full, options=opts)
            model.init_buffers()
            if cfg.compile:
                model.compile()
            return model
        model = CM3Transformer(self.model_cfg, **self.model_paths).to(rt.device)
        if cfg.compile:
            model.compile()
        if rt.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None
        )

    # ---- one optimisation step
    def _autocast(self):
        if self.rt.autocast_dtype is None or self.sharded_precision:
            return contextlib.nullcontext()
        return torch.autocast(self.rt.device.type, dtype=self.rt.autocast_dtype)

    def _loss(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of weighted token losses, sum of weights) of one micro-batch."""
        dev = self.rt.device
        pin = dev.type == "cuda"  # pinned host memory lets the copy overlap with compute
        t = {
            k: (torch.from_numpy(v).pin_memory() if pin else torch.from_numpy(v)).to(dev, non_blocking=pin)
            for k, v in batch.items()
        }
        inputs = [k for k in MODEL_INPUTS if k in t]
        if self.cfg.attention == "auto" and one_document_per_row(batch, self.tokenizer.pad_id):
            inputs.remove("segment_ids")  # causal attention is exact here: SDPA's flash kernel
        with self._autocast():
            logits = self.model(t["tokens"], **{k: t[k] for k in inputs})
        losses = F.cross_entropy(logits.float().flatten(0, 1), t["targets"].flatten(), reduction="none")
        weights = t["weights"].flatten()
        return (losses * weights).sum(), weights.sum()

    @contextlib.contextmanager
    def _gradient_sync(self, sync: bool):
        """All-reduce (DDP) / reduce-scatter (FSDP) gradients only on the last micro-batch."""
        if sync or self.rt.world_size == 1:
            yield
        elif hasattr(self.model, "no_sync"):
            with self.model.no_sync():
                yield
        else:
            self.model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                self.model.set_requires_gradient_sync(True)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One update over grad_accum micro-batches; returns (mean loss on this rank, grad norm) as
        device tensors, so that the host only waits for the GPU when a step is logged."""
        self.model.train()
        total = torch.zeros((), device=self.rt.device)
        accum = self.cfg.grad_accum
        for micro in range(accum):
            with self._gradient_sync(micro == accum - 1):
                loss_sum, weight = self._loss(self.loader.next_batch())
                loss = loss_sum / weight.clamp_min(1.0)
                (loss / accum).backward()
            total += loss.detach() / accum
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        return total, grad_norm

    @torch.no_grad()
    def evaluate(self) -> dict[str, float] | None:
        """Validation loss and perplexity over eval_batches fixed batches (same masking every time)."""
        if self.val_split is None or len(self.val_split) < self.rt.world_size or self.cfg.eval_batches <= 0:
            return None
        options = LoaderOptions(**{**self.loader_options.__dict__, "shuffle": False})
        loader = PackedLoader(self.val_split, options, self.rt.rank, self.rt.world_size)
        self.model.eval()
        sums = torch.zeros(2, dtype=torch.float64, device=self.rt.device)
        for _ in range(self.cfg.eval_batches):
            loss_sum, weight = self._loss(loader.next_batch())
            sums += torch.stack([loss_sum.double(), weight.double()])
        if self.rt.world_size > 1:
            dist.all_reduce(sums)
        val_loss = float(sums[0] / sums[1].clamp_min(1.0))
        return {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0))}

    # ---- checkpoints
    def state_dict(self) -> dict:
        """The trainer's part of a checkpoint: the step and the learning-rate schedule."""
        return {"step": self.step, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])

    def save_checkpoint(self) -> None:
        """Starts writing a checkpoint of this step (published when complete: `checkpoints.wait()`)."""
        self.checkpoints.save(self.step)

    def _same_model(self, ckpt: Path) -> None:
        saved_model = CM3Config.from_dict(read_config(ckpt)["model"])
        if saved_model != self.model_cfg:
            raise ValueError(f"{ckpt} holds a different model ({saved_model}) than this config")

    def _resume(self) -> None:
        ckpt = self.checkpoints.load(check=self._same_model)
        if ckpt is not None and self.rt.is_main:
            log.info("resumed from %s at step %d", ckpt, self.step)

    # ---- loop
    def _log(self, record: dict) -> None:
        """A record, timestamped, to log.jsonl and metrics.csv (spreadsheets, pandas, TensorBoard's CSV
        import); written every log_every/eval_every steps, after the values are on the host already."""
        if not self.rt.is_main:
            return
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        path = self.out / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(record)

    def _mean_across_ranks(self, value: float) -> float:
        if self.rt.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.rt.device)
        dist.all_reduce(t)
        return float(t) / self.rt.world_size

    def fit(self) -> dict:
        cfg, rt = self.cfg, self.rt
        if rt.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out / "config.json")
            warning = cfg.schedule_warning()
            if warning:
                log.warning(warning)
            log.info(
                "model %s: %.1fM parameters, vocab %d, %d process(es) on %s",
                cfg.preset,
                self.n_params / 1e6,
                self.model_cfg.vocab_size,
                rt.world_size,
                rt.device,
            )
        tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * rt.world_size
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            # None: tqdm turns itself off when stderr is not a terminal (logs, CI), and log lines take over
            disable=None if rt.is_main and cfg.progress else True,
            unit="step",
            dynamic_ncols=True,
        )
        # log lines (checkpoints, validation) go above the bar instead of through it
        with logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext():
            last = self._loop(bar, tokens_per_step)
            self.checkpoints.wait()  # the last checkpoint is complete and published before fit returns
        bar.close()
        return last

    def _loop(self, bar: tqdm, tokens_per_step: int) -> dict:
        cfg, rt = self.cfg, self.rt
        last: dict = {}
        window_start, window_steps = time.perf_counter(), 0
        run_start, run_first_step = window_start, self.step  # the ETA: this process's mean step time
        while self.step < cfg.max_steps:
            loss, grad_norm = self.train_step()
            window_steps += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                loss, grad_norm = self._mean_across_ranks(float(loss)), float(grad_norm)
                if rt.device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - window_start
                tok_s = tokens_per_step * window_steps / elapsed
                mfu = tok_s / rt.world_size * self.flops_per_token / self.peak if self.peak else None
                last = {
                    "step": self.step,
                    "loss": loss,
                    "lr": self.scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "tokens_per_s": tok_s,
                    "mfu": mfu,
                }
                self._log(last)
                mfu_text = f"{mfu:.1%}" if mfu is not None else "n/a"
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", mfu=mfu_text)
                if bar.disable and rt.is_main:  # no bar (not a terminal): the line says what the bar would
                    per_step = (time.perf_counter() - run_start) / max(1, self.step - run_first_step)
                    log.info(
                        "step %d/%d: loss %.4f, lr %.3g, %.0f tokens/s, MFU %s, ETA %s",
                        self.step,
                        cfg.max_steps,
                        loss,
                        last["lr"],
                        tok_s,
                        mfu_text,
                        tqdm.format_interval(per_step * (cfg.max_steps - self.step)),
                    )
                window_start, window_steps = time.perf_counter(), 0
            if cfg.eval_every > 0 and (self.step % cfg.eval_every == 0 or self.step == cfg.max_steps):
                metrics = self.evaluate()
                if metrics:
                    last.update(metrics)
                    self._log({"step": self.step, **metrics})
                    if rt.is_main:
                        log.info(
                            "step %d: validation loss %.4f, perplexity %.2f", self.step, *metrics.values()
                        )
            if (cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0) or self.step == cfg.max_steps:
                self.save_checkpoint()
                window_start, window_steps = time.perf_counter(), 0
        return last


def train(cfg: TrainConfig) -> dict:
    """Runs (or resumes, from the newest checkpoint under cfg.out) a training run; returns the last metrics."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "PEAK_BF16_FLOPS",
    "Trainer",
    "check_device",
    "flops_per_token",
    "fsdp_options",
    "lr_factor",
    "one_document_per_row",
    "peak_flops",
    "train",
]
