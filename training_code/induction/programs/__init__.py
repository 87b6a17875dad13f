"""Programs that solve ARC tasks, and generators of new inputs for them ("code as a task").

* ``PROGRAMS``: task id -> the source text of a program defining ``solve(grid)`` in the grid DSL
  (``training_code.induction.dsl``); each reproduces every pair of its task (``tests/test_programs.py``).
* ``GENERATORS``: task id -> ``generate(rng)`` returning a new input grid like the task's inputs.
* ``new_task``: a fresh task from a generator and its program: unlimited new examples per program.

``compile_program`` runs the project's OWN program texts in this process (they are part of the
source tree and reviewed like code). Programs written by a model never go through it: they run in
``training_code.induction.sandbox``, in a separate, restricted process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ...arc_loader import Example, Task
from ...grids import Grid, checked_grid, grid_key
from .. import dsl
from .arc1_training import PROGRAMS as ARC1_TRAINING_PROGRAMS
from .generators import GENERATORS

PROGRAMS: dict[str, str] = {task_id: source.strip("\n") + "\n" for task_id, source in ARC1_TRAINING_PROGRAMS.items()}


@lru_cache(maxsize=1024)
def compile_program(source: str) -> Callable[[Grid], object]:
    """The ``solve`` function of one of the project's own program texts, run in this process.

    Only for trusted texts (``PROGRAMS``); a model's programs go through ``sandbox.Sandbox``.
    """
    names = dsl.namespace()
    exec(compile(source, "<program>", "exec"), names)  # trusted source: the project's own programs
    solve = names.get("solve")
    if not callable(solve):
        raise ValueError("the program defines no solve(grid) function")
    return solve


def run_trusted_program(source: str, grid: Grid) -> Grid:
    """A trusted program's output for ``grid``, checked to be an ARC grid (ValueError otherwise)."""
    return checked_grid(compile_program(source)(np.array(grid, dtype=np.uint8)))


def new_task(task_id: str, rng: np.random.Generator, n_examples: int = 4, new_id: str | None = None,
             max_tries: int = 200) -> Task:
    """A new task for ``task_id``'s program: ``n_examples`` distinct generated inputs with the
    program's outputs, the last one the test example.

    The task id is ``new_id`` (default ``<task_id>-gen``). Raises KeyError for a task without a
    generator and ValueError when the generator cannot give enough distinct inputs.
    """
    if n_examples < 2:
        raise ValueError(f"a task needs at least 2 examples (training and test), got {n_examples}")
    generate = GENERATORS[task_id]
    source = PROGRAMS[task_id]
    examples: list[Example] = []
    seen: set = set()
    for _ in range(max_tries):
        grid = checked_grid(generate(rng))
        key = grid_key(grid)
        if key in seen:
            continue
        seen.add(key)
        examples.append(Example(grid, run_trusted_program(source, grid)))
        if len(examples) == n_examples:
            return Task(new_id or f"{task_id}-gen", tuple(examples[:-1]), (examples[-1],),
                        source=f"generated:{task_id}")
    raise ValueError(f"task {task_id}: only {len(examples)} distinct inputs in {max_tries} draws, "
                     f"{n_examples} wanted")


__all__ = ["GENERATORS", "PROGRAMS", "compile_program", "new_task", "run_trusted_program"]
