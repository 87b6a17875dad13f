"""The report: a task's results survive the JSON of report.json (and rank files), candidates included."""

from __future__ import annotations

import json

import numpy as np

from training_code.report import (
    EXIT_FELL_BACK,
    EXIT_OK,
    EvalSummary,
    TaskResult,
    candidate_from_json,
    candidate_to_json,
)
from training_code.selection import ScoredCandidate


def test_a_task_result_reads_back_from_its_json():
    cands = [ScoredCandidate(np.array([[1, 2]], dtype=np.uint8), [0.5], [0.25, 0.75]),
             ScoredCandidate(np.array([[3]], dtype=np.uint8), [1.5], [], from_program=True),
             ScoredCandidate(np.array([[4], [5]], dtype=np.uint8), [2.0], [], from_search=True, search_rank=1,
                             decoded=False)]
    result = TaskResult("aaa", {0: cands}, {0: [cands[0].grid, None]}, error="", seconds=1.5, programs_sampled=3,
                        programs_valid=1, search_programs={0: ["flip_h"]}, search_seconds=0.5)
    back = TaskResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.task_id == "aaa" and back.seconds == 1.5 and back.search_programs == {0: ["flip_h"]}
    assert back.search_seconds == 0.5
    assert (back.programs_sampled, back.programs_valid) == (3, 1)
    for a, b in zip(back.candidates[0], cands, strict=True):
        assert np.array_equal(a.grid, b.grid) and a.grid.dtype == np.uint8
        assert (a.generation_nlls, a.scoring_nlls, a.from_program, a.from_search, a.search_rank, a.decoded) == (
            b.generation_nlls, b.scoring_nlls, b.from_program, b.from_search, b.search_rank, b.decoded)
    assert np.array_equal(back.view_predictions[0][0], cands[0].grid) and back.view_predictions[0][1] is None


def test_a_candidate_of_an_older_report_has_no_program_marks():
    old = {"grid": [[1]], "generation_nlls": [0.1], "scoring_nlls": []}
    cand = candidate_from_json(old)
    assert not cand.from_program and not cand.from_search and cand.decoded
    assert candidate_to_json(cand) == {**old, "from_program": False, "from_search": False, "search_rank": None,
                                       "decoded": True}


def test_the_exit_status_says_whether_a_test_input_fell_back(tmp_path):
    assert EvalSummary(tmp_path, [], {}).exit_status == EXIT_OK
    assert EvalSummary(tmp_path, [("aaa", 0)], {"aaa": "no candidate decoded"}).exit_status == EXIT_FELL_BACK
