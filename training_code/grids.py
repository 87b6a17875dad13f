"""Grids, the one error type for bad data, and the facts every module shares about grids.

Grids are numpy ``uint8`` arrays inside the package and lists of lists only in JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SIDE = 30  # ARC grids are 1 to 30 cells a side
NUM_COLOURS = 10  # cell values 0..9
FALLBACK_GRID: tuple[tuple[int, ...], ...] = ((0,),)  # the answer for a test input nothing else answered

Grid = np.ndarray


class ArcDataError(ValueError):
    """Bad ARC data: names the file, the task and what is wrong."""

    def __init__(self, problem: str, *, file: str | None = None, task_id: str | None = None):
        self.problem = problem
        self.file = None if file is None else str(file)
        self.task_id = task_id
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if task_id is not None:
            where.append(f"task {task_id}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


@dataclass(frozen=True)
class Where:
    """Where a grid came from, for error messages."""

    file: str | None = None
    task_id: str | None = None
    part: str = ""  # e.g. "train[2].output"

    def error(self, problem: str) -> ArcDataError:
        text = f"{self.part}: {problem}" if self.part else problem
        return ArcDataError(text, file=self.file, task_id=self.task_id)


def as_grid(value: Any, where: Where = Where()) -> Grid:
    """Validate a JSON grid (list of rows) or an array and return it as a uint8 array.

    Raises ArcDataError for ragged rows, values outside 0..9, empty grids or sides over 30.
    """
    if isinstance(value, np.ndarray):
        rows = value.tolist() if value.ndim == 2 else None
    else:
        rows = value
    if not isinstance(rows, (list, tuple)) or not rows:
        raise where.error("grid must be a non-empty list of rows")
    width = None
    for r, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or not row:
            raise where.error(f"row {r} must be a non-empty list of cells")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise where.error(f"grid is not rectangular: row 0 has {width} cells, row {r} has {len(row)}")
        for c, cell in enumerate(row):
            # bool is an int subclass; a JSON true is not a colour
            if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or not 0 <= int(cell) < NUM_COLOURS:
                raise where.error(f"cell ({r}, {c}) is {cell!r}; values must be integers 0 to 9")
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise where.error(f"grid is {len(rows)}x{width}; sides must be 1 to {MAX_SIDE}")
    return np.asarray(rows, dtype=np.uint8)


def checked_grid(value: Any) -> Grid:
    """``value`` (an array, or nested lists of integers) as a contiguous uint8 grid, checked by numpy
    rather than cell by cell: 2 dimensions, sides 1 to 30, integer (or bool) cells 0 to 9.

    For grids made inside the process (a program's output, a view about to be rendered), where
    ``as_grid``'s walk over every cell in Python would cost too much; a contiguous uint8 grid comes
    back as it is, uncopied. Raises ArcDataError saying what is wrong.
    """
    try:
        arr = np.asarray(value)
    except Exception as e:  # an object numpy cannot read; what it raises depends on the object
        raise ArcDataError(f"not an array: {type(e).__name__}") from None
    if arr.ndim != 2:
        raise ArcDataError(f"a grid has 2 dimensions, this one has {arr.ndim}")
    if not (1 <= arr.shape[0] <= MAX_SIDE and 1 <= arr.shape[1] <= MAX_SIDE):
        raise ArcDataError(f"grid is {arr.shape[0]}x{arr.shape[1]}; sides must be 1 to {MAX_SIDE}")
    if arr.dtype.kind not in "biu":
        raise ArcDataError(f"cells must be integers, got dtype {arr.dtype}")
    # a uint8 cell cannot be negative: one pass over the cells, not two, for the common case
    if (arr.dtype != np.uint8 and int(arr.min()) < 0) or int(arr.max()) >= NUM_COLOURS:
        raise ArcDataError(f"cells must be 0 to 9, got values from {int(arr.min())} to {int(arr.max())}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def grid_to_list(grid: Grid) -> list[list[int]]:
    """A grid as JSON rows."""
    return np.asarray(grid).astype(int).tolist()


def fallback_grid() -> Grid:
    return np.array(FALLBACK_GRID, dtype=np.uint8)


def grid_key(grid: Grid) -> tuple[tuple[int, ...], ...]:
    """A hashable, exact identity for a grid (used to merge equal candidates)."""
    return tuple(tuple(int(v) for v in row) for row in np.asarray(grid))
