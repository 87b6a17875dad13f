"""Local cell rules learned from the examples: each output cell is a function of what its input cell sees.

A *view* of a cell is a short tuple of numbers: the cell's colour and some of its surroundings (the
colours of its 4 or 8 neighbours, how many of its 8 neighbours are not background, the nearest colour
met in each of the four directions, which colours its row and column hold, how deep it lies inside
its object). A rule is the table from views to output colours that the training pairs spell out. It
is kept only when it is *consistent* (one view never asks for two colours) and *complete* (every view
of every test input is in the table): no guessing for a view no example shows.

The views go from coarse to fine, and the first that gives a consistent, complete rule wins, so the
simplest explanation is the one used. Every view is computed with numpy over the whole grid at once
and packed in one int64 per cell, so learning a rule is a sort, not a Python loop over cells.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..grids import NUM_COLOURS

Grid = np.ndarray
OUTSIDE = 11  # what a neighbour beyond the edge reads as (colours 0..9, NEW is 10)
BASE = 12


def _reach(offsets: Iterable[tuple[int, int]]) -> int:
    """How far the farthest offset (dr, dc) reaches, in rows or columns: 1 for a 3x3 neighbourhood."""
    return max((max(abs(dr), abs(dc)) for dr, dc in offsets), default=0)


def _padded_shifts(grid: Grid, offsets: Sequence[tuple[int, int]], fill: int = OUTSIDE) -> list[np.ndarray]:
    """For each offset (dr, dc), every cell's neighbour at that offset (``fill`` beyond the edge); the grid
    is padded once for all of them."""
    h, w = grid.shape
    r = _reach(offsets)
    padded = np.pad(grid.astype(np.int64), r, constant_values=fill)
    return [padded[r + dr:r + dr + h, r + dc:r + dc + w] for dr, dc in offsets]


_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_SQUARE = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _nearest(grid: Grid) -> list[np.ndarray]:
    """For each cell, the colour of the nearest non-background cell up, down, left and right of it (not
    itself); OUTSIDE when there is none."""
    g = grid.astype(np.int64)
    found = []
    for axis, reverse in ((0, False), (0, True), (1, False), (1, True)):
        a = g if axis == 1 else g.T
        if reverse:
            a = a[:, ::-1]
        index = np.where(a != 0, np.arange(a.shape[1]), -1)
        before = np.full_like(index, -1)
        before[:, 1:] = np.maximum.accumulate(index, axis=1)[:, :-1]  # strictly before the cell
        rows = np.arange(a.shape[0])[:, None]
        seen = np.where(before < 0, OUTSIDE, a[rows, np.maximum(before, 0)])
        if reverse:
            seen = seen[:, ::-1]
        found.append(seen if axis == 1 else seen.T)
    return found


def _pack(parts: Sequence[np.ndarray]) -> np.ndarray:
    key = np.zeros(parts[0].shape, dtype=np.int64)
    for p in parts:
        key = key * BASE + p
    return key.ravel()


def _row_column_colours(grid: Grid) -> np.ndarray:
    """The cell, and the set of colours (not background) in its row and in its column, as bit masks."""
    g = grid.astype(np.int64)
    bits = np.left_shift(1, g) & ~1
    rows = np.bitwise_or.reduce(bits, axis=1)[:, None] + np.zeros_like(g)
    cols = np.bitwise_or.reduce(bits, axis=0)[None, :] + np.zeros_like(g)
    return (g + BASE * (rows + (1 << 11) * cols)).ravel()


def _neighbour_count(grid: Grid) -> np.ndarray:
    around = _padded_shifts(grid, _SQUARE)
    count = sum(((n != 0) & (n != OUTSIDE)).astype(np.int64) for n in around)
    return _pack([grid.astype(np.int64), count])


def _depth(grid: Grid) -> np.ndarray:
    """The cell, and how deep it lies in the cells that are not background: 1 on the rim (a background
    cell or the edge among its 8 neighbours), 2 one ring in, and so on (background cells 0, capped at 10)."""
    h, w = grid.shape
    inside = grid != 0
    depth = np.zeros(grid.shape, dtype=np.int64)
    for _ in range(10):
        if not inside.any():
            break
        depth += inside
        padded = np.pad(inside, 1, constant_values=False)
        for dr, dc in _SQUARE:
            inside = inside & padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
    return _pack([grid.astype(np.int64), depth])


VIEWS: dict[str, Callable[[Grid], np.ndarray]] = {
    # coarse to fine: the first consistent, complete rule is the one used
    "neighbour-count": _neighbour_count,
    "cross": lambda g: _pack([g.astype(np.int64)] + _padded_shifts(g, _CROSS)),
    "nearest": lambda g: _pack([g.astype(np.int64)] + _nearest(g)),
    "row-column": _row_column_colours,
    "square": lambda g: _pack([g.astype(np.int64)] + _padded_shifts(g, _SQUARE)),
    "nearest-cross": lambda g: _pack([g.astype(np.int64)] + _nearest(g) + _padded_shifts(g, _CROSS)),
    "depth": _depth,
}


def _phase(axis: int, period: int, from_end: bool) -> Callable[[Grid], np.ndarray]:
    """The view of a cell's colour and its row's (axis 0) or column's (axis 1) place modulo ``period``, counted
    from the first line or from the last."""
    def view(grid: Grid) -> np.ndarray:
        n = grid.shape[axis]
        place = np.arange(n)[::-1] if from_end else np.arange(n)
        phase = (place % period)[:, None] if axis == 0 else (place % period)[None, :]
        return _pack([grid.astype(np.int64), np.broadcast_to(phase, grid.shape).astype(np.int64)])
    return view


def _middle(axis: int) -> Callable[[Grid], np.ndarray]:
    """The view of a cell's colour and whether it lies on the grid's middle row (axis 0) or column (axis 1)."""
    def view(grid: Grid) -> np.ndarray:
        n = grid.shape[axis]
        middle = (np.arange(n) * 2 == n - 1).astype(np.int64)  # no middle line in an even length
        middle = middle[:, None] if axis == 0 else middle[None, :]
        return _pack([grid.astype(np.int64), np.broadcast_to(middle, grid.shape)])
    return view


def _run_parity(grid: Grid, dr: int, dc: int) -> np.ndarray:
    """For each cell that is not background, whether an odd number of cells of its colour run straight
    before it, one step back being (-dr, -dc) with dr 0 or 1: every second cell along a line or a diagonal
    (background cells 0)."""
    if dr == 0:  # along rows: along the columns of the transposed grid
        return _run_parity(grid.T, dc, 0).T
    g = grid.astype(np.int64)
    w = g.shape[1]
    run = np.zeros(g.shape, dtype=np.int64)
    lo, hi = max(0, dc), w + min(0, dc)  # the cells whose step back stays inside the row before
    for r in range(1, g.shape[0]):  # a row at a time: the row before is done
        same = np.zeros(w, dtype=bool)
        same[lo:hi] = (g[r, lo:hi] != 0) & (g[r, lo:hi] == g[r - 1, lo - dc:hi - dc])
        run[r, lo:hi] = np.where(same[lo:hi], run[r - 1, lo - dc:hi - dc] + 1, 0)
    return run % 2


def _run_view(dr: int, dc: int, with_cross: bool) -> Callable[[Grid], np.ndarray]:
    """The view of a cell's colour and its run's parity (``_run_parity``), with its four neighbours or not."""
    def view(grid: Grid) -> np.ndarray:
        parts = [grid.astype(np.int64), _run_parity(grid, dr, dc)]
        return _pack(parts + (_padded_shifts(grid, _CROSS) if with_cross else []))
    return view


_RUNS = {"along rows": (0, 1), "along columns": (1, 0), "along diagonals": (1, 1), "along anti-diagonals": (1, -1)}

# every second or third row or column, counted from either end: stripes of recolouring; the middle row or
# column; every second cell of a line of one colour (tried on the inputs only)
PHASE_VIEWS: dict[str, Callable[[Grid], np.ndarray]] = {
    f"{'rows' if axis == 0 else 'columns'} mod {period}{' from the end' if from_end else ''}":
        _phase(axis, period, from_end)
    for axis in (0, 1) for period in (2, 3) for from_end in (False, True)
} | {"middle row": _middle(0), "middle column": _middle(1)} | {
    f"every second cell {name}{' with its neighbours' if cross else ''}": _run_view(dr, dc, cross)
    for cross in (False, True) for name, (dr, dc) in _RUNS.items()
}


def _view(name: str) -> Callable[[Grid], np.ndarray]:
    return VIEWS[name] if name in VIEWS else PHASE_VIEWS[name]


def learn_rule(grids: Sequence[Grid], outputs: Sequence[Grid], view: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The table (sorted views, their output colours) that turns every grid into its output, or None
    when the shapes differ or one view asks for two colours."""
    if any(g.shape != o.shape for g, o in zip(grids, outputs)):
        return None
    keys = np.concatenate([_view(view)(g) for g in grids])
    colours = np.concatenate([o.ravel().astype(np.int64) for o in outputs])
    pairs = np.unique(keys * 16 + colours)
    views = pairs // 16
    if np.any(views[1:] == views[:-1]):
        return None  # one view, two colours
    return views, pairs % 16


