"""The program search: known compositions are found, slow, failing and oversized steps are cut off, a task
no program fits gives no candidates, and the same budget gives the same result."""

from __future__ import annotations

import gc
import itertools
import sys
import time
import weakref
from fractions import Fraction

import numpy as np
import pytest

from training_code.induction import dsl, program_search, search_fitters, search_steps
from training_code.induction.dsl import label
from training_code.induction.program_search import RANKED_SHARE, SearchConfig, colour_ranks, ranked_task, search_task
from training_code.induction.search_fitters import apply_colour_map, learn_colour_map
from training_code.induction.search_steps import NEW, Step


def pairs(transform, seed: int = 0, n: int = 4, shape=(5, 6), colours: int = 4, sparse: bool = False):
    """Training pairs and a test pair of random grids under ``transform``."""
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(n):
        grid = rng.integers(0, colours, size=shape).astype(np.uint8)
        if sparse:
            grid[rng.random(shape) < 0.7] = 0
        examples.append((grid, np.asarray(transform(grid), dtype=np.uint8)))
    return examples[:-1], examples[-1]


def fit_pairs(fitter, train, tests):
    """A fitter on training pairs (its grids and outputs apart) and test grids."""
    return fitter([g for g, _ in train], [o for _, o in train], tests)


def solves(train, test, config=SearchConfig(seconds=20, cpu_time=True)) -> tuple[bool, program_search.SearchResult]:
    # CPU time: a busy test machine slows the search down without making it find less
    result = search_task(train, [test[0]], config)
    right = any(np.array_equal(c, test[1]) for c in result.candidates[0][:2])
    return right, result


# --------------------------------------------------------------------------------------------------
# Known compositions


def test_a_flip_followed_by_a_colour_map_is_found_with_its_program():
    train, test = pairs(lambda g: dsl.recolour(dsl.flip_h(g), {1: 2, 2: 3, 3: 1}))
    right, result = solves(train, test)
    assert right
    assert result.programs[0][0] == "recolour(flip_h(grid), {1: 2, 2: 3, 3: 1})"
    assert result.found_depth == 2


def test_a_two_step_chain_is_found_breadth_first():
    def crop_then_mirror(g):
        return dsl.flip_v(dsl.crop_to_content(g))

    rng = np.random.default_rng(3)
    examples = []
    for _ in range(4):
        grid = np.zeros((9, 9), dtype=np.uint8)
        r, c, h, w = rng.integers(0, 4), rng.integers(0, 4), rng.integers(2, 5), rng.integers(2, 5)
        grid[r:r + h, c:c + w] = rng.integers(1, 5, size=(h, w))
        examples.append((grid, crop_then_mirror(grid)))
    right, result = solves(examples[:3], examples[3])
    assert right and result.found_depth == 2
    assert "crop" in result.programs[0][0] and "flip_v" in result.programs[0][0]


@pytest.mark.parametrize("name, transform, kw", [
    ("upscale", lambda g: dsl.upscale(g, 2), {}),
    ("mirrored tiling",
     lambda g: dsl.vconcat(dsl.hconcat(g, dsl.flip_h(g)), dsl.hconcat(dsl.flip_v(g), dsl.rotate(g, 2))), {}),
    ("gravity", lambda g: dsl.gravity(g, "left"), {"sparse": True}),
    ("fill enclosed", lambda g: dsl.fill_enclosed(g, 4), {"sparse": True}),
    ("halves and", lambda g: (((g[:, :3] != 0) & (g[:, 3:] != 0)) * 6).astype(np.uint8), {}),
    ("most common colour", lambda g: np.array([[dsl.most_common_colour(g, exclude=[0])]], dtype=np.uint8), {}),
    ("largest object", lambda g: dsl.crop(g, max(dsl.objects(g, 8, multicolour=True), key=lambda o: o.size).box),
     {"sparse": True}),
])
def test_common_transformations_are_found(name, transform, kw):
    seed = 0
    while True:  # a seed whose examples pin the transformation down (a tie of largest objects does not)
        try:
            train, test = pairs(transform, seed=seed, n=5, shape=(6, 6), **kw)
            if name == "largest object":
                for grid, _ in [*train, test]:
                    sizes = sorted(o.size for o in dsl.objects(grid, 8, multicolour=True))
                    assert len(sizes) > 1 and sizes[-1] > sizes[-2]
            if name == "fill enclosed":  # every example shows a hole filled
                for grid, _ in [*train, test]:
                    top, left = seed % 3, (seed // 3) % 3
                    grid[top:top + 3, left:left + 3] = 1
                    grid[top + 1, left + 1] = 0
                train = [(x, transform(x)) for x, _ in train]
                test = (test[0], transform(test[0]))
            break
        except (ValueError, AssertionError):
            seed += 1
    right, _ = solves(train, test)
    assert right, name


def test_identical_outputs_are_answered_as_a_constant():
    out = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    train, test = pairs(lambda g: out)
    right, result = solves(train, test)
    assert right and result.found_depth == 0


def test_candidates_are_distinct_at_most_three_and_simplest_first():
    # each input is one coloured cell: many programs fit, they disagree on the test input
    train = [(np.array([[0, 1]], np.uint8), np.array([[1, 0]], np.uint8)),
             (np.array([[0, 2]], np.uint8), np.array([[2, 0]], np.uint8))]
    result = search_task(train, [np.array([[3, 0], [0, 0]], np.uint8)], SearchConfig(seconds=20, cpu_time=True))
    cands = result.candidates[0]
    assert 1 <= len(cands) <= 3
    assert len({c.tobytes() + bytes(c.shape) for c in cands}) == len(cands)
    assert result.programs[0][0] == "flip_h(grid)"
    assert len(result.programs[0]) == len(cands)


# --------------------------------------------------------------------------------------------------
# Nothing sinks a task


def with_extra_steps(monkeypatch, extra):
    """The search's steps with ``extra`` tried first."""
    original = program_search.static_steps
    monkeypatch.setattr(program_search, "static_steps", lambda facts: [*extra, *original(facts)])


def test_a_slow_step_is_cut_off_and_the_search_goes_on(monkeypatch):
    def slow(grid):
        end = time.monotonic() + 3.0
        while time.monotonic() < end:  # Python-level work the timer interrupts
            pass
        return grid

    with_extra_steps(monkeypatch, [Step("slow({})", "slow", slow)])
    train, test = pairs(lambda g: dsl.recolour(dsl.flip_h(g), {1: 2, 2: 1}))
    right, result = solves(train, test, SearchConfig(seconds=20, step_seconds=0.05, max_depth=1, cpu_time=True))
    assert right
    assert result.steps_cut >= 1  # the slow step, cut on the root state


def _sleep_in_a_weakref_callback() -> None:
    class Box:
        pass

    box = Box()
    watch = weakref.ref(box, lambda _: time.sleep(0.3))  # noqa: F841 - its callback runs at the del
    del box


def _sleep_in_a_gc_callback() -> None:
    def sleepy(phase, _info):
        if phase == "start":
            time.sleep(0.3)

    gc.callbacks.append(sleepy)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(sleepy)


@pytest.mark.parametrize("callback", [_sleep_in_a_weakref_callback, _sleep_in_a_gc_callback])
def test_a_step_is_cut_when_the_first_ring_falls_in_a_callback(monkeypatch, callback):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: reported.append(report.exc_type))
    finished = []

    def slow(grid):
        callback()  # the step timer rings while the callback sleeps: Python cannot raise that StepTimeout
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            pass
        finished.append(grid)
        return grid

    with_extra_steps(monkeypatch, [Step("slow({})", "slow", slow)])
    train, test = pairs(lambda g: dsl.rotate(g, 2))
    right, result = solves(train, test, SearchConfig(seconds=30, step_seconds=0.05, max_depth=1, cpu_time=True))
    assert right and result.steps_cut >= 1
    assert finished == []  # a later ring cut the loop
    assert reported == []  # and the lost one was not reported as an error


def test_a_ring_never_breaks_into_the_report_of_another_lost_exception(monkeypatch):
    reported = []

    def slow_hook(report):
        time.sleep(0.3)  # several rings fall due while a report is written
        reported.append(report.exc_type)

    monkeypatch.setattr(sys, "unraisablehook", slow_hook)

    class Loud:
        def __del__(self):
            raise ValueError("lost in a __del__")

    def slow(grid):
        Loud()
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            pass
        return grid

    with_extra_steps(monkeypatch, [Step("slow({})", "slow", slow)])
    train, test = pairs(lambda g: dsl.rotate(g, 2))
    right, result = solves(train, test, SearchConfig(seconds=30, step_seconds=0.05, max_depth=1, cpu_time=True))
    assert right and result.steps_cut >= 1
    assert reported and set(reported) == {ValueError}  # each report written whole, no StepTimeout among them
    assert sys.unraisablehook is slow_hook  # the search's own hook is gone


