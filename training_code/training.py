"""The one training routine, used by fine-tuning and by test-time training.

Why a plain loop and not transformers' Trainer or trl's SFTTrainer: our batches come from keys drawn
afresh each step (a new random view per step), the loss mask comes from the format's output spans,
and resume must restore the data position exactly. A plain loop does all three in a page that reads
top to bottom, and runs unchanged on unsloth's patched models (unsloth patches the model, not the
loop). What the Trainer would add (logging integrations, distributed sharding) we do not need here.

    step:  draw keys -> render -> collate (labels only on output grids) -> forward -> backward
           -> clip -> AdamW (lower learning rate on embeddings and head) -> cosine schedule with warmup
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .arc_loader import ArcDataset, AugmentOptions, Key, random_key
from .formats import RenderedTask
from .model_tools import inference_mode, training_mode

log = logging.getLogger(__name__)

EMBEDDING_PARAM_NAMES = ("embed_tokens", "lm_head")  # trained at the lower embedding learning rate


@dataclass
class TrainConfig:
    """Settings of one training run (fine-tuning or test-time training)."""

    learning_rate: float = 1e-4
    embedding_learning_rate: float = 1e-5  # the ARChitects: 1e-4 for LoRA, 1e-5 for embeddings and head
    max_steps: int = 100  # optimizer steps
    batch_size: int = 4  # sequences per forward pass
    grad_accumulation: int = 1
    warmup_ratio: float = 0.25  # the ARChitects warm up over a quarter of the run
    min_lr_ratio: float = 0.0  # cosine decays to this fraction of the peak
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optimizer: str = "auto"  # "adamw", "adamw8bit" (bitsandbytes, GPU) or "auto": 8-bit on CUDA when available
    gradient_checkpointing: bool = False
    bf16: str = "auto"  # "auto": bfloat16 autocast where the device supports it; "yes"/"no" force it
    seed: int = 0
    mask_first_n_outputs: int = 0  # the ARChitects mask the first output: nothing precedes it to learn from
    max_length: int = 8192
    on_the_fly: bool = True  # a fresh random view per draw; False: walk the precomputed keys in order
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: only at the end)
    log_every: int = 10
    progress: bool = True


@dataclass
class TrainResult:
    steps: int
    losses: list[float]  # mean loss of each optimizer step
    tokens: int  # tokens seen (padding excluded)
    padded_tokens: int  # tokens computed (padding included)
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def padding_share(self) -> float:
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0


def lr_factor(step: int, total: int, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    warmup = int(round(warmup_ratio * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for one step's data: a function of (seed, step) alone, so a resumed run draws
    exactly the batches the killed run would have drawn."""
    return np.random.default_rng([seed, step])


@dataclass
class DataPart:
    """One training source: a dataset, the prompt version its tasks are rendered with, and its weight."""

    dataset: ArcDataset
    prompt_version: str = "output-from-examples"
    weight: float = 1.0


def fitted_render(part: DataPart, key: Key, fmt, max_length: int,
                  count_tokens: Callable[[str], int] | None) -> RenderedTask | None:
    """The key rendered, with training examples dropped (last shown first) until it fits ``max_length``
    tokens; None when even one example does not fit. Never truncated by the tokenizer."""
    rendered = part.dataset.render(key, fmt, part.prompt_version)
    if count_tokens is None or count_tokens(rendered.text) <= max_length:
        return rendered
    fitted, too_long = part.dataset.with_keys([key]).fit_to_budget(fmt, max_length, count_tokens,
                                                                   part.prompt_version)
    return None if too_long else part.dataset.render(fitted.keys[0], fmt, part.prompt_version)


