"""A small grid DSL (numpy) for writing ARC solutions as short programs.

Programs written in this DSL are both solvers and training data: the model learns to write them
(``code-from-examples``) and to run them in its head (``output-from-code``), see ``code_tasks.py``.
So the vocabulary is small, the names say what they return, and every function is pure: it never
changes its arguments and returns a new ``uint8`` grid (or a plain Python value).

Conventions:

* A grid is a 2-D ``numpy`` array of ``uint8`` colours 0 to 9; a mask is a 2-D ``bool`` array of the
  same shape; a cell is ``(row, column)``; a box is ``(top, left, bottom, right)`` with exclusive
  ``bottom`` and ``right`` (so ``grid[top:bottom, left:right]`` is the box's content).
* ``background`` arguments default to 0, the usual ARC background; ``background(grid)`` finds the
  most common colour when a task uses another one.
* Connectivity is 4 (edges) or 8 (edges and corners).
* Directions are ``(row step, column step)`` pairs; ``DIRECTIONS`` names the eight of them.

Only this module's public names and ``np`` are visible to a program (``namespace()``), in the
sandbox and when the project runs its own programs directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

Grid = np.ndarray
Mask = np.ndarray
Box = tuple[int, int, int, int]
Cell = tuple[int, int]

# Read-only: programs see this module's objects, and one program must not change them for the next.
DIRECTIONS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1),
    "up-left": (-1, -1), "up-right": (-1, 1), "down-left": (1, -1), "down-right": (1, 1),
})
_STEPS4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
_STEPS8 = _STEPS4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def _steps(connectivity: int) -> tuple[tuple[int, int], ...]:
    if connectivity == 4:
        return _STEPS4
    if connectivity == 8:
        return _STEPS8
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")


def _direction(direction: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(direction, str):
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
        return DIRECTIONS[direction]
    dr, dc = direction
    return int(dr), int(dc)


def grid_of(value) -> Grid:
    """``value`` (a grid, a list of rows or a number) as a new 2-D ``uint8`` array."""
    arr = np.array(value, dtype=np.uint8)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return arr


def new_grid(height: int, width: int, colour: int = 0) -> Grid:
    """A ``height`` x ``width`` grid filled with ``colour``."""
    return np.full((int(height), int(width)), colour, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Colours


def colour_counts(grid: Grid, exclude: Iterable[int] = ()) -> dict[int, int]:
    """Colour -> number of cells, for the colours present (less ``exclude``), most frequent first
    (ties: the smaller colour first)."""
    values, counts = np.unique(np.asarray(grid), return_counts=True)
    skip = set(exclude)
    pairs = [(int(v), int(n)) for v, n in zip(values, counts) if int(v) not in skip]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return dict(pairs)


def colours(grid: Grid, exclude: Iterable[int] = ()) -> list[int]:
    """The colours present in the grid (less ``exclude``), in increasing order."""
    skip = set(exclude)
    return [int(v) for v in np.unique(np.asarray(grid)) if int(v) not in skip]


def count_colours(grid: Grid, exclude: Iterable[int] = ()) -> int:
    """How many distinct colours the grid holds (less ``exclude``)."""
    return len(colours(grid, exclude))


def most_common_colour(grid: Grid, exclude: Iterable[int] = ()) -> int:
    """The most frequent colour (ties: the smaller); raises ValueError when none is left."""
    counts = colour_counts(grid, exclude)
    if not counts:
        raise ValueError("no colour left after the exclusions")
    return next(iter(counts))


def least_common_colour(grid: Grid, exclude: Iterable[int] = ()) -> int:
    """The least frequent colour present (ties: the smaller); raises ValueError when none is left."""
    counts = colour_counts(grid, exclude)
    if not counts:
        raise ValueError("no colour left after the exclusions")
    fewest = min(counts.values())
    return min(c for c, n in counts.items() if n == fewest)


def background(grid: Grid) -> int:
    """The background colour: the most frequent colour of the grid."""
    return most_common_colour(grid)


def recolour(grid: Grid, mapping: Mapping[int, int]) -> Grid:
    """The grid with every colour ``c`` in ``mapping`` replaced by ``mapping[c]`` (all at once, so
    ``{1: 2, 2: 1}`` swaps two colours)."""
    table = np.arange(10, dtype=np.uint8)
    for old, new in mapping.items():
        table[int(old)] = int(new)
    return table[np.asarray(grid, dtype=np.uint8)]


def replace(grid: Grid, old: int, new: int) -> Grid:
    """The grid with colour ``old`` replaced by ``new``."""
    return recolour(grid, {old: new})


def cells_of(grid: Grid, colour: int) -> list[Cell]:
    """The cells of ``colour``, in reading order (row by row, left to right)."""
    rows, cols = np.nonzero(np.asarray(grid) == colour)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


# --------------------------------------------------------------------------------------------------
# Geometry


def flip_h(grid: Grid) -> Grid:
    """The grid mirrored left to right (columns reversed)."""
    return np.ascontiguousarray(np.asarray(grid)[:, ::-1])


def flip_v(grid: Grid) -> Grid:
    """The grid mirrored top to bottom (rows reversed)."""
    return np.ascontiguousarray(np.asarray(grid)[::-1, :])


def rotate(grid: Grid, quarter_turns: int = 1) -> Grid:
    """The grid turned ``quarter_turns`` quarter turns clockwise (negative: anticlockwise)."""
    return np.ascontiguousarray(np.rot90(np.asarray(grid), -int(quarter_turns)))


def transpose(grid: Grid) -> Grid:
    """The grid mirrored along its main diagonal (rows become columns)."""
    return np.ascontiguousarray(np.asarray(grid).T)


def anti_transpose(grid: Grid) -> Grid:
    """The grid mirrored along its anti-diagonal (top-right to bottom-left)."""
    return np.ascontiguousarray(np.asarray(grid)[::-1, ::-1].T)


def tile(grid: Grid, rows: int, cols: int) -> Grid:
    """``rows`` x ``cols`` copies of the grid side by side."""
    return np.tile(np.asarray(grid), (int(rows), int(cols)))


def upscale(grid: Grid, factor: int, factor_cols: int | None = None) -> Grid:
    """Every cell blown up into a ``factor`` x ``factor_cols`` block (``factor_cols`` defaults to
    ``factor``)."""
    fc = factor if factor_cols is None else factor_cols
    return np.repeat(np.repeat(np.asarray(grid), int(factor), axis=0), int(fc), axis=1)


def downscale(grid: Grid, factor: int, factor_cols: int | None = None, majority: bool = False) -> Grid:
    """Each ``factor`` x ``factor_cols`` block shrunk to one cell: its top-left cell, or with
    ``majority`` its most frequent colour (ties: the smaller). Rows or columns that do not fill a
    whole block are dropped."""
    g = np.asarray(grid)
    fr = int(factor)
    fc = fr if factor_cols is None else int(factor_cols)
    h, w = g.shape[0] // fr, g.shape[1] // fc
    if not majority:
        return np.ascontiguousarray(g[: h * fr : fr, : w * fc : fc])
    out = np.zeros((h, w), dtype=np.uint8)
    for r in range(h):
        for c in range(w):
            out[r, c] = most_common_colour(g[r * fr : (r + 1) * fr, c * fc : (c + 1) * fc])
    return out


def shift(grid: Grid, rows: int, cols: int, fill: int = 0) -> Grid:
    """The grid's content moved ``rows`` down and ``cols`` right (negative: up, left); cells moved
    off the grid are lost and uncovered cells get ``fill``."""
    g = np.asarray(grid)
    out = np.full_like(g, fill)
    h, w = g.shape
    dr, dc = int(rows), int(cols)
    if abs(dr) >= h or abs(dc) >= w:
        return out
    out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] = g[max(-dr, 0) : h - max(dr, 0),
                                                                      max(-dc, 0) : w - max(dc, 0)]
    return out


def hconcat(*grids: Grid) -> Grid:
    """Grids of equal height placed side by side, left to right."""
    return np.concatenate([np.asarray(g) for g in grids], axis=1)


def vconcat(*grids: Grid) -> Grid:
    """Grids of equal width stacked top to bottom."""
    return np.concatenate([np.asarray(g) for g in grids], axis=0)


def split(grid: Grid, parts: int, axis: int = 1) -> list[Grid]:
    """The grid cut into ``parts`` equal pieces: side by side (``axis=1``) or stacked (``axis=0``).
    A line of width one between pieces (a separator) is left out when the size calls for it: a
    7-wide grid split in two gives two 3-wide pieces."""
    g = np.asarray(grid)
    size = g.shape[axis]
    step, rest = divmod(size, parts)
    if rest == 0:
        bounds = [(i * step, (i + 1) * step) for i in range(parts)]
    elif (size - (parts - 1)) % parts == 0:  # separators between the pieces
        step = (size - (parts - 1)) // parts
        bounds = [(i * (step + 1), i * (step + 1) + step) for i in range(parts)]
    else:
        raise ValueError(f"cannot split {size} cells into {parts} equal pieces")
    if axis == 1:
        return [np.ascontiguousarray(g[:, a:b]) for a, b in bounds]
    return [np.ascontiguousarray(g[a:b, :]) for a, b in bounds]


def split_by_lines(grid: Grid, colour: int) -> list[list[Grid]]:
    """The blocks between full rows and full columns of ``colour`` (separator lines), as a list of
    block rows, each a list of grids from left to right."""
    g = np.asarray(grid)
    line_rows = [r for r in range(g.shape[0]) if np.all(g[r] == colour)]
    line_cols = [c for c in range(g.shape[1]) if np.all(g[:, c] == colour)]

    def spans(lines: list[int], size: int) -> list[tuple[int, int]]:
        cuts = [-1, *lines, size]
        return [(a + 1, b) for a, b in zip(cuts, cuts[1:]) if b > a + 1]

    return [[np.ascontiguousarray(g[r0:r1, c0:c1]) for c0, c1 in spans(line_cols, g.shape[1])]
            for r0, r1 in spans(line_rows, g.shape[0])]


def dedupe(grid: Grid) -> Grid:
    """The grid with runs of equal adjacent rows, then of equal adjacent columns, each kept once."""
    g = np.asarray(grid)
    keep_rows = [0] + [r for r in range(1, g.shape[0]) if not np.array_equal(g[r], g[r - 1])]
    g = g[keep_rows]
    keep_cols = [0] + [c for c in range(1, g.shape[1]) if not np.array_equal(g[:, c], g[:, c - 1])]
    return np.ascontiguousarray(g[:, keep_cols])


# --------------------------------------------------------------------------------------------------
# Boxes, crops and pasting


def bbox(mask: Mask) -> Box | None:
    """The smallest box ``(top, left, bottom, right)`` (bottom and right exclusive) holding every
    true cell of ``mask``; None when the mask is empty."""
    rows = np.flatnonzero(np.any(mask, axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.any(mask, axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def crop(grid: Grid, box: Box) -> Grid:
    """The part of the grid inside ``box`` = ``(top, left, bottom, right)``, bottom and right
    exclusive."""
    top, left, bottom, right = box
    return np.ascontiguousarray(np.asarray(grid)[top:bottom, left:right])


def crop_to_content(grid: Grid, background: int = 0) -> Grid:
    """The grid cropped to the box around its cells that are not ``background`` (the whole grid
    when all cells are background)."""
    box = bbox(np.asarray(grid) != background)
    return np.array(grid, dtype=np.uint8) if box is None else crop(grid, box)


def paste(canvas: Grid, patch: Grid, top: int, left: int, transparent: int | None = None) -> Grid:
    """A copy of ``canvas`` with ``patch`` drawn with its top-left cell at ``(top, left)``; parts
    outside the canvas are clipped, and cells of colour ``transparent`` in the patch are not drawn."""
    out = np.array(canvas, dtype=np.uint8)
    p = np.asarray(patch)
    h, w = out.shape
    r0, c0 = max(int(top), 0), max(int(left), 0)
    r1, c1 = min(int(top) + p.shape[0], h), min(int(left) + p.shape[1], w)
    if r0 >= r1 or c0 >= c1:
        return out
    part = p[r0 - int(top) : r1 - int(top), c0 - int(left) : c1 - int(left)]
    region = out[r0:r1, c0:c1]
    if transparent is None:
        region[...] = part
    else:
        region[part != transparent] = part[part != transparent]
    return out


def overlay(*grids: Grid, transparent: int = 0) -> Grid:
    """Grids of one shape stacked: each later grid drawn over the earlier ones, except where its
    cells are ``transparent``."""
    out = np.array(grids[0], dtype=np.uint8)
    for g in grids[1:]:
        g = np.asarray(g)
        out[g != transparent] = g[g != transparent]
    return out


def fill_box(grid: Grid, box: Box, colour: int) -> Grid:
    """The grid with every cell inside ``box`` set to ``colour``."""
    out = np.array(grid, dtype=np.uint8)
    top, left, bottom, right = box
    out[top:bottom, left:right] = colour
    return out


def box_outline(grid: Grid, box: Box, colour: int) -> Grid:
    """The grid with the border cells of ``box`` (its outermost ring) set to ``colour``."""
    out = np.array(grid, dtype=np.uint8)
    top, left, bottom, right = box
    out[top, left:right] = colour
    out[bottom - 1, left:right] = colour
    out[top:bottom, left] = colour
    out[top:bottom, right - 1] = colour
    return out


# --------------------------------------------------------------------------------------------------
# Masks


def components(mask: Mask, connectivity: int = 4) -> list[Mask]:
    """The connected parts of ``mask`` (each a mask of the same shape), ordered by their first cell
    in reading order."""
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    seen = np.zeros_like(m)
    steps = _steps(connectivity)
    parts = []
    for r0, c0 in zip(*np.nonzero(m)):
        if seen[r0, c0]:
            continue
        part = np.zeros_like(m)
        queue = deque([(int(r0), int(c0))])
        seen[r0, c0] = True
        while queue:
            r, c = queue.popleft()
            part[r, c] = True
            for dr, dc in steps:
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and m[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        parts.append(part)
    return parts


def label(grid: Grid, connectivity: int = 4, multicolour: bool = False, background: int = 0) -> np.ndarray:
    """Each cell's object: the flat index of the object's first cell in reading order, -1 on background.

    Label propagation with pointer jumping, numpy only: each round gives every run of linked cells in a
    row, then in a column, the smallest label on the run (one ``minimum.reduceat``), then each diagonal
    link its smaller label, until nothing changes; a label can only fall to a smaller index of its own
    object, so the end is the object's first cell."""
    g = np.asarray(grid)
    h, w = g.shape
    fg = g != background
    n = h * w
    lab = np.where(fg, np.arange(n).reshape(h, w), n).ravel()
    if not fg.any():
        return np.full((h, w), -1)
    same = None if multicolour else g
    row_cells, row_starts, row_lengths = _runs(fg, same)
    col_cells, col_starts, col_lengths = _runs(fg.T, None if same is None else same.T)
    col_cells = (col_cells % h) * w + col_cells // h  # back to row-major indices
    diagonals = []
    if connectivity == 8:
        for dc in (1, -1):
            a = (slice(0, h - 1), slice(max(-dc, 0), w - max(dc, 0)))
            b = (slice(1, h), slice(max(dc, 0), w + min(dc, 0)))
            link = fg[a] & fg[b]
            if same is not None:
                link &= g[a] == g[b]
            if link.any():
                index = np.arange(n).reshape(h, w)
                diagonals.append((index[a][link], index[b][link]))
    lab = np.append(lab, n)
    while True:
        before = lab.copy()
        lab[row_cells] = np.repeat(np.minimum.reduceat(lab[row_cells], row_starts), row_lengths)
        lab[col_cells] = np.repeat(np.minimum.reduceat(lab[col_cells], col_starts), col_lengths)
        for a, b in diagonals:
            low = np.minimum(lab[a], lab[b])
            lab[a] = np.minimum(lab[a], low)  # each cell has one link per direction: no repeated index
            lab[b] = np.minimum(lab[b], low)
        lab = lab[lab]  # pointer jumping: a label's own label
        if np.array_equal(before, lab):
            break
    lab = lab[:n].reshape(h, w)
    return np.where(fg, lab, -1)


