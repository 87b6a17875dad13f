"""Tests for training_code/induction/sandbox.py: bad programs are stopped and reported with the right kind, and a
batch goes on after each of them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training_code.arc_loader import Example, Task
from training_code.induction.sandbox import (
    ERROR_KINDS,
    RunResult,
    Sandbox,
    forbidden_reason,
    program_outputs,
)

GRID = np.array([[1, 2], [3, 4]], dtype=np.uint8)
GOOD = "def solve(grid):\n    return flip_h(grid)\n"
ENDLESS = "def solve(grid):\n    while True:\n        pass\n"
OS_SYSTEM = "import os\n\ndef solve(grid):\n    os.system('touch pwned')\n    return grid\n"
FILE_WRITE = "def solve(grid):\n    open('pwned.txt', 'w').write('x')\n    return grid\n"
BEYOND_LIMIT = "def solve(grid):\n    block = np.ones(1 << 26)\n    return grid\n"  # 512 MiB, over 256
SOCKET = ("import socket\n\ndef solve(grid):\n"
          "    socket.create_connection(('example.com', 80))\n    return grid\n")
HUGE = "def solve(grid):\n    block = np.ones((100000, 100000))\n    return grid\n"
HUGE_LIST = "def solve(grid):\n    cells = [0] * (10 ** 10)\n    return grid\n"


@pytest.fixture(scope="module")
def box():
    with Sandbox(timeout=1.0, memory_mb=256) as sandbox:
        yield sandbox


def assert_good(result: RunResult) -> None:
    assert result.ok and result.error is None
    assert np.array_equal(result.grid, np.fliplr(GRID))


def test_a_good_program_gives_its_grid(box):
    assert_good(box.run_one(GOOD, GRID))


def test_an_endless_loop_times_out_and_the_next_program_runs(box):
    began = time.monotonic()
    result = box.run_one(ENDLESS, GRID)
    assert (result.ok, result.grid, result.error) == (False, None, "timeout")
    assert time.monotonic() - began < 5
    assert_good(box.run_one(GOOD, GRID))


def test_the_run_deadline_stops_a_program_before_its_own_timeout():
    with Sandbox(timeout=600.0) as long_box:  # without the deadline this would wait ten minutes per grid
        results = long_box.run(ENDLESS, [GRID, GRID], deadline=time.monotonic() + 0.5)
        assert [(r.ok, r.error) for r in results] == [(False, "timeout")] * 2
        assert results[0].message == "stopped at the run's deadline"
        assert_good(long_box.run_one(GOOD, GRID))  # the next program gets a fresh worker


@pytest.mark.parametrize("source", [OS_SYSTEM, FILE_WRITE, SOCKET], ids=["os.system", "file write", "socket"])
def test_system_file_and_network_access_are_forbidden(box, source):
    result = box.run_one(source, GRID)
    assert (result.ok, result.error) == (False, "forbidden"), result
    assert result.message
    assert_good(box.run_one(GOOD, GRID))


@pytest.mark.parametrize("source", [HUGE, HUGE_LIST, BEYOND_LIMIT], ids=["numpy array", "list", "over the limit"])
def test_a_huge_allocation_is_stopped_as_memory(box, source):
    result = box.run_one(source, GRID)
    assert (result.ok, result.error) == (False, "memory"), result
    assert_good(box.run_one(GOOD, GRID))


def test_the_worker_guards_hold_without_the_ast_check(tmp_path):
    """The inner layers alone: restricted import, the audit hook and the missing builtins."""
    target = tmp_path / "written.npy"
    save = f"def solve(grid):\n    np.save({str(target)!r}, grid)\n    return grid\n"
    caught = ("def solve(grid):\n    try:\n"
              f"        np.save({str(target)!r}, grid)\n    except Exception:\n        pass\n    return grid\n")
    with Sandbox(timeout=1.0, ast_check=False, worker_ast_check=False) as box:
        assert box.run_one(OS_SYSTEM, GRID).error == "forbidden"
        assert box.run_one(SOCKET, GRID).error == "forbidden"
        assert box.run_one(save, GRID).error == "forbidden"
        assert box.run_one(caught, GRID).error == "forbidden"  # catching the refusal does not hide it
        assert box.run_one(FILE_WRITE, GRID).error == "error"  # NameError: open is not a builtin there
        assert_good(box.run_one(GOOD, GRID))
    assert not target.exists()


def test_a_batch_goes_on_after_each_bad_program(tmp_path):
    touched, written = tmp_path / "touched", tmp_path / "written.txt"
    sources = [GOOD, ENDLESS, GOOD, OS_SYSTEM.replace("pwned", str(touched)),
               FILE_WRITE.replace("pwned.txt", str(written)), SOCKET, HUGE, GOOD]
    with Sandbox(timeout=1.0) as box:
        results = [box.run_one(source, GRID) for source in sources]
    assert [r.error for r in results] == [None, "timeout", None, "forbidden", "forbidden", "forbidden", "memory", None]
    for r in (results[0], results[2], results[-1]):
        assert_good(r)
    assert not touched.exists() and not written.exists()


def test_errors_and_invalid_outputs(box):
    cases = {
        "def solve(grid):\n    return 1 / 0\n": "error",
        "def solve(grid)\n    return grid\n": "error",  # syntax
        "def other(grid):\n    return grid\n": "error",  # no solve
        "def solve(grid):\n    return grid + 20\n": "invalid-output",
        "def solve(grid):\n    return np.zeros((31, 2), dtype=int)\n": "invalid-output",
        "def solve(grid):\n    return [1, 2, 3]\n": "invalid-output",
        "def solve(grid):\n    return 'grid'\n": "invalid-output",
    }
    for source, kind in cases.items():
        result = box.run_one(source, GRID)
        assert (result.ok, result.error) == (False, kind), (source, result)
        assert result.error in ERROR_KINDS


def test_programs_may_import_the_whitelist_and_print(box):
    source = ("import math\nimport numpy as np\nfrom collections import Counter\n"
              "import training_code.induction.dsl as d\n\ndef solve(grid):\n    print('hello')\n"
              "    assert math.isfinite(1.0) and Counter([1])[1] == 1\n    return d.flip_h(grid)\n")
    assert_good(box.run_one(source, GRID))


def test_run_gives_one_result_per_grid_and_stops_after_a_timeout(box):
    slow_on_big = ("def solve(grid):\n    while grid.shape[0] > 2:\n        pass\n    return grid\n")
    big = np.zeros((3, 3), dtype=np.uint8)
    results = box.run(slow_on_big, [GRID, big, GRID])
    assert results[0].ok and [r.error for r in results[1:]] == ["timeout", "timeout"]
    assert box.run(GOOD, []) == []


def test_forbidden_reason_names_the_problem():
    assert forbidden_reason(GOOD) is None
    assert "os" in forbidden_reason("import os\n")
    assert "__class__" in forbidden_reason("x = ().__class__\n")
    assert "_private" in forbidden_reason("x = np._private\n")
    assert "eval" in forbidden_reason("eval('1')\n")
    assert "getattr" in forbidden_reason("getattr(np, 'save')\n")
    assert "save" in forbidden_reason("np.save('x', 1)\n")
    assert "f_back" in forbidden_reason("def f(g):\n    return g.gi_frame.f_back\n")
    assert "assigning" in forbidden_reason("np.pi = 3\n")
    assert "import training_code.induction.dsl as" in forbidden_reason("import training_code.induction.dsl\n")
    assert forbidden_reason("from numpy import load\n") is not None
    assert forbidden_reason("from . import sandbox\n") is not None
    with pytest.raises(SyntaxError):
        forbidden_reason("def (")


def test_program_candidates_keep_programs_that_fit_the_training_pairs():
    flip = np.fliplr
    train = tuple(Example(x, flip(x)) for x in (GRID, GRID.T, np.array([[5, 6, 7]], dtype=np.uint8)))
    test_input = np.array([[1, 0, 0], [2, 2, 0]], dtype=np.uint8)
    task = Task("t", train, (Example(test_input), Example(GRID)))
    sources = [
        "def solve(grid):\n    return flip_h(grid)\n",
        "def solve(grid):\n    return grid[:, ::-1]\n",  # same output, another program
        "def solve(grid):\n    return flip_h(grid)\n",  # a repeated text counts once
        "def solve(grid):\n    return flip_v(grid)\n",  # fails the training pairs
        ENDLESS,
        OS_SYSTEM,
    ]
    with Sandbox(timeout=1.0) as box:
        per_test = program_outputs(task, sources, timeout=1.0, sandbox=box).per_test
    candidates = list(per_test[0])
    assert len(candidates) == 1 and np.array_equal(candidates[0], flip(test_input))
    assert len(per_test) == 2 and np.array_equal(per_test[1][0], flip(GRID))
    assert list(program_outputs(task, [ENDLESS], timeout=0.5).per_test[0]) == []


def test_sandbox_rejects_bad_settings():
    with pytest.raises(ValueError):
        Sandbox(timeout=0)
