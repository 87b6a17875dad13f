"""Kaggle submissions: building the two attempts per test input, writing, reading back, validating, scoring.

Kaggle's formats, for reference:

- a challenges file maps task id -> {"train": [...], "test": [{"input": grid}, ...]};
- a solutions file maps task id -> [output grid of each test input, in order];
- a submission maps task id -> [{"attempt_1": grid, "attempt_2": grid} for each test input, in order].

Inside the package a submission holds numpy ``uint8`` grids (:data:`Submission`); only the file holds
lists of lists. Every test input of every task gets both attempts, the fallback grid where nothing
else answered, so one failed task never costs the whole file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training_code.grids import ArcDataError, Grid, Where, as_grid, fallback_grid, grid_key, grid_to_list

ATTEMPT_NAMES: tuple[str, str] = ("attempt_1", "attempt_2")

Attempts = dict[str, Grid]  # {"attempt_1": grid, "attempt_2": grid}
Submission = dict[str, list[Attempts]]  # task id -> attempts of each test input, in order
TestInputId = tuple[str, int]  # (task id, index of the test input within its task)


@dataclass(frozen=True)
class SubmissionBuild:
    """What :func:`build_submission` made and where it had to make do.

    ``fell_back``: test inputs with no usable candidate; both attempts are the fallback grid.
    ``one_candidate``: test inputs with a single distinct usable candidate; attempt_2 is the fallback.
    ``rejected``: candidates skipped because they are not valid grids, as (task id, test index, problem);
    candidates ranked below the two chosen are not examined.
    All three are in the order of ``test_counts`` and then of the test index.
    """

    submission: Submission
    fell_back: tuple[TestInputId, ...]
    one_candidate: tuple[TestInputId, ...]
    rejected: tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class KaggleScore:
    """A submission scored by Kaggle's rule.

    A test input counts when either attempt equals its solution exactly (shape and values); a task
    scores the fraction of its test inputs that count. ``task_scores`` covers every task of the
    solutions (a task absent from the submission scores 0); ``correct`` says which test inputs
    counted; ``points`` is the sum of task scores and ``percentage`` is 100 * points / tasks.
    ``unscored`` counts the submission's tasks that have no solution (ignored for the score).
    """

    task_scores: dict[str, float]
    correct: dict[str, tuple[bool, ...]]
    points: float
    tasks: int
    percentage: float
    unscored: int


def build_submission(test_counts: Mapping[str, int], ranked: Mapping[TestInputId, Sequence[Any]]) -> SubmissionBuild:
    """The two attempts for every test input of every task in ``test_counts``.

    ``test_counts`` maps each task id to its number of test inputs. ``ranked`` maps (task id, test
    index) to candidate grids, best first; the first two distinct valid candidates become attempt_1
    and attempt_2. Test inputs with fewer get the fallback grid. A candidate that is not a valid
    grid is skipped and recorded rather than raised: a decoder bug on one task must not cost the
    other tasks their answers.

    Raises ValueError for a negative count or for a key of ``ranked`` that names an unknown task or
    a test index out of range (that is a bug in the caller, not bad data).
    """
    _check_counts(test_counts)
    for task_id, index in ranked:
        if task_id not in test_counts:
            raise ValueError(f"candidates for task {task_id!r}, which is not among the tasks to answer")
        if not 0 <= index < test_counts[task_id]:
            raise ValueError(f"candidates for test input {index} of task {task_id!r}, which has {test_counts[task_id]}")

    submission: Submission = {}
    fell_back: list[TestInputId] = []
    one_candidate: list[TestInputId] = []
    rejected: list[tuple[str, int, str]] = []
    for task_id, count in test_counts.items():
        entries: list[Attempts] = []
        for index in range(count):
            chosen: list[Grid] = []
            seen: set[tuple[tuple[int, ...], ...]] = set()
            for rank, candidate in enumerate(ranked.get((task_id, index), ())):
                try:
                    grid = as_grid(candidate, Where(task_id=task_id, part=f"test[{index}] candidate {rank}"))
                except ArcDataError as err:
                    rejected.append((task_id, index, err.problem))
                    continue
                # A repeated grid would waste the second attempt; the next distinct one may be right.
                key = grid_key(grid)
                if key in seen:
                    continue
                seen.add(key)
                chosen.append(grid)
                if len(chosen) == len(ATTEMPT_NAMES):
                    break
            if not chosen:
                fell_back.append((task_id, index))
            elif len(chosen) == 1:
                one_candidate.append((task_id, index))
            while len(chosen) < len(ATTEMPT_NAMES):
                chosen.append(fallback_grid())
            entries.append(dict(zip(ATTEMPT_NAMES, chosen, strict=True)))
        submission[task_id] = entries
    return SubmissionBuild(submission, tuple(fell_back), tuple(one_candidate), tuple(rejected))


def validate_submission(
    submission: Any, test_counts: Mapping[str, int], file: str | os.PathLike | None = None
) -> Submission:
    """Check a parsed submission against the tasks it must answer; return it with numpy grids.

    Raises ArcDataError naming ``file``, the task and the problem for: a top level that is not an
    object, missing or extra task ids, a wrong number of test entries, an entry without exactly
    attempt_1 and attempt_2, and grids that are not rectangular, have a side outside 1..30 or a
    value outside 0..9.
    """
    _check_counts(test_counts)
    return _checked(submission, test_counts, _file_name(file))


def write_submission(path: str | os.PathLike, submission: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Write ``submission`` to ``path`` as JSON, atomically.

    The grids are checked first (an invalid one raises ArcDataError and nothing is written). The
    text goes to a temporary file in the same directory, is flushed to disk and then renamed over
    ``path``, so a reader sees the old file or the new one, never half of one. Task ids are sorted
    and each task sits on its own line without spaces: equal content gives byte-identical files
    and a diff of two runs shows the tasks that changed.
    """
    path = Path(path)
    checked = _checked(submission, None, str(path))
    lines = []
    for task_id in sorted(checked):
        entries = [{name: grid_to_list(entry[name]) for name in ATTEMPT_NAMES} for entry in checked[task_id]]
        lines.append(json.dumps(task_id) + ":" + json.dumps(entries, separators=(",", ":")))
    text = "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"
    _write_atomic(path, text.encode("ascii"))


