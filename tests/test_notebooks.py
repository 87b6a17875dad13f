"""The notebooks cannot rot: each one runs here in a real kernel, on a CPU, with its paths redirected by
environment variables (a tiny random model, a few tasks, temporary folders); and the wheel-dataset
builder's pieces: the pip command, a real download of one small wheel, the project's wheel, the
install line."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from training_code.submission import read_submission

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "kaggle_notebooks"


def load_builder():
    """kaggle_notebooks/build_wheel_dataset.py as a module (kaggle_notebooks is a folder, not a package)."""
    spec = importlib.util.spec_from_file_location("build_wheel_dataset", NOTEBOOKS / "build_wheel_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def task(seed: int, n_train: int = 2, size: int = 2) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)

    def grid():
        return rng.integers(0, 3, size=(size, size)).tolist()

    challenge = {"train": [{"input": grid(), "output": grid()} for _ in range(n_train)], "test": [{"input": grid()}]}
    return challenge, [grid()]


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


# --------------------------------------------------------------------------------------------------
# Running notebooks


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    """A python3 kernel spec whose command is this interpreter (the venv's python), found first."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernels")
    install(prefix=str(prefix), kernel_name="python3")
    return prefix / "share" / "jupyter"


def execute(name: str, env: dict[str, str], monkeypatch, kernels: Path, timeout: int = 240) -> nbformat.NotebookNode:
    """Run every cell of a notebook in a fresh kernel started in kaggle_notebooks/, as Jupyter would."""
    for key in [k for k in os.environ if k.startswith("ARC_")]:
        monkeypatch.delenv(key)  # only the settings given here
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))
    # one torch thread: on two busy cores a tiny model runs many times faster than on two threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=timeout,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.outputs)


@pytest.mark.slow
def test_the_local_notebook_runs_the_pipeline_and_shows_tasks_and_answers(tmp_path, monkeypatch, kernels):
    write_json(tmp_path / "data" / "x_challenges.json", {"aaa": task(1)[0], "bbb": task(2, n_train=3)[0]})
    write_json(tmp_path / "data" / "x_solutions.json", {"aaa": task(1)[1], "bbb": task(2, n_train=3)[1]})
    notebook = execute("arc-prize-local.ipynb", {
        "ARC_MODEL": "tiny", "ARC_CHALLENGES": str(tmp_path / "data" / "x_challenges.json"), "ARC_TASKS": "",
        "ARC_OUTPUT": str(tmp_path / "out")}, monkeypatch, kernels)
    assert set(read_submission(tmp_path / "out" / "submission.json", {"aaa": 1, "bbb": 1})) == {"aaa", "bbb"}
    assert images(notebook) == 4  # each task before the run, and its answer after
    assert json.loads((tmp_path / "out" / "report.json").read_text())["score"]["tasks"] == 2


@pytest.mark.slow
def test_the_kaggle_notebook_makes_a_smoke_run_on_the_placeholder_set(tmp_path, monkeypatch, kernels):
    tasks = {"aaa": task(1)[0], "bbb": task(2)[0]}
    challenges = write_json(tmp_path / "competition" / "arc-agi_test_challenges.json", tasks)
    write_json(tmp_path / "competition" / "arc-agi_evaluation_challenges.json", tasks | {"ccc": task(3)[0]})
    execute("arc-prize-kaggle.ipynb", {
        "ARC_SKIP_INSTALL": "1", "ARC_MODEL": "tiny", "ARC_CHALLENGES": str(challenges),
        "ARC_OUTPUT": str(tmp_path / "working"), "ARC_WHEELS": str(tmp_path / "no-wheels")}, monkeypatch, kernels)
    info = json.loads((tmp_path / "working" / "arc-run" / "kaggle_run.json").read_text())
    assert info["mode"] == "smoke" and "public sets" in info["reason"] and info["problems"] == []
    assert info["python"] == sys.executable  # the kernel ran this virtual environment's python
    assert set(read_submission(tmp_path / "working" / "submission.json", {"aaa": 1, "bbb": 1})) == {"aaa", "bbb"}


