"""Tests of the GPU check on a CPU: its options, the stage runner, installing from a wheel folder, the
JSON and the BENCHMARKS.md section, and a dry run of every stage with tiny shapes."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import StageRunner


def test_options_have_their_defaults_a_dry_run_its_own_and_bad_ones_stop_at_once(capsys):
    args = gpu_check.parse_args([])
    assert (args.backends, args.steps, args.tasks, args.views, args.time_budget) == ("unsloth,transformers", 4, 4,
                                                                                     4, 480.0)
    dry = gpu_check.parse_args(["--dry-run", "--tasks", "3"])
    assert (dry.steps, dry.tasks, dry.ttt_steps) == (1, 3, 1)
    for argv, message in ((["--backends", "unsloth,vllm"], "vllm is not one of unsloth, transformers"),
                          (["--steps", "0"], "--steps 0: must be at least 1")):
        with pytest.raises(SystemExit) as stop:
            gpu_check.parse_args(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_stage_reports_its_error_and_the_others_go_on():
    clock, lines = FakeClock(), []
    runner = StageRunner(100, clock=clock, echo=lines.append)

    def slow():
        clock.now += 30
        return {"answer": 42}

    def broken():
        raise RuntimeError("no CUDA here")

    assert runner.run("first", slow).figures == {"answer": 42}
    failed = runner.run("second", broken)
    assert failed.status == "failed" and failed.error == "RuntimeError: no CUDA here"
    assert "broken" in "\n".join(failed.figures["traceback"])
    assert runner.run("third", slow, needs=("second",)).error == "needs second"
    assert runner.run("fourth", slow, needs=("first",)).status == "ok"
    clock.now += 50  # 110 s in: the budget of 100 s is spent
    assert runner.run("fifth", slow).error == "the time budget was spent"
    assert [s.status for s in runner.stages] == ["ok", "failed", "skipped", "ok", "skipped"]
    assert [s.seconds for s in runner.stages] == [30, 0, 0, 30, 0]
    assert lines[1].startswith("[ failed] second") and len(lines) == 5


def test_parts_pack_the_largest_first_and_refuse_a_file_larger_than_a_part():
    sizes = {"bitsandbytes.whl": 43, "unsloth.whl": 30, "zoo.whl": 3, "trl.whl": 1, "tyro.whl": 1}
    assert gpu_check.pack_parts(sizes, 44) == [["bitsandbytes.whl", "trl.whl"], ["unsloth.whl", "zoo.whl", "tyro.whl"]]
    with pytest.raises(ValueError, match="bitsandbytes.whl is"):
        gpu_check.pack_parts(sizes, 40)


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel with one module that says its name."""
    files = {f"{name}/__init__.py": f"NAME = {name!r}\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join([*record, f"{name}-{version}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def test_install_adds_only_what_the_machine_lacks_from_the_wheel_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the install folder joins sys.path for this test only
    wheels = tmp_path / "part1"
    wheels.mkdir()
    make_wheel(wheels, "gpu_check_probe", "1.0")
    make_wheel(wheels, "numpy", "0.0.1")  # installed already (another version): left alone
    assert gpu_check.missing_wheels([wheels]) == ["gpu-check-probe"]
    site = tmp_path / "site"
    assert gpu_check.install([wheels], site) == {"installed": ["gpu-check-probe"], "site": str(site)}
    assert __import__("gpu_check_probe").NAME == "gpu_check_probe"
    assert gpu_check.install([wheels], site)["installed"] == []  # a second run finds it installed
    assert not (site / "numpy").exists()
    with pytest.raises(FileNotFoundError, match="part2"):
        gpu_check.install([tmp_path / "part2"], site)


def report(stages):
    return {"command": "python -m benchmarks.gpu_check", "started": "2026-11-27 12:00:00 UTC", "budget_seconds": 480,
            "environment": {"device": "NVIDIA H100", "python": "3.12", "cuda": "13.0", "versions": {"torch": "2.11"}},
            "stages": stages}


def test_the_section_replaces_the_last_one_and_keeps_the_rest_of_the_file(tmp_path):
    training = {"backend": "unsloth", "layers_4bit": 14, "vocabulary_before": 131072, "vocabulary_after": 68,
                "tokens_per_second": 5123.4, "gpu_gib_peak": 7.25, "losses": [2.5, 1.25]}
    first = report([{"name": "lora training minitron unsloth", "status": "ok", "seconds": 12.0, "error": "",
                     "figures": training},
                    {"name": "import unsloth", "status": "failed", "seconds": 1.0, "error": "ImportError: tyro",
                     "figures": {}}])
    section = gpu_check.markdown_section(first)
    assert "| lora training minitron unsloth | ok | 12.0 | unsloth: 14 4-bit layers, vocabulary 131072 -> 68, " \
           "5.12e+03 tokens/s, peak 7.25 GiB, loss 2.5 -> 1.25 |" in section
    assert "| import unsloth | failed | 1.0 | ImportError: tyro |" in section
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nbefore\n")
    out = tmp_path / "results" / "gpu_check.json"
    gpu_check.write_outputs(first, out, benchmarks)
    assert json.loads(out.read_text()) == first and out.with_suffix(".md").read_text() == section
    second = report([{"name": "environment", "status": "ok", "seconds": 2.0, "error": "", "figures": {"device": "x"}}])
    text = gpu_check.put_section(benchmarks.read_text() + "\nafter\n", gpu_check.markdown_section(second))
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.rstrip().endswith("after")
    assert text.count(gpu_check.SECTION_START) == 1 and "lora training" not in text and "| environment | ok" in text


@pytest.mark.slow
def test_a_dry_run_on_a_cpu_runs_every_stage_it_can_and_reports_the_rest(tmp_path, capsys):
    out, benchmarks = tmp_path / "gpu_check.json", tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n")
    status = gpu_check.main(["--dry-run", "--max-length", "1024", "--out", str(out), "--benchmarks", str(benchmarks)])
    stages = {s["name"]: s for s in json.loads(out.read_text())["stages"]}
    if torch.cuda.is_available():
        pytest.skip("the dry run's expectations are a CPU's")
    assert status == 1  # the unsloth stages cannot run here
    assert stages["import unsloth"]["status"] == "failed" and "CUDA" in stages["import unsloth"]["error"]
    for name in ("lora training smollm2 unsloth", "lora training minitron unsloth", "ttt dfs scoring smollm2 unsloth"):
        assert stages[name] == {"name": name, "status": "skipped", "seconds": 0.0, "error": "needs import unsloth",
                                "figures": {}}
    for model in ("smollm2", "minitron"):
        training = stages[f"lora training {model} transformers"]
        assert training["status"] == "ok" and training["figures"]["layers_4bit"] > 0
        assert training["figures"]["vocabulary_after"] < training["figures"]["vocabulary_before"]
    evaluation = stages["ttt dfs scoring smollm2 transformers"]
    assert evaluation["status"] == "ok" and evaluation["figures"]["base_unchanged"] is True
    assert len(evaluation["figures"]["tasks"]) == 2
    assert all(len(nlls) == 1 for nlls in evaluation["figures"]["true_answer_nlls"].values())
    section = out.with_suffix(".md").read_text()
    assert benchmarks.read_text() == "# Benchmarks\n\n" + section
    # the section comes again from the JSON alone
    assert gpu_check.main(["--render", str(out)]) == 0 and section in capsys.readouterr().out


def test_a_wheel_this_machine_cannot_take_stops_no_other(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    wheels = tmp_path / "part1"
    wheels.mkdir()
    make_wheel(wheels, "gpu_check_other", "1.0")
    (wheels / "gpu_check_compiled-1.0-cp20-cp20-manylinux_2_28_x86_64.whl").write_bytes(b"")  # no such Python
    with pytest.raises(RuntimeError, match=r"installed \['gpu-check-other'\]; pip could not install .*compiled"):
        gpu_check.install([wheels], tmp_path / "site")
    assert __import__("gpu_check_other").NAME == "gpu_check_other"


def test_slim_wheels_leave_out_what_the_gpu_path_never_reads_and_still_install(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    wheels = tmp_path / "part1"
    wheels.mkdir()
    wheel = make_wheel(wheels, "gpu_check_slim", "1.0")
    with zipfile.ZipFile(wheel, "a") as archive:  # an unused web app and libraries for other CUDA versions
        for name in ("studio/app.js", "gpu_check_slim/libbitsandbytes_cuda130.so"):
            archive.writestr(name, "x" * 1000)
    unused = gpu_check.unused_in("unsloth", None)
    assert unused("studio/app.js") and not unused("unsloth/__init__.py")
    assert gpu_check.slim_wheel(wheel, unused) == 1
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = archive.read("gpu_check_slim-1.0.dist-info/RECORD").decode()
    assert "studio/app.js" not in names and "studio/" not in record and "gpu_check_slim/__init__.py" in names
    assert gpu_check.install([wheels], tmp_path / "site")["installed"] == ["gpu-check-slim"]
    kept = gpu_check.unused_in("bitsandbytes", "13.0")
    assert [kept(f"bitsandbytes/libbitsandbytes_{lib}.so") for lib in ("cpu", "cuda130", "cuda128", "rocm64")] == [
        False, False, True, True]
    assert not kept("bitsandbytes/functional.py") and gpu_check.unused_in("bitsandbytes", None) is None
    assert gpu_check.unused_in("trl", "13.0") is None