def _runs(fg: np.ndarray, same: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The foreground cells in reading order (flat indices), where each run of linked cells along a row
    starts among them, and each run's length."""
    cells = np.flatnonzero(fg)
    joined = np.zeros(fg.shape, dtype=bool)
    joined[:, 1:] = fg[:, 1:] & fg[:, :-1]
    if same is not None:
        joined[:, 1:] &= same[:, 1:] == same[:, :-1]
    starts = np.flatnonzero(~joined.ravel()[cells])
    lengths = np.diff(np.append(starts, cells.size))
    return cells, starts, lengths


def dilate(mask: Mask, connectivity: int = 8) -> Mask:
    """The mask grown by one cell in every direction of the connectivity."""
    m = np.asarray(mask, dtype=bool)
    out = m.copy()
    h, w = m.shape
    for dr, dc in _steps(connectivity):
        out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] |= m[max(-dr, 0) : h - max(dr, 0),
                                                                            max(-dc, 0) : w - max(dc, 0)]
    return out


def neighbours(mask: Mask, connectivity: int = 8) -> Mask:
    """The cells next to the mask (in the connectivity's directions) that are not in it."""
    m = np.asarray(mask, dtype=bool)
    return dilate(m, connectivity) & ~m


def outline(mask: Mask, connectivity: int = 4) -> Mask:
    """The cells of the mask with a neighbour outside it or on the grid's edge (its outer ring)."""
    m = np.asarray(mask, dtype=bool)
    outside = np.pad(~m, 1, constant_values=True)  # the grid's edge counts as outside
    return m & dilate(outside, connectivity)[1:-1, 1:-1]


