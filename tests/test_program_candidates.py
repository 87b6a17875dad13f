"""Programs as candidates: sampled with the code-from-examples prompt, run in the sandbox, their
outputs scored and ranked with the decoded grids; the vocabulary that lets a model write programs, for
evaluation and fine-tuning; and the code tasks as a fine-tuning source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from pipeline_data import FMT, task, tiny, write_set
from transformers import AutoTokenizer

from training_code import evaluation, model_tools, report
from training_code.arc_loader import ArcDataset, parse_task
from training_code.cli import with_options
from training_code.evaluation import EvalConfig, prepare_session, run_evaluation, sampled_programs
from training_code.finetune import FinetuneConfig, run_finetune, training_alphabet
from training_code.induction.code_tasks import CODE_CHARACTERS, CodeTaskDataset, code_alphabet
from training_code.induction.sandbox import Sandbox, program_outputs
from training_code.selection import AGGREGATIONS, ScoredCandidate, add_program_candidates, merge_candidates
from training_code.sources import parse_sources
from training_code.submission import read_submission

FLIP = "def solve(grid):\n    return flip_h(grid)\n"
SAMPLED = [FLIP, "garbage", "while True: pass"]  # a right program, one that fails, one that never ends


def tiny_code_model(seed: int = 0) -> model_tools.LoadedModel:
    """The pipeline tests' tiny model with a character for everything a program may contain."""
    return model_tools.build_tiny_model(code_alphabet(FMT), seed=seed, hidden_size=32, layers=1, heads=2)


def flip_task(seed: int, n_test: int = 1) -> tuple[dict, list]:
    """A task whose outputs are the inputs mirrored left to right (what FLIP does)."""
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 3, size=(3, 4)) for _ in range(3 + n_test)]
    challenge = {"train": [{"input": x.tolist(), "output": x[:, ::-1].tolist()} for x in inputs[:3]],
                 "test": [{"input": x.tolist()} for x in inputs[3:]]}
    return challenge, [x[:, ::-1].tolist() for x in inputs[3:]]


def config(challenges: Path, out: Path, **kw) -> EvalConfig:
    base = dict(challenges=str(challenges), output=str(out), ttt=False, decoder="sample", views=2, scoring_views=2,
                max_tokens=1024, progress=False, report=True, cache=False, program_samples=3,
                program_timeout=0.5, program_max_tokens=64)
    return with_options(EvalConfig(), **{**base, **kw})


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


@pytest.fixture
def stub_sampler(monkeypatch):
    """Sampling answers with SAMPLED; the calls are recorded."""
    calls = []

    def sampled(task, *args, **kwargs):
        calls.append(task.task_id)
        return list(SAMPLED)

    monkeypatch.setattr(evaluation, "sampled_programs", sampled)
    return calls


# --------------------------------------------------------------------------------------------------
# Program candidates in the pipeline


def test_a_right_program_adds_the_answer_to_each_test_inputs_candidates(tmp_path, stub_sampler):
    flip, solutions = flip_task(1, n_test=2)
    challenges = write_set(tmp_path, {"flip": (flip, solutions), "aaa": task(1)})
    out = tmp_path / "out"
    summary = run_evaluation(config(challenges, out), tiny_code_model())
    assert stub_sampler == ["aaa", "flip"]
    read_submission(summary.submission_path, {"flip": 2, "aaa": 1})  # complete and valid
    entry = report_of(out)["tasks"]["flip"]
    assert (entry["programs_sampled"], entry["programs_valid"]) == (3, 1)
    for index, solution in enumerate(solutions):
        from_programs = [c for c in entry["candidates"][str(index)] if c["from_program"]]
        assert [c["grid"] for c in from_programs] == [solution]
        assert from_programs[0]["correct"] is True and len(from_programs[0]["scoring_nlls"]) == 2
        assert len(from_programs[0]["generation_nlls"]) >= 1
    other = report_of(out)["tasks"]["aaa"]  # no program fits a random task: nothing from programs
    assert other["programs_valid"] == 0
    assert not any(c["from_program"] for cands in other["candidates"].values() for c in cands)


