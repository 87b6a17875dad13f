"""Tests for training_code/induction/programs: every program reproduces every pair of its ARC-AGI-1 training task,
and every generator gives valid, reproducible inputs on which its program gives valid outputs."""

from __future__ import annotations

import numpy as np
import pytest

from training_code.arc_loader import ArcDataset, Task
from training_code.grids import checked_grid, grid_key
from training_code.induction.code_tasks import CODE_CHARACTERS
from training_code.induction.programs import GENERATORS, PROGRAMS, compile_program, new_task, run_trusted_program
from training_code.induction.sandbox import Sandbox, forbidden_reason

SEEDS = range(4)


@pytest.fixture(scope="module")
def training_set() -> ArcDataset:
    return ArcDataset.from_bundled("arc-agi-1/training")


def pairs(task: Task):
    return [(e.input, e.output) for e in (*task.train, *task.test)]


def test_registry_sizes():
    assert len(PROGRAMS) >= 50
    assert len(GENERATORS) >= 15
    assert set(GENERATORS) <= set(PROGRAMS)


@pytest.mark.parametrize("task_id", sorted(PROGRAMS))
def test_program_solves_every_pair_of_its_task(task_id, training_set):
    solve = compile_program(PROGRAMS[task_id])
    for i, (grid_in, grid_out) in enumerate(pairs(training_set.tasks[task_id])):
        got = checked_grid(solve(grid_in.copy()))
        assert got.shape == grid_out.shape and np.array_equal(got, grid_out), f"pair {i}"


@pytest.mark.parametrize("task_id", sorted(PROGRAMS))
def test_program_text_is_what_a_model_may_write(task_id):
    source = PROGRAMS[task_id]
    assert source.startswith("def solve(grid):\n") and source.endswith("\n")
    assert set(source) <= set(CODE_CHARACTERS)
    assert forbidden_reason(source) is None  # the sandbox accepts it
    assert "import" not in source  # the DSL's names and np are already there


def test_every_program_runs_in_the_sandbox(training_set):
    """The same programs through the safe executor (one worker; about a second in all)."""
    with Sandbox(timeout=5.0) as box:
        for task_id, source in PROGRAMS.items():
            task_pairs = pairs(training_set.tasks[task_id])
            results = box.run(source, [x for x, _ in task_pairs])
            assert all(r.ok and np.array_equal(r.grid, want) for (_, want), r in zip(task_pairs, results)), task_id


@pytest.mark.parametrize("task_id", sorted(GENERATORS))
def test_generator_inputs_and_program_outputs_are_valid_grids(task_id):
    for seed in SEEDS:
        grid = GENERATORS[task_id](np.random.default_rng(seed))
        assert isinstance(grid, np.ndarray) and grid.dtype == np.uint8
        assert np.array_equal(checked_grid(grid), grid)
        checked_grid(run_trusted_program(PROGRAMS[task_id], grid))  # raises ValueError when not a grid


@pytest.mark.parametrize("task_id", sorted(GENERATORS))
def test_generators_are_deterministic_per_seed(task_id):
    first = GENERATORS[task_id](np.random.default_rng(7))
    again = GENERATORS[task_id](np.random.default_rng(7))
    assert np.array_equal(first, again)
    draws = {grid_key(GENERATORS[task_id](np.random.default_rng(s))) for s in range(6)}
    assert len(draws) > 1  # the generator does vary with the seed


def test_new_task_builds_a_task_from_generator_and_program():
    task = new_task("007bbfb7", np.random.default_rng(0), n_examples=5)
    assert task.task_id == "007bbfb7-gen" and task.source == "generated:007bbfb7"
    assert len(task.train) == 4 and len(task.test) == 1
    examples = [*task.train, *task.test]
    assert len({grid_key(e.input) for e in examples}) == 5  # distinct inputs
    for e in examples:
        assert np.array_equal(e.output, run_trusted_program(PROGRAMS["007bbfb7"], e.input))


def test_new_task_is_deterministic_per_seed():
    a = new_task("a699fb00", np.random.default_rng(3), new_id="x-1")
    b = new_task("a699fb00", np.random.default_rng(3), new_id="x-1")
    assert a.task_id == "x-1"
    for ea, eb in zip((*a.train, *a.test), (*b.train, *b.test)):
        assert np.array_equal(ea.input, eb.input) and np.array_equal(ea.output, eb.output)


def test_new_task_refuses_what_it_cannot_build():
    with pytest.raises(ValueError):
        new_task("007bbfb7", np.random.default_rng(0), n_examples=1)
    with pytest.raises(KeyError):
        new_task("not-a-task", np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct inputs"):
        new_task("e9afcf9a", np.random.default_rng(0), n_examples=80)  # only 72 inputs exist


def test_compile_program_requires_solve():
    with pytest.raises(ValueError):
        compile_program("def other(grid):\n    return grid\n")
