"""Ablation in the ARChitects' form: each step adds one idea to the one before.

    .venv/bin/python -m benchmarks.bench_ablation [--preset cpu|gpu] [--tasks 50] [--seeds 3] [--smoke] [--resume]
    .venv/bin/python -m benchmarks.bench_ablation --shard 0/2 --threads 1 --out a.json   # and 1/2 to b.json,
    .venv/bin/python -m benchmarks.bench_ablation --combine a.json b.json --out all.json # side by side

    baseline             greedy decoding of the task as given, no test-time training, no scoring
    +TTT                 the same after test-time training on the task's own examples
    +augmented scoring   greedy under --views views, candidates ranked by product of experts over
                         --scoring-views views
    +DFS                 DFS at --min-prob instead of greedy, the rest as above

The model is the base SmolLM2 with our ARC adapter (models/smollm2-arc/adapter) when it exists
(--model and --adapter choose others). Tasks: the --tasks ARC-AGI-1 evaluation tasks with the
shortest rendering (the pipeline's ``select_tasks`` rule; '' for all 400). Each step is a pipeline
``EvalConfig`` and runs through the pipeline's own functions: ``test_time_train`` once per task and
seed, then ``candidates_for`` for every step from a copy of the same generator, so each step gets
exactly what ``solve_task`` would give it alone, at the cost of one TTT instead of three. Answers are
scored with the pipeline's ``build_submission`` and ``score_submission`` (Kaggle's rule).

The baseline draws nothing at random (greedy, the identity view, no training), so it runs once and
stands for every seed (its standard deviation is 0 by construction). Cost per task: the TTT seconds
(for the steps that train) plus the step's own decoding and scoring seconds, i.e. what the step
would cost run alone.

Presets: "cpu" (50 tasks, 4 TTT steps, 2 views, 2 scoring views, 3 seeds: small enough for a
2-core machine to get through, slowly) and "gpu" (all 400 tasks, 32 TTT steps, 8 views, 8 scoring views, 3 seeds);
"tuning" runs the SmolLM2 evaluation preset as it stands (run_evaluation_smollm.PRESET: its TTT steps, views
and DFS threshold) beside variants that spend more time; any flag given overrides the preset. --resume
continues a killed run from its JSON file.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import astuple
from pathlib import Path

import numpy as np

from benchmarks.bench_decoders import THREADS_HELP, machine, resolve_adapter, session_for, set_threads
from training_code.candidates import candidates_for
from training_code.cli import OptionError, config_from_dict, options, with_options
from training_code.evaluation import (
    EvalConfig,
    load_challenges,
    stable_seed,
    test_time_train,
)
from training_code.formats import FormatParseError
from training_code.grids import ArcDataError, grid_to_list
from training_code.inference_tools import DEFAULT_MIN_PROB
from training_code.metrics import summarize_runs
from training_code.run_evaluation_smollm import PRESET as SMOLLM_PRESET
from training_code.submission import build_submission, score_submission
from training_code.task_choice import check_task_spec, select_tasks

RESULTS = Path("benchmarks/results")

PRESETS = {
    "cpu": dict(tasks="50", seeds=3, ttt_steps=4, views=2, scoring_views=2, max_tokens=4096,
                min_prob=DEFAULT_MIN_PROB),
    "gpu": dict(tasks="", seeds=3, ttt_steps=32, views=8, scoring_views=8, max_tokens=8192,
                min_prob=DEFAULT_MIN_PROB),
    "smoke": dict(tasks="2", seeds=2, ttt_steps=2, views=2, scoring_views=2, max_tokens=1024,
                  min_prob=DEFAULT_MIN_PROB),
    # the SmolLM2 evaluation preset's settings as they stand (run_evaluation_smollm.PRESET), varied one at a
    # time by tuning_steps
    "tuning": dict(tasks="50", seeds=1, ttt_steps=SMOLLM_PRESET.ttt.steps, views=SMOLLM_PRESET.decoding.views,
                   scoring_views=SMOLLM_PRESET.scoring.views, max_tokens=SMOLLM_PRESET.max_tokens,
                   min_prob=SMOLLM_PRESET.decoding.min_prob),
}

# Kaggle 2024's budget: 2 T4 GPUs for 12 hours over about 100 tasks = 14.4 T4-minutes per task.
# The ARChitects: about 2.2 minutes per task for an 8B model on one H100 with 16 views.
ANCHORS = {"ARChitects, 8B, H100, 16 views": 2.2 * 60, "Kaggle 2024 budget (2xT4, 12 h, 100 tasks)": 14.4 * 60}


def steps(base: EvalConfig, min_prob: float) -> dict[str, EvalConfig]:
    """The ablation's configurations, cumulative, by display name."""
    baseline = with_options(base, ttt=False, decoder="greedy", views=1, scoring_views=0,
                            aggregation="max-generation-probability")
    ttt = with_options(baseline, ttt=True)
    scored = with_options(ttt, views=base.decoding.views, scoring_views=base.scoring.views,
                          aggregation="product-of-experts")
    dfs = with_options(scored, decoder="dfs", min_prob=min_prob)
    return {"baseline": baseline, "+TTT": ttt, "+augmented scoring": scored, "+DFS": dfs}