def batches(parts: Sequence[DataPart], fmt, config: TrainConfig, start_step: int = 0,
            count_tokens: Callable[[str], int] | None = None) -> Iterator[list[RenderedTask]]:
    """Micro-batches of rendered tasks, ``grad_accumulation`` per optimizer step, from ``start_step`` on.

    On the fly: each sequence picks a part by weight, a key of it at random and a fresh random view.
    Precomputed (the ARChitects' way): the parts' keys, repeated by weight, walked in order.
    """
    parts = [p for p in parts if p.dataset.keys and p.weight > 0]
    if not parts:
        raise ValueError("no training data: every source is empty or has weight 0")
    per_step = config.batch_size * config.grad_accumulation
    weights = np.array([p.weight * len(p.dataset.keys) for p in parts], dtype=float)
    weights /= weights.sum()
    walk = [(i, k) for i, p in enumerate(parts) for _ in range(max(1, round(p.weight))) for k in p.dataset.keys]
    step = start_step
    while True:
        rng = step_rng(config.seed, step)
        rendered: list[RenderedTask] = []
        attempts = 0
        while len(rendered) < per_step:
            attempts += 1
            if attempts > 50 * per_step:
                raise ValueError(f"no view fits {config.max_length} tokens; raise max_length")
            if config.on_the_fly:
                part = parts[int(rng.choice(len(parts), p=weights))]
                base = part.dataset.keys[int(rng.integers(len(part.dataset.keys)))]
                key = random_key(base, len(part.dataset.tasks[base.task_id].train), rng, config.augment)
            else:
                index, key = walk[(step * per_step + attempts - 1) % len(walk)]
                part = parts[index]
            item = fitted_render(part, key, fmt, config.max_length, count_tokens)
            if item is not None:
                rendered.append(item)
        for m in range(config.grad_accumulation):
            yield rendered[m * config.batch_size:(m + 1) * config.batch_size]
        step += 1


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    if config.bf16 in ("yes", "no"):
        return config.bf16 == "yes"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return False  # on a CPU, autocast to bf16 is slower than float32 for these small matmuls


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with two parameter groups: LoRA weights, and embeddings and head at a lower rate."""
    main, embed = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (embed if any(n in name for n in EMBEDDING_PARAM_NAMES) else main).append(param)
    if not main and not embed:
        raise ValueError("the model has no trainable parameters; add a LoRA adapter first")
    groups = [{"params": main, "lr": config.learning_rate, "base_lr": config.learning_rate},
              {"params": embed, "lr": config.embedding_learning_rate, "base_lr": config.embedding_learning_rate}]
    groups = [g for g in groups if g["params"]]
    kind = config.optimizer
    if kind == "auto":
        kind = "adamw8bit" if torch.cuda.is_available() and _bitsandbytes_available() else "adamw"
    if kind == "adamw8bit":
        import bitsandbytes as bnb  # chosen by "auto" on CUDA only

        return bnb.optim.AdamW8bit(groups, weight_decay=config.weight_decay)
    if kind != "adamw":
        raise ValueError(f"unknown optimizer {kind!r}; choose adamw, adamw8bit or auto")
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, model, optimizer, step: int, losses: list[float], config: TrainConfig) -> None:
    """Trainable weights, optimizer state, step and losses, written atomically (a kill mid-write keeps
    the previous checkpoint)."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "checkpoint.pt.tmp"
    torch.save({"step": step, "losses": losses, "weights": trainable_state(model),
                "optimizer": optimizer.state_dict(), "config": json.dumps(asdict(config), default=str)}, tmp)
    os.replace(tmp, path / "checkpoint.pt")


def load_checkpoint(path: Path, model, optimizer) -> tuple[int, list[float]]:
    """Restore what save_checkpoint wrote; returns (step, losses)."""
    # weights_only: the file holds tensors and plain containers only, never arbitrary objects
    state = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    missing = [n for n in state["weights"] if n not in params]
    if missing:
        raise ValueError(f"checkpoint {path} does not match the model: {len(missing)} unknown parameters, "
                         f"e.g. {missing[0]}")
    with torch.no_grad():
        for name, value in state["weights"].items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), list(state["losses"])


def train(model: torch.nn.Module, collate: Callable[[Sequence[RenderedTask]], dict[str, torch.Tensor]],
          data: ArcDataset | Sequence[DataPart], fmt, config: TrainConfig, checkpoint_dir: str | Path | None = None,
          count_tokens: Callable[[str], int] | None = None, description: str = "train") -> TrainResult:
    """Train the model's trainable parameters (a LoRA adapter) on rendered views of the data.

    ``data`` is a dataset (rendered output-from-examples) or weighted parts with their prompt versions.
    ``count_tokens`` (the tokenizer's count) lets over-long views drop examples to fit ``max_length``.

    ``collate`` turns rendered tasks into a batch with input_ids, attention_mask and labels (the
    model layer's masking collator). With ``checkpoint_dir``, a checkpoint found there is resumed
    and new ones are written every ``checkpoint_every`` steps and at the end.
    """
    device = next(model.parameters()).device
    # dropout draws from torch's generator: seed a forked copy so runs repeat and global state is untouched
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        return _train(model, collate, data, fmt, config, checkpoint_dir, count_tokens, description, device)


