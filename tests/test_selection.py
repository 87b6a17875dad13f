"""Tests of candidate merging, aggregation and the choice of two attempts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training_code.selection import AGGREGATIONS, ScoredCandidate, merge_candidates, rank_candidates


def grid(v: int) -> np.ndarray:
    return np.array([[v]], dtype=np.uint8)


def test_merge_candidates_merges_equal_grids_across_views():
    merged = merge_candidates([(grid(1), 0.5), (grid(2), 0.1), (grid(1), 0.3), (np.array([[1, 1]]), 0.2)])
    assert [c.grid.tolist() for c in merged] == [[[1]], [[2]], [[1, 1]]]
    assert merged[0].generation_nlls == [0.5, 0.3] and merged[0].votes == 2


def candidates():
    # a: decoded by three views but scored poorly overall; b: best under the product of experts;
    # c: a single confident generation, one terrible scoring view.
    a = ScoredCandidate(grid(1), [0.9, 1.0, 1.1], [1.0, 1.0, 1.0])  # sum 3.0, max 1.0
    b = ScoredCandidate(grid(2), [0.5], [0.2, 0.3, 2.0])  # sum 2.5, max 2.0
    c = ScoredCandidate(grid(3), [0.05], [0.1, 0.1, 4.0])  # sum 4.2, max 4.0
    return [a, b, c]


@pytest.mark.parametrize("aggregation, expected", [
    ("product-of-experts", [2, 1, 3]),
    ("max-generation-probability", [3, 2, 1]),
    ("min-probability", [1, 2, 3]),
    ("vote", [1, 3, 2]),  # a has 3 votes; b and c one each, c's generation NLL is lower
])
def test_each_aggregation_ranks_as_worked_out_by_hand(aggregation, expected):
    ranked = rank_candidates(candidates(), aggregation)
    assert [int(c.grid[0, 0]) for c in ranked] == expected


def test_mean_probability_uses_the_mean_of_probabilities():
    # b: mean(e^-0.2, e^-0.3, e^-2.0) = (0.8187 + 0.7408 + 0.1353) / 3 = 0.5650 -> NLL 0.571
    # a: e^-1 = 0.3679 -> NLL 1.0; c: (0.9048 * 2 + 0.0183) / 3 = 0.6093 -> NLL 0.4954
    ranked = rank_candidates(candidates(), "mean-probability")
    assert [int(c.grid[0, 0]) for c in ranked] == [3, 2, 1]
    score = AGGREGATIONS["mean-probability"](candidates()[1])[0]
    assert score == pytest.approx(-math.log((math.exp(-0.2) + math.exp(-0.3) + math.exp(-2.0)) / 3))


def test_the_two_attempts_are_the_two_best_and_fewer_candidates_give_fewer():
    def attempts(cands):
        return [c.grid.tolist() for c in rank_candidates(cands)[:2]]

    assert attempts(candidates()) == [[[2]], [[1]]]
    assert attempts(candidates()[:1]) == [[[1]]]
    assert attempts([]) == []


def test_scoring_aggregations_refuse_unscored_candidates_and_unknown_names():
    unscored = [ScoredCandidate(grid(1), [0.1])]
    with pytest.raises(ValueError, match="scoring NLLs"):
        rank_candidates(unscored, "product-of-experts")
    assert rank_candidates(unscored, "vote")[0].grid.tolist() == [[1]]
    with pytest.raises(ValueError, match="unknown aggregation"):
        rank_candidates(candidates(), "best")


def test_the_search_keeps_one_attempt_when_the_ranking_leaves_it_out():
    def cand(value: int, nll: float, searched: bool = False) -> ScoredCandidate:
        return ScoredCandidate(np.array([[value]], dtype=np.uint8), [nll], [nll], from_search=searched)

    pool = [cand(1, 1.0), cand(2, 2.0), cand(3, 3.0), cand(4, 4.0, searched=True), cand(5, 5.0, searched=True)]
    order = [int(c.grid[0, 0]) for c in rank_candidates(pool, search_attempt=True)]
    assert order == [1, 4, 2, 3, 5]  # the best-ranked searched one takes the second attempt
    assert [int(c.grid[0, 0]) for c in rank_candidates(pool)] == [1, 2, 3, 4, 5]  # off: the plain ranking
    pool[1].from_search = True  # already among the two attempts: nothing moves
    assert [int(c.grid[0, 0]) for c in rank_candidates(pool, search_attempt=True)] == [1, 2, 3, 4, 5]
    only_model = [cand(1, 1.0), cand(2, 2.0), cand(3, 3.0)]
    assert [int(c.grid[0, 0]) for c in rank_candidates(only_model, search_attempt=True)] == [1, 2, 3]


def test_candidates_the_model_never_read_keep_the_programs_order_under_every_aggregation():
    unread = [ScoredCandidate(grid(v), decoded=False, from_search=True, search_rank=i) for i, v in enumerate((3, 1, 2))]
    for aggregation in AGGREGATIONS:
        assert [int(c.grid[0, 0]) for c in rank_candidates(unread, aggregation, search_attempt=True)] == [3, 1, 2]