def apply_rule(grid: Grid, table: tuple[np.ndarray, np.ndarray], view: str) -> Grid | None:
    """The grid under the rule, or None when one of its cells shows a view that no example does."""
    views, colours = table
    keys = _view(view)(grid)
    at = np.minimum(np.searchsorted(views, keys), len(views) - 1)
    if not np.array_equal(views[at], keys):
        return None
    return colours[at].reshape(grid.shape).astype(np.uint8)


# A view that is a function of a finer one is consistent only if the finer one is: when the finer view
# asks for two colours somewhere, the coarser ones are not tried (most states fail there, at one view).
_FINER = {"neighbour-count": "square", "cross": "square", "nearest": "nearest-cross"}


Table = tuple[np.ndarray, np.ndarray]


def _first_complete_rule(views: Iterable[str], table_for: Callable[[str], Table | None], tests: Sequence[Grid]
                         ) -> tuple[str, tuple[Grid, ...]] | None:
    """The first of ``views`` whose rule (``table_for``: None where it is inconsistent) is complete on the
    test inputs: its program text (``{}`` where the grid goes) and the test grids it makes; None when none is."""
    for view in views:
        table = table_for(view)
        if table is None:
            continue
        made = [apply_rule(g, table, view) for g in tests]
        if all(m is not None for m in made):
            return f"cell_rule({{}}, {view!r}, <{len(table[0])} views>)", tuple(made)
    return None


