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


# Stamps: red cells ring themselves with blue, green cells put yellow above and below and turn grey
STAMPS = {2: {(dr, dc): 1 for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)},
          3: {(-1, 0): 4, (1, 0): 4, (0, 0): 5}}


def scattered(seed: int, colours=(2, 3, 8), shape=(9, 9)) -> np.ndarray:
    """A few cells of ``colours`` on background, apart from one another and from the edge by 3 or more."""
    rng = np.random.default_rng(seed)
    grid = np.zeros(shape, np.uint8)
    spots = [(r, c) for r in range(1, shape[0] - 1, 3) for c in range(1, shape[1] - 1, 3)]
    for i in rng.permutation(len(spots))[:4]:
        grid[spots[i]] = rng.choice(colours)
    return grid


def stamped(grid: np.ndarray) -> np.ndarray:
    made = cell_rules.apply_stamps(grid, STAMPS)
    assert made is not None
    return made


def stamp_examples(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    grids = [scattered(seed) for seed in range(n)]
    for colour in STAMPS:  # every stamped colour shows up
        grids[0][1, 1] = colour
        grids[1][4, 4] = colour
    grids[0][7, 7] = 8
    return grids, [stamped(g) for g in grids]


def phase_rule_for(train: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray]) -> str:
    """The text of the phase rule fitted on the examples, after checking that it gives the test's output."""
    fitted = cell_rules.fit_phase_rule([g for g, _ in train], [o for _, o in train], [test[0]])
    assert fitted is not None and np.array_equal(fitted[1][0], test[1])
    return fitted[0]


