"""Adapters compared on tasks none of them trained on: loss per output token and accuracy (the share of
test inputs whose output greedy decoding would write), side by side in one run.

    .venv/bin/python -m benchmarks.bench_heldout --adapters models/smollm2-arc/adapter other/adapter
    .venv/bin/python -m benchmarks.bench_heldout --adapters none models/smollm2-arc/adapter --evaluation-tasks 50

Two sets of tasks: the SmolLM2 fine-tuning preset's held-out ARC-AGI-1 training tasks (the 20 its runs
measure; every task sharing a grid with them is kept out of its training mix), and with
--evaluation-tasks N the N ARC-AGI-1 evaluation tasks with the shortest rendering (never trained on by
any run of the project). Every test input in its identity view, examples dropped to fit --max-length
tokens as in training. ``none`` is the base model without an adapter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from training_code import model_tools
from training_code.arc_loader import ArcDataset
from training_code.finetune import held_out_split
from training_code.formats import format_from_spec
from training_code.run_finetune_smollm import PRESET
from training_code.training import held_out_metrics


def held_out_tasks() -> ArcDataset:
    """The preset's held-out tasks: the same split of its first source that every run of it makes."""
    held_out, _kept = held_out_split(PRESET, ArcDataset.from_bundled(PRESET.train_datasets[0].split()[0]))
    return held_out


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", required=True, help="adapter folders, or 'none' for the base")
    parser.add_argument("--model", default=PRESET.model)
    parser.add_argument("--max-length", type=int, default=PRESET.train.max_length)
    parser.add_argument("--evaluation-tasks", type=int, default=0,
                        help="also the N shortest ARC-AGI-1 evaluation tasks")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    for adapter in args.adapters:
        if adapter != "none" and not (Path(adapter) / "adapter_config.json").is_file():
            parser.error(f"--adapters: {adapter} is not an adapter folder (no adapter_config.json)")

    loaded = model_tools.load_model(args.model)
    fmt = format_from_spec(PRESET.format, eos=loaded.tokenizer.eos_token)
    loaded, _ = model_tools.shrink_for_format(loaded, fmt)
    count = model_tools.token_counter(loaded.tokenizer)
    collate = model_tools.MaskingCollator(loaded.tokenizer, mask_first_n_outputs=PRESET.train.mask_first_n_outputs,
                                          max_length=args.max_length, add_special_tokens=False)
    sets = {"held-out training tasks": held_out_tasks()}
    if args.evaluation_tasks:
        evaluation = ArcDataset.from_bundled("arc-agi-1/evaluation")
        by_length = sorted(zip(evaluation.lengths(fmt, count), (k.task_id for k in evaluation.keys)))
        shortest = list(dict.fromkeys(task_id for _length, task_id in by_length))[:args.evaluation_tasks]
        sets[f"{args.evaluation_tasks} shortest evaluation tasks"] = evaluation.subset(shortest)
    fitted = {}
    for name, tasks in sets.items():
        fitted[name], too_long = tasks.fit_to_budget(fmt, args.max_length, count)
        print(f"{name}: {len(fitted[name].keys)} test inputs ({len(too_long)} too long even with one example)")

    results: dict[str, dict[str, dict[str, float]]] = {}
    for adapter in args.adapters:
        model = loaded.model if adapter == "none" else model_tools.load_adapter(loaded.model, adapter,
                                                                                 tokenizer=loaded.tokenizer)
        began = time.perf_counter()
        results[adapter] = {name: held_out_metrics(model, collate, data, fmt) for name, data in fitted.items()}
        print(f"{adapter}: {time.perf_counter() - began:.0f} s", flush=True)
        if adapter != "none":
            model_tools.remove_adapter(model)
    print(f"\n{'adapter':<45} " + " ".join(f"{name[:30]:>32}" for name in sets))
    for adapter, by_set in results.items():
        cells = [f"loss {r['loss']:.3f}, accuracy {100 * r['accuracy']:4.1f}%" for r in by_set.values()]
        print(f"{adapter:<45} " + " ".join(f"{c:>32}" for c in cells))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