def interior(mask: Mask, connectivity: int = 4) -> Mask:
    """The cells of the mask that are not on its outline."""
    m = np.asarray(mask, dtype=bool)
    return m & ~outline(m, connectivity)


def touches_border(mask: Mask) -> bool:
    """Whether any true cell of the mask lies on the grid's edge."""
    m = np.asarray(mask, dtype=bool)
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def enclosed(mask: Mask, connectivity: int = 4) -> Mask:
    """The cells of ``mask`` that cannot reach the grid's edge through cells of ``mask`` (e.g. the
    holes of shapes when ``mask`` is the background)."""
    m = np.asarray(mask, dtype=bool)
    if not m[1:-1, 1:-1].any():  # every cell of the mask lies on the edge
        return np.zeros_like(m)
    lab = label(m.view(np.uint8), connectivity, multicolour=True)
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    return m & ~np.isin(lab, edge[edge >= 0])


def fill_enclosed(grid: Grid, colour: int, background: int = 0, connectivity: int = 4) -> Grid:
    """The grid with every ``background`` cell that is cut off from the edge set to ``colour``."""
    g = np.array(grid, dtype=np.uint8)
    g[enclosed(g == background, connectivity)] = colour
    return g


def flood_fill(grid: Grid, row: int, col: int, colour: int, connectivity: int = 4) -> Grid:
    """The grid with the region of same-coloured cells around ``(row, col)`` set to ``colour``."""
    g = np.array(grid, dtype=np.uint8)
    start = g[row, col]
    region = np.zeros(g.shape, dtype=bool)
    region[row, col] = True
    same = g == start
    while True:
        grown = dilate(region, connectivity) & same
        if np.array_equal(grown, region):
            break
        region = grown
    g[region] = colour
    return g


