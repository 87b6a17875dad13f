"""The grid steps of the program search: each maps one grid to a new grid (raising when it does not
apply), and ``static_steps``/``shape_steps`` list them for a task, with ``may_follow`` the rule of which
kind of step may come after which. Steps that paint "a new colour" paint ``NEW``; a colour map fitted
afterwards says which colour that is."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..grids import MAX_SIDE, NUM_COLOURS
from . import dsl
from .dsl import label

Grid = np.ndarray
NEW = NUM_COLOURS  # "a colour the examples decide": a colour map names it (never in a final grid)


@dataclass(frozen=True)
class Step:
    """One grid -> grid move. ``text`` is its call with ``{}`` where the grid goes."""

    text: str
    kind: str  # the family, for the rules of what may follow what
    fn: Callable[[Grid], Grid]



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


def forget_grids() -> None:
    """Empty what the steps remember of the grids they met (objects, shape keys, completions, centres): a
    task's search calls it when it ends, so that memory does not grow from task to task."""
    _SHAPES_CACHE.clear()
    _SHAPE_KEYS_CACHE.clear()
    _COMPLETED_CACHE.clear()
    _CENTRE_CACHE.clear()


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