def fit_cell_rule(grids: Sequence[Grid], outputs: Sequence[Grid], tests: Sequence[Grid]
                  ) -> tuple[str, tuple[Grid, ...]] | None:
    """The coarsest view whose rule is consistent on the training pairs and complete on the test inputs:
    its program text (``{}`` where the grid goes) and the test grids it makes; None when no view fits."""
    if any(g.shape != o.shape for g, o in zip(grids, outputs)):
        return None
    tables: dict[str, Table | None] = {}

    def table_for(view: str) -> Table | None:
        if view not in tables:
            finer = _FINER.get(view)
            tables[view] = None if finer and table_for(finer) is None else learn_rule(grids, outputs, view)
        return tables[view]

    return _first_complete_rule(VIEWS, table_for, tests)


def fit_phase_rule(grids: Sequence[Grid], outputs: Sequence[Grid], tests: Sequence[Grid]
                   ) -> tuple[str, tuple[Grid, ...]] | None:
    """A cell rule from each cell's colour and its place in every second or third row or column, or on the
    middle row or column (``PHASE_VIEWS``), consistent on the training pairs and complete on the test inputs:
    its text and the test grids, or None."""
    if any(g.shape != o.shape for g, o in zip(grids, outputs)):
        return None
    return _first_complete_rule(PHASE_VIEWS, lambda view: learn_rule(grids, outputs, view), tests)


# ---------------------------------------------------------------------------------------------
# Relational rules: the output cell copies one of the colours its view holds, whatever that colour is

def _counts_order(grid: Grid) -> tuple[int, int]:
    """The grid's most and least common colour (the lower colour on a tie)."""
    counts = np.bincount(grid.ravel().astype(np.int64), minlength=NUM_COLOURS)
    present = np.flatnonzero(counts)
    return int(present[np.argmax(counts[present])]), int(present[np.argmin(counts[present])])


