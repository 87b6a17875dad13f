"""An evaluation's finished tasks carried to another machine: its result cache as a JSON-lines file, and back.

An evaluation with ``--cache`` keeps every finished task in ``<output>/cache`` (``evaluation.result_cache``),
keyed by the model's fingerprint, the task's content and every option that changes its result, so a killed run
resumes where it stopped. That cache is a database on one machine's disk. This tool writes its entries to a
plain text file (one JSON object per line: the key and the task's result) that can be committed, copied or
uploaded, and loads such a file into the cache of a run elsewhere, which then takes those tasks from it:

    python -m training_code.cache_io export --output output/smollm2 --to finished.jsonl
    python -m training_code.cache_io import --from finished.jsonl --output output/smollm2

A key only matches a run with the same model, adapter, options and code version, so importing into a run
with other settings changes nothing it computes. Entries already in the cache are kept as they are.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

KEY = re.compile(r"[0-9a-f]{64}")  # evaluation.task_cache_key: a SHA-256 in hex


def _open(output: Path):
    import diskcache

    return diskcache.Cache(str(output / "cache"))


def export_cache(output: Path, path: Path) -> int:
    """Write every entry of ``<output>/cache`` to ``path`` (sorted by key); the number written."""
    cache_dir = output / "cache"
    if not cache_dir.is_dir():
        raise FileNotFoundError(f"{str(cache_dir)!r}: no result cache there (was the run made with --cache?)")
    cache = _open(output)
    lines = [json.dumps({"key": key, "result": json.loads(cache[key])}, sort_keys=True) for key in sorted(cache)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def read_entries(path: Path) -> list[tuple[str, str]]:
    """The (key, result as JSON text) pairs of an exported file; a ValueError naming the file and the line
    for anything that is not an entry."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}, line {number}: not JSON ({e})") from None
        if not isinstance(entry, dict) or set(entry) != {"key", "result"}:
            raise ValueError(f"{path}, line {number}: an entry is an object with 'key' and 'result'")
        if not isinstance(entry["key"], str) or not KEY.fullmatch(entry["key"]):
            raise ValueError(f"{path}, line {number}: the key is not a task cache key (64 hex digits)")
        if not isinstance(entry["result"], dict) or "task_id" not in entry["result"]:
            raise ValueError(f"{path}, line {number}: the result is not a task's result (no task_id)")
        entries.append((entry["key"], json.dumps(entry["result"])))
    return entries


def import_cache(path: Path, output: Path) -> tuple[int, int]:
    """Load an exported file into ``<output>/cache`` (made if missing); the entries added and those already there.
    Nothing is written unless the whole file reads."""
    entries = read_entries(path)
    cache = _open(output)
    added = kept = 0
    for key, result in entries:
        if key in cache:
            kept += 1
        else:
            cache[key] = result
            added += 1
    return added, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write a run's cached tasks to a JSON-lines file")
    export.add_argument("--output", required=True, type=Path, help="the run's --output folder (its cache/ inside)")
    export.add_argument("--to", required=True, type=Path, help="the file to write")
    load = commands.add_parser("import", help="load a JSON-lines file into a run's cache")
    load.add_argument("--from", dest="source", required=True, type=Path, help="a file written by export")
    load.add_argument("--output", required=True, type=Path, help="the run's --output folder (cache/ is made there)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            print(f"{export_cache(args.output, args.to)} finished tasks written to {args.to}")
        else:
            added, kept = import_cache(args.source, args.output)
            print(f"{added} finished tasks added to {args.output / 'cache'} ({kept} already there)")
    except (OSError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