@pytest.mark.parametrize("aggregation", list(AGGREGATIONS))
def test_the_programs_answer_is_attempt_1_when_the_decoders_find_nothing(tmp_path, stub_sampler, aggregation):
    flip, solutions = flip_task(2)
    challenges = write_set(tmp_path, {"flip": (flip, solutions)})
    out = tmp_path / "out"
    # DFS at 0.99: a random model's near-uniform distribution has no reply that probable
    cfg = config(challenges, out, decoder="dfs", min_prob=0.99, aggregation=aggregation)
    summary = run_evaluation(cfg, tiny_code_model())
    sub = read_submission(summary.submission_path, {"flip": 1})
    assert sub["flip"][0]["attempt_1"].tolist() == solutions[0]
    assert summary.score.points == 1 and summary.exit_status == report.EXIT_OK
    (only,) = report_of(out)["tasks"]["flip"]["candidates"]["0"]
    assert only["from_program"] and len(only["generation_nlls"]) == 1  # its NLL under the identity view
    scored = aggregation not in ("vote", "max-generation-probability")
    assert len(only["scoring_nlls"]) == (2 if scored else 0)


def flip_entry(tmp_path, seed: int) -> dict:
    """Evaluate the flip task alone under the default config; its report entry, once the submission
    is read back complete and valid."""
    challenges = write_set(tmp_path, {"flip": flip_task(seed)})
    out = tmp_path / "out"
    summary = run_evaluation(config(challenges, out), tiny_code_model())
    read_submission(summary.submission_path, {"flip": 1})
    return report_of(out)["tasks"]["flip"]


def test_a_sandbox_that_fails_leaves_the_task_without_program_candidates(tmp_path, stub_sampler, monkeypatch):
    def broken(self, source, grids, deadline=float("inf")):
        raise RuntimeError("the sandbox worker did not start")

    monkeypatch.setattr(Sandbox, "run", broken)
    entry = flip_entry(tmp_path, 3)
    assert entry["error"] == "" and (entry["programs_sampled"], entry["programs_valid"]) == (3, 0)
    assert not any(c["from_program"] for c in entry["candidates"]["0"])