def tuning_steps(base: EvalConfig, min_prob: float) -> dict[str, EvalConfig]:
    """The SmolLM2 preset (TTT, DFS at ``min_prob``, product of experts) and variants that spend more time
    where the faster decoding and scoring left room: a lower DFS threshold, more scoring views, more TTT."""
    preset = with_options(base, ttt=True, decoder="dfs", min_prob=min_prob, aggregation="product-of-experts")
    lower, scoring_views, ttt_steps = min_prob / 2, base.scoring.views, base.ttt.steps
    return {
        "preset": preset,
        f"DFS {lower:g}": with_options(preset, min_prob=lower),
        f"DFS {lower:g}, {2 * scoring_views} scoring views": with_options(preset, min_prob=lower,
                                                                          scoring_views=2 * scoring_views),
        f"{2 * ttt_steps} TTT steps": with_options(preset, ttt_steps=2 * ttt_steps),
    }


def seed_independent(config: EvalConfig) -> bool:
    """True when nothing in the step is drawn at random: no training, the identity view only, no
    sampling, no scoring views."""
    return (not config.ttt.enabled and config.decoding.views == 1 and config.decoding.decoder != "sample"
            and not config.scoring.views)


def ttt_settings(config: EvalConfig) -> tuple:
    """What test-time training depends on: steps that agree on it share one training per task and seed."""
    return (*astuple(config.ttt), config.keep_background, config.seed)


def run_task(dataset, task_id: str, session, configs: dict[str, EvalConfig], seed: int, solutions) -> dict:
    """Every step on one task for one seed: per step, per test input, the two attempts and timings (with
    the seconds of the test-time training the step started from)."""
    task = dataset.tasks[task_id]
    record: dict = {"task_id": task_id, "seed": seed, "ttt_seconds": 0.0, "steps": {}, "error": ""}

    def run_step(name: str, config: EvalConfig, rng: np.random.Generator, ttt_seconds: float) -> None:
        start = time.perf_counter()
        per_input = []
        for index in range(len(task.test)):
            cands, _ = candidates_for(dataset, task, index, session, config, rng, float("inf"))
            truth = solutions[task_id][index]
            per_input.append({"attempts": [grid_to_list(c.grid) for c in cands[:2]], "candidates": len(cands),
                              "found": any(np.array_equal(c.grid, truth) for c in cands)})
        record["steps"][name] = {"seconds": time.perf_counter() - start, "ttt_seconds": ttt_seconds,
                                 "test_inputs": per_input}

    try:
        for name, config in configs.items():  # the steps without training, on the model as loaded
            if not config.ttt.enabled:
                run_step(name, config, np.random.default_rng(stable_seed(seed, task_id)), 0.0)
        groups: dict[tuple, dict[str, EvalConfig]] = {}
        for name, config in configs.items():
            if config.ttt.enabled:
                groups.setdefault(ttt_settings(config), {})[name] = config
        for trained in groups.values():
            # as solve_task: one generator per task feeds TTT and then decoding; each step gets a copy
            # of it as TTT left it, so its views are those it would draw run alone
            rng = np.random.default_rng(stable_seed(seed, task_id))
            start = time.perf_counter()
            test_time_train(dataset, task_id, session, next(iter(trained.values())), rng)
            ttt_seconds = time.perf_counter() - start
            record["ttt_seconds"] += ttt_seconds
            for name, config in trained.items():
                run_step(name, config, copy.deepcopy(rng), ttt_seconds)
            session.remove_adapter()
    except (ArcDataError, RuntimeError, ValueError, MemoryError, FormatParseError) as e:
        # as the pipeline: a failing task is answered with the fallback (no attempts) and the run goes on
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        session.remove_adapter()
    return record


