"""Program search: breadth-first over compositions of grid steps, no model needed.

A *state* is the tuple of grids that a partial program makes of every input of a task (the training
inputs, then the test inputs). The root is the inputs themselves; a step maps every grid of a state to a
new grid; a program is the chain of steps from the root. Breadth first by depth: every state of depth d
is expanded with every step that may follow its last one before any state of depth d + 1. Two chains
that give the same grids on every input are the same state, and only the first (the simplest) is kept.

At each state the *fitters* ask whether a last move reproduces every training output:

- the state's training grids are the outputs already;
- a colour map learned from the pairs (one output colour per state colour, the same on every example)
  turns the state into the outputs; steps that paint "a new colour" paint ``NEW`` (10), and the map
  says which colour that is, so one step serves every colour;
- a *shape step* built for this state's sizes (upscale or tile by the ratio of output to state sizes,
  the pattern continued to the output's size, mirrored tilings, downscaling, splitting into parts the
  size of the output and combining them with and/or/xor/overlay, the plan of the grid's rectangles or of
  the blocks between its separator lines, a 1x1 colour) gives the outputs, directly or through a colour map;
- on states up to ``cell_rule_depth`` (the inputs and one step from them), moves learned from the pairs
  themselves: a local cell rule (``cell_rules``: each output cell from what its cell sees around it),
  stamps (each cell of a colour, or on the inputs each object of one colour and shape, paints a fixed
  pattern on the background around it), the one object of each grid that a number picks (the largest,
  smallest or only value of its size, height, symmetry, colours, cells of one colour...) cropped out (or,
  for one-cell outputs, its colour), the one part of a grid cut by lines or into equal parts that a number
  picks, or all those parts laid over each other in an order of colours the examples teach, copies of the
  grid each turned its own way in the blocks of the output, or each cell blown up to a block its colour
  decides;
- on the inputs alone, an output drawn from a number of its grid (objects, colours, cells): a row, a
  column or a diagonal that long, that many cells in reading order, or a table from number to output;
  or a strip listing its colours in an order (by their cells, or as they lie across or down the grid).

Where the inputs rank their colours differently, the search of the task's own colours gets half the
budget, and the rest goes to the task with each pair's colours named by their rank in its input, by count
and then in reading order (``ranked_task``), the answers renamed back; once one of them has a program, the
later ones look only for a shallower one, and the shallowest program's answers come first.

When no program fits by the end, states that draw part of every output and nothing wrong (the *layers*)
are laid over one another, greedily, until they cover every output cell that is not background: the
candidate assembled from partial results (``Layers``).

A program that fits gives its test outputs as candidates: at most ``max_candidates`` distinct ones per
test input, simplest first (smaller depth, then the order of the steps). The search finishes the depth
where it found its first program, then stops.

The steps live in ``search_steps`` (each a grid -> grid function, with the lists of them a task gets and
the rule of which may follow which), the last moves in ``search_fitters`` and ``cell_rules``; this module
holds the search itself, the assembled candidates, the step timer and the renaming of colours by rank.

Nothing sinks a task: a step that raises, returns something that is not a grid, builds a grid with a
side over 30 or runs longer than ``step_seconds`` (cut by a SIGALRM timer in the main thread) is
dropped and the search goes on; states stop being stored after ``max_states`` (memory stays bounded);
the search stops at its deadline. Same task, same settings, same depth reached: the same candidates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..grids import NUM_COLOURS
from .cell_rules import fit_cell_rule, fit_phase_rule, fit_relational_rule, fit_stamps
from .search_fitters import (
    apply_colour_map,
    fit_colour_blocks,
    fit_colour_strip,
    fit_count,
    fit_line_table,
    fit_object_colours,
    fit_object_crop,
    fit_object_stamps,
    fit_part_overlay,
    fit_part_pick,
    fit_region_colours,
    fit_tile_transforms,
    learn_colour_map,
)
from .search_steps import (
    NEW,
    Grid,
    Step,
    TaskFacts,
    forget_grids,
    may_follow,
    shape_steps,
    static_steps,
    valid_grid,
)

log = logging.getLogger(__name__)

# Bumped when the steps or the fitters change, so that cached results of an older search are not reused.
SEARCH_VERSION = 18


@dataclass(frozen=True)
class SearchConfig:
    """How far and how long one task is searched."""

    seconds: float = 10.0  # the whole search of one task
    max_depth: int = 3  # steps in a chain before the last move (a colour map or a shape step)
    max_candidates: int = 3  # distinct test outputs kept per test input
    max_states: int = 40_000  # states kept for expansion; past this the search only checks, stores nothing
    step_seconds: float = 0.25  # one step on every grid of a state; a slower one is cut off
    max_steps: int = 0  # step applications per task (0: no limit): a budget that is the same on any machine
    cpu_time: bool = False  # ``seconds`` of this process's CPU time, not of the wall clock: a busy machine
    # then slows the search down without making it find less
    cell_rule_depth: int = 1  # states up to this depth try the learned last moves (a local cell rule, an
    # object picked by a number and cropped): each costs about as much as ten steps, and deeper states rarely
    # need one
    max_layers: int = 2_000  # partial results kept for assembling a candidate when no program fits



@dataclass
class Program:
    """A program that reproduces every training pair, and what it gives for each test input."""

    text: str
    depth: int
    test_outputs: tuple[Grid, ...]


@dataclass
class SearchResult:
    """What the search of one task found: per test input, the candidate grids (simplest program first)
    with the program that gave each."""

    task_id: str
    candidates: list[list[Grid]]
    programs: list[list[str]]
    depth: int = 0  # the deepest depth fully expanded
    steps: int = 0  # step applications
    states: int = 0  # distinct states met
    steps_cut: int = 0  # step applications dropped: raised, ran too long or built a grid too large
    seconds: float = 0.0
    timed_out: bool = False
    found_depth: int | None = None  # depth of the simplest program found (None: none)
    error: str = ""  # why the search stopped early, if it did

    def to_json(self) -> dict:
        return {"task_id": self.task_id, "depth": self.depth, "states": self.states, "steps": self.steps,
                "steps_cut": self.steps_cut,
                "seconds": round(self.seconds, 3), "timed_out": self.timed_out, "found_depth": self.found_depth,
                "error": self.error,
                "programs": self.programs,
                "candidates": [[g.astype(int).tolist() for g in cands] for cands in self.candidates]}


class StepTimeout(Exception):  # noqa: N818 - the name says what happened
    """A step ran past ``step_seconds``."""


class _Deadline(Exception):  # noqa: N818 - the name says what happened
    """The task's time (or its budget of steps) is up."""


