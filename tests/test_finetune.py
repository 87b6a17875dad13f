"""Tests of the fine-tuning entry point: a resumed run's log keeps the runs before it."""

from __future__ import annotations

import json

from pipeline_data import task, tiny, write_set

from training_code import model_tools
from training_code.finetune import FinetuneConfig, earlier_runs, run_finetune


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