# --------------------------------------------------------------------------------------------------
# Objects


@dataclass(frozen=True, eq=False)
class Object:
    """A set of cells of a grid (usually a connected shape found by ``objects``).

    ``mask`` marks its cells on the grid it came from, ``grid``; ``background`` is the colour that
    fills the rest of its ``patch``.
    """

    mask: Mask
    grid: Grid
    background: int = 0

    @property
    def size(self) -> int:
        """Number of cells."""
        return int(self.mask.sum())

    @property
    def colour(self) -> int:
        """Its most frequent colour (the colour, for a one-coloured object)."""
        return most_common_colour(self.grid[self.mask])

    @property
    def colours(self) -> list[int]:
        """The colours of its cells, in increasing order."""
        return colours(self.grid[self.mask])

    @property
    def box(self) -> Box:
        """Its bounding box ``(top, left, bottom, right)``, bottom and right exclusive."""
        return bbox(self.mask)  # type: ignore[return-value]

    @property
    def top(self) -> int:
        """Its first row."""
        return self.box[0]

    @property
    def left(self) -> int:
        """Its first column."""
        return self.box[1]

    @property
    def bottom(self) -> int:
        """One past its last row."""
        return self.box[2]

    @property
    def right(self) -> int:
        """One past its last column."""
        return self.box[3]

    @property
    def height(self) -> int:
        """Rows of its box."""
        return self.box[2] - self.box[0]

    @property
    def width(self) -> int:
        """Columns of its box."""
        return self.box[3] - self.box[1]

    @property
    def cells(self) -> list[Cell]:
        """Its cells in reading order."""
        rows, cols = np.nonzero(self.mask)
        return [(int(r), int(c)) for r, c in zip(rows, cols)]

    @property
    def shape(self) -> Mask:
        """Its mask cropped to its box."""
        return crop(self.mask, self.box)

    @property
    def patch(self) -> Grid:
        """Its box cut from the grid, cells not in the object set to ``background``."""
        return np.where(self.shape, crop(self.grid, self.box), np.uint8(self.background)).astype(np.uint8)

    @property
    def is_rectangle(self) -> bool:
        """Whether it fills its whole box."""
        return bool(self.shape.all())


