"""Selection: two-attempt accuracy of every aggregation on the same candidates.

    .venv/bin/python -m benchmarks.bench_selection [--input benchmarks/results/decoders.json]

Decode once, score once, rank many ways: ``benchmarks.bench_decoders`` decodes each test input,
scores one decoder's candidates (its --pool) under augmented views and writes them with every NLL;
this script ranks that same pool with each aggregation of ``training_code.selection.AGGREGATIONS``
(product of experts, maximum generation probability, min and mean probability, voting) and counts a
test input as solved when its right answer is among the two best. No model is loaded: it runs in
a second and can be re-run on any decoders file.

Reported per aggregation: the share of all test inputs solved (two attempts), and of the test inputs
whose pool holds the right answer at all (the found rate, the ceiling every ranking shares), the
share that the ranking puts in the top two, and in first place.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from training_code.report import candidate_from_json
from training_code.selection import AGGREGATIONS, ScoredCandidate, rank_candidates

RESULTS = Path("benchmarks/results")


def pool_of(record: dict) -> list[tuple[ScoredCandidate, bool]]:
    """The scored candidates of one test input, each with whether it is right."""
    return [(candidate_from_json(c), bool(c["correct"])) for c in record["pool"]]


def rank_all(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per aggregation: top-2 and top-1 rates over all test inputs and over those with a right candidate."""
    table: dict[str, dict[str, float]] = {}
    found = [any(ok for _, ok in pool_of(r)) for r in records]
    scored = all(c["scoring_nlls"] for r in records for c in r["pool"])
    for name in AGGREGATIONS:
        if not scored and name not in ("max-generation-probability", "vote"):
            continue  # the pool was not scored (bench_decoders --scoring-views 0)
        top1, top2 = [], []
        for record in records:
            pool = pool_of(record)
            right = {id(c) for c, ok in pool if ok}
            ranked = rank_candidates([c for c, _ in pool], name)
            top1.append(bool(ranked) and id(ranked[0]) in right)
            top2.append(any(id(c) in right for c in ranked[:2]))
        with_answer = [t for t, f in zip(top2, found) if f]
        with_answer1 = [t for t, f in zip(top1, found) if f]
        table[name] = {
            "test_inputs": len(records),
            "two_attempt_accuracy": statistics.fmean(top2) if top2 else 0.0,
            "found": sum(found),
            # None: no pool held the right answer, so the ranking had nothing to find (JSON has no NaN)
            "top2_given_found": statistics.fmean(with_answer) if with_answer else None,
            "top1_given_found": statistics.fmean(with_answer1) if with_answer1 else None,
        }
    return table


def plot(table: dict[str, dict[str, float]], found_rate: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on these machines
    import matplotlib.pyplot as plt

    names = list(table)
    values = [100 * table[n]["two_attempt_accuracy"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(names, values, color="#0074D9")
    ax.axhline(100 * found_rate, color="#FF4136", linestyle="--", linewidth=1,
               label=f"found rate (ceiling): {100 * found_rate:.1f}%")
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.1f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(values + [100 * found_rate, 1.0]) * 1.25)
    ax.set_ylabel("two-attempt accuracy (% of test inputs)")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(RESULTS / "decoders.json"), help="a bench_decoders result file")
    parser.add_argument("--out", default="", help="default: selection.json beside the input")
    args = parser.parse_args(argv)

    source = json.loads(Path(args.input).read_text(encoding="utf-8"))
    records = source["records"]
    table = rank_all(records)
    found_rate = statistics.fmean(any(c["correct"] for c in r["pool"]) for r in records) if records else 0.0
    out = Path(args.out) if args.out else Path(args.input).with_name("selection.json")
    config = source["config"]
    result = {
        "benchmark": "selection",
        "command": " ".join([".venv/bin/python -m benchmarks.bench_selection",
                         *(sys.argv[1:] if argv is None else argv)]),
        "input": args.input,
        "input_command": source["command"],
        "machine": source["machine"],
        "pool": source["pool"],
        "scoring_views": config["scoring_views"],
        "found_rate": found_rate,
        "mean_pool_size": statistics.fmean(len(r["pool"]) for r in records) if records else 0.0,
        "table": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    title = (f"Selection on the {source['pool']} pool of {len(records)} test inputs "
             f"(mean {result['mean_pool_size']:.1f} candidates), {config['scoring_views']} scoring views")
    plot(table, found_rate, title, out.with_suffix(".png"))

    print(title)
    print(f"\n{'aggregation':<28} {'two-attempt acc.':>17} {'top-2 | found':>14} {'top-1 | found':>14}")
    def share(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    for name, row in table.items():
        print(f"{name:<28} {row['two_attempt_accuracy']:>17.1%} {share(row['top2_given_found']):>14} "
              f"{share(row['top1_given_found']):>14}")
    print(f"found rate (ceiling) {found_rate:.1%} ({sum(any(c['correct'] for c in r['pool']) for r in records)} "
          f"of {len(records)})")
    print(f"\n{out} and {out.with_suffix('.png')} written")


if __name__ == "__main__":
    main()
