"""Tests for training_code.submission: building, atomic writing, validation, reading back, scoring."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training_code import submission as sub
from training_code.grids import FALLBACK_GRID, ArcDataError
from training_code.submission import (
    build_submission,
    read_submission,
    score_submission,
    validate_submission,
    write_submission,
    write_verified_submission,
)


def g(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


G1, G2, G3, G4 = g([[1]]), g([[2, 2]]), g([[3], [3]]), g([[4, 4], [4, 4]])
FALLBACK = np.array(FALLBACK_GRID, dtype=np.uint8)


def same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b))


# ---- building ----------------------------------------------------------------------------------


def test_build_fills_missing_and_short_candidates_with_the_fallback():
    counts = {"t1": 2, "t2": 1}
    ranked = {("t1", 0): [G1, G2, G3], ("t1", 1): [G4]}
    build = build_submission(counts, ranked)
    t1, t2 = build.submission["t1"], build.submission["t2"]
    assert same(t1[0]["attempt_1"], G1)  # the best two; G3 dropped
    assert same(t1[0]["attempt_2"], G2)
    assert same(t1[1]["attempt_1"], G4)
    assert same(t1[1]["attempt_2"], FALLBACK)
    assert same(t2[0]["attempt_1"], FALLBACK)
    assert same(t2[0]["attempt_2"], FALLBACK)
    assert build.fell_back == (("t2", 0),)
    assert build.one_candidate == (("t1", 1),)
    assert build.rejected == ()
    assert all(grid.dtype == np.uint8 for entries in build.submission.values() for e in entries for grid in e.values())


def test_build_skips_repeated_candidates():
    # G1 twice (once as a list): the second copy would waste attempt_2, so G2 takes it.
    build = build_submission({"t": 1}, {("t", 0): [G1, [[1]], G2]})
    assert same(build.submission["t"][0]["attempt_2"], G2)
    assert build.one_candidate == ()


def test_build_skips_and_records_invalid_candidates():
    ranked = {("t", 0): [np.zeros((31, 1), dtype=np.uint8), [[1, 2], [3]], G1]}
    build = build_submission({"t": 1}, ranked)
    assert same(build.submission["t"][0]["attempt_1"], G1)
    assert build.one_candidate == (("t", 0),)
    assert [(task, index) for task, index, _ in build.rejected] == [("t", 0), ("t", 0)]
    assert "sides must be 1 to 30" in build.rejected[0][2]
    assert "not rectangular" in build.rejected[1][2]


@pytest.mark.parametrize("key", [("zz", 0), ("t", 2), ("t", -1)])
def test_build_rejects_candidates_for_unknown_test_inputs(key: tuple[str, int]):
    with pytest.raises(ValueError, match="zz" if key[0] == "zz" else "test input"):
        build_submission({"t": 2}, {key: [G1]})


def test_build_rejects_a_negative_count():
    with pytest.raises(ValueError, match="integer >= 0"):
        build_submission({"t": -1}, {})


# ---- writing -----------------------------------------------------------------------------------


def test_write_is_stable_and_leaves_no_temporary_file(tmp_path: Path):
    # The same content built in two task orders, from arrays and from lists, gives the same bytes.
    first = build_submission({"b": 1, "a": 2}, {("a", 0): [G1, G2], ("b", 0): [G3]}).submission
    second = build_submission({"a": 2, "b": 1}, {("b", 0): [G3.tolist()], ("a", 0): [G1.tolist(), G2]}).submission
    write_submission(tmp_path / "one.json", first)
    write_submission(tmp_path / "two.json", second)
    write_submission(tmp_path / "two.json", second)  # overwriting an existing file
    data = (tmp_path / "one.json").read_bytes()
    assert data == (tmp_path / "two.json").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["one.json", "two.json"]
    assert b" " not in data  # compact
    parsed = json.loads(data)
    assert list(parsed) == ["a", "b"]  # sorted task ids
    assert parsed["a"][0] == {"attempt_1": [[1]], "attempt_2": [[2, 2]]}


def test_write_of_an_invalid_grid_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "submission.json"
    write_submission(path, {"t": [{"attempt_1": G1, "attempt_2": G2}]})
    before = path.read_bytes()
    with pytest.raises(ArcDataError, match="values must be integers 0 to 9"):
        write_submission(path, {"t": [{"attempt_1": [[10]], "attempt_2": G2}]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["submission.json"]


def test_write_that_fails_midway_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path, monkeypatch):
    path = tmp_path / "submission.json"
    write_submission(path, {"t": [{"attempt_1": G1, "attempt_2": G2}]})
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(sub.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_submission(path, {"t": [{"attempt_1": G3, "attempt_2": G4}]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["submission.json"]


# ---- validation --------------------------------------------------------------------------------

COUNTS = {"aaa111": 2, "bbb222": 1}


def valid_json_submission() -> dict[str, Any]:
    return {
        "aaa111": [{"attempt_1": [[1]], "attempt_2": [[2, 2]]}, {"attempt_1": [[3]], "attempt_2": [[0]]}],
        "bbb222": [{"attempt_1": [[4]], "attempt_2": [[5]]}],
    }


def set_grid(task: str, index: int, name: str, grid: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data[task][index][name] = grid

    return mutate


def drop_attempt(task: str, index: int, name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        del data[task][index][name]

    return mutate


# (how to break a valid submission, the task the error must name, words of the problem it must say)
BROKEN = {
    "missing task": (lambda d: d.pop("bbb222"), "bbb222", "missing from the submission"),
    "extra task": (lambda d: d.update(ccc333=[]), "ccc333", "not a task of the challenges"),
    "too few test entries": (lambda d: d["aaa111"].pop(), "aaa111", "has 1 test entries"),
    "too many test entries": (lambda d: d["bbb222"].append(d["bbb222"][0]), "bbb222", "has 2 test entries"),
    "missing attempt_1": (drop_attempt("aaa111", 1, "attempt_1"), "aaa111", "test[1] lacks attempt_1"),
    "missing attempt_2": (drop_attempt("bbb222", 0, "attempt_2"), "bbb222", "test[0] lacks attempt_2"),
    "unexpected attempt": (lambda d: d["bbb222"][0].update(attempt_3=[[1]]), "bbb222", "unexpected keys"),
    "entry not an object": (lambda d: d["bbb222"].__setitem__(0, [[1]]), "bbb222", "must be an object"),
    "entries not a list": (lambda d: d.update(bbb222={"attempt_1": [[1]]}), "bbb222", "must be a list"),
    "non-rectangular": (set_grid("aaa111", 0, "attempt_2", [[1, 2], [3]]), "aaa111", "not rectangular"),
    "31 rows": (set_grid("aaa111", 0, "attempt_1", [[0]] * 31), "aaa111", "sides must be 1 to 30"),
    "31 columns": (set_grid("bbb222", 0, "attempt_1", [[0] * 31]), "bbb222", "sides must be 1 to 30"),
    "no rows": (set_grid("aaa111", 1, "attempt_1", []), "aaa111", "non-empty list of rows"),
    "empty row": (set_grid("aaa111", 1, "attempt_2", [[]]), "aaa111", "non-empty list of cells"),
    "value 10": (set_grid("bbb222", 0, "attempt_2", [[10]]), "bbb222", "values must be integers 0 to 9"),
    "value -1": (set_grid("bbb222", 0, "attempt_2", [[-1]]), "bbb222", "values must be integers 0 to 9"),
    "float value": (set_grid("bbb222", 0, "attempt_2", [[1.5]]), "bbb222", "values must be integers 0 to 9"),
    "boolean value": (set_grid("bbb222", 0, "attempt_2", [[True]]), "bbb222", "values must be integers 0 to 9"),
}


def test_the_unbroken_submission_is_valid(tmp_path: Path):
    # Without this the cases below could pass on a validator that rejects everything.
    path = tmp_path / "fine.json"
    path.write_text(json.dumps(valid_json_submission()))
    parsed = read_submission(path, COUNTS)
    assert same(parsed["aaa111"][0]["attempt_2"], [[2, 2]])
    assert parsed["aaa111"][0]["attempt_2"].dtype == np.uint8


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_submission_names_file_task_and_problem(case: str, tmp_path: Path):
    mutate, task_id, problem = BROKEN[case]
    data = valid_json_submission()
    mutate(data)
    path = tmp_path / "broken_submission.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArcDataError) as caught:
        read_submission(path, COUNTS)
    message = str(caught.value)
    assert "broken_submission.json" in message
    assert f"task {task_id}" in message
    assert problem in message
    assert caught.value.task_id == task_id
    # The same check on the parsed object, with a file name given by the caller.
    with pytest.raises(ArcDataError, match=f"file other.json, task {task_id}: .*{problem.replace('[', '.')}"):
        validate_submission(data, COUNTS, file="other.json")


def test_malformed_json_names_the_file(tmp_path: Path):
    path = tmp_path / "truncated.json"
    path.write_text('{"aaa111": [{"attempt_1": [[1]]')
    with pytest.raises(ArcDataError, match=r"truncated\.json.*not valid JSON"):
        read_submission(path, COUNTS)


def test_a_top_level_list_is_not_a_submission(tmp_path: Path):
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(ArcDataError, match=r"list\.json.*must be an object of task ids"):
        read_submission(path, COUNTS)


# ---- write, read back, verify ------------------------------------------------------------------


def test_write_verified_returns_what_is_on_disk(tmp_path: Path):
    path = tmp_path / "submission.json"
    build = build_submission(COUNTS, {("aaa111", 1): [G4, G3]})
    result = write_verified_submission(path, build.submission, COUNTS)
    assert same(result["aaa111"][1]["attempt_1"], G4)
    assert same(result["aaa111"][1]["attempt_2"], G3)
    assert same(result["bbb222"][0]["attempt_1"], FALLBACK)
    assert json.loads(path.read_text())["aaa111"][1]["attempt_2"] == [[3], [3]]


def test_write_verified_refuses_a_wrong_submission_before_touching_the_file(tmp_path: Path):
    path = tmp_path / "submission.json"
    path.write_text("old")
    incomplete = build_submission({"aaa111": 2}, {}).submission  # bbb222 missing
    with pytest.raises(ArcDataError, match="task bbb222: missing"):
        write_verified_submission(path, incomplete, COUNTS)
    assert path.read_text() == "old"


def test_write_verified_notices_a_read_back_that_differs(tmp_path: Path, monkeypatch):
    path = tmp_path / "submission.json"
    build = build_submission(COUNTS, {("bbb222", 0): [G1]})
    real_read = sub.read_submission

    def corrupting_read(file: Any, counts: Any) -> Any:
        parsed = real_read(file, counts)
        parsed["bbb222"][0]["attempt_1"] = G2
        return parsed

    monkeypatch.setattr(sub, "read_submission", corrupting_read)
    with pytest.raises(ArcDataError, match=r"task bbb222: test\[0\]\.attempt_1 read back differs"):
        write_verified_submission(path, build.submission, COUNTS)


# ---- scoring -----------------------------------------------------------------------------------


def test_kaggle_score_on_two_tasks_one_with_two_test_inputs():
    solutions = {"a": [[[1, 2]], [[3, 4]]], "b": [[[5]]]}
    submission = {
        # a: test 0 right by attempt_2; test 1 has the right values in the wrong shape -> 1 of 2 -> 0.5
        "a": [
            {"attempt_1": [[0]], "attempt_2": [[1, 2]]},
            {"attempt_1": [[3], [4]], "attempt_2": [[4, 3]]},
        ],
        # b: right by attempt_1 -> 1.0
        "b": [{"attempt_1": g([[5]]), "attempt_2": [[0]]}],
        # c has no solution: ignored for the score, counted as unscored
        "c": [{"attempt_1": [[5]], "attempt_2": [[5]]}],
    }
    score = score_submission(submission, solutions)
    assert score.task_scores == {"a": 0.5, "b": 1.0}
    assert score.correct == {"a": (True, False), "b": (True,)}
    assert score.points == 1.5  # 0.5 + 1.0
    assert score.tasks == 2
    assert score.percentage == pytest.approx(75.0)  # 100 * 1.5 / 2
    assert score.unscored == 1


def test_kaggle_score_counts_missing_tasks_and_entries_as_wrong():
    solutions = {"a": [[[1]], [[2]]], "d": [[[7]]]}
    # a: only test 0 submitted (right, by attempt_1 alone); test 1 missing -> 0.5. d: absent -> 0.
    submission = {"a": [{"attempt_1": [[1]]}]}
    score = score_submission(submission, solutions)
    assert score.task_scores == {"a": 0.5, "d": 0.0}
    assert score.points == 0.5
    assert score.percentage == pytest.approx(25.0)  # 100 * 0.5 / 2
    assert score.unscored == 0


def test_kaggle_score_rejects_bad_solutions():
    with pytest.raises(ArcDataError, match=r"task a: solution\[0\].*values must be integers"):
        score_submission({}, {"a": [[[12]]]})
    with pytest.raises(ArcDataError, match="task a: solutions must be a non-empty list"):
        score_submission({}, {"a": []})


# ---- property: build -> write -> read round-trips ----------------------------------------------

small_grids = st.integers(1, 5).flatmap(
    lambda h: st.integers(1, 5).flatmap(
        lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)
    )
)


@st.composite
def tasks_and_candidates(draw: st.DrawFn) -> tuple[dict[str, int], dict[tuple[str, int], list[list[list[int]]]]]:
    task_ids = draw(st.lists(st.text("0123456789abcdef", min_size=8, max_size=8), min_size=1, max_size=4, unique=True))
    counts = {task_id: draw(st.integers(1, 3)) for task_id in task_ids}
    ranked = {}
    for task_id, count in counts.items():
        for index in range(count):
            if draw(st.booleans()):
                ranked[(task_id, index)] = draw(st.lists(small_grids, max_size=3))
    return counts, ranked


@settings(max_examples=40, deadline=None)
@given(tasks_and_candidates())
def test_build_write_read_round_trips(case: tuple[dict[str, int], dict[tuple[str, int], list[Any]]]):
    counts, ranked = case
    build = build_submission(counts, ranked)
    # tmp_path is per test, not per example; a fresh directory per example keeps examples independent
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submission.json"
        write_submission(path, build.submission)
        first_bytes = path.read_bytes()
        read_back = read_submission(path, counts)
        write_submission(path, read_back)
        assert path.read_bytes() == first_bytes
        assert os.listdir(folder) == ["submission.json"]
    assert set(read_back) == set(counts)
    for task_id, entries in build.submission.items():
        assert len(read_back[task_id]) == counts[task_id]
        for index, entry in enumerate(entries):
            for name in ("attempt_1", "attempt_2"):
                assert read_back[task_id][index][name].dtype == np.uint8
                assert same(read_back[task_id][index][name], entry[name])
            # the first attempt is the best-ranked candidate when there is one
            candidates = ranked.get((task_id, index), [])
            assert same(entry["attempt_1"], candidates[0] if candidates else FALLBACK)
