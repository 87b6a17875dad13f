"""Choosing a finished run's attempts again from its report, without a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_data import task, tiny, write_set

from training_code.cli import with_options
from training_code.evaluation import EvalConfig, run_evaluation
from training_code.rerank import candidates_of, main, rerank
from training_code.selection import AGGREGATIONS, rank_candidates
from training_code.submission import read_submission

# "bad" cannot be answered (no training pair), so the run falls back on it and its submission still has it
TASKS = {"aaa": task(1), "bbb": task(2, n_test=2), "ccc": task(3, n_train=3)}
BAD = {"bad": {"train": [], "test": [{"input": [[1]]}]}}
COUNTS = {"aaa": 1, "bbb": 2, "ccc": 1, "bad": 1}


def finished_run(tmp_path, **kw):
    challenges = write_set(tmp_path, TASKS, extra=BAD)
    base = dict(challenges=str(challenges), output=str(tmp_path / "run"), ttt=False, decoder="sample", views=3,
                scoring_views=2, max_tokens=1024, progress=False, report=True, cache=False)
    run_evaluation(with_options(EvalConfig(), **{**base, **kw}), tiny())
    return tmp_path / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("rerank"))


def test_the_runs_own_aggregation_gives_back_its_submission_byte_for_byte(run, tmp_path):
    own = json.loads((run / "report.json").read_text())["config"]["aggregation"]
    result = rerank(run / "report.json", own, tmp_path / "again")
    assert result.submission_path.read_bytes() == (run / "submission.json").read_bytes()
    assert result.score is not None and result.score.points == result.run_score.points


@pytest.mark.parametrize("aggregation", list(AGGREGATIONS))
def test_each_aggregation_puts_its_best_candidate_first_in_a_complete_submission(run, tmp_path, aggregation):
    result = rerank(run / "report.json", aggregation, tmp_path / aggregation)
    submission = read_submission(result.submission_path, COUNTS)  # complete and valid, "bad" included
    report = json.loads((run / "report.json").read_text())
    pools = candidates_of(report, run / "report.json")
    assert any(len(pool) > 1 for pool in pools.values())  # sampling under 3 views: something to reorder
    for (task_id, index), pool in pools.items():
        if pool:
            best = rank_candidates(pool, aggregation)
            assert submission[task_id][index]["attempt_1"].tolist() == best[0].grid.tolist()
    assert ("bad", 0) in result.fell_back


def test_an_aggregation_that_needs_scores_on_an_unscored_run_names_the_task(tmp_path):
    run = finished_run(tmp_path, scoring_views=0, aggregation="vote")
    with pytest.raises(ValueError, match=r"task \w+, test input 0: this aggregation needs scoring NLLs"):
        rerank(run / "report.json", "product-of-experts", tmp_path / "poe")
    rerank(run / "report.json", "max-generation-probability", tmp_path / "mgp")  # needs no scores


def test_missing_or_broken_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="report.json"):
        rerank(tmp_path / "report.json", "vote", tmp_path / "out")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"report.json.*not valid JSON"):
        rerank(tmp_path / "report.json", "vote", tmp_path / "out")


def test_the_command_line_prints_both_scores(run, tmp_path, capsys):
    assert main(["--report", str(run / "report.json"), "--aggregation", "vote", "--output", str(tmp_path / "v")]) == 0
    printed = capsys.readouterr().out
    assert "attempts chosen by vote" in printed and "the run's own choice" in printed
    assert (tmp_path / "v" / "submission.json").is_file()


def flip_task(seed: int) -> tuple[dict, list]:
    """A task whose rule is a left-right flip: the program search finds it at once, the tiny model does not."""
    rng = np.random.default_rng(seed)
    grids = [rng.integers(0, 3, size=(3, 3)) for _ in range(3)]
    return ({"train": [{"input": g.tolist(), "output": g[:, ::-1].tolist()} for g in grids[:2]],
             "test": [{"input": grids[2].tolist()}]}, [grids[2][:, ::-1].tolist()])


def test_the_model_the_search_and_both_from_one_run(tmp_path):
    challenges = write_set(tmp_path, {"flip": flip_task(5), "rand": task(4)})
    run = tmp_path / "run"
    run_evaluation(with_options(EvalConfig(), challenges=str(challenges), output=str(run), ttt=False, decoder="sample",
                                views=3, scoring_views=2, max_tokens=1024, progress=False, report=True, cache=False,
                                search_seconds=5.0), tiny())
    pools = candidates_of(json.loads((run / "report.json").read_text()), run / "report.json")
    searched = [c for c in pools[("flip", 0)] if c.from_search]
    assert searched and searched[0].search_rank == 0 and not searched[0].decoded
    both = rerank(run / "report.json", "product-of-experts", tmp_path / "both")
    search = rerank(run / "report.json", "product-of-experts", tmp_path / "search", solver="search")
    model = rerank(run / "report.json", "product-of-experts", tmp_path / "model", solver="model")
    assert both.score.task_scores["flip"] == search.score.task_scores["flip"] == 1.0
    assert model.score.task_scores["flip"] == 0.0  # the search's grid is not among the model's own
    model_pool = read_submission(model.submission_path, {"flip": 1, "rand": 1})
    search_pool = read_submission(search.submission_path, {"flip": 1, "rand": 1})
    decoded = [c.grid.tolist() for c in pools[("rand", 0)] if c.decoded]
    assert model_pool["rand"][0]["attempt_1"].tolist() in decoded
    # the search's first attempt is its simplest program's grid, or the fallback when it found none
    by_rank = sorted((c for c in pools[("rand", 0)] if c.from_search), key=lambda c: c.search_rank)
    assert search_pool["rand"][0]["attempt_1"].tolist() == (by_rank[0].grid.tolist() if by_rank else [[0]])
    assert (("rand", 0) in search.fell_back) == (not by_rank)


def test_an_unknown_solver_is_refused(run, tmp_path):
    with pytest.raises(ValueError, match="unknown solver 'both'"):
        rerank(run / "report.json", "vote", tmp_path / "x", solver="both")