@pytest.mark.slow
def test_the_kaggle_notebook_makes_a_full_run_on_hidden_tasks_and_answers_every_one(tmp_path, monkeypatch, kernels):
    ragged = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}
    challenges = write_json(tmp_path / "competition" / "arc-agi_test_challenges.json",
                            {"aaa": task(1)[0], "bad": ragged})
    write_json(tmp_path / "competition" / "arc-agi_evaluation_challenges.json", {"ccc": task(3)[0]})
    execute("arc-prize-kaggle.ipynb", {
        "ARC_SKIP_INSTALL": "1", "ARC_MODEL": "tiny", "ARC_PRESET": "smollm", "ARC_CHALLENGES": str(challenges),
        "ARC_OUTPUT": str(tmp_path / "working"), "ARC_TIME_BUDGET": "3600", "ARC_TIME_MARGIN": "60"},
        monkeypatch, kernels)
    info = json.loads((tmp_path / "working" / "arc-run" / "kaggle_run.json").read_text())
    assert info["mode"] == "full" and info["processes"] == 1 and info["problems"] == []
    assert 3000 < info["time_budget"] < 3540  # the budget less the margin and the time already spent
    submission = read_submission(tmp_path / "working" / "submission.json", {"aaa": 1, "bad": 1})
    assert submission["bad"][0]["attempt_1"].tolist() == [[0]]  # a task that cannot load gets the fallback


def test_the_wheel_notebook_fills_a_dataset_folder(tmp_path, monkeypatch, kernels):
    execute("build-wheel-dataset.ipynb", {"ARC_PROJECT": str(ROOT), "ARC_WHEELS_OUT": str(tmp_path / "wheels"),
                                          "ARC_WHEEL_ONLY": "six"}, monkeypatch, kernels)
    names = sorted(p.name for p in (tmp_path / "wheels").iterdir())
    assert any(n.startswith("six-") and n.endswith(".whl") for n in names)
    assert {"install.sh", "requirements.txt", "requirements-gpu.txt", "arc_pipeline-0.1.0-py3-none-any.whl"} <= {
        *names}


# --------------------------------------------------------------------------------------------------
# The wheel dataset builder


def test_the_pip_command_asks_for_binary_wheels_for_kaggles_python_and_linux(tmp_path):
    cmd = builder.pip_download_command(tmp_path, requirements=[tmp_path / "requirements-gpu.txt"],
                                       python_version="3.12", extra_index_urls=["https://example.org/whl"])
    assert cmd[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--abi") + 1] == "cp312"
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_35_x86_64" and "manylinux_2_28_x86_64" in platforms  # torch's tag
    assert "manylinux2014_x86_64" in platforms and "linux_x86_64" not in platforms
    assert cmd[-2:] == ["-r", str(tmp_path / "requirements-gpu.txt")] and "--no-deps" not in cmd
    assert cmd[cmd.index("--extra-index-url") + 1] == "https://example.org/whl"
    only = builder.pip_download_command(tmp_path, packages=["six"], no_deps=True)
    assert only[-2:] == ["--no-deps", "six"] and "-r" not in only
    with pytest.raises(ValueError, match="nothing to download"):
        builder.pip_download_command(tmp_path)
    with pytest.raises(ValueError, match="glibc"):
        builder.platform_tags("2.5")


def test_a_failed_download_says_so():
    with pytest.raises(builder.WheelDownloadError, match="exit status 2"):
        builder.download_wheels([sys.executable, "-c", "raise SystemExit(2)"])


def test_building_a_dataset_downloads_a_wheel_and_writes_the_offline_install(tmp_path, capsys):
    out = tmp_path / "arc-wheels"
    assert builder.main(["--out", str(out), "--only", "six", "--no-deps", "--slug", "my-wheels",
                         "--kaggle-id", "me/my-wheels"]) == 0
    assert len(list(out.glob("six-*.whl"))) == 1
    assert (out / "requirements-gpu.txt").read_text() == (ROOT / "requirements-gpu.txt").read_text()
    printed = capsys.readouterr().out
    assert ("pip install --no-index --find-links=/kaggle/input/my-wheels -r "
            "/kaggle/input/my-wheels/requirements-gpu.txt") in printed
    assert "pip install --no-index --no-deps /kaggle/input/my-wheels/arc_pipeline-0.1.0-py3-none-any.whl" in printed
    script = (out / "install.sh").read_text()
    assert 'pip install --no-index --find-links="$HERE" -r "$HERE"/requirements-gpu.txt' in script
    assert json.loads((out / "dataset-metadata.json").read_text())["id"] == "me/my-wheels"


def test_the_project_wheel_holds_the_package_with_a_valid_record_and_installs(tmp_path):
    wheel = builder.build_project_wheel(tmp_path)
    assert wheel.name == "arc_pipeline-0.1.0-py3-none-any.whl"
    assert builder.build_project_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()  # reproducible
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "training_code/evaluation.py" in names and "training_code/distributed.py" in names
        assert not any("__pycache__" in n for n in names)
        rows = list(csv.reader(io.StringIO(archive.read("arc_pipeline-0.1.0.dist-info/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for path, digest, size in rows:
            if digest:
                data = archive.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)], check=True)
    assert (target / "training_code" / "distributed.py").read_bytes() == (
        ROOT / "training_code" / "distributed.py").read_bytes()
