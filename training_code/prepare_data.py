"""Export the bundled ARC sets to input/ in Kaggle's format and summarise one of them.

    python -m training_code.prepare_data                 # export, then summarise ARC-AGI-1 evaluation
    python -m training_code.prepare_data --export-only   # export only
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from .arc_loader import ArcDataset, export_bundled, solutions_beside
from .formats import DEFAULT_FORMAT_SPEC, format_from_spec


def summary(ds: ArcDataset) -> str:
    """A few lines on a dataset: counts, grid sizes, and rendered lengths in the default format."""
    tasks = list(ds.tasks.values())
    n_train = [len(t.train) for t in tasks]
    n_test = [len(t.test) for t in tasks]
    cells = [g.size for t in tasks for e in (*t.train, *t.test) for g in (e.input, e.output) if g is not None]
    fmt = format_from_spec(DEFAULT_FORMAT_SPEC)
    lengths = ds.lengths(fmt)
    return "\n".join([
        f"{ds.name}: {len(tasks)} tasks, {sum(n_test)} test inputs ({sum(n > 1 for n in n_test)} tasks with several)",
        f"  training examples per task: median {statistics.median(n_train)}, min {min(n_train)}, max {max(n_train)}",
        f"  cells per grid: median {statistics.median(cells)}, max {max(cells)}",
        f"  rendered length ({fmt.name}, characters): median {statistics.median(lengths):.0f}, "
        f"90th percentile {np.percentile(lengths, 90):.0f}, max {max(lengths)}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-dir", default="input", help="where to write the Kaggle-format files (default: input)")
    parser.add_argument("--export-only", action="store_true", help="write the files and print nothing else")
    parser.add_argument("--summarise", default="input/arc-agi_evaluation_challenges.json",
                        help="challenges file to summarise (its solutions file is read from beside it)")
    parser.add_argument("--show-task", default=None, help="task id to render (default: the shortest task)")
    args = parser.parse_args(argv)
    if args.show_task is not None and not args.export_only:
        from .task_choice import task_ids_in  # the same reading of a challenges file as --tasks

        known = task_ids_in(args.summarise) if Path(args.summarise).is_file() else []
        if known and args.show_task not in known:
            parser.error(f"argument --show-task: invalid task id {args.show_task!r}: not in {args.summarise} "
                         f"(e.g. {', '.join(sorted(known)[:5])})")

    for path in export_bundled(args.input_dir):
        print(f"wrote {path}")
    if args.export_only:
        return 0
    challenges = Path(args.summarise)
    ds = ArcDataset.from_kaggle(challenges, solutions_beside(challenges))
    print()
    print(summary(ds))
    fmt = format_from_spec(DEFAULT_FORMAT_SPEC)
    if args.show_task is None:
        lengths = ds.lengths(fmt)
        key = ds.keys[int(np.argmin(lengths))]
    else:
        key = next(k for k in ds.keys if k.task_id == args.show_task)
    rendered = ds.render(key, fmt)
    print(f"\nTask {key} in the {fmt.name} format (prompt, then the reply after the marker):\n")
    print(rendered.prompt + "\u2502" + rendered.reply)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
