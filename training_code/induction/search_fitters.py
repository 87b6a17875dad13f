"""The last moves of the program search: each is fitted to the training pairs of one state (a colour map,
tables from object or region features to colours, stamps, counts, picked crops and parts, tiles turned
their own ways) and gives the test outputs, or None when it does not fit every pair."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from ..grids import MAX_SIDE, NUM_COLOURS
from . import dsl
from .dsl import label
from .search_steps import (
    MAX_MOVING,
    Grid,
    Shape,
    _check_side,
    _fitting_ratio,
    parts_by_lines,
    parts_equal,
    shapes,
)


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
