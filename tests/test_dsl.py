"""Tests for training_code/induction/dsl.py: every primitive on small hand-made grids, and properties."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training_code.induction import dsl
from training_code.induction.dsl import (
    Object,
    anti_transpose,
    background,
    bbox,
    box_outline,
    cells_of,
    colour_counts,
    colours,
    complete_period,
    complete_symmetry,
    components,
    connect,
    count_colours,
    crop,
    crop_to_content,
    dedupe,
    dilate,
    downscale,
    draw,
    draw_line,
    enclosed,
    fill_box,
    fill_enclosed,
    flip_h,
    flip_v,
    flood_fill,
    gravity,
    grid_of,
    hconcat,
    interior,
    is_symmetric,
    keep,
    least_common_colour,
    most_common_colour,
    neighbours,
    new_grid,
    objects,
    outline,
    overlay,
    paste,
    recolour,
    replace,
    rotate,
    shift,
    split,
    split_by_lines,
    tile,
    touches_border,
    transpose,
    upscale,
    vconcat,
)


def g(*rows: str) -> np.ndarray:
    """A grid from digit strings, one per row."""
    return np.array([[int(ch) for ch in row] for row in rows], dtype=np.uint8)


def same(a, b) -> bool:
    return np.asarray(a).shape == np.asarray(b).shape and bool(np.array_equal(a, b))


grids = arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8)), elements=st.integers(0, 9))


# ---- colours ------------------------------------------------------------------------------------


def test_colour_counts_are_most_frequent_first_and_ties_by_colour():
    grid = g("1122", "2033")
    assert list(colour_counts(grid).items()) == [(2, 3), (1, 2), (3, 2), (0, 1)]
    assert colour_counts(grid, exclude=[2, 0]) == {1: 2, 3: 2}


def test_colour_queries():
    grid = g("5505", "5111")
    assert colours(grid) == [0, 1, 5]
    assert colours(grid, exclude=[0]) == [1, 5]
    assert count_colours(grid) == 3 and count_colours(grid, exclude=[0, 5]) == 1
    assert most_common_colour(grid) == 5 == background(grid)
    assert most_common_colour(grid, exclude=[5]) == 1
    assert least_common_colour(grid) == 0
    with pytest.raises(ValueError):
        most_common_colour(grid, exclude=[0, 1, 5])


def test_recolour_maps_all_at_once_so_it_can_swap():
    grid = g("12", "30")
    assert same(recolour(grid, {1: 2, 2: 1}), g("21", "30"))
    assert same(replace(grid, 0, 9), g("12", "39"))
    assert same(grid, g("12", "30"))  # arguments are never changed


def test_cells_of_in_reading_order():
    assert cells_of(g("010", "101"), 1) == [(0, 1), (1, 0), (1, 2)]


def test_as_grid_and_new_grid():
    assert same(grid_of(7), g("7"))
    assert same(grid_of([1, 2]), g("12"))
    assert grid_of([[1, 2]]).dtype == np.uint8
    assert same(new_grid(2, 3, 4), g("444", "444"))


# ---- geometry -----------------------------------------------------------------------------------


def test_flips_rotations_and_transposes():
    grid = g("12", "34", "56")
    assert same(flip_h(grid), g("21", "43", "65"))
    assert same(flip_v(grid), g("56", "34", "12"))
    assert same(rotate(grid), g("531", "642"))  # clockwise
    assert same(rotate(grid, -1), g("246", "135"))
    assert same(rotate(grid, 2), g("65", "43", "21"))
    assert same(transpose(grid), g("135", "246"))
    assert same(anti_transpose(grid), g("642", "531"))


@given(grids)
@settings(max_examples=50, deadline=None)
def test_geometry_properties(grid):
    assert same(flip_h(flip_h(grid)), grid)
    assert same(flip_v(flip_v(grid)), grid)
    assert same(rotate(grid, 4), grid)
    assert same(rotate(rotate(grid, 1), -1), grid)
    assert same(transpose(transpose(grid)), grid)
    assert same(anti_transpose(grid), rotate(transpose(grid), 2))
    assert same(downscale(upscale(grid, 2, 3), 2, 3), grid)
    assert same(downscale(upscale(grid, 3), 3, majority=True), grid)
    assert tile(grid, 2, 3).shape == (2 * grid.shape[0], 3 * grid.shape[1])


def test_tile_upscale_downscale():
    grid = g("12", "30")
    assert same(tile(grid, 1, 2), g("1212", "3030"))
    assert same(upscale(grid, 2), g("1122", "1122", "3300", "3300"))
    assert same(upscale(grid, 1, 2), g("1122", "3300"))
    assert same(downscale(g("1122", "1122", "3300", "3300"), 2), grid)
    noisy = g("115", "151", "111")
    assert same(downscale(noisy, 3, majority=True), g("1"))
    assert same(downscale(noisy, 3), g("1"))
    assert same(downscale(g("12345"), 1, 2), g("13"))  # a half block is dropped


def test_shift_moves_content_and_fills():
    grid = g("12", "34")
    assert same(shift(grid, 1, 0), g("00", "12"))
    assert same(shift(grid, 0, -1, fill=9), g("29", "49"))
    assert same(shift(grid, 5, 0), g("00", "00"))


@given(grids, st.integers(-3, 3), st.integers(-3, 3))
@example(np.array([[1], [1]], dtype=np.uint8), 3, 0)  # a shift longer than the grid (CI, stop 9)
@settings(max_examples=50, deadline=None)
def test_shift_and_back_keeps_the_part_that_stayed(grid, dr, dc):
    back = shift(shift(grid, dr, dc), -dr, -dc)
    h, w = grid.shape
    # Clamped at 0: a shift as long as the grid keeps nothing (a negative end would wrap round).
    rows = slice(max(-dr, 0), max(h - max(dr, 0), 0))
    cols = slice(max(-dc, 0), max(w - max(dc, 0), 0))
    assert same(back[rows, cols], grid[rows, cols])


def test_concat_split_and_lines():
    a, b = g("1", "2"), g("3", "4")
    assert same(hconcat(a, b), g("13", "24"))
    assert same(vconcat(a, b), g("1", "2", "3", "4"))
    left, right = split(g("11522", "11522"), 2)  # a separator column between equal halves
    assert same(left, g("11", "11")) and same(right, g("22", "22"))
    top, bottom = split(g("12", "34"), 2, axis=0)
    assert same(top, g("12")) and same(bottom, g("34"))
    with pytest.raises(ValueError):
        split(g("1234"), 3)
    blocks = split_by_lines(g("10501", "55555", "20503"), 5)
    assert [[b.tolist() for b in row] for row in blocks] == [[[[1, 0]], [[0, 1]]], [[[2, 0]], [[0, 3]]]]


def test_dedupe_collapses_runs_of_rows_and_columns():
    assert same(dedupe(g("1122", "1122", "3344")), g("12", "34"))


# ---- boxes, crops, pasting ----------------------------------------------------------------------


def test_bbox_crop_and_crop_to_content():
    grid = g("0000", "0120", "0030")
    assert bbox(grid != 0) == (1, 1, 3, 3)
    assert bbox(grid == 7) is None
    assert same(crop(grid, (1, 1, 3, 3)), g("12", "03"))
    assert same(crop_to_content(grid), g("12", "03"))
    assert same(crop_to_content(g("55", "51"), background=5), g("1"))
    assert same(crop_to_content(g("00")), g("00"))


def test_paste_clips_and_honours_transparency():
    canvas = new_grid(3, 3)
    assert same(paste(canvas, g("12", "34"), 2, 2), g("000", "000", "001"))
    assert same(paste(canvas, g("12", "34"), -1, -1), g("400", "000", "000"))
    assert same(paste(g("555", "555"), g("10"), 0, 1, transparent=0), g("515", "555"))
    assert same(paste(canvas, g("1"), 5, 5), canvas)


def test_overlay_fill_box_and_outline():
    assert same(overlay(g("10"), g("02"), g("30")), g("32"))
    assert same(fill_box(new_grid(3, 3), (0, 1, 2, 3), 4), g("044", "044", "000"))
    assert same(box_outline(new_grid(3, 3), (0, 0, 3, 3), 8), g("888", "808", "888"))


# ---- masks --------------------------------------------------------------------------------------


def test_components_by_connectivity():
    mask = g("110", "001", "001") == 1
    assert len(components(mask, 4)) == 2
    assert len(components(mask, 8)) == 1
    with pytest.raises(ValueError):
        components(mask, 6)


@given(arrays(bool, st.tuples(st.integers(1, 7), st.integers(1, 7))), st.sampled_from([4, 8]))
@settings(max_examples=50, deadline=None)
def test_components_partition_the_mask(mask, connectivity):
    parts = components(mask, connectivity)
    total = np.zeros_like(mask)
    for part in parts:
        assert not (total & part).any()
        total |= part
    assert same(total, mask)
    assert same(outline(mask) | interior(mask), mask)
    assert not (neighbours(mask, connectivity) & mask).any()


def test_dilate_neighbours_outline_interior():
    dot = g("000", "010", "000") == 1
    assert dilate(dot, 8).sum() == 9 and dilate(dot, 4).sum() == 5
    assert neighbours(dot, 4).sum() == 4
    square = np.ones((3, 3), dtype=bool)
    assert interior(square).sum() == 1 and outline(square).sum() == 8
    assert touches_border(square) and not touches_border(dot)


def test_enclosed_and_fill_enclosed():
    grid = g("33333", "30303", "33333", "00000")
    holes = enclosed(grid == 0)
    assert holes.sum() == 2 and holes[1, 1] and holes[1, 3]
    assert same(fill_enclosed(grid, 4), g("33333", "34343", "33333", "00000"))


def test_flood_fill_fills_one_region():
    grid = g("0010", "0010", "1100")
    assert same(flood_fill(grid, 0, 0, 5), g("5510", "5510", "1100"))
    assert same(flood_fill(grid, 2, 0, 5, connectivity=8), g("0050", "0050", "5500"))


# ---- objects ------------------------------------------------------------------------------------


def test_objects_by_colour_and_connectivity():
    grid = g("1100", "0012", "0002")
    found = objects(grid)
    assert [(o.colour, o.size) for o in found] == [(1, 2), (1, 1), (2, 2)]
    assert [(o.colour, o.size) for o in objects(grid, 8)] == [(1, 3), (2, 2)]
    whole = objects(grid, 8, multicolour=True)
    assert len(whole) == 1 and whole[0].colours == [1, 2]


def test_object_properties():
    grid = g("000", "020", "022")
    (obj,) = objects(grid)
    assert isinstance(obj, Object)
    assert obj.box == (1, 1, 3, 3) and (obj.top, obj.left, obj.bottom, obj.right) == (1, 1, 3, 3)
    assert (obj.height, obj.width, obj.size) == (2, 2, 3)
    assert obj.cells == [(1, 1), (2, 1), (2, 2)]
    assert same(obj.patch, g("20", "22"))
    assert same(obj.shape, g("10", "11") == 1)
    assert not obj.is_rectangle
    assert objects(g("0110", "0110"))[0].is_rectangle


def test_objects_on_another_background():
    (obj,) = objects(g("555", "515"), background=5)
    assert obj.colour == 1 and same(obj.patch, g("1"))


def test_draw_and_keep():
    grid = g("10", "02")
    one, two = objects(grid)
    assert same(draw(grid, one, 7), g("70", "02"))
    assert same(draw(new_grid(2, 2), two), g("00", "02"))
    assert same(draw(grid, grid == 0, 5), g("15", "52"))
    with pytest.raises(ValueError):
        draw(grid, grid == 0)
    assert same(keep(grid, [two]), g("00", "02"))


# ---- lines --------------------------------------------------------------------------------------


def test_draw_line_until_border_or_obstacle():
    grid = new_grid(3, 5)
    grid[1, 3] = 9
    assert same(draw_line(grid, 1, 0, "right", 4), g("00000", "04490", "00000"))
    assert same(draw_line(grid, 1, 0, "right", 4, stop_at_obstacle=False), g("00000", "04444", "00000"))
    assert same(draw_line(grid, 0, 0, "down-right", 2), g("00000", "02090", "00200"))
    assert same(draw_line(grid, 2, 0, (-1, 1), 3), g("00300", "03090", "00000"))
    with pytest.raises(ValueError):
        draw_line(grid, 0, 0, "sideways", 1)
    with pytest.raises(ValueError):
        draw_line(grid, 0, 0, (0, 0), 1)


def test_connect_between_aligned_cells():
    grid = g("10001", "00000", "10000")
    assert same(connect(grid, (0, 0), (0, 4), 8), g("18881", "00000", "10000"))
    assert same(connect(grid, (0, 0), (2, 0), 8), g("10001", "80000", "10000"))
    assert same(connect(grid, (2, 0), (0, 2), 3), g("10001", "03000", "10000"))
    assert same(connect(g("1501"), (0, 0), (0, 3), 8, only_background=True), g("1581"))
    with pytest.raises(ValueError):
        connect(grid, (0, 0), (1, 4), 8)


# ---- movement and completion --------------------------------------------------------------------


def test_gravity_in_four_directions():
    grid = g("100", "020", "000")
    assert same(gravity(grid, "down"), g("000", "000", "120"))
    assert same(gravity(grid, "up"), g("120", "000", "000"))
    assert same(gravity(grid, "right"), g("001", "002", "000"))
    assert same(gravity(grid, "left"), g("100", "200", "000"))
    with pytest.raises(ValueError):
        gravity(grid, "down-left")


@given(grids)
@settings(max_examples=30, deadline=None)
def test_gravity_is_idempotent_and_keeps_colour_counts(grid):
    once = gravity(grid, "down")
    assert same(gravity(once, "down"), once)
    assert colour_counts(once) == colour_counts(grid)


def test_is_symmetric():
    assert is_symmetric(g("121", "343"), "h")
    assert not is_symmetric(g("121", "343"), "v")
    assert is_symmetric(g("12", "21"), "d")
    assert is_symmetric(g("12", "21"), "r")


def test_complete_symmetry_fills_unknown_cells_from_mirrors():
    full = g("1234321", "5678765", "5678765", "1234321")
    holed = full.copy()
    holed[0, 1] = holed[2, 4] = 0
    assert same(complete_symmetry(holed, 0), full)


def test_complete_symmetry_finds_an_offset_mirror_line():
    full = g("91221", "93443", "93443", "91221")  # left column is not part of the mirrored pattern
    holed = full.copy()
    holed[1, 1] = 0
    assert same(complete_symmetry(holed, 0, "h"), full)


def test_complete_period_repeats_the_pattern():
    full = tile(g("12", "31"), 3, 4)
    holed = full.copy()
    holed[1:3, 2:5] = 0
    assert same(complete_period(holed, 0), full)
    noise = g("1234", "5678")
    assert same(complete_period(noise, 0), noise)  # nothing shorter than the grid fits


def test_namespace_holds_the_public_names_and_numpy():
    names = dsl.namespace()
    assert names["np"] is np
    assert all(name in names for name in dsl.__all__)
    assert not any(name.startswith("_") for name in names)


def test_every_public_name_is_documented():
    for name in dsl.__all__:
        value = getattr(dsl, name)
        if callable(value):
            assert inspect.getdoc(value), name
    for name, prop in inspect.getmembers(Object, lambda v: isinstance(v, property)):
        assert prop.__doc__, f"Object.{name}"


@pytest.mark.parametrize("connectivity", [4, 8])
def test_enclosed_agrees_with_the_parts_that_miss_the_edge(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(50):
        mask = rng.random((rng.integers(1, 12), rng.integers(1, 12))) < 0.5
        expected = np.zeros_like(mask)
        for part in dsl.components(mask, connectivity):
            if not dsl.touches_border(part):
                expected |= part
        assert np.array_equal(enclosed(mask, connectivity), expected)
