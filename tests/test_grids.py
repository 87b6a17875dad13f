"""Tests of grids.py: reading a grid strictly, its identity, the fallback answer, and data errors that say where."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training_code.grids import (
    FALLBACK_GRID,
    MAX_SIDE,
    ArcDataError,
    Where,
    as_grid,
    checked_grid,
    fallback_grid,
    grid_key,
    grid_to_list,
)

grids = st.tuples(st.integers(1, MAX_SIDE), st.integers(1, MAX_SIDE)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 9)))


@given(grids)
def test_a_grid_goes_to_json_and_back_unchanged(grid):
    rows = grid_to_list(grid)
    assert all(type(v) is int for row in rows for v in row)
    back = as_grid(rows)
    assert back.dtype == np.uint8 and np.array_equal(back, grid)
    assert np.array_equal(as_grid(grid), grid)  # an array is read as well as its rows


@given(grids, grids)
def test_grid_key_is_an_exact_identity(a, b):
    assert (grid_key(a) == grid_key(b)) == (a.shape == b.shape and np.array_equal(a, b))
    assert hash(grid_key(a)) == hash(grid_key(a.copy()))


def test_grid_key_tells_shapes_apart_that_hold_the_same_cells():
    assert grid_key(np.zeros((1, 4), np.uint8)) != grid_key(np.zeros((2, 2), np.uint8))
    assert grid_key(np.array([[1, 2]], dtype=np.int64)) == grid_key(np.array([[1, 2]], dtype=np.uint8))


def test_the_fallback_is_a_fresh_one_cell_grid():
    first = fallback_grid()
    assert first.dtype == np.uint8 and first.tolist() == [list(row) for row in FALLBACK_GRID] == [[0]]
    first[0, 0] = 7
    assert fallback_grid().tolist() == [[0]]  # each caller gets its own copy


@pytest.mark.parametrize(("value", "problem"), [
    ([], "non-empty list of rows"),
    ("12", "non-empty list of rows"),
    ([[1, 2], []], "row 1 must be a non-empty list of cells"),
    ([[1, 2], [3]], "not rectangular: row 0 has 2 cells, row 1 has 1"),
    ([[1, 10]], r"cell \(0, 1\) is 10; values must be integers 0 to 9"),
    ([[1, -1]], r"cell \(0, 1\) is -1"),
    ([[True]], r"cell \(0, 0\) is True"),  # a JSON true is not a colour
    ([[1.0]], r"cell \(0, 0\) is 1.0"),
    ([[0] * 31], "grid is 1x31; sides must be 1 to 30"),
    ([[0]] * 31, "grid is 31x1"),
    (np.zeros(3, np.uint8), "non-empty list of rows"),  # an array must have two dimensions
])
def test_a_bad_grid_is_refused_with_what_is_wrong(value, problem):
    with pytest.raises(ArcDataError, match=problem):
        as_grid(value)


def test_a_bad_grid_names_its_file_task_and_place():
    with pytest.raises(ArcDataError) as error:
        as_grid([[1], [2, 3]], Where("x_challenges.json", "007bbfb7", "train[2].output"))
    where = "file x_challenges.json, task 007bbfb7: train[2].output: "
    assert str(error.value).startswith(where + "grid is not rectangular")
    assert (error.value.file, error.value.task_id) == ("x_challenges.json", "007bbfb7")
    assert error.value.problem.startswith("train[2].output: ")


def test_a_data_error_says_only_what_it_knows():
    assert str(ArcDataError("bad")) == "bad"
    assert str(ArcDataError("bad", task_id="t")) == "task t: bad"
    assert str(ArcDataError("bad", file="f.json")) == "file f.json: bad"
    assert isinstance(ArcDataError("bad"), ValueError)  # callers that catch ValueError catch it too


def test_checked_grid_reads_arrays_and_lists_of_integers_and_refuses_the_rest():
    assert checked_grid([[1, 2]]).dtype == np.uint8
    assert checked_grid(np.array([[True]])).tolist() == [[1]]
    for bad in ([1, 2], [[10]], [[-1]], [[0.5]], np.zeros((0, 3)), np.zeros((2, 31)), "x", [[1], [1, 2]]):
        with pytest.raises(ValueError):
            checked_grid(bad)
    with pytest.raises(ArcDataError, match="grid is 2x31; sides must be 1 to 30"):
        checked_grid(np.zeros((2, 31), np.uint8))
    with pytest.raises(ArcDataError, match="cells must be 0 to 9, got values from 0 to 12"):
        checked_grid(np.array([[0, 12]], np.uint8))
    with pytest.raises(ArcDataError, match="cells must be integers, got dtype float64"):
        checked_grid([[0.5]])
    with pytest.raises(ArcDataError, match="a grid has 2 dimensions, this one has 1"):
        checked_grid([1, 2])
    grid = np.array([[1, 2]], np.uint8)
    assert checked_grid(grid) is grid  # already a grid: no copy
    flipped = checked_grid(np.array([[1, 2], [3, 4]], np.int64)[:, ::-1])
    assert flipped.flags.c_contiguous and flipped.tolist() == [[2, 1], [4, 3]]
