"""Tests of kaggle.py: the settings and their clock, the placeholder rule, the run's config, stopping a
process tree, supervising a stand-in torchrun, and the submission Kaggle gets whatever happened."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from training_code import kaggle
from training_code.cli import options
from training_code.kaggle import KaggleSettings, placeholder_reason, process_count, smoke_run
from training_code.presets import preset_config
from training_code.submission import read_submission


def task(colour: int) -> dict:
    return {"train": [{"input": [[colour]], "output": [[colour, colour]]}], "test": [{"input": [[colour]]}]}


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def settings_for(tmp_path: Path, **changes) -> KaggleSettings:
    challenges = write_json(tmp_path / "competition" / "arc-agi_test_challenges.json", {"aaa": task(1), "bbb": task(2)})
    return KaggleSettings(challenges, output=tmp_path / "working", **changes)


def test_settings_come_from_the_environment_with_kaggles_defaults(monkeypatch, tmp_path):
    for key in ("ARC_MODEL", "ARC_PRESET", "ARC_TIME_BUDGET", "ARC_TIME_MARGIN", "ARC_WRITE_RESERVE",
                "ARC_TORCHRUN", "ARC_NPROC", "ARC_SMOKE", "ARC_OUTPUT", "ARC_ADAPTER", "ARC_SMOKE_BUDGET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ARC_CHALLENGES", str(tmp_path / "x_challenges.json"))
    monkeypatch.setenv("ARC_MODEL", "")  # empty: the default
    defaults = KaggleSettings.from_environment(started=100.0)
    assert defaults.model == "/kaggle/input/arc-model" and defaults.preset == "nemo"
    assert defaults.time_budget == 11.5 * 3600 and defaults.write_reserve == 300
    assert defaults.challenges == tmp_path / "x_challenges.json"
    assert defaults.run_dir == Path("/kaggle/working/arc-run")
    assert defaults.torchrun == [sys.executable, "-m", "torch.distributed.run"]
    monkeypatch.setenv("ARC_TIME_MARGIN", "12")
    monkeypatch.setenv("ARC_WRITE_RESERVE", "30")  # more than the margin: the margin is all there is
    monkeypatch.setenv("ARC_TORCHRUN", "python3 'my launcher.py'")
    changed = KaggleSettings.from_environment(started=100.0)
    assert changed.write_reserve == 12 and changed.barrier_slack == 0
    assert changed.torchrun == ["python3", "my launcher.py"]


def test_the_clock_counts_from_the_start_less_margin_and_reserve(tmp_path):
    settings = settings_for(tmp_path, time_budget=100.0, time_margin=20.0, write_reserve=8.0, started=1000.0)
    assert settings.time_left(now=1010.0) == 70.0  # 100 - 20 - 10
    assert settings.time_to_deadline(now=1010.0) == 82.0  # 100 - 8 - 10
    assert settings.barrier_slack == 6.0  # half of (20 - 8)


def test_the_placeholder_is_a_test_file_whose_ids_are_all_public(tmp_path):
    settings = settings_for(tmp_path)
    assert placeholder_reason(settings.challenges) is None  # no public set beside it: always a full run
    write_json(settings.challenges.with_name("arc-agi_evaluation_challenges.json"), {"aaa": task(1)})
    assert placeholder_reason(settings.challenges) is None  # bbb is new: the hidden tasks
    write_json(settings.challenges.with_name("arc-agi_training_challenges.json"), {"bbb": task(2), "c": task(3)})
    reason = placeholder_reason(settings.challenges)
    assert reason == "all 2 task ids of arc-agi_test_challenges.json are in the public sets beside it"
    assert smoke_run(settings) == (True, reason)
    assert smoke_run(replace(settings, smoke="0")) == (False, "ARC_SMOKE=0")
    write_json(settings.challenges, {})
    assert placeholder_reason(settings.challenges) is None  # an empty file is not the placeholder


def test_the_run_config_is_the_preset_with_kaggles_paths_and_the_time_left(tmp_path):
    settings = settings_for(tmp_path, preset="smollm", model="/models/m", time_budget=3600.0, time_margin=600.0,
                            smoke_budget=60.0)
    preset = preset_config("smollm")
    full = options(kaggle.run_config(settings, smoke=False))
    assert (full["challenges"], full["output"], full["model"], full["tasks"]) == (
        str(settings.challenges), str(tmp_path / "working" / "arc-run"), "/models/m", "")
    assert 2900 < full["time_budget"] <= 3000 and full["views"] == preset.decoding.views
    smoke = options(kaggle.run_config(settings, smoke=True))
    assert smoke["time_budget"] == 60.0 and smoke["views"] == smoke["scoring_views"] == 2
    assert smoke["ttt_steps"] == min(preset.ttt.steps, 4)


def test_processes_follow_the_gpus_unless_told(tmp_path):
    assert process_count(settings_for(tmp_path), gpus=4) == 4
    assert process_count(settings_for(tmp_path), gpus=0) == 1
    assert process_count(settings_for(tmp_path, nproc="2"), gpus=0) == 2
    assert process_count(settings_for(tmp_path, nproc="2", model="tiny"), gpus=4) == 1


DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
HUNG_TORCHRUN = f"""\
import json, os, signal, subprocess, sys, time
from pathlib import Path

