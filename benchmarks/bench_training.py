"""Training throughput: tokens per second of LoRA training and the share of padding, variants side by side
in one run.

    .venv/bin/python -m benchmarks.bench_training [--compare trainer|vocabulary] [--steps 4] [--rounds 3]

--compare trainer (default): the trainer as it was (float32, micro-batches in drawn order) against the
trainer's defaults (bfloat16 autocast where the processor has native bfloat16, each step's sequences
grouped by length), both on the shrunk vocabulary with the SmolLM2 fine-tuning preset's batch shape
(--batch-size 2 --grad-accumulation 2) and random views of ARC-AGI-1 training tasks fitted to
--max-length tokens; and the defaults with one sequence per micro-batch (the same 4 sequences per
optimizer step, no padding at all). Every variant draws exactly the same sequences, so their step losses
compare directly: the largest difference per step is printed (bfloat16 rounding, nothing else).

--compare vocabulary: the full vocabulary against the vocabulary shrunk to the format's characters.

Variants alternate A, B, C, A, B, C ... for --rounds rounds so that load on the machine hits both alike;
the report gives medians, the ratio and the padding share.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from training_code import model_tools
from training_code.arc_loader import ArcDataset
from training_code.cli import checked
from training_code.formats import format_from_spec
from training_code.training import TrainConfig, TrainResult, train

# name -> (shrink the vocabulary, bf16 setting, group by length, one sequence per micro-batch); the first
# variant of each comparison is the reference the others are measured against
VARIANTS = {
    "trainer": {"float32, drawn order": (True, "no", False, False), "defaults": (True, "auto", True, False),
                "defaults, micro-batch 1": (True, "auto", True, True)},
    "vocabulary": {"full": (False, "no", False, False), "shrunk": (True, "no", False, False)},
}


def variant(model_source: str, shrink: bool, args):
    loaded = model_tools.load_model(model_source)
    fmt = format_from_spec(args.format, eos=loaded.tokenizer.eos_token)
    if shrink:
        loaded, _ = model_tools.shrink_for_format(loaded, fmt)
    return loaded, fmt


def run_once(loaded, fmt, data: ArcDataset, args, bf16: str, group: bool, single: bool) -> TrainResult:
    """A few optimizer steps on a fresh LoRA; the adapter is removed afterwards. ``single``: the step's
    sequences one per micro-batch (no padding at all), the same sequences per optimizer step."""
    model = model_tools.add_lora(loaded.model, r=16, alpha=32, train_embeddings=True, seed=0)
    collate = model_tools.MaskingCollator(loaded.tokenizer, max_length=args.max_length, add_special_tokens=False)
    per_step = args.batch_size * args.grad_accumulation
    batch_size, accumulation = (1, per_step) if single else (args.batch_size, args.grad_accumulation)
    config = TrainConfig(max_steps=args.steps, batch_size=batch_size, grad_accumulation=accumulation,
                         on_the_fly=args.compare == "trainer", progress=False, log_every=0,
                         max_length=args.max_length, seed=0, bf16=bf16, group_by_length=group)
    result = train(model, collate, data, fmt, config, count_tokens=model_tools.token_counter(loaded.tokenizer))
    model_tools.remove_adapter(model)
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=sorted(VARIANTS), default="trainer")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--format", default="architects", type=checked(format_from_spec))
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--grad-accumulation", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--tasks", type=int, default=32, help="training tasks in the fixed data")
    args = parser.parse_args(argv)

    variants = VARIANTS[args.compare]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}; batch "
          f"{args.batch_size} x {args.grad_accumulation} accumulation, {args.steps} steps per measurement, "
          f"{args.rounds} rounds")
    models = {shrink: variant(args.model, shrink, args) for shrink in {v[0] for v in variants.values()}}
    source = ArcDataset.from_bundled("arc-agi-1/training")
    rng = np.random.default_rng(0)
    ids = sorted(source.tasks)
    chosen = [ids[i] for i in sorted(rng.choice(len(ids), size=args.tasks, replace=False))]
    subset = source.subset(chosen)
    # the same texts for every variant: views that fit the budget whole under each tokenizer
    fits = set(subset.keys)
    for loaded, fmt in models.values():
        fits &= set(subset.filter_by_length(fmt, args.max_length, model_tools.token_counter(loaded.tokenizer)).keys)
    data = subset.with_keys([k for k in subset.keys if k in fits])
    if not data.keys:
        parser.error(f"none of the {args.tasks} tasks fits --max-length {args.max_length}: raise either")
    print(f"{len(data.keys)} of {len(subset.keys)} tasks fit {args.max_length} tokens under every vocabulary")
    results: dict[str, list[TrainResult]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (shrink, bf16, group, single) in variants.items():
            loaded, fmt = models[shrink]
            began = time.perf_counter()
            results[name].append(run_once(loaded, fmt, data, args, bf16, group, single))
            print(f"round {r + 1} {name}: {results[name][-1].tokens_per_second:.1f} tokens/s "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"\n{'variant':<22} {'tokens/s (median)':>18} {'min':>8} {'max':>8} {'s per step':>11} "
          f"{'padding share':>14}")
    speed, step_time = {}, {}
    for name, rows in results.items():
        speeds = [row.tokens_per_second for row in rows]
        speed[name] = statistics.median(speeds)
        step_time[name] = statistics.median(row.seconds for row in rows) / args.steps
        print(f"{name:<22} {speed[name]:>18.1f} {min(speeds):>8.1f} {max(speeds):>8.1f} {step_time[name]:>11.2f} "
              f"{statistics.median(row.padding_share for row in rows):>14.1%}")
    old, *others = variants
    out = {f"tokens_per_second_{name}": speed[name] for name in variants}
    print()
    for new in others:
        ratio = step_time[old] / step_time[new]
        out["step_ratio" if new == others[0] else f"step_ratio_{new}"] = ratio
        if args.compare == "trainer":
            # the same sequences in every variant, so the ratio of seconds per step is the throughput gain
            gaps = [abs(a - b) for a, b in zip(results[old][0].losses, results[new][0].losses)]
            out["largest_loss_gap" if new == others[0] else f"largest_loss_gap_{new}"] = max(gaps)
            print(f"{new} vs {old}: {ratio:.2f}x faster per step (the same sequences); step losses "
                  f"{', '.join(f'{a:.4f}/{b:.4f}' for a, b in zip(results[old][0].losses, results[new][0].losses))}; "
                  f"largest gap {max(gaps):.4f}")
        else:
            # tokens per second also differ because the full vocabulary merges some characters
            print(f"{new} vs {old}: {ratio:.2f}x faster per step, {speed[new] / speed[old]:.2f}x tokens per second")
    return out


if __name__ == "__main__":
    main()
