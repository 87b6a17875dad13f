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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import model_tools
from .arc_loader import ArcDataset, DataPart, base_task_id, dataset_grids
from .cli import options, parse_config, save_config
from .formats import format_from_spec
from .induction.code_tasks import CODE_PROMPT_VERSIONS, code_alphabet
from .plots import plot_training
from .sources import check_train_dataset, load_source, parse_sources, source_spec
from .training import TrainConfig, TrainResult, held_out_metrics, train

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """A fine-tuning run. Sources are any spec `sources.load_source` understands."""

    model: str = field(default="smollm2-135m", metadata={"help": "bundled model name or a local model path"})
    name: str = field(default="smollm2-arc", metadata={"help": "output folder under --models-dir"})
    models_dir: str = "models"
    train_datasets: tuple[str, ...] = field(default=("arc-agi-1/training output-from-examples",), metadata={
        "help": "SOURCE PROMPT_VERSION; SOURCE may end in *WEIGHT; the source 'code' (tasks with programs) "
                "also takes the versions code-from-examples and output-from-code", "check": check_train_dataset})
    format: str = field(default="architects", metadata={"help": "text format spec", "check": format_from_spec})
    backend: str = field(default="auto", metadata={"help": "the model's library", "choices": model_tools.BACKENDS})
    load_in_4bit: str = field(default="auto", metadata={
        "help": "auto: 4-bit on CUDA", "choices": model_tools.FOUR_BIT_CHOICES})
    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    use_rslora: bool = False
    train_embeddings: bool = field(default=True, metadata={"help": "also train embeddings and head in full"})
    # where a fine-tune differs from a bare TrainConfig: the ARChitects mask the first output (nothing
    # precedes it to learn from), and a run of hours checkpoints
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=200, mask_first_n_outputs=1, checkpoint_every=50), metadata={"flags": ""})
    merge: bool = field(default=True, metadata={"help": "also save a merged model (adapter folded in)"})
    held_out_tasks: int = field(default=0, metadata={
        "help": "tasks of the first source kept out of training (and every task sharing a grid with them) to "
                "measure held-out loss and accuracy (0: none)"})
    never_train_on: tuple[str, ...] = field(default=("arc-agi-1/evaluation",), metadata={
        "help": "sources whose grids never enter training: a task of any part with a grid of theirs is left out",
        "check": source_spec})
    init_adapter: str = field(default="", metadata={
        "help": "start from this saved adapter instead of a fresh LoRA (with --first-step, continue its run)"})


def adapter_folder(config: FinetuneConfig) -> Path:
    """Where a run of ``config`` saves its LoRA adapter (an evaluation preset's default adapter points here)."""
    return Path(config.models_dir) / config.name / "adapter"


def without_protected(parts: Sequence[DataPart], protected_grids: set, protected_ids: set[str]) -> tuple[
        list[DataPart], dict[str, int]]:
    """The parts without any task that has a grid in ``protected_grids`` or derives from a task in
    ``protected_ids`` (``<id>-rev``, ``<id>-g3``: see ``base_task_id``); with the count left out per part."""
    kept, dropped = [], {}
    for part in parts:
        leaving = set(part.dataset.sharing_grids(protected_grids))
        leaving.update(t for t in part.dataset.tasks if base_task_id(t) in protected_ids)
        dataset = part.dataset.without(leaving) if leaving else part.dataset
        kept.append(DataPart(dataset, part.prompt_version, part.weight))
        dropped[part.dataset.name] = dropped.get(part.dataset.name, 0) + len(leaving)
    return kept, dropped


def without_repeats(parts: Sequence[DataPart]) -> tuple[list[DataPart], dict[str, int]]:
    """The parts without a task id that an earlier part in the same prompt version already has (ARC-AGI-2
    training repeats 391 ARC-AGI-1 training tasks under their ids); with the count left out per part."""
    seen: dict[str, set[str]] = {}
    kept, dropped = [], {}
    for part in parts:
        earlier = seen.setdefault(part.prompt_version, set())
        repeated = [t for t in part.dataset.tasks if t in earlier]
        dataset = part.dataset.without(repeated) if repeated else part.dataset
        earlier.update(part.dataset.tasks)
        kept.append(DataPart(dataset, part.prompt_version, part.weight))
        dropped[part.dataset.name] = dropped.get(part.dataset.name, 0) + len(repeated)
    return kept, dropped