def read_submission(path: str | os.PathLike, test_counts: Mapping[str, int]) -> Submission:
    """Read, parse and validate a submission file; return it with numpy grids.

    Raises ArcDataError naming the file for malformed JSON and for everything
    :func:`validate_submission` rejects; a missing file raises FileNotFoundError.
    """
    path = Path(path)
    try:
        parsed = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArcDataError(f"not valid JSON: {err}", file=str(path)) from err
    return validate_submission(parsed, test_counts, file=path)


def write_verified_submission(
    path: str | os.PathLike, submission: Mapping[str, Sequence[Mapping[str, Any]]], test_counts: Mapping[str, int]
) -> Submission:
    """Validate, write atomically, read back, validate again, and return what was read.

    Validating before writing keeps an invalid submission from replacing a good file; reading back
    proves that what is on disk is what Kaggle will see.
    """
    expected = validate_submission(submission, test_counts, file=path)
    write_submission(path, expected)
    read_back = read_submission(path, test_counts)
    for task_id, entries in expected.items():
        for index, (want, got) in enumerate(zip(entries, read_back[task_id], strict=True)):
            for name in ATTEMPT_NAMES:
                if not np.array_equal(want[name], got[name]):
                    raise ArcDataError(
                        f"test[{index}].{name} read back differs from what was written", file=str(path), task_id=task_id
                    )
    return read_back