def _train(model, collate, data, fmt, config: TrainConfig, checkpoint_dir, count_tokens, description: str,
           device: torch.device) -> TrainResult:
    bf16 = use_bf16(config, device)
    if config.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()  # checkpointing needs a grad path from the (frozen) embeddings
    optimizer = make_optimizer(model, config)
    start, losses = 0, []
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (ckpt / "checkpoint.pt").is_file():
        start, losses = load_checkpoint(ckpt, model, optimizer)
        log.info("resumed %s from step %d of %d", ckpt, start, config.max_steps)
    training_mode(model)  # unsloth's for_training on an unsloth model
    tokens = padded = 0
    began = time.perf_counter()
    parts = [DataPart(data)] if isinstance(data, ArcDataset) else list(data)
    micro = batches(parts, fmt, config, start, count_tokens)
    bar = tqdm(total=config.max_steps, initial=start, desc=description, disable=not config.progress,
               dynamic_ncols=True)
    for step in range(start, config.max_steps):
        factor = lr_factor(step, config.max_steps, config.warmup_ratio, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        step_loss, step_tokens = 0.0, 0
        batches_this_step = [collate(next(micro)) for _ in range(config.grad_accumulation)]
        # weight each micro-batch by its share of loss-carrying tokens, so the step's loss is the mean over
        # all its output tokens whatever the accumulation
        counts = [int((b["labels"][:, 1:] != -100).sum()) for b in batches_this_step]
        total = max(1, sum(counts))
        for batch, count in zip(batches_this_step, counts):
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            labels=batch["labels"])
            loss = out.loss * (count / total)
            loss.backward()
            step_loss += float(loss.detach())
            step_tokens += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                       config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += step_tokens
        losses.append(step_loss)
        elapsed = time.perf_counter() - began
        bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{tokens / elapsed:.0f}", refresh=False)
        bar.update(1)
        if config.log_every and (step + 1) % config.log_every == 0:
            log.info("%s step %d/%d loss %.4f, %.0f tokens/s", description, step + 1, config.max_steps, step_loss,
                     tokens / elapsed)
        if ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            save_checkpoint(ckpt, model, optimizer, step + 1, losses, config)
    bar.close()
    seconds = time.perf_counter() - began
    if ckpt is not None:
        save_checkpoint(ckpt, model, optimizer, config.max_steps, losses, config)
    inference_mode(model)
    return TrainResult(config.max_steps - start, losses, tokens, padded, seconds)


def leave_one_out_views(dataset: ArcDataset, task_ids: Sequence[str], rng: np.random.Generator, views: int,
                        options: AugmentOptions = AugmentOptions(), min_train: int = 1) -> ArcDataset:
    """Test-time training data: leave-one-out tasks from the given tasks' own examples, ``views``
    random views of each (the identity view included)."""
    loo = dataset.subset(task_ids).leave_one_out(min_train=min_train)
    if not loo.tasks:
        return loo
    return loo.augment(rng, n=max(0, views - 1), options=options, keep_original=True)


def evaluation_loss(model: torch.nn.Module, collate, dataset: ArcDataset, fmt, keys: Sequence[Key] | None = None,
                    batch_size: int = 4) -> float:
    """Mean loss per output token on the given keys (held-out tasks), no gradients."""
    keys = list(dataset.keys if keys is None else keys)
    device = next(model.parameters()).device
    total_loss, total_tokens = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(keys), batch_size):
            batch = collate([dataset.render(k, fmt) for k in keys[i:i + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels,
                                                    ignore_index=-100, reduction="sum")
            total_loss += float(nll)
            total_tokens += int((labels != -100).sum())
    return total_loss / max(1, total_tokens)
