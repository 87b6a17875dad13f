"""Command lines from config dataclasses: every field becomes a flag, ``--help`` lists them with defaults.

An entry script is a preset (a config instance) and one call; this module maps the command line
onto the preset's fields and saves the final config next to the results, as arc24 does.

A bad option stops the run while the command line is parsed, before any model loads: exit status 2
and a message naming the option, the bad value and the valid ones. A field declares what is valid in
its metadata: ``choices`` (the valid values; ``--help`` lists them) or ``check`` (a function that
raises ValueError saying why a value is bad and what would do, e.g. a format spec's parser). An entry
script adds checks that need more than one field (``--tasks`` ids against the ``--challenges`` file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


class OptionError(ValueError):
    """A bad value of a command-line option; the message names the option, the value and the valid ones."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")
        self.option = option


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def invalid_choice(value: Any, choices: Iterable[str]) -> str:
    """argparse's own wording for a value outside ``choices``."""
    return f"invalid choice: {value!r} (choose from {', '.join(choices)})"


def checked(check: Callable[[Any], Any]) -> Callable[[str], str]:
    """An argparse ``type`` that runs ``check`` on the text and turns its ValueError into argparse's error
    (exit status 2, the option named), e.g. ``parser.add_argument("--format", type=checked(format_from_spec))``."""
    def convert(text: str) -> str:
        try:
            check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return convert


def comma_choices(choices: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type`` for names joined by commas, each one of ``choices``."""
    valid = tuple(choices)

    def check(text: str) -> None:
        bad = [name for name in text.split(",") if name not in valid]
        if bad:
            raise ValueError(invalid_choice(bad[0], valid))

    return checked(check)


def field_problem(f: dataclasses.Field, value: Any) -> str:
    """Why ``value`` is not valid for the field ``f`` (its ``choices`` or ``check`` metadata), or ''."""
    entries = value if isinstance(value, tuple) else (value,)
    choices = f.metadata.get("choices")
    check = f.metadata.get("check")
    for entry in entries:
        if choices is not None and entry not in choices:
            return invalid_choice(entry, choices)
        if check is not None:
            try:
                check(entry)
            except ValueError as e:
                return str(e)
    return ""


def check_config(config: Any, prefix: str = "") -> None:
    """OptionError for the first field of ``config`` (nested dataclasses too) whose value its metadata
    refuses: a preset or a saved config is checked as strictly as the command line."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value, prefix=prefix + f.name + ".")
            continue
        problem = field_problem(f, value)
        if problem:
            raise OptionError(_flag(prefix + f.name), problem)


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
        choices = f.metadata.get("choices")
        if choices is not None:
            help_text = f"{help_text}; one of {', '.join(map(str, choices))}".lstrip("; ")
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
            def convert(text: str, tp=tp, optional=optional, f=f):
                if optional and text.lower() == "none":
                    return None
                converted = tp(text)
                if f.metadata.get("check") is not None:  # choices: argparse checks them itself
                    problem = field_problem(f, converted)
                    if problem:
                        raise argparse.ArgumentTypeError(problem)
                return converted

            parser.add_argument(_flag(name), dest=name, type=convert, default=value, choices=choices,
                                metavar=tp.__name__.upper(), help=f"{help_text} (default: {shown})".strip())
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


def checked_config(parser: argparse.ArgumentParser, config: C, checks: Sequence[Callable[[C], None]] = ()) -> C:
    """``config`` when every field and every check (each raises OptionError) accepts it; otherwise
    argparse's error: the message on stderr and exit status 2."""
    try:
        check_config(config)
        for check in checks:
            check(config)
    except OptionError as e:
        parser.error(str(e))
    return config


def parse_config(preset: C, argv: Sequence[str] | None = None, description: str = "",
                 checks: Sequence[Callable[[C], None]] = ()) -> C:
    """Parse the command line onto a config preset; ``--help`` lists every field with its default.
    A bad value (see the module's docstring, and ``checks``) exits with status 2 before anything runs."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, preset)
    return checked_config(parser, config_from_args(preset, parser.parse_args(argv)), checks)


def save_config(config: Any, path: str | Path) -> Path:
    """Write the config as JSON (next to the results it produced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n", encoding="utf-8")
    return path
