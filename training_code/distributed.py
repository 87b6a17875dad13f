"""Evaluation across several GPUs: each process (rank) solves a shard of the tasks; rank 0 writes the submission.

    torchrun --standalone --nproc_per_node 4 -m training_code.distributed --preset nemo --model PATH [--help]
    torchrun --standalone --nproc_per_node 2 -m training_code.distributed --config run_config.json

One process per GPU; torchrun starts them and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. Every rank runs the evaluation pipeline's three steps (``evaluation.start_run``,
``solve_tasks``, ``finish_run``) with these changes:

- it loads the challenges and its own copy of the model on ``cuda:LOCAL_RANK``;
- it solves only its shard of the selected tasks (see ``shard_tasks``: it depends only on the task
  ids, their sizes and the number of ranks, so every rank computes every shard the same way);
- it writes its TaskResults and errors as JSON to ``<output>/ranks/rank-<r>-of-<n>.json``;
- after a barrier, rank 0 reads every rank's file and writes the one verified submission.json (and
  the score and report when solutions are known). Tasks of a rank that wrote nothing fall back, with
  the reason in the errors.

The barrier waits until the time budget plus ``--barrier-slack`` seconds (default 2 hours: the last task
of a rank may overrun the budget, test-time training is not interrupted) have passed since the rank
started; then rank 0 writes the submission with what the ranks wrote, and the tasks of a rank still at
work fall back. A caller with a hard limit (the Kaggle notebook) passes a slack that fits its margin.

Results cross processes as JSON files, never as pickles: the process group (gloo, CPU only) carries
nothing but the barrier. All ranks need the output folder: one machine (Kaggle's 2xT4 or 4xL4, a
workstation), or a file system they share. Finished tasks also go to the shared disk cache, so a
killed run, rerun with any number of ranks (or with ``run_evaluation`` in one process), resumes.

Every task's result depends only on the task, the model, the options and the seed, not on which rank
solved it or what it solved before, so the merged submission is byte-identical to a one-process run's
(``tests/test_distributed.py`` checks it) as long as no time budget cuts work short.

Exit status: 0 once the submission is written, even if some test inputs fell back (the
run_evaluation_* scripts' status 3 would make torchrun report the whole job as failed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from . import model_tools
from .cli import add_config_arguments, checked_config, config_from_args, config_from_dict
from .evaluation import (
    EvalConfig,
    EvalRun,
    check_options,
    finish_run,
    solve_tasks,
    start_run,
)
from .presets import DEFAULT_PRESET, preset_config, preset_names
from .report import EvalSummary, TaskResult, print_summary

log = logging.getLogger(__name__)

# How long ranks that finished wait at the barrier for the slowest one, beyond the time budget: the
# last task of a rank may overrun the budget (test-time training is not interrupted). --barrier-slack
# (run_distributed's barrier_slack) changes it: the Kaggle notebook passes what fits its time margin.
BARRIER_SLACK = timedelta(hours=2)
NO_BUDGET_WAIT = timedelta(days=7)  # without a time budget, wait as long as any run could take


@dataclasses.dataclass(frozen=True)
class Rank:
    """Where this process stands in the group: torchrun's RANK, WORLD_SIZE and LOCAL_RANK."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Rank:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is not within WORLD_SIZE={world_size}")
        return cls(rank, world_size, local_rank)


def shard_tasks(task_ids: Sequence[str], sizes: dict[str, int], rank: int, world_size: int) -> list[str]:
    """This rank's tasks: the ids ordered by size (largest first, ties by id) dealt round-robin, then
    sorted by id. Dealing by size gives every rank a similar amount of work; the split depends only on
    the ids, the sizes and the number of ranks."""
    ordered = sorted(task_ids, key=lambda t: (-sizes.get(t, 0), t))
    return sorted(ordered[rank::world_size])


