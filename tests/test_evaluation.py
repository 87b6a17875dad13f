"""Tests of the evaluation pipeline on the tiny model: a complete verified submission whatever happens,
determinism, resume after a kill, cache isolation between models, time budget, and the report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pipeline_data import FMT, task, tiny, write_set

from training_code import evaluation
from training_code.candidates import decoding_keys
from training_code.cli import with_options
from training_code.evaluation import EvalConfig, run_evaluation
from training_code.report import EXIT_FELL_BACK
from training_code.submission import read_submission
from training_code.task_choice import check_task_spec, select_tasks


def _smollm2_present() -> bool:
    try:
        evaluation.model_tools.find_smollm2_gguf()
    except FileNotFoundError:
        return False
    return True


SMOLLM2_PRESENT = _smollm2_present()


def config(challenges: Path, out: Path, **kw) -> EvalConfig:
    # sampling, because DFS finds nothing above any useful threshold in a random model's near-uniform
    # distribution; two of each view keep it fast. test_dfs_... runs the DFS path.
    base = dict(challenges=str(challenges), output=str(out), ttt=False, decoder="sample", views=2, scoring_views=2,
                max_tokens=1024, progress=False, report=False, cache=False)
    return with_options(EvalConfig(), **{**base, **kw})


TASKS = {"aaa": task(1), "bbb": task(2, n_test=2), "ccc": task(3, n_train=3)}


def test_the_submission_covers_every_test_input_and_is_verified(tmp_path):
    challenges = write_set(tmp_path, TASKS)
    summary = run_evaluation(config(challenges, tmp_path / "out", ttt=True, ttt_steps=2, report=True), tiny())
    sub = read_submission(summary.submission_path, {"aaa": 1, "bbb": 2, "ccc": 1})
    assert set(sub) == {"aaa", "bbb", "ccc"} and len(sub["bbb"]) == 2
    assert summary.score is not None and summary.score.tasks == 3
    assert set(summary.metrics) >= {"accuracy", "pass_2", "correct_pixels", "unanswered"}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["tasks"]) == {"aaa", "bbb", "ccc"}
    entries = [e for t in report["tasks"].values() for cands in t["candidates"].values() for e in cands]
    assert entries and all(len(e["scoring_nlls"]) == 2 and e["correct"] in (True, False) for e in entries)
    assert sorted(p.name for p in (tmp_path / "out" / "pictures").iterdir()) == [
        "aaa_0.png", "bbb_0.png", "bbb_1.png", "ccc_0.png"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["views"] == 2


def test_same_seed_gives_a_byte_identical_submission(tmp_path):
    challenges = write_set(tmp_path, TASKS)
    a = run_evaluation(config(challenges, tmp_path / "a", ttt=True, ttt_steps=2), tiny())
    b = run_evaluation(config(challenges, tmp_path / "b", ttt=True, ttt_steps=2), tiny())
    assert a.submission_path.read_bytes() == b.submission_path.read_bytes()
    attempts = json.loads(a.submission_path.read_text())
    assert any(entry["attempt_1"] != [[0]] for entries in attempts.values() for entry in entries)


def test_bad_and_unanswerable_tasks_fall_back_and_the_exit_status_says_so(tmp_path):
    ragged = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}, {"input": [[2]]}]}
    big, big_solution = task(4, size=20)  # its prompt cannot fit the 300-token budget
    challenges = write_set(tmp_path, TASKS | {"big": (big, big_solution)}, extra={"bad": ragged})
    summary = run_evaluation(config(challenges, tmp_path / "out", max_tokens=300), tiny())
    sub = json.loads(summary.submission_path.read_text())
    assert set(sub) == {"aaa", "bbb", "ccc", "big", "bad"}
    assert sub["bad"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}] * 2
    assert summary.exit_status == EXIT_FELL_BACK
    assert ("bad", 1) in summary.fell_back and ("big", 0) in summary.fell_back
    assert "not rectangular" in summary.errors["bad"] and "tokens" in summary.errors["big"]

    # named by id, a task that cannot load still gets its fallback answers (it is in the file: a valid id)
    named = run_evaluation(config(challenges, tmp_path / "named", max_tokens=300, tasks="bad,aaa"), tiny())
    assert set(json.loads(named.submission_path.read_text())) == {"aaa", "bad"}
    assert ("bad", 1) in named.fell_back and "not rectangular" in named.errors["bad"]


def test_a_task_too_long_for_the_model_is_answered_by_the_search_alone_without_training(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    pairs = [rng.integers(0, 3, size=(20, 20)) for _ in range(3)]  # no prompt of them fits 300 tokens
    flipped = {"train": [{"input": g.tolist(), "output": g[:, ::-1].tolist()} for g in pairs[:2]],
               "test": [{"input": pairs[2].tolist()}]}
    challenges = write_set(tmp_path, TASKS | {"flip": (flipped, [pairs[2][:, ::-1].tolist()])})
    trained = []
    real_train = evaluation.test_time_train
    monkeypatch.setattr(evaluation, "test_time_train", lambda dataset, task_id, *a: trained.append(task_id) or
                        real_train(dataset, task_id, *a))
    summary = run_evaluation(config(challenges, tmp_path / "out", max_tokens=300, ttt=True, ttt_steps=1,
                                    search_seconds=5, report=True), tiny())
    assert "flip" not in trained and {"aaa", "bbb", "ccc"} <= set(trained)
    sub = json.loads(summary.submission_path.read_text())
    assert sub["flip"][0]["attempt_1"] == pairs[2][:, ::-1].tolist()
    report = json.loads((tmp_path / "out" / "report.json").read_text())["tasks"]["flip"]
    assert "tokens" in report["error"] and report["search_programs"]["0"][0].startswith("flip_h")
    assert report["candidates"]["0"][0]["from_search"] and not report["candidates"]["0"][0]["scoring_nlls"]


def test_a_killed_run_resumes_without_redoing_finished_tasks(tmp_path, monkeypatch):
    challenges = write_set(tmp_path, TASKS)
    cfg = config(challenges, tmp_path / "out", cache=True)
    real_solve = evaluation.solve_task
    solved = []

    def dies_on_the_third(dataset, task_id, *args, **kwargs):
        if len(solved) == 2:
            raise KeyboardInterrupt  # the process is killed while working on the third task
        solved.append(task_id)
        return real_solve(dataset, task_id, *args, **kwargs)

    monkeypatch.setattr(evaluation, "solve_task", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(cfg, tiny())
    finished = list(solved)
    solved.clear()

    def counting(dataset, task_id, *args, **kwargs):
        solved.append(task_id)
        return real_solve(dataset, task_id, *args, **kwargs)

    monkeypatch.setattr(evaluation, "solve_task", counting)
    resumed = run_evaluation(cfg, tiny())
    assert len(finished) == 2 and solved == [t for t in ["aaa", "bbb", "ccc"] if t not in finished]
    fresh = run_evaluation(config(challenges, tmp_path / "fresh"), tiny())
    assert resumed.submission_path.read_bytes() == fresh.submission_path.read_bytes()

    # another model (other weights, other fingerprint) never reads these results
    solved.clear()
    run_evaluation(cfg, tiny(seed=1))
    assert solved == ["aaa", "bbb", "ccc"]


def test_a_spent_time_budget_still_writes_a_complete_valid_submission(tmp_path):
    challenges = write_set(tmp_path, TASKS)
    summary = run_evaluation(config(challenges, tmp_path / "out", time_budget=1e-6), tiny())
    sub = read_submission(summary.submission_path, {"aaa": 1, "bbb": 2, "ccc": 1})
    assert len(sub) == 3 and summary.exit_status == EXIT_FELL_BACK
    assert all("time budget" in summary.errors[t] for t in ("aaa", "bbb", "ccc"))


def test_task_selection_by_ids_count_or_all(tmp_path):
    from training_code.arc_loader import ArcDataset

    ds = ArcDataset.from_kaggle(write_set(tmp_path, TASKS | {"ddd": task(9, size=5)}))
    assert select_tasks(ds, "", FMT) == ["aaa", "bbb", "ccc", "ddd"]
    assert select_tasks(ds, "ccc,aaa", FMT) == ["ccc", "aaa"]
    assert "ddd" not in select_tasks(ds, "3", FMT)  # the longest rendering is left out
    assert select_tasks(ds, "every:2", FMT) == ["aaa", "ccc"]  # every second task by id, from the first
    assert select_tasks(ds, "every:3", FMT) == ["aaa", "ddd"]
    with pytest.raises(ValueError, match="zzz"):
        select_tasks(ds, "aaa,zzz", FMT)
    with pytest.raises(ValueError, match="every:K"):
        select_tasks(ds, "every:0", FMT)


def test_an_id_made_of_digits_names_its_task_not_a_count(tmp_path):
    from training_code.arc_loader import ArcDataset

    challenges = write_set(tmp_path, TASKS | {"00576224": task(9)})  # an ARC-AGI-1 evaluation id, digits only
    ds = ArcDataset.from_kaggle(challenges)
    assert select_tasks(ds, "00576224", FMT) == ["00576224"]
    assert len(select_tasks(ds, "2", FMT)) == 2  # digits that name no task are still a count
    check_task_spec("00576224", challenges)
    check_task_spec("2", challenges)


def test_dfs_with_test_time_training_runs_through_the_pipeline(tmp_path):
    challenges = write_set(tmp_path, {"aaa": task(1)})
    summary = run_evaluation(config(challenges, tmp_path / "out", decoder="dfs", min_prob=0.5, ttt=True,
                                    ttt_steps=2), tiny())
    assert read_submission(summary.submission_path, {"aaa": 1})["aaa"][0]["attempt_1"].shape >= (1, 1)


def test_decoding_views_are_the_d8_transforms_with_colours_and_shuffles(tmp_path):
    from training_code.arc_loader import ArcDataset

    ds = ArcDataset.from_kaggle(write_set(tmp_path, TASKS))
    keys = decoding_keys(ds.tasks["ccc"], 0, 8, np.random.default_rng(0), keep_background=True)
    assert keys[0] == keys[0].base  # the identity view first
    assert sorted((k.transpose, k.rotation) for k in keys) == [(t, r) for t in (False, True) for r in range(4)]
    assert all(k.colours[0] == 0 and sorted(k.example_order) == [0, 1, 2] for k in keys[1:])


@pytest.mark.parametrize("choice, adapter, expected", [
    ("auto", "", None),  # load_model's default: 4-bit on CUDA, full precision on a CPU
    ("auto", "some/adapter", False),  # merging needs the base in 16 or 32 bits
    ("yes", "", True), ("no", "", False), ("yes", "some/adapter", True),
])
def test_the_4bit_choice_reaches_load_model(monkeypatch, choice, adapter, expected):
    seen = {}

    def load_model(source, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(evaluation.model_tools, "load_model", load_model)
    with pytest.raises(RuntimeError, match="stop here"):
        evaluation.prepare_session(EvalConfig(load_in_4bit=choice, adapter=adapter))
    assert seen["load_in_4bit"] is expected and seen["max_seq_length"] == EvalConfig().max_tokens
    with pytest.raises(ValueError, match="auto, yes or no"):
        evaluation.four_bit_choice(EvalConfig(load_in_4bit="maybe"))


def test_an_adapter_that_cannot_be_merged_into_4bit_weights_says_what_to_do(tmp_path, monkeypatch):
    loaded = tiny()
    shrunk, _ = evaluation.model_tools.shrink_for_format(loaded, FMT)
    adapter = evaluation.model_tools.save_adapter(evaluation.model_tools.add_lora(shrunk.model, r=2),
                                                  tmp_path / "adapter", shrunk.tokenizer)

    def merge_adapter(model):
        raise ValueError("merging into 4-bit weights loses precision")

    monkeypatch.setattr(evaluation.model_tools, "merge_adapter", merge_adapter)
    with pytest.raises(ValueError, match="4-bit weights.*--load-in-4bit no.*merged"):
        evaluation.prepare_session(EvalConfig(adapter=str(adapter)), tiny())


def test_test_time_training_takes_the_lora_of_the_loaded_backend(tmp_path, monkeypatch):
    backends = []
    add_lora = evaluation.model_tools.add_lora

    def recording_add_lora(model, **kwargs):
        backends.append(kwargs["backend"])
        return add_lora(model, **{**kwargs, "backend": "transformers"})  # unsloth itself needs a GPU

    monkeypatch.setattr(evaluation.model_tools, "add_lora", recording_add_lora)
    challenges = write_set(tmp_path, {"aaa": task(1), "bbb": task(2)})
    run_evaluation(config(challenges, tmp_path / "out", ttt=True, ttt_steps=1), replace(tiny(), backend="unsloth"))
    assert backends == ["unsloth", "unsloth"]


def test_test_time_training_recomputes_activations_only_for_long_tasks(tmp_path, monkeypatch):
    configs = {}
    train_adapter = evaluation.ModelSession.train_adapter

    def recording(session, data, train_config, description):
        configs[description.split()[-1]] = train_config
        return train_adapter(session, data, train_config, description)

    monkeypatch.setattr(evaluation.ModelSession, "train_adapter", recording)
    # "bbb" renders about 3 times as many tokens as "aaa": a limit between the two batches splits them
    challenges = write_set(tmp_path, {"aaa": task(1, size=2), "bbb": task(2, size=5)})
    run_evaluation(config(challenges, tmp_path / "out", ttt=True, ttt_steps=1, ttt_batch_size=2,
                          ttt_checkpoint_above=280), tiny())
    assert not configs["aaa"].gradient_checkpointing and configs["bbb"].gradient_checkpointing
    run_evaluation(config(challenges, tmp_path / "out2", ttt=True, ttt_steps=1, ttt_checkpoint_above=0), tiny())
    assert not configs["bbb"].gradient_checkpointing  # 0: never


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2_PRESENT, reason="the SmolLM2 GGUF is absent: run `make model`")
def test_smollm2_in_4bit_trains_at_test_time_decodes_and_scores_leaving_the_base_as_it_was(tmp_path):
    loaded = evaluation.model_tools.load_model("smollm2-135m", backend="transformers", load_in_4bit=True)
    grid = [[1, 1], [1, 1]]  # a task the pretrained model solves: the output repeats the input
    challenges = write_set(tmp_path, {"same": ({"train": [{"input": grid, "output": grid}] * 3,
                                                "test": [{"input": grid}]}, [grid])})
    run = evaluation.start_run(config(challenges, tmp_path / "out", ttt=True, ttt_steps=1, ttt_batch_size=1,
                                      decoder="dfs", min_prob=0.1, report=True), loaded)
    base, before = run.session.model, run.session.loaded.fingerprint
    assert evaluation.model_tools.is_quantized(base)
    results = evaluation.solve_tasks(run, run.task_ids)
    # the adapter trained and gone: the same 4-bit model, every byte as before
    assert run.session.model is base and evaluation.model_tools.is_quantized(base)
    assert evaluation.model_tools.fingerprint_of(base, run.session.tokenizer) == before
    summary = evaluation.finish_run(run, results)
    assert summary.score.correct == {"same": (True,)}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    best = report["tasks"]["same"]["candidates"]["0"][0]
    assert best["grid"] == grid and len(best["scoring_nlls"]) == 2 and len(best["generation_nlls"]) >= 1
