"""Tests of the fine-tuning entry point: a resumed run's log keeps the runs before it."""

from __future__ import annotations

import json

import numpy as np
from pipeline_data import task, tiny, write_set

from training_code import model_tools
from training_code.arc_loader import ArcDataset, base_task_id, dataset_grids, task_grids
from training_code.finetune import FinetuneConfig, earlier_runs, parse_sources, run_finetune, training_data
from training_code.formats import format_from_spec
from training_code.run_finetune_smollm import PRESET


def test_a_resumed_finetune_logs_every_run(tmp_path):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i) for i in range(4)})

    def finetune(max_steps: int) -> dict:
        run_finetune(FinetuneConfig(model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                                    train_datasets=(f"{challenges} output-from-examples",), lora_r=2,
                                    max_steps=max_steps, batch_size=1, grad_accumulation=1, max_length=256,
                                    checkpoint_every=1, merge=False))
        return json.loads((tmp_path / "arc" / "train_log.json").read_text())

    first = finetune(2)
    assert (first["steps"], first["steps_this_run"], first["earlier_runs"]) == (2, 2, [])
    second = finetune(3)  # resumes from the step-2 checkpoint
    assert (second["steps"], second["steps_this_run"]) == (3, 1)
    assert len(second["losses"]) == 3 and second["losses"][:2] == first["losses"]
    assert [(r["steps"], r["steps_this_run"]) for r in second["earlier_runs"]] == [(2, 2)]
    third = finetune(4)
    assert [(r["steps"], r["steps_this_run"]) for r in third["earlier_runs"]] == [(2, 2), (3, 1)]


def test_earlier_runs_of_a_missing_or_broken_log_are_none(tmp_path):
    assert earlier_runs(tmp_path / "train_log.json") == []
    (tmp_path / "train_log.json").write_text("{not json")
    assert earlier_runs(tmp_path / "train_log.json") == []


def test_no_arc_agi_1_evaluation_grid_reaches_the_default_training_mix():
    """The SmolLM2 preset's mix (ARC-AGI-1 and ARC-AGI-2 training, generated, reversed and input-from-inputs
    tasks) after the same filtering a run does: no task of ARC-AGI-1 evaluation (ARC-AGI-2 training holds
    376 of them, some under other ids) and no grid of one; no held-out task either."""
    rng = np.random.default_rng(PRESET.seed)
    parts = parse_sources(PRESET.train_datasets, rng)
    assert "arc-agi-1/evaluation" in PRESET.never_train_on
    parts, held_out, info = training_data(PRESET, parts, format_from_spec(PRESET.format), len, rng)
    evaluation = ArcDataset.from_bundled("arc-agi-1/evaluation")
    forbidden = dataset_grids(evaluation)
    held_out_grids = dataset_grids(held_out)
    trained = {t: task for part in parts for t, task in part.dataset.tasks.items()}
    assert len(trained) > 1000
    assert not set(trained) & set(evaluation.tasks)
    assert not any(g in forbidden or g in held_out_grids for task in trained.values() for g in task_grids(task))
    assert not {base_task_id(t) for t in trained} & set(held_out.tasks)
    assert info["left_out_protected"]["arc-agi-2/training"] >= 376  # the copies of evaluation tasks, at least
    # the held-out tasks are those the committed adapter was measured on, so the two compare
    committed = json.loads(open("models/smollm2-arc/train_log.json", encoding="utf-8").read())
    assert sorted(held_out.tasks) == committed["held_out_tasks"]


def test_a_finetune_measures_held_out_tasks_and_draws_its_curve(tmp_path):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i, size=4) for i in range(6)})
    run_finetune(FinetuneConfig(model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                                train_datasets=(f"{challenges} output-from-examples",), lora_r=2, max_steps=4,
                                batch_size=1, max_length=256, checkpoint_every=2, evaluate_every=2,
                                held_out_tasks=2, merge=False, never_train_on=()))
    log = json.loads((tmp_path / "arc" / "train_log.json").read_text())
    assert [e["step"] for e in log["held_out"]] == [0, 2, 4] and len(log["held_out_tasks"]) == 2
    assert all(0.0 <= e["accuracy"] <= 1.0 and e["loss"] > 0 for e in log["held_out"])
    assert log["held_out_loss_before"] == log["held_out"][0]["loss"]
    png = (tmp_path / "arc" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # training drew only from the other four tasks
    assert [p[3] for p in log["parts"]] == [4]
