"""Decoders side by side, and the candidates they find scored once for the selection benchmark.

    .venv/bin/python -m benchmarks.bench_decoders [--tasks 20] [--views 2] [--thresholds 0.1,0.02]
        [--ttt-steps 8] [--scoring-views 4] [--pool dfs@0.1] [--out benchmarks/results/decoders.json] [--smoke]

On the same model and the same test inputs, in one run: DFS at each threshold of --thresholds, greedy
decoding, and sampling (8 samples, the pipeline's default; EvalConfig has no field for the count).
Each decoder runs through the pipeline's own ``candidates_for`` under the same --views views (the
same keys: every decoder gets a generator seeded alike), without scoring, so the time is decoding
only. With --ttt (the default) each task is first trained on its own examples, once, and every
decoder then runs on that model. Decoders alternate within each task, so load on the machine hits
them alike. Reported per decoder: the median seconds per test input, the mean number of distinct
candidates, the found rate (share of test inputs whose right answer is among the candidates) and
the two-attempt accuracy when the candidates are ranked by generation probability alone.

The candidates of one decoder (--pool) are then scored under --scoring-views augmented views with
the pipeline's ``score_candidates`` and written, with every NLL, to the JSON file; then
``benchmarks.bench_selection`` ranks that same pool every way the pipeline knows.

--smoke: a tiny random model, 2 tasks, 2 views, 2 TTT steps (seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training_code import model_tools
from training_code.candidates import candidates_for, score_candidates
from training_code.cli import OptionError, checked, options, with_options
from training_code.evaluation import (
    EvalConfig,
    load_challenges,
    prepare_session,
    stable_seed,
    test_time_train,
)
from training_code.formats import format_from_spec
from training_code.inference_tools import DEFAULT_SAMPLES
from training_code.model_session import ModelSession
from training_code.report import candidate_to_json
from training_code.run_evaluation_smollm import ADAPTER
from training_code.task_choice import check_task_spec, select_tasks

RESULTS = Path("benchmarks/results")
# max-generation-probability: the one ranking that needs no scoring pass, so decoding is timed alone
UNSCORED = "max-generation-probability"
THREADS_HELP = ("torch CPU threads (0: torch's default). On a CPU shared with other jobs, 1 is far faster: "
                "two threads per process on two busy cores made one-token passes 9x slower here")


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def resolve_adapter(flag: str) -> str:
    """'auto': our SmolLM2 ARC adapter when it exists, else none; otherwise the path given ('' for none)."""
    if flag == "auto":
        return str(ADAPTER) if (ADAPTER / "adapter_config.json").is_file() else ""
    return flag


def session_for(config: EvalConfig, smoke: bool = False) -> ModelSession:
    """The model of ``config`` loaded, shrunk to the format and with its adapter merged, as
    ``run_evaluation`` prepares it; ``smoke``: a tiny random model over the format's alphabet instead."""
    loaded = None
    if smoke:
        loaded = model_tools.build_tiny_model(format_from_spec(config.format).alphabet, seed=config.seed,
                                              hidden_size=32, layers=1, heads=2)
    return prepare_session(config, loaded)


def decoder_names(thresholds: list[float]) -> list[str]:
    """The display names of the decoders compared (see ``decoder_configs``), the choices of ``--pool``."""
    return [f"dfs@{p:g}" for p in thresholds] + ["greedy", f"sample x{DEFAULT_SAMPLES}"]


def decoder_configs(base: EvalConfig, thresholds: list[float]) -> dict[str, EvalConfig]:
    """The decoders to compare, by display name, as pipeline configs without scoring."""
    plain = with_options(base, scoring_views=0, aggregation=UNSCORED)
    min_prob = base.decoding.min_prob
    decoders = [("dfs", p) for p in thresholds] + [("greedy", min_prob), ("sample", min_prob)]
    return {name: with_options(plain, decoder=decoder, min_prob=p)
            for name, (decoder, p) in zip(decoder_names(thresholds), decoders)}


def correct(grid: np.ndarray, truth: np.ndarray) -> bool:
    return bool(np.array_equal(grid, truth))


