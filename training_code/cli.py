"""Command lines from config dataclasses: every field becomes a flag, ``--help`` lists them with defaults.

An entry script is a preset (a config instance) and one call; this module maps the command line
onto the preset's fields and saves the final config next to the results, as arc24 does.

A bad option stops the run while the command line is parsed, before any model loads: exit status 2
and a message naming the option, the bad value and the valid ones. A field declares what is valid in
its metadata: ``choices`` (the valid values; ``--help`` lists them) or ``check`` (a function that
raises ValueError saying why a value is bad and what would do, e.g. a format spec's parser). An entry
script adds checks that need more than one field (``--tasks`` ids against the ``--challenges`` file).

A nested config (one per stage of a run) gives its fields flags named ``--<field>.<name>``, or with the
prefix its field's ``flags`` metadata names (``"ttt_"``: ``--ttt-steps``; ``""``: the nested names as
they are); a field's own ``flag`` metadata names its option outright. `options` and `with_options` speak
of a config by those option names, so a saved config or a test need not spell out the nesting.
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


@dataclasses.dataclass(frozen=True)
class Option:
    """One leaf field of a config: where it sits (``dest``, dotted), its option name and its field."""

    dest: str
    name: str
    field: dataclasses.Field
    value: Any

    @property
    def flag(self) -> str:
        return _flag(self.name)


def config_options(config: Any) -> list[Option]:
    """The leaf fields of the dataclass instance ``config``, nested ones included, with their option names;
    a ValueError when two fields would share one (their flags could not tell them apart)."""
    found = _leaf_options(config, "", "")
    names = [o.name for o in found]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ValueError(f"{type(config).__name__}: more than one field has the option name {', '.join(shared)}")
    return found


def _leaf_options(config: Any, dest: str, prefix: str) -> list[Option]:
    found = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            inner = f.metadata.get("flags", f.name + ".")
            found += _leaf_options(value, dest + f.name + ".", prefix + inner)
        else:
            found.append(Option(dest + f.name, f.metadata.get("flag", prefix + f.name), f, value))
    return found


def options(config: Any) -> dict[str, Any]:
    """The config's values by option name (``ttt_steps``, not ``ttt.steps``)."""
    return {o.name: o.value for o in config_options(config)}


def _with_dests(config: C, values: dict[str, Any]) -> C:
    """A copy of ``config`` with the values at dotted ``dest`` paths replaced."""
    changes: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {}
    for dest, value in values.items():
        head, _, rest = dest.partition(".")
        if rest:
            inner.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    for head, nested in inner.items():
        changes[head] = _with_dests(getattr(config, head), nested)
    return dataclasses.replace(config, **changes)


def with_options(config: C, **values: Any) -> C:
    """A copy of ``config`` with fields set by option name (as on the command line, underscores for
    dashes); a TypeError names an option the config does not have."""
    by_name = {o.name: o.dest for o in config_options(config)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise TypeError(f"{type(config).__name__} has no option {', '.join(unknown)}")
    return _with_dests(config, {by_name[name]: value for name, value in values.items()})


def config_from_dict(preset: C, values: dict[str, Any]) -> C:
    """``preset`` with the values of a JSON object applied: by option name (as `save_config` writes them)
    or as nested objects for nested configs (``dataclasses.asdict``); a ValueError names unknown keys."""
    by_name = {o.name: o.dest for o in config_options(preset)}
    dests = set(by_name.values())
    flat: dict[str, Any] = {}

    def walk(obj: dict, at: str) -> None:
        for key, value in obj.items():
            if isinstance(value, dict) and any(d.startswith(at + key + ".") for d in dests):
                walk(value, at + key + ".")
            else:
                flat[at + key] = value

    walk(values, "")
    resolved, unknown = {}, []
    for key, value in flat.items():
        dest = key if key in dests else by_name.get(key)
        if dest is None:
            unknown.append(key)
        else:
            resolved[dest] = tuple(value) if isinstance(value, list) else value
    if unknown:
        raise ValueError(f"not fields of {type(preset).__name__}: {', '.join(sorted(unknown))}")
    return _with_dests(preset, resolved)


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


def check_config(config: Any) -> None:
    """OptionError for the first field of ``config`` (nested dataclasses too) whose value its metadata
    refuses: a preset or a saved config is checked as strictly as the command line."""
    for option in config_options(config):
        problem = field_problem(option.field, option.value)
        if problem:
            raise OptionError(option.flag, problem)


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


def add_config_arguments(parser: argparse.ArgumentParser, preset: Any) -> None:
    """One flag per leaf field of the dataclass instance ``preset`` (see `config_options` for the names)."""
    for option in config_options(preset):
        f, value, name, dest = option.field, option.value, option.name, option.dest
        tp, optional = _base_type(_field_type(preset, dest))
        help_text = f.metadata.get("help", "")
        shown = "none" if value is None else value
        choices = f.metadata.get("choices")
        if choices is not None:
            help_text = f"{help_text}; one of {', '.join(map(str, choices))}".lstrip("; ")
        if tp is bool:
            parser.add_argument(option.flag, dest=dest, nargs="?", const=True, type=_parse_bool, default=value,
                                metavar="BOOL", help=f"{help_text} (default: {shown})".strip())
            parser.add_argument("--no-" + name.replace("_", "-"), dest=dest, action="store_false",
                                help=argparse.SUPPRESS)
        elif typing.get_origin(tp) is tuple:
            # repeatable: each use gives one entry, its words joined by spaces (arc24's --train_datasets SOURCE VERSION)
            parser.add_argument(option.flag, dest=dest, action="append", nargs="+", default=None, metavar="WORD",
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

            parser.add_argument(option.flag, dest=dest, type=convert, default=value, choices=choices,
                                metavar=tp.__name__.upper(), help=f"{help_text} (default: {shown})".strip())
        else:
            raise TypeError(f"config field {dest} has type {tp}, which has no command-line form")


def _field_type(config: Any, dest: str) -> Any:
    """The annotated type of the field at the dotted path ``dest``."""
    head, _, rest = dest.partition(".")
    if rest:
        return _field_type(getattr(config, head), rest)
    return typing.get_type_hints(type(config))[head]


def config_from_args(preset: C, args: argparse.Namespace) -> C:
    """A copy of ``preset`` with the parsed flags applied."""
    values = {}
    for option in config_options(preset):
        given = getattr(args, option.dest)
        if isinstance(option.value, tuple):
            given = option.value if given is None else tuple(" ".join(words) for words in given)
        values[option.dest] = given
    return _with_dests(preset, values)


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
    """Write the config as JSON by option name (next to the results it produced); `config_from_dict`
    reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(options(config), indent=2, default=str) + "\n", encoding="utf-8")
    return path
