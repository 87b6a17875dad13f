"""Program search: breadth-first over compositions of grid steps, no model needed.

A *state* is the tuple of grids that a partial program makes of every input of a task (the training
inputs, then the test inputs). The root is the inputs themselves; a step maps every grid of a state to a
new grid; a program is the chain of steps from the root. Breadth first by depth: every state of depth d
is expanded with every step that may follow its last one before any state of depth d + 1. Two chains
that give the same grids on every input are the same state, and only the first (the simplest) is kept.

At each state the *fitters* ask whether a last move reproduces every training output:

- the state's training grids are the outputs already;
- a colour map learned from the pairs (one output colour per state colour, the same on every example)
  turns the state into the outputs; steps that paint "a new colour" paint ``NEW`` (10), and the map
  says which colour that is, so one step serves every colour;
- a *shape step* built for this state's sizes (upscale or tile by the ratio of output to state sizes,
  the pattern continued to the output's size, mirrored tilings, downscaling, splitting into parts the
  size of the output and combining them with and/or/xor/overlay, the plan of the grid's rectangles or of
  the blocks between its separator lines, a 1x1 colour) gives the outputs, directly or through a colour map;
- on states up to ``cell_rule_depth`` (the inputs and one step from them), moves learned from the pairs
  themselves: a local cell rule (``cell_rules``: each output cell from what its cell sees around it),
  stamps (each cell of a colour, or on the inputs each object of one colour and shape, paints a fixed
  pattern on the background around it), the one object of each grid that a number picks (the largest,
  smallest or only value of its size, height, symmetry, colours, cells of one colour...) cropped out (or,
  for one-cell outputs, its colour), the one part of a grid cut by lines or into equal parts that a number
  picks, or all those parts laid over each other in an order of colours the examples teach, copies of the
  grid each turned its own way in the blocks of the output, or each cell blown up to a block its colour
  decides;
- on the inputs alone, an output drawn from a number of its grid (objects, colours, cells): a row, a
  column or a diagonal that long, that many cells in reading order, or a table from number to output;
  or a strip listing its colours in an order (by their cells, or as they lie across or down the grid).

Where the inputs rank their colours differently, the search of the task's own colours gets half the
budget, and the rest goes to the task with each pair's colours named by their rank in its input, by count
and then in reading order (``ranked_task``), the answers renamed back; once one of them has a program, the
later ones look only for a shallower one, and the shallowest program's answers come first.

When no program fits by the end, states that draw part of every output and nothing wrong (the *layers*)
are laid over one another, greedily, until they cover every output cell that is not background: the
candidate assembled from partial results (``Layers``).

A program that fits gives its test outputs as candidates: at most ``max_candidates`` distinct ones per
test input, simplest first (smaller depth, then the order of the steps). The search finishes the depth
where it found its first program, then stops.

Nothing sinks a task: a step that raises, returns something that is not a grid, builds a grid with a
side over 30 or runs longer than ``step_seconds`` (cut by a SIGALRM timer in the main thread) is
dropped and the search goes on; states stop being stored after ``max_states`` (memory stays bounded);
the search stops at its deadline. Same task, same settings, same depth reached: the same candidates.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..grids import MAX_SIDE, NUM_COLOURS
from . import dsl
from .cell_rules import fit_cell_rule, fit_phase_rule, fit_relational_rule, fit_stamps
from .dsl import label

log = logging.getLogger(__name__)

Grid = np.ndarray
NEW = NUM_COLOURS  # "a colour the examples decide": a colour map names it (never in a final grid)
# Bumped when the steps or the fitters change, so that cached results of an older search are not reused.
SEARCH_VERSION = 18


@dataclass(frozen=True)
class SearchConfig:
    """How far and how long one task is searched."""

    seconds: float = 10.0  # the whole search of one task
    max_depth: int = 3  # steps in a chain before the last move (a colour map or a shape step)
    max_candidates: int = 3  # distinct test outputs kept per test input
    max_states: int = 40_000  # states kept for expansion; past this the search only checks, stores nothing
    step_seconds: float = 0.25  # one step on every grid of a state; a slower one is cut off
    max_steps: int = 0  # step applications per task (0: no limit): a budget that is the same on any machine
    cpu_time: bool = False  # ``seconds`` of this process's CPU time, not of the wall clock: a busy machine
    # then slows the search down without making it find less
    cell_rule_depth: int = 1  # states up to this depth try the learned last moves (a local cell rule, an
    # object picked by a number and cropped): each costs about as much as ten steps, and deeper states rarely
    # need one
    max_layers: int = 2_000  # partial results kept for assembling a candidate when no program fits


@dataclass(frozen=True)
class Step:
    """One grid -> grid move. ``text`` is its call with ``{}`` where the grid goes."""

    text: str
    kind: str  # the family, for the rules of what may follow what
    fn: Callable[[Grid], Grid]


@dataclass
class Program:
    """A program that reproduces every training pair, and what it gives for each test input."""

    text: str
    depth: int
    test_outputs: tuple[Grid, ...]


@dataclass
class SearchResult:
    """What the search of one task found: per test input, the candidate grids (simplest program first)
    with the program that gave each."""

    task_id: str
    candidates: list[list[Grid]]
    programs: list[list[str]]
    depth: int = 0  # the deepest depth fully expanded
    steps: int = 0  # step applications
    states: int = 0  # distinct states met
    steps_cut: int = 0  # step applications dropped: raised, ran too long or built a grid too large
    seconds: float = 0.0
    timed_out: bool = False
    found_depth: int | None = None  # depth of the simplest program found (None: none)
    error: str = ""  # why the search stopped early, if it did

    def to_json(self) -> dict:
        return {"task_id": self.task_id, "depth": self.depth, "states": self.states, "steps": self.steps,
                "steps_cut": self.steps_cut,
                "seconds": round(self.seconds, 3), "timed_out": self.timed_out, "found_depth": self.found_depth,
                "error": self.error,
                "programs": self.programs,
                "candidates": [[g.astype(int).tolist() for g in cands] for cands in self.candidates]}


class StepTimeout(Exception):  # noqa: N818 - the name says what happened
    """A step ran past ``step_seconds``."""


class _Deadline(Exception):  # noqa: N818 - the name says what happened
    """The task's time (or its budget of steps) is up."""


# --------------------------------------------------------------------------------------------------
# Grid helpers the steps share


@dataclass(frozen=True)
class Shape:
    """One object of a grid: its mask, box, size and colours."""

    mask: np.ndarray
    top: int
    left: int
    bottom: int
    right: int
    size: int
    colours: int

    def patch(self, grid: Grid, background: int = 0) -> Grid:
        box = self.mask[self.top:self.bottom, self.left:self.right]
        return np.where(box, grid[self.top:self.bottom, self.left:self.right], np.uint8(background)).astype(np.uint8)

    def box_crop(self, grid: Grid) -> Grid:
        return np.ascontiguousarray(grid[self.top:self.bottom, self.left:self.right])


_SHAPES_CACHE: dict[tuple, list[Shape]] = {}
_SHAPES_CACHE_SIZE = 512  # many steps ask for the same grid's objects; some MB at most


def shapes(grid: Grid, connectivity: int, multicolour: bool, background: int = 0) -> list[Shape]:
    """The objects of the grid in reading order of their first cell (remembered for the last grids asked)."""
    key = (grid.shape, grid.tobytes(), connectivity, multicolour, background)
    found = _SHAPES_CACHE.get(key)
    if found is None:
        if len(_SHAPES_CACHE) >= _SHAPES_CACHE_SIZE:
            _SHAPES_CACHE.clear()
        found = _SHAPES_CACHE[key] = _shapes(grid, connectivity, multicolour, background)
    return found


def _shapes(grid: Grid, connectivity: int, multicolour: bool, background: int) -> list[Shape]:
    lab = label(grid, connectivity, multicolour, background)
    fg = lab >= 0
    firsts, index = np.unique(lab[fg], return_inverse=True)  # label values sort in reading order
    if not firsts.size:
        return []
    count = firsts.size
    rows, cols = np.nonzero(fg)  # the cells in the order of lab[fg]
    top, left = np.full(count, MAX_SIDE), np.full(count, MAX_SIDE)
    bottom, right = np.zeros(count, dtype=int), np.zeros(count, dtype=int)
    np.minimum.at(top, index, rows)
    np.minimum.at(left, index, cols)
    np.maximum.at(bottom, index, rows)
    np.maximum.at(right, index, cols)
    sizes = np.bincount(index, minlength=count)
    colour_pairs = np.unique(index * (NUM_COLOURS + 1) + grid[fg])
    colours = np.bincount(colour_pairs // (NUM_COLOURS + 1), minlength=count)
    ids = np.full(grid.shape, -1)
    ids[fg] = index
    masks = ids[None] == np.arange(count)[:, None, None]  # one boolean layer per object, all at once
    return [Shape(masks[i], int(top[i]), int(left[i]), int(bottom[i]) + 1, int(right[i]) + 1, int(sizes[i]),
                  int(colours[i])) for i in range(count)]


def _only(items: list, what: str):
    if len(items) != 1:
        raise ValueError(f"{len(items)} objects are {what}")
    return items[0]


_SHAPE_KEYS_CACHE: dict[int, tuple[list[Shape], list[tuple]]] = {}


def _shape_keys(objs: list[Shape], grid: Grid) -> list[tuple]:
    """Each object's size and cells with their colours (remembered for the object lists ``shapes`` keeps:
    several steps compare the same objects' shapes)."""
    found = _SHAPE_KEYS_CACHE.get(id(objs))
    if found is not None and found[0] is objs:
        return found[1]
    if len(_SHAPE_KEYS_CACHE) >= _SHAPES_CACHE_SIZE:
        _SHAPE_KEYS_CACHE.clear()
    keys = [(o.bottom - o.top, o.right - o.left, o.patch(grid).tobytes()) for o in objs]
    _SHAPE_KEYS_CACHE[id(objs)] = (objs, keys)  # the list kept with its keys: its id cannot be reused
    return keys


def _select(objs: list[Shape], rule: str, grid: Grid) -> Shape:
    """The one object a rule picks; ValueError when it picks none or several (a tie is no answer)."""
    if not objs:
        raise ValueError("no objects")
    if rule == "largest":
        best = max(o.size for o in objs)
        return _only([o for o in objs if o.size == best], "largest")
    if rule == "smallest":
        best = min(o.size for o in objs)
        return _only([o for o in objs if o.size == best], "smallest")
    if rule == "largest-box":
        area = [(o.bottom - o.top) * (o.right - o.left) for o in objs]
        return _only([o for o, a in zip(objs, area) if a == max(area)], "largest boxes")
    if rule == "most-colours":
        best = max(o.colours for o in objs)
        return _only([o for o in objs if o.colours == best], "most colourful")
    if rule == "unique-colour":  # the only object of its colour
        keys = [int(grid[o.mask][0]) for o in objs]
        return _only([o for o, k in zip(objs, keys) if keys.count(k) == 1], "alone in their colour")
    if rule == "unique-shape":  # the only object of its shape (cells and colours)
        keys = _shape_keys(objs, grid)
        return _only([o for o, k in zip(objs, keys) if keys.count(k) == 1], "alone in their shape")
    if rule == "common-shape":  # the shape that occurs most often (a tie is no answer)
        keys = _shape_keys(objs, grid)
        counts = [keys.count(k) for k in keys]
        top = [k for k, c in zip(keys, counts) if c == max(counts)]
        if len(set(top)) != 1 or max(counts) < 2:
            raise ValueError("no single most common shape")
        return objs[keys.index(top[0])]
    raise ValueError(f"unknown rule {rule}")


def _check_side(*sizes: int) -> None:
    if any(s < 1 or s > MAX_SIDE for s in sizes):
        raise ValueError(f"a side of {sizes} is outside 1..{MAX_SIDE}")


# --------------------------------------------------------------------------------------------------
# The steps


def crop_object(grid: Grid, connectivity: int, multicolour: bool, rule: str) -> Grid:
    """The box of the object ``rule`` picks, other objects' cells kept (a crop of the grid)."""
    return _select(shapes(grid, connectivity, multicolour), rule, grid).box_crop(grid)


def keep_object(grid: Grid, connectivity: int, multicolour: bool, rule: str) -> Grid:
    """The grid with only the object ``rule`` picks."""
    obj = _select(shapes(grid, connectivity, multicolour), rule, grid)
    return np.where(obj.mask, grid, 0).astype(np.uint8)


def remove_object(grid: Grid, connectivity: int, multicolour: bool, rule: str) -> Grid:
    """The grid without the object ``rule`` picks."""
    obj = _select(shapes(grid, connectivity, multicolour), rule, grid)
    return np.where(obj.mask, 0, grid).astype(np.uint8)


def remove_specks(grid: Grid, connectivity: int = 8) -> Grid:
    """The grid without its one-cell objects (noise)."""
    lab = label(grid, connectivity, True)
    values, counts = np.unique(lab[lab >= 0], return_counts=True)
    single = np.isin(lab, values[counts == 1])
    return np.where(single, 0, grid).astype(np.uint8)


def keep_solid(grid: Grid) -> Grid:
    """The grid with only its cells that some 2x2 square of non-background cells covers (thin lines and
    specks that touch a block removed: a morphological opening)."""
    filled = grid != 0
    square = filled[:-1, :-1] & filled[1:, :-1] & filled[:-1, 1:] & filled[1:, 1:]
    covered = np.zeros_like(filled)
    for dr in (0, 1):
        for dc in (0, 1):
            covered[dr:dr + square.shape[0], dc:dc + square.shape[1]] |= square
    return np.where(covered, grid, 0).astype(np.uint8)


def paint_halo_of(grid: Grid, colour: int, connectivity: int) -> Grid:
    """Background cells next to a cell of ``colour`` (in the connectivity's directions) painted NEW."""
    mask = dsl.neighbours(grid == colour, connectivity) & (grid == 0)
    return np.where(mask, np.uint8(NEW), grid).astype(np.uint8)


def crop_colour(grid: Grid, colour: int) -> Grid:
    """The box around the cells of ``colour``."""
    box = dsl.bbox(grid == colour)
    if box is None:
        raise ValueError(f"no cell of colour {colour}")
    return dsl.crop(grid, box)


def crop_inside_colour(grid: Grid, colour: int) -> Grid:
    """The inside of the box around the cells of ``colour`` (a frame's content)."""
    box = dsl.bbox(grid == colour)
    if box is None or box[2] - box[0] < 3 or box[3] - box[1] < 3:
        raise ValueError(f"no frame of colour {colour}")
    return dsl.crop(grid, (box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1))


def crop_content_on(grid: Grid) -> Grid:
    """The box around the cells that are not the most common colour."""
    return dsl.crop_to_content(grid, dsl.most_common_colour(grid))


def erase_colour(grid: Grid, colour: int) -> Grid:
    return np.where(grid == colour, 0, grid).astype(np.uint8)


def fill_holes(grid: Grid) -> Grid:
    """Background cells cut off from the edge painted NEW."""
    return dsl.fill_enclosed(grid, NEW)


def paint_mask(grid: Grid, which: str) -> Grid:
    """Cells of the objects' outline, interior or surroundings (all around, side by side, along the rows or
    the columns that hold them) painted NEW."""
    fg = grid != 0
    if which == "outline":
        mask = dsl.outline(fg, 4)
    elif which == "interior":
        mask = dsl.interior(fg, 4)
    elif which == "halo":
        mask = dsl.neighbours(fg, 8)
    elif which == "halo4":
        mask = dsl.neighbours(fg, 4)
    elif which == "rows":  # every row that holds a coloured cell
        mask = fg.any(axis=1, keepdims=True) & ~fg
    elif which == "columns":
        mask = fg.any(axis=0, keepdims=True) & ~fg
    else:
        raise ValueError(which)
    return np.where(mask, np.uint8(NEW), grid).astype(np.uint8)


def _fill_forward(grid: Grid, axis: int, reverse: bool) -> Grid:
    """Every background cell takes the colour of the nearest non-background cell before it along
    ``axis`` (after it with ``reverse``): rays that stop at the next cell that is not background."""
    g = grid if axis == 1 else grid.T
    if reverse:
        g = g[:, ::-1]
    fg = g != 0
    index = np.where(fg, np.arange(g.shape[1]), -1)
    np.maximum.accumulate(index, axis=1, out=index)
    rows = np.arange(g.shape[0])[:, None]
    out = np.where(fg | (index < 0), g, g[rows, np.maximum(index, 0)]).astype(np.uint8)
    if reverse:
        out = out[:, ::-1]
    return np.ascontiguousarray(out if axis == 1 else out.T)


_RAYS = {"right": ((1, False),), "left": ((1, True),), "down": ((0, False),), "up": ((0, True),),
         "row": ((1, False), (1, True)), "column": ((0, False), (0, True)),
         "cross": ((1, False), (1, True), (0, False), (0, True))}


def draw_rays(grid: Grid, rays: str) -> Grid:
    """From every non-background cell, lines of its colour in the ray directions, each to the next cell
    that is not background (or the edge); where two rays meet the first direction listed wins."""
    out = grid
    for axis, reverse in _RAYS[rays]:
        out = np.where(out == 0, _fill_forward(grid, axis, reverse), out).astype(np.uint8)
    return out


def draw_rays_from(grid: Grid, colour: int, rays: str) -> Grid:
    """Rays as ``draw_rays`` draws them, but only from the cells of ``colour``: the other cells stop rays
    and send none."""
    if not (grid == colour).any():
        raise ValueError(f"no cell of colour {colour}")
    out = grid
    for axis, reverse in _RAYS[rays]:
        ray = _fill_forward(grid, axis, reverse)
        out = np.where((out == 0) & (ray == colour), ray, out).astype(np.uint8)
    return out


def draw_diagonals(grid: Grid) -> Grid:
    """From every non-background cell, the four diagonal rays of its colour to the edge (over background)."""
    out = grid.copy()
    h, w = grid.shape
    cells = np.argwhere(grid != 0)
    if len(cells) == 0 or len(cells) > 20:
        raise ValueError("no cells, or too many to draw from")
    for r, c in cells:
        for dr, dc in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            rr, cc = r + dr, c + dc
            while 0 <= rr < h and 0 <= cc < w:
                if out[rr, cc] == 0:
                    out[rr, cc] = grid[r, c]
                rr, cc = rr + dr, cc + dc
    return out


def connect_same(grid: Grid, axis: int) -> Grid:
    """Background cells between two cells of one colour in a row (axis 1) or column (axis 0) take that
    colour."""
    g = grid if axis == 1 else grid.T
    out = g.copy()
    for colour in np.unique(g[g != 0]):
        mask = g == colour
        between = np.logical_or.accumulate(mask, axis=1) & np.logical_or.accumulate(mask[:, ::-1], axis=1)[:, ::-1]
        out[between & (out == 0)] = colour
    return np.ascontiguousarray(out if axis == 1 else out.T)


def connect_same_diagonal(grid: Grid, anti: bool) -> Grid:
    """Background cells between two cells of one colour on a diagonal (down-right, or down-left when
    ``anti``) take that colour."""
    g = grid[:, ::-1] if anti else grid
    out = g.copy()
    height, width = g.shape
    for offset in range(-(height - 1), width):
        rows = np.arange(max(0, -offset), min(height, width - offset))
        cols = rows + offset
        line = g[rows, cols]
        for colour in np.unique(line[line != 0]):
            mask = line == colour
            between = np.logical_or.accumulate(mask) & np.logical_or.accumulate(mask[::-1])[::-1]
            fill = between & (out[rows, cols] == 0)
            out[rows[fill], cols[fill]] = colour
    return np.ascontiguousarray(out[:, ::-1] if anti else out)


def shoot_to_objects(grid: Grid, hit: bool = False) -> Grid:
    """Each lone cell (an object of one cell, on the most common colour as background) that faces a larger
    object along its row or column draws a line in its colour up to that object; with ``hit``, it paints
    the object's cell it meets instead (a mark left where it lands; cells side by side of different colours
    are lone cells too)."""
    bg = dsl.background(grid)
    objects = label(grid, 4, False, bg) if hit else label(grid, 8, True, bg)
    sizes = np.bincount(objects[objects >= 0].ravel(), minlength=grid.size)
    size = np.where(objects >= 0, sizes[np.maximum(objects, 0)], 0)
    lone, large = size == 1, size > 1
    if not lone.any() or not large.any():
        raise ValueError("no lone cell and larger object")
    out = grid.copy()

    def directions(a: np.ndarray) -> tuple[np.ndarray, ...]:
        """Views of ``a`` whose rows run right, left, down and up (writes to a view of ``out`` go through)."""
        return a, a[:, ::-1], a.T, a.T[:, ::-1]

    for g, o, lo, la in zip(directions(grid), directions(out), directions(lone), directions(large)):
        h, w = g.shape
        at = np.where(g != bg, np.arange(w), w)
        following = np.full((h, w), w)  # the column of the first non-background cell after each cell
        following[:, :-1] = np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1][:, 1:]
        rows, cols = np.nonzero(lo & (following < w) & (following > np.arange(w) + 1))
        for r, c in zip(rows.tolist(), cols.tolist()):
            if la[r, following[r, c]]:
                if hit:
                    o[r, following[r, c]] = g[r, c]
                else:
                    o[r, c + 1:following[r, c]] = g[r, c]
    return out


