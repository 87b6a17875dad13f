"""Tests of evaluation across several processes: sharding, merging the ranks' files, two CPU ranks
(gloo) giving a submission byte-identical to a one-process run's (started as torchrun starts them, and
by torchrun itself through the module's command line), and a rank that never reaches the barrier."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from pipeline_data import task, tiny, write_set

from training_code import distributed, model_tools
from training_code.cli import save_config, with_options
from training_code.distributed import (
    Rank,
    barrier_wait,
    config_from_json,
    merged_results,
    parse_arguments,
    parse_command_line,
    shard_tasks,
)
from training_code.evaluation import EvalConfig, run_evaluation, solve_tasks, start_run
from training_code.submission import read_submission

ROOT = Path(__file__).resolve().parent.parent
TASKS = {"aaa": task(1), "bbb": task(2, n_test=2), "ccc": task(3, n_train=3), "ddd": task(4, size=3)}
# DFS on the random tiny model: 1x1 answers (a digit, a newline, the end token) and a threshold low enough
# to reach some of them, so the compared submissions hold decoded answers, not only the fallback
DFS_TASKS = {"eee": task(5, size=1), "fff": task(6, n_test=2, size=1)}
DFS = dict(decoder="dfs", min_prob=2e-6)


def config(challenges: Path, out: Path, **kw) -> EvalConfig:
    base = dict(challenges=str(challenges), output=str(out), ttt=True, ttt_steps=2, decoder="sample", views=2,
                scoring_views=2, max_tokens=1024, progress=False, report=False, cache=False)
    return with_options(EvalConfig(), **{**base, **kw})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_thread():
    """One torch thread, as in the ranks: the same arithmetic on both sides, and a tiny model runs about
    30 times faster on one thread than on two when other jobs share the two cores (threads wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny model saved as a checkpoint folder, as a fine-tuned model is handed to the ranks."""
    loaded = tiny()
    return model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path_factory.mktemp("model") / "tiny")


def rank_worker(index: int, world_size: int, port: int, cfg: EvalConfig, hang: float = 0.0) -> None:
    """One rank, started by torch.multiprocessing.spawn as torchrun would start it (environment variables).
    ``hang``: rank 1 spends this many seconds on its tasks instead of solving them (a rank that hangs)."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(index),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(index))
    if hang and index == 1:
        distributed.solve_tasks = lambda run, task_ids: time.sleep(hang) or {}
    distributed.run_distributed(cfg, loaded=tiny(), barrier_slack=timedelta(seconds=1))


def test_shards_are_disjoint_cover_every_task_and_balance_sizes():
    ids = [f"t{i}" for i in range(7)]
    sizes = {t: 10 * i for i, t in enumerate(ids)}
    shards = [shard_tasks(ids[::-1], sizes, r, 3) for r in range(3)]
    assert sorted(t for s in shards for t in s) == ids
    assert shards == [shard_tasks(ids, sizes, r, 3) for r in range(3)]  # the input order does not matter
    assert shards[0] == ["t0", "t3", "t6"]  # the largest (t6) and then every third by size
    assert all(s == sorted(s) for s in shards)


def decoded_answers(path: Path) -> int:
    """Attempts in a submission that are not the fallback grid."""
    return sum(a[k] != [[0]] for entries in json.loads(path.read_text()).values() for a in entries
               for k in ("attempt_1", "attempt_2"))


@pytest.mark.parametrize("tasks, options", [pytest.param(TASKS, dict(decoder="sample"), id="sample"),
                                            pytest.param(DFS_TASKS, DFS, marks=pytest.mark.slow, id="dfs")])
def test_two_cpu_ranks_give_the_same_submission_as_one_process(tmp_path, one_thread, tasks, options):
    challenges = write_set(tmp_path, tasks)
    cfg = config(challenges, tmp_path / "ranks2", report=True, **options)
    mp.spawn(rank_worker, args=(2, free_port(), cfg), nprocs=2, join=True)

    single = run_evaluation(config(challenges, tmp_path / "single", **options), tiny())
    merged = tmp_path / "ranks2" / "submission.json"
    assert merged.read_bytes() == single.submission_path.read_bytes()
    assert set(read_submission(merged, {t: len(c["test"]) for t, (c, _) in tasks.items()})) == set(tasks)
    assert decoded_answers(merged) > 0
    files = sorted(p.name for p in (tmp_path / "ranks2" / "ranks").iterdir())
    assert files == ["rank-0-of-2.json", "rank-1-of-2.json"]
    shards = [json.loads((tmp_path / "ranks2" / "ranks" / f).read_text())["task_ids"] for f in files]
    assert sorted(shards[0] + shards[1]) == sorted(tasks) and shards[0] and shards[1]
    report = json.loads((tmp_path / "ranks2" / "report.json").read_text())  # rank 0 reports on every task
    assert set(report["tasks"]) == set(tasks)


@pytest.mark.slow
def test_torchrun_runs_the_module_on_a_saved_model_and_matches_one_process(tmp_path, tiny_folder, one_thread):
    """The real entry point: torchrun starts two processes of ``python -m training_code.distributed``,
    each loading the model folder itself; DFS decoding, as the presets use."""
    challenges = write_set(tmp_path, DFS_TASKS)
    saved = save_config(config(challenges, tmp_path / "ranks2", model="unused", **DFS), tmp_path / "run.json")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "training_code.distributed", "--config", str(saved), "--model", str(tiny_folder),
                           "--barrier-slack", "60"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    single = run_evaluation(config(challenges, tmp_path / "single", model=str(tiny_folder), **DFS))
    merged = tmp_path / "ranks2" / "submission.json"
    assert merged.read_bytes() == single.submission_path.read_bytes() and decoded_answers(merged) > 0
    assert sorted(p.name for p in (tmp_path / "ranks2" / "ranks").iterdir()) == ["rank-0-of-2.json",
                                                                                 "rank-1-of-2.json"]
    assert json.loads((tmp_path / "ranks2" / "config.json").read_text())["model"] == str(tiny_folder)


@pytest.mark.slow
def test_rank_0_writes_the_submission_when_another_rank_never_reaches_the_barrier(tmp_path, one_thread):
    challenges = write_set(tmp_path, TASKS)
    # rank 1 hangs past the budget and the slack (1 s); rank 0 waits that long at the barrier, then goes on
    cfg = config(challenges, tmp_path / "out", report=True, ttt=False, time_budget=4.0)
    mp.spawn(rank_worker, args=(2, free_port(), cfg, 7.0), nprocs=2, join=True)

    submission = read_submission(tmp_path / "out" / "submission.json", {"aaa": 1, "bbb": 2, "ccc": 1, "ddd": 1})
    assert set(submission) == set(TASKS)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    mine = json.loads((tmp_path / "out" / "ranks" / "rank-0-of-2.json").read_text())["task_ids"]
    theirs = sorted(set(TASKS) - set(mine))
    assert mine and theirs and set(report["tasks"]) == set(mine)  # rank 0's answers are in
    assert all("rank 1 wrote no results" in report["errors"][t] for t in theirs)


def test_the_barrier_waits_for_the_budget_and_the_slack():
    assert barrier_wait(100.0) == timedelta(seconds=100) + distributed.BARRIER_SLACK
    assert barrier_wait(100.0, timedelta(seconds=60)) == timedelta(seconds=160)
    assert barrier_wait(0.0, timedelta(seconds=60)) == distributed.NO_BUDGET_WAIT  # no budget: no limit
    with pytest.raises(ValueError, match="negative"):
        barrier_wait(100.0, timedelta(seconds=-1))
    assert parse_arguments(["--preset", "qwen", "--barrier-slack", "600"])[1] == timedelta(seconds=600)
    assert parse_arguments(["--preset", "qwen"])[1] == distributed.BARRIER_SLACK
    with pytest.raises(SystemExit):
        parse_arguments(["--preset", "qwen", "--barrier-slack", "-5"])


def test_tasks_of_a_rank_that_wrote_nothing_fall_back_with_the_reason(tmp_path, one_thread):
    challenges = write_set(tmp_path, TASKS)
    run = start_run(config(challenges, tmp_path / "out", ttt=False), tiny())
    shards = [["aaa", "ccc"], ["bbb", "ddd"]]
    distributed.write_rank_file(run, Rank(0, 2), shards[0], solve_tasks(run, shards[0]))
    results = merged_results(run, shards)
    assert set(results) == {"aaa", "ccc"}
    assert "rank 1 wrote no results" in run.errors["bbb"] and "rank 1" in run.errors["ddd"]

    distributed.write_rank_file(run, Rank(1, 2), ["bbb"], {})  # a file from another split of the tasks
    run.errors.clear()
    merged_results(run, shards)
    assert "other tasks" in run.errors["ddd"]


def test_the_command_line_starts_from_a_preset_or_a_saved_config(tmp_path):
    config = parse_command_line(["--preset", "qwen", "--views", "3"])
    assert config.decoding.views == 3 and "qwen" in config.model
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({"views": 5, "ttt_steps": 7}))
    expected = with_options(EvalConfig(), views=5, ttt_steps=1)
    assert parse_command_line(["--config", str(saved), "--ttt-steps", "1"]) == expected
    saved.write_text(json.dumps({"viewz": 5}))
    with pytest.raises(ValueError, match="viewz"):
        config_from_json(saved)
    with pytest.raises(SystemExit):
        parse_command_line(["--preset", "nope"])