def run(args: argparse.Namespace) -> dict:
    base = with_options(EvalConfig(), challenges=args.challenges, model=args.model,
                        adapter=resolve_adapter(args.adapter), format=args.format, max_tokens=args.max_tokens,
                        ttt=args.ttt, ttt_steps=args.ttt_steps, ttt_batch_size=2, ttt_learning_rate=3e-4,
                        views=args.views, scoring_views=args.scoring_views, seed=args.seed, progress=False,
                        cache=False, report=False)
    session = session_for(base, smoke=args.smoke)
    dataset, _counts = load_challenges(base)
    solutions = dataset.solutions()
    task_ids = [t for t in select_tasks(dataset, args.tasks, session.fmt) if t in solutions]
    configs = decoder_configs(base, args.thresholds)
    pool = args.pool if args.pool in configs else next(iter(configs))
    print(f"{len(task_ids)} tasks, {sum(len(dataset.tasks[t].test) for t in task_ids)} test inputs; decoders "
          f"{', '.join(configs)}; {args.views} views; TTT {'%d steps' % args.ttt_steps if args.ttt else 'off'}; "
          f"pool {pool!r} scored under {args.scoring_views} views; adapter {base.adapter or 'none'}", flush=True)

    records: list[dict] = []
    began = time.perf_counter()
    result = {"benchmark": "decoders", "command": args.command, "machine": machine(), "config": options(base),
              "pool": pool, "samples": DEFAULT_SAMPLES, "thresholds": args.thresholds, "tasks_selected": task_ids,
              "time_budget": args.time_budget, "records": records}
    for n, task_id in enumerate(task_ids, 1):
        if args.time_budget and time.perf_counter() - began > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s spent: {n - 1} of {len(task_ids)} tasks done", flush=True)
            break
        task = dataset.tasks[task_id]
        ttt_seconds = 0.0
        if args.ttt:
            start = time.perf_counter()
            test_time_train(dataset, task_id, session, base, np.random.default_rng(stable_seed(args.seed, task_id)))
            ttt_seconds = time.perf_counter() - start
            print(f"  {task_id}: TTT {ttt_seconds:.1f} s", flush=True)
        try:
            for index in range(len(task.test)):
                truth = solutions[task_id][index]
                record = {"task_id": task_id, "test_index": index, "ttt_seconds": ttt_seconds, "decoders": {}}
                pool_candidates = []
                for name, config in configs.items():
                    # the same seed for every decoder: the same views, so only the decoder differs
                    rng = np.random.default_rng(stable_seed(args.seed, task_id, index, "views"))
                    start = time.perf_counter()
                    candidates, _ = candidates_for(dataset, task, index, session, config, rng, float("inf"))
                    seconds = time.perf_counter() - start
                    hits = [correct(c.grid, truth) for c in candidates]
                    record["decoders"][name] = {"seconds": seconds, "candidates": len(candidates),
                                                "found": any(hits), "top2": any(hits[:2])}
                    print(f"  {task_id} test {index}: {name} {seconds:.1f} s, {len(candidates)} candidates", flush=True)
                    if name == pool:
                        pool_candidates = candidates
                if pool_candidates and args.scoring_views:
                    rng = np.random.default_rng(stable_seed(args.seed, task_id, index, "scoring"))
                    start = time.perf_counter()
                    score_candidates(dataset, task, index, pool_candidates, session, base, rng)
                    record["scoring_seconds"] = time.perf_counter() - start
                record["pool"] = [{**candidate_to_json(c), "correct": correct(c.grid, truth)} for c in pool_candidates]
                records.append(record)
        finally:
            session.remove_adapter()
        summary = ", ".join(f"{name} {r['candidates']}{'*' if r['found'] else ''} {r['seconds']:.1f}s"
                            for name, r in records[-1]["decoders"].items())
        print(f"[{n}/{len(task_ids)}] {task_id} (TTT {ttt_seconds:.0f}s): {summary}", flush=True)
        result.update(tasks=sorted({r["task_id"] for r in records}), seconds=time.perf_counter() - began,
                      summary=summarize(records, list(configs)))
        save(result, Path(args.out))  # after every task: a killed run keeps what it measured

    result.update(tasks=sorted({r["task_id"] for r in records}), seconds=time.perf_counter() - began,
                  summary=summarize(records, list(configs)))
    return result


