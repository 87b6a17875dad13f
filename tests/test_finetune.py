"""Tests of the fine-tuning entry point: a resumed run's log keeps the runs before it; a 4-bit run ends with
a 16-bit merged model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pipeline_data import needs_smollm2, task, tiny, write_set
from transformers import AutoModelForCausalLM, AutoTokenizer

from training_code import model_tools
from training_code.arc_loader import ArcDataset, base_task_id, dataset_grids, task_grids
from training_code.cli import with_options
from training_code.finetune import FinetuneConfig, earlier_runs, run_finetune, training_data
from training_code.formats import format_from_spec
from training_code.run_finetune_smollm import PRESET
from training_code.sources import parse_sources


def test_a_resumed_finetune_logs_every_run(tmp_path):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i, size=4) for i in range(4)})

    def finetune(max_steps: int) -> dict:
        run_finetune(with_options(FinetuneConfig(), model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                                  train_datasets=(f"{challenges} output-from-examples",), lora_r=2, max_steps=max_steps,
                                  batch_size=1, grad_accumulation=1, max_length=256, checkpoint_every=1, merge=False))
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
    rng = np.random.default_rng(PRESET.train.seed)
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
    run_finetune(with_options(FinetuneConfig(), model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                              train_datasets=(f"{challenges} output-from-examples",), lora_r=2, max_steps=4,
                              batch_size=1, max_length=256, checkpoint_every=2, evaluate_every=2, held_out_tasks=2,
                              merge=False, never_train_on=()))
    log = json.loads((tmp_path / "arc" / "train_log.json").read_text())
    assert [e["step"] for e in log["held_out"]] == [0, 2, 4] and len(log["held_out_tasks"]) == 2
    assert all(0.0 <= e["accuracy"] <= 1.0 and e["loss"] > 0 for e in log["held_out"])
    assert log["held_out_loss_before"] == log["held_out"][0]["loss"]
    png = (tmp_path / "arc" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # training drew only from the other four tasks
    assert [p[3] for p in log["parts"]] == [4]


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits.float()


@pytest.mark.slow
@needs_smollm2
def test_a_4bit_finetune_ends_with_a_16bit_merged_model_that_matches_base_and_adapter(tmp_path):
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i, size=4) for i in range(4)})
    # a high learning rate, so that the adapter moves the logits far more than the tolerance below
    run_finetune(with_options(FinetuneConfig(), model="smollm2-135m", models_dir=str(tmp_path), name="arc",
                              load_in_4bit="yes", train_datasets=(f"{challenges} output-from-examples",), lora_r=4,
                              lora_alpha=8, max_steps=2, batch_size=1, max_length=256, checkpoint_every=0,
                              learning_rate=1e-2, embedding_learning_rate=1e-2))
    out = tmp_path / "arc"
    assert json.loads((out / "train_log.json").read_text())["steps"] == 2
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(out / "merged", local_files_only=True)
    assert merged.dtype == torch.bfloat16 and not model_tools.is_quantized(merged)
    ids = tokenizer("I12\n21\n+/-=O21\n12\n" * 3, add_special_tokens=False)["input_ids"]

    # the reference: the base in float32, shrunk, with the saved adapter attached (not merged)
    base = model_tools.load_model("smollm2-135m", backend="transformers", dtype="float32")
    model, shrunk_tokenizer, _ = model_tools.shrink_vocabulary(base.model, base.tokenizer,
                                                               model_tools.adapter_alphabet(out / "adapter"))
    assert shrunk_tokenizer.get_vocab() == tokenizer.get_vocab()
    without = logits(model, ids)
    reference = logits(model_tools.load_adapter(model, out / "adapter", tokenizer=shrunk_tokenizer), ids)
    # bfloat16 keeps 8 significant bits, and a merged weight rounds differently from base and adapter apart:
    # measured mean |difference| 0.12 and largest 0.72 (logits up to 35; BENCHMARKS.md); the adapter itself
    # moves them by 1.8 on average, 7.5 at most, so a merge that lost it, or put it on the wrong rows, fails
    difference, effect = (logits(merged, ids) - reference).abs(), (without - reference).abs()
    print(f"merged against base + adapter: mean {float(difference.mean()):.3f}, largest {float(difference.max()):.3f};"
          f" the adapter's effect: mean {float(effect.mean()):.3f}, largest {float(effect.max()):.3f}")
    assert float(difference.mean()) < 0.25 and float(difference.max()) < 1.5
    assert float(effect.mean()) > 1.0


def test_a_4bit_finetune_writes_its_adapter_and_log_before_the_merge(tmp_path, monkeypatch):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i, size=4) for i in range(2)})
    merges = []

    def failing_merge(base, adapter, out, **kwargs):
        # what a 4-bit run merges only once the adapter and the log are on disk
        merges.append((base, adapter, out))
        assert (adapter / "adapter_config.json").is_file() and (out.parent / "train_log.json").is_file()
        raise MemoryError("out of memory while merging")

    monkeypatch.setattr(model_tools, "merge_saved_adapter", failing_merge)
    monkeypatch.setattr(model_tools, "is_quantized", lambda model: True)  # the tiny model stands in for 4 bits
    with pytest.raises(MemoryError):
        run_finetune(with_options(FinetuneConfig(), model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                                  train_datasets=(f"{challenges} output-from-examples",), lora_r=2, max_steps=1,
                                  batch_size=1, max_length=256, checkpoint_every=0))
    assert merges == [(str(tmp_path / "tiny"), tmp_path / "arc" / "adapter", tmp_path / "arc" / "merged")]
    assert json.loads((tmp_path / "arc" / "train_log.json").read_text())["steps"] == 1


def test_a_killed_finetune_leaves_its_adapter_log_and_curve_and_the_resumed_run_records_it(tmp_path, monkeypatch):
    from training_code import finetune

    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    challenges = write_set(tmp_path / "data", {f"t{i}": task(i, size=4) for i in range(6)})
    config = with_options(FinetuneConfig(), model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="arc",
                          train_datasets=(f"{challenges} output-from-examples",), lora_r=2, max_steps=4, batch_size=1,
                          max_length=256, checkpoint_every=2, evaluate_every=2, held_out_tasks=2, merge=False,
                          never_train_on=())
    drawn = finetune.plot_training

    def killed_after_drawing(losses, evaluations, path, title=""):
        drawn(losses, evaluations, path, title)
        raise KeyboardInterrupt  # the machine goes away after the step-2 checkpoint

    monkeypatch.setattr(finetune, "plot_training", killed_after_drawing)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config)
    out = tmp_path / "arc"
    snapshot = json.loads((out / "train_log.json").read_text())
    assert snapshot["in_progress"] and snapshot["steps"] == 2 and len(snapshot["losses"]) == 2
    assert [e["step"] for e in snapshot["held_out"]] == [0, 2]
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "loss.png").is_file()
    monkeypatch.setattr(finetune, "plot_training", drawn)
    run_finetune(config)
    final = json.loads((out / "train_log.json").read_text())
    assert "in_progress" not in final and final["steps"] == 4 and final["steps_this_run"] == 2
    assert [r["steps"] for r in final["earlier_runs"]] == [2]
    assert [e["step"] for e in final["held_out"]] == [0, 2, 4]