signal.signal(signal.SIGTERM, signal.SIG_IGN)  # deaf to a polite stop: it takes SIGKILL
worker = subprocess.Popen([sys.executable, "-c", {DEAF!r}], start_new_session=True)  # as torchrun starts one
Path(sys.argv[1]).write_text(json.dumps({{"pids": [os.getpid(), worker.pid], "argv": sys.argv[2:]}}))
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(path: Path) -> dict:
    for _ in range(600):
        if path.is_file() and path.read_text():
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise TimeoutError(path)


def test_stop_kills_a_deaf_process_and_the_worker_it_started_in_its_own_session(tmp_path):
    script, record = tmp_path / "hung.py", tmp_path / "hung.json"
    script.write_text(HUNG_TORCHRUN)
    process = subprocess.Popen([sys.executable, str(script), str(record)])
    pids = wait_for(record)["pids"]
    assert [p.pid for p in kaggle.process_tree(process.pid)] == pids
    kaggle.stop(process, grace=0.2)
    assert process.returncode is not None
    for _ in range(100):  # the worker's parent is gone: init reaps it
        if all(gone(pid) for pid in pids):
            break
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)
    assert kaggle.process_tree(pids[0]) == []


def test_torchrun_that_fails_or_hangs_is_reported_and_a_hung_one_stopped(tmp_path):
    settings = settings_for(tmp_path, time_budget=3600.0, time_margin=60.0)
    config = kaggle.run_config(settings, smoke=False)
    settings.torchrun = [sys.executable, "-c", "raise SystemExit(1)"]
    assert kaggle.run_on_every_gpu(config, 2, settings) == "failed"
    assert json.loads((settings.run_dir / "run_config.json").read_text())["challenges"] == str(settings.challenges)
    settings.torchrun = [sys.executable, "-c", "import sys; sys.exit(0)"]
    assert kaggle.run_on_every_gpu(config, 2, settings) == "done"
    script, record = tmp_path / "hung.py", tmp_path / "hung.json"
    script.write_text(HUNG_TORCHRUN)
    # 4 s of budget, 3 of margin, 2 of them kept after the deadline: torchrun is stopped about 2 s from now
    hurried = settings_for(tmp_path, time_budget=4.0, time_margin=3.0, write_reserve=2.0,
                           torchrun=[sys.executable, str(script), str(record)])
    assert kaggle.run_on_every_gpu(replace(config, time_budget=1.0), 2, hurried) == "timed out"
    hung = json.loads(record.read_text())
    assert "--nproc_per_node=2" in hung["argv"]
    assert hung["argv"][hung["argv"].index("--barrier-slack") + 1] == "0.5"  # (3 - 2) / 2
    for _ in range(100):
        if all(gone(pid) for pid in hung["pids"]):
            break
        time.sleep(0.05)
    assert all(gone(pid) for pid in hung["pids"])


