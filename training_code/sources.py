"""Source specs: which tasks a run trains on or keeps out of training, written as text.

A source spec (``load_source``) names a set of tasks and its weight in a mix: a bundled set, a Kaggle
challenges file, a directory of task files, RE-ARC, BARC, the tasks with programs, tasks generated from
the programs' input generators, or another source's tasks reversed; ``*W`` at the end weighs it. A
training-data spec adds the prompt version its tasks are rendered in: ``SOURCE PROMPT_VERSION``
(``parse_sources``), one ``DataPart`` of the training mix each; the training loop
(``training.batches``) mixes the parts by their weights.

This module sits above the data layer (``arc_loader``) and the code tasks (``code_tasks``), which
know nothing of specs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arc_loader import BUNDLED_FILES, BUNDLED_SPLITS, ArcDataset, DataPart, solutions_beside
from .formats import PROMPT_VERSIONS
from .induction.code_tasks import CODE_PROMPT_VERSIONS, code_dataset

CODE_SOURCE = "code"  # the source spec of the tasks with programs (see load_source)
GENERATED_SOURCE = "generated"  # new tasks from the verified programs' input generators (see load_source)
GENERATED_PER_PROGRAM = 16  # default tasks per program with a generator for the source "generated"
REVERSED_PREFIX = "reversed:"  # "reversed:SOURCE": SOURCE's tasks with inputs and outputs swapped


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec (see ``load_source``): what to load, from where, with what weight."""

    kind: str  # "barc", "re-arc", "code", "generated", "reversed", "bundled", "directory" or "kaggle"
    location: str  # the path, or the bundled name
    weight: float = 1.0
    max_examples: int = 0  # barc: the most examples kept per problem
    count: int = 0  # generated: new tasks per program
    inner: SourceSpec | None = None  # reversed: the source whose tasks are reversed


def source_spec(spec: str) -> SourceSpec:
    """``spec`` parsed without loading anything; ValueError saying what is wrong and which forms are valid
    (so a command line can refuse a bad source before a model loads)."""
    weight = 1.0
    body = spec
    if "*" in spec:
        body, _, w = spec.rpartition("*")
        try:
            weight = float(w)
        except ValueError:
            raise ValueError(f"source {spec!r}: weight after '*' must be a number") from None
    if body.startswith(REVERSED_PREFIX):
        inner = source_spec(body[len(REVERSED_PREFIX):])
        return SourceSpec("reversed", inner.location, inner.weight * weight, inner=inner)
    if body.startswith("barc-"):
        m = re.match(r"^barc-(\d+(?:\.\d+)?)-(\d+)-(.+)$", body)
        if not m:
            raise ValueError(f"source {spec!r}: expected barc-N-M-PATH")
        source = SourceSpec("barc", m.group(3), float(m.group(1)) * weight, int(m.group(2)))
    elif body.startswith("re-arc:"):
        source = SourceSpec("re-arc", body[len("re-arc:"):], weight)
    else:
        source = None
    if source is not None:
        if not Path(source.location).exists():
            raise ValueError(f"source {spec!r}: no file or directory {source.location!r}")
        return source
    if body == CODE_SOURCE:
        return SourceSpec("code", "", weight)
    if body == GENERATED_SOURCE or body.startswith(GENERATED_SOURCE + ":"):
        count = body.partition(":")[2] or str(GENERATED_PER_PROGRAM)
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"source {spec!r}: expected {GENERATED_SOURCE} or {GENERATED_SOURCE}:N with N >= 1")
        return SourceSpec("generated", "", weight, count=int(count))
    collection, _, split = body.partition("/")
    if collection in BUNDLED_FILES and split in BUNDLED_SPLITS:
        return SourceSpec("bundled", body, weight)
    path = Path(body)
    if path.is_dir():
        return SourceSpec("directory", body, weight)
    if path.is_file():
        return SourceSpec("kaggle", body, weight)
    bundled = ", ".join(f"{c}/{s}" for c in BUNDLED_FILES for s in BUNDLED_SPLITS)
    raise ValueError(f"source {spec!r} is neither a bundled set ({bundled}), an existing file or directory, "
                     f"re-arc:PATH, barc-N-M-PATH, {REVERSED_PREFIX}SOURCE, {GENERATED_SOURCE}[:N] nor {CODE_SOURCE}")


