"""Answer ARC tasks with the program search alone (no model) and write a verified submission.json.

    python -m training_code.induction.run_search --challenges input/arc-agi_evaluation_challenges.json \\
        --output output/search --seconds 10 [--workers 2] [--help]

Every task of the challenges file is searched for ``--seconds`` (``training_code.induction.program_search``);
the outputs of the simplest programs that reproduce its training pairs are the attempts, and a test
input no program answers gets the fallback grid. A task that cannot be read is named with its file
and answered with the fallback too. With solutions (``--solutions auto`` finds the ``_solutions`` file
beside the challenges) the submission is scored. ``search_report.json`` beside the submission holds
each task's programs, depth, time and peak memory; ``search_results.jsonl`` gets each task's programs and
candidates as soon as its search ends, for an evaluation that runs beside the search (``--search-results``).

Exit status: 0 when the submission was written (test inputs that fell back included), 1 when the
challenges file cannot be read, 2 for a bad option.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..arc_loader import ArcDataset, RunFiles, Task, submission_counts
from ..cli import add_config_arguments, config_from_args, options
from ..grids import ArcDataError
from ..submission import build_submission, score_submission, write_verified_submission
from ..task_choice import is_count
from .program_search import SEARCH_VERSION, SearchConfig, search_task

log = logging.getLogger(__name__)

# One line per task as soon as its search ends (its programs and candidates): an evaluation running beside
# the search (the model on the GPUs, the search on the CPU cores) reads it while the file grows.
RESULTS_FILE = "search_results.jsonl"


@dataclass
class SearchRunConfig:
    """Everything a search run depends on."""

    files: RunFiles = field(default_factory=lambda: RunFiles(output="output/search"), metadata={"flags": ""})
    seconds: float = field(default=10.0, metadata={"help": "search time per task (one process)"})
    max_depth: int = field(default=3, metadata={"help": "steps in a chain before the last move"})
    max_steps: int = field(default=0, metadata={
        "help": "step applications per task, a budget that does not depend on the machine's speed (0: none)"})
    cpu_time: bool = field(default=False, metadata={
        "help": "--seconds of each worker's CPU time rather than of the wall clock (same results on a busy machine)"})
    workers: int = field(default=1, metadata={"help": "processes searching tasks side by side"})
    tasks: str = field(default="", metadata={
        "help": "task ids joined by commas, or a count N (the first N ids); '' for all"})
    progress: bool = True


def search_config(config: SearchRunConfig) -> SearchConfig:
    return SearchConfig(seconds=config.seconds, max_depth=config.max_depth, max_steps=config.max_steps,
                        cpu_time=config.cpu_time)


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search_one(job: tuple[Task, SearchConfig]) -> dict:
    """One task searched; its result as JSON with the process's peak memory (run in a worker)."""
    task, config = job
    result = search_task([(e.input, e.output) for e in task.train], [e.input for e in task.test], config,
                         task.task_id)
    return {**result.to_json(), "peak_rss_mb": round(peak_rss_mb(), 1)}


def read_results(path: Path) -> dict[str, dict]:
    """The tasks finished so far in a ``search_results.jsonl``, by task id: complete lines only (the last one
    may be half written); a malformed line is skipped with a warning."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    found = {}
    for number, line in enumerate(text.split("\n")[:-1], 1):  # the part after the last newline is unfinished
        try:
            record = json.loads(line)
            found[str(record["task_id"])] = {"programs": list(record["programs"]),
                                             "candidates": list(record["candidates"])}
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            log.warning("%s, line %d: not a search result (%s: %s); skipped", path, number, type(e).__name__, e)
    return found


def wait_for_result(path: Path, task_id: str, seconds: float, poll: float = 0.5) -> dict | None:
    """The search's result for ``task_id`` from ``path``, waiting up to ``seconds`` for it; None if it never came."""
    give_up = time.monotonic() + max(0.0, seconds)
    while True:
        found = read_results(path).get(task_id)
        if found is not None or time.monotonic() >= give_up:
            return found
        time.sleep(min(poll, max(0.0, give_up - time.monotonic())))


def selected(ids: Sequence[str], spec: str) -> list[str]:
    spec = spec.strip()
    if not spec:
        return list(ids)
    if is_count(spec, ids):
        return sorted(ids)[: int(spec)]
    wanted = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in ids]
    if unknown:
        raise ValueError(f"--tasks names tasks not in the challenges: {', '.join(unknown)}")
    return wanted