def score_submission(
    submission: Mapping[str, Sequence[Mapping[str, Any]]], solutions: Mapping[str, Sequence[Any]]
) -> KaggleScore:
    """Score ``submission`` against ``solutions`` (task id -> output grid of each test input).

    The submission is read leniently, as Kaggle would mark it: a missing entry or attempt, or an
    attempt that is not a valid grid, simply does not count. Bad solutions raise ArcDataError.
    """
    task_scores: dict[str, float] = {}
    correct: dict[str, tuple[bool, ...]] = {}
    for task_id, outputs in solutions.items():
        if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence) or not outputs:
            raise ArcDataError("solutions must be a non-empty list of output grids", task_id=task_id)
        truths = [as_grid(grid, Where(task_id=task_id, part=f"solution[{i}]")) for i, grid in enumerate(outputs)]
        entries = submission.get(task_id, ())
        if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
            entries = ()
        hits = tuple(
            i < len(entries) and any(_attempt_equals(entries[i], name, truth) for name in ATTEMPT_NAMES)
            for i, truth in enumerate(truths)
        )
        correct[task_id] = hits
        task_scores[task_id] = sum(hits) / len(hits)
    points = sum(task_scores.values())
    tasks = len(task_scores)
    return KaggleScore(
        task_scores=task_scores,
        correct=correct,
        points=points,
        tasks=tasks,
        percentage=100.0 * points / tasks if tasks else 0.0,
        unscored=sum(1 for task_id in submission if task_id not in solutions),
    )


def _attempt_equals(entry: Any, name: str, truth: Grid) -> bool:
    if not isinstance(entry, Mapping) or name not in entry:
        return False
    try:
        grid = as_grid(entry[name])
    except ArcDataError:
        return False
    return bool(np.array_equal(grid, truth))  # False for another shape, whatever the values


def _checked(submission: Any, test_counts: Mapping[str, int] | None, file: str | None) -> Submission:
    """The structure and grids of a submission checked, and against ``test_counts`` when given."""
    if not isinstance(submission, Mapping):
        raise ArcDataError(f"a submission must be an object of task ids, not {type(submission).__name__}", file=file)
    if test_counts is not None:
        missing = sorted(task_id for task_id in test_counts if task_id not in submission)
        if missing:
            raise ArcDataError(
                f"missing from the submission ({len(missing)} of {len(test_counts)} tasks missing)",
                file=file,
                task_id=missing[0],
            )
        extra = sorted(str(task_id) for task_id in submission if task_id not in test_counts)
        if extra:
            raise ArcDataError(
                f"not a task of the challenges ({len(extra)} unexpected tasks in the submission)",
                file=file,
                task_id=extra[0],
            )
    checked: Submission = {}
    for task_id, entries in submission.items():
        if not isinstance(task_id, str):
            raise ArcDataError(f"task id {task_id!r} is not a string", file=file)
        if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
            raise ArcDataError("test entries must be a list", file=file, task_id=task_id)
        if test_counts is not None and len(entries) != test_counts[task_id]:
            raise ArcDataError(
                f"has {len(entries)} test entries; the task has {test_counts[task_id]} test inputs",
                file=file,
                task_id=task_id,
            )
        checked_entries: list[Attempts] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ArcDataError(
                    f"test[{index}] must be an object with attempt_1 and attempt_2", file=file, task_id=task_id
                )
            for name in ATTEMPT_NAMES:
                if name not in entry:
                    raise ArcDataError(f"test[{index}] lacks {name}", file=file, task_id=task_id)
            # Kaggle's format has exactly these two keys; anything else means a writer is confused.
            unexpected = sorted(str(key) for key in entry if key not in ATTEMPT_NAMES)
            if unexpected:
                raise ArcDataError(f"test[{index}] has unexpected keys {unexpected}", file=file, task_id=task_id)
            checked_entries.append(
                {name: as_grid(entry[name], Where(file, task_id, f"test[{index}].{name}")) for name in ATTEMPT_NAMES}
            )
        checked[task_id] = checked_entries
    return checked


def _check_counts(test_counts: Mapping[str, int]) -> None:
    for task_id, count in test_counts.items():
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"task {task_id!r}: the number of test inputs must be an integer >= 0, not {count!r}")


def _file_name(file: str | os.PathLike | None) -> str | None:
    return None if file is None else os.fspath(file)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that no reader ever sees a partial file."""
    # The temporary file must be in the target's directory: os.replace is atomic only within one file system.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file readable by its owner only; a submission is not secret.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):  # os.replace may have moved it already
            os.unlink(temp_name)
        raise
    # Persist the rename itself; without this a crash can leave the old directory entry on some file systems.
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
