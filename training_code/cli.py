"""Command lines from config dataclasses: every field becomes a flag, ``--help`` lists them with defaults.

An entry script is a preset (a config instance) and one call; this module maps the command line
onto the preset's fields and saves the final config next to the results, as arc24 does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """The type a flag parses to, and whether None is allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, preset: Any, prefix: str = "") -> None:
    """One flag per field of the dataclass instance ``preset`` (nested dataclasses get a prefix)."""
    hints = typing.get_type_hints(type(preset))
    for f in dataclasses.fields(preset):
        value = getattr(preset, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            add_config_arguments(parser, value, prefix=name + ".")
            continue
        tp, optional = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        shown = "none" if value is None else value
        if tp is bool:
            parser.add_argument(_flag(name), dest=name, nargs="?", const=True, type=_parse_bool, default=value,
                                metavar="BOOL", help=f"{help_text} (default: {shown})".strip())
            parser.add_argument("--no-" + name.replace("_", "-"), dest=name, action="store_false",
                                help=argparse.SUPPRESS)
        elif typing.get_origin(tp) is tuple:
            # repeatable: each use gives one entry, its words joined by spaces (arc24's --train_datasets SOURCE VERSION)
            parser.add_argument(_flag(name), dest=name, action="append", nargs="+", default=None, metavar="WORD",
                                help=f"{help_text} (repeatable; default: {' | '.join(map(str, value))})".strip())
        elif tp in (int, float, str):
            def convert(text: str, tp=tp, optional=optional):
                if optional and text.lower() == "none":
                    return None
                return tp(text)

            parser.add_argument(_flag(name), dest=name, type=convert, default=value, metavar=tp.__name__.upper(),
                                help=f"{help_text} (default: {shown})".strip())
        else:
            raise TypeError(f"config field {name} has type {tp}, which has no command-line form")


def config_from_args(preset: C, args: argparse.Namespace, prefix: str = "") -> C:
    """A copy of ``preset`` with the parsed flags applied."""
    changes = {}
    for f in dataclasses.fields(preset):
        value = getattr(preset, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            changes[f.name] = config_from_args(value, args, prefix=name + ".")
        else:
            given = getattr(args, name)
            if isinstance(value, tuple):
                given = value if given is None else tuple(" ".join(words) for words in given)
            changes[f.name] = given
    return dataclasses.replace(preset, **changes)


def parse_config(preset: C, argv: Sequence[str] | None = None, description: str = "") -> C:
    """Parse the command line onto a config preset; ``--help`` lists every field with its default."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, preset)
    return config_from_args(preset, parser.parse_args(argv))


def save_config(config: Any, path: str | Path) -> Path:
    """Write the config as JSON (next to the results it produced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n", encoding="utf-8")
    return path
