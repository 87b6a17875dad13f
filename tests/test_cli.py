"""Command lines from config dataclasses, and failing fast: every entry point (evaluation, fine-tuning,
distributed, rerank, data preparation and the benchmarks) refuses a bad enumerated option or an unknown
task id while it parses its command line: exit status 2, a message naming the option, the bad value and
a valid one, and no model loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks import bench_ablation, bench_data, bench_decoders, bench_gpu_model, bench_training
from training_code import (
    distributed,
    model_tools,
    prepare_data,
    rerank,
    run_evaluation_nemo,
    run_evaluation_qwen,
    run_evaluation_smollm,
    run_finetune_nemo,
    run_finetune_smollm,
)
from training_code.cli import (
    OptionError,
    check_config,
    config_from_dict,
    options,
    parse_config,
    save_config,
    with_options,
)
from training_code.evaluation import EvalConfig
from training_code.finetune import FinetuneConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """Any model load fails the test: a bad option must stop the run before one."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    for name in ("load_model", "build_tiny_model", "build_random_model"):
        monkeypatch.setattr(model_tools, name, refuse)


@pytest.fixture
def challenges(tmp_path) -> Path:
    path = tmp_path / "x_challenges.json"
    grid = [[1, 2], [3, 4]]
    path.write_text(json.dumps({tid: {"train": [{"input": grid, "output": grid}], "test": [{"input": grid}]}
                                for tid in ("aaa", "bbb", "ccc")}))
    return path


