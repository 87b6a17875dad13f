"""Tests for training_code.metrics: every number below is worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training_code.metrics import (
    METRIC_NAMES,
    Metrics,
    evaluate,
    mean_metrics,
    metrics_for_test_input,
    summarize_runs,
    vote,
)


def g(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


TRUTH = g([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
RIGHT = TRUTH.copy()
WRONG_SIZE = g([[1, 2], [4, 5]])
FIVE_OF_NINE = g([[1, 2, 3], [4, 5, 0], [0, 0, 0]])  # the first five cells right, the last four 0


def approx(metrics: Metrics, **expected: float) -> None:
    for name, value in expected.items():
        assert getattr(metrics, name) == pytest.approx(value), name


def test_three_predictions_one_right_one_wrong_size_one_five_of_nine():
    # Order: 5/9 right, wrong size, right. All three appear once, so voting keeps the first two
    # (FIVE_OF_NINE, WRONG_SIZE), neither exact: pass_2 = 0 although pass_n = 1.
    metrics = metrics_for_test_input([FIVE_OF_NINE, WRONG_SIZE, RIGHT], TRUTH)
    approx(
        metrics,
        accuracy=1 / 3,  # one of three exact
        correct_pixels=(5 / 9 + 0 + 1) / 3,  # = 14/27; the wrong size counts 0
        max_correct_pixels=1.0,
        correct_size=2 / 3,  # FIVE_OF_NINE and RIGHT are 3x3
        any_correct_size=1.0,
        pass_n=1.0,
        unanswered=0.0,
        pass_2=0.0,
    )
    assert metrics.correct_pixels == pytest.approx(14 / 27)


def test_chosen_predictions_decide_pass_2():
    predictions = [FIVE_OF_NINE, WRONG_SIZE, RIGHT]
    assert metrics_for_test_input(predictions, TRUTH, chosen=[RIGHT]).pass_2 == 1.0
    assert metrics_for_test_input(predictions, TRUTH, chosen=[WRONG_SIZE, FIVE_OF_NINE]).pass_2 == 0.0
    # no chosen prediction at all: nothing can pass
    assert metrics_for_test_input(predictions, TRUTH, chosen=[]).pass_2 == 0.0
    with pytest.raises(ValueError, match="at most two"):
        metrics_for_test_input(predictions, TRUTH, chosen=[RIGHT, RIGHT, RIGHT])


def test_voting_prefers_the_most_frequent_then_the_earliest():
    # RIGHT appears twice, after two single wrong grids: counts W=1, F=1, R=2 -> top two R, W.
    assert metrics_for_test_input([WRONG_SIZE, FIVE_OF_NINE, RIGHT, RIGHT], TRUTH).pass_2 == 1.0
    # W=2, F=2, R=1: R loses the vote although it is among the predictions.
    assert metrics_for_test_input([WRONG_SIZE, FIVE_OF_NINE, WRONG_SIZE, FIVE_OF_NINE, RIGHT], TRUTH).pass_2 == 0.0
    # F=1, R=1, W=1: a three-way tie, kept in order of appearance, so F and R are chosen: pass.
    assert metrics_for_test_input([FIVE_OF_NINE, RIGHT, WRONG_SIZE], TRUTH).pass_2 == 1.0
    # vote itself: None is never a candidate; equal grids merge regardless of dtype
    voted = vote([None, None, None, WRONG_SIZE, TRUTH.astype(np.int64), RIGHT], k=2)
    assert [grid.shape for grid in voted] == [(3, 3), (2, 2)]


def test_unanswered_predictions_count_as_wrong():
    # Four predictions: None, RIGHT, None, WRONG_SIZE.
    metrics = metrics_for_test_input([None, RIGHT, None, WRONG_SIZE], TRUTH)
    approx(
        metrics,
        accuracy=1 / 4,
        correct_pixels=(0 + 1 + 0 + 0) / 4,
        max_correct_pixels=1.0,
        correct_size=1 / 4,
        any_correct_size=1.0,
        pass_n=1.0,
        unanswered=2 / 4,
        pass_2=1.0,  # votes: RIGHT=1, WRONG_SIZE=1; RIGHT came first
    )


def test_same_values_in_another_shape_is_not_right():
    # 1x9 with the truth's values in reading order: right values, wrong shape -> 0 everywhere.
    flat = TRUTH.reshape(1, 9)
    approx(metrics_for_test_input([flat], TRUTH), accuracy=0, correct_pixels=0, correct_size=0, pass_n=0, pass_2=0)


def test_no_predictions_are_all_unanswered():
    metrics = metrics_for_test_input([], TRUTH)
    assert metrics.unanswered == 1.0
    assert all(getattr(metrics, name) == 0.0 for name in METRIC_NAMES if name != "unanswered")


def test_evaluate_averages_over_test_inputs_and_per_task():
    # Task a, input 0: [RIGHT, FIVE_OF_NINE] -> accuracy 1/2, correct_pixels (1 + 5/9)/2 = 7/9.
    # Task a, input 1: [WRONG_SIZE]          -> accuracy 0,   correct_pixels 0.
    # Task b, input 0: [RIGHT]               -> accuracy 1,   correct_pixels 1.
    # Per task a: accuracy (1/2 + 0)/2 = 1/4, correct_pixels (7/9 + 0)/2 = 7/18.
    # Overall (three inputs): accuracy (1/2 + 0 + 1)/3 = 1/2, correct_pixels (7/9 + 0 + 1)/3 = 16/27.
    truths = {("a", 0): TRUTH, ("a", 1): TRUTH, ("b", 0): TRUTH}
    predictions = {("a", 0): [RIGHT, FIVE_OF_NINE], ("a", 1): [WRONG_SIZE], ("b", 0): [RIGHT]}
    result = evaluate(predictions, truths)
    approx(result.per_test_input[("a", 0)], accuracy=1 / 2, correct_pixels=7 / 9)
    approx(result.per_task["a"], accuracy=1 / 4, correct_pixels=7 / 18, pass_n=1 / 2, any_correct_size=1 / 2)
    approx(result.per_task["b"], accuracy=1.0, correct_pixels=1.0)
    approx(result.overall, accuracy=1 / 2, correct_pixels=16 / 27, pass_n=2 / 3, unanswered=0.0)
    # per task means over tasks differ from the overall mean: (1/4 + 1)/2 = 5/8, not 1/2
    assert result.overall.accuracy != pytest.approx(5 / 8)


def test_evaluate_missing_and_unknown_test_inputs():
    truths = {("a", 0): TRUTH, ("a", 1): TRUTH}
    # ("a", 1) has no predictions: unanswered 1; the overall unanswered is (0 + 1)/2.
    result = evaluate({("a", 0): [RIGHT]}, truths)
    assert result.per_test_input[("a", 1)].unanswered == 1.0
    assert result.overall.unanswered == pytest.approx(1 / 2)
    # chosen given but not for ("a", 0): no attempt there, so pass_2 = 0 despite a right prediction
    chosen_result = evaluate({("a", 0): [RIGHT]}, truths, chosen={("a", 1): [RIGHT]})
    assert chosen_result.per_test_input[("a", 0)].pass_2 == 0.0
    with pytest.raises(ValueError, match="without a truth"):
        evaluate({("z", 0): [RIGHT]}, truths)
    with pytest.raises(ValueError, match="without a truth"):
        evaluate({}, truths, chosen={("a", 5): [RIGHT]})
    with pytest.raises(ValueError, match="no test inputs"):
        evaluate({}, {})


def test_mean_metrics_is_fieldwise():
    one = Metrics(1, 1, 1, 1, 1, 1, 0, 1)
    zero = Metrics(0, 0, 0, 0, 0, 0, 1, 0)
    assert mean_metrics([one, zero, zero, zero]).as_dict() == {
        name: (0.75 if name == "unanswered" else 0.25) for name in METRIC_NAMES
    }


def test_summarize_runs_uses_population_std():
    # accuracy over three runs 0, 0.5, 1: mean 0.5, population variance (0.25 + 0 + 0.25)/3 = 1/6.
    runs = [{"accuracy": 0.0, "pass_2": 1.0}, {"accuracy": 0.5, "pass_2": 1.0}, {"accuracy": 1.0, "pass_2": 1.0}]
    summary = summarize_runs(runs)
    assert summary["accuracy"] == pytest.approx((0.5, math.sqrt(1 / 6)))
    assert summary["pass_2"] == pytest.approx((1.0, 0.0))


def test_summarize_a_single_run_and_metrics_objects():
    metrics = Metrics(0.5, 0.25, 1, 1, 1, 1, 0, 0)
    summary = summarize_runs([metrics])
    assert summary["correct_pixels"] == (0.25, 0.0)
    assert set(summary) == set(METRIC_NAMES)


def test_summarize_runs_rejects_empty_and_mismatched_runs():
    with pytest.raises(ValueError, match="no runs"):
        summarize_runs([])
    with pytest.raises(ValueError, match="run 1"):
        summarize_runs([{"accuracy": 1.0}, {"pass_2": 1.0}])