def save(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")


def summarize(records: list[dict], names: list[str]) -> dict[str, dict[str, float]]:
    """Per decoder: median seconds per test input, mean candidates, found rate, top-2 rate."""
    table = {}
    for name in names:
        rows = [r["decoders"][name] for r in records]
        table[name] = {
            "test_inputs": len(rows),
            "median_seconds": statistics.median(r["seconds"] for r in rows) if rows else 0.0,
            "mean_seconds": statistics.fmean(r["seconds"] for r in rows) if rows else 0.0,
            "mean_candidates": statistics.fmean(r["candidates"] for r in rows) if rows else 0.0,
            "found_rate": statistics.fmean(r["found"] for r in rows) if rows else 0.0,
            "top2_rate": statistics.fmean(r["top2"] for r in rows) if rows else 0.0,
        }
    return table


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def print_table(result: dict) -> None:
    print(f"\n{'decoder':<12} {'s/test input (median)':>22} {'candidates':>11} {'found':>7} {'top-2':>7}")
    for name, row in result["summary"].items():
        print(f"{name:<12} {row['median_seconds']:>22.2f} {row['mean_candidates']:>11.2f} "
              f"{row['found_rate']:>7.1%} {row['top2_rate']:>7.1%}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on these machines
    import matplotlib.pyplot as plt

    names = list(result["summary"])
    rows = [result["summary"][n] for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [("median seconds per test input", [r["median_seconds"] for r in rows], "{:.1f}"),
              ("distinct candidates (mean)", [r["mean_candidates"] for r in rows], "{:.1f}"),
              ("found rate (right answer among candidates)", [100 * r["found_rate"] for r in rows], "{:.0f}%")]
    for ax, (title, values, label) in zip(axes, panels):
        ax.set_ylim(0, 105 if label.endswith("%") else max(values + [1.0]) * 1.15)
        bars = ax.bar(names, values, color=(["#0074D9", "#7FDBFF", "#39CCCC"] * 3)[: len(names) - 2]
                      + ["#AAAAAA", "#FF851B"])
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8, rotation=20)
        for bar, value in zip(bars, values):
            ax.annotate(label.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    n = rows[0]["test_inputs"] if rows else 0
    fig.suptitle(f"Decoders on {n} test inputs, {result['config']['views']} views each ({result['machine']})",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--challenges", default="input/arc-agi_evaluation_challenges.json")
    parser.add_argument("--tasks", default="20", help="a count N (the N shortest renderings), ids joined by commas, "
                                                      "or '' for all")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default="auto", help="'auto': models/smollm2-arc/adapter when present; '' none")
    parser.add_argument("--format", default="architects", type=checked(format_from_spec))
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--thresholds", default="0.1,0.02", help="DFS thresholds joined by commas")
    parser.add_argument("--views", type=int, default=2, help="views each test input is decoded under")
    parser.add_argument("--ttt", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--ttt-steps", type=int, default=8)
    parser.add_argument("--scoring-views", type=int, default=4, help="views the pool is scored under (0: none)")
    parser.add_argument("--pool", default="", help="the decoder whose candidates are scored (default: the first DFS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="seconds; start no new task after this (0: none); the tasks done are reported")
    parser.add_argument("--out", default=str(RESULTS / "decoders.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny random model, 2 tasks, tiny settings")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.views, args.ttt_steps, args.scoring_views, args.adapter = "2", 2, 2, 2, ""
        # a random model spreads its probability thinly: DFS finds nothing above a useful threshold,
        # so the smoke run scores the sampled candidates instead
        args.pool = args.pool or f"sample x{DEFAULT_SAMPLES}"
    try:
        args.thresholds = [float(x) for x in args.thresholds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"argument --thresholds: invalid value {args.thresholds!r}: expected numbers joined by commas")
    if not args.thresholds or not all(0 < p <= 1 for p in args.thresholds):
        parser.error(f"argument --thresholds: {args.thresholds!r}: each DFS threshold must be in (0, 1]")
    args.pool = args.pool or f"dfs@{args.thresholds[0]:g}"
    pools = decoder_names(args.thresholds)
    if args.pool not in pools:
        parser.error(f"argument --pool: invalid choice: {args.pool!r} (choose from {', '.join(pools)})")
    try:
        check_task_spec(args.tasks, args.challenges)
    except OptionError as e:
        parser.error(str(e))
    args.command = " ".join([".venv/bin/python -m benchmarks.bench_decoders",
                         *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    result = run(args)
    out = Path(args.out)
    save(result, out)
    plot(result, out.with_suffix(".png"))
    print_table(result)
    print(f"\n{out} and {out.with_suffix('.png')} written ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