def objects(grid: Grid, connectivity: int = 4, background: int = 0, multicolour: bool = False) -> list[Object]:
    """The connected shapes of cells that are not ``background``, in reading order of their first
    cell. One-coloured shapes by default; with ``multicolour`` any touching non-background cells
    form one object."""
    g = np.asarray(grid, dtype=np.uint8)
    found: list[tuple[tuple[int, int], Object]] = []
    if multicolour:
        masks = components(g != background, connectivity)
    else:
        masks = [m for c in colours(g, exclude=[background]) for m in components(g == c, connectivity)]
    for m in masks:
        r, c = np.argwhere(m)[0]
        found.append(((int(r), int(c)), Object(m, g, background)))
    found.sort(key=lambda pair: pair[0])
    return [obj for _, obj in found]


def draw(grid: Grid, obj: Object | Mask, colour: int | None = None) -> Grid:
    """The grid with an object's (or a mask's) cells painted ``colour``, or with their own colours
    when ``colour`` is None."""
    out = np.array(grid, dtype=np.uint8)
    if isinstance(obj, Object):
        mask = obj.mask
        out[mask] = obj.grid[mask] if colour is None else colour
    else:
        if colour is None:
            raise ValueError("a mask has no colours of its own; give a colour")
        out[np.asarray(obj, dtype=bool)] = colour
    return out


