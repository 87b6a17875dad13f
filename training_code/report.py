"""The report of an evaluation run: each task's results as JSON (``report.json``, which ``rerank`` reads
back), a picture per test input, and the summary printed at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arc_loader import ArcDataset
from .cli import options
from .grids import Grid, grid_to_list
from .selection import ScoredCandidate

EXIT_OK, EXIT_FELL_BACK = 0, 3  # exit status of the run_evaluation_* scripts


def candidate_to_json(cand: ScoredCandidate) -> dict:
    """A candidate as report.json keeps it (``candidate_from_json`` reads it back)."""
    return {"grid": grid_to_list(cand.grid), "generation_nlls": cand.generation_nlls,
            "scoring_nlls": cand.scoring_nlls, "from_program": cand.from_program, "from_search": cand.from_search,
            "search_rank": cand.search_rank, "decoded": cand.decoded}


def candidate_from_json(obj: dict) -> ScoredCandidate:
    """A candidate of report.json; KeyError, TypeError or ValueError when it is malformed. Reports written
    before programs and the search joined the candidates lack their marks: False (and decoded: True)."""
    rank = obj.get("search_rank")
    return ScoredCandidate(np.asarray(obj["grid"], dtype=np.uint8), list(obj["generation_nlls"]),
                           list(obj["scoring_nlls"]), bool(obj.get("from_program", False)),
                           bool(obj.get("from_search", False)), None if rank is None else int(rank),
                           bool(obj.get("decoded", True)))


@dataclass
class TaskResult:
    """What one task produced: per test input, the ranked candidates and the per-view predictions."""

    task_id: str
    candidates: dict[int, list[ScoredCandidate]] = field(default_factory=dict)
    view_predictions: dict[int, list[Grid | None]] = field(default_factory=dict)  # best grid of each view
    error: str = ""
    seconds: float = 0.0
    programs_sampled: int = 0  # distinct complete programs sampled (--program-samples)
    programs_valid: int = 0  # of those, the ones that reproduce every training pair
    search_programs: dict[int, list[str]] = field(default_factory=dict)  # per test input, the search's programs
    search_seconds: float = 0.0  # wall-clock seconds the program search took

    def to_json(self) -> dict:
        return {
            "task_id": self.task_id, "error": self.error, "seconds": self.seconds,
            "programs_sampled": self.programs_sampled, "programs_valid": self.programs_valid,
            "search_programs": {str(i): p for i, p in self.search_programs.items()},
            "search_seconds": self.search_seconds,
            "candidates": {str(i): [candidate_to_json(c) for c in cands] for i, cands in self.candidates.items()},
            "view_predictions": {str(i): [None if g is None else grid_to_list(g) for g in preds]
                                 for i, preds in self.view_predictions.items()},
        }

    @classmethod
    def from_json(cls, obj: dict) -> TaskResult:
        return cls(
            obj["task_id"],
            {int(i): [candidate_from_json(c) for c in cands] for i, cands in obj["candidates"].items()},
            {int(i): [None if g is None else np.asarray(g, dtype=np.uint8) for g in preds]
             for i, preds in obj["view_predictions"].items()},
            obj["error"], obj["seconds"], obj.get("programs_sampled", 0), obj.get("programs_valid", 0),
            {int(i): list(p) for i, p in obj.get("search_programs", {}).items()},
            obj.get("search_seconds", 0.0),
        )


@dataclass
class EvalSummary:
    submission_path: Path
    fell_back: list[tuple[str, int]]
    errors: dict[str, str]
    score: Any = None  # KaggleScore when solutions were given
    metrics: dict[str, float] | None = None
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        return EXIT_FELL_BACK if self.fell_back else EXIT_OK


def write_report(out: Path, dataset: ArcDataset, results: dict[str, TaskResult], submission: dict,
                 summary: EvalSummary, config: Any) -> None:
    """report.json (``config``, the run's EvalConfig by option name, and every candidate with its scores) and
    a picture per test input."""
    from .plots import plot_answer

    solutions = dataset.solutions()
    report = {
        "config": options(config),  # by option name, as rerank and the benchmarks read it
        "seconds": summary.seconds,
        "errors": summary.errors,
        "fell_back": [list(x) for x in summary.fell_back],
        "score": None if summary.score is None else {"points": summary.score.points, "tasks": summary.score.tasks,
                                                     "percentage": summary.score.percentage},
        "metrics": summary.metrics,
        "tasks": {t: r.to_json() for t, r in results.items()},
    }
    for task_id, result in results.items():
        truths = solutions.get(task_id)
        for index, cands in result.candidates.items():
            truth = None if truths is None else truths[index]
            for cand, entry in zip(cands, report["tasks"][task_id]["candidates"][str(index)]):
                entry["correct"] = None if truth is None else bool(np.array_equal(cand.grid, truth))
            task = dataset.tasks[task_id]
            attempts = [np.asarray(submission[task_id][index][a]) for a in ("attempt_1", "attempt_2")]
            plot_answer(out / "pictures" / f"{task_id}_{index}.png", f"{task_id} test {index}",
                        [(e.input, e.output) for e in task.train], task.test[index].input, attempts, truth)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")


def print_summary(summary: EvalSummary, out: Path) -> None:
    print(f"\nsubmission: {summary.submission_path} (verified)")
    if summary.score is not None:
        s = summary.score
        print(f"score: {s.points:.2f} of {s.tasks} tasks = {s.percentage:.1f}% (Kaggle rule: either attempt right)")
    if summary.metrics:
        print("arc24 metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.metrics.items()))
    if summary.fell_back:
        print(f"{len(summary.fell_back)} test inputs fell back to [[0]]:")
        for task_id in sorted({t for t, _ in summary.fell_back}):
            print(f"  {task_id}: {summary.errors.get(task_id, 'no candidate decoded')}")
    if (out / "report.json").exists():
        print(f"report: {out / 'report.json'}, pictures in {out / 'pictures'}")
    print(f"time: {summary.seconds:.0f} s")

