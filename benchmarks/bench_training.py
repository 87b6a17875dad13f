"""Training throughput: tokens per second of LoRA training, the share of padding, and the gain from
the shrunk vocabulary, measured side by side in one run.

    .venv/bin/python -m benchmarks.bench_training [--model smollm2-135m] [--steps 4] [--rounds 3]

The same model, data (ARC-AGI-1 training tasks fitted to --max-length tokens), LoRA settings and
batches are trained with the full vocabulary and with the vocabulary shrunk to the format's
characters, alternating A, B, A, B ... for --rounds rounds so that load on the machine hits both
alike. Reports the median tokens per second (padding excluded) of each, their ratio, and the
padding share at the chosen batch size.
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
from training_code.training import TrainConfig, train


def variant(model_source: str, shrink: bool, args):
    loaded = model_tools.load_model(model_source)
    fmt = format_from_spec(args.format, eos=loaded.tokenizer.eos_token)
    if shrink:
        loaded, _ = model_tools.shrink_for_format(loaded, fmt)
    return loaded, fmt


def run_once(loaded, fmt, data: ArcDataset, args) -> tuple[float, float, float]:
    """(tokens per second, padding share, seconds) of a few optimizer steps on a fresh LoRA."""
    model = model_tools.add_lora(loaded.model, r=16, alpha=32, train_embeddings=True, seed=0)
    collate = model_tools.MaskingCollator(loaded.tokenizer, max_length=args.max_length, add_special_tokens=False)
    config = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, on_the_fly=False, progress=False,
                         log_every=0, max_length=args.max_length, seed=0)
    result = train(model, collate, data, fmt, config)
    model_tools.remove_adapter(model)
    return result.tokens_per_second, result.padding_share, result.seconds


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--format", default="architects", type=checked(format_from_spec))
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--tasks", type=int, default=32, help="training tasks in the fixed data")
    args = parser.parse_args(argv)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}; "
          f"batch {args.batch_size}, {args.steps} steps per measurement, {args.rounds} rounds")
    variants = {name: variant(args.model, shrink, args) for name, shrink in (("full", False), ("shrunk", True))}
    source = ArcDataset.from_bundled("arc-agi-1/training")
    rng = np.random.default_rng(0)
    ids = sorted(source.tasks)
    chosen = [ids[i] for i in sorted(rng.choice(len(ids), size=args.tasks, replace=False))]
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    # the same texts for both: views that fit the budget whole under either tokenizer
    subset = source.subset(chosen)
    fits = set(subset.keys)
    for loaded, fmt in variants.values():
        fits &= set(subset.filter_by_length(fmt, args.max_length, model_tools.token_counter(loaded.tokenizer)).keys)
    data = subset.with_keys([k for k in subset.keys if k in fits])
    print(f"{len(data.keys)} of {len(subset.keys)} views fit {args.max_length} tokens under both vocabularies")
    for r in range(args.rounds):
        for name, (loaded, fmt) in variants.items():
            began = time.perf_counter()
            results[name].append(run_once(loaded, fmt, data, args))
            print(f"round {r + 1} {name}: {results[name][-1][0]:.1f} tokens/s "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"\n{'vocabulary':<10} {'tokens/s (median)':>18} {'min':>8} {'max':>8} {'s per step':>11} "
          f"{'padding share':>14}")
    speed, step_time = {}, {}
    for name, rows in results.items():
        speeds = [row[0] for row in rows]
        speed[name] = statistics.median(speeds)
        step_time[name] = statistics.median(row[2] for row in rows) / args.steps
        print(f"{name:<10} {speed[name]:>18.1f} {min(speeds):>8.1f} {max(speeds):>8.1f} {step_time[name]:>11.2f} "
              f"{statistics.median(row[1] for row in rows):>14.1%}")
    # the same texts in both runs, so seconds per step compare like with like; tokens per second also
    # differ because the full vocabulary merges some characters (e.g. the preprompt letters)
    print(f"\nshrunk vs full: {step_time['full'] / step_time['shrunk']:.2f}x faster per step, "
          f"{speed['shrunk'] / speed['full']:.2f}x tokens per second")
    return {"step_ratio": step_time["full"] / step_time["shrunk"], "tokens_per_second_full": speed["full"],
            "tokens_per_second_shrunk": speed["shrunk"]}


if __name__ == "__main__":
    main()