def keep(grid: Grid, objs: Iterable[Object], background: int = 0) -> Grid:
    """A grid of the same shape holding only the given objects on ``background``."""
    out = np.full(np.asarray(grid).shape, background, dtype=np.uint8)
    for obj in objs:
        out = draw(out, obj)
    return out


# --------------------------------------------------------------------------------------------------
# Lines


def draw_line(grid: Grid, row: int, col: int, direction: str | tuple[int, int], colour: int,
              stop_at_obstacle: bool = True, background: int = 0) -> Grid:
    """The grid with a line of ``colour`` from the cell after ``(row, col)`` in ``direction`` (a
    name of ``DIRECTIONS`` or a ``(row step, column step)``) to the edge. With
    ``stop_at_obstacle`` the line stops before the first cell that is not ``background``;
    otherwise it paints over everything."""
    out = np.array(grid, dtype=np.uint8)
    dr, dc = _direction(direction)
    if dr == 0 and dc == 0:
        raise ValueError("a line needs a direction other than (0, 0)")
    h, w = out.shape
    r, c = int(row) + dr, int(col) + dc
    while 0 <= r < h and 0 <= c < w:
        if stop_at_obstacle and out[r, c] != background:
            break
        out[r, c] = colour
        r, c = r + dr, c + dc
    return out


