"""Fine-tuning: teach a base model ARC in general (LoRA), then save the adapter and a merged model.

    load base model -> shrink vocabulary to the format (to the code alphabet when a source uses a code
    prompt version) -> add LoRA -> train on the mixed sources
    -> save adapter, config and training log under models/<name>/, then the merged model
    (a 4-bit run merges into the base loaded again in 16 bits: see model_tools.merge_saved_adapter)

The run_finetune_* scripts are presets of `FinetuneConfig` and one call to `main`.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import model_tools
from .arc_loader import CODE_SOURCE, AugmentOptions, load_source
from .cli import parse_config, save_config
from .code_tasks import CODE_PROMPT_VERSIONS, CodeTaskDataset, code_alphabet
from .formats import PROMPT_VERSIONS, format_from_spec
from .training import DataPart, TrainConfig, TrainResult, evaluation_loss, train

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """A fine-tuning run. Sources are any spec `arc_loader.load_source` understands."""

    model: str = field(default="smollm2-135m", metadata={"help": "bundled model name or a local model path"})
    name: str = field(default="smollm2-arc", metadata={"help": "output folder under --models-dir"})
    models_dir: str = "models"
    train_datasets: tuple[str, ...] = field(default=("arc-agi-1/training output-from-examples",), metadata={
        "help": "SOURCE PROMPT_VERSION; SOURCE may end in *WEIGHT; the source 'code' (tasks with programs) "
                "also takes the versions code-from-examples and output-from-code"})
    format: str = field(default="architects", metadata={"help": "text format spec"})
    backend: str = "auto"
    load_in_4bit: str = field(default="auto", metadata={"help": "auto (4-bit on CUDA), yes or no"})
    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    use_rslora: bool = False
    train_embeddings: bool = field(default=True, metadata={"help": "also train embeddings and head in full"})
    learning_rate: float = 1e-4
    embedding_learning_rate: float = 1e-5
    max_steps: int = 200
    batch_size: int = 4
    grad_accumulation: int = 1
    warmup_ratio: float = 0.25
    max_length: int = 8192
    mask_first_n_outputs: int = 1
    gradient_checkpointing: bool = False
    on_the_fly: bool = field(default=True, metadata={"help": "a fresh random view per draw (else precomputed)"})
    keep_background: bool = False
    checkpoint_every: int = 50
    seed: int = 0
    merge: bool = field(default=True, metadata={"help": "also save a merged model (adapter folded in)"})
    held_out_tasks: int = field(default=0, metadata={
        "help": "tasks of the first source kept out of training to measure loss before and after (0: none)"})


def parse_sources(specs: Sequence[str], rng: np.random.Generator) -> list[DataPart]:
    """``SOURCE PROMPT_VERSION`` entries as weighted data parts (``code code-from-examples``: the tasks
    with programs in a code prompt version)."""
    parts = []
    versions = (*PROMPT_VERSIONS, *CODE_PROMPT_VERSIONS)
    for spec in specs:
        words = spec.split()
        if len(words) != 2 or words[1] not in versions:
            raise ValueError(f"train dataset {spec!r}: expected 'SOURCE PROMPT_VERSION' with a version from "
                             f"{', '.join(versions)}")
        dataset, weight = load_source(words[0], rng, skip_bad=True)
        if words[1] in CODE_PROMPT_VERSIONS and not isinstance(dataset, CodeTaskDataset):
            raise ValueError(f"train dataset {spec!r}: {words[1]} needs tasks with programs: the source "
                             f"{CODE_SOURCE!r} (or {CODE_SOURCE}*WEIGHT)")
        parts.append(DataPart(dataset, words[1], weight))
    return parts


def training_alphabet(fmt, parts: Sequence[DataPart]) -> str:
    """The characters the shrunk vocabulary keeps: the format's, or the code alphabet when any part is
    rendered in a code prompt version (programs use most printable characters)."""
    if any(p.prompt_version in CODE_PROMPT_VERSIONS for p in parts):
        return code_alphabet(fmt)
    return fmt.alphabet


def run_finetune(config: FinetuneConfig) -> TrainResult:
    out = Path(config.models_dir) / config.name
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "finetune_config.json")
    rng = np.random.default_rng(config.seed)
    loaded = model_tools.load_model(config.model, backend=config.backend, max_seq_length=config.max_length,
                                    load_in_4bit=model_tools.four_bit_option(config.load_in_4bit))
    fmt = format_from_spec(config.format, eos=loaded.tokenizer.eos_token)
    parts = parse_sources(config.train_datasets, rng)
    loaded, _mapping = model_tools.shrink_for_format(loaded, fmt, training_alphabet(fmt, parts))
    held_out = None
    if config.held_out_tasks:
        first = parts[0].dataset
        held_out, kept = first.split(config.held_out_tasks / len(first.tasks), rng)
        parts[0] = DataPart(kept, parts[0].prompt_version, parts[0].weight)
    model = model_tools.add_lora(loaded.model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                                 use_rslora=config.use_rslora, train_embeddings=config.train_embeddings,
                                 seed=config.seed, backend=loaded.backend)
    collate = model_tools.MaskingCollator(loaded.tokenizer, mask_first_n_outputs=config.mask_first_n_outputs,
                                          max_length=config.max_length, add_special_tokens=False)
    train_config = TrainConfig(
        learning_rate=config.learning_rate, embedding_learning_rate=config.embedding_learning_rate,
        max_steps=config.max_steps, batch_size=config.batch_size, grad_accumulation=config.grad_accumulation,
        warmup_ratio=config.warmup_ratio, seed=config.seed, mask_first_n_outputs=config.mask_first_n_outputs,
        max_length=config.max_length, on_the_fly=config.on_the_fly,
        augment=AugmentOptions(keep_background=config.keep_background),
        gradient_checkpointing=config.gradient_checkpointing, checkpoint_every=config.checkpoint_every)

    count_tokens = model_tools.token_counter(loaded.tokenizer)
    log_entry: dict = {"parts": [(p.dataset.name, p.prompt_version, p.weight, len(p.dataset.keys)) for p in parts]}
    if held_out is not None:
        held_out, _too_long = held_out.fit_to_budget(fmt, config.max_length, count_tokens)
        log_entry["held_out_loss_before"] = evaluation_loss(model, collate, held_out, fmt)
    began = time.time()
    result = train(model, collate, parts, fmt, train_config, checkpoint_dir=out / "checkpoint",
                   count_tokens=count_tokens, description=f"finetune {config.name}")
    if held_out is not None:
        log_entry["held_out_loss_after"] = evaluation_loss(model, collate, held_out, fmt)
        log_entry["held_out_tasks"] = sorted(held_out.tasks)
    model_tools.save_adapter(model, out / "adapter", loaded.tokenizer)
    # steps: optimizer steps the adapter has had in all; a resumed run adds only steps_this_run
    log_entry.update(steps=len(result.losses), steps_this_run=result.steps, max_steps=config.max_steps,
                     seconds_this_run=time.time() - began, tokens_this_run=result.tokens,
                     tokens_per_second=result.tokens_per_second, padding_share=result.padding_share,
                     losses=result.losses, config=asdict(config))
    log_entry["earlier_runs"] = earlier_runs(out / "train_log.json") if result.steps < len(result.losses) else []
    # the log before the merge: a merge that fails (out of memory, say) must not lose the record of hours of training
    (out / "train_log.json").write_text(json.dumps(log_entry, indent=1, default=str), encoding="utf-8")
    log.info("saved %s (adapter and training log); final loss %.4f", out,
             result.losses[-1] if result.losses else float("nan"))
    if config.merge:
        if model_tools.is_quantized(model):
            del model, loaded  # the 4-bit model out of memory before the 16-bit one loads
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            model_tools.merge_saved_adapter(config.model, out / "adapter", out / "merged",
                                            max_seq_length=config.max_length)
        else:
            model_tools.save_merged(model, loaded.tokenizer, out / "merged")
        log.info("saved the merged model in %s", out / "merged")
    return result


RUN_SUMMARY_KEYS = ("steps", "steps_this_run", "seconds_this_run", "tokens_this_run", "tokens_per_second",
                    "padding_share", "held_out_loss_before", "held_out_loss_after")


def earlier_runs(log_path: Path) -> list[dict]:
    """The runs a resumed fine-tune continues, oldest first, read from the log the last one wrote
    (a summary of each: steps, time, throughput, held-out loss); none when there is no readable log."""
    try:
        previous = json.loads(log_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(previous, dict):
        return []
    runs = [r for r in previous.get("earlier_runs", []) if isinstance(r, dict)]
    return runs + [{k: previous[k] for k in RUN_SUMMARY_KEYS if k in previous}]


def main(preset: FinetuneConfig, argv: Sequence[str] | None = None, description: str = "") -> int:
    config = parse_config(preset, argv, description)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run_finetune(config)
    print(f"trained {result.steps} steps, {result.tokens_per_second:.0f} tokens/s, "
          f"final loss {result.losses[-1]:.4f}; saved under {Path(config.models_dir) / config.name}")
    return 0