def test_a_run_that_fails_leaves_a_problem_and_kaggle_gets_the_fallback(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, time_budget=3600.0, time_margin=60.0)
    config = kaggle.run_config(settings, smoke=False)
    (settings.run_dir).mkdir(parents=True)
    (settings.run_dir / "submission.json").write_text("{}")  # an old run's answers: never handed in

    def broken(_config):
        raise RuntimeError("no model")

    monkeypatch.setattr(kaggle, "run_here", broken)
    problems, last = kaggle.run(config, 1, settings)
    assert problems == ["RuntimeError: no model"] and last is config
    assert not (settings.run_dir / "submission.json").exists()
    counts = kaggle.submit(settings, config, problems)
    assert counts == {"aaa": 1, "bbb": 1}
    assert "every test input gets the fallback" in problems[1]
    submission = read_submission(settings.output / "submission.json", counts)
    assert all(entry[a].tolist() == [[0]] for entries in submission.values() for entry in entries
               for a in ("attempt_1", "attempt_2"))
    path = kaggle.record(settings, {"problems": problems})
    assert json.loads(path.read_text()) == {"problems": problems}


def test_torchrun_that_fails_in_time_runs_again_here_with_the_time_left(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, time_budget=3600.0, time_margin=60.0,
                            torchrun=[sys.executable, "-c", "raise SystemExit(1)"])
    config = kaggle.run_config(settings, smoke=False)
    ran = []
    monkeypatch.setattr(kaggle, "run_here", ran.append)
    problems, last = kaggle.run(config, 2, settings)
    assert problems == ["torchrun failed; ran again in one process, finished tasks from the cache"]
    assert ran == [last] and last.time_budget <= config.time_budget
    with pytest.raises(ValueError, match="unknown evaluation preset 'nope'; choose one of .*smollm"):
        kaggle.run_config(settings_for(tmp_path, preset="nope"), smoke=False)


def test_the_program_search_runs_beside_the_model_and_stops_with_it(tmp_path, monkeypatch):
    from training_code.induction.run_search import RESULTS_FILE, read_results, wait_for_result

    settings = settings_for(tmp_path, time_budget=3600.0, time_margin=60.0, search_seconds=1.0, search_workers="1")
    config = kaggle.run_config(settings, smoke=False)
    assert config.search.seconds == 0 and config.search.wait == 2.0  # the evaluation searches nothing itself
    assert config.search.results == str(settings.search_dir / RESULTS_FILE)
    seen = []

    def model(cfg):  # stands in for the model's run: it reads the search's file as the evaluation does
        seen.append(wait_for_result(Path(cfg.search.results), "bbb", seconds=60.0, poll=0.1))

    monkeypatch.setattr(kaggle, "run_here", model)
    problems, _ = kaggle.run(config, 1, settings, source=Path.cwd())
    assert problems == [] and seen[0] is not None and len(seen[0]["candidates"]) == 1
    assert set(read_results(settings.search_dir / RESULTS_FILE)) == {"aaa", "bbb"}


def test_the_search_takes_the_cores_the_model_leaves(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)
    assert kaggle.search_workers(settings, processes=2, cores=4) == 2
    assert kaggle.search_workers(settings, processes=2, cores=2) == 1
    assert kaggle.search_workers(replace(settings, search_workers="3"), processes=2, cores=4) == 3
    off = replace(settings, search_seconds=0.0)
    assert kaggle.run_config(off, smoke=False).search.results == ""
    assert kaggle.start_search(kaggle.run_config(off, smoke=False), off, 1) is None
    monkeypatch.setenv("ARC_SEARCH_SECONDS", "0")
    monkeypatch.setenv("ARC_SEARCH_WORKERS", "5")
    from_env = KaggleSettings.from_environment()
    assert (from_env.search_seconds, from_env.search_workers) == (0.0, "5")