def fitting_parts(parts: Sequence[DataPart], fmt, max_length: int, count_tokens) -> tuple[list[DataPart],
                                                                                           dict[str, int]]:
    """The parts without the keys that cannot fit ``max_length`` tokens even with one training example
    (drawing them would only waste draws); with the count left out per part."""
    kept, dropped = [], {}
    for part in parts:
        _fitted, too_long = part.dataset.fit_to_budget(fmt, max_length, count_tokens, part.prompt_version)
        gone = {key for key, _length in too_long}
        dataset = part.dataset.with_keys([k for k in part.dataset.keys if k not in gone]) if gone else part.dataset
        kept.append(DataPart(dataset, part.prompt_version, part.weight))
        dropped[part.dataset.name] = dropped.get(part.dataset.name, 0) + len(gone)
    return kept, dropped


def training_alphabet(fmt, parts: Sequence[DataPart]) -> str:
    """The characters the shrunk vocabulary keeps: the format's, or the code alphabet when any part is
    rendered in a code prompt version (programs use most printable characters)."""
    if any(p.prompt_version in CODE_PROMPT_VERSIONS for p in parts):
        return code_alphabet(fmt)
    return fmt.alphabet


def held_out_split(config: FinetuneConfig, first: ArcDataset) -> tuple[ArcDataset, ArcDataset]:
    """(held-out tasks, the rest) of a run's first source. A generator of its own: the held-out tasks do not
    depend on which other sources are mixed in, so every run of a preset (and bench_heldout) holds out the
    same ones."""
    return first.split(config.held_out_tasks / len(first.tasks), np.random.default_rng(config.train.seed))


def training_data(config: FinetuneConfig, parts: Sequence[DataPart], fmt, count_tokens,
                  rng: np.random.Generator) -> tuple[list[DataPart], ArcDataset | None, dict]:
    """What a run trains on, from its parsed sources: the held-out tasks split off the first source, every
    task with a grid of ``never_train_on`` or of a held-out task left out, repeats of an earlier source
    left out, and keys too long to fit left out. Returns (parts, held-out tasks or None, what was left
    out, for the log)."""
    parts = list(parts)
    held_out = None
    if config.held_out_tasks:
        held_out, kept = held_out_split(config, parts[0].dataset)
        parts[0] = DataPart(kept, parts[0].prompt_version, parts[0].weight)
    protected = [load_source(spec, rng, skip_bad=True)[0] for spec in config.never_train_on]
    protected_grids = dataset_grids(*protected, *([held_out] if held_out is not None else []))
    parts, dropped = without_protected(parts, protected_grids, set(held_out.tasks) if held_out is not None else set())
    parts, repeated = without_repeats(parts)
    parts, too_long = fitting_parts(parts, fmt, config.train.max_length, count_tokens)
    for what, counts in (("tasks with a grid of a protected set or of a held-out task", dropped),
                         ("tasks already in an earlier source", repeated),
                         (f"test inputs longer than {config.train.max_length} tokens with one example", too_long)):
        for name, count in counts.items():
            if count:
                log.info("%s: %d %s left out", name, count, what)
    info = {"parts": [(p.dataset.name, p.prompt_version, p.weight, len(p.dataset.keys)) for p in parts],
            "never_train_on": list(config.never_train_on), "left_out_protected": dropped,
            "left_out_repeats": repeated, "left_out_too_long": too_long}
    return parts, held_out, info