def connect(grid: Grid, start: Cell, end: Cell, colour: int, only_background: bool = False,
            background: int = 0) -> Grid:
    """The grid with the cells strictly between ``start`` and ``end`` (in one row, column or
    diagonal) set to ``colour``; with ``only_background`` other colours are left alone. Raises
    ValueError when the two cells are not aligned."""
    (r0, c0), (r1, c1) = start, end
    dr, dc = r1 - r0, c1 - c0
    if not (dr == 0 or dc == 0 or abs(dr) == abs(dc)):
        raise ValueError(f"cells {start} and {end} are not in one row, column or diagonal")
    out = np.array(grid, dtype=np.uint8)
    n = max(abs(dr), abs(dc))
    sr, sc = int(np.sign(dr)), int(np.sign(dc))
    for i in range(1, n):
        r, c = r0 + i * sr, c0 + i * sc
        if not only_background or out[r, c] == background:
            out[r, c] = colour
    return out


# --------------------------------------------------------------------------------------------------
# Movement and completion


def gravity(grid: Grid, direction: str = "down", background: int = 0) -> Grid:
    """Every cell that is not ``background`` slides as far as it can towards ``direction`` (``up``,
    ``down``, ``left`` or ``right``), keeping its order within its column or row."""
    turns = {"down": 0, "right": 1, "up": 2, "left": 3}  # clockwise turns that make the direction "down"
    if direction not in turns:
        raise ValueError(f"gravity direction must be up, down, left or right, got {direction!r}")
    g = rotate(grid, turns[direction])
    out = np.full_like(g, background)
    for c in range(g.shape[1]):
        column = g[:, c][g[:, c] != background]
        if column.size:
            out[-column.size :, c] = column
    return rotate(out, -turns[direction])


def is_symmetric(grid: Grid, axis: str = "h") -> bool:
    """Whether the grid equals its mirror image: ``h`` left-right, ``v`` top-bottom, ``d`` along the
    main diagonal (square grids only), ``r`` under a half turn."""
    g = np.asarray(grid)
    mirror = {"h": flip_h, "v": flip_v, "d": transpose, "r": lambda x: rotate(x, 2)}[axis]
    m = mirror(g)
    return m.shape == g.shape and bool(np.array_equal(m, g))


