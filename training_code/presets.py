"""The presets by name.

Every ``run_evaluation_<name>.py`` and ``run_finetune_<name>.py`` of the package is a preset: a config
(``PRESET``) and one call. This module finds them by their file names, so a preset added as a file is
known to the command lines, to ``distributed`` and to the notebooks at once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

PresetKind = Literal["evaluation", "finetune"]
PREFIXES: dict[str, str] = {"evaluation": "run_evaluation_", "finetune": "run_finetune_"}
DEFAULT_PRESET = "smollm"  # the one that runs on a CPU with the bundled model


def preset_names(kind: PresetKind = "evaluation") -> list[str]:
    """The names of the presets of ``kind``, sorted."""
    prefix = PREFIXES[kind]
    return sorted(p.stem.removeprefix(prefix) for p in Path(__file__).parent.glob(f"{prefix}*.py"))


def preset_config(name: str, kind: PresetKind = "evaluation") -> Any:
    """The config of preset ``name`` (an ``EvalConfig`` or a ``FinetuneConfig``); ValueError naming the
    valid names for an unknown one."""
    if kind not in PREFIXES:
        raise ValueError(f"unknown kind of preset {kind!r}; choose one of {', '.join(PREFIXES)}")
    names = preset_names(kind)
    if name not in names:
        raise ValueError(f"unknown {kind} preset {name!r}; choose one of {', '.join(names)}")
    return importlib.import_module(f"{__package__}.{PREFIXES[kind]}{name}").PRESET