def test_every_third_column_counted_from_the_right_is_recoloured_whatever_the_width():
    def striped(width: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(width)
        grid = np.where(rng.random((4, width)) < 0.6, 4, 0).astype(np.uint8)
        out = grid.copy()
        from_right = np.arange(width)[::-1]
        out[:, from_right % 3 == 0] = np.where(grid[:, from_right % 3 == 0] == 4, 6, 0)
        return grid, out

    train = [striped(w) for w in (9, 10, 11, 13)]
    test = striped(14)
    assert phase_rule_for(train, test).startswith("cell_rule({}, 'columns mod 3 from the end'")
    # counted from the left it fits no example of another width: the place from the right is what decides
    assert learn_rule([g for g, _ in train], [o for _, o in train], "columns mod 3") is None
    result = search_task(train, [test[0]], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert np.array_equal(result.candidates[0][0], test[1])


def test_the_middle_column_is_kept_whatever_the_width():
    rng = np.random.default_rng(2)

    def example(width: int) -> tuple[np.ndarray, np.ndarray]:
        grid = rng.integers(0, 4, size=(5, width)).astype(np.uint8)
        out = np.zeros_like(grid)
        out[:, width // 2] = grid[:, width // 2]
        return grid, out

    train = [example(w) for w in (3, 5, 7, 9)]
    assert phase_rule_for(train, example(11)).startswith("cell_rule({}, 'middle column'")


def test_stamps_are_learned_from_the_examples_and_paint_a_new_arrangement():
    grids, outputs = stamp_examples(4)
    test = np.zeros((8, 11), np.uint8)
    test[1, 1], test[5, 8], test[6, 2], test[3, 5] = 2, 3, 3, 8
    text, made = cell_rules.fit_stamps(grids, outputs, [test])
    assert text == "stamp({}, {2: '111/1*1/111', 3: '.4./.5./.4.'})"  # each colour's pattern as a picture
    expected = test.copy()
    expected[0:3, 0:3] = 1
    expected[1, 1] = 2
    expected[4, 8] = expected[6, 8] = expected[5, 2] = expected[7, 2] = 4
    expected[5, 8] = expected[6, 2] = 5
    assert np.array_equal(made[0], expected)


def test_a_colour_that_only_sits_beside_a_pattern_learns_no_stamp_of_its_own():
    grids, outputs = stamp_examples(3)
    # one magenta cell, once, next to a red cell: every background cell near it is painted blue by the red
    grids[2] = np.zeros((9, 9), np.uint8)
    grids[2][4, 4], grids[2][3, 5] = 2, 6
    outputs[2] = stamped(grids[2])
    test = np.zeros((9, 9), np.uint8)
    test[6, 6], test[1, 1] = 6, 3
    text, made = cell_rules.fit_stamps(grids, outputs, [test])
    assert "6:" not in text and np.array_equal(made[0], stamped(test))
    assert (made[0][5:8, 5:8] == 0).sum() == 8  # the magenta cell paints nothing


def test_stamps_refuse_clashes_unseen_colours_and_examples_they_do_not_explain():
    grids, outputs = stamp_examples(4)
    clash = np.zeros((5, 5), np.uint8)
    clash[1, 2], clash[3, 2] = 2, 3  # the cell between them: blue from the red, yellow from the green
    assert cell_rules.apply_stamps(clash, STAMPS) is None
    assert cell_rules.fit_stamps(grids, outputs, [clash]) is None
    unseen = np.zeros((5, 5), np.uint8)
    unseen[2, 2] = 7
    assert cell_rules.fit_stamps(grids, outputs, [unseen]) is None
    broken = [o.copy() for o in outputs]
    broken[1][4, 3] = 6  # one painted cell of one example breaks the pattern
    assert cell_rules.fit_stamps(grids, broken, [grids[0]]) is None


def test_the_search_solves_a_task_only_stamps_explain():
    grids, outputs = stamp_examples(4)
    test = scattered(11)
    test[4, 4] = 3
    result = search_task(list(zip(grids, outputs)), [test], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert result.programs[0][0].startswith("stamp(grid, {2: ")
    assert np.array_equal(result.candidates[0][0], stamped(test))


def row_start_painting(seed: int, colours: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Grey blocks on black; the first column holds a colour per row; every grey cell takes its row's colour."""
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random((8, 9)) < 0.5, 5, 0).astype(np.uint8)
    grid[:, 0] = rng.choice(colours, size=8)
    grid[:, 1] = 0
    return grid, np.where(grid == 5, grid[:, :1], grid).astype(np.uint8)


def test_a_relational_rule_copies_a_colour_no_example_shows():
    pairs = [row_start_painting(seed, colours) for seed, colours in ((0, [1, 2]), (1, [3, 4]), (2, [1, 4]))]
    test, expected = row_start_painting(7, [6, 8])  # colours no example holds
    grids, outputs = [g for g, _ in pairs], [o for _, o in pairs]
    assert cell_rules.fit_cell_rule(grids, outputs, [test]) is None  # a table of colours cannot say it
    fitted = cell_rules.fit_relational_rule(grids, outputs, [test])
    assert fitted is not None
    text, made = fitted
    assert "'row ends'" in text
    assert np.array_equal(made[0], expected)
    result = search_task(pairs, [test], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert result.programs[0][0].startswith("relational_rule(grid, 'row ends'")
    assert np.array_equal(result.candidates[0][0], expected)


def test_a_relational_rule_refuses_examples_that_disagree():
    pairs = [row_start_painting(seed, [1, 2]) for seed in range(3)]
    grids, outputs = [g for g, _ in pairs], [o.copy() for _, o in pairs]
    outputs[2][outputs[2] == 1] = 2  # in one example, rows of colour 1 paint their grey cells 2
    assert cell_rules.fit_relational_rule(grids, outputs, [grids[0]]) is None


def test_the_most_and_least_common_colours_name_a_swap():
    # the most common colour becomes the least common one, which becomes background; the colours differ per example
    def swap(grid: np.ndarray) -> np.ndarray:
        values, counts = np.unique(grid, return_counts=True)
        most, least = values[np.argmax(counts)], values[np.argmin(counts)]
        return np.where(grid == most, least, 0).astype(np.uint8)

    rng = np.random.default_rng(3)
    grids = [np.where(rng.random((5, 5)) < 0.3, a, b).astype(np.uint8) for a, b in ((4, 5), (6, 5), (9, 5), (3, 5))]
    test, grids = grids[-1], grids[:-1]
    fitted = cell_rules.fit_relational_rule(grids, [swap(g) for g in grids], [test])
    assert fitted is not None and "'most and least common'" in fitted[0]
    assert np.array_equal(fitted[1][0], swap(test))


def test_a_test_colour_no_map_names_puts_the_relational_answer_first():
    # every example recolours its one-cell marker's shape with the marker's colour; a colour map fits the
    # examples (each uses its own colours) but leaves the test's unseen colours as they are
    def task(shape_colour: int, marker: int) -> tuple[np.ndarray, np.ndarray]:
        grid = np.zeros((6, 6), np.uint8)
        grid[1:4, 1:4] = shape_colour
        grid[2, 2] = 0
        grid[5, 0] = marker
        out = np.where(grid == shape_colour, marker, 0).astype(np.uint8)
        return grid, out

    pairs = [task(2, 4), task(3, 6)]
    test, expected = task(8, 2)
    result = search_task(pairs, [test], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert result.programs[0][0].startswith("relational_rule(grid, ")
    assert np.array_equal(result.candidates[0][0], expected)
    assert any(text.startswith("recolour(grid, ") for text in result.programs[0])  # the map's answer is kept


def test_every_second_cell_of_a_diagonal_is_recoloured_whatever_its_colour():
    def diagonals(colour: int, starts: list[int], size: int = 9) -> tuple[np.ndarray, np.ndarray]:
        grid = np.zeros((size, size), np.uint8)
        for start in starts:  # a diagonal line from (0, start), or from (-start, 0) when start is negative
            for i in range(size):
                r, c = (i, start + i) if start >= 0 else (i - start, i)
                if r < size and c < size:
                    grid[r, c] = colour
        out = grid.copy()
        out[(cell_rules._run_parity(grid, 1, 1) == 1) & (grid != 0)] = 4
        return grid, out

    pairs = [diagonals(2, [0]), diagonals(9, [2, -4]), diagonals(3, [1, -3])]
    test, expected = diagonals(6, [3, -2])  # a colour no example holds
    assert expected[1, 4] == 4 and expected[0, 3] == 6  # the second cell of a line changes, the first does not
    fitted = cell_rules.fit_relational_rule([g for g, _ in pairs], [o for _, o in pairs], [test])
    assert fitted is not None and "'every second cell along diagonals'" in fitted[0]
    assert np.array_equal(fitted[1][0], expected)


def test_the_crossing_of_two_lines_of_any_colours_is_ringed():
    def crossing(size: int, row: int, col: int, across: int, down: int) -> tuple[np.ndarray, np.ndarray]:
        grid = np.zeros((size, size), np.uint8)
        grid[row, :] = across
        grid[:, col] = down
        out = grid.copy()
        out[row - 1:row + 2, col - 1:col + 2] = 4
        out[row, col] = down
        return grid, out

    pairs = [crossing(6, 2, 2, 9, 1), crossing(8, 4, 4, 8, 6), crossing(7, 3, 2, 2, 3)]
    test, expected = crossing(9, 5, 6, 3, 5)  # colours 3 and 5 cross the other way round than in any example
    fitted = cell_rules.fit_relational_rule([g for g, _ in pairs], [o for _, o in pairs], [test])
    assert fitted is not None and "'square'" in fitted[0]
    assert np.array_equal(fitted[1][0], expected)