def test_failed_sampling_costs_the_task_its_programs_not_its_grids(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("sampling ran out of memory")

    monkeypatch.setattr(evaluation, "sampled_programs", out_of_memory)
    entry = flip_entry(tmp_path, 5)
    assert entry["error"] == "" and entry["programs_sampled"] == 0
    assert entry["candidates"]["0"]  # the sampling decoder's grids are still there
    assert not any(c["from_program"] for c in entry["candidates"]["0"])


def test_no_program_starts_after_the_deadline():
    flip, _solutions = flip_task(6)
    flip_ = parse_task("flip", flip)
    with Sandbox(timeout=0.5) as box:
        assert program_outputs(flip_, [FLIP], sandbox=box).valid == (FLIP,)
        late = program_outputs(flip_, [FLIP], sandbox=box, deadline=time.monotonic() - 1)
    assert late.valid == () and late.per_test == ((),)


def test_real_sampling_on_the_tiny_model_runs_through(tmp_path):
    challenges = write_set(tmp_path, {"flip": flip_task(4), "aaa": task(1)})
    out = tmp_path / "out"
    cfg = config(challenges, out, program_samples=2, ttt=True, ttt_steps=1)  # sampled after test-time training
    summary = run_evaluation(cfg, tiny_code_model())
    read_submission(summary.submission_path, {"flip": 1, "aaa": 1})
    report = report_of(out)
    assert not report["errors"]
    assert sum(entry["programs_sampled"] for entry in report["tasks"].values()) >= 1  # some reached the sandbox
    for entry in report["tasks"].values():  # random programs: none reproduces the examples
        assert entry["programs_sampled"] <= 2 and entry["programs_valid"] == 0
        assert not any(c["from_program"] for cands in entry["candidates"].values() for c in cands)


# --------------------------------------------------------------------------------------------------
# Sampling programs


@pytest.fixture
def flip_session(tmp_path):
    challenges = write_set(tmp_path, {"flip": flip_task(5)})
    cfg = config(challenges, tmp_path / "out")
    return ArcDataset.from_kaggle(challenges).tasks["flip"], prepare_session(cfg, tiny_code_model()), cfg


def test_sampled_programs_are_program_text_and_reproducible(flip_session):
    flip, session, cfg = flip_session
    texts = sampled_programs(flip, session, cfg, deadline=float("inf"))
    assert texts == sampled_programs(flip, session, cfg, deadline=float("inf"))
    assert len(texts) <= cfg.programs.samples and len(set(texts)) == len(texts)
    assert all(text and set(text) <= set(CODE_CHARACTERS) for text in texts)


def test_no_programs_are_sampled_after_the_deadline_or_without_room(flip_session, monkeypatch):
    flip, session, cfg = flip_session
    prompts = []

    def recording(model, prompt_ids, **kwargs):
        prompts.append(session.tokenizer.decode(prompt_ids))
        return []

    monkeypatch.setattr(evaluation, "sample_decode", recording)
    assert sampled_programs(flip, session, cfg, deadline=0.0) == [] and prompts == []
    # a context with room for about one example and the program: the other examples are dropped
    one_example = session.count_tokens(evaluation.render_code_from_examples(
        session.fmt, [(flip.train[0].input, flip.train[0].output)]).prompt)
    session.max_tokens = one_example + cfg.programs.max_tokens
    sampled_programs(flip, session, cfg, deadline=float("inf"))
    assert "input 1:" in prompts[-1] and "input 2:" not in prompts[-1]
    session.max_tokens = one_example + cfg.programs.max_tokens - 1
    assert sampled_programs(flip, session, cfg, deadline=float("inf")) == [] and len(prompts) == 1


def test_program_grids_merge_with_decoded_candidates():
    a, b, c = (np.full((2, 2), v, dtype=np.uint8) for v in (1, 2, 3))
    candidates = merge_candidates([(a, 0.5), (b, 0.7), (a, 0.4)])
    added = add_program_candidates(candidates, [b, c, c])
    assert [x.grid.tolist() for x in candidates] == [a.tolist(), b.tolist(), c.tolist()]
    assert [x.from_program for x in candidates] == [False, True, True]
    assert len(added) == 1 and added[0] is candidates[2] and added[0].generation_nlls == []
    assert candidates[1].generation_nlls == [0.7]  # a program adds no vote to a decoded grid
    assert ScoredCandidate(a).from_program is False
    assert [x.decoded for x in candidates] == [True, True, False]


def test_the_search_grids_keep_their_order_in_the_search():
    a, b, c = (np.full((2, 2), v, dtype=np.uint8) for v in (1, 2, 3))
    candidates = merge_candidates([(b, 0.5)])
    add_program_candidates(candidates, [c, b, a, c], searched=True)
    assert [(x.grid[0, 0], x.search_rank, x.decoded) for x in candidates] == [(2, 1, True), (3, 0, False),
                                                                               (1, 2, False)]


# --------------------------------------------------------------------------------------------------
# Vocabularies: adapters and fine-tuning


def save_shrunk_adapter(path: Path, program_samples: int, with_tokenizer: bool = True) -> Path:
    """An (untrained) adapter on the vocabulary an evaluation with ``program_samples`` shrinks to."""
    session = prepare_session(with_options(EvalConfig(), program_samples=program_samples), tiny_code_model())
    model = model_tools.add_lora(session.model, r=2, train_embeddings=True)
    return model_tools.save_adapter(model, path, session.tokenizer if with_tokenizer else None)


def test_an_adapter_on_another_vocabulary_is_refused_with_the_reason(tmp_path):
    grid_adapter = save_shrunk_adapter(tmp_path / "grid", program_samples=0)
    grid_size, code_size = len(FMT.alphabet) + 3, len(code_alphabet(FMT)) + 3  # bos, eos, pad
    with pytest.raises(ValueError, match=rf"adapter .*grid .*{grid_size} tokens.*{code_size} tokens \(the code "
                                         r"alphabet.*--train-datasets 'code code-from-examples'"):
        prepare_session(with_options(EvalConfig(), adapter=str(grid_adapter), program_samples=2), tiny_code_model())
    code_adapter = save_shrunk_adapter(tmp_path / "code", program_samples=2)
    with pytest.raises(ValueError, match=r"adapter .*code .*run with --program-samples N"):
        prepare_session(with_options(EvalConfig(), adapter=str(code_adapter), program_samples=0), tiny_code_model())
    session = prepare_session(with_options(EvalConfig(), adapter=str(code_adapter), program_samples=2),
                              tiny_code_model())
    assert len(session.tokenizer) == code_size
    # no tokenizer beside it: the shapes of its trained embeddings tell
    bare = save_shrunk_adapter(tmp_path / "bare", program_samples=0, with_tokenizer=False)
    with pytest.raises(ValueError, match=r"adapter .*bare was trained on another vocabulary.*size mismatch"):
        prepare_session(with_options(EvalConfig(), adapter=str(bare), program_samples=2), tiny_code_model())


def test_the_code_source_gives_code_parts_and_the_code_alphabet():
    rng = np.random.default_rng(0)
    parts = parse_sources(["code code-from-examples", "code*0.5 output-from-code",
                           "arc-agi-1/training output-from-examples"], rng)
    assert [(type(p.dataset), p.prompt_version, p.weight) for p in parts] == [
        (CodeTaskDataset, "code-from-examples", 1.0), (CodeTaskDataset, "output-from-code", 0.5),
        (ArcDataset, "output-from-examples", 1.0)]
    assert training_alphabet(FMT, parts) == code_alphabet(FMT)
    assert training_alphabet(FMT, parts[2:]) == FMT.alphabet
    with pytest.raises(ValueError, match="needs tasks with programs"):
        parse_sources(["arc-agi-1/training code-from-examples"], rng)
    with pytest.raises(ValueError, match="expected 'SOURCE PROMPT_VERSION'"):
        parse_sources(["code code-from-nothing"], rng)


def test_finetuning_on_code_tasks_gives_an_adapter_that_can_sample_programs(tmp_path):
    tiny = tiny_code_model()
    model_tools.save_merged(tiny.model, tiny.tokenizer, tmp_path / "tiny")
    run_finetune(with_options(FinetuneConfig(), model=str(tmp_path / "tiny"), models_dir=str(tmp_path), name="coder",
                              train_datasets=("code code-from-examples", "arc-agi-1/training output-from-examples"),
                              lora_r=2, max_steps=1, batch_size=1, max_length=1024, merge=False))
    adapter = tmp_path / "coder" / "adapter"
    assert len(AutoTokenizer.from_pretrained(adapter)) == len(code_alphabet(FMT)) + 3
    flip, solutions = flip_task(6)
    challenges = write_set(tmp_path / "data", {"flip": (flip, solutions)})
    summary = run_evaluation(config(challenges, tmp_path / "out", adapter=str(adapter), program_samples=2),
                             tiny_code_model())
    read_submission(summary.submission_path, {"flip": 1})


# --------------------------------------------------------------------------------------------------
# The program search's candidates in the pipeline


@pytest.mark.parametrize("aggregation", list(AGGREGATIONS))
def test_the_searchs_answer_joins_the_pool_and_is_attempt_1_when_the_decoders_find_nothing(tmp_path, aggregation):
    flip, solutions = flip_task(4)
    challenges = write_set(tmp_path, {"flip": (flip, solutions)})
    out = tmp_path / "out"
    cfg = config(challenges, out, decoder="dfs", min_prob=0.99, aggregation=aggregation, program_samples=0,
                 search_seconds=5.0)
    summary = run_evaluation(cfg, tiny())
    sub = read_submission(summary.submission_path, {"flip": 1})
    assert sub["flip"][0]["attempt_1"].tolist() == solutions[0]
    entry = report_of(out)["tasks"]["flip"]
    assert entry["search_programs"]["0"][0] == "flip_h(grid)"
    first = entry["candidates"]["0"][0]
    assert first["from_search"] and not first["from_program"] and first["correct"]
    assert len(first["generation_nlls"]) == 1  # its NLL under the identity view, like a sampled program's
    scored = aggregation not in ("vote", "max-generation-probability")
    assert len(first["scoring_nlls"]) == (2 if scored else 0)


def test_the_search_settings_are_part_of_the_cache_key(tmp_path):
    flip, _ = flip_task(5)
    dataset = ArcDataset.from_json_objects({"flip": flip})
    key = {seconds: evaluation.task_cache_key("model", dataset.tasks["flip"], config(tmp_path, tmp_path,
                                                                                        search_seconds=seconds))
           for seconds in (0.0, 1.0, 10.0)}
    assert len(set(key.values())) == 3


def test_a_step_budget_makes_the_search_the_same_on_any_machine(tmp_path):
    flip, _ = flip_task(6)
    dataset = ArcDataset.from_json_objects({"flip": flip})
    task = dataset.tasks["flip"]
    cfg = config(tmp_path, tmp_path, search_seconds=60.0, search_max_steps=40)
    results = [report.TaskResult("flip") for _ in range(2)]
    found = [evaluation.searched_candidates(task, cfg, float("inf"), r) for r in results]
    assert results[0].search_programs == results[1].search_programs and results[0].search_programs[0]
    assert all(np.array_equal(a, b) for a, b in zip(found[0][0], found[1][0], strict=True))
    keys = {steps: evaluation.task_cache_key("model", task, config(tmp_path, tmp_path, search_seconds=1.0,
                                                                   search_max_steps=steps)) for steps in (0, 40)}
    assert keys[0] != keys[40]


def test_the_search_can_count_cpu_time_rather_than_the_clock(tmp_path, monkeypatch):
    flip, _ = flip_task(7)
    task = ArcDataset.from_json_objects({"flip": flip}).tasks["flip"]
    seen = []
    real = evaluation.search_task
    monkeypatch.setattr(evaluation, "search_task", lambda *a, **kw: seen.append(a[2]) or real(*a, **kw))
    for cpu_time in (False, True):
        evaluation.searched_candidates(task, config(tmp_path, tmp_path, search_seconds=5.0, search_cpu_time=cpu_time),
                                       float("inf"), report.TaskResult("flip"))
    assert [c.cpu_time for c in seen] == [False, True] and all(c.seconds == 5.0 for c in seen)
    keys = {cpu: evaluation.task_cache_key("model", task, config(tmp_path, tmp_path, search_seconds=5.0,
                                                                 search_cpu_time=cpu)) for cpu in (False, True)}
    assert keys[False] != keys[True]


def test_the_candidates_of_a_search_running_beside_the_run_are_read_from_its_file(tmp_path, caplog):
    flip, solutions = flip_task(7)
    other, _ = flip_task(8)
    challenges = write_set(tmp_path, {"flip": (flip, solutions), "other": (other, [[[0]]])})
    results = tmp_path / "search" / "search_results.jsonl"
    results.parent.mkdir()
    results.write_text(json.dumps({"task_id": "flip", "programs": [["flip_h(grid)"]], "candidates": [solutions]})
                       + "\n" + json.dumps({"task_id": "other", "programs": [[], []], "candidates": [[], []]}) + "\n")
    out = tmp_path / "out"
    cfg = config(challenges, out, decoder="dfs", min_prob=0.99, program_samples=0, search_results=str(results),
                 search_wait=0.1)
    assert cfg.search.seconds == 0  # nothing is searched here
    run_evaluation(cfg, tiny())
    sub = read_submission(out / "submission.json", {"flip": 1, "other": 1})
    assert sub["flip"][0]["attempt_1"].tolist() == solutions[0]
    entry = report_of(out)["tasks"]["flip"]
    assert entry["search_programs"] == {"0": ["flip_h(grid)"]} and entry["candidates"]["0"][0]["from_search"]
    assert "answers 2 test inputs, the task has 1" in caplog.text  # a result that does not fit the task is left out
    assert report_of(out)["tasks"]["other"]["search_programs"] == {}