def task_sizes(run: EvalRun) -> dict[str, int]:
    """Characters of each selected task's rendering, summed over its test inputs: a proxy for its cost."""
    return run.dataset.task_lengths(run.session.fmt, total=True)


def rank_file(output: str | Path, rank: int, world_size: int) -> Path:
    return Path(output) / "ranks" / f"rank-{rank}-of-{world_size}.json"


def write_rank_file(run: EvalRun, rank: Rank, task_ids: Sequence[str], results: dict[str, TaskResult]) -> Path:
    """This rank's results and errors as JSON, written atomically (a reader sees all of it or nothing)."""
    path = rank_file(run.config.files.output, rank.rank, rank.world_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rank": rank.rank, "world_size": rank.world_size, "task_ids": list(task_ids),
               "results": {t: r.to_json() for t, r in results.items()},
               "errors": {t: e for t, e in run.errors.items() if t in task_ids}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)
    return path


def merged_results(run: EvalRun, shards: Sequence[Sequence[str]]) -> dict[str, TaskResult]:
    """Every rank's results read from its file; the errors go to ``run.errors``. The tasks of a rank
    whose file is missing, unreadable or from another run shape are recorded as errors (they fall back)."""
    results: dict[str, TaskResult] = {}
    world_size = len(shards)
    for rank, shard in enumerate(shards):
        path = rank_file(run.config.files.output, rank, world_size)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload["world_size"] != world_size or payload["task_ids"] != list(shard):
                raise ValueError(f"it holds rank {payload['rank']} of {payload['world_size']} with other tasks")
            rank_results = {t: TaskResult.from_json(obj) for t, obj in payload["results"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            log.warning("rank %d: no results from %s: %s", rank, path, e)
            for task_id in shard:
                run.errors[task_id] = f"rank {rank} wrote no results ({type(e).__name__}: {e})"
            continue
        results.update(rank_results)
        run.errors.update(payload["errors"])
    return results


def barrier_wait(time_budget: float, slack: timedelta = BARRIER_SLACK) -> timedelta:
    """How long after its start a rank waits at the barrier for the others: the time budget and the
    slack, or NO_BUDGET_WAIT without a budget."""
    if slack < timedelta(0):
        raise ValueError(f"the barrier slack must not be negative, not {slack}")
    return NO_BUDGET_WAIT if time_budget <= 0 else timedelta(seconds=time_budget) + slack


def wait_for_ranks(deadline: float) -> str:
    """The barrier after every rank wrote its file, held until ``deadline`` (``time.monotonic()``) at the
    latest; returns '' when every rank arrived, else why not. Gloo's monitored barrier names the ranks
    that did not arrive; another backend's group (set up by the caller) gets a plain barrier."""
    timeout = timedelta(seconds=max(deadline - time.monotonic(), 1.0))
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
        else:
            dist.barrier()
    except RuntimeError as e:  # torch's DistBackendError and gloo's timeouts are RuntimeErrors
        return f"{type(e).__name__}: {e}"
    return ""


def run_distributed(config: EvalConfig, loaded: model_tools.LoadedModel | None = None,
                    rank: Rank | None = None, barrier_slack: timedelta = BARRIER_SLACK) -> EvalSummary | None:
    """This rank's part of a distributed evaluation; rank 0 returns the summary, the others None.

    ``rank``: where this process stands (default: from torchrun's environment). With more than one rank
    the process group is joined here (gloo, from MASTER_ADDR and MASTER_PORT) and left at the end.
    ``loaded``: an already loaded model (tests pass a tiny one), as for ``run_evaluation``.
    ``barrier_slack``: how long past the time budget the ranks wait for each other (``barrier_wait``);
    when it runs out, rank 0 writes the submission without the results of the ranks still at work.
    """
    began = time.monotonic()
    rank = rank or Rank.from_environment()
    wait = barrier_wait(config.time_budget, barrier_slack)
    if torch.cuda.is_available():
        # before loading: model_tools places the model on the current device (unsloth pins each
        # torchrun rank to its own device as well)
        torch.cuda.set_device(rank.local_rank)
    grouped = rank.world_size > 1 and not dist.is_initialized()
    if grouped:
        dist.init_process_group("gloo", rank=rank.rank, world_size=rank.world_size, timeout=wait)
    try:
        config = dataclasses.replace(config, progress=config.progress and rank.rank == 0)
        rank_file(config.files.output, rank.rank, rank.world_size).unlink(missing_ok=True)  # never merge a stale file
        run = start_run(config, loaded)
        sizes = task_sizes(run)
        shards = [shard_tasks(run.task_ids, sizes, r, rank.world_size) for r in range(rank.world_size)]
        mine = shards[rank.rank]
        log.info("rank %d of %d: %d of %d tasks", rank.rank, rank.world_size, len(mine), len(run.task_ids))
        write_rank_file(run, rank, mine, solve_tasks(run, mine))
        if rank.world_size > 1:
            missing = wait_for_ranks(began + wait.total_seconds())  # every rank's file is written, or time is up
            if missing:
                log.warning("rank %d: not every rank reached the barrier in time (%s)%s", rank.rank, missing,
                            "; writing the submission with the results there are" if rank.rank == 0 else "")
        if rank.rank != 0:
            return None
        return finish_run(run, merged_results(run, shards))
    finally:
        if grouped:
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------
# Command line


def config_from_json(path: str | Path) -> EvalConfig:
    """An EvalConfig from a JSON object of its fields (as ``cli.save_config`` writes, or flat by option
    name; missing fields keep their defaults). Unknown fields are an error: a misspelt option must not pass
    silently."""
    values = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise ValueError(f"{path}: not an EvalConfig (not a JSON object)")
    try:
        return config_from_dict(EvalConfig(), values)
    except ValueError as e:
        raise ValueError(f"{path}: not an EvalConfig ({e})") from None


def parse_command_line(argv: Sequence[str] | None = None) -> EvalConfig:
    """``--preset NAME`` or ``--config FILE`` gives the base; every EvalConfig field is a flag on top."""
    return parse_arguments(argv)[0]


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[EvalConfig, timedelta]:
    """The EvalConfig (see ``parse_command_line``) and the barrier slack (``--barrier-slack SECONDS``)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default=DEFAULT_PRESET, choices=preset_names())
    first.add_argument("--config", default="")
    known, _rest = first.parse_known_args(argv)
    try:
        base = config_from_json(known.config) if known.config else preset_config(known.preset)
    except (OSError, ValueError, TypeError) as e:  # a missing, unreadable or foreign file: stop before the ranks load
        first.error(f"argument --config: {e}")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=preset_names(),
                        help=f"the run_evaluation_<name> preset to start from (default: {DEFAULT_PRESET})")
    parser.add_argument("--config", default="", help="start from this EvalConfig JSON instead of a preset")
    parser.add_argument("--barrier-slack", type=float, default=BARRIER_SLACK.total_seconds(), metavar="SECONDS",
                        help="how long past the time budget the ranks wait for the slowest one; then rank 0 "
                             "writes the submission without its results (default: %(default).0f)")
    add_config_arguments(parser, base)
    args = parser.parse_args(argv)
    if args.barrier_slack < 0:
        parser.error(f"--barrier-slack must not be negative, not {args.barrier_slack}")
    return checked_config(parser, config_from_args(base, args), (check_options,)), timedelta(seconds=args.barrier_slack)


def main(argv: Sequence[str] | None = None) -> int:
    config, barrier_slack = parse_arguments(argv)
    rank = Rank.from_environment()
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s rank {rank.rank} %(levelname)s %(name)s: %(message)s")
    summary = run_distributed(config, rank=rank, barrier_slack=barrier_slack)
    if summary is not None:
        print_summary(summary, Path(config.files.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
