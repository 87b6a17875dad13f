"""Tests of evaluation across several processes: sharding, merging the ranks' files, and two CPU ranks
(gloo) giving a submission byte-identical to a one-process run's."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from pipeline_data import task, tiny, write_set

from training_code import distributed
from training_code.distributed import Rank, config_from_json, merged_results, parse_command_line, shard_tasks
from training_code.evaluation import EvalConfig, run_evaluation, solve_tasks, start_run
from training_code.submission import read_submission

TASKS = {"aaa": task(1), "bbb": task(2, n_test=2), "ccc": task(3, n_train=3), "ddd": task(4, size=3)}


def config(challenges: Path, out: Path, **kw) -> EvalConfig:
    base = dict(challenges=str(challenges), output=str(out), ttt=True, ttt_steps=2, decoder="sample", views=2,
                scoring_views=2, max_tokens=1024, progress=False, report=False, cache=False)
    return EvalConfig(**{**base, **kw})


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


def rank_worker(index: int, world_size: int, port: int, cfg: EvalConfig) -> None:
    """One rank, started by torch.multiprocessing.spawn as torchrun would start it (environment variables)."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(index),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(index))
    distributed.run_distributed(cfg, loaded=tiny())


def test_shards_are_disjoint_cover_every_task_and_balance_sizes():
    ids = [f"t{i}" for i in range(7)]
    sizes = {t: 10 * i for i, t in enumerate(ids)}
    shards = [shard_tasks(ids[::-1], sizes, r, 3) for r in range(3)]
    assert sorted(t for s in shards for t in s) == ids
    assert shards == [shard_tasks(ids, sizes, r, 3) for r in range(3)]  # the input order does not matter
    assert shards[0] == ["t0", "t3", "t6"]  # the largest (t6) and then every third by size
    assert all(s == sorted(s) for s in shards)


def test_two_cpu_ranks_give_the_same_submission_as_one_process(tmp_path, one_thread):
    challenges = write_set(tmp_path, TASKS)
    cfg = config(challenges, tmp_path / "ranks2", report=True)
    mp.spawn(rank_worker, args=(2, free_port(), cfg), nprocs=2, join=True)

    single = run_evaluation(config(challenges, tmp_path / "single"), tiny())
    merged = tmp_path / "ranks2" / "submission.json"
    assert merged.read_bytes() == single.submission_path.read_bytes()
    assert set(read_submission(merged, {"aaa": 1, "bbb": 2, "ccc": 1, "ddd": 1})) == set(TASKS)
    files = sorted(p.name for p in (tmp_path / "ranks2" / "ranks").iterdir())
    assert files == ["rank-0-of-2.json", "rank-1-of-2.json"]
    shards = [json.loads((tmp_path / "ranks2" / "ranks" / f).read_text())["task_ids"] for f in files]
    assert sorted(shards[0] + shards[1]) == sorted(TASKS) and shards[0] and shards[1]
    report = json.loads((tmp_path / "ranks2" / "report.json").read_text())  # rank 0 reports on every task
    assert set(report["tasks"]) == set(TASKS)


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
    assert config.views == 3 and "qwen" in config.model
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({"views": 5, "ttt_steps": 7}))
    assert parse_command_line(["--config", str(saved), "--ttt-steps", "1"]) == EvalConfig(views=5, ttt_steps=1)
    saved.write_text(json.dumps({"viewz": 5}))
    with pytest.raises(ValueError, match="viewz"):
        config_from_json(saved)
    with pytest.raises(SystemExit):
        parse_command_line(["--preset", "nope"])
