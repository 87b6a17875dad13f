"""Tests of source specs: parsing without loading, every kind of source, training-data specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training_code.arc_loader import ArcDataset, base_task_id
from training_code.sources import load_source, source_spec


def tiny_task(with_outputs: bool = True) -> dict:
    test = [{"input": [[5]], **({"output": [[6, 0]]} if with_outputs else {})}]
    return {"train": [{"input": [[1, 1], [2, 3]], "output": [[1, 1, 4]]}], "test": test}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_source_specs_parse_without_loading(tmp_path):
    assert source_spec("code*0.5").kind == "code" and source_spec("code*0.5").weight == 0.5
    assert source_spec("arc-agi-2/evaluation").kind == "bundled"
    barc = source_spec(f"barc-3-8-{tmp_path}")
    assert (barc.kind, barc.weight, barc.max_examples, barc.location) == ("barc", 3.0, 8, str(tmp_path))
    assert source_spec(str(tmp_path)).kind == "directory"
    with pytest.raises(ValueError, match="arc-agi-1/training"):
        source_spec("arc-agi-3/training")


def test_load_source_understands_every_spec(tmp_path):
    assert load_source("arc-agi-1/evaluation", np.random.default_rng(0))[0].name == "arc-agi-1/evaluation"
    c = write_json(tmp_path / "x_challenges.json", {"t": tiny_task(with_outputs=False)})
    write_json(tmp_path / "x_solutions.json", {"t": [[[6, 0]]]})
    ds, weight = load_source(f"{c}*2.5", np.random.default_rng(0))
    assert weight == 2.5 and ds.solutions()["t"][0].tolist() == [[6, 0]]
    with pytest.raises(ValueError, match="neither"):
        load_source(str(tmp_path / "missing"), np.random.default_rng(0))


def test_reversed_source_swaps_inputs_and_outputs():
    spec = source_spec("reversed:arc-agi-1/training*0.5")
    assert (spec.kind, spec.location, spec.weight) == ("reversed", "arc-agi-1/training", 0.5)
    reversed_set, weight = load_source("reversed:arc-agi-1/training*0.5", np.random.default_rng(0))
    original = ArcDataset.from_bundled("arc-agi-1/training")
    assert weight == 0.5 and len(reversed_set.tasks) == len(original.tasks)
    task = reversed_set.tasks["007bbfb7-rev"]
    source = original.tasks["007bbfb7"]
    assert np.array_equal(task.train[0].input, source.train[0].output)
    assert np.array_equal(task.test[0].output, source.test[0].input)


def test_generated_source_makes_new_tasks_that_their_programs_solve():
    from training_code.induction.programs import GENERATORS, PROGRAMS, run_trusted_program

    generated, weight = load_source("generated:2*0.25", np.random.default_rng(0))
    assert weight == 0.25 and len(generated.tasks) == 2 * len(GENERATORS)
    original = ArcDataset.from_bundled("arc-agi-1/training")
    for task_id, task in list(generated.tasks.items())[:20]:
        base = base_task_id(task_id)
        assert base in GENERATORS and task_id != base
        for example in (*task.train, *task.test):
            assert np.array_equal(run_trusted_program(PROGRAMS[base], example.input), example.output)
        # fresh inputs, not the original task's
        assert not any(np.array_equal(task.test[0].input, e.input) for e in original.tasks[base].train)
    again, _ = load_source("generated:2", np.random.default_rng(0))
    assert all(np.array_equal(a.test[0].input, b.test[0].input)
               for a, b in zip(generated.tasks.values(), again.tasks.values()))  # same seed, same tasks
    for bad in ("generated:0", "generated:x"):
        with pytest.raises(ValueError, match="generated:N with N >= 1"):
            source_spec(bad)