def refused(entry, argv, capsys) -> str:
    """stderr of ``entry(argv)``, which must exit with status 2."""
    with pytest.raises(SystemExit) as stopped:
        entry(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def assert_names(message: str, *words: str) -> None:
    for word in words:
        assert word in message, (word, message)


# --------------------------------------------------------------------------------------------------
# Evaluation presets

EVALUATION_CASES = [
    # (entry point, flags, what the message names: the option, the bad value, a valid one)
    (run_evaluation_smollm.run, ["--decoder", "dfss"], ["--decoder", "dfss", "greedy"]),
    (run_evaluation_qwen.run, ["--aggregation", "best"], ["--aggregation", "best", "product-of-experts"]),
    (run_evaluation_nemo.run, ["--backend", "vllm"], ["--backend", "vllm", "unsloth", "transformers"]),
    (run_evaluation_smollm.run, ["--load-in-4bit", "maybe"], ["--load-in-4bit", "maybe", "auto", "yes", "no"]),
    (run_evaluation_smollm.run, ["--format", "Minimal()"], ["--format", "Minimal()", "MinimalGridEncoder"]),
    (run_evaluation_smollm.run, ["--format", "architects('12')"], ["--format", "'12'", "ASCII letters"]),
]


@pytest.mark.parametrize("entry, flags, names", EVALUATION_CASES)
def test_an_evaluation_preset_refuses_a_bad_option_before_loading_a_model(entry, flags, names, capsys):
    assert_names(refused(entry, flags, capsys), *names)


def test_an_evaluation_refuses_task_ids_its_challenges_do_not_hold(challenges, capsys):
    message = refused(run_evaluation_smollm.run, ["--challenges", str(challenges), "--tasks", "aaa,nope"], capsys)
    assert_names(message, "--tasks", "nope", "aaa, bbb, ccc")
    assert "invalid task ids nope:" in message  # the known id is not named as unknown
    message = refused(run_evaluation_smollm.run, ["--challenges", str(challenges.with_name("gone.json")),
                                                  "--tasks", "aaa"], capsys)
    assert_names(message, "--challenges", "gone.json")
    message = refused(run_evaluation_smollm.run, ["--challenges", str(challenges), "--tasks", "every:x"], capsys)
    assert_names(message, "--tasks", "every:x", "every:4")


def test_help_lists_the_choices_of_every_enumerated_option(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_evaluation_smollm.run(["--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert_names(text, "one of dfs, greedy, sample", "one of auto, unsloth, transformers", "one of auto, yes, no",
                 "one of product-of-experts, max-generation-probability")


def test_the_command_line_of_a_preset_stops_with_status_2_before_any_work(tmp_path):
    """The case that loaded a model and then failed every task into the fallback (exit status 3)."""
    done = subprocess.run([sys.executable, "-m", "training_code.run_evaluation_smollm", "--decoder", "dfss",
                           "--output", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "argument --decoder: invalid choice: 'dfss'" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing written: the run never started


# --------------------------------------------------------------------------------------------------
# Fine-tuning presets

FINETUNE_CASES = [
    (["--backend", "vllm"], ["--backend", "vllm", "transformers"]),
    (["--load-in-4bit", "4"], ["--load-in-4bit", "'4'", "auto"]),
    (["--format", "GridShapeEncoder(GridShapeEncoder(MinimalGridEncoder()))"], ["--format", "GridShapeEncoder"]),
    (["--train-datasets", "arc-agi-1/training", "output-from-nothing"],
     ["--train-datasets", "output-from-nothing", "output-from-examples", "input-from-inputs", "code-from-examples"]),
    (["--train-datasets", "arc-agi-9/training", "output-from-examples"],
     ["--train-datasets", "arc-agi-9/training", "arc-agi-1/training", "re-arc:PATH"]),
    (["--train-datasets", "arc-agi-1/training*heavy", "output-from-examples"], ["--train-datasets", "*heavy"]),
    (["--train-datasets", "arc-agi-1/training", "code-from-examples"],
     ["--train-datasets", "code-from-examples", "needs tasks with programs", "'code'"]),
    # one bad source among good ones is enough to stop
    (["--train-datasets", "arc-agi-1/training", "output-from-examples", "--train-datasets", "missing.json",
      "input-from-inputs"], ["--train-datasets", "missing.json"]),
]


@pytest.mark.parametrize("flags, names", FINETUNE_CASES)
def test_a_finetune_preset_refuses_a_bad_option_before_loading_a_model(flags, names, capsys, tmp_path):
    message = refused(run_finetune_smollm.run, ["--models-dir", str(tmp_path), *flags], capsys)
    assert_names(message, *names)
    assert not any(tmp_path.iterdir())  # no folder, no saved config


def test_a_preset_itself_is_checked_like_the_command_line(capsys, monkeypatch):
    for preset in (run_evaluation_smollm, run_evaluation_qwen, run_evaluation_nemo, run_finetune_smollm,
                   run_finetune_nemo):
        check_config(preset.PRESET)  # the shipped presets are valid
    sources = ("code output-from-examples", "re-arc:/nowhere output-from-examples")
    monkeypatch.setattr(run_finetune_nemo, "PRESET", FinetuneConfig(train_datasets=sources))
    assert_names(refused(run_finetune_nemo.run, [], capsys), "--train-datasets", "/nowhere")
    with pytest.raises(OptionError, match="--decoder: invalid choice: 'beam'"):
        check_config(with_options(EvalConfig(), decoder="beam"))
    check_config(EvalConfig())  # the defaults are valid


# --------------------------------------------------------------------------------------------------
# Distributed, rerank, data preparation


def test_the_distributed_command_line_refuses_bad_options_presets_and_saved_configs(tmp_path, challenges, capsys):
    assert_names(refused(distributed.main, ["--preset", "mistral"], capsys), "--preset", "mistral", "smollm", "nemo")
    assert_names(refused(distributed.main, ["--preset", "qwen", "--decoder", "dfss"], capsys), "--decoder", "dfss",
                 "dfs")
    assert_names(refused(distributed.main, ["--challenges", str(challenges), "--tasks", "zzz"], capsys),
                 "--tasks", "zzz", "aaa")
    saved = tmp_path / "run_config.json"
    saved.write_text(json.dumps({"aggregation": "best"}))  # a saved config is checked too
    assert_names(refused(distributed.main, ["--config", str(saved)], capsys), "--aggregation", "best", "vote")
    assert_names(refused(distributed.main, ["--config", str(tmp_path / "gone.json")], capsys), "--config", "gone.json")
    saved.write_text(json.dumps({"viewz": 5}))
    assert_names(refused(distributed.main, ["--config", str(saved)], capsys), "--config", "viewz")


def test_rerank_refuses_an_unknown_aggregation(tmp_path, capsys):
    message = refused(rerank.main, ["--report", str(tmp_path / "report.json"), "--aggregation", "best"], capsys)
    assert_names(message, "--aggregation", "best", "product-of-experts", "vote")


def test_prepare_data_refuses_a_task_it_cannot_show(challenges, tmp_path, capsys):
    message = refused(prepare_data.main, ["--input-dir", str(tmp_path / "in"), "--summarise", str(challenges),
                                          "--show-task", "nope"], capsys)
    assert_names(message, "--show-task", "nope", "aaa")
    assert not (tmp_path / "in").exists()  # stopped before exporting anything


# --------------------------------------------------------------------------------------------------
# The benchmarks' own command lines

BENCHMARK_CASES = [
    (bench_decoders.main, ["--format", "MinimalGridEncoder("], ["--format", "MinimalGridEncoder(", "expected"]),
    (bench_decoders.main, ["--pool", "beam"], ["--pool", "beam", "dfs@0.1", "greedy"]),
    (bench_decoders.main, ["--thresholds", "0.1,high"], ["--thresholds", "0.1,high"]),
    (bench_decoders.main, ["--thresholds", "2"], ["--thresholds", "(0, 1]"]),
    (bench_ablation.main, ["--preset", "tpu"], ["--preset", "tpu", "cpu", "gpu"]),
    (bench_gpu_model.main, ["--backends", "transformers,vllm"], ["--backends", "vllm", "unsloth"]),
    (bench_gpu_model.main, ["--four-bit", "maybe"], ["--four-bit", "maybe", "auto"]),
    (bench_gpu_model.main, ["--format", "rows"], ["--format", "rows", "architects"]),
    (bench_data.main, ["--format", "rows"], ["--format", "rows", "architects"]),
    (bench_training.main, ["--format", "rows"], ["--format", "rows", "architects"]),
]


@pytest.mark.parametrize("entry, flags, names", BENCHMARK_CASES)
def test_a_benchmark_refuses_a_bad_option_before_loading_a_model(entry, flags, names, capsys):
    assert_names(refused(entry, flags, capsys), *names)


@pytest.mark.parametrize("entry", [bench_decoders.main, bench_ablation.main])
def test_a_benchmark_refuses_task_ids_its_challenges_do_not_hold(entry, challenges, capsys):
    message = refused(entry, ["--challenges", str(challenges), "--tasks", "bbb,zzz"], capsys)
    assert_names(message, "--tasks", "zzz", "aaa")


# --------------------------------------------------------------------------------------------------
# The mapping itself


@dataclass
class Inner:
    colour: str = field(default="red", metadata={"choices": ("red", "blue")})


def letters_only(text: str) -> None:
    if not text.isalpha():
        raise ValueError(f"{text!r} is not letters only")


@dataclass
class Outer:
    name: str = field(default="a", metadata={"check": letters_only})
    inner: Inner = field(default_factory=Inner)
    words: tuple[str, ...] = field(default=("red",), metadata={"choices": ("red", "blue")})


def test_nested_fields_and_repeatable_fields_are_checked(capsys):
    assert parse_config(Outer(), ["--inner.colour", "blue", "--words", "blue"]) == Outer(inner=Inner("blue"),
                                                                                           words=("blue",))
    with pytest.raises(SystemExit):
        parse_config(Outer(), ["--inner.colour", "green"])
    assert_names(capsys.readouterr().err, "--inner.colour", "green", "red", "blue")
    with pytest.raises(SystemExit):
        parse_config(Outer(), ["--words", "blue", "--words", "green"])
    assert_names(capsys.readouterr().err, "--words", "green", "red")
    with pytest.raises(SystemExit):
        parse_config(Outer(), ["--name", "a1"])
    assert_names(capsys.readouterr().err, "--name", "'a1' is not letters only")


@dataclass
class Stage:
    steps: int = 1
    on: bool = field(default=True, metadata={"flag": "stage"})


@dataclass
class Run:
    stage: Stage = field(default_factory=Stage, metadata={"flags": "stage_"})
    inner: Inner = field(default_factory=Inner, metadata={"flags": ""})


def test_a_nested_config_takes_the_flag_names_its_field_gives(capsys):
    assert parse_config(Run(), ["--stage-steps", "3", "--no-stage", "--colour", "blue"]) == Run(Stage(3, False),
                                                                                                 Inner("blue"))
    assert options(Run()) == {"stage_steps": 1, "stage": True, "colour": "red"}
    assert with_options(Run(), stage_steps=2, colour="blue") == Run(Stage(2, True), Inner("blue"))
    with pytest.raises(TypeError, match="no option steps"):
        with_options(Run(), steps=2)
    with pytest.raises(OptionError, match="--colour: invalid choice: 'green'"):
        check_config(with_options(Run(), colour="green"))
    with pytest.raises(SystemExit):
        parse_config(Run(), ["--colour", "green"])
    assert_names(capsys.readouterr().err, "--colour", "green", "red", "blue")


def test_a_saved_config_reads_back_by_option_name_or_nested(tmp_path):
    saved = save_config(with_options(Run(), stage_steps=4, stage=False), tmp_path / "config.json")
    assert json.loads(saved.read_text()) == {"stage_steps": 4, "stage": False, "colour": "red"}
    assert config_from_dict(Run(), json.loads(saved.read_text())) == Run(Stage(4, False))
    assert config_from_dict(Run(), {"stage": {"steps": 4}, "inner": {"colour": "blue"}}) == Run(Stage(4), Inner("blue"))
    with pytest.raises(ValueError, match="stage_step"):
        config_from_dict(Run(), {"stage_step": 4})


def test_two_fields_with_one_option_name_are_refused():
    @dataclass
    class Clash:
        stage: Stage = field(default_factory=Stage, metadata={"flags": ""})
        steps: int = 2

    with pytest.raises(ValueError, match="option name steps"):
        options(Clash())