def complete_symmetry(grid: Grid, unknown: int, axes: str = "hvd") -> Grid:
    """The grid with cells of colour ``unknown`` filled from their mirror images.

    ``axes`` lists the candidate mirrors (``h`` left-right, ``v`` top-bottom, ``d`` the main
    diagonal). For ``h`` and ``v`` every mirror line position (between or on cells) is tried; the
    mirrors kept are those under which all known cells that meet agree, and at least half of the
    grid's cells meet a partner. Cells no kept mirror can fill stay ``unknown``.
    """
    g = np.array(grid, dtype=np.uint8)
    h, w = g.shape
    maps: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, cols) of every cell's mirror partner
    rr, cc = np.indices((h, w))
    for axis in axes:
        if axis == "d":
            if h == w:
                maps.append((cc, rr))
            continue
        size = h if axis == "v" else w
        for twice_centre in range(1, 2 * size - 2):  # mirror line at twice_centre / 2
            if axis == "v":
                maps.append((twice_centre - rr, cc))
            else:
                maps.append((rr, twice_centre - cc))
    known = g != unknown
    kept = []
    for mr, mc in maps:
        inside = (mr >= 0) & (mr < h) & (mc >= 0) & (mc < w)
        if inside.sum() * 2 < h * w:
            continue
        r2, c2 = np.where(inside, mr, 0), np.where(inside, mc, 0)
        both = inside & known & known[r2, c2]
        if both.any() and np.array_equal(g[both], g[r2, c2][both]):
            kept.append((inside, r2, c2))
    changed = True
    while changed:  # fill through chains of mirrors until nothing changes
        changed = False
        for inside, r2, c2 in kept:
            fill = inside & ~known & known[r2, c2]
            if fill.any():
                g[fill] = g[r2, c2][fill]
                known = known | fill
                changed = True
    return g


def agreeing_tile(slot: np.ndarray, values: np.ndarray, cells: int) -> np.ndarray | None:
    """The tile of ``cells`` cells that known cells fill (cell ``i`` lands on ``slot[i]`` with ``values[i]``),
    or None unless every slot is seen and all the cells on a slot agree."""
    low = np.full(cells, 99, dtype=np.int16)
    high = np.full(cells, -1, dtype=np.int16)
    np.minimum.at(low, slot, values)
    np.maximum.at(high, slot, values)
    return low if np.array_equal(low, high) else None


def complete_period(grid: Grid, unknown: int) -> Grid:
    """The grid with cells of colour ``unknown`` filled by repeating its pattern: the smallest
    row and column periods (2-D translation) under which every known cell agrees are used. The
    grid is returned unchanged when no period shorter than the grid fits."""
    g = np.array(grid, dtype=np.uint8)
    h, w = g.shape
    known = g != unknown
    rows, cols = np.nonzero(known)
    values = g[known].astype(np.int16)
    best = None
    for pr, pc in sorted(((pr, pc) for pr in range(1, h + 1) for pc in range(1, w + 1)), key=lambda p: p[0] * p[1]):
        if pr == h and pc == w:
            continue
        tile = agreeing_tile((rows % pr) * pc + cols % pc, values, pr * pc)
        if tile is not None:
            best = tile.reshape(pr, pc)
            break
    if best is None:
        return g
    pr, pc = best.shape
    return np.tile(best, (h // pr + 1, w // pc + 1))[:h, :w].astype(np.uint8)


def namespace() -> dict[str, object]:
    """The names a program may use: this module's public functions and constants, and ``np``."""
    names: dict[str, object] = {name: globals()[name] for name in __all__}
    names["np"] = np
    return names


__all__ = [
    "DIRECTIONS",
    "Object",
    "anti_transpose",
    "grid_of",
    "background",
    "bbox",
    "box_outline",
    "cells_of",
    "colour_counts",
    "colours",
    "complete_period",
    "complete_symmetry",
    "components",
    "connect",
    "count_colours",
    "crop",
    "crop_to_content",
    "dedupe",
    "dilate",
    "downscale",
    "draw",
    "draw_line",
    "enclosed",
    "fill_box",
    "fill_enclosed",
    "flip_h",
    "flip_v",
    "flood_fill",
    "gravity",
    "hconcat",
    "interior",
    "is_symmetric",
    "keep",
    "least_common_colour",
    "most_common_colour",
    "neighbours",
    "new_grid",
    "objects",
    "outline",
    "overlay",
    "paste",
    "recolour",
    "replace",
    "rotate",
    "shift",
    "split",
    "split_by_lines",
    "tile",
    "touches_border",
    "transpose",
    "upscale",
    "vconcat",
]