def _pair_counts(grid: Grid, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For every doubled centre of a point mirror (``axes`` (0, 1)) or of a mirror line across ``axes``
    ((1,): a left-right mirror, (0,): top-bottom): how many ordered pairs of non-background cells meet
    there, and the sum of their squared colour differences (0: all agree). Counted for all centres at
    once as convolutions (FFT): sum (a - b)^2 = sum a^2 + b^2 - 2ab over the pairs."""
    shape = [2 * grid.shape[a] - 1 for a in axes]
    fg = (grid != 0).astype(float)
    value = grid.astype(float)
    spectra = np.fft.rfftn(np.stack([fg, value, value * value]), shape, [a + 1 for a in axes])
    products = np.stack([spectra[0] * spectra[0], spectra[1] * spectra[1], spectra[2] * spectra[0]])
    pairs, cross, squares = np.fft.irfftn(products, shape, [a + 1 for a in axes])
    if len(axes) == 1:  # the pairs of every row (column) together
        pairs, cross, squares = (x.sum(axis=1 - axes[0]) for x in (pairs, cross, squares))
    return np.rint(pairs).astype(int), np.rint(2 * squares - 2 * cross).astype(int)


_CENTRE_CACHE: dict[tuple, np.ndarray | None] = {}  # the variants of complete_symmetric share a grid's centres


def _best_centre(grid: Grid, axes: tuple[int, ...]) -> np.ndarray:
    """The doubled centre where the most non-background cells meet a partner, all of their colour (the
    first such on a tie); ValueError when fewer than half of the cells would find a partner."""
    key = (grid.shape, grid.tobytes(), axes)
    if key not in _CENTRE_CACHE:
        if len(_CENTRE_CACHE) >= _SHAPES_CACHE_SIZE:
            _CENTRE_CACHE.clear()
        pairs, clash = _pair_counts(grid, axes)
        pairs = np.where(clash == 0, pairs, -1)
        best = np.unravel_index(int(np.argmax(pairs)), pairs.shape)
        _CENTRE_CACHE[key] = np.array(best) if pairs[best] * 2 >= (grid != 0).sum() > 0 else None
    found = _CENTRE_CACHE[key]
    if found is None:
        raise ValueError("no symmetry that most of the cells keep")
    return found


def complete_symmetric(grid: Grid, how: str, paint: bool) -> Grid:
    """Background cells whose image under a symmetry of the grid's content is not background take the
    image's colour (NEW with ``paint``): the symmetry's centre is found, not assumed to be the grid's
    (a mirror line ``h`` left-right or ``v`` top-bottom, both ``hv``, a half turn ``r2`` or the quarter
    turns ``r4``)."""
    if how in ("h", "v", "hv"):
        tc = int(_best_centre(grid, (1,))[0]) if "h" in how else 0
        tr = int(_best_centre(grid, (0,))[0]) if "v" in how else 0
    else:
        tr, tc = (int(x) for x in _best_centre(grid, (0, 1)))
    return _mirror_fill(grid, how, tr, tc, paint)


def symmetrize_around(grid: Grid, colour: int, how: str) -> Grid:
    """The grid completed by a symmetry whose centre is the centre of the box of ``colour``'s cells (an
    anchor the pattern is mirrored around), as ``complete_symmetric`` completes it."""
    box = dsl.bbox(grid == colour)
    if box is None:
        raise ValueError(f"no cell of colour {colour}")
    top, left, bottom, right = box
    return _mirror_fill(grid, how, top + bottom - 1, left + right - 1, paint=False)


def _mirror_fill(grid: Grid, how: str, tr: int, tc: int, paint: bool) -> Grid:
    """Background cells take the colour of their image (NEW with ``paint``) under the symmetry ``how`` whose
    row and column images are ``tr - row`` and ``tc - column``."""
    h, w = grid.shape
    rows, cols = np.indices((h, w))
    images = {"h": [(rows, tc - cols)], "v": [(tr - rows, cols)], "r2": [(tr - rows, tc - cols)]}
    images["hv"] = images["h"] + images["v"] + images["r2"]
    if how == "r4":
        if (tr + tc) % 2:
            raise ValueError("no cell-centred quarter turn")
        images["r4"] = images["r2"] + [(cols + (tr - tc) // 2, (tr + tc) // 2 - rows),
                                       ((tr + tc) // 2 - cols, rows + (tc - tr) // 2)]
    out = grid.copy()
    for r, c in images[how]:
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        seen = np.where(inside, grid[np.where(inside, r, 0), np.where(inside, c, 0)], 0)
        take = (out == 0) & (seen != 0)
        out[take] = NEW if paint else seen[take]
    return out


def symmetrize(grid: Grid, how: str) -> Grid:
    """The grid drawn over its mirror image(s): background cells take the mirror's colour."""
    mirrors = {"h": [dsl.flip_h], "v": [dsl.flip_v], "hv": [dsl.flip_h, dsl.flip_v, lambda g: dsl.rotate(g, 2)],
               "d": [dsl.transpose], "r4": [lambda g: dsl.rotate(g, 1), lambda g: dsl.rotate(g, 2),
                                            lambda g: dsl.rotate(g, 3)]}[how]
    out = grid.copy()
    for mirror in mirrors:
        m = mirror(grid)
        if m.shape != grid.shape:
            raise ValueError("not square")
        out = np.where(out == 0, m, out)
    return out.astype(np.uint8)


_COMPLETED_CACHE: dict[tuple, Grid] = {}  # complete_hidden asks again for what complete_with just made


LATTICE_TILE = 36  # cells of a slanted tile at most: larger repeats are rare and costly to look for