def _ends(grid: Grid, axis: int) -> list[np.ndarray]:
    """For each cell, the colour at the first and at the last cell of its row (axis 0) or column (axis 1)."""
    g = grid.astype(np.int64)
    if axis == 0:
        return [np.broadcast_to(g[:, :1], g.shape), np.broadcast_to(g[:, -1:], g.shape)]
    return [np.broadcast_to(g[:1, :], g.shape), np.broadcast_to(g[-1:, :], g.shape)]


def _by_count(grid: Grid) -> list[np.ndarray]:
    most, least = _counts_order(grid)
    return [np.full(grid.shape, most, dtype=np.int64), np.full(grid.shape, least, dtype=np.int64)]


def _nearest_other(grid: Grid) -> list[np.ndarray]:
    """For each cell, the colour of the nearest cell straight up, down, left or right of it that is neither
    background nor the cell's own colour (the first direction in that order on a tie); OUTSIDE when none."""
    g = grid.astype(np.int64)
    h, w = g.shape
    found = np.full(g.shape, OUTSIDE, dtype=np.int64)
    for distance in range(1, max(h, w)):
        padded = np.pad(g, distance, constant_values=0)
        for dr, dc in _CROSS:
            seen = padded[distance + dr * distance:distance + dr * distance + h,
                          distance + dc * distance:distance + dc * distance + w]
            hit = (found == OUTSIDE) & (seen != 0) & (seen != g)
            found[hit] = seen[hit]
        if not (found == OUTSIDE).any():
            break
    return [found]


# what a cell sees: colours besides its own, and numbers that are not colours (a run's parity); coarse to fine
RELATIONAL_VIEWS: dict[str, Callable[[Grid], tuple[list[np.ndarray], list[np.ndarray]]]] = {
    "row ends": lambda g: (_ends(g, 0), []),
    "column ends": lambda g: (_ends(g, 1), []),
    "most and least common": lambda g: (_by_count(g), []),
    "nearest other colour": lambda g: (_nearest_other(g), []),
    "nearest": lambda g: (_nearest(g), []),
    "cross": lambda g: (_padded_shifts(g, _CROSS), []),
    "square": lambda g: (_padded_shifts(g, _SQUARE), []),
} | {
    f"every second cell {name}{' with its neighbours' if cross else ''}":
        (lambda g, dr=dr, dc=dc, cross=cross: (_padded_shifts(g, _CROSS) if cross else [], [_run_parity(g, dr, dc)]))
    for cross in (False, True) for name, (dr, dc) in _RUNS.items()
}
NAMED = 16  # codes from here on name a part of the view: NAMED + j is "the colour of part j"


def _named(parts: Sequence[np.ndarray], fixed: np.ndarray) -> list[np.ndarray]:
    """Each part's colour as a code: the colour itself when it is one of ``fixed`` (or beyond the edge),
    else NAMED + the first part that holds the same colour. Two cells whose views differ only by a
    renaming of the other colours then read the same."""
    codes = []
    for j, part in enumerate(parts):
        code = np.where(np.isin(part, fixed) | (part == OUTSIDE), part, NAMED + j)
        for i in range(j - 1, -1, -1):  # the first earlier part with the same colour names it
            code = np.where((code >= NAMED) & (parts[i] == part), NAMED + i, code)
        codes.append(code)
    return codes


