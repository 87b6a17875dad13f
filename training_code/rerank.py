"""Choose a finished run's attempts again with another aggregation, without loading a model.

    python -m training_code.rerank --report output/smollm2/report.json --aggregation vote

An evaluation's ``report.json`` keeps every candidate of every test input with the NLLs that decoding
and scoring gave it, so ranking them another way needs no decoding and no forward pass: this script
reads the report and the run's ``submission.json`` beside it (which names every task and test input of
the run, fallbacks included), ranks each candidate list with ``--aggregation``, writes a verified
``submission.json`` to ``--output`` and, when the solutions are known, prints the Kaggle score next to
the run's own. Ranking with the run's own aggregation reproduces its submission exactly.

``--solver`` keeps part of the pool: ``model`` the candidates some view decoded (the run as it would have
been without the program search, which adds to the pool and changes no other candidate's scores),
``search`` only the program search's candidates, simplest program first (the search alone; the
aggregation is not used). A run with ``--search-seconds`` thus measures the model, the search and
both from one set of candidates.

Aggregations that use scoring NLLs (product of experts, min and mean probability) need a run that
scored its candidates (``--scoring-views`` above 0 and an aggregation other than vote or maximum
generation probability); otherwise the error names the first task without them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .arc_loader import solutions_beside
from .grids import ArcDataError
from .report import candidate_from_json
from .selection import AGGREGATIONS, ScoredCandidate, rank_candidates
from .submission import KaggleScore, build_submission, score_submission, write_verified_submission

SOLVERS = ("all", "model", "search")  # which candidates of the pool are ranked


@dataclass
class Reranked:
    submission_path: Path
    aggregation: str
    solver: str
    fell_back: list[tuple[str, int]]
    score: KaggleScore | None  # with solutions
    run_score: KaggleScore | None  # the run's own submission, same solutions


def read_json_file(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} there")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArcDataError(f"{what} is not valid JSON: {e}", file=str(path)) from None


def candidates_of(report: dict, report_path: Path) -> dict[tuple[str, int], list[ScoredCandidate]]:
    """(task id, test index) -> the report's candidates, in the order the run ranked them."""
    out = {}
    for task_id, entry in report["tasks"].items():
        for index, cands in entry["candidates"].items():
            try:
                out[(task_id, int(index))] = [candidate_from_json(c) for c in cands]
            except (KeyError, TypeError, ValueError) as e:
                raise ArcDataError(f"test input {index}: a candidate is malformed ({type(e).__name__}: {e})",
                                   task_id=task_id, file=str(report_path)) from None
    return out


def solutions_for(report: dict, report_path: Path, solutions: str) -> dict | None:
    """The solutions file given, or the one beside the run's challenges file ("auto"), or None."""
    if solutions == "auto":
        guess = solutions_beside(report.get("config", {}).get("challenges", ""))
        if guess is None:
            return None
        solutions = str(guess)
    if not solutions:
        return None
    return read_json_file(Path(solutions), "solutions file")


def ranked_grids(cands: Sequence[ScoredCandidate], aggregation: str, search_attempt: bool, solver: str) -> list:
    """The grids of the candidates ``solver`` keeps, best first."""
    if solver == "search":
        return [c.grid for c in sorted((c for c in cands if c.from_search), key=lambda c: c.search_rank or 0)]
    if solver == "model":
        cands, search_attempt = [c for c in cands if c.decoded], False
    return [c.grid for c in rank_candidates(cands, aggregation, search_attempt)] if cands else []


def rerank(report_path: str | Path, aggregation: str, output: str | Path, solutions: str = "auto",
           solver: str = "all") -> Reranked:
    """The run's candidates (those ``solver`` keeps) ranked by ``aggregation``, written as a verified submission
    under ``output``."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose from {', '.join(AGGREGATIONS)}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose from {', '.join(SOLVERS)}")
    report_path = Path(report_path)
    report = read_json_file(report_path, "report.json of an evaluation run")
    run_submission = read_json_file(report_path.with_name("submission.json"), "submission.json of the run")
    test_counts = {task_id: len(entries) for task_id, entries in run_submission.items()}
    search_attempt = bool(report.get("config", {}).get("search_attempt", False))  # as the run chose
    ranked = {}
    for (task_id, index), cands in candidates_of(report, report_path).items():
        try:
            ranked[(task_id, index)] = ranked_grids(cands, aggregation, search_attempt, solver)
        except ValueError as e:  # an aggregation that needs scoring NLLs, on a run that did not score
            raise ValueError(f"{report_path}: task {task_id}, test input {index}: {e} (the run used "
                             f"--aggregation {report.get('config', {}).get('aggregation')!r} with --scoring-views "
                             f"{report.get('config', {}).get('scoring_views')})") from None
    build = build_submission(test_counts, ranked)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "submission.json"
    write_verified_submission(path, build.submission, test_counts)
    score = run_score = None
    truths = solutions_for(report, report_path, solutions)
    if truths is not None:
        truths = {t: s for t, s in truths.items() if t in test_counts}
        score = score_submission(build.submission, truths)
        run_score = score_submission(run_submission, truths)
    return Reranked(path, aggregation, solver, list(build.fell_back), score, run_score)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", required=True, help="report.json of a run_evaluation_* run")
    parser.add_argument("--aggregation", required=True, choices=list(AGGREGATIONS))
    parser.add_argument("--solver", default="all", choices=list(SOLVERS),
                        help="rank all candidates, only those the model decoded, or only the program search's "
                             "(in the search's order)")
    parser.add_argument("--output", default="", help="folder for the new submission.json "
                                                     "(default: rerank-<aggregation> beside the report)")
    parser.add_argument("--solutions", default="auto",
                        help="solutions JSON to score with; 'auto': beside the run's challenges file; '' none")
    args = parser.parse_args(argv)
    suffix = "" if args.solver == "all" else f"-{args.solver}"
    output = args.output or str(Path(args.report).parent / f"rerank-{args.aggregation}{suffix}")
    result = rerank(args.report, args.aggregation, output, args.solutions, args.solver)
    chosen = "the search's order" if result.solver == "search" else result.aggregation
    print(f"submission: {result.submission_path} (verified), {result.solver} candidates, attempts chosen by {chosen}")
    if result.score is not None:
        print(f"score: {result.score.points:.2f} of {result.score.tasks} tasks = {result.score.percentage:.1f}%"
              f" (the run's own choice: {result.run_score.percentage:.1f}%)")
    print(f"{len(result.fell_back)} test inputs fell back (no candidate)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