def load_source(spec: str | SourceSpec, rng: np.random.Generator, *, skip_bad: bool = False
                ) -> tuple[ArcDataset, float]:
    """A dataset from a source spec, with its weight in a mix.

    Specs: a bundled name (``arc-agi-1/training``); a Kaggle challenges file (``..._challenges.json``,
    its solutions file found beside it by name); a directory of task files; ``re-arc:PATH``;
    arc24's ``barc-N-M-PATH`` (N the weight, M the most examples kept per problem); ``code``: the tasks
    with programs of ``code_tasks.code_dataset`` (for the code prompt versions); ``generated`` or
    ``generated:N``: N new tasks (default 16) for every verified program with an input generator, fresh
    inputs drawn from ``rng`` (the RE-ARC idea); ``reversed:SOURCE``: SOURCE's tasks with inputs and outputs
    swapped (arc24). A spec may end in ``*W`` to give it weight W.
    """
    source = source_spec(spec) if isinstance(spec, str) else spec
    if source.kind == "reversed":
        inner, _weight = load_source(source.inner, rng, skip_bad=skip_bad)
        return inner.reversed_tasks(), source.weight
    if source.kind == "barc":
        return ArcDataset.from_barc(source.location, rng, max_examples=source.max_examples,
                                    skip_bad=skip_bad), source.weight
    if source.kind == "re-arc":
        return ArcDataset.from_rearc(source.location, rng, skip_bad=skip_bad), source.weight
    if source.kind in ("code", "generated"):
        if source.kind == "code":
            return code_dataset(rng), source.weight
        generated = code_dataset(rng, generated_per_task=source.count, include_original=False)
        # a plain dataset: these tasks train the grid prompt versions, their programs are not shown
        return ArcDataset(generated.tasks, name=f"{GENERATED_SOURCE}:{source.count}"), source.weight
    if source.kind == "bundled":
        return ArcDataset.from_bundled(source.location, skip_bad=skip_bad), source.weight
    path = Path(source.location)
    if source.kind == "directory":
        return ArcDataset.from_directory(path, skip_bad=skip_bad), source.weight
    return ArcDataset.from_kaggle(path, solutions_beside(path), skip_bad=skip_bad), source.weight


def check_train_dataset(spec: str) -> None:
    """ValueError unless ``spec`` is ``SOURCE PROMPT_VERSION`` with a source ``source_spec`` understands
    and a version it can be rendered in; nothing is loaded."""
    versions = (*PROMPT_VERSIONS, *CODE_PROMPT_VERSIONS)
    words = spec.split()
    if len(words) != 2 or words[1] not in versions:
        raise ValueError(f"train dataset {spec!r}: expected 'SOURCE PROMPT_VERSION' with a version from "
                         f"{', '.join(versions)}")
    source = source_spec(words[0])
    if words[1] in CODE_PROMPT_VERSIONS and source.kind != "code":
        raise ValueError(f"train dataset {spec!r}: {words[1]} needs tasks with programs: the source "
                         f"{CODE_SOURCE!r} (or {CODE_SOURCE}*WEIGHT)")


def parse_sources(specs: Sequence[str], rng: np.random.Generator) -> list[DataPart]:
    """``SOURCE PROMPT_VERSION`` entries as weighted data parts (``code code-from-examples``: the tasks
    with programs in a code prompt version)."""
    parts = []
    for spec in specs:
        check_train_dataset(spec)
        source, prompt_version = spec.split()
        dataset, weight = load_source(source, rng, skip_bad=True)
        parts.append(DataPart(dataset, prompt_version, weight))
    return parts