def _relational_keys(grid: Grid, view: str, fixed: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    colours, plain = RELATIONAL_VIEWS[view](grid)
    parts = [grid.astype(np.int64)] + [np.asarray(p, dtype=np.int64) for p in colours]
    key = np.zeros(grid.shape, dtype=np.int64)
    for code in [*_named(parts, fixed), *plain]:
        key = key * 32 + code
    return key.ravel(), [p.ravel() for p in parts]


def fit_relational_rule(grids: Sequence[Grid], outputs: Sequence[Grid], tests: Sequence[Grid]
                        ) -> tuple[str, tuple[Grid, ...]] | None:
    """A cell rule that may copy a colour from the cell's view instead of naming it: "a cell of colour 5
    takes the colour at the start of its row". The colours every training and test input holds (and
    background) stay themselves; the others are named by the part of the view they sit in, so a test
    input with colours no example shows is still covered. The first of ``RELATIONAL_VIEWS`` whose rule is
    consistent on the training pairs and complete on the test inputs: its text and the test grids, or None."""
    if any(g.shape != o.shape for g, o in zip(grids, outputs)):
        return None
    fixed = functools.reduce(np.intersect1d, [np.unique(g) for g in (*grids, *tests)])
    fixed = np.union1d(fixed, [0])
    for view in RELATIONAL_VIEWS:
        keys, codes = [], []
        for g, o in zip(grids, outputs):
            key, parts = _relational_keys(g, view, fixed)
            out = o.ravel().astype(np.int64)
            code = np.where(np.isin(out, fixed), out, -1)
            for j in range(len(parts)):  # the first part that holds the output colour
                code = np.where((code < 0) & (parts[j] == out), NAMED + j, code)
            code = np.where(code < 0, out, code)  # a colour no part holds: the colour itself
            keys.append(key)
            codes.append(code)
        pairs = np.unique(np.concatenate(keys) * 64 + np.concatenate(codes))
        table_keys, table_codes = pairs // 64, pairs % 64
        if np.any(table_keys[1:] == table_keys[:-1]):
            continue  # one view, two answers
        made = []
        for t in tests:
            key, parts = _relational_keys(t, view, fixed)
            at = np.minimum(np.searchsorted(table_keys, key), len(table_keys) - 1)
            if not np.array_equal(table_keys[at], key):
                break
            code = table_codes[at]
            out = code.copy()
            for j, part in enumerate(parts):
                out = np.where(code == NAMED + j, part, out)
            made.append(out.reshape(t.shape).astype(np.uint8))
        else:
            return f"relational_rule({{}}, {view!r}, <{len(table_keys)} views>)", tuple(made)
    return None


# ---------------------------------------------------------------------------------------------
# Stamps: each cell of a colour paints a fixed pattern on the background around it

STAMP_RADII = (1, 2)  # 3x3, then 5x5 patterns; wider ones fitted chance coincidences on ARC-AGI-1 training
Stamps = dict[int, dict[tuple[int, int], int]]  # colour -> {(row offset, column offset): colour painted}


def _sources(grid: Grid, offsets: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """For each offset (dr, dc), every cell's colour at (-dr, -dc) from it: the cell whose stamp would paint
    it at that offset; -1 beyond the edge."""
    return _padded_shifts(grid, [(-dr, -dc) for dr, dc in offsets], fill=-1)


def _recolours_uniformly(grids: Sequence[Grid], outputs: Sequence[Grid]) -> bool:
    """True when every non-background input cell of one colour has one output colour in all examples,
    and some background cell changes: what stamps can do (a quick test before learning any)."""
    pairs = np.unique(np.concatenate([(g.astype(np.int64) * 16 + o)[g != 0] for g, o in zip(grids, outputs)]))
    if np.any(pairs[1:] // 16 == pairs[:-1] // 16):
        return False
    return any(np.any((g == 0) & (o != 0)) for g, o in zip(grids, outputs))


def learn_stamps(grids: Sequence[Grid], outputs: Sequence[Grid], radius: int) -> Stamps:
    """Per colour and offset, the one colour every background cell at that offset from a cell of that
    colour turns to, when that is one colour and not background; offset (0, 0) is the cell's own new colour."""
    stamps: Stamps = {}
    offsets = [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)]
    sources = [_sources(g, offsets) for g in grids]
    for i, (dr, dc) in enumerate(offsets):
        centre = (dr, dc) == (0, 0)
        votes = []
        for g, o, shifted in zip(grids, outputs, sources):
            source = shifted[i]
            cells = (source > 0) if centre else (source > 0) & (g == 0)
            votes.append(source[cells] * 16 + o[cells])
        pairs = np.unique(np.concatenate(votes))
        colours, painted = pairs // 16, pairs % 16
        single = np.ones(len(pairs), dtype=bool)
        single[1:] &= colours[1:] != colours[:-1]
        single[:-1] &= colours[:-1] != colours[1:]
        for c, v in zip(colours[single].tolist(), painted[single].tolist()):
            if v != (c if centre else 0):
                stamps.setdefault(c, {})[(dr, dc)] = v
    return stamps


def apply_stamps(grid: Grid, stamps: Stamps) -> Grid | None:
    """Every cell of a stamped colour paints its pattern on the background cells around it, then takes its
    own new colour; None when two patterns paint one cell two colours (no rule says which wins)."""
    offsets = sorted({offset for paint in stamps.values() for offset in paint})
    sources = dict(zip(offsets, _sources(grid, offsets)))
    painted = np.full(grid.shape, -1, dtype=np.int64)
    for c, paint in stamps.items():
        for (dr, dc), v in paint.items():
            if (dr, dc) == (0, 0):
                continue
            cells = (sources[(dr, dc)] == c) & (grid == 0)
            if np.any(cells & (painted >= 0) & (painted != v)):
                return None
            painted[cells] = v
    out = np.where(painted >= 0, painted, grid)
    for c, paint in stamps.items():
        if (0, 0) in paint:
            out[grid == c] = paint[(0, 0)]
    return out.astype(np.uint8)


def _reproduces(grids: Sequence[Grid], outputs: Sequence[Grid], stamps: Stamps) -> bool:
    for g, o in zip(grids, outputs):
        made = apply_stamps(g, stamps)
        if made is None or not np.array_equal(made, o):
            return False
    return True


def _pruned(grids: Sequence[Grid], outputs: Sequence[Grid], stamps: Stamps) -> Stamps:
    """The stamps without the colours the examples do without, the rarest colour tried first: a colour
    seen once beside another colour's pattern otherwise learns a piece of that pattern as its own. Whole
    colours only: an offset that the examples happen not to need may be one a test input needs."""
    counts = np.bincount(np.concatenate([g.ravel() for g in grids]), minlength=16)
    for c in sorted(stamps, key=lambda k: (counts[k], k)):
        trial = {k: p for k, p in stamps.items() if k != c}
        if trial and _reproduces(grids, outputs, trial):
            stamps = trial
    return stamps


def stamps_text(stamps: Stamps) -> str:
    """Each colour's pattern as a picture, rows joined by '/': the colour painted at each offset, '.' where
    nothing is painted, and at the centre the cell's new colour or '*' where it keeps its own; for example
    ``{1: '.7./7*7/.7.'}``: each cell of colour 1 paints 7 on its four sides."""
    def picture(paint: dict[tuple[int, int], int]) -> str:
        r = _reach(paint)
        return "/".join("".join(str(paint[(dr, dc)]) if (dr, dc) in paint else "*" if dr == dc == 0 else "."
                                for dc in range(-r, r + 1)) for dr in range(-r, r + 1))

    return "{" + ", ".join(f"{c}: {picture(p)!r}" for c, p in sorted(stamps.items())) + "}"


def fit_stamps(grids: Sequence[Grid], outputs: Sequence[Grid], tests: Sequence[Grid]
               ) -> tuple[str, tuple[Grid, ...]] | None:
    """Stamps (the smallest radius first) that turn every grid into its output, and the test grids they
    make: ``stamp({}, {colour: picture})`` (``stamps_text``); None when none fits or a test input holds a colour
    no example input does (stamps drawn in one colour are often meant for any: 3 of the 3 wrong answers
    on ARC-AGI-1 training came from guessing that a new colour paints nothing)."""
    if any(g.shape != o.shape for g, o in zip(grids, outputs)) or not _recolours_uniformly(grids, outputs):
        return None
    seen = np.unique(np.concatenate([g.ravel() for g in grids]))
    if any(np.setdiff1d(t, seen).size for t in tests):
        return None
    # the widest stamps the first example alone allows paint every cell that any stamps of all the examples
    # paint on it (those are among them): when they cannot draw its output, nothing can (one example's cost)
    if not _reproduces(grids[:1], outputs[:1], learn_stamps(grids[:1], outputs[:1], max(STAMP_RADII))):
        return None
    for radius in STAMP_RADII:
        stamps = learn_stamps(grids, outputs, radius)
        if not stamps or not _reproduces(grids, outputs, stamps):
            continue
        stamps = _pruned(grids, outputs, stamps)
        made = tuple(apply_stamps(t, stamps) for t in tests)
        if any(m is None for m in made):
            return None
        return f"stamp({{}}, {stamps_text(stamps)})", made
    return None
