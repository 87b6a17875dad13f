"""The program search alone: share of ARC tasks solved at a time budget per task, by depth, with time
and peak memory per task, and a plot. The budget is CPU time of this one process (one core), so a
busy machine makes a run slower but does not change what it finds.

    python -m benchmarks.bench_search --split evaluation --seconds 1 --out benchmarks/results/search_eval_1s.json
    python -m benchmarks.bench_search --split evaluation --seconds 10 --tasks 50 --out .../search_eval_10s_50.json
    python -m benchmarks.bench_search --plot benchmarks/results/search_*.json --png benchmarks/results/search.png
    python -m benchmarks.bench_search --seconds 1000 --max-steps 2000 --tasks 60 --out .../search_speed.json
    python -m benchmarks.bench_search --diff old.json new.json    # tasks gained and lost, with the programs
    python -m benchmarks.bench_search --seconds 60 --out .../search_eval_60s.json --resume   # a long run in parts

A task counts as solved when, for every test input, one of the first two candidates is the right
output (Kaggle's rule with two attempts). ``--tasks`` picks tasks by the evaluation's own rule, so that
the search alone and a model's run can be compared task for task: N, the N tasks whose rendering in the
SmolLM2 preset's text format is shortest (``run_evaluation_smollm --tasks N`` takes the same ones);
``every:K``, every K-th task by id; ``verified``, the training tasks with a verified program; ``''``,
all. The search runs in this process, one task after another (one core); a record per task is
written as it goes, so a run cut short keeps what it measured. On the training split the tasks that
have a verified program (``training_code.induction.programs``) are counted apart: how many of them the search
finds on its own.

``--split`` takes ARC-AGI-1's ``training`` and ``evaluation`` and two sets of ARC-AGI-2:
``arc-agi-2-evaluation`` (its 120 evaluation tasks) and ``arc-agi-2-new``, the ARC-AGI-2 training tasks
that share no grid with any ARC-AGI-1 task (232 of its 1,000; the rest are ARC-AGI-1 tasks again, some
under other ids). Nothing of the search was read off either, so both measure it on tasks it has not seen.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training_code.arc_loader import ArcDataset, dataset_grids, solutions_beside
from training_code.cli import OptionError
from training_code.formats import format_from_spec
from training_code.grids import ArcDataError
from training_code.induction.program_search import SEARCH_VERSION, SearchConfig, search_task
from training_code.induction.programs.arc1_training import PROGRAMS
from training_code.task_choice import check_task_spec, is_count, select_tasks

# --split: the challenges file of each set (its solutions file lies beside it)
SPLITS = {
    "training": Path("input/arc-agi_training_challenges.json"),
    "evaluation": Path("input/arc-agi_evaluation_challenges.json"),
    "arc-agi-2-evaluation": Path("input/arc-agi-2_evaluation_challenges.json"),
    "arc-agi-2-new": Path("input/arc-agi-2_training_challenges.json"),  # less the tasks of ARC-AGI-1
}


def load_split(split: str) -> ArcDataset:
    """The tasks of a ``--split`` with their solutions; for ``arc-agi-2-new`` the ARC-AGI-2 training tasks
    without any grid of an ARC-AGI-1 training or evaluation task."""
    challenges = SPLITS[split]
    solutions = solutions_beside(challenges)
    if solutions is None:  # the benchmark scores every task: without answers it measures nothing
        raise ArcDataError("no solutions file beside it (make data writes both)", file=str(challenges))
    dataset = ArcDataset.from_kaggle(challenges, solutions)
    if split == "arc-agi-2-new":
        arc1 = dataset_grids(load_split("training"), load_split("evaluation"))
        dataset = dataset.without(dataset.sharing_grids(arc1))
    return dataset


def chosen_tasks(dataset: ArcDataset, tasks: str) -> list[str]:
    """The task ids ``--tasks`` names, by the rule of ``run_evaluation_smollm --tasks`` (the same N shortest
    in the preset's text format, the same every:K), or the training tasks with a verified program."""
    spec = tasks.strip()
    if spec == "verified":
        return sorted(t for t in PROGRAMS if t in dataset.tasks)
    if is_count(spec, dataset.tasks):
        return select_tasks(dataset, spec, evaluation_format()) if int(spec) else []
    return select_tasks(dataset, spec, None)


def evaluation_format():
    """The text format the SmolLM2 preset renders tasks in, ending replies with its tokenizer's end token
    (the lengths ``--tasks N`` ranks by). Imported here: only a count of tasks needs the model's libraries,
    which would otherwise count in every run's peak memory."""
    from transformers import AutoTokenizer

    from training_code.model_tools import resolve_source
    from training_code.run_evaluation_smollm import PRESET

    eos = AutoTokenizer.from_pretrained(resolve_source(PRESET.model)).eos_token
    return format_from_spec(PRESET.format, eos=eos)


def settings_of(split: str, seconds: float, tasks: str, max_depth: int, sample: int, max_steps: int) -> dict:
    """What a run's results depend on besides the machine: a run resumes only under the same."""
    return {"split": split, "seconds_per_task": seconds, "tasks_option": tasks, "sample": sample,
            "max_depth": max_depth, "max_steps": max_steps, "search_version": SEARCH_VERSION}


def done_records(out: Path, settings: dict) -> list[dict]:
    """The records of an earlier run in ``out`` under the same settings (none when there is no file); a
    ValueError that names what differs when the settings do not match."""
    if not out.exists():
        return []
    earlier = json.loads(out.read_text(encoding="utf-8"))
    theirs = earlier["summary"].get("settings", {})
    differ = {k: (theirs.get(k), v) for k, v in settings.items() if theirs.get(k) != v}
    if differ:
        raise ValueError(f"{out} was run with other settings (theirs, these): {differ}; "
                         "resume with the same, or write to another --out")
    return earlier["tasks"]


def measure(split: str, seconds: float, tasks: str, max_depth: int, out: Path, sample: int = 0,
            max_steps: int = 0, done: Sequence[dict] = ()) -> dict:
    """Search each chosen task and write the records to ``out`` as it goes; ``done``: records of an earlier
    part of the same run (``done_records``), kept as they are."""
    dataset = load_split(split)
    tasks_option = tasks
    task_ids = chosen_tasks(dataset, tasks)
    if sample:  # a seeded random sample of the rest: an unbiased estimate for the whole split
        rest = sorted(set(dataset.tasks) - set(chosen_tasks(dataset, tasks if tasks.isdigit() else "0")))
        task_ids = sorted(np.random.default_rng(0).choice(rest, size=min(sample, len(rest)), replace=False).tolist())
        tasks = f"random {len(task_ids)} of the tasks not among the {tasks or 0} shortest (seed 0)"
    settings = settings_of(split, seconds, tasks_option, max_depth, sample, max_steps)
    config = SearchConfig(seconds=seconds, max_depth=max_depth, cpu_time=True, max_steps=max_steps)
    done = {r["task_id"]: r for r in done}
    records = [done[t] for t in task_ids if t in done]
    began = time.monotonic()
    summary = {}
    for task_id in task_ids:
        if task_id in done:
            continue
        task = dataset.tasks[task_id]
        cpu = time.process_time()
        result = search_task([(e.input, e.output) for e in task.train], [e.input for e in task.test], config, task_id)
        solved = all(any(np.array_equal(c, e.output) for c in result.candidates[i][:2])
                     for i, e in enumerate(task.test))
        records.append({"task_id": task_id, "solved": solved, "answered": any(result.candidates),
                        "found_depth": result.found_depth, "depth": result.depth, "seconds": round(result.seconds, 3),
                        "cpu_seconds": round(time.process_time() - cpu, 3),
                        "states": result.states, "steps": result.steps, "steps_cut": result.steps_cut,
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "program": result.programs[0][0] if result.programs[0] else None,
                        "verified_program": task_id in PROGRAMS if split == "training" else None})
        summary = summarise(records, split, seconds, tasks, time.monotonic() - began)
        summary.update(max_steps=max_steps, settings=settings, resumed_with=len(done))
        out.write_text(json.dumps({"summary": summary, "tasks": records}, indent=1) + "\n", encoding="utf-8")
    return summary or json.loads(out.read_text(encoding="utf-8"))["summary"]


def summarise(records: list[dict], split: str, seconds: float, tasks: str, wall: float) -> dict:
    times = [r["seconds"] for r in records]
    solved = [r for r in records if r["solved"]]
    summary = {
        "split": split, "seconds_per_task": seconds, "tasks_rule": tasks or "all", "search_version": SEARCH_VERSION,
        "tasks": len(records), "solved": len(solved), "solved_share": len(solved) / len(records),
        "answered": sum(r["answered"] for r in records),
        "solved_by_depth": dict(sorted(Counter(str(r["found_depth"]) for r in solved).items())),
        "depth_reached": dict(sorted(Counter(str(r["depth"]) for r in records).items())),
        "seconds_per_task_median": statistics.median(times), "seconds_per_task_max": max(times),
        # the budget is wall time: on a busy machine a task gets less CPU than its seconds
        "cpu_seconds_per_task_median": statistics.median(r["cpu_seconds"] for r in records),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in records), "wall_seconds": round(wall, 1),
        "cpu_seconds_total": round(sum(r["cpu_seconds"] for r in records), 2),
        "steps_total": sum(r.get("steps", 0) for r in records),
    }
    verified = [r for r in records if r["verified_program"]]
    if verified:
        summary["verified_program_tasks"] = len(verified)
        summary["verified_program_tasks_solved"] = sum(r["solved"] for r in verified)
    return summary