# --------------------------------------------------------------------------------------------------
# Candidates assembled from partial results


class Layers:
    """States that are right wherever they are not background: each draws part of every training
    output and nothing wrong. When no program fits, a few of them laid over one another may cover every
    cell of the outputs that is not background; their test grids laid over one another in the same
    order are then a candidate.

    A state that paints NEW is used with NEW read as the one output colour under its NEW cells (when
    that colour is the same on every example), so that two steps painting two different colours can
    each give one layer."""

    MAX_PARTS = 4  # layers in one assembly: more would fit the examples by accident

    def __init__(self, outputs: Sequence[Grid], limit: int):
        self.outputs = outputs
        self.limit = limit
        self.target = np.concatenate([o.ravel() != 0 for o in outputs])
        self.covers: list[np.ndarray] = []
        self.seen: set[bytes] = set()
        self.made: list[tuple[str, int, tuple[Grid, ...]]] = []

    def offer(self, train: Sequence[Grid], test: Sequence[Grid], text: str, depth: int) -> None:
        """Keep the state as a layer when it draws something right and nothing wrong on every example."""
        if len(self.covers) >= self.limit or not self.target.any():
            return
        if any(g.shape != o.shape for g, o in zip(train, self.outputs)):
            return
        new_cells = [g == NEW for g in train]
        if any(m.any() for m in new_cells):
            under = np.unique(np.concatenate([o[m] for o, m in zip(self.outputs, new_cells)]))
            if under.size != 1 or under[0] == 0:
                return
            colour = np.uint8(under[0])
            train = [np.where(m, colour, g) for g, m in zip(train, new_cells)]
            test = [np.where(g == NEW, colour, g).astype(np.uint8) for g in test]
            text = f"recolour({text}, {{{NEW}: {int(colour)}}})"
        if any((g.max() >= NEW) for g in test):
            return
        for g, o in zip(train, self.outputs):
            if ((g != 0) & (g != o)).any():
                return  # draws a wrong cell
        cover = np.concatenate([g.ravel() != 0 for g in train])
        if not cover.any() or cover.all() and self.target.all():
            return
        key = cover.tobytes()
        if key in self.seen:
            return  # a simpler layer draws the same cells
        self.seen.add(key)
        self.covers.append(cover)
        self.made.append((text, depth, tuple(test)))

    def assemble(self) -> Program | None:
        """Greedily the layer that covers the most cells still uncovered (the simplest on a tie) until
        every output cell that is not background is covered; None when the layers cannot cover them all
        within MAX_PARTS, or when the chosen layers' test grids differ in shape."""
        if not self.covers:
            return None
        covers = np.stack(self.covers)
        covered = np.zeros_like(self.target)
        chosen: list[int] = []
        while len(chosen) < self.MAX_PARTS and not np.array_equal(covered, self.target):
            gain = (covers & ~covered).sum(axis=1)
            best = int(np.argmax(gain))
            if gain[best] == 0:
                return None
            chosen.append(best)
            covered |= covers[best]
        if not np.array_equal(covered, self.target) or len(chosen) < 2:
            return None
        parts = [self.made[i] for i in chosen]
        outputs = []
        for index in range(len(parts[0][2])):
            grids = [p[2][index] for p in parts]
            if len({g.shape for g in grids}) != 1:
                return None
            out = np.zeros_like(grids[0])
            for g in grids:
                out = np.where(out == 0, g, out)
            outputs.append(out.astype(np.uint8))
        text = "assemble(" + ", ".join(p[0] for p in parts) + ")"
        return Program(text, max(p[1] for p in parts) + len(parts), tuple(outputs))