def test_raising_and_oversized_steps_are_dropped(monkeypatch):
    def boom(grid):
        raise RuntimeError("a bug in a step")

    with_extra_steps(monkeypatch, [Step("boom({})", "x", boom),
                                   Step("huge({})", "y", lambda g: np.zeros((100, 100), np.uint8)),
                                   Step("flat({})", "z", lambda g: g.ravel())])
    train, test = pairs(lambda g: dsl.rotate(g, 1))
    right, result = solves(train, test, SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert right and result.steps_cut >= 3


def test_the_deadline_stops_the_search():
    train, test = pairs(lambda g: np.random.default_rng(int(g.sum())).integers(0, 9, size=(4, 4)), sparse=True)
    result = search_task(train, [test[0]], SearchConfig(seconds=0.2, max_depth=5))
    assert result.timed_out and result.candidates == [[]]


def test_a_task_no_program_fits_gives_no_candidates():
    rng = np.random.default_rng(7)
    train = [(rng.integers(0, 5, (4, 4)).astype(np.uint8), rng.integers(0, 5, (3, 5)).astype(np.uint8))
             for _ in range(3)]
    result = search_task(train, [rng.integers(0, 5, (4, 4)).astype(np.uint8)], SearchConfig(seconds=3, max_depth=1))
    assert result.candidates == [[]] and result.programs == [[]] and result.found_depth is None


def test_stored_states_stay_under_the_cap():
    train, test = pairs(lambda g: np.zeros((2, 2), np.uint8) + g.sum() % 7, sparse=True)
    result = search_task(train, [test[0]], SearchConfig(seconds=30, max_depth=2, max_states=50))
    # the task's own colours and each renaming of them are searched one after another, each storing at most
    # max_states (and freeing them before the next); ``states`` adds up what every pass met
    passes = 1 + sum(program_search.ranked_task(train, [test[0]], by) is not None for by in program_search.NAMINGS)
    assert result.states <= 50 * passes
    alone = program_search._search_task(train, [test[0]], SearchConfig(seconds=30, max_depth=2, max_states=50), "")
    assert alone.states <= 50


def test_the_same_budget_gives_the_same_result():
    train, test = pairs(lambda g: dsl.gravity(dsl.flip_v(g), "right"), sparse=True, seed=4)
    config = SearchConfig(seconds=60, max_steps=3000)
    first = search_task(train, [test[0]], config).to_json()
    second = search_task(train, [test[0]], config).to_json()
    for record in (first, second):
        record.pop("seconds")
    # the inputs rank their colours differently, so the search of the task's own colours gets its share of
    # the budget (and finds the depth-2 program there), spent to the last step; the renamed tasks are then
    # searched for a shallower program with the rest
    assert first == second and first["found_depth"] == 2
    assert int(3000 * RANKED_SHARE) + 1 < first["steps"] <= 3000 + 2


# --------------------------------------------------------------------------------------------------
# Pieces


def test_colour_maps_are_learned_only_when_one_map_fits_every_example():
    a = np.array([[0, 1], [2, NEW]], np.uint8)
    mapping = learn_colour_map([a], [np.array([[0, 5], [2, 7]], np.uint8)])
    assert mapping == {0: 0, 1: 5, 2: 2, NEW: 7}
    assert apply_colour_map(np.array([[1, 3]], np.uint8), mapping).tolist() == [[5, 3]]
    two = [np.array([[0, 5], [2, 7]], np.uint8), np.array([[0, 6], [2, 7]], np.uint8)]
    assert learn_colour_map([a, a], two) is None
    assert learn_colour_map([np.array([[1, 1]], np.uint8)], [np.array([[1, 2]], np.uint8)]) is None
    with pytest.raises(ValueError):  # NEW that no example names cannot reach a final grid
        apply_colour_map(np.array([[NEW]], np.uint8), {1: 2})


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("multicolour", [False, True])
def test_labels_agree_with_the_dsls_components(connectivity, multicolour):
    rng = np.random.default_rng(connectivity + multicolour)
    for _ in range(20):
        grid = rng.integers(0, 3, size=(rng.integers(1, 9), rng.integers(1, 9))).astype(np.uint8)
        lab = label(grid, connectivity, multicolour)
        ours = sorted(tuple(np.flatnonzero(lab.ravel() == v)) for v in np.unique(lab[lab >= 0]))
        theirs = sorted(tuple(np.flatnonzero(o.mask.ravel())) for o in dsl.objects(grid, connectivity,
                                                                                     multicolour=multicolour))
        assert ours == theirs


# --------------------------------------------------------------------------------------------------
# Objects that move, and candidates assembled from partial results


def t_shape(grid: np.ndarray, top: int, left: int, colour: int) -> None:
    grid[top, left:left + 3] = colour
    grid[top + 1, left + 1] = colour


def test_objects_drop_whole_until_they_rest_on_another():
    grid = np.zeros((6, 5), np.uint8)
    t_shape(grid, 0, 0, 3)  # a T: cell by cell gravity would break it
    grid[3, 1] = 4
    dropped = search_steps.drop_objects(grid, "down")
    expected = np.zeros_like(grid)
    expected[5, 1] = 4
    t_shape(expected, 3, 0, 3)
    assert np.array_equal(dropped, expected)
    risen = grid.copy()
    risen[3, 1], risen[2, 1] = 0, 4  # the T is at rest already; the cell rises until it meets it
    assert np.array_equal(search_steps.drop_objects(grid, "up"), risen)
    assert not np.array_equal(dsl.gravity(grid, "down"), expected)


def test_objects_move_towards_the_anchor_until_they_touch_it():
    grid = np.zeros((7, 9), np.uint8)
    grid[2:5, 4:7] = 8  # the largest object stays
    grid[3, 0:2] = 2  # left of it: moves right
    grid[0, 5] = 3  # above it: moves down
    moved = search_steps.move_to_anchor(grid, "largest")
    expected = np.zeros_like(grid)
    expected[2:5, 4:7] = 8
    expected[3, 2:4] = 2
    expected[1, 5] = 3
    assert np.array_equal(moved, expected)


def test_objects_off_the_anchors_sides_move_along_its_diagonals():
    grid = np.zeros((9, 9), np.uint8)
    grid[3:5, 3:5] = 2  # the anchor
    grid[8, 8] = 5  # on the anchor's diagonal: moves up and left until it touches the corner
    grid[0, 4] = 5  # above it: moves straight down
    moved = search_steps.move_to_anchor(grid, "largest")
    expected = np.zeros_like(grid)
    expected[3:5, 3:5] = 2
    expected[5, 5] = 5
    expected[2, 4] = 5
    assert np.array_equal(moved, expected)
    grid[8, 8], grid[8, 6] = 0, 5  # off every diagonal: it would slide to the edge, not to the anchor
    with pytest.raises(ValueError):
        search_steps.move_to_anchor(grid, "largest")


def test_the_search_finds_objects_dropped_whole():
    rng = np.random.default_rng(5)
    examples = []
    for _ in range(4):
        grid = np.zeros((8, 8), np.uint8)
        t_shape(grid, int(rng.integers(0, 3)), int(rng.integers(0, 5)), int(rng.integers(1, 9)))
        examples.append((grid, search_steps.drop_objects(grid, "down")))
    right, result = solves(examples[:3], examples[3])
    assert right and "drop_objects" in result.programs[0][0]


def framed_squares(rng) -> np.ndarray:
    """A grid with hollow squares away from the edge."""
    grid = np.zeros((9, 9), np.uint8)
    for _ in range(2):
        top, left = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        grid[top:top + 3, left:left + 3] = 5
        grid[top + 1, left + 1] = 0
    return grid


def holes_and_border(grid: np.ndarray) -> np.ndarray:
    """Holes filled yellow and the border painted green: two colours, so no one colour map does both."""
    out = dsl.fill_enclosed(grid, 4)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = 3
    return out


def test_layers_that_each_draw_part_of_the_outputs_are_assembled():
    rng = np.random.default_rng(2)
    examples = [(g, holes_and_border(g)) for g in (framed_squares(rng) for _ in range(4))]
    config = SearchConfig(seconds=30, max_depth=1, cpu_time=True, cell_rule_depth=-1)
    right, result = solves(examples[:3], examples[3], config)
    assert right
    program = result.programs[0][0]
    assert program.startswith("assemble(") and "fill_holes" in program and "paint_border" in program
    # with no room for layers, nothing fits
    bare = search_task(examples[:3], [examples[3][0]], SearchConfig(seconds=30, max_depth=1, cpu_time=True,
                                                                     cell_rule_depth=-1, max_layers=0))
    assert bare.candidates == [[]]


def test_a_layer_that_draws_a_wrong_cell_is_not_kept():
    outputs = [np.array([[1, 0], [0, 2]], np.uint8)]
    layers = program_search.Layers(outputs, limit=10)
    test = [np.zeros((2, 2), np.uint8)]
    layers.offer([np.array([[1, 0], [0, 3]], np.uint8)], test, "wrong(grid)", 1)
    layers.offer([np.array([[1, 0], [0, 0]], np.uint8)], test, "part(grid)", 1)
    assert [text for text, _, _ in layers.made] == ["part(grid)"]
    assert layers.assemble() is None  # the bottom-right cell is covered by no layer


def three_objects(rng) -> tuple[np.ndarray, np.ndarray]:
    """A plus (mirror-symmetric) and two L shapes, one colour; the plus is between the Ls in every number
    but its symmetry (cells, height, box, empty cells of its box) or shares its value (width)."""
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    small_l = np.array([[1, 1, 1], [1, 0, 0]], np.uint8)
    large_l = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], np.uint8)
    colour = int(rng.integers(1, 10))
    grid = np.zeros((12, 12), np.uint8)
    slots = rng.permutation([(0, 0), (0, 6), (6, 0), (6, 6)])[:3]
    for shape, (top, left) in zip((plus, small_l, large_l), slots):
        top, left = top + int(rng.integers(0, 2)), left + int(rng.integers(0, 2))
        grid[top:top + shape.shape[0], left:left + shape.shape[1]] = shape * colour
    return grid, plus * colour


def test_the_object_picked_by_a_number_is_cropped():
    rng = np.random.default_rng(1)
    examples = [three_objects(rng) for _ in range(4)]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "crop_picked(grid, 8, True, 'symmetric', 'max', 'box')"
    # the same task where no learned move is tried: no fixed selection rule picks the plus; only the task with
    # its colours named by rank gives it, as a constant (the plus in the grid's one colour)
    fixed = search_task(examples[:3], [examples[3][0]],
                        SearchConfig(seconds=30, max_depth=1, cpu_time=True, cell_rule_depth=-1))
    right = [p for c, p in zip(fixed.candidates[0][:2], fixed.programs[0]) if np.array_equal(c, examples[3][1])]
    assert right == ["by_colour_rank(constant([[0, 1, 0], [1, 1, 1], [0, 1, 0]]))"]


