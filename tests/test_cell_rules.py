"""Local cell rules: learned only when consistent, applied only when complete, the coarsest view first;
a task only such a rule explains is solved by the search with it."""

from __future__ import annotations

import numpy as np

from training_code.induction import cell_rules
from training_code.induction.cell_rules import apply_rule, fit_cell_rule, learn_rule
from training_code.induction.program_search import SearchConfig, search_task


def crowded_cells_turn_red(grid: np.ndarray) -> np.ndarray:
    """A blue cell with three or more non-background cells among its eight neighbours becomes red."""
    padded = np.pad(grid != 0, 1)
    h, w = grid.shape
    around = sum(padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w].astype(int)
                 for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
    return np.where((grid == 1) & (around >= 3), 2, grid).astype(np.uint8)


def examples(n: int, seed: int = 0, shape=(7, 7)):
    rng = np.random.default_rng(seed)
    grids = [(rng.random(shape) < 0.45).astype(np.uint8) for _ in range(n)]
    return [(g, crowded_cells_turn_red(g)) for g in grids]


def test_a_consistent_rule_is_learned_and_reproduces_the_examples():
    pairs = examples(4)
    table = learn_rule([i for i, _ in pairs], [o for _, o in pairs], "neighbour-count")
    assert table is not None
    for grid, output in pairs:
        assert np.array_equal(apply_rule(grid, table, "neighbour-count"), output)


def test_an_inconsistent_rule_is_refused():
    # the same cell with the same surroundings goes to two colours
    grid = np.array([[1, 0], [0, 0]], np.uint8)
    assert learn_rule([grid, grid], [grid, np.array([[2, 0], [0, 0]], np.uint8)], "square") is None
    assert learn_rule([grid], [np.zeros((3, 3), np.uint8)], "cross") is None  # shapes differ


def test_a_view_no_example_shows_gives_no_grid():
    grid = np.array([[1, 0], [0, 0]], np.uint8)
    table = learn_rule([grid], [grid], "cross")
    assert apply_rule(np.array([[3, 0], [0, 0]], np.uint8), table, "cross") is None


def test_the_coarsest_fitting_view_is_used():
    pairs = examples(5)
    test = examples(1, seed=9)[0]
    fitted = fit_cell_rule([i for i, _ in pairs], [o for _, o in pairs], [test[0]])
    assert fitted is not None
    text, made = fitted
    assert "'neighbour-count'" in text
    assert np.array_equal(made[0], test[1])


def test_the_search_solves_a_task_only_a_cell_rule_explains():
    pairs = examples(5)
    test = examples(1, seed=9)[0]
    result = search_task(pairs, [test[0]], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert any(np.array_equal(c, test[1]) for c in result.candidates[0][:2])
    assert result.programs[0][0].startswith("cell_rule(grid, 'neighbour-count'")
    # without the rule (depth -1: no state tries one) nothing at depth 1 fits
    without = search_task(pairs, [test[0]], SearchConfig(seconds=20, max_depth=1, cpu_time=True, cell_rule_depth=-1))
    assert not any(np.array_equal(c, test[1]) for c in without.candidates[0][:2])


def test_a_rule_by_depth_paints_rectangles_ring_by_ring():
    def rings(grid):
        out = grid.copy()
        depth = (cell_rules.VIEWS["depth"](grid) % cell_rules.BASE).reshape(grid.shape)
        out[depth == 2] = 2
        out[depth == 3] = 3
        return out

    def rectangles(first, second):
        grid = np.zeros((12, 12), np.uint8)
        grid[1:1 + first[0], 1:1 + first[1]] = 1
        grid[6:6 + second[0], 5:5 + second[1]] = 1
        return grid

    grids = [rectangles((3, 4), (5, 6)), rectangles((4, 4), (3, 7)), rectangles((5, 3), (4, 4))]
    test = rectangles((4, 5), (6, 5))
    text, made = fit_cell_rule(grids, [rings(g) for g in grids], [test])
    assert "'depth'" in text and np.array_equal(made[0], rings(test))
    assert (made[0] == 3).any()  # the test's larger rectangle has a third ring