def plot(paths: list[Path], png: Path) -> None:
    """Share solved per run (bars, by the depth of the program that solved) and time per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in paths]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(14, 7 + 1.1 * len(paths)), 5.5))
    names = {"arc-agi-2-evaluation": "ARC-AGI-2\nevaluation", "arc-agi-2-new": "ARC-AGI-2\nnew training"}
    labels = [f"{names.get(r['summary']['split'], r['summary']['split'])}\nv{r['summary'].get('search_version', 1)}, "
              f"{r['summary']['seconds_per_task']:g} s\n{r['summary']['tasks']} tasks" for r in runs]
    bottom = np.zeros(len(runs))
    depths = sorted({d for r in runs for d in r["summary"]["solved_by_depth"]}, key=lambda d: (len(d), d))
    for depth in depths:
        share = np.array([100 * r["summary"]["solved_by_depth"].get(depth, 0) / r["summary"]["tasks"] for r in runs])
        if share.any():
            left.bar(labels, share, bottom=bottom, label=f"program of depth {depth}")
            bottom += share
    for x, total in enumerate(bottom):
        left.text(x, total + 0.5, f"{total:.1f}%", ha="center")
    left.set_ylim(0, max(float(bottom.max()), 1.0) * 1.12)  # room for the labels above the tallest bar
    left.set_ylabel("tasks solved (%, two attempts)")
    left.tick_params(axis="x", labelsize=8)
    left.set_title("program search alone")
    if bottom.any():  # no bars (nothing solved) leaves nothing to name
        left.legend()
    for label, r in zip(labels, runs):
        times = sorted(t["cpu_seconds"] for t in r["tasks"])
        right.plot(times, np.linspace(0, 100, len(times)), label=label.replace("\n", ", "))
    right.set_xlabel("CPU seconds per task (the budget)")
    right.set_ylabel("tasks finished (%)")
    right.set_title("time per task")
    right.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)


def diff(old: Path, new: Path) -> dict:
    """Two runs task by task: the tasks each solves that the other does not, with the programs, over the
    tasks both measured (two versions of the search, or two budgets, on the same split)."""
    runs = [{r["task_id"]: r for r in json.loads(p.read_text())["tasks"]} for p in (old, new)]
    both = sorted(set(runs[0]) & set(runs[1]))

    def only(a: dict, b: dict) -> dict[str, str]:
        return {t: a[t].get("program") or "" for t in both if a[t]["solved"] and not b[t]["solved"]}

    return {"tasks": len(both), "solved": [sum(run[t]["solved"] for t in both) for run in runs],
            "gained": only(runs[1], runs[0]), "lost": only(runs[0], runs[1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="evaluation", choices=list(SPLITS),
                        help="ARC-AGI-1's training or evaluation tasks, ARC-AGI-2's evaluation tasks, or its "
                             "training tasks that are not ARC-AGI-1 tasks (default: evaluation)")
    parser.add_argument("--seconds", type=float, default=1.0, help="search time per task (default: 1)")
    parser.add_argument("--tasks", default="", help="N: the N shortest tasks (the evaluation's rule); every:K: every "
                        "K-th task by id; 'verified': the training tasks with a verified program; '' (default): all")
    parser.add_argument("--sample", type=int, default=0,
                        help="N > 0: instead, N tasks drawn (seed 0) from those not among the --tasks shortest")
    parser.add_argument("--max-depth", type=int, default=SearchConfig().max_depth)
    parser.add_argument("--max-steps", type=int, default=0,
                        help="N > 0: stop each task after N step applications as well (a budget that is the same "
                        "on any machine: with --seconds large, the CPU seconds measure the search's speed)")
    parser.add_argument("--profile", type=int, default=0,
                        help="N > 0: profile the run and print the N functions with the most own time")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    parser.add_argument("--resume", action="store_true",
                        help="keep the tasks an earlier run with the same settings wrote to --out and search the "
                             "rest (a long run in parts)")
    parser.add_argument("--plot", type=Path, nargs="+", help="result files to plot instead of measuring")
    parser.add_argument("--png", type=Path, default=Path("benchmarks/results/search.png"))
    parser.add_argument("--diff", type=Path, nargs=2, metavar=("OLD", "NEW"),
                        help="instead of measuring, compare two result files task by task: solved by one, not "
                             "the other")
    args = parser.parse_args(argv)
    if args.diff:
        found = diff(*args.diff)
        print(f"{found['tasks']} tasks in both; solved {found['solved'][0]} -> {found['solved'][1]}")
        for what in ("gained", "lost"):
            print(f"{what} ({len(found[what])}):")
            for task_id, program in found[what].items():
                print(f"  {task_id}  {program}")
        return 0
    if args.plot:
        plot(args.plot, args.png)
        for path in args.plot:
            print(path, json.dumps(json.loads(path.read_text())["summary"]))
        print(f"wrote {args.png}")
        return 0
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.tasks.strip() != "verified":
        try:
            check_task_spec(args.tasks, SPLITS[args.split])
        except OptionError as e:
            parser.error(str(e))
    if args.max_steps < 0:
        parser.error(f"--max-steps must be >= 0, got {args.max_steps}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = []
    if args.resume:
        try:
            done = done_records(args.out, settings_of(args.split, args.seconds, args.tasks, args.max_depth,
                                                      args.sample, args.max_steps))
        except ValueError as e:
            parser.error(str(e))
    profile = cProfile.Profile() if args.profile > 0 else None
    if profile:
        profile.enable()
    summary = measure(args.split, args.seconds, args.tasks, args.max_depth, args.out, args.sample, args.max_steps,
                      done)
    if profile:
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # a reader that stopped early (``--diff ... | head``): the rest was not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        raise SystemExit(0) from None