def test_the_search_draws_rays_from_one_colours_cells_only():
    # red cells send lines along their row and column to the next cell or the edge; blue and green cells
    # block them and send none (rays from every cell, with two colours erased, would take three steps)
    rng = np.random.default_rng(3)
    examples = []
    for _ in range(4):
        grid = np.zeros((10, 10), np.uint8)
        for colour, count in ((2, 2), (1, 4), (3, 4)):
            for _ in range(count):
                grid[rng.integers(0, 10), rng.integers(0, 10)] = colour
        examples.append((grid, search_steps.draw_rays_from(grid, 2, "cross")))
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=20, max_depth=2, cpu_time=True))
    assert right and "draw_rays_from" in result.programs[0][0]
    assert not (examples[3][1] == search_steps.draw_rays(examples[3][0], "cross")).all()


def quarter_turn_shape(rng) -> tuple[np.ndarray, np.ndarray]:
    """A grid with a shape that four quarter turns leave unchanged, away from the grid's centre, one
    quarter of it cut away; and the grid with that quarter drawn back in red."""
    quarter = (rng.random((3, 3)) < 0.6).astype(np.uint8)
    quarter[2, 2] = 1
    shape = np.block([[quarter, np.rot90(quarter, -1)], [np.rot90(quarter, 1), np.rot90(quarter, 2)]])
    full = np.zeros((12, 12), np.uint8)
    top, left = int(rng.integers(0, 7)), int(rng.integers(0, 7))
    full[top:top + 6, left:left + 6] = shape
    grid = full.copy()
    grid[top:top + 3, left:left + 3] = 0
    return grid, np.where((full != 0) & (grid == 0), np.uint8(2), full).astype(np.uint8)


def test_the_search_completes_a_symmetry_whose_centre_is_not_the_grids():
    rng = np.random.default_rng(4)
    examples = [quarter_turn_shape(rng) for _ in range(4)]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=20, max_depth=2, cpu_time=True))
    assert right and "complete_symmetric" in result.programs[0][0]


def test_complete_symmetric_finds_a_mirror_line_off_the_middle():
    grid = np.array([[0, 3, 4, 0, 0, 0],
                     [0, 3, 4, 4, 3, 0]], np.uint8)  # mirror line between columns 2 and 3
    assert search_steps.complete_symmetric(grid, "h", paint=False).tolist() == [[0, 3, 4, 4, 3, 0],
                                                                                  [0, 3, 4, 4, 3, 0]]
    assert (search_steps.complete_symmetric(grid, "h", paint=True) == NEW).sum() == 2
    with pytest.raises(ValueError):  # no mirror that most cells keep
        search_steps.complete_symmetric(np.array([[1, 2, 3, 4]], np.uint8), "h", paint=False)


def test_the_search_draws_an_output_from_the_number_of_objects():
    # n separate grey squares: an n x n grid with a grey diagonal (the test's number is new to the examples)
    rng = np.random.default_rng(6)
    examples = []
    for n in (2, 3, 4, 5):
        grid = np.zeros((12, 12), np.uint8)
        for place in rng.choice(16, size=n, replace=False):
            row, col = divmod(int(place), 4)
            grid[3 * row:3 * row + 2, 3 * col:3 * col + 2] = 8
        examples.append((grid, np.eye(n, dtype=np.uint8) * 8))
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=20, max_depth=2, cpu_time=True))
    assert right and "counted" in result.programs[0][0]


def test_a_count_table_needs_a_number_met_twice():
    def dots(n: int) -> np.ndarray:
        grid = np.zeros((1, 7), np.uint8)
        grid[0, :2 * n:2] = 1
        return grid

    grids = [dots(1), dots(2), dots(3)]
    outputs = [np.array([[c]], np.uint8) for c in (4, 5, 6)]
    # every example its own number: a table would fit any outputs
    assert search_fitters.fit_count(grids, outputs, [dots(3)]) is None
    fitted = search_fitters.fit_count(grids + [dots(1)], outputs + [outputs[0]], [dots(3)])
    assert fitted is not None and "count_table" in fitted[0] and fitted[1][0].tolist() == [[6]]
    assert search_fitters.fit_count(grids + [dots(1)], outputs + [outputs[0]], [dots(4)]) is None  # unseen


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("multicolour", [False, True])
def test_shapes_agree_with_the_dsls_objects(connectivity, multicolour):
    rng = np.random.default_rng(10 * connectivity + multicolour)
    for _ in range(20):
        grid = rng.integers(0, 4, size=(rng.integers(1, 10), rng.integers(1, 10))).astype(np.uint8)
        ours = search_steps.shapes(grid, connectivity, multicolour)
        theirs = dsl.objects(grid, connectivity, multicolour=multicolour)
        assert len(ours) == len(theirs)
        for shape, obj in zip(ours, theirs):  # both in reading order of the first cell
            assert np.array_equal(shape.mask, obj.mask)
            assert (shape.top, shape.left, shape.bottom, shape.right) == obj.box
            assert shape.size == int(obj.mask.sum())
            assert shape.colours == len(np.unique(grid[obj.mask]))


# --------------------------------------------------------------------------------------------------
# Tiles, blocks and negatives


def one_colour_pattern(rng, shape=(3, 3), colour=None) -> np.ndarray:
    grid = np.zeros(shape, np.uint8)
    while grid.all() or not grid.any():
        grid = np.where(rng.random(shape) < 0.5, colour or int(rng.integers(1, 10)), 0).astype(np.uint8)
    return grid


def test_the_negative_of_a_one_colour_grid_swaps_it_with_the_background():
    grid = np.array([[0, 7], [7, 7]], np.uint8)
    assert search_steps.invert(grid).tolist() == [[7, 0], [0, 0]]
    with pytest.raises(ValueError):
        search_steps.invert(np.array([[1, 2]], np.uint8))


def test_the_search_places_the_negative_where_the_grid_is_coloured():
    rng = np.random.default_rng(0)
    grids = [one_colour_pattern(rng) for _ in range(4)]
    examples = [(g, np.kron(g != 0, search_steps.invert(g)).astype(np.uint8)) for g in grids]
    right, result = solves(examples[:3], examples[3])
    assert right and "invert(grid)" in result.programs[0][0] and result.found_depth == 2


def test_tiles_turned_each_their_own_way_are_fitted():
    def arrange(g):  # top row as given, bottom row mirrored left to right, right column empty
        return np.block([[g, g, np.zeros_like(g)], [g[:, ::-1], g[:, ::-1], np.zeros_like(g)]])

    rng = np.random.default_rng(1)
    grids = [rng.integers(0, 5, size=(2, 3)).astype(np.uint8) for _ in range(3)]
    test = rng.integers(0, 5, size=(4, 2)).astype(np.uint8)
    fitted = search_fitters.fit_tile_transforms(grids, [arrange(g) for g in grids], [test])
    assert fitted is not None and fitted[0].count("flip_h") == 2 and fitted[0].count("empty") == 2
    assert np.array_equal(fitted[1][0], arrange(test))
    # one example that breaks the arrangement: no fit
    broken = arrange(grids[0])
    broken[0, 0] = (broken[0, 0] + 1) % 5
    assert search_fitters.fit_tile_transforms(grids, [broken] + [arrange(g) for g in grids[1:]], [test]) is None


def test_each_colour_becomes_the_block_the_examples_show():
    blocks = {0: np.zeros((2, 2), np.uint8), 5: np.array([[1, 2], [2, 1]], np.uint8)}

    def blow_up(g):
        return np.block([[blocks[int(c)] for c in row] for row in g]).astype(np.uint8)

    rng = np.random.default_rng(2)
    grids = [one_colour_pattern(rng, colour=5) for _ in range(3)]
    test = one_colour_pattern(rng, (4, 2), colour=5)
    fitted = search_fitters.fit_colour_blocks(grids, [blow_up(g) for g in grids], [test])
    assert fitted is not None and np.array_equal(fitted[1][0], blow_up(test))
    # a colour the examples never show gets no block
    assert search_fitters.fit_colour_blocks(grids, [blow_up(g) for g in grids], [np.full((2, 2), 3, np.uint8)]) is None
    # the same colour asking for two blocks: no fit
    other = blow_up(grids[1])
    other[0:2, 0:2] = 9 - other[0:2, 0:2] if grids[1][0, 0] else other[0:2, 0:2] + 3
    assert search_fitters.fit_colour_blocks(grids, [blow_up(grids[0]), other, blow_up(grids[2])], [test]) is None


def test_grids_of_different_sizes_are_shrunk_to_the_one_output_size():
    rng = np.random.default_rng(3)
    examples = []
    for k in (2, 3, 2, 3):
        small = rng.integers(1, 10, size=(3, 3)).astype(np.uint8)
        big = np.zeros((3 * k, 3 * k), np.uint8)
        for r in range(3):
            for c in range(3):  # one coloured cell somewhere in each k x k block
                big[r * k + int(rng.integers(0, k)), c * k + int(rng.integers(0, k))] = small[r, c]
        examples.append((big, small))
    right, result = solves(examples[:3], examples[3])
    assert right and "downscale_to(grid, 3, 3)" in result.programs[0][0]


def test_the_grid_is_placed_in_the_cells_of_one_colour_whatever_is_most_common():
    def nest(g):  # the grid in the cells of colour 5, nothing elsewhere
        return np.kron(g == 5, g).astype(np.uint8)

    grids = [np.array([[5, 0, 1], [5, 2, 0], [5, 5, 5]], np.uint8), np.array([[2, 5], [1, 0]], np.uint8),
             np.array([[0, 5, 0, 3], [5, 5, 2, 0], [0, 2, 5, 5], [3, 0, 5, 0]], np.uint8)]
    test = np.array([[1, 2, 5], [2, 2, 2], [5, 2, 1]], np.uint8)  # 2 is the most common colour here
    fitted = search_fitters.fit_colour_blocks(grids, [nest(g) for g in grids], [test])
    assert fitted is not None and "[5]" in fitted[0] and np.array_equal(fitted[1][0], nest(test))


