"""arc24's metrics over many predictions per test input (e.g. one prediction per augmented view).

Each test input has a list of predictions (a grid, or None when a view gave no answer) and its
true output grid. The metrics of one test input, all in [0, 1]:

- ``accuracy``: fraction of predictions exactly right;
- ``correct_pixels``: mean over predictions of the fraction of cells equal to the truth, 0 for a
  prediction of another shape or None;
- ``max_correct_pixels``: the best of those fractions;
- ``correct_size``: fraction of predictions with the truth's shape;
- ``any_correct_size``: 1 if any prediction has the truth's shape;
- ``pass_n``: 1 if any prediction is exactly right (n = the number of predictions);
- ``unanswered``: fraction of predictions that are None;
- ``pass_2``: 1 if one of two chosen predictions is exactly right; the two are given, or by default
  the two most frequent predictions (voting), ties broken by first appearance.

A test input with no predictions at all scores 0 everywhere except ``unanswered``, which is 1.
Aggregates are plain means: over a task's test inputs per task, over all test inputs overall.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from training_code.grids import Grid, grid_key

Prediction = Grid | None  # None: the prediction failed or was not made


@dataclass(frozen=True)
class Metrics:
    """The eight metrics, of one test input or averaged over several (see the module docstring)."""

    accuracy: float
    correct_pixels: float
    max_correct_pixels: float
    correct_size: float
    any_correct_size: float
    pass_n: float
    unanswered: float
    pass_2: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


METRIC_NAMES: tuple[str, ...] = tuple(field.name for field in fields(Metrics))


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a set of test inputs, keyed by (task id, test index).

    ``overall`` averages over test inputs (a task with three test inputs weighs three times one
    with a single test input); ``per_task`` averages over each task's test inputs.
    """

    overall: Metrics
    per_task: dict[str, Metrics]
    per_test_input: dict[tuple[str, int], Metrics]


def vote(predictions: Sequence[Prediction], k: int = 2) -> list[Grid]:
    """The ``k`` most frequent distinct predictions, None excluded; ties go to the earliest seen."""
    counts: dict[tuple[tuple[int, ...], ...], int] = {}
    first: dict[tuple[tuple[int, ...], ...], Grid] = {}
    for prediction in predictions:
        if prediction is None:
            continue
        key = grid_key(prediction)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, np.asarray(prediction))
    # dicts keep insertion order and sorted() is stable, so equal counts stay in order of first appearance
    ranked = sorted(counts, key=lambda key: -counts[key])
    return [first[key] for key in ranked[:k]]


def metrics_for_test_input(
    predictions: Sequence[Prediction], truth: Grid, chosen: Sequence[Prediction] | None = None
) -> Metrics:
    """The metrics of one test input.

    ``chosen`` are the (at most two) predictions that ``pass_2`` judges; None means choose by
    :func:`vote`. Raises ValueError for more than two chosen predictions.
    """
    truth = np.asarray(truth)
    if chosen is None:
        chosen = vote(predictions)
    elif len(chosen) > 2:
        raise ValueError(f"pass_2 judges at most two chosen predictions, got {len(chosen)}")
    pass_2 = float(any(_exact(prediction, truth) for prediction in chosen))
    if not predictions:
        return Metrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, pass_2)

    exact = [_exact(prediction, truth) for prediction in predictions]
    same_size = [prediction is not None and np.shape(prediction) == truth.shape for prediction in predictions]
    pixels = [
        float(np.mean(np.asarray(prediction) == truth)) if size else 0.0
        for prediction, size in zip(predictions, same_size, strict=True)
    ]
    n = len(predictions)
    return Metrics(
        accuracy=sum(exact) / n,
        correct_pixels=sum(pixels) / n,
        max_correct_pixels=max(pixels),
        correct_size=sum(same_size) / n,
        any_correct_size=float(any(same_size)),
        pass_n=float(any(exact)),
        unanswered=sum(prediction is None for prediction in predictions) / n,
        pass_2=pass_2,
    )


def mean_metrics(items: Sequence[Metrics]) -> Metrics:
    """The field-wise mean of several metrics. Raises ValueError for none."""
    if not items:
        raise ValueError("no metrics to average")
    return Metrics(**{name: sum(getattr(item, name) for item in items) / len(items) for name in METRIC_NAMES})


def evaluate(
    predictions: Mapping[tuple[str, int], Sequence[Prediction]],
    truths: Mapping[tuple[str, int], Grid],
    chosen: Mapping[tuple[str, int], Sequence[Prediction]] | None = None,
) -> Evaluation:
    """The metrics of every test input in ``truths``, per test input, per task and overall.

    All three mappings are keyed by (task id, test index). A test input of ``truths`` absent from
    ``predictions`` counts as having no predictions (unanswered). With ``chosen`` given, a test
    input absent from it has no chosen predictions (pass_2 = 0); without ``chosen``, pass_2 votes.
    Raises ValueError for keys of ``predictions`` or ``chosen`` that are not in ``truths``, and
    for empty ``truths``.
    """
    if not truths:
        raise ValueError("no test inputs to evaluate")
    for name, mapping in (("predictions", predictions), ("chosen", chosen or {})):
        unknown = [key for key in mapping if key not in truths]
        if unknown:
            raise ValueError(f"{name} for test inputs without a truth: {unknown[:5]}")

    per_test_input = {
        key: metrics_for_test_input(predictions.get(key, ()), truth, None if chosen is None else chosen.get(key, ()))
        for key, truth in truths.items()
    }
    by_task: dict[str, list[Metrics]] = {}
    for (task_id, _), metrics in per_test_input.items():
        by_task.setdefault(task_id, []).append(metrics)
    return Evaluation(
        overall=mean_metrics(list(per_test_input.values())),
        per_task={task_id: mean_metrics(items) for task_id, items in by_task.items()},
        per_test_input=per_test_input,
    )


def summarize_runs(runs: Sequence[Mapping[str, float] | Metrics]) -> dict[str, tuple[float, float]]:
    """Mean and population standard deviation of each metric over repeated runs.

    The population std (divide by n, not n - 1) describes the spread of the runs at hand and is
    defined for a single run (0). With a handful of runs it is smaller than the sample std by a
    factor sqrt((n - 1) / n); multiply by sqrt(n / (n - 1)) to get that estimate.
    Raises ValueError for no runs or for runs that do not share the same metric names.
    """
    if not runs:
        raise ValueError("no runs to summarize")
    dicts = [run.as_dict() if isinstance(run, Metrics) else dict(run) for run in runs]
    names = list(dicts[0])
    for index, run in enumerate(dicts[1:], start=1):
        if set(run) != set(names):
            raise ValueError(f"run {index} has metrics {sorted(run)}, run 0 has {sorted(names)}")
    summary: dict[str, tuple[float, float]] = {}
    for name in names:
        values = [float(run[name]) for run in dicts]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))
        summary[name] = (mean, std)
    return summary


def _exact(prediction: Prediction, truth: np.ndarray) -> bool:
    # array_equal is False for different shapes, so equal values laid out in another shape never count
    return prediction is not None and bool(np.array_equal(prediction, truth))