def run_search(config: SearchRunConfig) -> dict:
    """Search every selected task, write the verified submission and the report; the report's summary."""
    began = time.monotonic()
    challenges = Path(config.files.challenges)
    counts = submission_counts(challenges)
    dataset = ArcDataset.from_kaggle(challenges, config.files.solutions_path(), skip_bad=True)
    errors = {e.task_id or "?": str(e) for e in dataset.skipped}
    task_ids = selected(list(counts), config.tasks)
    counts = {t: counts[t] for t in task_ids}
    jobs = [(dataset.tasks[t], search_config(config)) for t in task_ids if t in dataset.tasks]
    out = Path(config.files.output)
    out.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    bar = tqdm(total=len(jobs), desc="search", disable=not config.progress, dynamic_ncols=True)
    with open(out / RESULTS_FILE, "w", encoding="utf-8") as lines:

        def keep(record: dict) -> None:
            results[record["task_id"]] = record
            lines.write(json.dumps({k: record[k] for k in ("task_id", "programs", "candidates")}) + "\n")
            lines.flush()  # a reader beside this run sees each task as soon as it is done
            bar.update()

        if config.workers > 1 and len(jobs) > 1:
            # ordered results: the submission and report do not depend on which worker finished first
            with multiprocessing.get_context("fork").Pool(config.workers, maxtasksperchild=50) as pool:
                for record in pool.imap(search_one, jobs):
                    keep(record)
        else:
            for job in jobs:
                keep(search_one(job))
    bar.close()

    ranked = {(t, i): [np.asarray(g, dtype=np.uint8) for g in cands]
              for t, r in results.items() for i, cands in enumerate(r["candidates"])}
    build = build_submission(counts, ranked)
    submission_path = out / "submission.json"
    write_verified_submission(submission_path, build.submission, counts)

    summary: dict = {"tasks": len(counts), "searched": len(results), "answered": sum(
        1 for r in results.values() if any(r["candidates"])), "bad_tasks": errors,
        "seconds": round(time.monotonic() - began, 1), "peak_rss_mb": max(
            [r["peak_rss_mb"] for r in results.values()] + [round(peak_rss_mb(), 1)])}
    truths = {t: s for t, s in dataset.solutions().items() if t in counts}
    if truths:
        score = score_submission(build.submission, truths)
        summary["score"] = {"points": score.points, "tasks": score.tasks, "percentage": score.percentage}
        for task_id, record in results.items():
            record["solved"] = score.task_scores.get(task_id, 0.0) == 1.0
    report = {"config": options(config), "search_version": SEARCH_VERSION, "summary": summary,
              "tasks": {t: {k: v for k, v in r.items() if k != "candidates"} for t, r in results.items()}}
    (out / "search_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return summary


def parse_args(argv: Sequence[str] | None) -> SearchRunConfig:
    """The command line onto the defaults; a bad value stops here with exit status 2."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    preset = SearchRunConfig()
    add_config_arguments(parser, preset)
    config = config_from_args(preset, parser.parse_args(argv))
    if not config.seconds > 0:
        parser.error(f"--seconds must be a number of seconds > 0, got {config.seconds}")
    if config.workers < 1:
        parser.error(f"--workers must be 1 or more, got {config.workers}")
    if config.max_depth < 0:
        parser.error(f"--max-depth must be 0 or more, got {config.max_depth}")
    if config.max_steps < 0:
        parser.error(f"--max-steps must be 0 (no budget) or more, got {config.max_steps}")
    if not Path(config.files.challenges).is_file():
        parser.error(f"--challenges {config.files.challenges}: no such file")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run_search(config)
    except ArcDataError as e:  # the file as a whole cannot be read: nothing to answer
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # --tasks naming unknown tasks
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(config.files.output)
    print(f"\nsubmission: {out / 'submission.json'} (verified); report: {out / 'search_report.json'}")
    print(f"{summary['answered']} of {summary['tasks']} tasks answered by a program; "
          f"peak memory {summary['peak_rss_mb']:.0f} MB; time {summary['seconds']:.0f} s")
    if "score" in summary:
        s = summary["score"]
        print(f"score: {s['points']:.2f} of {s['tasks']} tasks = {s['percentage']:.1f}% (either attempt right)")
    for task_id, why in summary["bad_tasks"].items():
        print(f"  {task_id} answered with the fallback: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
