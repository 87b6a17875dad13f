"""Data-layer speed: augment and render the 400 ARC-AGI-1 evaluation tasks under 8 views each.

    .venv/bin/python -m benchmarks.bench_data [--repeats 5] [--views 8] [--format architects] [--tasks N]

Prints renders per second (median over repeats, and the range) for: drawing random views (keys),
building the augmented task (view), rendering it as text, and the whole chain. Runs in one Python
thread, so it measures one core. Target: at least 2,000 renders per second, so that data never limits
training (a 135M model on this CPU trains on about 160 tokens per second).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from training_code.arc_loader import ArcDataset
from training_code.cli import checked
from training_code.formats import format_from_spec


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--format", default="architects", type=checked(format_from_spec),
                        help="format spec (see training_code.formats)")
    parser.add_argument("--tasks", type=int, default=0, help="only the first N tasks (0: all 400)")
    args = parser.parse_args(argv)

    ds = ArcDataset.from_bundled("arc-agi-1/evaluation")
    if args.tasks:
        ds = ds.subset(sorted(ds.tasks)[: args.tasks])
    fmt = format_from_spec(args.format)
    rates: dict[str, list[float]] = {"keys": [], "views": [], "render": [], "all": []}
    for r in range(args.repeats):
        start = time.perf_counter()
        aug = ds.augment(np.random.default_rng(r), n=args.views)
        t_keys = time.perf_counter() - start
        start = time.perf_counter()
        views = [aug.view(k) for k in aug.keys]
        t_views = time.perf_counter() - start
        start = time.perf_counter()
        for v in views:
            fmt.render(v.train, v.test_input, v.test_output)
        t_render = time.perf_counter() - start
        n = len(aug.keys)
        rates["keys"].append(n / t_keys)
        rates["views"].append(n / t_views)
        rates["render"].append(n / t_render)
        rates["all"].append(n / (t_keys + t_views + t_render))
    print(f"{len(ds.keys)} test inputs x {args.views} views = {len(ds.keys) * args.views} renders per repeat, "
          f"format {fmt.spec!r}, {args.repeats} repeats")
    print(f"{'stage':<8} {'median/s':>10} {'min/s':>10} {'max/s':>10}")
    for stage, values in rates.items():
        print(f"{stage:<8} {statistics.median(values):>10.0f} {min(values):>10.0f} {max(values):>10.0f}")
    return rates


if __name__ == "__main__":
    main()