def summarize(records: list[dict], configs: dict[str, EvalConfig], seeds: list[int], test_counts: dict[str, int],
              solutions: dict) -> dict:
    """Per step and seed: the Kaggle score, the found rate and the seconds per task; then mean and std."""
    per_step: dict[str, dict] = {}
    for name, config in configs.items():
        runs = []
        for seed in seeds:
            # a seed-independent step ran once (seed None) and stands for every seed
            rows = [r for r in records if name in r["steps"] and r["seed"] in (seed, None)]
            ranked = {(r["task_id"], i): [np.asarray(a, dtype=np.uint8) for a in t["attempts"]]
                      for r in rows for i, t in enumerate(r["steps"][name]["test_inputs"])}
            score = score_submission(build_submission(test_counts, ranked).submission, solutions)
            found = sum(t["found"] for r in rows for t in r["steps"][name]["test_inputs"])
            # records written before steps kept their own TTT seconds had one training per task
            seconds = [r["steps"][name]["seconds"] + (r["steps"][name].get("ttt_seconds", r["ttt_seconds"])
                                                      if config.ttt.enabled else 0.0) for r in rows]
            runs.append({"score_percent": score.percentage,
                         "found_rate_percent": 100 * found / max(1, sum(test_counts.values())),
                         "seconds_per_task": sum(seconds) / max(1, len(seconds))})
        per_step[name] = {"runs": runs, "mean_std": summarize_runs(runs)}
    return per_step


