"""Input generators: for a task with a program, new input grids drawn like the task's own inputs.

``GENERATORS[task_id](rng)`` returns a new input grid for the task; running the task's program on it
gives the output, so a program and its generator make as many new examples as wanted (``new_task``
in ``training_code.induction.programs``). Sizes and colours follow the task's examples; every generator keeps
the program's output within 30 x 30.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..dsl import Grid

Generator = Callable[[np.random.Generator], Grid]
ALL_COLOURS = tuple(range(1, 10))  # every colour but the background 0


def _pick(rng: np.random.Generator, options: Sequence[int], k: int = 1) -> list[int]:
    """``k`` distinct values of ``options``."""
    return [int(v) for v in rng.choice(np.asarray(options), size=k, replace=False)]


def _random_grid(rng: np.random.Generator, height: int, width: int, palette: Sequence[int],
                 fill: float = 1.0, background: int = 0) -> Grid:
    """Each cell a random colour of ``palette`` with probability ``fill``, else ``background``."""
    cells = rng.choice(np.asarray(palette), size=(height, width))
    return np.where(rng.random((height, width)) < fill, cells, background).astype(np.uint8)


def _sparse_cells(rng: np.random.Generator, height: int, width: int, n: int, gap: int = 1) -> list[tuple[int, int]]:
    """Up to ``n`` random cells, any two more than ``gap`` cells apart in rows or columns."""
    chosen: list[tuple[int, int]] = []
    for _ in range(50 * n):
        if len(chosen) == n:
            break
        r, c = int(rng.integers(height)), int(rng.integers(width))
        if all(max(abs(r - a), abs(c - b)) > gap for a, b in chosen):
            chosen.append((r, c))
    return chosen


def _with_separator(a: Grid, b: Grid, colour: int | None, axis: int) -> Grid:
    """Two halves joined along ``axis``, with a one-cell line of ``colour`` between them (None: none)."""
    parts = [a, b]
    if colour is not None:
        line_shape = (1, a.shape[1]) if axis == 0 else (a.shape[0], 1)
        parts.insert(1, np.full(line_shape, colour, dtype=np.uint8))
    return np.concatenate(parts, axis=axis)


def _halves(shape: tuple[int, int], first: int, second: int, separator: int | None, axis: int,
            fill: float = 0.5) -> Generator:
    """Inputs of two halves of one shape, cells of ``first`` and of ``second`` on 0, joined along ``axis``."""

    def generate(rng: np.random.Generator) -> Grid:
        a = _random_grid(rng, *shape, [first], fill)
        b = _random_grid(rng, *shape, [second], fill)
        return _with_separator(a, b, separator, axis)

    return generate


def _small(sizes: Sequence[tuple[int, int]], palette: Sequence[int] = ALL_COLOURS, fill: float = 1.0,
           colours_used: tuple[int, int] = (2, 4)) -> Generator:
    """Small random grids: a size from ``sizes``, a few colours of ``palette``, cells filled at ``fill``."""

    def generate(rng: np.random.Generator) -> Grid:
        h, w = sizes[int(rng.integers(len(sizes)))]
        k = int(rng.integers(colours_used[0], min(colours_used[1], len(palette)) + 1))
        return _random_grid(rng, h, w, _pick(rng, palette, k), fill)

    return generate


def _one_colour_mask(rng: np.random.Generator, height: int, width: int, palette: Sequence[int] = ALL_COLOURS,
                     fill: float = 0.5) -> Grid:
    """Cells of one random colour on 0, at least one of them."""
    colour = _pick(rng, palette)[0]
    grid = _random_grid(rng, height, width, [colour], fill)
    if not grid.any():
        grid[int(rng.integers(height)), int(rng.integers(width))] = colour
    return grid


def gen_0d3d703e(rng: np.random.Generator) -> Grid:
    row = _pick(rng, [1, 2, 3, 4, 5, 6, 8, 9], 3)
    return np.tile(np.asarray(row, dtype=np.uint8), (3, 1))


def gen_25ff71a9(rng: np.random.Generator) -> Grid:
    grid = np.zeros((3, 3), dtype=np.uint8)
    grid[:2] = _one_colour_mask(rng, 2, 3, [1, 2], fill=0.5)
    return grid


def gen_9dfd6313(rng: np.random.Generator) -> Grid:
    n = int(rng.integers(3, 7))
    grid = _random_grid(rng, n, n, _pick(rng, [1, 2, 3, 4, 6, 8], 3), fill=0.3)
    grid = np.tril(grid, -1).astype(np.uint8)
    np.fill_diagonal(grid, 5)
    return grid


def gen_b91ae062(rng: np.random.Generator) -> Grid:
    return _random_grid(rng, 3, 3, _pick(rng, ALL_COLOURS, int(rng.integers(2, 5))), fill=0.7)


def gen_007bbfb7(rng: np.random.Generator) -> Grid:
    return _one_colour_mask(rng, 3, 3, fill=0.55)


def gen_c3e719e8(rng: np.random.Generator) -> Grid:
    """3 x 3 with one colour in 4 or 5 cells (a unique most common colour) and others in the rest."""
    main, *others = _pick(rng, ALL_COLOURS, 4)
    n = int(rng.integers(4, 6))
    cells = np.asarray([main] * n + [others[int(rng.integers(3))] for _ in range(9 - n)], dtype=np.uint8)
    return rng.permutation(cells).reshape(3, 3)


def gen_d631b094(rng: np.random.Generator) -> Grid:
    colour = _pick(rng, ALL_COLOURS)[0]
    n = int(rng.integers(1, 6))
    cells = np.zeros(9, dtype=np.uint8)
    cells[rng.choice(9, size=n, replace=False)] = colour
    return cells.reshape(3, 3)


def gen_44f52bb0(rng: np.random.Generator) -> Grid:
    grid = _random_grid(rng, 3, 3, [2], fill=0.5)
    if rng.random() < 0.5:
        grid[:, 2] = grid[:, 0]  # mirror the left column: symmetric
    return grid


def gen_5582e5ca(rng: np.random.Generator) -> Grid:
    return gen_c3e719e8(rng)


def gen_f76d97a5(rng: np.random.Generator) -> Grid:
    n = int(rng.integers(3, 6))
    colour = _pick(rng, [3, 4, 6, 9])[0]
    return _random_grid(rng, n, n, [colour], fill=0.5, background=5)


def gen_1e0a9b12(rng: np.random.Generator) -> Grid:
    n = int(rng.integers(4, 7))
    return _random_grid(rng, n, n, _pick(rng, ALL_COLOURS, 4), fill=0.3)


def _hollow_rectangles(colour: int, size_range: tuple[int, int], noise: float) -> Generator:
    """Outlines of rectangles of ``colour`` (some with a gap) and scattered cells of ``colour``."""

    def generate(rng: np.random.Generator) -> Grid:
        n = int(rng.integers(*size_range))
        grid = _random_grid(rng, n, n, [colour], fill=noise)
        for _ in range(int(rng.integers(1, 4))):
            h, w = int(rng.integers(3, max(4, n // 2 + 1))), int(rng.integers(3, max(4, n // 2 + 1)))
            top, left = int(rng.integers(0, n - h + 1)), int(rng.integers(0, n - w + 1))
            grid[top : top + h, left : left + w] = 0
            grid[top, left : left + w] = grid[top + h - 1, left : left + w] = colour
            grid[top : top + h, left] = grid[top : top + h, left + w - 1] = colour
            if rng.random() < 0.25:  # an open outline: nothing is enclosed
                grid[top, left + 1] = 0
        return grid

    return generate


def _pixels(size_range: tuple[int, int], palette: Sequence[int], n_range: tuple[int, int], gap: int = 1,
            square: bool = True) -> Generator:
    """Single cells of colours from ``palette`` on 0, more than ``gap`` cells apart."""

    def generate(rng: np.random.Generator) -> Grid:
        h = int(rng.integers(*size_range))
        w = h if square else int(rng.integers(*size_range))
        grid = np.zeros((h, w), dtype=np.uint8)
        for r, c in _sparse_cells(rng, h, w, int(rng.integers(*n_range)), gap):
            grid[r, c] = _pick(rng, palette)[0]
        return grid

    return generate


def gen_6f8cd79b(rng: np.random.Generator) -> Grid:
    return np.zeros((int(rng.integers(3, 8)), int(rng.integers(3, 8))), dtype=np.uint8)


def gen_a699fb00(rng: np.random.Generator) -> Grid:
    n = int(rng.integers(5, 11))
    grid = np.zeros((n, n), dtype=np.uint8)
    for r in range(0, n, 2):
        if rng.random() < 0.6:
            length = int(rng.integers(2, max(3, n // 2)))  # cells of 1, one apart
            start = int(rng.integers(0, max(1, n - 2 * length + 2)))
            grid[r, start : start + 2 * length - 1 : 2] = 1
    return grid


def gen_1cf80156(rng: np.random.Generator) -> Grid:
    """A random connected blob of one colour somewhere on a 12 x 12 grid."""
    grid = np.zeros((12, 12), dtype=np.uint8)
    colour = _pick(rng, ALL_COLOURS)[0]
    r, c = int(rng.integers(2, 10)), int(rng.integers(2, 10))
    for _ in range(int(rng.integers(3, 12))):
        grid[r, c] = colour
        dr, dc = [(0, 1), (1, 0), (0, -1), (-1, 0)][int(rng.integers(4))]
        r, c = int(np.clip(r + dr, 0, 11)), int(np.clip(c + dc, 0, 11))
    return grid


def gen_3aa6fb7a(rng: np.random.Generator) -> Grid:
    """L shapes of three 8s (a 2 x 2 square less one corner) that do not touch."""
    grid = np.zeros((7, 7), dtype=np.uint8)
    for r, c in _sparse_cells(rng, 6, 6, int(rng.integers(1, 5)), gap=2):
        square = np.full((2, 2), 8, dtype=np.uint8)
        square[int(rng.integers(2)), int(rng.integers(2))] = 0
        grid[r : r + 2, c : c + 2] = square
    return grid


def gen_a85d4709(rng: np.random.Generator) -> Grid:
    grid = np.zeros((3, 3), dtype=np.uint8)
    grid[np.arange(3), rng.integers(0, 3, size=3)] = 5
    return grid


def gen_25d8a9c8(rng: np.random.Generator) -> Grid:
    palette = _pick(rng, [1, 2, 3, 4, 6, 7, 8, 9], 3)
    grid = _random_grid(rng, 3, 3, palette)
    for r in range(3):
        if rng.random() < 0.4:
            grid[r] = grid[r, 0]
    return grid


def gen_e9afcf9a(rng: np.random.Generator) -> Grid:
    a, b = _pick(rng, ALL_COLOURS, 2)
    return np.array([[a] * 6, [b] * 6], dtype=np.uint8)


def gen_623ea044(rng: np.random.Generator) -> Grid:
    n = int(rng.integers(7, 18))
    grid = np.zeros((n, n), dtype=np.uint8)
    grid[int(rng.integers(n)), int(rng.integers(n))] = _pick(rng, ALL_COLOURS)[0]
    return grid


def gen_97999447(rng: np.random.Generator) -> Grid:
    h, w = int(rng.integers(6, 11)), int(rng.integers(7, 13))
    grid = np.zeros((h, w), dtype=np.uint8)
    rows = rng.choice(h, size=int(rng.integers(1, 4)), replace=False)
    for r in rows:
        grid[r, int(rng.integers(w - 1))] = _pick(rng, [2, 3, 4, 6, 8])[0]
    return grid


def gen_178fcbfb(rng: np.random.Generator) -> Grid:
    """Cells of 1, 2 and 3, each in a row and a column of its own."""
    h, w = int(rng.integers(8, 13)), int(rng.integers(8, 13))
    n = int(rng.integers(2, 5))
    grid = np.zeros((h, w), dtype=np.uint8)
    colours = [2] + [int(c) for c in rng.choice([1, 3], size=n - 1)]
    for r, c, colour in zip(rng.choice(h, n, replace=False), rng.choice(w, n, replace=False), colours):
        grid[r, c] = colour
    return grid


def gen_feca6190(rng: np.random.Generator) -> Grid:
    grid = np.zeros((1, 5), dtype=np.uint8)
    k = int(rng.integers(1, 5))
    grid[0, rng.choice(5, size=k, replace=False)] = _pick(rng, ALL_COLOURS, k)
    return grid


def gen_6e02f1e3(rng: np.random.Generator) -> Grid:
    palette = _pick(rng, [2, 3, 4], int(rng.integers(1, 4)))
    while True:
        grid = _random_grid(rng, 3, 3, palette)
        if len(np.unique(grid)) == len(palette):
            return grid


def gen_d13f3404(rng: np.random.Generator) -> Grid:
    grid = np.zeros((3, 3), dtype=np.uint8)
    for r, c in _sparse_cells(rng, 3, 3, int(rng.integers(1, 4)), gap=0):
        grid[r, c] = _pick(rng, ALL_COLOURS)[0]
    return grid


GENERATORS: dict[str, Generator] = {
    # whole-grid geometry: the colours and sizes of each task's own inputs
    "3c9b0459": _small([(3, 3)], ALL_COLOURS, colours_used=(2, 4)),
    "6150a2bd": _small([(3, 3)], range(0, 9), colours_used=(2, 4)),
    "67a3c6ac": _small([(3, 3), (4, 4), (5, 5), (6, 6), (7, 7)], [1, 2, 6, 7], colours_used=(3, 4)),
    "68b16354": _small([(5, 5), (7, 7)], [1, 2, 3, 4, 7, 8], colours_used=(3, 5)),
    "74dd1130": _small([(3, 3)], ALL_COLOURS, colours_used=(2, 4)),
    "9dfd6313": gen_9dfd6313,
    "ed36ccf7": _small([(3, 3)], [2, 5, 6, 9], fill=0.5, colours_used=(1, 1)),
    "25ff71a9": gen_25ff71a9,
    "a416b8f3": _small([(3, 3), (4, 3), (4, 4), (5, 4)], ALL_COLOURS, fill=0.6),
    "4c4377d9": _small([(3, 4)], ALL_COLOURS, colours_used=(2, 2)),
    "6d0aefbc": _small([(3, 3)], [1, 6, 8], colours_used=(2, 3)),
    "c9e6f938": _small([(3, 3)], [7], fill=0.5, colours_used=(1, 1)),
    "6fa7a44f": _small([(3, 3)], ALL_COLOURS, colours_used=(2, 4)),
    "8be77c9e": _small([(3, 3)], [1], fill=0.5, colours_used=(1, 1)),
    "62c24649": _small([(3, 3)], [1, 2, 3], fill=0.7, colours_used=(2, 3)),
    "67e8384a": _small([(3, 3)], ALL_COLOURS, colours_used=(2, 4)),
    "3af2c5a8": _small([(3, 4)], [3, 4, 8], fill=0.5, colours_used=(1, 1)),
    "46442a0e": _small([(2, 2), (3, 3)], ALL_COLOURS, colours_used=(2, 3)),
    "7fe24cdd": _small([(3, 3)], ALL_COLOURS, fill=0.7, colours_used=(2, 3)),
    # scaling and tiling
    "c59eb873": _small([(2, 2), (3, 3), (4, 4), (5, 5)], ALL_COLOURS, fill=0.6),
    "9172f3a0": _small([(3, 3)], ALL_COLOURS, fill=0.6),
    "b91ae062": gen_b91ae062,
    "007bbfb7": gen_007bbfb7,
    "cce03e0d": _small([(3, 3)], [1, 2], fill=0.7, colours_used=(2, 2)),
    "c3e719e8": gen_c3e719e8,
    # colours
    "0d3d703e": gen_0d3d703e,
    "c8f0f002": _small([(3, 4), (3, 5), (3, 6)], [1, 7, 8], colours_used=(3, 3)),
    "b1948b0a": _small([(3, 4), (3, 6), (4, 4), (6, 4)], [6, 7], colours_used=(2, 2)),
    "f76d97a5": gen_f76d97a5,
    "5582e5ca": gen_5582e5ca,
    "d631b094": gen_d631b094,
    "44f52bb0": gen_44f52bb0,
    "a85d4709": gen_a85d4709,
    "25d8a9c8": gen_25d8a9c8,
    "6e02f1e3": gen_6e02f1e3,
    # halves combined by a rule
    "99b1bc43": _halves((4, 4), 1, 2, 4, axis=0),
    "0520fde7": _halves((3, 3), 1, 1, 5, axis=1),
    "fafffa47": _halves((3, 3), 9, 1, None, axis=0),
    "6430c8c4": _halves((4, 4), 7, 2, 4, axis=0),
    "94f9d214": _halves((4, 4), 3, 1, None, axis=0),
    "ce4f8723": _halves((4, 4), 1, 2, 4, axis=0),
    "f2829549": _halves((4, 3), 7, 5, 1, axis=1),
    "1b2d62fb": _halves((5, 3), 9, 9, 1, axis=1),
    "dae9d2b5": _halves((3, 3), 4, 3, None, axis=1),
    "3428a4f5": _halves((6, 5), 2, 2, 4, axis=0),
    # objects, filling and lines
    "1e0a9b12": gen_1e0a9b12,
    "00d62c1b": _hollow_rectangles(3, (6, 21), noise=0.08),
    "a5313dff": _hollow_rectangles(2, (8, 13), noise=0.05),
    "4258a5f9": _pixels((9, 10), [5], (2, 6), gap=2),
    "dc1df850": _pixels((4, 11), [2, 3, 6, 8], (2, 5), gap=2, square=False),
    "ce22a75a": _pixels((9, 10), [5], (2, 5), gap=2),
    "6f8cd79b": gen_6f8cd79b,
    "a699fb00": gen_a699fb00,
    "1cf80156": gen_1cf80156,
    "3aa6fb7a": gen_3aa6fb7a,
    "d037b0a7": _pixels((3, 4), [2, 3, 4, 6, 7, 8], (1, 4), gap=0),
    "e9afcf9a": gen_e9afcf9a,
    "623ea044": gen_623ea044,
    "97999447": gen_97999447,
    "178fcbfb": gen_178fcbfb,
    "feca6190": gen_feca6190,
    "d13f3404": gen_d13f3404,
}