def complete_lattice(grid: Grid, unknown: int) -> Grid:
    """The grid with cells of colour ``unknown`` filled by a pattern that repeats on a slanted lattice: every
    ``pc`` columns along a row, and every ``pr`` rows shifted ``s`` columns (diagonal stripes, bricks). The
    lattice with the smallest tile under which every known cell agrees and every cell of the tile is seen
    is used (up to ``LATTICE_TILE`` cells); the upright lattices are ``complete_period``'s. The grid is
    returned unchanged when none fits."""
    g = np.array(grid, dtype=np.uint8)
    h, w = g.shape
    rows, cols = np.nonzero(g != unknown)
    values = g[rows, cols].astype(np.int16)
    every_r, every_c = np.indices(g.shape)
    lattices = sorted((pr * pc, pr, pc, s) for pr in range(1, h + 1) for pc in range(2, w + 1)
                      if pr * pc <= LATTICE_TILE for s in range(1, pc))
    for cells, pr, pc, s in lattices:
        tile = dsl.agreeing_tile((rows % pr) * pc + (cols - (rows // pr) * s) % pc, values, cells)
        if tile is not None:
            return tile[(every_r % pr) * pc + (every_c - (every_r // pr) * s) % pc].astype(np.uint8)
    return g


def complete_with(grid: Grid, unknown: int, how: str) -> Grid:
    if not (grid == unknown).any():
        return grid.copy()  # nothing to fill: what either completion gives back unchanged
    key = (grid.shape, grid.tobytes(), unknown, how)
    out = _COMPLETED_CACHE.get(key)
    if out is None:
        if len(_COMPLETED_CACHE) >= _SHAPES_CACHE_SIZE:
            _COMPLETED_CACHE.clear()
        completions = {"symmetry": dsl.complete_symmetry, "period": dsl.complete_period, "lattice": complete_lattice}
        out = completions[how](grid, unknown)
        _COMPLETED_CACHE[key] = out
    if (out == unknown).any():
        raise ValueError("cells left unknown")
    return out.copy()


def most_common_1x1(grid: Grid, which: str) -> Grid:
    counts = dsl.colour_counts(grid, exclude=[0])
    if not counts:
        raise ValueError("no colour")
    if which == "most":
        return np.array([[next(iter(counts))]], dtype=np.uint8)
    fewest = min(counts.values())
    return np.array([[min(c for c, n in counts.items() if n == fewest)]], dtype=np.uint8)


def complete_hidden(grid: Grid, unknown: int, how: str) -> Grid:
    """What the cells of colour ``unknown`` hide, completed by symmetry or period (the box they cover)."""
    box = dsl.bbox(grid == unknown)
    if box is None:
        raise ValueError(f"no cell of colour {unknown}")
    return dsl.crop(complete_with(grid, unknown, how), box)


def crop_colour_rule(grid: Grid, rule: str) -> Grid:
    """The box around the cells of the least (or most) common colour other than the background."""
    counts = dsl.colour_counts(grid, exclude=[0])
    if not counts:
        raise ValueError("no colour")
    colour = dsl.least_common_colour(grid, exclude=[0]) if rule == "least" else next(iter(counts))
    return crop_colour(grid, colour)


def keep_colour_rule(grid: Grid, rule: str) -> Grid:
    """Only the cells of the least (or most) common colour other than the background; a tie is no answer."""
    counts = dsl.colour_counts(grid, exclude=[0])
    if not counts:
        raise ValueError("no colour")
    best = (min if rule == "least" else max)(counts.values())
    picked = [c for c, n in counts.items() if n == best]
    if len(picked) != 1:
        raise ValueError(f"{len(picked)} colours are the {rule} common")
    return np.where(grid == picked[0], grid, 0).astype(np.uint8)


def swap_background(grid: Grid) -> Grid:
    """The most common colour and 0 swapped, so that the object steps see the background as 0."""
    bg = dsl.most_common_colour(grid)
    return dsl.recolour(grid, {bg: 0, 0: bg})


def invert(grid: Grid) -> Grid:
    """A grid of one colour on the background with the two swapped: the pattern's negative."""
    present = dsl.colours(grid, exclude=[0])
    if len(present) != 1:
        raise ValueError("not one colour on the background")
    return dsl.recolour(grid, {present[0]: 0, 0: present[0]})


def fill_boxes(grid: Grid, per: str) -> Grid:
    """Background cells inside boxes painted: the box of all content, of each object or of each colour
    (NEW, or the colour's own for ``colour``)."""
    out = grid.copy()
    if per == "content":
        boxes = [(dsl.bbox(grid != 0), NEW)]
    elif per == "object":
        boxes = [((o.top, o.left, o.bottom, o.right), NEW) for o in shapes(grid, 8, True)]
    else:
        boxes = [(dsl.bbox(grid == c), c) for c in dsl.colours(grid, exclude=[0])]
    for box, colour in boxes:
        if box is None:
            raise ValueError("no content")
        top, left, bottom, right = box
        region = out[top:bottom, left:right]
        region[region == 0] = colour
    return out


MAX_MOVING = 30  # objects moved one by one in Python: more is noise, not objects
_LEADING_EDGE = {"down": lambda o: -o.bottom, "up": lambda o: o.top, "right": lambda o: -o.right,
                 "left": lambda o: o.left}


def _slide(grid: Grid, obj: Shape, dr: int, dc: int, out: Grid, resting: np.ndarray) -> bool:
    """Move the object step by step along (dr, dc) until its next step would leave the grid or land on a
    cell at rest; draw it there in ``out`` and mark its cells at rest. True when a cell at rest stopped it."""
    h, w = grid.shape
    rows, cols = np.nonzero(obj.mask)
    ks = np.arange(1, max(h, w) + 1)
    r, c = rows[:, None] + ks * dr, cols[:, None] + ks * dc  # every cell's path, one step after another
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    blocked = ~inside
    blocked[inside] = resting[r[inside], c[inside]]
    k = int(blocked.argmax(axis=1).min())  # steps taken before the first cell is blocked
    stopped = bool((inside[:, k] & blocked[:, k]).any())  # every path leaves the grid within len(ks) steps
    out[rows + k * dr, cols + k * dc] = grid[rows, cols]
    resting[rows + k * dr, cols + k * dc] = True
    return stopped


def drop_objects(grid: Grid, direction: str) -> Grid:
    """Whole objects (8-connected, any colours) slide towards ``direction`` until they touch the edge or
    an object already at rest, the one nearest that edge first (gravity that keeps objects whole)."""
    objs = shapes(grid, 8, True)
    if not objs or len(objs) > MAX_MOVING:
        raise ValueError("no objects, or too many to move")
    dr, dc = dsl.DIRECTIONS[direction]
    out = np.zeros_like(grid)
    resting = np.zeros(grid.shape, dtype=bool)
    for obj in sorted(objs, key=_LEADING_EDGE[direction]):
        _slide(grid, obj, dr, dc, out, resting)
    return out


def move_to_anchor(grid: Grid, anchor: str) -> Grid:
    """The object ``anchor`` picks (largest or smallest) stays; every other object slides straight
    towards it (up, down, left or right: the side where their boxes face each other; diagonally when they
    face no side) until it touches it."""
    objs = shapes(grid, 8, True)
    if len(objs) < 2 or len(objs) > MAX_MOVING:
        raise ValueError("fewer than two objects, or too many to move")
    still = _select(objs, anchor, grid)
    out = np.where(still.mask, grid, 0).astype(np.uint8)
    resting = still.mask.copy()
    for obj in objs:
        if obj is still:
            continue
        if obj.right > still.left and obj.left < still.right:  # columns face each other: move vertically
            dr, dc = (1, 0) if obj.bottom <= still.top else (-1, 0)
        elif obj.bottom > still.top and obj.top < still.bottom:
            dr, dc = (0, 1) if obj.right <= still.left else (0, -1)
        else:
            dr, dc = (1 if obj.bottom <= still.top else -1), (1 if obj.right <= still.left else -1)
            if not _slide(grid, obj, dr, dc, out, resting):
                raise ValueError("an object off the anchor's diagonals")
            continue
        _slide(grid, obj, dr, dc, out, resting)
    return out


def shift_by_one(grid: Grid, direction: str) -> Grid:
    dr, dc = dsl.DIRECTIONS[direction]
    return dsl.shift(grid, dr, dc)


def paint_border(grid: Grid) -> Grid:
    out = grid.copy()
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = NEW
    return out


def _continue_right(grid: Grid) -> Grid:
    """The columns from the first to the last that hold anything, repeated with their shortest period over
    the empty columns to their right (with no shorter period, the whole block repeats)."""
    filled = np.flatnonzero((grid != 0).any(axis=0))
    if filled.size == 0 or filled[-1] == grid.shape[1] - 1:
        raise ValueError("nothing to continue")
    start, end = int(filled[0]), int(filled[-1]) + 1
    block = grid[:, start:end]
    period = next((p for p in range(1, end - start) if np.array_equal(block[:, p:], block[:, :-p])), end - start)
    out = grid.copy()
    out[:, end:] = grid[:, start + (np.arange(end, grid.shape[1]) - start) % period]
    return out


def repeat_block(grid: Grid, axis: int) -> Grid:
    """The rows (axis 0) or columns (axis 1) from the first to the last that hold anything, repeated as one
    block over the whole grid both ways (a band copied above and below itself); a ValueError when they fill
    the grid already."""
    g = grid if axis == 1 else grid.T
    filled = np.flatnonzero((g != 0).any(axis=0))
    if filled.size == 0 or (filled[0] == 0 and filled[-1] == g.shape[1] - 1):
        raise ValueError("nothing to repeat into")
    start, size = int(filled[0]), int(filled[-1]) + 1 - int(filled[0])
    out = g[:, start + (np.arange(g.shape[1]) - start) % size]
    return np.ascontiguousarray(out if axis == 1 else out.T)


_TO_THE_RIGHT = {"right": (lambda g: g, lambda g: g), "left": (np.fliplr, np.fliplr),
                 "down": (np.transpose, np.transpose), "up": (lambda g: np.flipud(g).T, lambda g: np.flipud(g.T))}


def continue_pattern(grid: Grid, direction: str) -> Grid:
    """A pattern continued along ``direction`` with its period into the empty part of the grid beyond it (a
    ValueError when there is no such part)."""
    there, back = _TO_THE_RIGHT[direction]
    return np.ascontiguousarray(back(_continue_right(np.ascontiguousarray(there(grid)))))


def paint_empty_lines(grid: Grid) -> Grid:
    """Rows and columns that hold only background painted NEW."""
    out = grid.copy()
    out[np.all(grid == 0, axis=1), :] = NEW
    out[:, np.all(grid == 0, axis=0)] = NEW
    return out


def fill_most_common(grid: Grid) -> Grid:
    return np.full_like(grid, dsl.most_common_colour(grid))


def connect_new(grid: Grid, axes: tuple[int, ...] = (1, 0)) -> Grid:
    """Background cells between two cells of one colour in a row (axis 1) or column (axis 0) painted NEW."""
    out = grid.copy()
    for axis in axes:
        marked = connect_same(grid, axis)
        out[(marked != grid) & (out == 0)] = NEW
    return out


def _template(objs: list[Shape]) -> Shape:
    """The one object of several colours among ``objs`` (the pattern the others receive)."""
    return _only([o for o in objs if o.colours > 1], "object of several colours")


def stamp_at_markers(grid: Grid) -> Grid:
    """The one object of several colours stamped over every lone cell (an object of one cell), centred on
    it; the template stays where it is."""
    objs = shapes(grid, 8, True)
    template = _template(objs)
    markers = [o for o in objs if o.size == 1]
    if not markers:
        raise ValueError("no lone cell to stamp on")
    patch = template.patch(grid)
    h, w = patch.shape
    out = grid.copy()
    for marker in markers:
        top, left = marker.top - (h - 1) // 2, marker.left - (w - 1) // 2
        if top < 0 or left < 0 or top + h > grid.shape[0] or left + w > grid.shape[1]:
            raise ValueError("a stamp leaves the grid")
        out[marker.top, marker.left] = 0
        window = out[top:top + h, left:left + w]
        window[patch != 0] = patch[patch != 0]
    return out


def paint_silhouettes(grid: Grid, keep: bool = True, connectivity: int = 8) -> Grid:
    """The one object of several colours copied onto every one-colour object whose box has its size (the
    silhouette takes the pattern, cell for cell of the box); without ``keep``, the template is removed.
    Objects are cells joined side by side or also corner to corner (``connectivity`` 4 or 8)."""
    objs = shapes(grid, connectivity, True)
    template = _template(objs)
    box = template.box_crop(grid)
    out = grid.copy() if keep else np.where(template.mask, 0, grid).astype(np.uint8)
    painted = 0
    for obj in objs:
        if obj is not template and obj.colours == 1 and (obj.bottom - obj.top, obj.right - obj.left) == box.shape:
            out[obj.top:obj.bottom, obj.left:obj.right] = box
            painted += 1
    if not painted:
        raise ValueError("no silhouette of the template's size")
    return out


def extend_ends(grid: Grid) -> Grid:
    """Every cell with exactly one neighbour of its colour (of 8: the end of a line, a tail off a block) draws
    a ray of its colour away from that neighbour, over background, up to the next coloured cell or the edge."""
    h, w = grid.shape
    padded = np.pad(grid, 1)
    offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    same = np.stack([(padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w] == grid) & (grid != 0) for dr, dc in offsets])
    ends = np.argwhere(same.sum(axis=0) == 1)
    if len(ends) == 0 or len(ends) > 40:
        raise ValueError("no line end, or too many to draw from")
    out = grid.copy()
    for r, c in ends:
        dr, dc = offsets[int(np.argmax(same[:, r, c]))]
        rr, cc = r - dr, c - dc
        while 0 <= rr < h and 0 <= cc < w and grid[rr, cc] == 0:
            out[rr, cc] = grid[r, c]
            rr, cc = rr - dr, cc - dc
    return out


def connect_edges(grid: Grid) -> Grid:
    """Only the lines between cells of one colour that face each other on opposite edges: every row whose
    first and last cells match, every column whose top and bottom cells match, on an empty grid."""
    rows = (grid[:, 0] == grid[:, -1]) & (grid[:, 0] != 0)
    cols = (grid[0] == grid[-1]) & (grid[0] != 0)
    if not rows.any() and not cols.any():
        raise ValueError("no pair of matching cells on opposite edges")
    out = np.zeros_like(grid)
    out[rows, :] = grid[rows, 0][:, None]
    out[:, cols] = grid[0, cols][None, :]
    return out


def flood_from(grid: Grid, colour: int) -> Grid:
    """Background regions (4-connected) that touch a cell of ``colour`` side by side take that colour."""
    seeds = grid == colour
    if not seeds.any():
        raise ValueError(f"no cell of colour {colour}")
    regions = label((grid == 0).astype(np.uint8), 4)
    reached = np.unique(regions[dsl.neighbours(seeds, 4) & (regions >= 0)])
    return np.where((regions >= 0) & np.isin(regions, reached), np.uint8(colour), grid).astype(np.uint8)


def pull_to(grid: Grid, colour: int | str) -> Grid:
    """Every other coloured cell that faces an anchor along its row or column, with background between,
    moves up to it (to the cell next to it); cells that face none stay. The anchors are the cells of
    ``colour``, or with "single" the cells whose colour no other cell has. Cells move one by one, in reading
    order, each seeing the grid as the earlier ones left it."""
    if colour == "single":
        values, counts = np.unique(grid[grid != 0], return_counts=True)
        anchors = np.isin(grid, values[counts == 1])  # the values are of coloured cells only
    else:
        anchors = grid == colour
    movers = np.argwhere((grid != 0) & ~anchors)
    if not anchors.any() or len(movers) == 0 or len(movers) > 40:
        raise ValueError(f"no anchor ({colour}), or no other cells (or too many) to move")
    out = grid.copy()
    h, w = grid.shape
    moved = 0
    for r, c in movers.tolist():
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            rr, cc = r + dr, c + dc
            while 0 <= rr < h and 0 <= cc < w and out[rr, cc] == 0:
                rr, cc = rr + dr, cc + dc
            if 0 <= rr < h and 0 <= cc < w and anchors[rr, cc] and (rr - dr, cc - dc) != (r, c):
                out[rr - dr, cc - dc], out[r, c] = out[r, c], 0
                moved += 1
                break
    if not moved:
        raise ValueError(f"no cell faces an anchor ({colour})")
    return out


def fill_largest_empty(grid: Grid) -> Grid:
    """The largest rectangle of background cells, both sides at least 2, painted NEW; two of the largest
    area are no answer."""
    h, w = grid.shape
    # the height of the run of background cells ending at each cell, down each column (plain ints: fast to index)
    runs = np.zeros((h, w), dtype=np.int64)
    empty = grid == 0
    runs[0] = empty[0]
    for r in range(1, h):
        runs[r] = np.where(empty[r], runs[r - 1] + 1, 0)
    best, found = 0, []
    for r, row in enumerate(runs.tolist()):
        heights = row + [0]  # a sentinel column of height 0 closes every bar at the end
        stack: list[int] = []  # columns of rising bar heights
        for c in range(w + 1):
            while stack and heights[stack[-1]] >= heights[c]:
                top = stack.pop()
                height = heights[top]
                left = stack[-1] + 1 if stack else 0
                # the rectangle as tall as the bar over columns left..c-1: the largest rectangle cannot grow
                # any way, so it is one of these, and met once (a bar cut short by an equal one is narrower)
                area = height * (c - left)
                if height >= 2 and c - left >= 2 and area >= best:
                    box = (r - height + 1, left, r + 1, c)
                    found = found + [box] if area == best else [box]
                    best = area
            stack.append(c)
    if not found:
        raise ValueError("no empty rectangle of 2 x 2 or more")
    if len(found) > 1:
        raise ValueError(f"{len(found)} empty rectangles of the largest area")
    top, left, bottom, right = found[0]
    out = grid.copy()
    out[top:bottom, left:right] = NEW
    return out


def line_majority(grid: Grid) -> Grid:
    """Every row painted its most common colour, or every column: whichever of the two keeps more cells as
    they are (noisy stripes made clean)."""
    made = []  # (cells kept, grid) for rows, then columns
    for axis in (1, 0):
        g = grid if axis == 1 else grid.T
        counts = np.stack([(g == c).sum(axis=1) for c in range(NUM_COLOURS)], axis=1)
        out = np.repeat(counts.argmax(axis=1).astype(np.uint8)[:, None], g.shape[1], axis=1)
        made.append((int(counts.max(axis=1).sum()), np.ascontiguousarray(out if axis == 1 else out.T)))
    return max(made, key=lambda m: m[0])[1]  # a tie: rows


# ---- shape steps: built for the sizes of one state and its outputs


def mirror_tile(grid: Grid, rows: int, cols: int, flip_rows: bool, flip_cols: bool) -> Grid:
    """``rows`` x ``cols`` copies, every other one mirrored across the row and/or column boundary."""
    _check_side(grid.shape[0] * rows, grid.shape[1] * cols)
    blocks = []
    for i in range(rows):
        line = []
        for j in range(cols):
            g = grid
            if flip_rows and i % 2:
                g = g[::-1]
            if flip_cols and j % 2:
                g = g[:, ::-1]
            line.append(g)
        blocks.append(np.concatenate(line, axis=1))
    return np.ascontiguousarray(np.concatenate(blocks, axis=0))


def rotation_tile(grid: Grid) -> Grid:
    """Four quarter turns in a 2x2 square: the grid, then clockwise around."""
    if grid.shape[0] != grid.shape[1]:
        raise ValueError("not square")
    return np.block([[grid, dsl.rotate(grid, 1)], [dsl.rotate(grid, 3), dsl.rotate(grid, 2)]]).astype(np.uint8)


def fractal(grid: Grid, where: str) -> Grid:
    """The grid placed in the blocks of cells that are (or are not) background, of the most or least
    common colour, or of the most common colour other than the background (a Kronecker product)."""
    _check_side(grid.shape[0] ** 2, grid.shape[1] ** 2)
    if where == "most-coloured":
        mask = grid == dsl.most_common_colour(grid, exclude=[0])
    elif where in ("most", "least"):
        mask = grid == (dsl.most_common_colour(grid) if where == "most" else dsl.least_common_colour(grid))
    else:
        mask = (grid != 0) if where == "on" else (grid == 0)
    return np.kron(mask.astype(np.uint8), grid).astype(np.uint8)


def downscale_any(grid: Grid, fr: int, fc: int) -> Grid:
    """Each block shrunk to one cell: its most common non-background colour, background when empty."""
    h, w = grid.shape[0] // fr, grid.shape[1] // fc
    out = np.zeros((h, w), dtype=np.uint8)
    for r in range(h):
        for c in range(w):
            block = grid[r * fr:(r + 1) * fr, c * fc:(c + 1) * fc]
            counts = dsl.colour_counts(block, exclude=[0])
            out[r, c] = next(iter(counts)) if counts else 0
    return out


def _separated(grid: Grid) -> Iterator[tuple[int, list[list[Grid]]]]:
    """For each colour that draws full rows or columns across the grid (separator lines), the colour and
    the table of blocks between its lines (``dsl.split_by_lines``), when there are two blocks or more."""
    for colour in dsl.colours(grid):
        full_rows = (grid == colour).all(axis=1)
        full_cols = (grid == colour).all(axis=0)
        if (full_rows.any() or full_cols.any()) and not full_rows.all():
            table = dsl.split_by_lines(grid, colour)
            if len(table) * len(table[0]) >= 2:
                yield colour, table


def parts_by_lines(grid: Grid) -> list[Grid]:
    """The blocks between separator lines, in reading order, when they are all of one size."""
    for _, table in _separated(grid):
        parts = [p for row in table for p in row]
        if len({p.shape for p in parts}) == 1:
            return parts
    raise ValueError("no separator lines into equal parts")


def parts_plan(grid: Grid) -> Grid:
    """The table of blocks between separator lines (full rows and columns of one colour), one cell per
    block: the block's most common colour other than the lines' and the background (background when it has
    none). The blocks may differ in size."""
    for colour, table in _separated(grid):
        plan = np.zeros((len(table), len(table[0])), dtype=np.uint8)
        for r, row in enumerate(table):
            for c, block in enumerate(row):
                inside = block[(block != colour) & (block != 0)]
                plan[r, c] = np.bincount(inside).argmax() if inside.size else 0
        return plan
    raise ValueError("no separator lines")


def parts_equal(grid: Grid, rows: int, cols: int) -> list[Grid]:
    """The grid cut into ``rows`` x ``cols`` equal parts (a one-cell separator between parts allowed)."""
    return [p for band in dsl.split(grid, rows, axis=0) for p in dsl.split(band, cols, axis=1)]


def combine(parts: list[Grid], how: str) -> Grid:
    """Parts of one shape made one grid: a cell mask (and, or, xor, nor: 1 where true) or an overlay."""
    if len({p.shape for p in parts}) != 1:
        raise ValueError("parts differ in shape")
    masks = [p != 0 for p in parts]
    if how == "and":
        return np.logical_and.reduce(masks).astype(np.uint8)
    if how == "or":
        return np.logical_or.reduce(masks).astype(np.uint8)
    if how == "xor":
        return (np.sum(masks, axis=0) == 1).astype(np.uint8)
    if how == "nor":
        return (~np.logical_or.reduce(masks)).astype(np.uint8)
    if how == "first-only":
        return (masks[0] & ~np.logical_or.reduce(masks[1:])).astype(np.uint8)
    if how == "overlay":
        return dsl.overlay(*parts)
    if how == "overlay-reversed":
        return dsl.overlay(*parts[::-1])
    if how in ("overlay-flipped-h", "overlay-flipped-v"):
        flip = dsl.flip_h if how.endswith("h") else dsl.flip_v
        return dsl.overlay(parts[0], *(flip(p) for p in parts[1:]))
    if how in ("first", "last"):
        return parts[0].copy() if how == "first" else parts[-1].copy()
    if how in ("most-cells", "fewest-cells", "most-colours", "odd-one"):
        if how == "odd-one":
            keys = [p.tobytes() for p in parts]
            return _only([p for p, k in zip(parts, keys) if keys.count(k) == 1], "unlike the others")
        score = [int(m.sum()) for m in masks] if how != "most-colours" else [len(np.unique(p)) for p in parts]
        best = min(score) if how == "fewest-cells" else max(score)
        return _only([p for p, s in zip(parts, score) if s == best], f"{how} parts").copy()
    raise ValueError(how)


def _period(grid: Grid, axis: int) -> int:
    """The smallest shift along ``axis`` under which the grid repeats itself (its length when none does)."""
    a = grid if axis == 0 else grid.T
    n = a.shape[0]
    return next(p for p in range(1, n + 1) if np.array_equal(a[p:], a[:n - p]))


def one_period(grid: Grid) -> Grid:
    """The grid's first tile: its smallest row and column periods (the grid itself when it does not repeat)."""
    return np.ascontiguousarray(grid[:_period(grid, 0), :_period(grid, 1)])


def extend_periodic(grid: Grid, rows: int | Fraction, cols: int | Fraction, scaled: bool = False) -> Grid:
    """The grid's pattern continued to ``rows`` x ``cols`` cells (``scaled``: that many times the grid's
    size), repeating its smallest row and column periods; tiling when the grid does not repeat itself."""
    if scaled:
        rows, cols = grid.shape[0] * rows, grid.shape[1] * cols
    if Fraction(rows).denominator != 1 or Fraction(cols).denominator != 1:
        raise ValueError(f"{grid.shape} scaled is no whole size")
    rows, cols = int(rows), int(cols)
    _check_side(rows, cols)
    pr, pc = _period(grid, 0), _period(grid, 1)
    return np.ascontiguousarray(grid[np.arange(rows) % pr][:, np.arange(cols) % pc])


def upscale_by_colours(grid: Grid) -> Grid:
    """Each cell blown up by the number of colours other than the background."""
    k = dsl.count_colours(grid, exclude=[0])
    _check_side(grid.shape[0] * k, grid.shape[1] * k)
    return dsl.upscale(grid, k)


def tile_by_colours(grid: Grid) -> Grid:
    """The grid repeated k x k times, k the number of its colours other than the background."""
    k = dsl.count_colours(grid, exclude=[0])
    _check_side(grid.shape[0] * k, grid.shape[1] * k)
    return dsl.tile(grid, k, k)


def crop_corner(grid: Grid, height: int, width: int, corner: str) -> Grid:
    h, w = grid.shape
    if height > h or width > w:
        raise ValueError("larger than the grid")
    top = {"top-left": 0, "top-right": 0, "bottom-left": h - height, "bottom-right": h - height,
           "centre": (h - height) // 2}[corner]
    left = {"top-left": 0, "bottom-left": 0, "top-right": w - width, "bottom-right": w - width,
            "centre": (w - width) // 2}[corner]
    return np.ascontiguousarray(grid[top:top + height, left:left + width])


def solid(grid: Grid, height: int, width: int, rule: str) -> Grid:
    """A ``height`` x ``width`` grid of one colour: the most or least common one (not background), or
    that of the largest object or largest box."""
    if rule in ("most", "least"):
        colour = most_common_1x1(grid, rule)[0, 0]
    else:
        obj = _select(shapes(grid, 8, False), "largest" if rule == "largest-object" else "largest-box", grid)
        colour = grid[obj.mask][0]
    return np.full((height, width), colour, dtype=np.uint8)


def count_row(grid: Grid) -> Grid:
    """One row with a cell of the only colour for each cell of that colour."""
    counts = dsl.colour_counts(grid, exclude=[0])
    if len(counts) != 1:
        raise ValueError("not one colour")
    (colour, n), = counts.items()
    _check_side(1, n)
    return np.full((1, n), colour, dtype=np.uint8)


def _fitting_ratio(sizes: Sequence[tuple[int, int]], outs: Sequence[tuple[int, int]]) -> tuple[str, int, int] | None:
    """('up', kr, kc) when every output is kr x kc times its state, ('down', kr, kc) when every state is
    kr x kc times its output; None otherwise."""
    for direction, pairs in (("up", zip(sizes, outs)), ("down", zip(outs, sizes))):
        ratios = set()
        for (h, w), (oh, ow) in pairs:
            if oh % h or ow % w:
                ratios = None
                break
            ratios.add((oh // h, ow // w))
        if ratios and len(ratios) == 1:
            kr, kc = ratios.pop()
            if (kr, kc) != (1, 1):
                return direction, kr, kc
    return None


def shape_steps(state: Sequence[Grid], outputs: Sequence[Grid]) -> list[Step]:
    """Last moves that make the state's training grids the size of the outputs (none when sizes match)."""
    sizes = tuple(g.shape for g in state[:len(outputs)])
    outs = tuple(o.shape for o in outputs)
    if sizes == outs:
        return []
    steps = list(_sized_steps(sizes, outs))
    try:
        if all(parts_by_lines(g)[0].shape == o for g, o in zip(state, outs)):
            steps += _combined_steps("parts_by_lines({})", parts_by_lines)
    except ValueError:
        pass
    return steps


def _combined_steps(text: str, cut: Callable[[Grid], list[Grid]]) -> list[Step]:
    return [Step(f"combine({text}, {how!r})", "shape", lambda g, c=cut, m=how: combine(c(g), m))
            for how in ("and", "or", "xor", "nor", "first-only", "overlay", "overlay-reversed", "overlay-flipped-h",
                        "overlay-flipped-v", "first", "last", "most-cells", "fewest-cells", "most-colours", "odd-one")]


@functools.lru_cache(maxsize=256)
def _sized_steps(sizes: tuple[tuple[int, int], ...], outs: tuple[tuple[int, int], ...]) -> tuple[Step, ...]:
    """The shape steps that depend only on the sizes of the state's grids and of the outputs."""
    steps: list[Step] = []
    ratio = _fitting_ratio(sizes, outs)
    if ratio and ratio[0] == "up":
        _, kr, kc = ratio
        steps += [Step(f"upscale({{}}, {kr}, {kc})", "shape", lambda g, a=kr, b=kc: dsl.upscale(g, a, b)),
                  Step(f"tile({{}}, {kr}, {kc})", "shape", lambda g, a=kr, b=kc: dsl.tile(g, a, b))]
        for fr, fc in ((True, False), (False, True), (True, True)):
            if (fr and kr > 1) or (fc and kc > 1):
                steps.append(Step(f"mirror_tile({{}}, {kr}, {kc}, flip_rows={fr}, flip_cols={fc})", "shape",
                                  lambda g, a=kr, b=kc, x=fr, y=fc: mirror_tile(g, a, b, x, y)))
                steps.append(Step(f"mirror_tile(flip_all({{}}), {kr}, {kc}, flip_rows={fr}, flip_cols={fc})",
                                  "shape", lambda g, a=kr, b=kc, x=fr, y=fc: mirror_tile(g[::-1, ::-1], a, b, x, y)))
        if (kr, kc) == (2, 2):
            steps.append(Step("rotation_tile({})", "shape", rotation_tile))
        if all(o == (h * h, w * w) for (h, w), o in zip(sizes, outs)):
            steps += [Step(f"fractal({{}}, {where!r})", "shape", lambda g, x=where: fractal(g, x))
                      for where in ("on", "off", "most", "least", "most-coloured")]
    if all(oh >= h and ow >= w for (h, w), (oh, ow) in zip(sizes, outs)):
        # the pattern continued to the output's size: a fixed size, or a fixed ratio (3/2 as well as 2)
        scales = {(Fraction(oh, h), Fraction(ow, w)) for (h, w), (oh, ow) in zip(sizes, outs)}
        if len(set(outs)) == 1:
            oh, ow = outs[0]
            steps.append(Step(f"extend_periodic({{}}, {oh}, {ow})", "shape",
                              lambda g, a=oh, b=ow: extend_periodic(g, a, b)))
        elif len(scales) == 1:
            fr, fc = scales.pop()
            steps.append(Step(f"extend_periodic({{}}, {fr}, {fc}, scaled=True)", "shape",
                              lambda g, a=fr, b=fc: extend_periodic(g, a, b, scaled=True)))
    if ratio and ratio[0] == "down":
        _, kr, kc = ratio
        steps += [Step(f"downscale({{}}, {kr}, {kc})", "shape", lambda g, a=kr, b=kc: dsl.downscale(g, a, b)),
                  Step(f"downscale_any({{}}, {kr}, {kc})", "shape", lambda g, a=kr, b=kc: downscale_any(g, a, b))]
    # parts the size of the output: equal cuts (with or without separators) or cuts along separator lines
    for kr in range(1, 5):
        for kc in range(1, 5):
            if (kr, kc) != (1, 1) and all(h in (kr * oh, kr * oh + kr - 1) and w in (kc * ow, kc * ow + kc - 1)
                                          for (h, w), (oh, ow) in zip(sizes, outs)):
                steps += _combined_steps(f"parts_equal({{}}, {kr}, {kc})", lambda g, a=kr, b=kc: parts_equal(g, a, b))
    if ratio is None and len(set(outs)) == 1 and all(h % outs[0][0] == 0 and w % outs[0][1] == 0 for h, w in sizes):
        oh, ow = outs[0]
        steps.append(Step(f"downscale_to({{}}, {oh}, {ow})", "shape",
                          lambda g, a=oh, b=ow: downscale_any(g, g.shape[0] // a, g.shape[1] // b)))
    if ratio is None and all(oh % h == 0 and ow % w == 0 and oh // h == ow // w
                             for (h, w), (oh, ow) in zip(sizes, outs)):
        steps.append(Step("upscale_by_colours({})", "shape", upscale_by_colours))
        steps.append(Step("tile_by_colours({})", "shape", tile_by_colours))
    if len(set(outs)) == 1 and all(oh <= h and ow <= w for (h, w), (oh, ow) in zip(sizes, outs)):
        oh, ow = outs[0]
        for corner in ("top-left", "top-right", "bottom-left", "bottom-right", "centre"):
            steps.append(Step(f"crop_corner({{}}, {oh}, {ow}, {corner!r})", "shape",
                              lambda g, a=oh, b=ow, c=corner: crop_corner(g, a, b, c)))
    if len(set(outs)) == 1:
        oh, ow = outs[0]
        for rule in ("most", "least", "largest-object", "largest-box"):
            steps.append(Step(f"solid({{}}, {oh}, {ow}, {rule!r})", "shape",
                              lambda g, a=oh, b=ow, r=rule: solid(g, a, b, r)))
    if all(oh * 3 <= h and ow * 3 <= w for (h, w), (oh, ow) in zip(sizes, outs)):
        steps.append(Step("block_layout({})", "shape", block_layout))
    if all(oh * 2 <= h and ow * 2 <= w for (h, w), (oh, ow) in zip(sizes, outs)):
        steps.append(Step("parts_plan({})", "shape", parts_plan))
    if all(oh == 1 for oh, _ in outs):
        steps.append(Step("count_row({})", "shape", count_row))
    if all(o == (1, 1) for o in outs):
        steps += [Step("most_common_1x1({}, 'most')", "shape", lambda g: most_common_1x1(g, "most")),
                  Step("most_common_1x1({}, 'least')", "shape", lambda g: most_common_1x1(g, "least"))]
    return tuple(steps)


class TaskFacts:
    """What the examples say about the parameters worth trying."""

    def __init__(self, inputs: Sequence[Grid], outputs: Sequence[Grid]):
        in_colours = set().union(*(set(np.unique(g).tolist()) for g in inputs))
        out_colours = set().union(*(set(np.unique(g).tolist()) for g in outputs))
        self.colours = sorted(in_colours)
        # colours of the inputs that no output shows: a mask over cells to fill, or noise to drop
        self.vanishing = sorted(c for c in in_colours - out_colours)
        present_everywhere = set.intersection(*(set(np.unique(g).tolist()) for g in inputs))
        self.common = sorted(present_everywhere - {0})


def static_steps(facts: TaskFacts) -> list[Step]:
    """The steps any state may take, most useful families first (their order is the order of ties)."""
    steps = [
        Step("flip_h({})", "d8", dsl.flip_h), Step("flip_v({})", "d8", dsl.flip_v),
        Step("rotate({}, 1)", "d8", lambda g: dsl.rotate(g, 1)),
        Step("rotate({}, 2)", "d8", lambda g: dsl.rotate(g, 2)),
        Step("rotate({}, 3)", "d8", lambda g: dsl.rotate(g, 3)), Step("transpose({})", "d8", dsl.transpose),
        Step("anti_transpose({})", "d8", dsl.anti_transpose),
        Step("crop_to_content({})", "crop", dsl.crop_to_content),
        Step("one_period({})", "crop", one_period),
        Step("crop_content_on({})", "crop", crop_content_on),
        Step("crop_colour_rule({}, 'least')", "crop", lambda g: crop_colour_rule(g, "least")),
        Step("crop_colour_rule({}, 'most')", "crop", lambda g: crop_colour_rule(g, "most")),
        Step("swap_background({})", "background", swap_background),
        Step("invert({})", "background", invert),
    ]
    for conn, multi in ((8, True), (4, False), (4, True), (8, False)):
        rules = ["largest", "smallest", "largest-box", "unique-shape", "common-shape"]
        rules += ["most-colours"] if multi else ["unique-colour"]
        for rule in rules:
            args = f"{conn}, {multi}, {rule!r}"
            steps.append(Step(f"crop_object({{}}, {args})", "crop",
                              lambda g, a=conn, b=multi, r=rule: crop_object(g, a, b, r)))
    for rule in ("least", "most"):
        steps.append(Step(f"keep_colour_rule({{}}, {rule!r})", "objects", lambda g, r=rule: keep_colour_rule(g, r)))
    for conn, multi in ((8, True), (4, False)):
        for rule in ("largest", "smallest", "unique-colour" if not multi else "most-colours", "unique-shape"):
            args = f"{conn}, {multi}, {rule!r}"
            steps.append(Step(f"keep_object({{}}, {args})", "objects",
                              lambda g, a=conn, b=multi, r=rule: keep_object(g, a, b, r)))
            steps.append(Step(f"remove_object({{}}, {args})", "objects",
                              lambda g, a=conn, b=multi, r=rule: remove_object(g, a, b, r)))
    steps.append(Step("remove_specks({})", "objects", remove_specks))
    steps.append(Step("stamp_at_markers({})", "objects", stamp_at_markers))
    steps.append(Step("paint_silhouettes({})", "objects", paint_silhouettes))
    for keep in (True, False):
        steps.append(Step(f"paint_silhouettes({{}}, keep={keep}, connectivity=4)", "objects",
                          lambda g, k=keep: paint_silhouettes(g, keep=k, connectivity=4)))
    steps.append(Step("keep_solid({})", "objects", keep_solid))
    for colour in facts.colours:
        if colour == 0:
            continue
        steps.append(Step(f"crop_colour({{}}, {colour})", "crop", lambda g, c=colour: crop_colour(g, c)))
        steps.append(Step(f"crop_inside_colour({{}}, {colour})", "crop", lambda g, c=colour: crop_inside_colour(g, c)))
        steps.append(Step(f"erase_colour({{}}, {colour})", "erase", lambda g, c=colour: erase_colour(g, c)))
    for unknown in facts.vanishing:
        steps.append(Step(f"complete_with({{}}, {unknown}, 'symmetry')", "complete",
                          lambda g, u=unknown: complete_with(g, u, "symmetry")))
        steps.append(Step(f"complete_with({{}}, {unknown}, 'period')", "complete",
                          lambda g, u=unknown: complete_with(g, u, "period")))
        # slanted lattices: many more to try, so on the inputs and crops of them only
        steps.append(Step(f"complete_with({{}}, {unknown}, 'lattice')", "symmetry-centre",
                          lambda g, u=unknown: complete_with(g, u, "lattice")))
        steps.append(Step(f"complete_hidden({{}}, {unknown}, 'symmetry')", "crop",
                          lambda g, u=unknown: complete_hidden(g, u, "symmetry")))
        steps.append(Step(f"complete_hidden({{}}, {unknown}, 'period')", "crop",
                          lambda g, u=unknown: complete_hidden(g, u, "period")))
    for direction in ("down", "up", "left", "right"):
        steps.append(Step(f"gravity({{}}, {direction!r})", "gravity", lambda g, d=direction: dsl.gravity(g, d)))
    steps.append(Step("fill_holes({})", "paint", fill_holes))
    for per in ("content", "object", "colour"):
        steps.append(Step(f"fill_boxes({{}}, {per!r})", "paint", lambda g, p=per: fill_boxes(g, p)))
    for direction in ("right", "left", "down", "up"):
        steps.append(Step(f"continue_pattern({{}}, {direction!r})", "paint",
                          lambda g, d=direction: continue_pattern(g, d)))
    for axis in (0, 1):
        steps.append(Step(f"repeat_block({{}}, {axis})", "paint", lambda g, a=axis: repeat_block(g, a)))
    steps += [Step("paint_border({})", "paint", paint_border),
              Step("paint_empty_lines({})", "paint", paint_empty_lines),
              Step("fill_most_common({})", "paint", fill_most_common),
              Step("connect_new({})", "lines", connect_new),
              Step("connect_new({}, (1,))", "lines", lambda g: connect_new(g, (1,))),
              Step("connect_edges({})", "lines", connect_edges),
              Step("extend_ends({})", "lines", extend_ends),
              Step("connect_new({}, (0,))", "lines", lambda g: connect_new(g, (0,))),
              Step("line_majority({})", "paint", line_majority),
              Step("fill_largest_empty({})", "paint", fill_largest_empty)]
    for direction in ("down", "up", "left", "right"):
        steps.append(Step(f"drop_objects({{}}, {direction!r})", "move", lambda g, d=direction: drop_objects(g, d)))
    for anchor in ("largest", "smallest"):
        steps.append(Step(f"move_to_anchor({{}}, {anchor!r})", "move", lambda g, a=anchor: move_to_anchor(g, a)))
    for direction in ("down", "up", "left", "right"):
        steps.append(Step(f"shift_by_one({{}}, {direction!r})", "shift", lambda g, d=direction: shift_by_one(g, d)))
    for which in ("outline", "interior", "halo", "halo4", "rows", "columns"):
        steps.append(Step(f"paint_mask({{}}, {which!r})", "paint", lambda g, w=which: paint_mask(g, w)))
    if len([c for c in facts.colours if c != 0]) > 1:  # with one colour, its halo is paint_mask's
        for colour in facts.common:
            for conn in (8, 4):
                steps.append(Step(f"paint_halo_of({{}}, {colour}, {conn})", "paint-from",
                                  lambda g, c=colour, n=conn: paint_halo_of(g, c, n)))
    for colour in facts.common:
        steps.append(Step(f"flood_from({{}}, {colour})", "paint-from", lambda g, c=colour: flood_from(g, c)))
        steps.append(Step(f"pull_to({{}}, {colour})", "paint-from", lambda g, c=colour: pull_to(g, c)))
        for how in ("h", "v", "hv", "r4"):
            steps.append(Step(f"symmetrize_around({{}}, {colour}, {how!r})", "paint-from",
                              lambda g, c=colour, m=how: symmetrize_around(g, c, m)))
    steps.append(Step("pull_to({}, 'single')", "paint-from", lambda g: pull_to(g, "single")))
    for how in ("h", "v", "hv", "d", "r4"):
        steps.append(Step(f"symmetrize({{}}, {how!r})", "symmetry", lambda g, m=how: symmetrize(g, m)))
    for how in ("h", "v", "hv", "r2", "r4"):
        for paint in (False, True):
            steps.append(Step(f"complete_symmetric({{}}, {how!r}, paint={paint})", "symmetry-centre",
                              lambda g, m=how, p=paint: complete_symmetric(g, m, p)))
    for rays in _RAYS:
        steps.append(Step(f"draw_rays({{}}, {rays!r})", "lines", lambda g, r=rays: draw_rays(g, r)))
    if len(facts.common) > 1:  # with one colour, rays from it are draw_rays
        for colour in facts.common:
            for rays in _RAYS:
                steps.append(Step(f"draw_rays_from({{}}, {colour}, {rays!r})", "lines-from",
                                  lambda g, c=colour, r=rays: draw_rays_from(g, c, r)))
    steps += [Step("draw_diagonals({})", "lines", draw_diagonals),
              Step("connect_same({}, 1)", "lines", lambda g: connect_same(g, 1)),
              Step("connect_same({}, 0)", "lines", lambda g: connect_same(g, 0)),
              Step("connect_same_diagonal({}, False)", "lines", lambda g: connect_same_diagonal(g, False)),
              Step("connect_same_diagonal({}, True)", "lines", lambda g: connect_same_diagonal(g, True)),
              Step("shoot_to_objects({})", "lines", shoot_to_objects),
              Step("shoot_to_objects({}, hit=True)", "lines", lambda g: shoot_to_objects(g, hit=True)),
              Step("dedupe({})", "dedupe", dsl.dedupe)]
    return steps


# Kinds whose steps, one after another, add nothing a single one does not (D8 is a group, gravity and
# dedupe are idempotent), or that only make sense as a first move.
NO_REPEAT = {"d8", "gravity", "dedupe", "symmetry", "background", "move"}
# Kinds with many variants or a costly centre search: tried on the inputs and on crops of them only, so
# that they do not multiply the states of every depth.
FIRST_OR_AFTER_CROP = {"lines-from", "symmetry-centre", "paint-from"}


def may_follow(previous: str | None, step: Step) -> bool:
    """The typing of chains: which step may come after a step of kind ``previous``."""
    if previous is None:
        return True
    if step.kind in FIRST_OR_AFTER_CROP and previous != "crop":
        return False
    if previous == step.kind and step.kind in NO_REPEAT:
        return False
    return step.kind != "background"  # a first move only


# --------------------------------------------------------------------------------------------------
# Fitters


def learn_colour_map(grids: Sequence[Grid], outputs: Sequence[Grid]) -> dict[int, int] | None:
    """The one colour map that turns every grid into its output (same shapes), or None."""
    table = np.full(NUM_COLOURS + 1, -1, dtype=np.int16)
    for g, o in zip(grids, outputs):
        if g.shape != o.shape:
            return None
        pairs = np.unique(g.astype(np.int16) * 16 + o, return_counts=False)
        src, dst = pairs // 16, pairs % 16
        if len(np.unique(src)) != len(src):
            return None  # one colour goes to two colours
        seen = table[src]
        if ((seen >= 0) & (seen != dst)).any():
            return None
        table[src] = dst
    return {int(c): int(table[c]) for c in range(NUM_COLOURS + 1) if table[c] >= 0}


def apply_colour_map(grid: Grid, mapping: dict[int, int]) -> Grid:
    """The grid recoloured; a colour the map does not name stays (NEW must be named)."""
    table = np.arange(NUM_COLOURS + 1, dtype=np.uint8)
    for old, new in mapping.items():
        table[old] = new
    out = table[grid]
    if (out >= NUM_COLOURS).any():
        raise ValueError("a new colour that no example names")
    return out


OBJECT_FEATURES = ("size", "size-rank", "size-order", "shape", "holes", "border", "colour", "height", "width",
                   "hole-count", "square")


def object_features(grid: Grid, objs: list[Shape]) -> list[dict[str, object]]:
    """What a rule may recolour objects by: size, rank of size (largest, smallest, between), place in the
    order of sizes (0 for the largest, 1 for the next size down, ...), shape,
    whether it has holes (and how many) or touches the border, its colour, its height and width, and whether
    it is a solid square."""
    sizes = [o.size for o in objs]
    order = {size: i for i, size in enumerate(sorted(set(sizes), reverse=True))}
    h, w = grid.shape
    found = []
    for o in objs:
        box = o.mask[o.top:o.bottom, o.left:o.right]
        rank = "largest" if o.size == max(sizes) else "smallest" if o.size == min(sizes) else "between"
        holes = dsl.enclosed(~box)
        count = len(np.unique(label(holes.view(np.uint8), 4))) - 1 if holes.any() else 0
        found.append({"size": o.size, "size-rank": rank, "size-order": order[o.size],
                      "shape": (box.shape, box.tobytes()),
                      "holes": count > 0, "border": o.top == 0 or o.left == 0 or o.bottom == h
                      or o.right == w, "colour": int(grid[o.mask][0]), "height": o.bottom - o.top,
                      "width": o.right - o.left, "hole-count": count,
                      "square": box.shape[0] == box.shape[1] and bool(box.all())})
    return found


NUMERIC_FEATURES = ("size", "height", "width", "hole-count")
# the features a region of background is filled by, the likeliest first (whether it is enclosed, above all)
REGION_FEATURES = ("border", "square", "size-rank", "size-order", "shape", "size", "height", "width")


def general_rule(table: dict, feature: str) -> tuple[Callable[[object], int], str] | None:
    """For a numeric feature whose table gives two colours, a rule that also colours values no example
    shows: a threshold (the smaller values one colour, the larger the other), or else one value against
    all others. The rule and its text, or None."""
    colours = set(table.values())
    if feature not in NUMERIC_FEATURES or len(colours) != 2:
        return None
    low_colour, high_colour = table[min(table)], table[max(table)]
    split = min(v for v, c in table.items() if c == high_colour)
    if low_colour != high_colour and all((v < split) == (c == low_colour) for v, c in table.items()):
        def threshold(value: object, s: object = split, high: int = high_colour, low: int = low_colour) -> int:
            return high if value >= s else low
        return threshold, f"'{feature} >= {split}: {high_colour}, else {low_colour}'"
    for colour in sorted(colours):
        values = [v for v, c in table.items() if c == colour]
        if len(values) == 1:
            other = (colours - {colour}).pop()

            def one_value(value: object, v: object = values[0], c: int = colour, o: int = other) -> int:
                return c if value == v else o
            return one_value, f"'{feature} == {values[0]}: {colour}, else {other}'"
    return None


def feature_tables(train: Sequence[Grid], outputs: Sequence[Grid], parts: Callable[[Grid], tuple[Grid, list[Shape]]],
                   features: Sequence[str]) -> dict[str, dict]:
    """Per feature, the table from its values to the one colour each part (``parts``: the grid its features are
    read on, and its parts) of every example takes in the output, for the features whose values agree on a
    colour and give two or more colours; empty when some part is split into colours."""
    samples = []  # (features, new colour) of every training part
    for g, o in zip(train, outputs):
        read, objs = parts(g)
        for obj, feats in zip(objs, object_features(read, objs)):
            values = np.unique(o[obj.mask])
            if values.size != 1:
                return {}  # a part split into colours
            samples.append((feats, int(values[0])))
    tables = {}
    for feature in features:
        table: dict = {}
        if all(table.setdefault(feats[feature], colour) == colour for feats, colour in samples) \
                and len(set(table.values())) > 1:  # one colour for all is a colour map's job
            tables[feature] = table
    return tables


def _recoloured(tables: dict[str, dict], test: Sequence[Grid], conn: int,
                parts: Callable[[Grid], tuple[Grid, list[Shape]]], general: bool = False
                ) -> tuple[str, tuple[Grid, ...]] | None:
    """The first feature whose table (``feature_tables``) colours every part of the test grids (with
    ``general``: the first numeric feature whose ``general_rule`` does). Its text and the test grids it gives,
    or None."""
    if general:
        rules = [(f, *rule) for f, t in tables.items() if (rule := general_rule(t, f)) is not None]
    else:
        rules = [(f, t.__getitem__, dict(t) if f != "shape" else f"<{len(t)} shapes>") for f, t in tables.items()]
    if not rules:
        return None
    test_parts = []  # (grid, its parts, their features) of every test grid
    for g in test:
        read, objs = parts(g)
        test_parts.append((g, objs, object_features(read, objs)))
    for feature, colour_of, shown in rules:
        try:
            made = []
            for g, objs, features in test_parts:
                out = g.copy()
                for obj, feats in zip(objs, features):
                    out[obj.mask] = colour_of(feats[feature])  # KeyError: a value no example shows
                made.append(out)
        except KeyError:
            continue
        return f"{{}}, {conn}, {feature!r}, {shown})", tuple(made)
    return None


def fit_object_colours(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                       ) -> tuple[str, tuple[Grid, ...]] | None:
    """A rule that recolours whole objects by one of their features (the same rule on every example),
    background untouched: its text and the test grids it gives, or None."""
    if not all(g.shape == o.shape and np.array_equal(g == 0, o == 0) for g, o in zip(train, outputs)):
        return None
    tables: dict[int, dict[str, dict]] = {}  # per connectivity, read once when first needed
    for general in (False, True):  # a table that colours every test object first, under either connectivity
        for conn in (4, 8):
            def objects(g: Grid, c: int = conn) -> tuple[Grid, list[Shape]]:
                return g, shapes(g, c, False)
            if conn not in tables:
                tables[conn] = feature_tables(train, outputs, objects, OBJECT_FEATURES)
            fitted = _recoloured(tables[conn], test, conn, objects, general=general)
            if fitted is not None:
                return "recolour_objects(" + fitted[0], fitted[1]
    return None


def fit_region_colours(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                       ) -> tuple[str, tuple[Grid, ...]] | None:
    """A rule that fills whole regions of background (4-connected) by one of their features (size and its
    rank, shape, whether they touch the border, ...), the same rule on every example, every other cell
    untouched: its text and the test grids it gives, or None. 0 as a region's colour leaves it empty."""
    if not all(g.shape == o.shape and np.array_equal(g[g != 0], o[g != 0]) for g, o in zip(train, outputs)) \
            or all(np.array_equal(g, o) for g, o in zip(train, outputs)):  # some example may show nothing to fill
        return None

    def regions(g: Grid) -> tuple[Grid, list[Shape]]:
        read = (g == 0).astype(np.uint8)
        return read, shapes(read, 4, False)

    tables = feature_tables(train, outputs, regions, REGION_FEATURES)
    fitted = _recoloured(tables, test, 4, regions) or _recoloured(tables, test, 4, regions, general=True)
    return None if fitted is None else ("fill_regions(" + fitted[0], fitted[1])


OUTSIDE = -1  # a stamp's cell beyond the grid's edge, or on another object: nothing is painted there
OWN = 16  # a stamp's code for a cell of the object itself, plus its new colour


def _object_key(grid: Grid, obj: Shape) -> tuple:
    """An object's colour and exact shape: the objects that share a stamp."""
    box = obj.mask[obj.top:obj.bottom, obj.left:obj.right]
    return int(grid[obj.top, obj.left:obj.right][box[0]][0]), box.shape, box.tobytes()


def _stamp_windows(grid: Grid, output: Grid | None, radius: int) -> list[tuple[tuple, Shape, np.ndarray]]:
    """Each object with its key and the window of its box grown by ``radius``: per cell the output colour
    of a background cell, ``OWN`` plus it for the object's own cells, ``OUTSIDE`` elsewhere (``output``
    None: the codes say only where painting is allowed)."""
    objs = shapes(grid, 8, False)
    if len(objs) > MAX_MOVING:
        raise ValueError("too many objects")
    out = grid if output is None else output
    padded_grid = np.pad(grid.astype(np.int16), radius, constant_values=OUTSIDE)
    padded_out = np.pad(out.astype(np.int16), radius, constant_values=OUTSIDE)
    windows = []
    for obj in objs:
        rows = slice(obj.top, obj.bottom + 2 * radius)
        cols = slice(obj.left, obj.right + 2 * radius)
        own = np.pad(obj.mask, radius)[rows, cols]
        g, o = padded_grid[rows, cols], padded_out[rows, cols]
        windows.append((_object_key(grid, obj), obj, np.where(own, OWN + o, np.where(g == 0, o, OUTSIDE))))
    return windows


def learn_object_stamps(train: Sequence[Grid], outputs: Sequence[Grid], radius: int) -> dict[tuple, np.ndarray]:
    """Per object key, the window every object of that key paints: a colour where all its objects' windows
    agree (``OWN`` plus a colour: its own cells take it), ``OUTSIDE`` where they do not or show background."""
    seen: dict[tuple, list[np.ndarray]] = {}
    for g, o in zip(train, outputs):
        for key, _, window in _stamp_windows(g, o, radius):
            seen.setdefault(key, []).append(window)
    stamps = {}
    for key, windows in seen.items():
        stack = np.stack(windows)
        known = stack != OUTSIDE
        low = np.where(known, stack, 99).min(axis=0)
        high = np.where(known, stack, -99).max(axis=0)
        agreed = known.any(axis=0) & (low == high)
        stamps[key] = np.where(agreed & (low != 0), low, OUTSIDE)
    return stamps


def apply_object_stamps(grid: Grid, stamps: dict[tuple, np.ndarray], radius: int) -> Grid | None:
    """Each object paints its key's stamp around itself; None when an object's key has no stamp or two
    stamps paint one cell two colours."""
    h, w = grid.shape
    painted = np.full((h + 2 * radius, w + 2 * radius), OUTSIDE, dtype=np.int16)
    for key, obj, window in _stamp_windows(grid, None, radius):
        stamp = stamps.get(key)
        if stamp is None:
            return None
        colours = np.where(stamp >= OWN, stamp - OWN, stamp)
        paint = (stamp != OUTSIDE) & (window != OUTSIDE)
        rows = slice(obj.top, obj.bottom + 2 * radius)
        cols = slice(obj.left, obj.right + 2 * radius)
        region = painted[rows, cols]
        if np.any(paint & (region != OUTSIDE) & (region != colours)):
            return None
        region[paint] = colours[paint]
    painted = painted[radius:radius + h, radius:radius + w]
    return np.where(painted != OUTSIDE, painted, grid).astype(np.uint8)


def _near_objects(grid: Grid, cells: np.ndarray, radius: int) -> bool:
    """True when every cell of the mask ``cells`` lies within ``radius`` (rows and columns) of a cell
    that is not background."""
    near = grid != 0
    for _ in range(radius):
        near = dsl.dilate(near)
    return not np.any(cells & ~near)


def fit_object_stamps(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                      ) -> tuple[str, tuple[Grid, ...]] | None:
    """Stamps by object: every object of one colour and shape paints one pattern around itself (and may
    recolour itself), learned from the examples (radius 1, then 2); its text and the test grids, or None
    when no radius fits or a test object's colour and shape no example shows."""
    if any(g.shape != o.shape or not _near_objects(g, o != g, 2) for g, o in zip(train, outputs)):
        return None
    for radius in (1, 2):
        try:
            stamps = learn_object_stamps(train, outputs, radius)
            made = [apply_object_stamps(g, stamps, radius) for g in train]
            if not all(m is not None and np.array_equal(m, o) for m, o in zip(made, outputs)):
                continue
            tests = tuple(apply_object_stamps(g, stamps, radius) for g in test)
        except ValueError:
            return None
        if any(t is None for t in tests):
            return None
        return f"stamp_objects({{}}, {radius}, <{len(stamps)} stamps>)", tests
    return None


def _crop_features(grid: Grid, obj: Shape) -> dict[str, int]:
    """Numbers an object may be picked by: the most, the fewest, or the only one with its value (among them
    its cells of each colour: the box with the most red cells)."""
    box = obj.mask[obj.top:obj.bottom, obj.left:obj.right]
    patch = obj.patch(grid)
    counts = np.bincount(patch[box], minlength=NUM_COLOURS + 1)
    present = counts[counts > 0]
    return {"size": obj.size, "height": box.shape[0], "width": box.shape[1], "area": box.size,
            "colours": obj.colours, "holes": int(dsl.enclosed(~box).sum()), "empty": int(box.size - obj.size),
            "minority": int(present.min()) if present.size > 1 else 0,
            "symmetric": int(np.array_equal(patch, patch[:, ::-1])) + 2 * int(np.array_equal(patch, patch[::-1])),
            "colour": int(np.argmax(counts)),
            **{f"cells-{c}": int(counts[c]) for c in range(1, NUM_COLOURS)}}


def _pick(values: list[int], which: str) -> int | None:
    """The index of the one object with the largest, smallest or a unique value; None on a tie."""
    if which == "unique":
        alone = [i for i, v in enumerate(values) if values.count(v) == 1]
        return alone[0] if len(alone) == 1 and len(values) > 2 else None
    best = max(values) if which == "max" else min(values)
    chosen = [i for i, v in enumerate(values) if v == best]
    return chosen[0] if len(chosen) == 1 else None


def _counts(grid: Grid) -> dict[str, int]:
    """Numbers of a grid an output may be drawn from: its objects (by connectivity and colours), colours,
    cells that are not background, cells of its least common colour, and of each colour its objects, its
    objects of more than one cell (blocks) and its cells."""
    found = {f"objects-{conn}-{'any' if multi else 'one'}-colour": len(shapes(grid, conn, multi))
             for conn, multi in ((4, False), (8, False), (8, True), (4, True))}
    counts = dsl.colour_counts(grid, exclude=[0])
    found["colours"] = len(counts)
    found["cells"] = int((grid != 0).sum())
    found["rarest-cells"] = min(counts.values()) if counts else 0
    objects_of: Counter = Counter()
    blocks_of: Counter = Counter()
    for o in shapes(grid, 4, False):
        colour = int(grid[o.top:o.bottom, o.left:o.right][o.mask[o.top:o.bottom, o.left:o.right]][0])
        objects_of[colour] += 1
        blocks_of[colour] += o.size > 1
    for colour in range(1, NUM_COLOURS):
        found[f"objects-of-{colour}"] = objects_of[colour]
        found[f"blocks-of-{colour}"] = blocks_of[colour]
        found[f"cells-of-{colour}"] = counts.get(colour, 0)
    return found


_KINDS = ("main-colour", "colour-set")


def _kinds(grid: Grid) -> dict[str, object]:
    """What a grid is, for a table from inputs to outputs (never drawn as a number): its most common colour
    that is not background, and the set of its colours."""
    return {"main-colour": dsl.most_common_colour(grid, exclude=[0]) if (grid != 0).any() else 0,
            "colour-set": tuple(dsl.colours(grid, exclude=[0]))}


def _counted(n: int, layout: str, colour: int, shape: tuple[int, int]) -> Grid | None:
    """The grid ``layout`` draws for the number ``n`` in ``colour`` (None when it cannot): a row or a column
    of n cells, the diagonal of an n x n square, or the first n cells in reading order of a grid of
    ``shape`` (the rest background)."""
    if n < 1 or n > MAX_SIDE * MAX_SIDE:
        return None
    if layout == "row":
        return np.full((1, n), colour, np.uint8) if n <= MAX_SIDE else None
    if layout == "column":
        return np.full((n, 1), colour, np.uint8) if n <= MAX_SIDE else None
    if layout == "diagonal":
        return (np.eye(n, dtype=np.uint8) * np.uint8(colour)) if n <= MAX_SIDE else None
    if n > shape[0] * shape[1]:
        return None
    out = np.zeros(shape[0] * shape[1], np.uint8)
    out[:n] = colour
    return out.reshape(shape)


def fit_count(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
              ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output drawn from one number of its grid (``_counts``): a row, a column or a
    diagonal that long, or that many cells of an output-sized grid in reading order (where the outputs are not
    all the sizes of their inputs), in the one colour
    of every output (or the grid's most common colour); else a table from the number to the output grid
    when two numbers give different outputs, one number is met on two examples with the same output and
    the examples show the test's numbers, or the test's kinds of grid (``_kinds``: the same colour, say). Its
    text and the test grids it gives, or None."""
    colours = []
    for o in outputs:
        present = dsl.colours(o, exclude=[0])
        colours.append(present[0] if len(present) == 1 else 0 if not present else None)
    if any(c is None for c in colours):
        colours = None
    sizes = {o.shape for o in outputs}
    layouts = ("row", "column", "diagonal", "reading") if len(sizes) > 1 else ("reading",)
    # an output the size of its input is drawn from a number by a table only: a few cells in reading order
    # would fit any task of single cells
    same_sizes = all(g.shape == o.shape for g, o in zip(train, outputs))
    train_counts = [_kinds(g) | _counts(g) for g in train]  # what a grid is before how many
    test_counts = [_kinds(g) | _counts(g) for g in test]
    colour_rules = []
    if colours is not None and len(set(colours)) == 1:
        colour_rules.append(("constant", [colours[0]] * len(train), [colours[0]] * len(test)))
    if colours is not None:
        major = [dsl.most_common_colour(g, exclude=[0]) if (g != 0).any() else 0 for g in (*train, *test)]
        colour_rules.append(("most-common", major[:len(train)], major[len(train):]))
    for feature in train_counts[0]:
        numbers = [c[feature] for c in train_counts]
        tests = [c[feature] for c in test_counts]
        for layout in () if feature in _KINDS or same_sizes else layouts:
            for rule, made_colours, test_colours in colour_rules:
                shape = outputs[0].shape
                if all((m := _counted(n, layout, c, shape)) is not None and m.shape == o.shape
                       and np.array_equal(m, o) for n, c, o in zip(numbers, made_colours, outputs)):
                    made = [_counted(n, layout, c, shape) for n, c in zip(tests, test_colours)]
                    if all(m is not None for m in made):
                        return f"counted({{}}, {feature!r}, layout={layout!r}, colour={rule!r})", tuple(made)
        table: dict[object, bytes] = {}
        if any(table.setdefault(n, o.tobytes() + bytes(o.shape)) != o.tobytes() + bytes(o.shape)
               for n, o in zip(numbers, outputs)):
            continue
        # a number met twice with the same output is evidence; distinct numbers alone would fit any task
        if len(table) < len(numbers) and len(set(table.values())) > 1 and all(n in table for n in tests):
            by_number = {n: o for n, o in zip(numbers, outputs)}
            return (f"count_table({{}}, {feature!r}, <{len(table)} outputs>)",
                    tuple(by_number[n].copy() for n in tests))
    return None


def _object_colour(grid: Grid, obj: Shape, which: str) -> Grid | None:
    """A 1x1 grid of the object's most common colour (``which`` "colour") or of its least common one
    ("minority", None when it has one colour)."""
    counts = np.bincount(obj.patch(grid)[obj.mask[obj.top:obj.bottom, obj.left:obj.right]], minlength=NUM_COLOURS + 1)
    counts[0] = 0
    present = np.flatnonzero(counts)
    if which == "colour":
        return np.array([[np.argmax(counts)]], dtype=np.uint8) if present.size else None
    if present.size < 2:
        return None
    return np.array([[min(present.tolist(), key=lambda c: (counts[c], c))]], dtype=np.uint8)


COLOUR_ORDERS = ("most-cells", "fewest-cells", "top-down", "left-right", "along")


def _colour_orders(grid: Grid) -> dict[str, tuple[list[int], str]]:
    """The grid's colours (not background) in the orders a strip may list them, each with the strip's
    layout ('' where the rule gives none): by their cells, most or fewest first; by their mean row or
    column; and "along", by the mean position on the axis where the colours lie apart the most, laid
    out that way. An order with a tie is left out: nothing says which colour comes first."""
    present = dsl.colours(grid, exclude=[0])
    if not present:
        return {}
    rows, cols = np.indices(grid.shape)
    cells = {c: int((grid == c).sum()) for c in present}
    mean_row = {c: float(rows[grid == c].mean()) for c in present}
    mean_col = {c: float(cols[grid == c].mean()) for c in present}
    across = max(mean_col.values()) - min(mean_col.values()) > max(mean_row.values()) - min(mean_row.values())
    keys = {"most-cells": ({c: -n for c, n in cells.items()}, ""), "fewest-cells": (cells, ""),
            "top-down": (mean_row, ""), "left-right": (mean_col, ""),
            "along": ((mean_col, "row") if across else (mean_row, "column"))}
    return {name: (sorted(present, key=key.__getitem__), layout) for name, (key, layout) in keys.items()
            if len(set(key.values())) == len(present)}


LINE_KEYS = ("line", "uniform")  # a line as it is; whether it is of one colour


def _line_key(line: np.ndarray, key: str) -> tuple:
    """A line's entry in a line table: its length, and the line itself or whether it is of one colour."""
    return len(line), line.tobytes() if key == "line" else bool((line == line[0]).all())


def _line_table(pairs: Sequence[tuple[Grid, Grid]], key: str) -> dict[tuple, bytes] | None:
    """From each input row's key to the output's row, when no two rows of the same key disagree."""
    table: dict[tuple, bytes] = {}
    for grid, output in pairs:
        for line, out in zip(grid, output):
            if table.setdefault(_line_key(line, key), out.tobytes()) != out.tobytes():
                return None
    return table


def fit_line_table(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                   ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each row (or each column) of an output decided by the same line of its input alone, through a table the
    examples fill: from the line as it is, or from whether it is of one colour, to the output's line. Fits when
    the inputs and outputs have the same sizes, the lines disagree on nothing, some key is met twice, the
    outputs are not the inputs, and the test's lines all have keys the examples show. Text and test grids, or
    None."""
    if (any(g.shape != o.shape for g, o in zip(train, outputs))
            or all(np.array_equal(g, o) for g, o in zip(train, outputs))):
        return None
    for axis, name in ((0, "rows"), (1, "columns")):
        pairs = [(g, o) if axis == 0 else (g.T, o.T) for g, o in zip(train, outputs)]
        tests = [g if axis == 0 else g.T for g in test]
        for key in LINE_KEYS:
            table = _line_table(pairs, key)
            # every line met once: a table that fits anything
            if table is None or len(table) == sum(len(g) for g, _ in pairs):
                continue
            keys = [[_line_key(line, key) for line in g] for g in tests]
            if all(k in table for ks in keys for k in ks):
                made = [np.stack([np.frombuffer(table[k], np.uint8) for k in ks]) for ks in keys]
                return (f"line_table({{}}, {name}, {key!r}, <{len(table)} lines>)",
                        tuple(m if axis == 0 else m.T.copy() for m in made))
    return None


def fit_colour_strip(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                     ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output one row or one column listing its grid's colours in an order (``_colour_orders``),
    all of them or all but the first: its text and the test strips, or None."""
    if not all(min(o.shape) == 1 for o in outputs):
        return None
    train_orders = [_colour_orders(g) for g in train]
    test_orders = [_colour_orders(g) for g in test]

    def strip(orders: dict[str, tuple[list[int], str]], name: str, skip: int, layout: str) -> Grid | None:
        if name not in orders or not orders[name][0][skip:]:
            return None
        listed = np.array(orders[name][0][skip:], dtype=np.uint8)
        return listed[None, :] if (orders[name][1] or layout) == "row" else listed[:, None]

    for name in COLOUR_ORDERS:
        for skip in (0, 1):
            for layout in ("row", "column") if name != "along" else ("",):
                if all((m := strip(o, name, skip, layout)) is not None and np.array_equal(m, out)
                       for o, out in zip(train_orders, outputs)):
                    made = tuple(strip(o, name, skip, layout) for o in test_orders)
                    if all(m is not None for m in made):
                        return f"colour_strip({{}}, {name!r}, skip={skip}, layout={layout or 'along'!r})", made
    return None


def fit_object_crop(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                    ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output is the box of one object of its grid (with what else lies in the box, or the object
    alone), or, when every output is one cell of a colour that varies, that object's most or least common
    colour: a rule that picks that object on every example by one of its numbers (the largest, the
    smallest, the only one of its value), its text and the crops it gives for the test grids, or None."""
    if any(o.shape[0] > g.shape[0] or o.shape[1] > g.shape[1] for g, o in zip(train, outputs)):
        return None
    hows = ["box", "patch"]
    if all(o.shape == (1, 1) for o in outputs) and len({int(o[0, 0]) for o in outputs}) > 1:
        hows += ["colour", "minority"]
    for conn, multi in ((8, True), (4, False), (8, False), (4, True)):
        for how in hows:
            def crop(g: Grid, o: Shape, h=how) -> Grid | None:
                return o.patch(g) if h == "patch" else o.box_crop(g) if h == "box" else _object_colour(g, o, h)
            examples = []
            for g, out in zip(train, outputs):
                objs = shapes(g, conn, multi)
                if len(objs) > MAX_MOVING:
                    break
                right = {i for i, o in enumerate(objs) if (how in ("colour", "minority")
                                                          or (o.bottom - o.top, o.right - o.left) == out.shape)
                         and np.array_equal(crop(g, o), out)}
                if not right:
                    break
                examples.append(([_crop_features(g, o) for o in objs], right))
            else:
                tests = [(g, shapes(g, conn, multi)) for g in test]
                tests = [(g, objs, [_crop_features(g, o) for o in objs]) for g, objs in tests]
                for feature in _crop_features(train[0], shapes(train[0], conn, multi)[0]):
                    if feature == "colour" and how in ("colour", "minority"):
                        continue  # the colour of the object picked by its colour: any colour rule fits
                    for which in ("max", "min", "unique"):
                        if all(_pick([f[feature] for f in feats], which) in right for feats, right in examples):
                            picks = [_pick([f[feature] for f in feats], which) for _, _, feats in tests]
                            if any(p is None for p in picks):
                                continue
                            made = tuple(crop(g, objs[p]) for (g, objs, _), p in zip(tests, picks))
                            if any(m is None for m in made):
                                continue
                            return (f"crop_picked({{}}, {conn}, {multi}, {feature!r}, {which!r}, {how!r})", made)
    return None


def _part_features(part: Grid) -> dict[str, int]:
    """Numbers a part may be picked by: the most, the fewest, or the only one with its value."""
    coloured = part[part != 0]
    counts = np.bincount(coloured, minlength=NUM_COLOURS + 1)
    present = counts[counts > 0]
    square = part.shape[0] == part.shape[1]
    symmetric = (int(np.array_equal(part, part[:, ::-1])) + 2 * int(np.array_equal(part, part[::-1]))
                 + 4 * int(square and np.array_equal(part, part.T)))
    return {"cells": int(coloured.size), "colours": int(present.size), "symmetric": symmetric,
            "minority": int(present.min()) if present.size > 1 else 0,
            "colour": int(np.argmax(counts)) if coloured.size else 0}


def _part_layout(grid: Grid, output: Grid) -> tuple[int, int] | None:
    """Parts down and across when the grid is a table of parts the size of the output (one-cell separators
    allowed), at least two of them."""
    counts = []
    for side, part in zip(grid.shape, output.shape):
        fits = [n for n in (side // part, (side + 1) // (part + 1)) if n >= 1 and (n * part == side or
                                                                               n * part + n - 1 == side)]
        if not fits:
            return None
        counts.append(fits[0])
    return (counts[0], counts[1]) if counts[0] * counts[1] >= 2 else None


def _part_cuts(grid: Grid, output: Grid) -> list[tuple[str, Callable[[Grid], list[Grid]]]]:
    """The ways a grid may be cut into parts the size of its output: the blocks between separator lines,
    and equal parts laid out as this grid's are, when the output's size divides it."""
    cuts: list[tuple[str, Callable[[Grid], list[Grid]]]] = [("parts_by_lines({})", parts_by_lines)]
    layout = _part_layout(grid, output)
    if layout is not None:
        cuts.append((f"parts_equal({{}}, {layout[0]}, {layout[1]})",
                     lambda g, a=layout[0], b=layout[1]: parts_equal(g, a, b)))
    return cuts


def _wins(parts_outputs: Sequence[tuple[list[Grid], Grid]]) -> dict[int, set[int]] | None:
    """Which colours each colour covers when parts are laid over each other to give the outputs: where parts
    have colours, the output shows one of them, which covers the others there; where none has, the output
    shows background. None when an output shows anything else."""
    wins: dict[int, set[int]] = {}
    for parts, out in parts_outputs:
        if any(p.shape != out.shape for p in parts):
            return None
        stack = np.stack(parts)
        present = stack != 0
        covered = present.any(axis=0)
        if np.any(out[~covered] != 0) or np.any(covered & ~(present & (stack == out[None])).any(axis=0)):
            return None
        for colour in np.unique(out[covered]):
            here = out == colour
            losers = np.unique(stack[:, here][present[:, here]])
            wins.setdefault(int(colour), set()).update(int(c) for c in losers if c != colour)
    return wins


def colour_priority(wins: dict[int, set[int]]) -> list[int] | None:
    """The colours in an order (first on top) that keeps every win, ties by colour number; None when the
    wins go round in a cycle (red over blue and blue over red)."""
    order: list[int] = []
    colours = set(wins) | {c for losers in wins.values() for c in losers}
    while colours:
        free = sorted(c for c in colours if not any(c in wins.get(d, ()) for d in colours if d != c))
        if not free:
            return None
        order.append(free[0])
        colours.remove(free[0])
    return order


def _taught(wins: dict[int, set[int]], order: Sequence[int], parts: list[Grid]) -> bool:
    """Whether every two colours that meet in a cell of these parts were ranked by the examples, directly
    or through a third colour: otherwise their overlay would be a guess."""
    beats = {c: set(wins.get(c, ())) for c in order}
    for colour in reversed(order):  # lowest first: what a colour beats, directly or through another
        for other in list(beats[colour]):
            beats[colour] |= beats[other]
    stack = np.stack(parts)
    present = {int(c): np.any(stack == c, axis=0) for c in np.unique(stack[stack != 0])}
    for a in present:
        for b in present:
            if a < b and np.any(present[a] & present[b]):
                if a not in beats or b not in beats or not (b in beats[a] or a in beats[b]):
                    return False
    return True


def overlay_by_priority(parts: list[Grid], order: Sequence[int]) -> Grid:
    """Parts of one shape laid over each other, a cell taking the first colour of ``order`` that any part
    has there (background where none has one); ValueError when parts differ in shape or show a colour that
    ``order`` does not rank."""
    if len({p.shape for p in parts}) != 1:
        raise ValueError("parts differ in shape")
    stack = np.stack(parts)
    if not set(np.unique(stack[stack != 0]).tolist()) <= set(order):
        raise ValueError("a colour the order does not rank")
    out = np.zeros_like(parts[0])
    for colour in reversed(order):
        out[np.any(stack == colour, axis=0)] = colour
    return out


def fit_part_overlay(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                     ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output is its grid's parts (the blocks between separator lines, or equal parts the size of the
    output) laid over each other, where they overlap the colour that comes first in an order the examples
    teach: the text and the test outputs, or None (also when the test parts bring together two colours
    the examples never ranked)."""
    for text, cut in _part_cuts(train[0], outputs[0]):
        try:
            cut_train = [cut(g) for g in train]
            cut_test = [cut(g) for g in test]
        except ValueError:
            continue
        if any(len(parts) < 2 for parts in cut_train + cut_test):
            continue
        wins = _wins(list(zip(cut_train, outputs)))
        order = None if wins is None else colour_priority(wins)
        if order is None or not all(_taught(wins, order, parts) for parts in cut_test):
            continue
        try:
            made = tuple(overlay_by_priority(parts, order) for parts in cut_test)
        except ValueError:
            continue
        return (f"overlay_by_priority({text}, {order})", made)
    return None


def fit_part_pick(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                  ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output is one part of its grid (the blocks between separator lines, or equal parts laid out as
    the first example's): a rule that picks that part on every example by one of its numbers (the largest,
    the smallest, the only one of its value), its text and the parts it picks in the test grids, or None."""
    for text, cut in _part_cuts(train[0], outputs[0]):
        try:
            first = cut(train[0])
            if not any(p.shape == outputs[0].shape and np.array_equal(p, outputs[0]) for p in first):
                continue  # the first output is no part of its grid: the other grids need not be cut
            cut_train = [first] + [cut(g) for g in train[1:]]
            cut_test = [cut(g) for g in test]
        except ValueError:
            continue
        examples = []
        for parts, out in zip(cut_train, outputs):
            right = {i for i, p in enumerate(parts) if p.shape == out.shape and np.array_equal(p, out)}
            if not right:
                break
            examples.append(([_part_features(p) for p in parts], right))
        else:
            features = [[_part_features(p) for p in parts] for parts in cut_test]
            for feature in examples[0][0][0]:
                for which in ("max", "min", "unique"):
                    if all(_pick([f[feature] for f in feats], which) in right for feats, right in examples):
                        picks = [_pick([f[feature] for f in feats], which) for feats in features]
                        if any(p is None for p in picks):
                            continue
                        return (f"pick_part({text}, {feature!r}, {which!r})",
                                tuple(parts[p].copy() for parts, p in zip(cut_test, picks)))
    return None


_TILE_MOVES: tuple[tuple[str, Callable[[Grid], Grid]], ...] = (
    ("grid", lambda g: g), ("flip_h", dsl.flip_h), ("flip_v", dsl.flip_v), ("rotate2", lambda g: dsl.rotate(g, 2)),
    ("transpose", dsl.transpose), ("anti_transpose", dsl.anti_transpose), ("rotate1", lambda g: dsl.rotate(g, 1)),
    ("rotate3", lambda g: dsl.rotate(g, 3)), ("empty", np.zeros_like))


def _blocks(grid: Grid, kr: int, kc: int) -> np.ndarray:
    """The kr x kc blocks of a grid, one row each, in reading order."""
    h, w = grid.shape[0] // kr, grid.shape[1] // kc
    return grid.reshape(h, kr, w, kc).transpose(0, 2, 1, 3).reshape(h * w, kr * kc)


def _joined(blocks: np.ndarray, rows: int, cols: int, kr: int, kc: int) -> Grid:
    """The inverse of ``_blocks``: rows x cols blocks of kr x kc cells (one row each, reading order) as a grid."""
    return np.ascontiguousarray(blocks.reshape(rows, cols, kr, kc).transpose(0, 2, 1, 3).reshape(rows * kr, cols * kc),
                                dtype=np.uint8)


def fit_tile_transforms(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                        ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each output a kr x kc arrangement of copies of its grid, each block turned or flipped its own way
    (or left empty), the same way on every example: its text and the test grids, or None."""
    ratio = _fitting_ratio([g.shape for g in train], [o.shape for o in outputs])
    if ratio is None or ratio[0] != "up":
        return None
    _, kr, kc = ratio
    moved = [[move(g) for _, move in _TILE_MOVES] for g in train]  # each example's grid under every move
    cut = [_blocks(o, *g.shape) for g, o in zip(train, outputs)]
    chosen = []  # per block of the output, the first move that gives it on every example
    for block in range(kr * kc):
        fits = (k for k in range(len(_TILE_MOVES)) if all(
            m[k].shape == g.shape and np.array_equal(c[block], m[k].ravel()) for g, m, c in zip(train, moved, cut)))
        k = next(fits, None)
        if k is None:
            return None
        chosen.append(k)
    made = []
    for g in test:
        _check_side(g.shape[0] * kr, g.shape[1] * kc)
        blocks = [_TILE_MOVES[k][1](g) for k in chosen]
        if any(b.shape != g.shape for b in blocks):
            return None
        made.append(_joined(np.stack([b.ravel() for b in blocks]), kr, kc, *g.shape))
    names = [_TILE_MOVES[k][0] for k in chosen]
    return f"tile_transforms({{}}, {kr}, {kc}, {names})", tuple(made)


def fit_colour_blocks(train: Sequence[Grid], outputs: Sequence[Grid], test: Sequence[Grid]
                      ) -> tuple[str, tuple[Grid, ...]] | None:
    """Each cell of the grid blown up to a block that its colour decides, by a table the examples spell
    out and that covers the test grids' colours: a fixed kr x kc block, or (when every output is its
    grid's size squared) the grid itself or an empty block. Its text and the test grids, or None. Grids
    of one cell are left out: for them the table would only be a lookup from each example to its output."""
    if any(g.size < 2 for g in train):
        return None
    ratio = _fitting_ratio([g.shape for g in train], [o.shape for o in outputs])
    squared = all(o.shape == (g.shape[0] ** 2, g.shape[1] ** 2) for g, o in zip(train, outputs))
    if not squared and (ratio is None or ratio[0] != "up"):
        return None
    table: dict[int, object] = {}  # colour -> "grid", "empty" or a fixed block (one row of kr * kc cells)
    for g, o in zip(train, outputs):
        kr, kc = g.shape if squared else ratio[1:]
        blocks = _blocks(o, kr, kc)
        for colour in np.unique(g).tolist():
            rows = blocks[g.ravel() == colour]
            if (rows != rows[0]).any():
                return None
            if squared:
                kind = "grid" if np.array_equal(rows[0], g.ravel()) else "empty" if not rows[0].any() else None
                if kind is None or table.setdefault(colour, kind) != kind:
                    return None
            elif not np.array_equal(table.setdefault(colour, rows[0]), rows[0]):
                return None
    made = []
    for g in test:
        if any(c not in table for c in np.unique(g).tolist()):
            return None
        kr, kc = g.shape if squared else ratio[1:]
        _check_side(g.shape[0] * kr, g.shape[1] * kc)
        fixed = {c: (g.ravel() if b == "grid" else np.zeros(g.size, np.uint8)) if isinstance(b, str) else b
                 for c, b in table.items()}
        made.append(_joined(np.stack([fixed[c] for c in g.ravel().tolist()]), g.shape[0], g.shape[1], kr, kc))
    if squared:
        shown = {c: b for c, b in sorted(table.items()) if b == "grid"}
        return f"blocks_by_colour({{}}, 'the grid where', {sorted(shown)})", tuple(made)
    return f"blocks_by_colour({{}}, {ratio[1]}, {ratio[2]}, <{len(table)} blocks>)", tuple(made)


def _bands(spans: list[tuple[int, int]]) -> list[int]:
    """Each span's band when spans that overlap (by start order) share a band: the rows or columns of a
    layout."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    bands, band, end = [0] * len(spans), -1, -1
    for i in order:
        start, stop = spans[i]
        if start >= end:
            band += 1
        end = max(end, stop)
        bands[i] = band
    return bands


def _in_squares(grid: Grid) -> Grid:
    """The grid with only the cells that lie in some 2 x 2 square of one colour (specks and lines gone)."""
    same = (grid[:-1, :-1] == grid[1:, :-1]) & (grid[:-1, :-1] == grid[:-1, 1:]) & (grid[:-1, :-1] == grid[1:, 1:])
    keep = np.zeros(grid.shape, dtype=bool)
    for dr in (0, 1):
        for dc in (0, 1):
            keep[dr:dr + same.shape[0], dc:dc + same.shape[1]] |= same
    return np.where(keep, grid, 0).astype(np.uint8)


def block_layout(grid: Grid) -> Grid:
    """The rectangles of one colour (at least 2 x 2, specks around them ignored) as one cell each, laid out
    by the rows and columns they share: the picture's plan."""
    blocks = _in_squares(grid)
    objs = [o for o in shapes(blocks, 4, False)
            if o.size >= 0.9 * (o.bottom - o.top) * (o.right - o.left)]
    if any(min(o.bottom - o.top, o.right - o.left) >= 3 for o in objs):  # 2 x 2 specks beside larger blocks
        objs = [o for o in objs if min(o.bottom - o.top, o.right - o.left) >= 3]
    if not objs:
        raise ValueError("no solid rectangles")
    rows = _bands([(o.top, o.bottom) for o in objs])
    cols = _bands([(o.left, o.right) for o in objs])
    out = np.zeros((max(rows) + 1, max(cols) + 1), dtype=np.uint8)
    for o, r, c in zip(objs, rows, cols):
        if out[r, c]:
            raise ValueError("two rectangles in one place of the plan")
        out[r, c] = blocks[o.mask][0]
    return out


def valid_grid(grid) -> bool:
    return (isinstance(grid, np.ndarray) and grid.ndim == 2 and 1 <= grid.shape[0] <= MAX_SIDE
            and 1 <= grid.shape[1] <= MAX_SIDE)


# --------------------------------------------------------------------------------------------------
# Candidates assembled from partial results


class Layers:
    """States that are right wherever they are not background: each draws part of every training
    output and nothing wrong. When no program fits, a few of them laid over one another may cover every
    cell of the outputs that is not background; their test grids laid over one another in the same
    order are then a candidate.

    A state that paints NEW is used with NEW read as the one output colour under its NEW cells (when
    that colour is the same on every example), so that two steps painting two different colours can
    each give one layer."""

    MAX_PARTS = 4  # layers in one assembly: more would fit the examples by accident

    def __init__(self, outputs: Sequence[Grid], limit: int):
        self.outputs = outputs
        self.limit = limit
        self.target = np.concatenate([o.ravel() != 0 for o in outputs])
        self.covers: list[np.ndarray] = []
        self.seen: set[bytes] = set()
        self.made: list[tuple[str, int, tuple[Grid, ...]]] = []

    def offer(self, train: Sequence[Grid], test: Sequence[Grid], text: str, depth: int) -> None:
        """Keep the state as a layer when it draws something right and nothing wrong on every example."""
        if len(self.covers) >= self.limit or not self.target.any():
            return
        if any(g.shape != o.shape for g, o in zip(train, self.outputs)):
            return
        new_cells = [g == NEW for g in train]
        if any(m.any() for m in new_cells):
            under = np.unique(np.concatenate([o[m] for o, m in zip(self.outputs, new_cells)]))
            if under.size != 1 or under[0] == 0:
                return
            colour = np.uint8(under[0])
            train = [np.where(m, colour, g) for g, m in zip(train, new_cells)]
            test = [np.where(g == NEW, colour, g).astype(np.uint8) for g in test]
            text = f"recolour({text}, {{{NEW}: {int(colour)}}})"
        if any((g.max() >= NEW) for g in test):
            return
        for g, o in zip(train, self.outputs):
            if ((g != 0) & (g != o)).any():
                return  # draws a wrong cell
        cover = np.concatenate([g.ravel() != 0 for g in train])
        if not cover.any() or cover.all() and self.target.all():
            return
        key = cover.tobytes()
        if key in self.seen:
            return  # a simpler layer draws the same cells
        self.seen.add(key)
        self.covers.append(cover)
        self.made.append((text, depth, tuple(test)))

    def assemble(self) -> Program | None:
        """Greedily the layer that covers the most cells still uncovered (the simplest on a tie) until
        every output cell that is not background is covered; None when the layers cannot cover them all
        within MAX_PARTS, or when the chosen layers' test grids differ in shape."""
        if not self.covers:
            return None
        covers = np.stack(self.covers)
        covered = np.zeros_like(self.target)
        chosen: list[int] = []
        while len(chosen) < self.MAX_PARTS and not np.array_equal(covered, self.target):
            gain = (covers & ~covered).sum(axis=1)
            best = int(np.argmax(gain))
            if gain[best] == 0:
                return None
            chosen.append(best)
            covered |= covers[best]
        if not np.array_equal(covered, self.target) or len(chosen) < 2:
            return None
        parts = [self.made[i] for i in chosen]
        outputs = []
        for index in range(len(parts[0][2])):
            grids = [p[2][index] for p in parts]
            if len({g.shape for g in grids}) != 1:
                return None
            out = np.zeros_like(grids[0])
            for g in grids:
                out = np.where(out == 0, g, out)
            outputs.append(out.astype(np.uint8))
        text = "assemble(" + ", ".join(p[0] for p in parts) + ")"
        return Program(text, max(p[1] for p in parts) + len(parts), tuple(outputs))


# --------------------------------------------------------------------------------------------------
# The search


# How often a rung alarm rings again until its StepTimeout lands in the step: one raised while Python runs
# a weakref callback, a __del__ or a garbage-collector callback is reported as unraisable and lost, and the
# step would run on
ALARM_REPEAT_SECONDS = 0.02


@dataclass
class _Alarm:
    """The step timer of the main thread: ``arm`` starts it for one step, ``disarm`` stops it. While armed,
    it raises StepTimeout after ``seconds`` and again every ALARM_REPEAT_SECONDS until disarmed, except
    while another unraisable exception is being reported (``muted``)."""
    seconds: float
    armed: bool = False
    muted: bool = False

    def ring(self, _signum, _frame) -> None:
        if self.armed and not self.muted:  # a ring already on its way when the step ended is dropped
            raise StepTimeout

    def unraisable_hook(self, previous: Callable[[Any], object]) -> Callable[[Any], None]:
        """A sys.unraisablehook that drops the StepTimeouts lost in callbacks (a later ring cuts the step)
        and hands every other report to ``previous`` with the alarm muted, so that no ring breaks into
        the report itself."""
        def hook(report: Any) -> None:
            if isinstance(report.exc_value, StepTimeout):
                return
            self.muted = True
            try:
                previous(report)
            finally:
                self.muted = False
        return hook

    def arm(self) -> None:
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, ALARM_REPEAT_SECONDS)

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


class _NoAlarm:
    """Outside the main thread (signals reach only it) or without a step limit: steps are checked only
    between them."""

    def arm(self) -> None:
        pass

    def disarm(self) -> None:
        pass


@contextmanager
def step_alarm(seconds: float) -> Iterator[_Alarm | _NoAlarm]:
    """The step timer for a search, its SIGALRM handler installed for the search's duration."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield _NoAlarm()
        return
    alarm = _Alarm(seconds)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = alarm.unraisable_hook(previous_hook)
    previous = signal.signal(signal.SIGALRM, alarm.ring)
    try:
        yield alarm
    finally:
        alarm.disarm()
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook


def _state_key(grids: Sequence[Grid]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for g in grids:
        digest.update(np.asarray(g.shape, dtype=np.int16).tobytes())
        digest.update(g.tobytes())
    return digest.digest()


@dataclass
class _Node:
    grids: tuple[Grid, ...]
    text: str  # the chain so far, "{}" where the input grid goes
    kind: str | None
    depth: int


@dataclass
class _Search:
    inputs: tuple[Grid, ...]
    outputs: tuple[Grid, ...]
    config: SearchConfig
    deadline: float
    clock: Callable[[], float]
    alarm: _Alarm | _NoAlarm
    found: list[Program] = field(default_factory=list)
    steps_cut: int = 0
    applied: int = 0
    layers: Layers = None  # type: ignore[assignment]  # made in __post_init__ from the outputs

    def __post_init__(self) -> None:
        if self.layers is None:
            self.layers = Layers(self.outputs, self.config.max_layers)

    def apply(self, step: Step, grids: Sequence[Grid]) -> tuple[Grid, ...] | None:
        """The step on every grid of a state; None (and counted) when it fails on any."""
        self.applied += 1
        if self.clock() > self.deadline or (self.config.max_steps and self.applied > self.config.max_steps):
            raise _Deadline
        try:
            self.alarm.arm()
            try:
                out = tuple(step.fn(g) for g in grids)
            finally:
                self.alarm.disarm()  # inside the try: a ring here is caught below, not by the caller
        except Exception:  # noqa: BLE001 - a step that fails (or is cut) is no program; the search goes on
            self.alarm.disarm()  # again: a ring may have cut the first one short
            self.steps_cut += 1
            return None
        if not all(valid_grid(g) for g in out):
            self.steps_cut += 1
            return None
        return tuple(np.ascontiguousarray(g, dtype=np.uint8) for g in out)

    def fit(self, grids: Sequence[Grid], text: str, depth: int, cell_rule: bool = True) -> None:
        """Record a program when the state, or the state under a learned colour map, object recolouring
        or local cell rule, gives the outputs; a fitter that fails is counted with the cut steps."""
        try:
            self._fit(grids, text, depth, cell_rule and depth <= self.config.cell_rule_depth)
        except Exception:  # noqa: BLE001 - a fitter's bug on one state must not end the search
            self.steps_cut += 1

    def _found_fitted(self, fitted: tuple[str, tuple[Grid, ...]], text: str, depth: int) -> None:
        """Record a fitter's last move (its text with ``{}`` where the state goes, its test grids) after the
        chain ``text``."""
        self.found.append(Program(fitted[0].replace("{}", text.format("grid"), 1), depth + 1, fitted[1]))

    def _fit(self, grids: Sequence[Grid], text: str, depth: int, cell_rule: bool) -> None:
        n = len(self.outputs)
        train, test = grids[:n], grids[n:]
        if all(g.shape == o.shape and np.array_equal(g, o) for g, o in zip(train, self.outputs)):
            if all(g.max() < NUM_COLOURS for g in test):
                self.found.append(Program(text.format("grid"), depth, tuple(test)))
            return
        self.layers.offer(train, test, text.format("grid"), depth)
        if cell_rule and any(g.shape != o.shape for g, o in zip(train, self.outputs)):
            fitted = fit_object_crop(train, self.outputs, test)
            for fitter in (fit_tile_transforms, fit_colour_blocks, fit_part_pick, fit_part_overlay):
                fitted = fitted or fitter(train, self.outputs, test)
            if fitted is None and depth == 0:  # numbers and colours of the inputs themselves: a few ms, once
                fitted = fit_count(train, self.outputs, test) or fit_colour_strip(train, self.outputs, test)
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
                return
        mapping = learn_colour_map(train, self.outputs)
        if mapping is None:
            fitted = fit_object_colours(train, self.outputs, test) or fit_region_colours(train, self.outputs, test)
            if fitted is None and cell_rule:
                fitted = fit_cell_rule(train, self.outputs, test) or fit_stamps(train, self.outputs, test)
            if fitted is None and cell_rule and depth == 0:  # the inputs only: after a step, chance fits
                fitted = (fit_object_stamps(train, self.outputs, test) or fit_count(train, self.outputs, test)
                          or fit_line_table(train, self.outputs, test) or fit_phase_rule(train, self.outputs, test)
                          or fit_relational_rule(train, self.outputs, test))
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
            return
        try:
            mapped = tuple(apply_colour_map(g, mapping) for g in test)
        except (ValueError, IndexError):
            return
        if cell_rule and depth == 0 and any(np.setdiff1d(g, list(mapping)).size for g in test):
            # a test input holds a colour that no example maps: a rule that copies colours from the grid says
            # what the map cannot (a map leaves such a colour as it is), so its answer comes first
            fitted = fit_relational_rule(train, self.outputs, test)
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
        shown = {k: v for k, v in mapping.items() if k != v}
        self.found.append(Program(f"recolour({text.format('grid')}, {shown})", depth + 1, mapped))

    def finish(self, node: _Node) -> None:
        """The fitters on a state, directly and after each shape step made for its sizes."""
        self.fit(node.grids, node.text, node.depth)
        for step in shape_steps(node.grids, self.outputs):
            grids = self.apply(step, node.grids)
            if grids is not None:
                # a cell rule on a grid a shape step built would only relearn the shape step's output
                self.fit(grids, step.text.format(node.text), node.depth + 1, cell_rule=False)


# ---------------------------------------------------------------------------------------------
# The task with its colours named by rank

RANKED_SHARE = 0.5  # of a task's budget, what the search of its own colours gets when ranked searches follow
# the ways of naming a grid's colours after its own colours (each a pass of its own, in this order, while
# none has found a program): by their number of cells (ties: the colour met first in reading order), and by
# the order in which reading meets them
NAMINGS = {"count": "by_colour_rank", "first": "by_colour_order"}


def colour_ranks(grid: Grid, by: str = "count") -> tuple[np.ndarray, np.ndarray]:
    """A renaming of colours by their rank in ``grid`` and its inverse, as lookup tables over 0..15. ``by``
    "count": the most common colour becomes 0, the next 1, and so on (ties: the colour met first in reading
    order first); "first": the colour met first in reading order becomes 0, the next new one 1, and so on.
    Colours absent from the grid take the remaining names in increasing order; ``NEW`` and above keep theirs."""
    values, first, counts = np.unique(grid.ravel(), return_index=True, return_counts=True)
    if by == "count":
        present = [int(v) for _, _, v in sorted(zip((-counts).tolist(), first.tolist(), values.tolist()))]
    elif by == "first":
        present = [int(v) for _, v in sorted(zip(first.tolist(), values.tolist()))]
    else:
        raise ValueError(f"unknown colour naming {by!r}; choose one of {', '.join(NAMINGS)}")
    order = present + [c for c in range(NUM_COLOURS) if c not in present]
    forward = np.arange(16, dtype=np.uint8)
    forward[order] = np.arange(NUM_COLOURS, dtype=np.uint8)
    inverse = np.zeros(16, dtype=np.uint8)
    inverse[forward] = np.arange(16, dtype=np.uint8)
    return forward, inverse


def ranked_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], by: str = "count"
                ) -> tuple[list[tuple[Grid, Grid]], list[Grid], list[np.ndarray]] | None:
    """The task with each pair's colours renamed by their rank in its input (``colour_ranks``), and the
    renamings back for the test inputs; None when every input ranks its colours alike and the renaming keeps
    0 (the ranked task is then the task itself under one renaming that the search of its own colours covers;
    one that names another colour 0 makes it the background, which many steps take 0 for)."""
    grids = [np.asarray(i, dtype=np.uint8) for i, _ in train] + [np.asarray(g, dtype=np.uint8) for g in test_inputs]
    ranks = [colour_ranks(g, by) for g in grids]
    first, _ = ranks[0]
    if len({forward.tobytes() for forward, _ in ranks}) == 1 and first[0] == 0:  # one renaming, and 0 stays 0
        return None
    pairs = [(forward[g], forward[np.asarray(o, dtype=np.uint8)])
             for (forward, _), g, (_, o) in zip(ranks, grids, train)]
    tests = [forward[g] for (forward, _), g in zip(ranks[len(train):], grids[len(train):])]
    return pairs, tests, [inverse for _, inverse in ranks[len(train):]]


def search_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], config: SearchConfig = SearchConfig(),
                task_id: str = "") -> SearchResult:
    """Programs that reproduce every training pair, breadth first, and their test outputs as candidates.

    Where the inputs rank their colours differently, the search of the task's own colours gets
    ``RANKED_SHARE`` of the budget; the rest goes in equal shares to the
    same search of the task with each pair's colours named by their rank in its input, by count and then
    by first appearance (``NAMINGS``: a rule about "the most common colour" or "the colour met first" is
    then one rule on every example), and their answers are renamed back. Their programs read
    ``by_colour_rank(...)`` and ``by_colour_order(...)``. Once a pass has a program of depth d > 1, the later
    passes search chains of at most d - 1 steps; the answers of the shallowest program come first, then
    those of the others (with more time, the own colours' search can finish a deeper depth and find a
    program that fits the examples through a quirk of them before a renamed task's simpler one is looked
    for)."""
    views = [(by, ranked) for by in NAMINGS if (ranked := ranked_task(train, test_inputs, by)) is not None]
    if not views:
        return _search_task(train, test_inputs, config, task_id)
    clock = time.process_time if config.cpu_time else time.monotonic
    began = clock()
    shares = [RANKED_SHARE] + [(1 - RANKED_SHARE) / len(views)] * len(views)
    passes = [(None, (list(train), list(test_inputs), None)), *views]
    results: list[SearchResult] = []
    spent_steps = 0
    max_depth = config.max_depth
    for index, ((by, (pairs, tests, inverses)), share) in enumerate(zip(passes, shares)):
        last = index == len(passes) - 1
        seconds = (config.seconds - (clock() - began)) if last else config.seconds * share
        steps = (config.max_steps - spent_steps if last else int(config.max_steps * share)) if config.max_steps else 0
        result = _search_task(pairs, tests, dataclasses.replace(config, seconds=max(0.0, seconds), max_depth=max_depth,
                                                                max_steps=max(1, steps) if config.max_steps else 0),
                              task_id)
        spent_steps += result.steps
        if by is not None:
            result.candidates = [[inverse[g] for g in cands] for inverse, cands in zip(inverses, result.candidates)]
            result.programs = [[f"{NAMINGS[by]}({text})" for text in texts] for texts in result.programs]
        results.append(result)
        if result.found_depth is not None and not _assembled(result):
            if result.found_depth <= 1:
                break  # nothing simpler to look for
            # the later passes look for shallower programs only: chains of at most d - 1 steps (a depth-d
            # program may turn up there too, and then comes after this one)
            max_depth = min(max_depth, result.found_depth - 1)
    # a program beats a guess assembled from partial results; the shallowest program's answers come first,
    # then the others' (a deeper program fits the examples too, but is the likelier to have found a quirk
    # of them); between guesses, the earliest pass's
    found = [r for r in results if r.found_depth is not None]
    programs = sorted((r for r in found if not _assembled(r)), key=lambda r: r.found_depth)
    kept = programs[0] if programs else found[0] if found else results[-1]
    for other in programs[1:]:
        for cands, texts, more, more_texts in zip(kept.candidates, kept.programs, other.candidates, other.programs):
            for grid, text in zip(more, more_texts):
                if len(cands) < config.max_candidates and not any(np.array_equal(grid, c) for c in cands):
                    cands.append(grid)
                    texts.append(text)
    for other in results:
        if other is not kept:
            kept.steps += other.steps
            kept.states += other.states
            kept.steps_cut += other.steps_cut
            kept.seconds += other.seconds
    kept.depth = max(r.depth for r in results)
    kept.timed_out = any(r.timed_out for r in results)
    kept.error = next((r.error for r in results if r.error), "")
    return kept


def _assembled(result: SearchResult) -> bool:
    """Whether the result's candidates are a guess assembled from partial results, not a program's."""
    return all(text.startswith("assemble(") for texts in result.programs for text in texts)


def _search_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], config: SearchConfig,
                 task_id: str) -> SearchResult:
    began = time.monotonic()
    clock = time.process_time if config.cpu_time else time.monotonic
    inputs = tuple(np.asarray(i, dtype=np.uint8) for i, _ in train) + tuple(
        np.asarray(g, dtype=np.uint8) for g in test_inputs)
    outputs = tuple(np.asarray(o, dtype=np.uint8) for _, o in train)
    result = SearchResult(task_id, [[] for _ in test_inputs], [[] for _ in test_inputs])
    with step_alarm(config.step_seconds) as alarm:
        search = _Search(inputs, outputs, config, clock() + config.seconds, clock, alarm)
        seen = {_state_key(inputs)}
        frontier = [_Node(inputs, "{}", None, 0)]
        steps = static_steps(TaskFacts([i for i, _ in train], outputs))
        try:
            if len({o.tobytes() + bytes(o.shape) for o in outputs}) == 1:  # every output the same grid
                search.found.append(Program(f"constant({outputs[0].astype(int).tolist()})", 0,
                                            tuple(outputs[0] for _ in test_inputs)))
            search.finish(frontier[0])
            depth = 0
            while frontier and not search.found and depth < config.max_depth:
                depth += 1
                last = depth == config.max_depth
                following: list[_Node] = []
                for node in frontier:
                    for step in steps:
                        if not may_follow(node.kind, step):
                            continue
                        grids = search.apply(step, node.grids)
                        if grids is None:
                            continue
                        key = _state_key(grids)
                        if key in seen:
                            continue
                        if len(seen) < config.max_states:
                            seen.add(key)
                        child = _Node(grids, step.text.format(node.text), step.kind, depth)
                        search.finish(child)
                        if not last and len(following) < config.max_states:
                            following.append(child)
                frontier = following
                result.depth = depth
        except _Deadline:
            result.timed_out = True
        except Exception as e:  # noqa: BLE001 - a bug in the search: keep what was found, say why it stopped
            log.warning("task %s: the search stopped early: %s: %s", task_id, type(e).__name__, e)
            result.error = f"{type(e).__name__}: {e}"
        result.states = len(seen)
        if not search.found:
            try:
                assembled = search.layers.assemble()
            except Exception as e:  # noqa: BLE001 - no assembly is no program; the search's result stands
                log.warning("task %s: assembling partial results failed: %s: %s", task_id, type(e).__name__, e)
                assembled = None
            if assembled is not None:
                search.found.append(assembled)
    result.steps_cut = search.steps_cut
    result.steps = search.applied
    _SHAPES_CACHE.clear()
    _SHAPE_KEYS_CACHE.clear()
    _COMPLETED_CACHE.clear()
    _CENTRE_CACHE.clear()
    _collect(result, search.found, config.max_candidates)
    result.seconds = time.monotonic() - began
    return result


def _collect(result: SearchResult, found: list[Program], limit: int) -> None:
    """Per test input, the distinct outputs of the programs, simplest program first."""
    ordered = sorted(enumerate(found), key=lambda p: (p[1].depth, p[0]))
    for _, program in ordered:
        if result.found_depth is None:
            result.found_depth = program.depth
        for index, grid in enumerate(program.test_outputs):
            cands = result.candidates[index]
            if len(cands) >= limit or any(c.shape == grid.shape and np.array_equal(c, grid) for c in cands):
                continue
            cands.append(grid)
            result.programs[index].append(program.text)
