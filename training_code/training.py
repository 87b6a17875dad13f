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

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .arc_loader import ArcDataset, AugmentOptions, DataPart, Key, random_key
from .formats import RenderedTask
from .inference_tools import cpu_computes_bf16
from .model_tools import IGNORE_INDEX, compute_device, inference_mode, training_mode

log = logging.getLogger(__name__)

EMBEDDING_PARAM_NAMES = ("embed_tokens", "lm_head")  # trained at the lower embedding learning rate


OPTIMIZERS = ("auto", "adamw", "adamw8bit")  # auto: 8-bit AdamW (bitsandbytes) on CUDA when available
BF16_TRAINING = ("auto", "yes", "no")


@dataclass
class TrainConfig:
    """Settings of one training run (fine-tuning or test-time training)."""

    learning_rate: float = 1e-4
    # the ARChitects: 1e-4 for LoRA, 1e-5 for embeddings and head
    embedding_learning_rate: float = field(default=1e-5, metadata={"help": "learning rate of embeddings and head"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=4, metadata={"help": "sequences per forward pass"})
    grad_accumulation: int = 1
    warmup_ratio: float = 0.25  # the ARChitects warm up over a quarter of the run
    min_lr_ratio: float = field(default=0.0, metadata={"help": "cosine decays to this fraction of the peak"})
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optimizer: str = field(default="auto", metadata={
        "help": "auto: 8-bit AdamW (bitsandbytes) on CUDA when available", "choices": OPTIMIZERS})
    gradient_checkpointing: bool = False
    bf16: str = field(default="auto", metadata={
        "help": "bfloat16 autocast: auto (on GPUs with bf16, on CPUs with native bf16 instructions)",
        "choices": BF16_TRAINING})
    # sort each optimizer step's sequences by length before cutting them into micro-batches, so that a
    # micro-batch pads short views to a similar length (the step's loss is the same mean either way)
    group_by_length: bool = field(default=True, metadata={
        "help": "sort each step's sequences by length before cutting micro-batches (less padding)"})
    seed: int = 0
    # the ARChitects mask the first output: nothing precedes it to learn from
    mask_first_n_outputs: int = field(default=0, metadata={"help": "output grids of a sequence that carry no loss"})
    max_length: int = field(default=8192, metadata={"help": "longest sequence in tokens"})
    on_the_fly: bool = field(default=True, metadata={"help": "a fresh random view per draw (else precomputed)"})
    augment: AugmentOptions = field(default_factory=AugmentOptions, metadata={"flags": ""})
    checkpoint_every: int = field(default=0, metadata={
        "help": "optimizer steps between checkpoints (0: only at the end)"})
    evaluate_every: int = field(default=0, metadata={
        "help": "optimizer steps between held-out measurements (0: only before and after)"})
    # without a checkpoint, start the learning-rate schedule and the data stream here: continues a run
    # from its saved adapter (its optimizer moments start afresh) where the checkpoint is gone
    first_step: int = field(default=0, metadata={
        "help": "without a checkpoint, start the schedule and the data stream at this step (for --init-adapter)"})
    log_every: int = 10
    progress: bool = True


@dataclass
class TrainResult:
    steps: int
    losses: list[float]  # mean loss of each optimizer step
    tokens: int  # tokens seen (padding excluded)
    padded_tokens: int  # tokens computed (padding included)
    seconds: float
    evaluations: list[dict] = field(default_factory=list)  # {"step": n, ...what ``evaluate`` returned}, all runs

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
    """Autocast to bfloat16 in training: forced by ``config.bf16`` ("yes"/"no"), else where it pays.

    On CUDA wherever the GPU supports bfloat16. On a CPU only with native bfloat16 instructions: there a
    LoRA step of SmolLM2-135M on 2 x 512 tokens measured 1.8x faster than float32 (AMD EPYC with
    avx512_bf16, one thread); without them autocast emulates bfloat16 and is slower than float32.
    """
    if config.bf16 not in BF16_TRAINING:
        raise ValueError(f"bf16 must be auto, yes or no, got {config.bf16!r}")
    if config.bf16 != "auto":
        return config.bf16 == "yes"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_computes_bf16()


def length_grouped(micro_batches: Sequence[Sequence[RenderedTask]], batch_size: int) -> list[list[RenderedTask]]:
    """One optimizer step's sequences re-cut into micro-batches of ``batch_size``, shortest first, so that
    each micro-batch pads to a similar length. Deterministic: ties keep their drawn order."""
    items = sorted((t for batch in micro_batches for t in batch), key=lambda t: len(t.text))
    return [items[i:i + batch_size] for i in range(0, len(items), batch_size)]


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
        raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, model, optimizer, step: int, losses: list[float], config: TrainConfig,
                    evaluations: Sequence[dict] = ()) -> None:
    """Trainable weights, optimizer state, step, losses and evaluations so far, written atomically (a kill
    mid-write keeps the previous checkpoint)."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "checkpoint.pt.tmp"
    torch.save({"step": step, "losses": losses, "weights": trainable_state(model),
                "optimizer": optimizer.state_dict(), "config": json.dumps(asdict(config), default=str),
                "evaluations": json.dumps(list(evaluations))}, tmp)
    os.replace(tmp, path / "checkpoint.pt")


def load_checkpoint(path: Path, model, optimizer) -> tuple[int, list[float], list[dict]]:
    """Restore what save_checkpoint wrote; returns (step, losses, evaluations)."""
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
    return int(state["step"]), list(state["losses"]), list(json.loads(state.get("evaluations", "[]")))


def train(model: torch.nn.Module, collate: Callable[[Sequence[RenderedTask]], dict[str, torch.Tensor]],
          data: ArcDataset | Sequence[DataPart], fmt, config: TrainConfig, checkpoint_dir: str | Path | None = None,
          count_tokens: Callable[[str], int] | None = None, description: str = "train",
          evaluate: Callable[[], dict] | None = None,
          on_checkpoint: Callable[[int, list[float], list[dict]], None] | None = None) -> TrainResult:
    """Train the model's trainable parameters (a LoRA adapter) on rendered views of the data.

    ``data`` is a dataset (rendered output-from-examples) or weighted parts with their prompt versions.
    ``count_tokens`` (the tokenizer's count) lets over-long views drop examples to fit ``max_length``.

    ``collate`` turns rendered tasks into a batch with input_ids, attention_mask and labels (the
    model layer's masking collator). With ``checkpoint_dir``, a checkpoint found there is resumed
    and new ones are written every ``checkpoint_every`` steps and at the end. ``evaluate`` (held-out loss
    and accuracy, say) is called every ``evaluate_every`` steps and after the last; what it returns is
    kept, with the step, in ``TrainResult.evaluations`` and in the checkpoints. ``on_checkpoint(step,
    losses, evaluations)`` runs after each checkpoint written during training (to save the adapter as
    it stands, say).
    """
    device = compute_device(model)
    # dropout draws from torch's generator: seed a forked copy so runs repeat and global state is untouched
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        with _checkpointing(model, config.gradient_checkpointing):
            return _train(model, collate, data, fmt, config, checkpoint_dir, count_tokens, description, device,
                          evaluate, on_checkpoint)


@contextmanager
def _checkpointing(model: torch.nn.Module, on: bool) -> Iterator[None]:
    """Gradient checkpointing (activations recomputed in the backward pass) while training, when ``on``; the
    model leaves as it came: test-time training turns it on for long tasks only, on a model that the next
    task trains again."""
    if not on or not hasattr(model, "gradient_checkpointing_enable"):
        yield
        return
    model.gradient_checkpointing_enable()
    hooked = hasattr(model, "enable_input_require_grads")
    if hooked:
        model.enable_input_require_grads()  # checkpointing needs a grad path from the (frozen) embeddings
    try:
        yield
    finally:
        model.gradient_checkpointing_disable()
        if hooked:
            model.disable_input_require_grads()


def _train(model, collate, data, fmt, config: TrainConfig, checkpoint_dir, count_tokens, description: str,
           device: torch.device, evaluate: Callable[[], dict] | None,
           on_checkpoint: Callable[[int, list[float], list[dict]], None] | None) -> TrainResult:
    bf16 = use_bf16(config, device)
    optimizer = make_optimizer(model, config)
    if not 0 <= config.first_step <= config.max_steps:
        raise ValueError(f"first_step {config.first_step} must lie between 0 and max_steps {config.max_steps}")
    start, losses, evaluations = config.first_step, [], []
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (ckpt / "checkpoint.pt").is_file():
        start, losses, evaluations = load_checkpoint(ckpt, model, optimizer)
        log.info("resumed %s from step %d of %d", ckpt, start, config.max_steps)

    def evaluated(step: int) -> None:
        if evaluate is None or any(e.get("step") == step for e in evaluations):
            return
        entry = {"step": step, **evaluate()}
        training_mode(model)  # evaluate switches to inference
        evaluations.append(entry)
        log.info("%s step %d: %s", description, step,
                 ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()
                           if k != "step"))

    if start == 0:
        evaluated(0)  # the starting point of the held-out curve

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
        drawn = [next(micro) for _ in range(config.grad_accumulation)]
        if config.group_by_length:
            drawn = length_grouped(drawn, config.batch_size)
        batches_this_step = [collate(batch) for batch in drawn]
        # weight each micro-batch by its share of loss-carrying tokens, so the step's loss is the mean over
        # all its output tokens whatever the accumulation
        counts = [int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches_this_step]
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
        if config.evaluate_every and (step + 1) % config.evaluate_every == 0 and step + 1 < config.max_steps:
            evaluated(step + 1)
        if ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            save_checkpoint(ckpt, model, optimizer, step + 1, losses, config, evaluations)
            if on_checkpoint is not None and step + 1 < config.max_steps:
                on_checkpoint(step + 1, losses, evaluations)
    bar.close()
    seconds = time.perf_counter() - began
    evaluated(config.max_steps)
    if ckpt is not None:
        save_checkpoint(ckpt, model, optimizer, config.max_steps, losses, config, evaluations)
    inference_mode(model)
    return TrainResult(config.max_steps - start, losses, tokens, padded, seconds, evaluations)


def leave_one_out_views(dataset: ArcDataset, task_ids: Sequence[str], rng: np.random.Generator, views: int,
                        options: AugmentOptions = AugmentOptions(), min_train: int = 1) -> ArcDataset:
    """Test-time training data: leave-one-out tasks from the given tasks' own examples, ``views``
    random views of each (the identity view included)."""
    loo = dataset.subset(task_ids).leave_one_out(min_train=min_train)
    if not loo.tasks:
        return loo
    return loo.augment(rng, n=max(0, views - 1), options=options, keep_original=True)


def held_out_metrics(model: torch.nn.Module, collate, dataset: ArcDataset, fmt,
                     keys: Sequence[Key] | None = None) -> dict[str, float]:
    """Held-out loss and accuracy of the keys' tasks, in one forward pass per key, no gradients.

    ``loss``: mean loss per output token, labels from ``collate`` (as in training). ``accuracy``: the
    share of keys whose test output the model would write greedily: every token of it (and the end of
    the grid) is the most likely next token given the true text before it. Without a token mask that is
    exactly greedy decoding's success, for far less than decoding costs. ``collate`` is the model layer's
    masking collator (its ``mask_first_n_outputs`` is set on a copy to label the test output alone).
    """
    keys = list(dataset.keys if keys is None else keys)
    device = compute_device(model)
    total_loss, total_tokens, right = 0.0, 0, 0
    inference_mode(model)
    with torch.inference_mode():
        for key in keys:
            rendered = dataset.render(key, fmt)
            batch = collate([rendered])
            test_only = copy.copy(collate)
            test_only.mask_first_n_outputs = len(rendered.output_spans) - 1
            test_labels = test_only([rendered])["labels"][:, 1:].to(device)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            total_loss += float(torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels,
                                                                  ignore_index=IGNORE_INDEX, reduction="sum"))
            total_tokens += int((labels != IGNORE_INDEX).sum())
            scored = test_labels != IGNORE_INDEX
            right += bool((logits.argmax(-1)[scored] == test_labels[scored]).all())
    return {"loss": total_loss / max(1, total_tokens), "accuracy": right / max(1, len(keys))}
