"""Which tasks a run takes: ``--tasks`` as ids, a count of the shortest renderings, every K-th task, or all.

Kept apart from the evaluation (no torch) so that the program search's benchmark and the data tools pick
tasks by the same rule without loading a model's libraries.
"""

from __future__ import annotations

import json
from collections.abc import Container
from pathlib import Path

from .arc_loader import ArcDataset
from .cli import OptionError

EVERY = "every:"  # --tasks every:K, every K-th task in id order


def _every(spec: str) -> int | None:
    """K of ``every:K`` (an OptionError naming --tasks unless K is a whole number of at least 1); None when
    the spec is of another kind."""
    if not spec.startswith(EVERY):
        return None
    k = spec[len(EVERY):]
    if not k.isdigit() or int(k) < 1:
        raise OptionError("--tasks", f"{spec!r}: every:K needs a whole number K of at least 1, e.g. every:4")
    return int(k)


def is_count(spec: str, known: Container[str]) -> bool:
    """Whether ``--tasks`` is a count N: digits that are not a task's id (ARC ids such as 00576224 are
    digits too; a lone id is the task it names)."""
    return spec.isdigit() and spec not in known


def select_tasks(dataset: ArcDataset, spec: str, fmt) -> list[str]:
    """Task ids from ``--tasks``: ids joined by commas, a count N (the N shortest renderings, ties by id),
    every:K (every K-th task in id order: the 1st, the K+1-th, ...) or '' for all, in id order."""
    spec = spec.strip()
    if not spec:
        return sorted(dataset.tasks)
    if is_count(spec, dataset.tasks):
        return sorted(dataset.shortest_first(fmt)[: int(spec)])
    k = _every(spec)
    if k is not None:
        return sorted(dataset.tasks)[::k]
    ids = [t.strip() for t in spec.split(",") if t.strip()]
    known = set(dataset.tasks) | {e.task_id for e in dataset.skipped}  # a task that failed to load falls back
    unknown = [t for t in ids if t not in known]
    if unknown:
        raise ValueError(f"--tasks names tasks not in the challenges: {', '.join(unknown)}")
    return ids


def task_ids_in(challenges: str | Path) -> list[str]:
    """The task ids of a challenges file, read without loading the tasks; OptionError naming
    ``--challenges`` when it is missing or not a JSON object of tasks."""
    path = Path(challenges)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise OptionError("--challenges", f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise OptionError("--challenges", f"{str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(tasks, dict):
        raise OptionError("--challenges", f"{str(path)!r} is not a JSON object of tasks by id")
    return list(tasks)


def check_task_spec(spec: str, challenges: str | Path) -> None:
    """OptionError unless ``--tasks`` is '' (all), a count, or ids joined by commas that the
    challenges file holds; the message names the unknown ids and some valid ones."""
    spec = spec.strip()
    if not spec or _every(spec) is not None:
        return
    known = task_ids_in(challenges)
    if is_count(spec, known):
        return
    ids = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in ids if t not in set(known)]
    if unknown or not ids:
        examples = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise OptionError("--tasks", f"invalid task ids {', '.join(unknown) or repr(spec)}: not in {challenges} "
                                     f"(a count N, every:K, or ids of its {len(known)} tasks joined by commas: "
                                     f"{examples})")