def plot_trade(result: dict, path: Path) -> None:
    """Score against seconds per task, one point per configuration (the tuning study)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, row in result["summary"].items():
        (score, sd), (seconds, _) = row["mean_std"]["score_percent"], row["mean_std"]["seconds_per_task"]
        ax.errorbar(seconds, score, yerr=sd, fmt="o", capsize=3, color="#0074D9" if name != "preset" else "#FF4136")
        ax.annotate(f" {name}", (seconds, score), fontsize=8, va="bottom")
    ax.set_xlabel("seconds per task (TTT + decoding + scoring, one thread)")
    ax.set_ylabel("score (% of tasks, two attempts)")
    ax.set_title(f"{result['model']}: {len(result['tasks_finished'])} tasks, {len(result['seeds_run'])} seed(s)",
                 fontsize=9)
    ax.margins(x=0.25, y=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(result: dict, path: Path) -> None:
    if result.get("study") == "tuning":
        plot_trade(result, path)
        return
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on these machines
    import matplotlib.pyplot as plt

    names = list(result["summary"])
    scores = [result["summary"][n]["mean_std"]["score_percent"] for n in names]
    secs = [result["summary"][n]["mean_std"]["seconds_per_task"] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    bars = left.bar(names, [m for m, _ in scores], yerr=[s for _, s in scores], capsize=4, color="#0074D9")
    for bar, (mean, std) in zip(bars, scores):
        left.annotate(f"{mean:.1f}±{std:.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height() + std),
                      ha="center", va="bottom", fontsize=8)
    left.set_ylim(0, max([m + s for m, s in scores] + [1.0]) * 1.3)
    left.set_ylabel("score (% of tasks, two attempts)")
    left.set_title(f"{len(result['tasks_finished'])} tasks, {len(result['seeds_run'])} seed(s): mean ± std",
                   fontsize=9)
    labels = names + list(ANCHORS)
    values = [m for m, _ in secs] + list(ANCHORS.values())
    colours = ["#0074D9"] * len(names) + ["#AAAAAA"] * len(ANCHORS)
    right.barh(labels[::-1], values[::-1], color=colours[::-1])
    right.set_xscale("log")
    right.set_xlabel("seconds per task (log scale)")
    right.set_title(f"cost per task on {result['machine'].split(',')[0]} vs the anchors", fontsize=9)
    for y, value in enumerate(values[::-1]):
        right.annotate(f" {value:.0f} s", (value, y), va="center", fontsize=8)
    right.tick_params(axis="y", labelsize=8)
    left.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Ablation: {result['model']} ({result['machine']})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finish(result: dict, records: list[dict], task_ids: list[str], seeds: list[int], configs: dict[str, EvalConfig],
           dataset, solutions: dict, out: Path) -> None:
    """Summarise the tasks that every step finished for every seed that ran (all of them without a time
    budget), write the JSON and the picture, print the table."""
    fixed = any(seed_independent(c) for c in configs.values())
    have = {(r["task_id"], r["seed"]) for r in records}
    seeds_run = [s for s in seeds if any(r["seed"] == s for r in records)]
    needed = ([None] if fixed else []) + seeds_run
    finished = [t for t in task_ids if all((t, s) in have for s in needed)]
    test_counts = dataset.subset(finished).test_counts()
    kept = [r for r in records if r["task_id"] in test_counts]
    result.update(records=records, tasks_finished=finished, seeds_run=seeds_run,
                  summary=summarize(kept, configs, seeds_run, test_counts, {t: solutions[t] for t in finished}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot(result, out.with_suffix(".png"))
    print(f"\n{'step':<20} {'score % (mean ± std)':>22} {'found %':>16} {'s per task':>12}")
    for name, row in result["summary"].items():
        (score, score_sd), (found, found_sd) = row["mean_std"]["score_percent"], row["mean_std"]["found_rate_percent"]
        print(f"{name:<20} {score:>14.1f} ± {score_sd:<5.1f} {found:>8.1f} ± {found_sd:<5.1f} "
              f"{row['mean_std']['seconds_per_task'][0]:>12.1f}")
    for name, seconds in ANCHORS.items():
        print(f"anchor: {name}: {seconds:.0f} s per task")
    print(f"\n{out} and {out.with_suffix('.png')} written")


def combine(args: argparse.Namespace) -> None:
    """One table from the JSON files of shards (--shard K/N runs of the same command): their records
    pooled, after checking that every file measured the same model, steps and seeds."""
    parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.combine]
    first = parts[0]
    for f, part in zip(args.combine, parts):
        for field_name in ("model", "configs", "seeds"):
            if part[field_name] != first[field_name]:
                raise SystemExit(f"{f}: its {field_name} differs from {args.combine[0]}'s; shards must be runs of "
                                 "one command that differ only in --shard")
    configs = {n: config_from_dict(EvalConfig(), c) for n, c in first["configs"].items()}
    dataset, _counts = load_challenges(next(iter(configs.values())))
    solutions = dataset.solutions()
    ran = {t for p in parts for t in p["tasks"]}
    task_ids = [t for t in first.get("all_tasks", first["tasks"]) if t in ran]  # the unsharded order
    result = {key: first[key] for key in ("benchmark", "model", "configs", "seeds", "anchors_seconds_per_task")}
    result["study"] = first.get("study", "ablation")
    result.update(command=args.command, shard_commands=[p["command"] for p in parts],
                  machine=" | ".join(sorted({p["machine"] for p in parts})), tasks=task_ids,
                  seconds=max(p["seconds"] for p in parts))
    records = [r for p in parts for r in p["records"]]
    finish(result, records, task_ids, first["seeds"], configs, dataset, solutions, Path(args.out))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("cpu", "gpu", "tuning"), default="cpu",
                        help="cpu, gpu: the ablation's steps at two sizes; tuning: the SmolLM2 evaluation preset and "
                             "variants that spend more time (lower DFS threshold, more scoring views, more TTT)")
    parser.add_argument("--smoke", action="store_true", help="tiny random model and the 'smoke' preset")
    parser.add_argument("--tasks", default=None, help="a count N (the N shortest renderings), every:K (every K-th "
                                                      "task by id), ids joined by commas, or '' for all; default: "
                                                      "the preset's")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1; default: the preset's")
    parser.add_argument("--ttt-steps", type=int, default=None)
    parser.add_argument("--views", type=int, default=None, help="decoding views of the last two steps")
    parser.add_argument("--scoring-views", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--min-prob", type=float, default=None,
                        help="the DFS threshold of the +DFS step (tuning: of the preset row); default: the preset's")
    parser.add_argument("--challenges", default="input/arc-agi_evaluation_challenges.json")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default="auto", help="'auto': models/smollm2-arc/adapter when present; '' none")
    parser.add_argument("--out", default="", help="default: benchmarks/results/ablation_<preset>.json")
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="seconds; start no new task after this (0: none); finished tasks are reported")
    parser.add_argument("--resume", action="store_true", help="keep the finished tasks of --out and go on")
    parser.add_argument("--shard", default="", metavar="K/N",
                        help="run only the K-th of N interleaved shares of the tasks (0-based), e.g. 0/2 and 1/2 "
                             "in two processes with --threads 1 and their own --out; then --combine")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="load no model: pool the records of these shard files into --out and report them")
    args = parser.parse_args(argv)
    if args.shard:
        try:
            k, n = (int(x) for x in args.shard.split("/"))
        except ValueError:
            parser.error(f"--shard {args.shard!r}: expected K/N, e.g. 0/2")
        if not 0 <= k < n:
            parser.error(f"--shard {args.shard!r}: K must be in 0..N-1")
        args.shard = (k, n)
    preset = PRESETS["smoke" if args.smoke else args.preset]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        args.adapter = ""
    if not args.combine:
        try:
            check_task_spec(args.tasks, args.challenges)
        except OptionError as e:
            parser.error(str(e))
    args.out = args.out or str(RESULTS / f"ablation_{'smoke_' if args.smoke else ''}{args.preset}.json")
    args.command = " ".join([".venv/bin/python -m benchmarks.bench_ablation",
                             *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.combine:
        combine(args)
        return
    set_threads(args.threads)
    base = with_options(EvalConfig(), challenges=args.challenges, model=args.model,
                        adapter=resolve_adapter(args.adapter), max_tokens=args.max_tokens, ttt_steps=args.ttt_steps,
                        ttt_batch_size=2, ttt_learning_rate=3e-4, views=args.views, scoring_views=args.scoring_views,
                        progress=False, cache=False, report=False)
    study = "tuning" if args.preset == "tuning" else "ablation"
    configs = (tuning_steps if study == "tuning" else steps)(base, args.min_prob)
    session = session_for(base, smoke=args.smoke)
    dataset, _counts = load_challenges(base)
    solutions = dataset.solutions()
    # shortest first, the measure select_tasks picks by: a run cut short by --time-budget has done the shortest tasks
    task_ids = dataset.shortest_first(session.fmt, [t for t in select_tasks(dataset, args.tasks, session.fmt)
                                                    if t in solutions])
    all_tasks = task_ids
    if args.shard:
        k, n = args.shard
        task_ids = task_ids[k::n]
    seeds = list(range(args.seeds))
    out = Path(args.out)
    model = f"{base.model}{' + ' + base.adapter if base.adapter else ''}" if not args.smoke else "tiny random model"
    records: list[dict] = []
    if args.resume and out.is_file():
        previous = json.loads(out.read_text(encoding="utf-8"))
        if previous["model"] != model:
            # --adapter auto finds an adapter that a fine-tune wrote after the first part ran: mixing the
            # two models in one table would be wrong (this happened once)
            raise SystemExit(f"{out} was measured with {previous['model']!r}, this run would use {model!r}; "
                             "pass --adapter to match it, or another --out")
        records = previous["records"]
    done = {(r["task_id"], r["seed"]) for r in records}
    fixed = {n: c for n, c in configs.items() if seed_independent(c)}
    varying = {n: c for n, c in configs.items() if n not in fixed}
    print(f"{model}; {len(task_ids)} tasks; seeds {seeds}; steps {', '.join(configs)}; TTT {args.ttt_steps} steps, "
          f"{args.views} views, {args.scoring_views} scoring views, DFS {args.min_prob:g}", flush=True)

    result: dict = {}

    def save(seconds: float) -> None:
        result.update({
            "benchmark": "ablation", "study": study, "command": args.command, "machine": machine(), "model": model,
            "configs": {n: options(c) for n, c in configs.items()}, "tasks": task_ids, "all_tasks": all_tasks,
            "seeds": seeds,
            "seconds": seconds, "records": records, "anchors_seconds_per_task": ANCHORS,
        })
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")

    began = time.perf_counter()
    # seed-major, and the seed-independent steps beside the first seed: a run cut short by --time-budget
    # has every step of the tasks it finished for the first seed
    todo = []
    for s in seeds:
        for t in task_ids:
            if fixed and s == seeds[0]:
                todo.append((None, t, fixed))
            todo.append((s, t, varying))
    for n, (seed, task_id, chosen) in enumerate(todo, 1):
        if (task_id, seed) in done:
            continue
        if args.time_budget and time.perf_counter() - began > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s spent after {n - 1} of {len(todo)} units", flush=True)
            break
        record = run_task(dataset, task_id, session, chosen, 0 if seed is None else seed, solutions)
        record["seed"] = seed  # None: a seed-independent step, shared by every seed
        records.append(record)
        save(time.perf_counter() - began)
        line = ", ".join(f"{name} {sum(t['found'] for t in s['test_inputs'])}/{len(s['test_inputs'])} "
                         f"{s['seconds']:.0f}s" for name, s in record["steps"].items())
        print(f"[{n}/{len(todo)}] seed {seed} {task_id}: TTT {record['ttt_seconds']:.0f}s; {line} "
              f"{record['error']}", flush=True)

    save(time.perf_counter() - began)
    finish(result, records, task_ids, seeds, configs, dataset, solutions, out)


if __name__ == "__main__":
    main()