def test_objects_are_recoloured_by_their_number_of_holes():
    one = np.array([[8, 8, 8], [8, 0, 8], [8, 8, 8]], np.uint8)
    two = np.array([[8, 8, 8, 8, 8], [8, 0, 8, 0, 8], [8, 8, 8, 8, 8]], np.uint8)
    three = np.array([[8, 8, 8], [8, 0, 8], [8, 8, 8], [8, 0, 8], [8, 8, 8], [8, 0, 8], [8, 8, 8]], np.uint8)
    wide = np.array([[8, 8, 8, 8], [8, 0, 0, 8], [8, 8, 8, 8]], np.uint8)  # one hole, a size no example shows
    colour_for = {1: 1, 2: 3, 3: 2, "wide": 1}

    def scene(objects):
        grid, out = np.zeros((9, 16), np.uint8), np.zeros((9, 16), np.uint8)
        left = 0
        for holes in objects:
            obj = {1: one, 2: two, 3: three, "wide": wide}[holes]
            h, w = obj.shape
            grid[1:1 + h, left:left + w] = obj
            out[1:1 + h, left:left + w] = np.where(obj == 8, colour_for[holes], 0)
            left += w + 1
        return grid, out

    train = [scene(objs) for objs in ((1, 2), (3, 1), (2, 3, 1))]
    test = scene((2, "wide", 3))
    fitted = fit_pairs(search_fitters.fit_object_colours, train, [test[0]])
    assert fitted is not None and "'hole-count'" in fitted[0] and np.array_equal(fitted[1][0], test[1])


def test_the_plan_of_rectangles_ignores_the_specks_around_them():
    rng = np.random.default_rng(4)
    grid = np.where(rng.random((14, 16)) < 0.15, 5, 0).astype(np.uint8)  # specks
    grid[1:4, 1:5] = 3
    grid[2:5, 9:14] = 4  # the same row band as the first, the next column
    grid[8:12, 2:6] = 6
    grid[9:13, 10:13] = 7
    grid[0, 15] = grid[1, 15] = 5
    assert search_steps.block_layout(grid).tolist() == [[3, 4], [6, 7]]
    with pytest.raises(ValueError):
        search_steps.block_layout(np.zeros((5, 5), np.uint8))