# --------------------------------------------------------------------------------------------------
# The search


# How often a rung alarm rings again until its StepTimeout lands in the step: one raised while Python runs
# a weakref callback, a __del__ or a garbage-collector callback is reported as unraisable and lost, and the
# step would run on
ALARM_REPEAT_SECONDS = 0.02


@dataclass
class _Alarm:
    """The step timer of the main thread: ``arm`` starts it for one step, ``disarm`` stops it. While armed,
    it raises StepTimeout after ``seconds`` and again every ALARM_REPEAT_SECONDS until disarmed, except
    while another unraisable exception is being reported (``muted``)."""
    seconds: float
    armed: bool = False
    muted: bool = False

    def ring(self, _signum, _frame) -> None:
        if self.armed and not self.muted:  # a ring already on its way when the step ended is dropped
            raise StepTimeout

    def unraisable_hook(self, previous: Callable[[Any], object]) -> Callable[[Any], None]:
        """A sys.unraisablehook that drops the StepTimeouts lost in callbacks (a later ring cuts the step)
        and hands every other report to ``previous`` with the alarm muted, so that no ring breaks into
        the report itself."""
        def hook(report: Any) -> None:
            if isinstance(report.exc_value, StepTimeout):
                return
            self.muted = True
            try:
                previous(report)
            finally:
                self.muted = False
        return hook

    def arm(self) -> None:
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, ALARM_REPEAT_SECONDS)

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


class _NoAlarm:
    """Outside the main thread (signals reach only it) or without a step limit: steps are checked only
    between them."""

    def arm(self) -> None:
        pass

    def disarm(self) -> None:
        pass


