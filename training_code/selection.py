"""Choosing the two attempts: aggregate each candidate's scores and rank the candidates.

A candidate is a distinct grid in the original task's frame. Decoding gives it one generation NLL per
view that produced it; scoring gives it one NLL per scoring view (the candidate rendered as the reply
of an augmented view of the task, see `view_scoring_texts`). The aggregations:

- ``product-of-experts`` (the ARChitects): sum of the scoring NLLs, i.e. the product of the views'
  probabilities; lower is better. Their ablation: 40.5 -> 69 points from augmented scoring.
- ``max-generation-probability``: the best generation NLL alone (no scoring pass needed).
- ``min-probability``: the worst scoring view's NLL (every expert must agree).
- ``mean-probability``: the mean of the scoring views' probabilities.
- ``vote`` (arc24): how many views produced the candidate; ties broken by the best generation NLL.

Candidates may also come from sampled programs and from the program search (``add_program_candidates``);
they are scored and ranked like the rest, and the evaluation gives one that no view decoded a generation
NLL of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .grids import Grid, grid_key


@dataclass
class ScoredCandidate:
    """One distinct candidate grid (original frame) and what decoding and scoring said of it."""

    grid: Grid
    generation_nlls: list[float] = field(default_factory=list)  # one per view that decoded it
    scoring_nlls: list[float] = field(default_factory=list)  # one per scoring view
    from_program: bool = False  # a sampled program that reproduces the training pairs also gave it
    from_search: bool = False  # a program found by the program search also gave it
    search_rank: int | None = None  # its place among the search's candidates (0: the simplest program's)
    decoded: bool = True  # some view decoded it (False: only programs gave it)

    @property
    def votes(self) -> int:
        return len(self.generation_nlls)


def merge_candidates(found: Sequence[tuple[Grid, float]]) -> list[ScoredCandidate]:
    """Merge (grid, generation NLL) pairs from several views into distinct candidates, in first-seen order."""
    by_grid: dict[tuple, ScoredCandidate] = {}
    for grid, nll in found:
        cand = by_grid.setdefault(grid_key(grid), ScoredCandidate(np.asarray(grid, dtype=np.uint8)))
        cand.generation_nlls.append(float(nll))
    return list(by_grid.values())


def add_program_candidates(candidates: list[ScoredCandidate], grids: Sequence[Grid],
                           searched: bool = False) -> list[ScoredCandidate]:
    """Mark the candidates that programs also produced (``from_program``, or ``from_search`` when
    ``searched``: the grids come from the program search) and append the others to ``candidates`` as
    new ones, in the programs' order (``decoded`` False). Returns the new candidates: they have no generation
    NLL yet. The search's grids come simplest program first: each candidate keeps its ``search_rank``."""
    by_grid = {grid_key(c.grid): c for c in candidates}
    added = []
    for rank, grid in enumerate(grids):
        key = grid_key(grid)
        if key not in by_grid:
            by_grid[key] = ScoredCandidate(np.asarray(grid, dtype=np.uint8), decoded=False)
            candidates.append(by_grid[key])
            added.append(by_grid[key])
        if searched:
            by_grid[key].from_search = True
            if by_grid[key].search_rank is None:
                by_grid[key].search_rank = rank
        else:
            by_grid[key].from_program = True
    return added


def _needs_scores(c: ScoredCandidate) -> list[float]:
    if not c.scoring_nlls:
        raise ValueError("this aggregation needs scoring NLLs; score the candidates under augmented views first")
    return c.scoring_nlls


def _logmeanexp_neg(nlls: list[float]) -> float:
    """-log(mean(exp(-nll))), computed stably: the NLL of the mean probability."""
    low = min(nlls)
    return low - math.log(sum(math.exp(low - x) for x in nlls) / len(nlls))


# Each aggregation maps a candidate to a sort key; smaller sorts first (is better).
AGGREGATIONS: dict[str, Callable[[ScoredCandidate], tuple[float, ...]]] = {
    "product-of-experts": lambda c: (sum(_needs_scores(c)),),
    "max-generation-probability": lambda c: (min(c.generation_nlls, default=math.inf),),
    "min-probability": lambda c: (max(_needs_scores(c)),),
    "mean-probability": lambda c: (_logmeanexp_neg(_needs_scores(c)),),
    "vote": lambda c: (-c.votes, min(c.generation_nlls, default=math.inf)),
}
DEFAULT_AGGREGATION = "product-of-experts"


def rank_candidates(candidates: Sequence[ScoredCandidate], aggregation: str = DEFAULT_AGGREGATION,
                    search_attempt: bool = False, attempts: int = 2) -> list[ScoredCandidate]:
    """Candidates best first under an aggregation; ties keep the input order (stable sort).

    ``search_attempt``: when none of the first ``attempts`` candidates came from the program search but a
    later one did, the best-ranked of those moves up to the last attempt. A program that reproduces every
    training pair is strong evidence that a small model's scores can miss; arc24 combined its model with a
    program search the same way (one attempt from each: 25 points alone, 35 together).
    """
    try:
        score = AGGREGATIONS[aggregation]
    except KeyError:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose from {', '.join(AGGREGATIONS)}") from None
    if not any(c.generation_nlls or c.scoring_nlls for c in candidates):
        return list(candidates)  # the model read none of them (the task outgrows its context): the programs' order
    ranked = sorted(candidates, key=score)
    if search_attempt and not any(c.from_search for c in ranked[:attempts]):
        searched = next((i for i, c in enumerate(ranked) if c.from_search), None)
        if searched is not None:
            ranked.insert(attempts - 1, ranked.pop(searched))
    return ranked