def run_finetune(config: FinetuneConfig) -> TrainResult:
    out = Path(config.models_dir) / config.name
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "finetune_config.json")
    train_config = config.train
    rng = np.random.default_rng(train_config.seed)
    loaded = model_tools.load_model(config.model, backend=config.backend, max_seq_length=train_config.max_length,
                                    load_in_4bit=model_tools.four_bit_option(config.load_in_4bit))
    fmt = format_from_spec(config.format, eos=loaded.tokenizer.eos_token)
    parts = parse_sources(config.train_datasets, rng)
    loaded, _mapping = model_tools.shrink_for_format(loaded, fmt, training_alphabet(fmt, parts))
    if config.init_adapter:
        model = model_tools.load_adapter(loaded.model, config.init_adapter, is_trainable=True,
                                         tokenizer=loaded.tokenizer)
    else:
        model = model_tools.add_lora(loaded.model, r=config.lora_r, alpha=config.lora_alpha,
                                     dropout=config.lora_dropout, use_rslora=config.use_rslora,
                                     train_embeddings=config.train_embeddings, seed=train_config.seed,
                                     backend=loaded.backend)
    collate = model_tools.MaskingCollator(loaded.tokenizer, mask_first_n_outputs=train_config.mask_first_n_outputs,
                                          max_length=train_config.max_length, add_special_tokens=False)

    count_tokens = model_tools.token_counter(loaded.tokenizer)
    parts, held_out, log_entry = training_data(config, parts, fmt, count_tokens, rng)
    evaluate = None
    if held_out is not None:
        held_out, _too_long = held_out.fit_to_budget(fmt, train_config.max_length, count_tokens)

        def evaluate() -> dict:
            return held_out_metrics(model, collate, held_out, fmt)

    # a resumed run continues the runs its log records (a killed run's log is its last snapshot)
    resumed = (out / "checkpoint" / "checkpoint.pt").is_file()
    log_entry["earlier_runs"] = earlier_runs(out / "train_log.json") if resumed else []
    if held_out is not None:
        log_entry["held_out_tasks"] = sorted(held_out.tasks)
    began = time.time()

    def write_log(steps: int, losses: list[float], evaluations: list[dict], **more) -> None:
        entry = {**log_entry, "held_out": evaluations, **more}
        if evaluations:
            entry.update(held_out_loss_before=evaluations[0]["loss"], held_out_loss_after=evaluations[-1]["loss"],
                         held_out_accuracy_after=evaluations[-1]["accuracy"])
        # steps: optimizer steps the adapter has had in all; a resumed run adds only steps_this_run
        entry.update(steps=steps, max_steps=train_config.max_steps, seconds_this_run=time.time() - began,
                     losses=losses, config=options(config))
        (out / "train_log.json").write_text(json.dumps(entry, indent=1, default=str), encoding="utf-8")

    def adapter_as_it_stands(step: int, losses: list[float], evaluations: list[dict]) -> None:
        # a long run on a CPU goes on for hours: its adapter, log and curve are usable at every checkpoint
        model_tools.save_adapter(model, adapter_folder(config), loaded.tokenizer)
        write_log(step, losses, evaluations, in_progress=True)
        plot_training(losses, evaluations, out / "loss.png", title=f"{config.name}, step {step}")

    result = train(model, collate, parts, fmt, train_config, checkpoint_dir=out / "checkpoint",
                   count_tokens=count_tokens, description=f"finetune {config.name}", evaluate=evaluate,
                   on_checkpoint=adapter_as_it_stands)
    model_tools.save_adapter(model, adapter_folder(config), loaded.tokenizer)
    # the log before the merge: a merge that fails (out of memory, say) must not lose the record of hours of training
    write_log(train_config.max_steps, result.losses, result.evaluations if held_out is not None else [],
              steps_this_run=result.steps, tokens_this_run=result.tokens,
              tokens_per_second=result.tokens_per_second, padding_share=result.padding_share)
    plot_training(result.losses, result.evaluations, out / "loss.png", title=config.name)
    log.info("saved %s (adapter, training log and loss.png); final loss %.4f", out,
             result.losses[-1] if result.losses else float("nan"))
    if config.merge:
        if model_tools.is_quantized(model):
            del model, loaded  # the 4-bit model out of memory before the 16-bit one loads
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            model_tools.merge_saved_adapter(config.model, adapter_folder(config), out / "merged",
                                            max_seq_length=train_config.max_length)
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