@contextmanager
def step_alarm(seconds: float) -> Iterator[_Alarm | _NoAlarm]:
    """The step timer for a search, its SIGALRM handler installed for the search's duration."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield _NoAlarm()
        return
    alarm = _Alarm(seconds)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = alarm.unraisable_hook(previous_hook)
    previous = signal.signal(signal.SIGALRM, alarm.ring)
    try:
        yield alarm
    finally:
        alarm.disarm()
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook


def _state_key(grids: Sequence[Grid]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for g in grids:
        digest.update(np.asarray(g.shape, dtype=np.int16).tobytes())
        digest.update(g.tobytes())
    return digest.digest()


@dataclass
class _Node:
    grids: tuple[Grid, ...]
    text: str  # the chain so far, "{}" where the input grid goes
    kind: str | None
    depth: int


@dataclass
class _Search:
    inputs: tuple[Grid, ...]
    outputs: tuple[Grid, ...]
    config: SearchConfig
    deadline: float
    clock: Callable[[], float]
    alarm: _Alarm | _NoAlarm
    found: list[Program] = field(default_factory=list)
    steps_cut: int = 0
    applied: int = 0
    layers: Layers = None  # type: ignore[assignment]  # made in __post_init__ from the outputs

    def __post_init__(self) -> None:
        if self.layers is None:
            self.layers = Layers(self.outputs, self.config.max_layers)

    def apply(self, step: Step, grids: Sequence[Grid]) -> tuple[Grid, ...] | None:
        """The step on every grid of a state; None (and counted) when it fails on any."""
        self.applied += 1
        if self.clock() > self.deadline or (self.config.max_steps and self.applied > self.config.max_steps):
            raise _Deadline
        try:
            self.alarm.arm()
            try:
                out = tuple(step.fn(g) for g in grids)
            finally:
                self.alarm.disarm()  # inside the try: a ring here is caught below, not by the caller
        except Exception:  # noqa: BLE001 - a step that fails (or is cut) is no program; the search goes on
            self.alarm.disarm()  # again: a ring may have cut the first one short
            self.steps_cut += 1
            return None
        if not all(valid_grid(g) for g in out):
            self.steps_cut += 1
            return None
        return tuple(np.ascontiguousarray(g, dtype=np.uint8) for g in out)

    def fit(self, grids: Sequence[Grid], text: str, depth: int, cell_rule: bool = True) -> None:
        """Record a program when the state, or the state under a learned colour map, object recolouring
        or local cell rule, gives the outputs; a fitter that fails is counted with the cut steps."""
        try:
            self._fit(grids, text, depth, cell_rule and depth <= self.config.cell_rule_depth)
        except Exception:  # noqa: BLE001 - a fitter's bug on one state must not end the search
            self.steps_cut += 1

    def _found_fitted(self, fitted: tuple[str, tuple[Grid, ...]], text: str, depth: int) -> None:
        """Record a fitter's last move (its text with ``{}`` where the state goes, its test grids) after the
        chain ``text``."""
        self.found.append(Program(fitted[0].replace("{}", text.format("grid"), 1), depth + 1, fitted[1]))

    def _fit(self, grids: Sequence[Grid], text: str, depth: int, cell_rule: bool) -> None:
        n = len(self.outputs)
        train, test = grids[:n], grids[n:]
        if all(g.shape == o.shape and np.array_equal(g, o) for g, o in zip(train, self.outputs)):
            if all(g.max() < NUM_COLOURS for g in test):
                self.found.append(Program(text.format("grid"), depth, tuple(test)))
            return
        self.layers.offer(train, test, text.format("grid"), depth)
        if cell_rule and any(g.shape != o.shape for g, o in zip(train, self.outputs)):
            fitted = fit_object_crop(train, self.outputs, test)
            for fitter in (fit_tile_transforms, fit_colour_blocks, fit_part_pick, fit_part_overlay):
                fitted = fitted or fitter(train, self.outputs, test)
            if fitted is None and depth == 0:  # numbers and colours of the inputs themselves: a few ms, once
                fitted = fit_count(train, self.outputs, test) or fit_colour_strip(train, self.outputs, test)
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
                return
        mapping = learn_colour_map(train, self.outputs)
        if mapping is None:
            fitted = fit_object_colours(train, self.outputs, test) or fit_region_colours(train, self.outputs, test)
            if fitted is None and cell_rule:
                fitted = fit_cell_rule(train, self.outputs, test) or fit_stamps(train, self.outputs, test)
            if fitted is None and cell_rule and depth == 0:  # the inputs only: after a step, chance fits
                fitted = (fit_object_stamps(train, self.outputs, test) or fit_count(train, self.outputs, test)
                          or fit_line_table(train, self.outputs, test) or fit_phase_rule(train, self.outputs, test)
                          or fit_relational_rule(train, self.outputs, test))
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
            return
        try:
            mapped = tuple(apply_colour_map(g, mapping) for g in test)
        except (ValueError, IndexError):
            return
        if cell_rule and depth == 0 and any(np.setdiff1d(g, list(mapping)).size for g in test):
            # a test input holds a colour that no example maps: a rule that copies colours from the grid says
            # what the map cannot (a map leaves such a colour as it is), so its answer comes first
            fitted = fit_relational_rule(train, self.outputs, test)
            if fitted is not None:
                self._found_fitted(fitted, text, depth)
        shown = {k: v for k, v in mapping.items() if k != v}
        self.found.append(Program(f"recolour({text.format('grid')}, {shown})", depth + 1, mapped))

    def finish(self, node: _Node) -> None:
        """The fitters on a state, directly and after each shape step made for its sizes."""
        self.fit(node.grids, node.text, node.depth)
        for step in shape_steps(node.grids, self.outputs):
            grids = self.apply(step, node.grids)
            if grids is not None:
                # a cell rule on a grid a shape step built would only relearn the shape step's output
                self.fit(grids, step.text.format(node.text), node.depth + 1, cell_rule=False)


# ---------------------------------------------------------------------------------------------
# The task with its colours named by rank

RANKED_SHARE = 0.5  # of a task's budget, what the search of its own colours gets when ranked searches follow
# the ways of naming a grid's colours after its own colours (each a pass of its own, in this order, while
# none has found a program): by their number of cells (ties: the colour met first in reading order), and by
# the order in which reading meets them
NAMINGS = {"count": "by_colour_rank", "first": "by_colour_order"}


def colour_ranks(grid: Grid, by: str = "count") -> tuple[np.ndarray, np.ndarray]:
    """A renaming of colours by their rank in ``grid`` and its inverse, as lookup tables over 0..15. ``by``
    "count": the most common colour becomes 0, the next 1, and so on (ties: the colour met first in reading
    order first); "first": the colour met first in reading order becomes 0, the next new one 1, and so on.
    Colours absent from the grid take the remaining names in increasing order; ``NEW`` and above keep theirs."""
    values, first, counts = np.unique(grid.ravel(), return_index=True, return_counts=True)
    if by == "count":
        present = [int(v) for _, _, v in sorted(zip((-counts).tolist(), first.tolist(), values.tolist()))]
    elif by == "first":
        present = [int(v) for _, v in sorted(zip(first.tolist(), values.tolist()))]
    else:
        raise ValueError(f"unknown colour naming {by!r}; choose one of {', '.join(NAMINGS)}")
    order = present + [c for c in range(NUM_COLOURS) if c not in present]
    forward = np.arange(16, dtype=np.uint8)
    forward[order] = np.arange(NUM_COLOURS, dtype=np.uint8)
    inverse = np.zeros(16, dtype=np.uint8)
    inverse[forward] = np.arange(16, dtype=np.uint8)
    return forward, inverse


def ranked_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], by: str = "count"
                ) -> tuple[list[tuple[Grid, Grid]], list[Grid], list[np.ndarray]] | None:
    """The task with each pair's colours renamed by their rank in its input (``colour_ranks``), and the
    renamings back for the test inputs; None when every input ranks its colours alike and the renaming keeps
    0 (the ranked task is then the task itself under one renaming that the search of its own colours covers;
    one that names another colour 0 makes it the background, which many steps take 0 for)."""
    grids = [np.asarray(i, dtype=np.uint8) for i, _ in train] + [np.asarray(g, dtype=np.uint8) for g in test_inputs]
    ranks = [colour_ranks(g, by) for g in grids]
    first, _ = ranks[0]
    if len({forward.tobytes() for forward, _ in ranks}) == 1 and first[0] == 0:  # one renaming, and 0 stays 0
        return None
    pairs = [(forward[g], forward[np.asarray(o, dtype=np.uint8)])
             for (forward, _), g, (_, o) in zip(ranks, grids, train)]
    tests = [forward[g] for (forward, _), g in zip(ranks[len(train):], grids[len(train):])]
    return pairs, tests, [inverse for _, inverse in ranks[len(train):]]


def search_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], config: SearchConfig = SearchConfig(),
                task_id: str = "") -> SearchResult:
    """Programs that reproduce every training pair, breadth first, and their test outputs as candidates.

    Where the inputs rank their colours differently, the search of the task's own colours gets
    ``RANKED_SHARE`` of the budget; the rest goes in equal shares to the
    same search of the task with each pair's colours named by their rank in its input, by count and then
    by first appearance (``NAMINGS``: a rule about "the most common colour" or "the colour met first" is
    then one rule on every example), and their answers are renamed back. Their programs read
    ``by_colour_rank(...)`` and ``by_colour_order(...)``. Once a pass has a program of depth d > 1, the later
    passes search chains of at most d - 1 steps; the answers of the shallowest program come first, then
    those of the others (with more time, the own colours' search can finish a deeper depth and find a
    program that fits the examples through a quirk of them before a renamed task's simpler one is looked
    for)."""
    views = [(by, ranked) for by in NAMINGS if (ranked := ranked_task(train, test_inputs, by)) is not None]
    if not views:
        return _search_task(train, test_inputs, config, task_id)
    clock = time.process_time if config.cpu_time else time.monotonic
    began = clock()
    shares = [RANKED_SHARE] + [(1 - RANKED_SHARE) / len(views)] * len(views)
    passes = [(None, (list(train), list(test_inputs), None)), *views]
    results: list[SearchResult] = []
    spent_steps = 0
    max_depth = config.max_depth
    for index, ((by, (pairs, tests, inverses)), share) in enumerate(zip(passes, shares)):
        last = index == len(passes) - 1
        seconds = (config.seconds - (clock() - began)) if last else config.seconds * share
        steps = (config.max_steps - spent_steps if last else int(config.max_steps * share)) if config.max_steps else 0
        result = _search_task(pairs, tests, dataclasses.replace(config, seconds=max(0.0, seconds), max_depth=max_depth,
                                                                max_steps=max(1, steps) if config.max_steps else 0),
                              task_id)
        spent_steps += result.steps
        if by is not None:
            result.candidates = [[inverse[g] for g in cands] for inverse, cands in zip(inverses, result.candidates)]
            result.programs = [[f"{NAMINGS[by]}({text})" for text in texts] for texts in result.programs]
        results.append(result)
        if result.found_depth is not None and not _assembled(result):
            if result.found_depth <= 1:
                break  # nothing simpler to look for
            # the later passes look for shallower programs only: chains of at most d - 1 steps (a depth-d
            # program may turn up there too, and then comes after this one)
            max_depth = min(max_depth, result.found_depth - 1)
    # a program beats a guess assembled from partial results; the shallowest program's answers come first,
    # then the others' (a deeper program fits the examples too, but is the likelier to have found a quirk
    # of them); between guesses, the earliest pass's
    found = [r for r in results if r.found_depth is not None]
    programs = sorted((r for r in found if not _assembled(r)), key=lambda r: r.found_depth)
    kept = programs[0] if programs else found[0] if found else results[-1]
    for other in programs[1:]:
        for cands, texts, more, more_texts in zip(kept.candidates, kept.programs, other.candidates, other.programs):
            for grid, text in zip(more, more_texts):
                if len(cands) < config.max_candidates and not any(np.array_equal(grid, c) for c in cands):
                    cands.append(grid)
                    texts.append(text)
    for other in results:
        if other is not kept:
            kept.steps += other.steps
            kept.states += other.states
            kept.steps_cut += other.steps_cut
            kept.seconds += other.seconds
    kept.depth = max(r.depth for r in results)
    kept.timed_out = any(r.timed_out for r in results)
    kept.error = next((r.error for r in results if r.error), "")
    return kept


def _assembled(result: SearchResult) -> bool:
    """Whether the result's candidates are a guess assembled from partial results, not a program's."""
    return all(text.startswith("assemble(") for texts in result.programs for text in texts)


def _search_task(train: Sequence[tuple[Grid, Grid]], test_inputs: Sequence[Grid], config: SearchConfig,
                 task_id: str) -> SearchResult:
    began = time.monotonic()
    clock = time.process_time if config.cpu_time else time.monotonic
    inputs = tuple(np.asarray(i, dtype=np.uint8) for i, _ in train) + tuple(
        np.asarray(g, dtype=np.uint8) for g in test_inputs)
    outputs = tuple(np.asarray(o, dtype=np.uint8) for _, o in train)
    result = SearchResult(task_id, [[] for _ in test_inputs], [[] for _ in test_inputs])
    with step_alarm(config.step_seconds) as alarm:
        search = _Search(inputs, outputs, config, clock() + config.seconds, clock, alarm)
        seen = {_state_key(inputs)}
        frontier = [_Node(inputs, "{}", None, 0)]
        steps = static_steps(TaskFacts([i for i, _ in train], outputs))
        try:
            if len({o.tobytes() + bytes(o.shape) for o in outputs}) == 1:  # every output the same grid
                search.found.append(Program(f"constant({outputs[0].astype(int).tolist()})", 0,
                                            tuple(outputs[0] for _ in test_inputs)))
            search.finish(frontier[0])
            depth = 0
            while frontier and not search.found and depth < config.max_depth:
                depth += 1
                last = depth == config.max_depth
                following: list[_Node] = []
                for node in frontier:
                    for step in steps:
                        if not may_follow(node.kind, step):
                            continue
                        grids = search.apply(step, node.grids)
                        if grids is None:
                            continue
                        key = _state_key(grids)
                        if key in seen:
                            continue
                        if len(seen) < config.max_states:
                            seen.add(key)
                        child = _Node(grids, step.text.format(node.text), step.kind, depth)
                        search.finish(child)
                        if not last and len(following) < config.max_states:
                            following.append(child)
                frontier = following
                result.depth = depth
        except _Deadline:
            result.timed_out = True
        except Exception as e:  # noqa: BLE001 - a bug in the search: keep what was found, say why it stopped
            log.warning("task %s: the search stopped early: %s: %s", task_id, type(e).__name__, e)
            result.error = f"{type(e).__name__}: {e}"
        result.states = len(seen)
        if not search.found:
            try:
                assembled = search.layers.assemble()
            except Exception as e:  # noqa: BLE001 - no assembly is no program; the search's result stands
                log.warning("task %s: assembling partial results failed: %s: %s", task_id, type(e).__name__, e)
                assembled = None
            if assembled is not None:
                search.found.append(assembled)
    result.steps_cut = search.steps_cut
    result.steps = search.applied
    forget_grids()
    _collect(result, search.found, config.max_candidates)
    result.seconds = time.monotonic() - began
    return result


def _collect(result: SearchResult, found: list[Program], limit: int) -> None:
    """Per test input, the distinct outputs of the programs, simplest program first."""
    ordered = sorted(enumerate(found), key=lambda p: (p[1].depth, p[0]))
    for _, program in ordered:
        if result.found_depth is None:
            result.found_depth = program.depth
        for index, grid in enumerate(program.test_outputs):
            cands = result.candidates[index]
            if len(cands) >= limit or any(c.shape == grid.shape and np.array_equal(c, grid) for c in cands):
                continue
            cands.append(grid)
            result.programs[index].append(program.text)