def test_the_part_a_number_picks_is_cut_out():
    # three 3x3 parts stacked: two mirror-symmetric left to right, one not; the output is the odd one
    rng = np.random.default_rng(4)
    pattern = np.array([[0, 1, 0], [2, 2, 2], [1, 3, 1]])  # left-right symmetric only

    def symmetric() -> np.ndarray:
        return rng.permutation(np.arange(1, 10))[pattern].astype(np.uint8)

    def lopsided() -> np.ndarray:
        part = symmetric()
        part[1, 0] = part[0, 0]  # left and right columns differ in the middle row: no symmetry at all
        return part

    def example(where: int):
        parts = [symmetric(), symmetric(), symmetric()]
        parts[where] = lopsided()
        return np.vstack(parts), parts[where]

    examples = [example(w) for w in (0, 2, 1, 0)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_part_pick, train, [test[0]])
    assert fitted is not None and fitted[0] == "pick_part(parts_equal({}, 3, 1), 'symmetric', 'min')"
    assert np.array_equal(fitted[1][0], test[1])
    right, result = solves(train, test, SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "pick_part(parts_equal(grid, 3, 1), 'symmetric', 'min')"
    # a test grid where no part is lopsided: no part is picked
    tie = np.vstack([symmetric(), symmetric(), symmetric()])
    assert fit_pairs(search_fitters.fit_part_pick, train, [tie]) is None
    # an output that is no part of its grid: no rule
    outputs = [o for _, o in train]
    outputs[1] = outputs[1].copy()
    outputs[1][0, 0] = 0  # every part is coloured all over
    assert search_fitters.fit_part_pick([g for g, _ in train], outputs, [test[0]]) is None


def test_objects_of_one_colour_and_shape_paint_the_stamp_the_examples_show():
    # each grey 2x2 square gets four coloured corners; a lone grey cell gets nothing and turns red
    def draw(squares, cells, shape=(10, 10)):
        grid = np.zeros(shape, np.uint8)
        out = grid.copy()
        for r, c in squares:
            grid[r:r + 2, c:c + 2] = out[r:r + 2, c:c + 2] = 5
            out[r - 1, c - 1], out[r - 1, c + 2], out[r + 2, c - 1], out[r + 2, c + 2] = 1, 2, 3, 4
        for r, c in cells:
            grid[r, c], out[r, c] = 5, 2
        return grid, out

    examples = [draw([(1, 1), (5, 5)], [(8, 1)]), draw([(2, 6)], [(7, 2), (1, 1)]), draw([(6, 1), (2, 4)], [])]
    test_grid, test_out = draw([(1, 6), (5, 2)], [(8, 8)])
    train = [g for g, _ in examples]
    fitted = search_fitters.fit_object_stamps(train, [o for _, o in examples], [test_grid])
    assert fitted is not None and fitted[0] == "stamp_objects({}, 1, <2 stamps>)"
    assert np.array_equal(fitted[1][0], test_out)
    right, result = solves(examples, (test_grid, test_out), SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "stamp_objects(grid, 1, <2 stamps>)"
    # a shape no example shows, and two stamps painting one cell two colours: no answer
    unseen = test_grid.copy()
    unseen[8, 0:3] = 5
    assert search_fitters.fit_object_stamps(train, [o for _, o in examples], [unseen]) is None
    clash, _ = draw([(1, 1), (1, 4)], [])  # corner 2 of the first is corner 1 of the second
    assert search_fitters.fit_object_stamps(train, [o for _, o in examples], [clash]) is None


def test_a_pattern_is_continued_to_the_output_size_not_tiled():
    band = np.array([[2, 3, 3, 2, 3, 3, 2]], np.uint8)  # period 3 in a grid of width 7
    assert search_steps.extend_periodic(band, 1, 14).tolist() == [[2, 3, 3] * 4 + [2, 3]]
    assert search_steps.extend_periodic(band, 1, 2, scaled=True).shape == (1, 14)
    with pytest.raises(ValueError, match="no whole size"):
        search_steps.extend_periodic(band, 1, Fraction(3, 2), scaled=True)  # 10.5 columns

    def grow(g):  # rows continued to one and a half times the height, then blue made red
        out = search_steps.extend_periodic(g, Fraction(3, 2), 1, scaled=True)
        return np.where(out == 1, 2, out).astype(np.uint8)

    rng = np.random.default_rng(2)
    grids = []
    for period in (2, 3, 2, 4):
        unit = rng.integers(0, 2, size=(period, 3)).astype(np.uint8)
        unit[0, 0] = 1
        grids.append(np.vstack([unit] * 3)[: 2 * period + 2])  # not a whole number of periods
    examples = [(g, grow(g)) for g in grids]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "recolour(extend_periodic(grid, 3/2, 1, scaled=True), {1: 2})"


def test_the_colours_are_listed_in_a_strip_by_their_cells():
    # scattered cells of three or four colours, each colour a different number of cells; the output lists
    # them, most cells first, in a column
    rng = np.random.default_rng(7)

    def example(n_colours: int):
        grid = np.zeros((8, 8), np.uint8)
        colours = rng.permutation(np.arange(1, 10))[:n_colours]
        spots = rng.permutation(64)
        at = 0
        for colour, n in zip(colours, rng.permutation(np.arange(1, 9))[:n_colours]):
            grid.flat[spots[at:at + n]] = colour
            at += n
        listed = sorted(colours.tolist(), key=lambda c: -int((grid == c).sum()))
        return grid, np.array(listed, np.uint8)[:, None]

    examples = [example(n) for n in (3, 4, 3, 4)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_colour_strip, train, [test[0]])
    assert fitted is not None and fitted[0] == "colour_strip({}, 'most-cells', skip=0, layout='column')"
    assert np.array_equal(fitted[1][0], test[1])
    right, result = solves(train, test, SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "colour_strip(grid, 'most-cells', skip=0, layout='column')"
    # a test grid where two colours have as many cells: no order, no strip
    tie = np.zeros((8, 8), np.uint8)
    tie[0, :3], tie[2, :3], tie[4, :5] = 1, 2, 3
    assert fit_pairs(search_fitters.fit_colour_strip, train, [tie]) is None


def test_bands_of_colour_are_listed_across_or_down_as_they_lie():
    # ragged bands of colour, side by side in one example and stacked in the next: the strip follows them
    def bands(colours, across: bool):
        grid = np.concatenate([np.full((6, 3), c, np.uint8) for c in colours], axis=1)
        grid[2, 3], grid[4, 2] = grid[2, 2], grid[4, 3]  # an edge that is not straight
        strip = np.array([colours], np.uint8)
        return (grid, strip) if across else (grid.T.copy(), strip.T.copy())

    examples = [bands([2, 5, 1], True), bands([4, 3, 8, 6], False), bands([7, 1], True), bands([9, 2, 3], False)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_colour_strip, train, [test[0]])
    assert fitted is not None and fitted[0] == "colour_strip({}, 'along', skip=0, layout='along')"
    assert np.array_equal(fitted[1][0], test[1]) and fitted[1][0].shape == (3, 1)
    # outputs wider than one cell: not a strip
    wide = [np.tile(o, (1, 2)) if o.shape[1] == 1 else np.tile(o, (2, 1)) for _, o in train]
    assert search_fitters.fit_colour_strip([g for g, _ in train], wide, [test[0]]) is None


def test_the_colour_of_the_object_a_number_picks_is_the_one_cell_output():
    # one-colour squares of 2 and 3 cells a side; the one with a hole gives its colour as the output (it is
    # neither the largest nor the smallest)
    def example(colours, holed: int):
        grid = np.zeros((12, 12), np.uint8)
        for i, colour in enumerate(colours):
            r, c = 4 * (i // 3), 4 * (i % 3)
            side = 3 if i == holed or i % 2 else 2
            grid[r:r + side, c:c + side] = colour
            if i == holed:
                grid[r + 1, c + 1] = 0
        return grid, np.array([[colours[holed]]], np.uint8)

    examples = [example([1, 2, 3], 1), example([4, 6, 5, 7], 3), example([8, 2], 0), example([3, 9, 4, 6], 2)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_object_crop, train, [test[0]])
    assert fitted is not None and fitted[0] == "crop_picked({}, 8, True, 'holes', 'max', 'colour')"
    assert np.array_equal(fitted[1][0], test[1])
    # every output the same colour: no rule is learned from a colour that never varies
    same = [np.array([[5]], np.uint8)] * 3
    assert search_fitters.fit_object_crop([g for g, _ in train], same, [test[0]]) is None


def test_the_blocks_between_separator_lines_become_one_cell_each():
    # blocks of unequal sizes between lines of colour 5, each block mostly one colour with background specks
    grid = np.zeros((9, 11), np.uint8)
    grid[3, :] = grid[:, 4] = 5
    grid[:3, :4], grid[:3, 5:], grid[4:, :4], grid[4:, 5:] = 1, 2, 3, 4
    grid[0, 0] = grid[6, 7] = 0
    plan = search_steps.parts_plan(grid)
    assert np.array_equal(plan, [[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        search_steps.parts_plan(np.arange(9, dtype=np.uint8).reshape(3, 3))  # no separator line
    # the search finds it as a last move, with a colour map after it
    rng = np.random.default_rng(3)

    def example():
        g = grid.copy()
        for (r0, r1), (c0, c1) in [((0, 3), (0, 4)), ((0, 3), (5, 11)), ((4, 9), (0, 4)), ((4, 9), (5, 11))]:
            g[r0:r1, c0:c1] = rng.integers(1, 5)
        g[(rng.random(g.shape) < 0.3) & (g != 5)] = 0  # blocks full of holes: no solid rectangles
        return g, search_steps.parts_plan(g)

    examples = [example() for _ in range(4)]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "parts_plan(grid)"


def test_lone_cells_shoot_lines_to_the_larger_object_they_face():
    grid = np.full((9, 10), 8, np.uint8)  # background 8, the most common colour
    grid[2:5, 2:5] = 3
    grid[3, 8] = 4  # faces the block along its row
    grid[7, 3] = 6  # faces it along its column
    grid[7, 8] = 1  # faces nothing
    grid[0, 9] = 2  # nothing in its row or column but background
    out = search_steps.shoot_to_objects(grid)
    expected = grid.copy()
    expected[3, 5:8] = 4
    expected[5:7, 3] = 6
    assert np.array_equal(out, expected)
    # two lone cells facing each other draw nothing: lines go to larger objects only
    pair = grid.copy()
    pair[2:5, 2:5] = 8
    pair[3, 1] = 5  # faces the lone cell at (3, 8)
    with pytest.raises(ValueError):  # no larger object: the step does not apply
        search_steps.shoot_to_objects(pair)
    pair[5:7, 5:7] = 7  # a larger object away from every line of sight
    made = search_steps.shoot_to_objects(pair)
    assert np.array_equal(made, pair)


def test_lone_cells_mark_the_cell_of_the_block_they_face():
    grid = np.zeros((9, 9), np.uint8)
    grid[3:6, 3:6] = 8
    grid[4, 0], grid[5, 0] = 3, 4  # side by side but of different colours: each is a lone cell
    grid[0, 3] = 6
    grid[8, 8] = 1  # faces nothing
    out = search_steps.shoot_to_objects(grid, hit=True)
    expected = grid.copy()
    expected[4, 3], expected[5, 3], expected[3, 3] = 3, 4, 6
    assert np.array_equal(out, expected)


def test_cells_move_up_to_the_anchor_they_face():
    grid = np.zeros((9, 9), np.uint8)
    grid[4, 4] = 2  # the one cell of its colour: an anchor
    grid[0, 4] = grid[4, 8] = grid[8, 4] = 3  # face it from above, the right and below
    grid[1, 1] = 3  # faces nothing: stays
    grid[4, 0] = grid[7, 7] = 5  # faces it from the left; a second 5 faces nothing
    pulled = search_steps.pull_to(grid, "single")
    expected = np.zeros_like(grid)
    expected[4, 4] = 2
    expected[3, 4] = expected[4, 5] = expected[5, 4] = expected[1, 1] = 3
    expected[4, 3] = expected[7, 7] = 5
    assert np.array_equal(pulled, expected)
    assert np.array_equal(search_steps.pull_to(grid, 2), expected)  # the anchor named by its colour
    with pytest.raises(ValueError):
        search_steps.pull_to(grid, 7)  # no anchor of that colour


def test_the_rarest_colour_is_kept_and_its_surroundings_painted():
    rng = np.random.default_rng(8)

    def example() -> tuple[np.ndarray, np.ndarray]:
        grid = np.zeros((10, 10), np.uint8)
        colours = rng.choice(np.arange(1, 10), size=4, replace=False)
        cells = rng.permutation(100)
        grid.flat[cells[:18]] = np.repeat(colours[:3], 6)  # three colours of six cells each
        r, c = rng.integers(1, 9, size=2)
        grid[r - 1:r + 2, c - 1:c + 2] = 0
        grid[r, c] = colours[3]  # one cell of a fourth colour, nothing around it
        out = np.zeros_like(grid)
        out[r - 1:r + 2, c - 1:c + 2] = 2
        out[r, c] = colours[3]
        return grid, out

    examples = [example() for _ in range(4)]
    right, result = solves(examples[:3], examples[3])
    assert right and "keep_colour_rule(grid, 'least')" in result.programs[0][0]
    with pytest.raises(ValueError):  # two colours tie for the rarest: no answer
        search_steps.keep_colour_rule(np.array([[1, 2, 0]], np.uint8), "least")


def test_the_largest_empty_rectangle_is_the_one_an_exhaustive_count_finds():
    rng = np.random.default_rng(9)

    def largest(grid: np.ndarray) -> list[tuple[int, int, int, int]]:
        h, w = grid.shape
        best, found = 0, []
        for top, bottom in itertools.combinations(range(h + 1), 2):
            for left, right in itertools.combinations(range(w + 1), 2):
                area = (bottom - top) * (right - left)
                if bottom - top >= 2 and right - left >= 2 and area >= best and not grid[top:bottom, left:right].any():
                    found = (found if area == best else []) + [(top, left, bottom, right)]
                    best = area
        return found

    answered = 0
    for _ in range(200):
        grid = (rng.random(tuple(rng.integers(2, 10, size=2))) < rng.uniform(0.05, 0.5)).astype(np.uint8)
        expected = largest(grid)
        if len(expected) != 1:  # none, or a tie: no answer
            with pytest.raises(ValueError):
                search_steps.fill_largest_empty(grid)
            continue
        top, left, bottom, right = expected[0]
        painted = grid.copy()
        painted[top:bottom, left:right] = search_steps.NEW
        assert np.array_equal(search_steps.fill_largest_empty(grid), painted)
        answered += 1
    assert answered > 50


def test_masks_of_rows_and_columns():
    grid = np.zeros((4, 5), np.uint8)
    grid[1, 1] = 3
    new = search_steps.NEW
    rows = search_steps.paint_mask(grid, "rows")
    assert (rows[1] == [new, 3, new, new, new]).all() and not (rows[[0, 2, 3]] == new).any()
    columns = search_steps.paint_mask(grid, "columns")
    assert (columns[:, 1] == [new, 3, new, new]).all() and (columns == new).sum() == 3


def test_a_rule_about_colour_ranks_is_found_on_the_task_with_its_colours_named_by_rank():
    """Each example keeps only the cells of its most common colour other than the background, painted its
    second most common colour, in colours that change from example to example: no colour map fits the
    task's own colours, one fits the ranked task."""
    rng = np.random.default_rng(3)

    def example(colours):
        grid = np.zeros((6, 6), np.uint8)
        cells = rng.permutation(36)
        grid.flat[cells[:12]] = colours[0]  # the most common colour after the background
        grid.flat[cells[12:17]] = colours[1]
        grid.flat[cells[17:19]] = colours[2]
        return grid, np.where(grid == colours[0], colours[1], 0).astype(np.uint8)

    train = [example(c) for c in ((3, 5, 1), (7, 2, 4), (1, 8, 6))]
    test_input, test_output = example((4, 9, 2))
    result = search_task(train, [test_input], SearchConfig(seconds=20, max_depth=2))
    assert result.programs[0] and result.programs[0][0].startswith("by_colour_rank(")
    assert np.array_equal(result.candidates[0][0], test_output)


def test_colour_ranks_rename_by_frequency_and_come_back():
    grid = np.array([[3, 3, 3], [5, 5, 1]], np.uint8)
    forward, inverse = colour_ranks(grid)
    assert forward[grid].tolist() == [[0, 0, 0], [1, 1, 2]] and np.array_equal(inverse[forward[grid]], grid)
    assert forward[NEW] == NEW  # "a new colour" stays what it is
    zeros = np.array([[0, 0, 0], [5, 5, 1]], np.uint8)
    same = [(zeros, zeros), (zeros[::-1], zeros[::-1])]  # ranked alike, 0 first: the ranked task adds nothing
    assert ranked_task(same, [zeros]) is None
    assert ranked_task(same, [np.array([[0, 5, 5]], np.uint8)]) is not None
    alike = [(grid, grid), (grid[::-1], grid[::-1])]  # ranked alike, but 3 first: it becomes the background 0
    pairs, tests, back = ranked_task(alike, [grid])
    assert pairs[0][0].tolist() == [[0, 0, 0], [1, 1, 2]] and np.array_equal(back[0][tests[0]], grid)
    tie = np.array([[2, 1], [1, 2]], np.uint8)  # as many cells of each: the colour met first ranks first
    assert colour_ranks(tie)[0][tie].tolist() == [[0, 1], [1, 0]]
    order = np.array([[5, 3, 3], [3, 3, 7]], np.uint8)  # by first appearance: 5, then 3, then 7
    assert colour_ranks(order, "first")[0][order].tolist() == [[0, 1, 1], [1, 1, 2]]
    assert colour_ranks(order)[0][order].tolist() == [[1, 0, 0], [0, 0, 2]]
    with pytest.raises(ValueError, match="unknown colour naming"):
        colour_ranks(order, "size")


def test_objects_of_a_size_no_example_shows_are_recoloured_by_a_threshold_or_one_size():
    def scene(sizes, rule):
        grid = np.zeros((len(sizes) * 2, 12), np.uint8)
        for row, size in enumerate(sizes):
            grid[2 * row, :size] = 5  # a bar of `size` cells on every other row
        out = grid.copy()
        for row, size in enumerate(sizes):
            out[2 * row, :size] = rule(size)
        return grid, out

    big = lambda size: 2 if size >= 4 else 1  # noqa: E731
    train = [scene(s, big) for s in ((1, 4, 6), (2, 7), (3, 5, 1))]
    test = scene((8, 2, 9), big)  # sizes 8 and 9: no example shows them
    fitted = fit_pairs(search_fitters.fit_object_colours, train, [test[0]])
    assert fitted is not None and "'size >= 4: 2, else 1'" in fitted[0]
    assert np.array_equal(fitted[1][0], test[1])

    six = lambda size: 2 if size == 6 else 1  # noqa: E731 - one size against all others, on both sides
    train = [scene(s, six) for s in ((1, 6, 7), (6, 2), (3, 6, 8))]  # 6 the largest or not
    test = scene((6, 5, 10), six)
    fitted = fit_pairs(search_fitters.fit_object_colours, train, [test[0]])
    assert fitted is not None and "'size == 6: 2, else 1'" in fitted[0]
    assert np.array_equal(fitted[1][0], test[1])

    three = lambda size: {1: 1, 2: 2, 3: 3}[size]  # noqa: E731 - three colours: the table alone, no guess
    train = [scene(s, three) for s in ((1, 2), (2, 3), (3, 1))]
    assert fit_pairs(search_fitters.fit_object_colours, train, [scene((4,), lambda _: 1)[0]]) is None


def test_regions_of_background_are_filled_by_their_size():
    """The largest region of background the walls leave takes one colour, the smallest another, the rest
    stay empty; the walls differ from example to example."""
    def example(rows, cols):
        grid = np.zeros((9, 9), np.uint8)
        grid[rows, :] = 2
        grid[:, cols] = 2
        regions = label((grid == 0).astype(np.uint8), 4, False)
        ids, sizes = np.unique(regions[regions >= 0], return_counts=True)
        out = grid.copy()
        out[regions == ids[np.argmax(sizes)]] = 1
        out[regions == ids[np.argmin(sizes)]] = 8
        return grid, out

    train = [example(*walls) for walls in (([2], [5]), ([6], [1, 4]), ([1, 4], [7]))]
    test = example([3], [2, 4])
    fitted = fit_pairs(search_fitters.fit_region_colours, train, [test[0]])
    assert fitted is not None and fitted[0].startswith("fill_regions({}, 4, 'size-rank'")
    assert np.array_equal(fitted[1][0], test[1])
    right, result = solves(train, test)
    assert right and result.programs[0][0].startswith("fill_regions(grid")
    unchanged = [(g, g) for g, _ in train]  # nothing filled: no region rule, whatever the features say
    assert fit_pairs(search_fitters.fit_region_colours, unchanged, [test[0]]) is None


def test_specks_touching_a_block_are_removed_with_the_lone_ones():
    grid = np.zeros((7, 8), np.uint8)
    grid[1:4, 1:4] = 7  # a block
    grid[0, 4] = 7  # a speck touching the block at a corner
    grid[4, 2] = 7  # one touching its side
    grid[5, 6] = 7  # a lone one
    grid[3:5, 6:8] = 7  # a 2x2 block, the smallest that stays
    solid = search_steps.keep_solid(grid)
    expected = np.zeros_like(grid)
    expected[1:4, 1:4] = 7
    expected[3:5, 6:8] = 7
    assert np.array_equal(solid, expected)
    assert search_steps.keep_solid(np.array([[3, 3, 3]], np.uint8)).tolist() == [[0, 0, 0]]


def test_the_halo_of_one_colour_is_painted_on_the_background_only():
    grid = np.zeros((6, 6), np.uint8)
    grid[1, 1], grid[4, 4], grid[0, 5] = 2, 3, 2
    halo = search_steps.paint_halo_of(grid, 2, 8)
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(halo == NEW))} == {
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2), (0, 4), (1, 4), (1, 5)}
    assert halo[4, 4] == 3 and halo[1, 1] == 2  # other colours and the colour itself untouched


def test_bars_are_recoloured_by_their_place_in_the_order_of_sizes():
    def scene(heights):
        grid = np.zeros((12, 2 * len(heights)), np.uint8)
        for i, h in enumerate(heights):
            grid[12 - h:, 2 * i] = 5
        order = sorted(heights, reverse=True)
        out = grid.copy()
        for i, h in enumerate(heights):
            out[12 - h:, 2 * i] = order.index(h) + 1  # the tallest 1, the next 2, ...
        return grid, out

    train = [scene(h) for h in ((3, 8, 5, 1), (6, 2, 7, 4), (9, 1, 3, 5))]
    test = scene((2, 11, 4, 10))  # heights 10 and 11: no example shows them
    fitted = fit_pairs(search_fitters.fit_object_colours, train, [test[0]])
    assert fitted is not None and "'size-order'" in fitted[0] and np.array_equal(fitted[1][0], test[1])


def test_parts_are_laid_over_each_other_in_the_colour_order_the_examples_teach():
    # four 4x4 quadrants, one colour each (2, 3, 5, 7); where they overlap, 3 covers 5, 5 covers 2, 2 covers 7
    rng = np.random.default_rng(6)
    colours = (2, 3, 5, 7)
    order = [3, 5, 2, 7]

    def example():
        quads = [np.where(rng.random((4, 4)) < 0.45, c, 0).astype(np.uint8) for c in colours]
        grid = np.block([[quads[0], quads[1]], [quads[2], quads[3]]]).astype(np.uint8)
        out = np.zeros((4, 4), np.uint8)
        for c in reversed(order):
            out[np.any([q == c for q in quads], axis=0)] = c
        return grid, out

    examples = [example() for _ in range(4)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_part_overlay, train, [test[0]])
    assert fitted is not None and fitted[0] == "overlay_by_priority(parts_equal({}, 2, 2), [3, 5, 2, 7])"
    assert np.array_equal(fitted[1][0], test[1])
    right, result = solves(train, test, SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and "overlay_by_priority" in result.programs[0][0]
    # an output with a colour that no part has in that cell: no order explains it
    outputs = [o.copy() for _, o in train]
    empty = np.argwhere(~np.any([p != 0 for p in search_steps.parts_equal(train[0][0], 2, 2)], axis=0))
    outputs[0][tuple(empty[0])] = 3
    assert search_fitters.fit_part_overlay([g for g, _ in train], outputs, [test[0]]) is None


def test_an_overlay_order_with_a_cycle_or_untaught_pairs_gives_no_answer():
    a, b = np.array([[1, 0]], np.uint8), np.array([[2, 2]], np.uint8)
    # 1 over 2 in one example, 2 over 1 in the other: a cycle
    wins = search_fitters._wins([([a, b], np.array([[1, 2]], np.uint8)), ([a, b], np.array([[2, 2]], np.uint8))])
    assert search_fitters.colour_priority(wins) is None
    # 1 over 2 taught; a test where 1 meets 3, which the examples never ranked against 1, is no answer
    wins = search_fitters._wins([([a, b], np.array([[1, 2]], np.uint8))])
    order = search_fitters.colour_priority(wins)
    assert order == [1, 2]
    assert search_fitters._taught(wins, order, [a, b])
    assert not search_fitters._taught(wins, order, [a, np.array([[3, 0]], np.uint8)])
    assert np.array_equal(search_fitters.overlay_by_priority([a, b], order), [[1, 2]])


def test_the_box_with_the_most_cells_of_one_colour_is_cropped():
    # 3x3 boxes of 8 with some red (2) and blue (1) cells in them; the output is the box with the most red
    rng = np.random.default_rng(9)

    def example():
        grid = np.zeros((12, 12), np.uint8)
        reds = rng.permutation([1, 2, 3])
        boxes = []
        for (r, c), n in zip([(0, 0), (0, 7), (7, 3)], reds):
            box = np.full((3, 3), 8, np.uint8)
            cells = rng.permutation(9)
            box.flat[cells[:n]] = 2
            box.flat[cells[n:n + {1: 1, 2: 3, 3: 2}[n]]] = 1  # the reddest box has neither most nor fewest blues
            grid[r:r + 3, c:c + 3] = box
            boxes.append((n, box))
        return grid, max(boxes, key=lambda x: x[0])[1]

    examples = [example() for _ in range(4)]
    train, test = examples[:3], examples[3]
    fitted = fit_pairs(search_fitters.fit_object_crop, train, [test[0]])
    assert fitted is not None and "'cells-2', 'max'" in fitted[0]
    assert np.array_equal(fitted[1][0], test[1])


def test_cells_of_one_colour_on_a_diagonal_are_joined():
    grid = np.zeros((5, 5), np.uint8)
    grid[0, 0] = grid[3, 3] = 2  # one down-right diagonal
    grid[0, 4] = grid[2, 2] = 3  # one down-left diagonal, crossing it at (2, 2)
    grid[4, 0] = 4  # alone on its diagonals: nothing to join
    right = search_steps.connect_same_diagonal(grid, anti=False)
    assert [int(right[i, i]) for i in range(5)] == [2, 2, 3, 2, 0]  # a coloured cell on the way stays
    left = search_steps.connect_same_diagonal(grid, anti=True)
    assert [int(left[i, 4 - i]) for i in range(5)] == [3, 3, 3, 0, 4]
    assert np.count_nonzero(left) == np.count_nonzero(grid) + 1
    # the search composes both directions when the outputs join both kinds of diagonal
    def join(g):
        return search_steps.connect_same_diagonal(search_steps.connect_same_diagonal(g, False), True)

    rng = np.random.default_rng(3)

    def example():
        g = np.zeros((8, 8), np.uint8)
        for colour in rng.permutation(np.arange(1, 10))[:3]:
            r, c, n = int(rng.integers(0, 4)), int(rng.integers(0, 4)), int(rng.integers(2, 5))
            if rng.random() < 0.5:
                g[r, c] = g[r + n, c + n] = colour
            else:
                g[r, 7 - c] = g[r + n, 7 - c - n] = colour
        return g, join(g)

    examples = [example() for _ in range(4)]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=30, max_depth=2, cpu_time=True))
    assert right and "connect_same_diagonal" in result.programs[0][0]


def test_a_pattern_of_diagonal_stripes_is_completed_on_its_slanted_lattice():
    # colour by (row + column) mod 3: no upright tile of 3 x 3 is seen whole in a narrow band of it, a
    # slanted one of 3 cells is
    stripes = np.array([[(2, 8, 3)[(r + c) % 3] for c in range(7)] for r in range(7)], dtype=np.uint8)
    band = np.where(np.add.outer(np.arange(7), np.arange(7)) < 3, stripes, 0).astype(np.uint8)
    assert np.array_equal(search_steps.complete_lattice(band, 0), stripes)
    assert (dsl.complete_period(band, 0) == 0).any()  # the upright lattices do not fill it
    # cells that disagree on every small lattice: nothing filled
    noise = np.random.default_rng(0).integers(1, 10, (6, 6)).astype(np.uint8)
    noise[2:4, 2:4] = 0
    assert np.array_equal(search_steps.complete_lattice(noise, 0), noise)

    def example(seed: int):
        rng = np.random.default_rng(seed)
        colours = rng.permutation(np.arange(1, 10))[:3]
        full = np.array([[colours[(r + c) % 3] for c in range(7)] for r in range(7)], dtype=np.uint8)
        diagonal = np.add.outer(np.arange(7), np.arange(7))
        keep = diagonal < 3 if rng.random() < 0.5 else diagonal > 9  # a band in one corner
        return np.where(keep, full, 0).astype(np.uint8), full

    examples = [example(s) for s in range(4)]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=30, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "complete_with(grid, 0, 'lattice')"


def test_a_shallower_program_of_a_renamed_task_comes_before_a_deeper_one_of_the_own_colours(monkeypatch):
    # three passes: the task's own colours, then two renamings; each pass's result is made up here, and the
    # depth each pass may search is recorded
    identity = np.arange(10, dtype=np.uint8)
    monkeypatch.setattr(program_search, "ranked_task", lambda train, tests, by: (list(train), list(tests), [identity]))
    answers = {0: (3, 1), 1: (2, 2), 2: (None, None)}  # pass -> (depth of its program, its answer's colour)
    depths = []

    def fake(pairs, tests, config, task_id):
        index = len(depths)
        depths.append(config.max_depth)
        result = program_search.SearchResult(task_id, [[]], [[]])
        depth, colour = answers[index]
        if depth is not None:
            result.found_depth = depth
            result.candidates = [[np.full((2, 2), colour, np.uint8)]]
            result.programs = [[f"program of depth {depth}"]]
        return result

    monkeypatch.setattr(program_search, "_search_task", fake)
    grid = np.zeros((2, 2), np.uint8)
    result = search_task([(grid, grid)], [grid], SearchConfig(seconds=1, max_depth=3))
    # after the depth-3 program the renamed tasks are searched to depth 2 only; the depth-2 program keeps it there
    assert depths == [3, 2, 1]
    assert result.found_depth == 2
    assert result.programs[0] == ["by_colour_rank(program of depth 2)", "program of depth 3"]
    assert [int(c[0, 0]) for c in result.candidates[0]] == [2, 1]
    # a program of depth 1 ends the search as before: nothing shallower to look for
    depths.clear()
    answers[0] = (1, 1)
    result = search_task([(grid, grid)], [grid], SearchConfig(seconds=1, max_depth=3))
    assert depths == [3] and result.programs[0] == ["program of depth 1"]


def test_the_output_the_examples_show_for_the_inputs_colour_is_looked_up():
    # a shape per colour of scattered cells (and the same number of cells throughout, so no count decides it)
    rng = np.random.default_rng(3)
    shapes_of = {2: np.array([[5, 5, 5], [0, 5, 0], [0, 5, 0]], np.uint8),
                 3: np.array([[0, 0, 5], [0, 0, 5], [5, 5, 5]], np.uint8)}

    def scattered(colour: int) -> np.ndarray:
        grid = np.zeros(25, np.uint8)
        grid[rng.choice(25, size=9, replace=False)] = colour
        return grid.reshape(5, 5)

    examples = [(scattered(c), shapes_of[c]) for c in (2, 3, 2, 3, 3)]
    right, result = solves(examples[:4], examples[4], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "count_table(grid, 'main-colour', <2 outputs>)"
    # a colour no example shows has no entry in the colour's table (a count may still fit by chance)
    fitted = fit_pairs(search_fitters.fit_count, examples[:4], [scattered(4)])
    assert fitted is None or "main-colour" not in fitted[0]


def test_a_same_size_output_drawn_from_the_number_of_cells_is_looked_up():
    # n cells anywhere in a 3 x 3 grid give a fixed pattern per n, whatever their places
    patterns = {1: [[2, 0, 0], [0, 0, 0], [0, 0, 0]], 2: [[2, 2, 0], [0, 0, 0], [0, 0, 0]],
                3: [[2, 2, 2], [0, 0, 0], [0, 0, 0]], 4: [[2, 2, 2], [0, 2, 0], [0, 0, 0]]}
    rng = np.random.default_rng(1)

    def cells(n: int) -> np.ndarray:
        grid = np.zeros(9, np.uint8)
        grid[rng.choice(9, size=n, replace=False)] = 1
        return grid.reshape(3, 3)

    examples = [(cells(n), np.array(patterns[n], np.uint8)) for n in (1, 2, 3, 4, 2, 4, 3)]
    right, result = solves(examples[:6], examples[6], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert right and "count_table(grid, 'cells'" in result.programs[0][0]


def test_blocks_of_one_colour_are_counted_without_the_lone_cells():
    # the 2 x 2 blocks of blue, not its single cells nor the red blocks, fill a 1 x 5 row from the left
    def grid_with(blocks: int, specks: int) -> np.ndarray:
        grid = np.zeros((9, 9), np.uint8)
        for i in range(blocks):
            grid[(i // 2) * 3:(i // 2) * 3 + 2, (i % 2) * 3:(i % 2) * 3 + 2] = 1
        grid[7:9, 6:8] = 2
        for i in range(specks):
            grid[8, i * 2] = 1
        return grid

    def row(n: int) -> np.ndarray:
        out = np.zeros((1, 5), np.uint8)
        out[0, :n] = 1
        return out

    examples = [(grid_with(b, s), row(b)) for b, s in ((2, 3), (4, 1), (1, 2), (3, 0))]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "counted(grid, 'blocks-of-1', layout='reading', colour='constant')"


def test_each_row_is_decided_by_the_same_row_of_the_input_through_a_table():
    # a row of one colour becomes grey, any other row becomes background
    def task(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        grid = np.array(rows, np.uint8)
        out = np.array([[5] * 3 if len(set(r)) == 1 else [0] * 3 for r in rows], np.uint8)
        return grid, out

    examples = [task([[4, 4, 4], [2, 3, 2], [2, 3, 3]]), task([[7, 3, 3], [6, 6, 6], [3, 7, 7]]),
                task([[2, 9, 2], [4, 4, 4], [9, 9, 9]]), task([[4, 4, 4], [3, 2, 3], [8, 8, 8]])]
    right, result = solves(examples[:3], examples[3], SearchConfig(seconds=20, max_depth=1, cpu_time=True))
    assert right and result.programs[0][0] == "line_table(grid, rows, 'uniform', <2 lines>)"
    # keyed by the rows themselves, a row no example shows has no entry
    fitted = fit_pairs(search_fitters.fit_line_table, examples[:3], [examples[3][0]])
    assert fitted is not None and "'uniform'" in fitted[0]


def test_a_line_table_needs_a_line_met_twice_and_a_change():
    grids = [np.array([[1, 0], [0, 1]], np.uint8), np.array([[2, 0], [0, 2]], np.uint8)]
    # every row met once: any outputs would fit
    outputs = [np.array([[3, 3], [4, 4]], np.uint8), np.array([[5, 5], [6, 6]], np.uint8)]
    assert search_fitters.fit_line_table(grids, outputs, [grids[0]]) is None
    # outputs equal to the inputs: nothing to learn
    assert search_fitters.fit_line_table(grids, grids, [grids[0]]) is None
    # rows that repeat: the table answers a test made of rows it has seen, and nothing else
    grids = [np.array([[0, 0, 5], [0, 5, 0]], np.uint8), np.array([[0, 0, 5], [0, 0, 5]], np.uint8)]
    outputs = [np.array([[3, 3, 3], [4, 4, 4]], np.uint8), np.array([[3, 3, 3], [3, 3, 3]], np.uint8)]
    fitted = search_fitters.fit_line_table(grids, outputs, [np.array([[0, 5, 0], [0, 0, 5]], np.uint8)])
    assert fitted is not None and fitted[1][0].tolist() == [[4, 4, 4], [3, 3, 3]]
    assert search_fitters.fit_line_table(grids, outputs, [np.array([[5, 0, 0]], np.uint8)]) is None


def test_the_holes_that_are_solid_squares_are_filled_even_where_an_example_has_none():
    def boxed(holes: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Grey frames around holes of the given heights and widths, side by side; the square holes turn red."""
        grid = np.zeros((8, 16), np.uint8)
        out = grid.copy()
        left = 0
        for h, w in holes:
            grid[0:h + 2, left:left + w + 2] = 5
            grid[1:h + 1, left + 1:left + w + 1] = 0
            out[0:h + 2, left:left + w + 2] = 5
            out[1:h + 1, left + 1:left + w + 1] = 2 if h == w else 0
            left += w + 3
        return grid, out

    train = [boxed([(2, 2), (2, 3)]), boxed([(1, 2), (3, 1)]), boxed([(3, 3), (1, 1), (2, 4)])]
    assert np.array_equal(*train[1])  # an example with no square hole shows nothing to fill
    test = boxed([(4, 4), (3, 2), (2, 2)])  # a 4 x 4 hole: a size no example shows
    right, result = solves(train, test)
    assert right and result.programs[0][0] == "fill_regions(grid, 4, 'square', {False: 0, True: 2})"


def test_a_grid_made_of_copies_of_a_tile_is_cut_to_one_tile_along_either_axis():
    rng = np.random.default_rng(5)

    def copies(rows: int, cols: int, down: int, across: int) -> tuple[np.ndarray, np.ndarray]:
        tile = rng.integers(1, 5, size=(rows, cols)).astype(np.uint8)
        return np.tile(tile, (down, across)), tile

    train = [copies(3, 4, 1, 2), copies(2, 3, 2, 1), copies(4, 2, 1, 2)]
    test = copies(3, 3, 2, 1)
    assert search_steps.one_period(train[0][0]).shape == (3, 4)
    assert search_steps.one_period(np.array([[1, 2, 3]], np.uint8)).tolist() == [[1, 2, 3]]  # no repeat: itself
    right, result = solves(train, test)
    assert right and result.programs[0][0] == "one_period(grid)"


def test_a_repeating_pattern_is_continued_into_the_empty_part_of_the_grid():
    rng = np.random.default_rng(8)

    def pattern(period: int, shown: int, width: int = 15) -> tuple[np.ndarray, np.ndarray]:
        tile = rng.integers(0, 4, size=(4, period)).astype(np.uint8)
        tile[-1] = rng.integers(1, 4, size=period)  # the bottom row is never empty
        whole = np.tile(tile, (1, width // period + 1))[:, :width]
        given = whole.copy()
        given[:, shown:] = 0
        return given, whole

    train = [pattern(3, 7), pattern(4, 9), pattern(2, 5)]
    test = pattern(5, 11)
    given, whole = train[0]
    assert np.array_equal(search_steps.continue_pattern(given, "right"), whole)
    # the same continued upwards: the grid turned so that right is up, and back
    turned = np.ascontiguousarray(np.flipud(given.T))
    assert np.array_equal(search_steps.continue_pattern(turned, "up"), np.flipud(whole.T))
    with pytest.raises(ValueError):
        search_steps.continue_pattern(whole, "right")  # nothing empty to continue into
    right, result = solves(train, test)
    assert right and result.programs[0][0] == "continue_pattern(grid, 'right')"


def test_a_band_is_repeated_as_one_block_above_and_below_itself():
    band = np.array([[2, 0, 2, 0], [2, 2, 2, 2], [2, 0, 2, 0]], np.uint8)  # its rows repeat with period 2 inside it
    grid = np.zeros((8, 4), np.uint8)
    grid[4:7] = band
    made = search_steps.repeat_block(grid, 0)
    assert np.array_equal(made[4:7], band) and np.array_equal(made[1:4], band)  # whole copies, not period 2
    assert np.array_equal(made[0], band[2]) and np.array_equal(made[7], band[0])
    assert np.array_equal(search_steps.repeat_block(grid.T, 1), made.T)
    with pytest.raises(ValueError):
        search_steps.repeat_block(made, 0)  # the grid is full: nothing to repeat into


def test_noisy_stripes_are_cleaned_along_whichever_axis_they_run():
    rng = np.random.default_rng(11)

    def stripes(vertical: bool) -> tuple[np.ndarray, np.ndarray]:
        widths = rng.integers(2, 4, size=4)
        colours = rng.permutation(np.arange(1, 10))[:4]
        clean = np.repeat(np.repeat(colours, widths)[None, :], 9, axis=0).astype(np.uint8)
        noisy = clean.copy()
        noise = rng.random(clean.shape) < 0.15
        noisy[noise] = rng.integers(1, 10, size=int(noise.sum()))
        return (noisy.T.copy(), clean.T.copy()) if vertical else (noisy, clean)

    train = [stripes(False), stripes(True), stripes(False)]
    test = stripes(True)
    assert np.array_equal(search_steps.line_majority(test[0]), test[1])
    right, result = solves(train, test)
    assert right and result.programs[0][0] == "line_majority(grid)"


def test_the_template_is_stamped_on_the_lone_cells_and_copied_onto_silhouettes():
    rng = np.random.default_rng(4)

    def example(kind: str) -> tuple[np.ndarray, np.ndarray]:
        # a template of its own in each example: no stamp or cell rule learnt from the examples can draw the test's
        template = np.array([[0, 2, 0], [2, 1, 2], [0, 3, 0]], np.uint8)
        template[template != 0] = rng.choice([1, 2, 3, 4, 6, 7], size=5, replace=False)
        grid = np.zeros((12, 12), np.uint8)
        grid[0:3, 0:3] = template
        out = grid.copy()
        for r, c in ((5 + rng.integers(2), 5), (9 + rng.integers(2), 1), (2 + rng.integers(2), 9)):  # apart
            if kind == "markers":
                grid[r, c] = 5
                window = out[r - 1:r + 2, c - 1:c + 2]
                window[template != 0] = template[template != 0]
            else:
                grid[r - 1:r + 2, c - 1:c + 2] = 5
                out[r - 1:r + 2, c - 1:c + 2] = template
        return grid, out

    for kind, step in (("markers", "stamp_at_markers"), ("silhouettes", "paint_silhouettes")):
        examples = [example(kind) for _ in range(4)]
        assert np.array_equal(getattr(search_steps, step)(examples[0][0]), examples[0][1])
        right, result = solves(examples[:3], examples[3])
        assert right and result.programs[0][0] == f"{step}(grid)"
    template = examples[0][1][:3, :3]
    with pytest.raises(ValueError):
        search_steps.stamp_at_markers(np.pad(template, 2))  # no lone cell


def test_a_template_touching_a_silhouette_corner_to_corner_is_copied_and_removed():
    grid = np.zeros((8, 8), np.uint8)
    grid[1:3, 1:3] = [[7, 6], [9, 4]]
    grid[3:5, 3:5] = 8  # meets the template corner to corner: one object when corners join
    grid[5:7, 6:8] = 8
    with pytest.raises(ValueError):
        search_steps.paint_silhouettes(grid, keep=False)  # the template and a silhouette run together
    out = search_steps.paint_silhouettes(grid, keep=False, connectivity=4)
    expected = np.zeros_like(grid)
    expected[3:5, 3:5] = expected[5:7, 6:8] = [[7, 6], [9, 4]]
    assert np.array_equal(out, expected)


def test_regions_touching_a_colour_are_flooded_and_edge_pairs_are_joined():
    grid = np.array([[0, 0, 5, 0, 0],
                     [0, 1, 5, 0, 0],
                     [5, 5, 5, 0, 0],
                     [0, 0, 0, 5, 5],
                     [0, 0, 0, 5, 0]], np.uint8)
    flooded = search_steps.flood_from(grid, 1)
    assert (flooded[:2, :2] == 1).all() and (flooded[:2, 3:] == 0).all() and flooded[4, 4] == 0
    edges = np.array([[3, 0, 0, 4],
                      [2, 0, 1, 2],
                      [0, 0, 0, 0],
                      [3, 0, 0, 1]], np.uint8)
    assert search_steps.connect_edges(edges).tolist() == [[3, 0, 0, 0], [3, 2, 2, 2], [3, 0, 0, 0], [3, 0, 0, 0]]
    with pytest.raises(ValueError):
        search_steps.connect_edges(np.eye(3, dtype=np.uint8))


def test_a_pattern_is_mirrored_four_ways_around_an_anchor_block():
    rng = np.random.default_rng(6)

    def example() -> tuple[np.ndarray, np.ndarray]:
        grid = np.zeros((14, 14), np.uint8)
        r, c = rng.integers(4, 8, size=2)
        grid[r:r + 2, c:c + 2] = 3  # the anchor, 2 x 2
        quarter = (rng.random((3, 3)) < 0.5).astype(np.uint8) * 2
        quarter[-1, -1] = 2
        grid[r - 3:r, c - 3:c] = quarter  # touching the anchor's corner
        out = grid.copy()
        out[r - 3:r, c + 2:c + 5] = quarter[:, ::-1]
        out[r + 2:r + 5, c - 3:c] = quarter[::-1]
        out[r + 2:r + 5, c + 2:c + 5] = quarter[::-1, ::-1]
        return grid, out

    examples = [example() for _ in range(4)]
    assert np.array_equal(search_steps.symmetrize_around(examples[0][0], 3, "hv"), examples[0][1])
    right, result = solves(examples[:3], examples[3])
    assert right and result.programs[0][0] == "symmetrize_around(grid, 3, 'hv')"


def test_line_ends_and_tails_are_extended_away_from_their_neighbour():
    grid = np.zeros((7, 7), np.uint8)
    grid[6, 1:3] = 4  # a short line: both ends go on along the row
    grid[4:6, 4:6] = 2  # a block with a tail off its corner
    grid[3, 3] = 2
    out = search_steps.extend_ends(grid)
    assert out[6].tolist() == [4] * 7
    assert [int(out[i, i]) for i in range(4)] == [2, 2, 2, 2] and (out[4:6, 4:6] == 2).all()
    assert out[:6, 6].tolist() == [0] * 6 and out[3, :3].tolist() == [0] * 3  # the block sends nothing
    with pytest.raises(ValueError):
        search_steps.extend_ends(np.eye(1, dtype=np.uint8))  # a lone cell is no line's end
