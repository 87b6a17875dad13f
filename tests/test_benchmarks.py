"""The benchmark scripts' --smoke modes, on a tiny random model, so that the scripts cannot rot:
each runs end to end and writes its JSON and its picture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pipeline_data import needs_smollm2, tiny
from transformers import AutoModelForCausalLM

from benchmarks import (
    bench_ablation,
    bench_data,
    bench_decoders,
    bench_gpu_model,
    bench_heldout,
    bench_inference,
    bench_search,
    bench_selection,
    bench_training,
)
from training_code import model_tools
from training_code.arc_loader import ArcDataset, dataset_grids
from training_code.cli import options, with_options
from training_code.selection import AGGREGATIONS


def test_data_benchmark_measures_every_stage(capsys):
    rates = bench_data.main(["--tasks", "5", "--repeats", "2", "--views", "2"])
    assert set(rates) == {"keys", "views", "render", "all"}
    assert all(len(values) == 2 and min(values) > 0 for values in rates.values())
    printed = capsys.readouterr().out
    assert "renders per repeat" in printed and all(stage in printed for stage in rates)


@pytest.mark.slow
def test_training_benchmark_compares_both_vocabularies(tmp_path, capsys):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    result = bench_training.main(["--compare", "vocabulary", "--model", str(tmp_path / "tiny"), "--steps", "1",
                                  "--rounds", "1", "--batch-size", "1", "--grad-accumulation", "1",
                                  "--max-length", "512", "--tasks", "3"])
    assert result["step_ratio"] > 0 and result["tokens_per_second_full"] > 0
    assert "shrunk vs full" in capsys.readouterr().out


@pytest.mark.slow
def test_training_benchmark_compares_the_trainers_on_the_same_sequences(tmp_path, capsys):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    result = bench_training.main(["--model", str(tmp_path / "tiny"), "--steps", "2", "--rounds", "1",
                                  "--max-length", "1024", "--tasks", "12"])
    assert result["step_ratio"] > 0 and result["tokens_per_second_defaults"] > 0
    # the same sequences in both, so the step losses differ by bfloat16 rounding at most
    assert result["largest_loss_gap"] < 0.1
    assert "defaults vs float32, drawn order" in capsys.readouterr().out


@pytest.mark.slow
def test_decoders_then_selection_smoke(tmp_path):
    out = tmp_path / "decoders.json"
    bench_decoders.main(["--smoke", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"dfs@0.1", "dfs@0.02", "greedy", "sample x8"}
    assert len(result["records"]) >= len(result["tasks"]) == 2  # one record per test input
    assert out.with_suffix(".png").stat().st_size > 0

    bench_selection.main(["--input", str(out)])
    selection = json.loads((tmp_path / "selection.json").read_text())
    assert set(selection["table"]) == set(AGGREGATIONS)  # the smoke pool is scored, so every aggregation ranks
    assert (tmp_path / "selection.png").stat().st_size > 0


def test_inference_benchmark_runs_both_implementations_on_the_same_views(tmp_path, capsys):
    out = tmp_path / "inference.json"
    result = bench_inference.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["summary"] == result["summary"]
    records = result["records"]
    assert len(records) == 2 and all(r["candidates"] > 0 for r in records)  # the nudged model finds grids
    assert [r["first"] for r in records] == ["previous", "current"]  # the order alternates
    assert all(r["same_candidates"] and r["same_attempts"] for r in records)
    assert result["summary"]["max_generation_nll_diff"] <= 1e-4 and result["summary"]["max_scoring_nll_diff"] <= 1e-4
    assert all(r[f"{stage}_{name}"] > 0 for r in records for stage in ("decoding", "scoring")
               for name in ("previous", "current"))
    # the same search nodes, visited one row per pass before and several rows per shared pass now
    summary = result["summary"]
    assert summary["one_token_rows"]["previous"] == summary["one_token_rows"]["current"]
    assert summary["one_token_passes"]["current"] < summary["one_token_passes"]["previous"]
    # the decoding views' prompt passes, timed alone, give the bound on the ratio
    assert all(r["prompt_passes"] > 0 for r in records) and summary["prompt_passes"]["bound_median_ratio"] > 0
    printed = capsys.readouterr().out
    assert "ratio of medians" in printed and "prompt passes alone" in printed


def smoke_against(previous: str, tmp_path) -> list[dict]:
    """The smoke inference benchmark against ``--previous``: the same candidates, attempts and NLLs (within
    1e-4) on every test input; its records."""
    result = bench_inference.main(["--smoke", "--previous", previous, "--out", str(tmp_path / f"{previous}.json")])
    assert result["previous"] == previous
    records = result["records"]
    assert all(r["same_candidates"] and r["same_attempts"] for r in records)
    assert result["summary"]["max_generation_nll_diff"] <= 1e-4 and result["summary"]["max_scoring_nll_diff"] <= 1e-4
    return records


def test_inference_benchmark_compares_the_grouped_attention_with_transformers_copies(tmp_path):
    records = smoke_against("copies", tmp_path)
    # both sides are the current decoders: the same passes over the same rows
    assert all(r["passes_previous"] == r["passes_current"] for r in records)


def test_inference_benchmark_compares_a_folded_test_time_adapter_with_an_unfolded_one(tmp_path):
    records = smoke_against("unfolded", tmp_path)
    assert len(records) == 2 and all(r["candidates"] > 0 for r in records)
    assert all(r["passes_previous"] == r["passes_current"] for r in records)


def test_inference_benchmark_compares_shared_prompt_passes_with_one_prompt_a_pass(tmp_path):
    records = smoke_against("separate-prompts", tmp_path)
    # the same one-token passes; the prompts of the views share passes only in the current run
    assert all(r["one_token_passes_previous"] == r["one_token_passes_current"] for r in records)
    assert all(r["passes_previous"] > r["passes_current"] for r in records)
    assert bench_inference.inference_tools.PROMPT_PASS_TOKENS > 0  # the setting is restored


@pytest.mark.slow
def test_ablation_smoke_and_resume(tmp_path):
    out = tmp_path / "ablation.json"
    bench_ablation.main(["--smoke", "--out", str(out)])
    result = json.loads(out.read_text())
    assert list(result["summary"]) == ["baseline", "+TTT", "+augmented scoring", "+DFS"]
    # the baseline runs once per task (seed-independent), the other steps once per task and seed
    assert len(result["records"]) == len(result["tasks"]) * (1 + len(result["seeds"]))
    assert all(len(row["runs"]) == len(result["seeds"]) for row in result["summary"].values())
    assert out.with_suffix(".png").stat().st_size > 0

    before = out.read_text()
    bench_ablation.main(["--smoke", "--out", str(out), "--resume"])  # nothing left to do: same records
    assert json.loads(out.read_text())["records"] == json.loads(before)["records"]


@pytest.mark.slow
def test_ablation_shards_combine_to_the_unsharded_run(tmp_path):
    whole, a, b, pooled = (tmp_path / f"{name}.json" for name in ("whole", "a", "b", "pooled"))
    bench_ablation.main(["--smoke", "--out", str(whole)])
    bench_ablation.main(["--smoke", "--shard", "0/2", "--out", str(a)])
    bench_ablation.main(["--smoke", "--shard", "1/2", "--out", str(b)])
    assert json.loads(a.read_text())["tasks"] != json.loads(b.read_text())["tasks"]
    bench_ablation.main(["--combine", str(a), str(b), "--out", str(pooled)])

    def answers(path):
        records = json.loads(path.read_text())["records"]
        return sorted((r["task_id"], str(r["seed"]), json.dumps(r["steps_answers"])) for r in
                      ({**r, "steps_answers": {n: [t["attempts"] for t in s["test_inputs"]]
                                               for n, s in r["steps"].items()}} for r in records))

    # each (task, seed) draws from its own seeded generator, so splitting the tasks changes no answer
    assert answers(pooled) == answers(whole)
    result, reference = json.loads(pooled.read_text()), json.loads(whole.read_text())
    assert result["tasks_finished"] == reference["tasks_finished"]
    for name, row in reference["summary"].items():
        assert [r["score_percent"] for r in result["summary"][name]["runs"]] == \
            [r["score_percent"] for r in row["runs"]]
    assert pooled.with_suffix(".png").stat().st_size > 0


def test_ablation_refuses_to_combine_different_runs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = {"benchmark": "ablation", "model": "m", "configs": {}, "seeds": [0], "tasks": [], "records": [],
            "machine": "x", "command": "c", "seconds": 0, "anchors_seconds_per_task": {}}
    a.write_text(json.dumps(base))
    b.write_text(json.dumps({**base, "model": "another"}))
    with pytest.raises(SystemExit, match="model differs"):
        bench_ablation.main(["--combine", str(a), str(b), "--out", str(tmp_path / "c.json")])


def test_ablation_steps_add_one_idea_each():
    configs = bench_ablation.steps(with_options(bench_ablation.EvalConfig(), views=4, scoring_views=3), min_prob=0.05)
    base, ttt, scored, dfs = (options(c) for c in configs.values())
    assert (base["ttt"], base["decoder"], base["views"], base["scoring_views"]) == (False, "greedy", 1, 0)
    assert bench_ablation.seed_independent(configs["baseline"]) and not bench_ablation.seed_independent(configs["+TTT"])
    assert ttt["ttt"] and (ttt["decoder"], ttt["views"], ttt["scoring_views"]) == ("greedy", 1, 0)
    assert (scored["views"], scored["scoring_views"], scored["aggregation"]) == (4, 3, "product-of-experts")
    assert (dfs["decoder"], dfs["min_prob"]) == ("dfs", 0.05) and dfs["views"] == 4


def test_tuning_varies_the_preset_one_setting_at_a_time():
    base = with_options(bench_ablation.EvalConfig(), ttt_steps=12, views=8, scoring_views=8)
    configs = bench_ablation.tuning_steps(base, min_prob=0.1)
    preset = options(configs["preset"])
    assert (preset["ttt"], preset["decoder"], preset["min_prob"], preset["aggregation"]) == (
        True, "dfs", 0.1, "product-of-experts")
    assert options(configs["DFS 0.05"])["min_prob"] == 0.05
    more_scoring = options(configs["DFS 0.05, 16 scoring views"])
    assert (more_scoring["min_prob"], more_scoring["scoring_views"]) == (0.05, 16)
    assert options(configs["24 TTT steps"])["ttt_steps"] == 24
    # one training serves every variant but the one with more TTT steps
    groups = {bench_ablation.ttt_settings(c) for c in configs.values()}
    assert len(groups) == 2


def test_tuning_study_starts_from_the_evaluation_preset_as_it_stands():
    from training_code.run_evaluation_smollm import PRESET

    args = bench_ablation.parse_args(["--preset", "tuning"])
    assert (args.min_prob, args.ttt_steps, args.views, args.scoring_views, args.max_tokens) == (
        PRESET.decoding.min_prob, PRESET.ttt.steps, PRESET.decoding.views, PRESET.scoring.views, PRESET.max_tokens)
    assert bench_ablation.parse_args(["--preset", "cpu"]).min_prob == bench_ablation.DEFAULT_MIN_PROB
    assert bench_ablation.parse_args(["--preset", "tuning", "--min-prob", "0.2"]).min_prob == 0.2


@pytest.mark.slow
def test_tuning_smoke_trains_once_per_ttt_setting_and_plots_the_trade(tmp_path):
    out = tmp_path / "tuning.json"
    bench_ablation.main(["--smoke", "--preset", "tuning", "--seeds", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["study"] == "tuning" and list(result["summary"])[0] == "preset"
    assert len(result["records"]) == len(result["tasks"])  # every step needs TTT: nothing seed-independent
    for record in result["records"]:
        shared = {s["ttt_seconds"] for n, s in record["steps"].items() if "TTT steps" not in n}
        assert len(shared) == 1  # the variants with the preset's TTT started from one training
        assert record["ttt_seconds"] == pytest.approx(sum(shared) + record["steps"]["4 TTT steps"]["ttt_seconds"])
    assert out.with_suffix(".png").stat().st_size > 0



@pytest.mark.slow
def test_tuning_runs_split_over_tasks_combine_into_one_table(tmp_path):
    a, b, pooled = (tmp_path / f"{name}.json" for name in ("a", "b", "pooled"))
    bench_ablation.main(["--smoke", "--preset", "tuning", "--seeds", "1", "--shard", "0/2", "--out", str(a)])
    bench_ablation.main(["--smoke", "--preset", "tuning", "--seeds", "1", "--shard", "1/2", "--out", str(b)])
    bench_ablation.main(["--combine", str(a), str(b), "--out", str(pooled)])
    result = json.loads(pooled.read_text())
    shards = [json.loads(p.read_text()) for p in (a, b)]
    assert sorted(result["tasks"]) == sorted(shards[0]["tasks"] + shards[1]["tasks"])
    assert result["study"] == "tuning" and list(result["summary"])[0] == "preset"
    assert len(result["records"]) == len(result["tasks"])


def test_selection_ranks_the_same_pool_every_way():
    def cand(value: int, generation: list[float], scoring: list[float], correct: bool) -> dict:
        return {"grid": [[value]], "generation_nlls": generation, "scoring_nlls": scoring, "correct": correct}

    # three candidates: the right one is best by product of experts and by mean probability, third by
    # generation probability and by votes
    pool = [cand(1, [0.1, 0.2, 0.3], [5.0, 5.0], False), cand(2, [0.5, 0.6], [4.0, 4.5], False),
            cand(3, [0.9], [1.0, 6.0], True)]
    table = bench_selection.rank_all([{"pool": pool}, {"pool": []}])
    assert table["product-of-experts"]["two_attempt_accuracy"] == 0.5  # one of two test inputs
    assert table["product-of-experts"]["top1_given_found"] == 1.0
    assert table["mean-probability"]["top1_given_found"] == 1.0
    assert table["max-generation-probability"]["top2_given_found"] == 0.0
    assert table["vote"]["top2_given_found"] == 0.0
    assert table["min-probability"]["top2_given_found"] == 0.0  # its worst view (6.0) is the worst of all
    assert all(row["found"] == 1 for row in table.values())


@pytest.mark.slow
def test_gpu_model_benchmark_runs_every_step_on_a_cpu(tmp_path):
    # on a CPU: full precision, transformers + peft; the same script shows the unsloth 4-bit path on a GPU
    out = tmp_path / "gpu_model.json"
    records = bench_gpu_model.main(["--models", "minitron-8b-shapes", "--shape", "tiny", "--layers", "1",
                                    "--backends", "transformers", "--steps", "2", "--batch-size", "1",
                                    "--max-length", "1024", "--tasks", "3", "--out", str(out)])
    assert len(records) == 1 and "error" not in records[0], records
    record = records[0]
    assert record["backend"] == "transformers" and record["layers_4bit"] == 0
    assert record["vocabulary_before"] == 512 and record["vocabulary_after"] < 80  # shrunk to the format
    assert record["parameters_after"] < record["parameters_before"]
    assert record["steps"] == 2 and record["finite"] and record["lora_trainable"] > 0
    assert json.loads(out.read_text())["records"][0]["model"] == "minitron-8b-shapes"


def test_the_random_model_has_the_minitron_layer_shapes():
    from transformers import MistralConfig

    config = MistralConfig(num_hidden_layers=1, **bench_gpu_model.MINITRON_8B_SHAPES)
    with torch.device("meta"):  # shapes only: no memory for 1.3 billion weights
        model = AutoModelForCausalLM.from_config(config)
    layer = model.model.layers[0]
    assert tuple(layer.self_attn.q_proj.weight.shape) == (32 * 128, 4096)
    assert tuple(layer.self_attn.k_proj.weight.shape) == (8 * 128, 4096)
    assert tuple(layer.mlp.gate_proj.weight.shape) == (11520, 4096)
    assert tuple(model.lm_head.weight.shape) == (131072, 4096)


@pytest.mark.slow
def test_held_out_benchmark_compares_adapters_on_tasks_none_trained_on(tmp_path, capsys):
    loaded = tiny()
    model_tools.save_merged(loaded.model, loaded.tokenizer, tmp_path / "tiny")
    model = model_tools.add_lora(loaded.model, r=2, alpha=4, seed=0)
    model_tools.save_adapter(model, tmp_path / "adapter", loaded.tokenizer)
    results = bench_heldout.main(["--model", str(tmp_path / "tiny"), "--adapters", "none", str(tmp_path / "adapter"),
                                  "--evaluation-tasks", "3", "--out", str(tmp_path / "heldout.json")])
    assert set(results) == {"none", str(tmp_path / "adapter")}
    for by_set in results.values():
        assert set(by_set) == {"held-out training tasks", "3 shortest evaluation tasks"}
        assert all(r["loss"] > 0 and 0 <= r["accuracy"] <= 1 for r in by_set.values())
    # a fresh LoRA starts at zero: the same figures as the base
    for name, figures in results["none"].items():
        assert figures == pytest.approx(results[str(tmp_path / "adapter")][name])
    with pytest.raises(SystemExit):
        bench_heldout.main(["--adapters", str(tmp_path / "missing")])


def test_search_benchmark_writes_a_record_per_task_and_plots_them(tmp_path):
    out = tmp_path / "search.json"
    assert bench_search.main(["--split", "evaluation", "--tasks", "every:200", "--seconds", "0.2", "--max-depth", "1",
                              "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    summary, records = run["summary"], run["tasks"]
    assert summary["tasks"] == len(records) == 2 and summary["search_version"] == bench_search.SEARCH_VERSION
    assert summary["solved"] == sum(r["solved"] for r in records)
    assert {"task_id", "solved", "found_depth", "cpu_seconds", "peak_rss_mb", "program"} <= set(records[0])
    png = tmp_path / "search.png"
    assert bench_search.main(["--plot", str(out), "--png", str(png)]) == 0
    assert png.stat().st_size > 0


def test_search_benchmark_measures_arc_agi_2_without_its_arc_agi_1_tasks(tmp_path):
    new = bench_search.load_split("arc-agi-2-new")
    arc1 = dataset_grids(bench_search.load_split("training"), bench_search.load_split("evaluation"))
    assert len(bench_search.load_split("arc-agi-2-evaluation").tasks) == 120
    assert 0 < len(new.tasks) < 1000 and not new.sharing_grids(arc1)
    assert all(e.output is not None for task in new.tasks.values() for e in task.test)  # solutions loaded
    out = tmp_path / "search.json"
    assert bench_search.main(["--split", "arc-agi-2-new", "--tasks", "every:100", "--seconds", "0.2",
                              "--max-depth", "1", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["split"] == "arc-agi-2-new" and summary["tasks"] == len(sorted(new.tasks)[::100])


def test_search_benchmark_leaves_no_shortest_tasks_out_of_a_sample_at_count_0():
    challenges = Path("input/arc-agi_evaluation_challenges.json")
    dataset = ArcDataset.from_kaggle(challenges, challenges.with_name("arc-agi_evaluation_solutions.json"))
    # --tasks 0 --sample N draws from all tasks: no shortest ones to leave out, no tokenizer needed
    assert bench_search.chosen_tasks(dataset, "0") == []
    assert bench_search.chosen_tasks(dataset, "") == sorted(dataset.tasks)


@needs_smollm2  # --tasks N ranks by lengths with the model's end token
def test_search_benchmark_picks_the_tasks_the_evaluation_picks():
    challenges = Path("input/arc-agi_evaluation_challenges.json")
    dataset = ArcDataset.from_kaggle(challenges, challenges.with_name("arc-agi_evaluation_solutions.json"))
    # the evaluation's run on the 50 shortest tasks (its --tasks 50), kept in the results
    evaluated = json.loads(Path("benchmarks/results/smollm2_50_with_search_v5/submission.json").read_text())
    assert bench_search.chosen_tasks(dataset, "50") == sorted(evaluated)
    assert bench_search.chosen_tasks(dataset, "every:100") == sorted(dataset.tasks)[::100]
    with pytest.raises(SystemExit):
        bench_search.main(["--tasks", "every:0"])


def test_search_benchmark_compares_two_runs_task_by_task(tmp_path, capsys):
    def run(path, solved):
        tasks = [{"task_id": t, "solved": ok, "program": f"p_{t}" if ok else None} for t, ok in solved.items()]
        path.write_text(json.dumps({"summary": {}, "tasks": tasks}))
        return path

    old = run(tmp_path / "old.json", {"a": True, "b": False, "c": True, "d": True})
    new = run(tmp_path / "new.json", {"a": True, "b": True, "c": False, "e": True})  # d and e: in one run only
    found = bench_search.diff(old, new)
    assert found == {"tasks": 3, "solved": [2, 2], "gained": {"b": "p_b"}, "lost": {"c": "p_c"}}
    assert bench_search.main(["--diff", str(old), str(new)]) == 0
    printed = capsys.readouterr().out
    assert "solved 2 -> 2" in printed and "gained (1):\n  b  p_b" in printed and "lost (1):\n  c" in printed


def test_search_benchmark_stops_each_task_at_its_step_budget(tmp_path):
    out = tmp_path / "steps.json"
    assert bench_search.main(["--split", "evaluation", "--tasks", "every:200", "--seconds", "1000", "--max-steps", "50",
                              "--out", str(out)]) == 0
    run = json.loads(out.read_text())
    assert run["summary"]["max_steps"] == 50
    assert all(r["steps"] <= 51 for r in run["tasks"])  # the step past the budget is where the search stops
    assert run["summary"]["steps_total"] == sum(r["steps"] for r in run["tasks"])
    with pytest.raises(SystemExit):
        bench_search.main(["--max-steps", "-1", "--out", str(out)])


def test_search_benchmark_resumes_a_run_cut_short_and_refuses_other_settings(tmp_path):
    out = tmp_path / "search.json"
    argv = ["--split", "evaluation", "--tasks", "every:200", "--seconds", "0.2", "--max-depth", "1", "--out", str(out)]
    assert bench_search.main(argv) == 0
    first = json.loads(out.read_text())
    cut = {"summary": first["summary"], "tasks": first["tasks"][:1]}  # as if killed after the first task
    cut["tasks"][0]["program"] = "kept from the first part"
    out.write_text(json.dumps(cut))
    assert bench_search.main([*argv, "--resume"]) == 0
    resumed = json.loads(out.read_text())
    assert [r["task_id"] for r in resumed["tasks"]] == [r["task_id"] for r in first["tasks"]]
    assert resumed["tasks"][0]["program"] == "kept from the first part" and resumed["summary"]["resumed_with"] == 1
    assert resumed["summary"]["tasks"] == 2
    with pytest.raises(SystemExit):  # another budget: not the same run
        bench_search.main([*(a if a != "0.2" else "0.3" for a in argv), "--resume"])
