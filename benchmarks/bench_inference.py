"""Decoding and scoring, the previous implementation against the current one, side by side.

    .venv/bin/python -m benchmarks.bench_inference [--tasks 6] [--views 8] [--scoring-views 8] [--min-prob 0.1]
        [--threads 1] [--out benchmarks/results/inference.json] [--smoke]

The previous implementation is kept here as the reference: DFS one view at a time, one row per
forward pass (``dfs_decode``, following the best candidate so far first), and scoring that runs
every candidate's whole prompt again (``batched_nll``). The current one is the pipeline's own
``candidates_for`` (the first view, then the others in shared passes, each checking the first
view's best candidate in one pass) and ``score_candidates`` (each view's prompt once).

For every test input both run on the same model and the same views (generators seeded alike),
in alternating order from one test input to the next, so load on the machine hits them alike.
Reported per test input and stage: seconds, and whether the two found the same candidates, with
generation and scoring NLLs within 1e-4, and chose the same two attempts (the submission). The
summary gives the median seconds per stage and the ratio of medians (previous / current).

Both implementations run each decoding view's prompt once, and nothing that keeps the same candidates can
skip that. So each test input's decoding-view prompt passes are also timed alone, one row each
(``prompt_passes``), and the summary gives the bound they set: previous decoding and scoring over those
passes, the largest ratio an implementation that did nothing else could reach while running them one by
one (the current one runs short prompts several to a pass, which is faster per prompt).

--previous copies compares the current implementation with itself under transformers' own attention code
(keys and values copied per query head wherever a mask is given) instead of with the reference: the gain
of ``inference_tools.grouped_attention`` alone.

--previous unfolded compares the current implementation with itself after test-time training (the SmolLM2
preset's: 12 steps, LoRA rank 16, on every linear layer), the adapter run as peft runs it (each LoRA layer's
two small products beside the base layer's) against folded into the base weights
(``ModelSession.adapter_folded``, what the pipeline does on a CPU): the gain of folding alone. Each task
trains once; both runs decode and score with the same adapter.

--previous separate-prompts compares the current implementation with itself running each view's prompt
(decoding's and scoring's) in a pass of its own instead of several short prompts in one right-padded pass
(``inference_tools.PROMPT_PASS_TOKENS``): the gain of sharing prompt passes alone.

--smoke: a tiny random model nudged toward grids of zeros, 2 tasks, 2 views (seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_decoders import THREADS_HELP, UNSCORED, machine, resolve_adapter, save, session_for, set_threads
from training_code import inference_tools
from training_code.arc_loader import ArcDataset, Task
from training_code.candidates import (
    candidates_for,
    candidates_room,
    decoding_keys,
    fit_key,
    reply_room,
    score_candidates,
    scoring_keys,
)
from training_code.cli import checked, options, with_options
from training_code.evaluation import (
    EvalConfig,
    load_challenges,
    stable_seed,
    test_time_train,
)
from training_code.formats import FormatParseError, format_from_spec
from training_code.grids import Grid
from training_code.inference_tools import _prompt_pass, attention_implementation, batched_nll, dfs_decode
from training_code.model_session import ModelSession
from training_code.run_evaluation_smollm import PRESET as SMOLLM2_PRESET
from training_code.selection import ScoredCandidate, merge_candidates, rank_candidates
from training_code.task_choice import select_tasks

RESULTS = Path("benchmarks/results")
SMOKE_MIN_PROB = 1e-3


class Nudged(torch.nn.Module):
    """A model whose logits get a fixed bias per token: the smoke run's random model, nudged toward
    small grids of zeros so that DFS finds candidates to score and rank."""

    def __init__(self, inner: torch.nn.Module, bias: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("bias", bias)

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits + self.bias.to(out.logits.dtype)
        return out


def nudged_session(session: ModelSession) -> ModelSession:
    bias = torch.zeros(len(session.token_texts))
    for text, value in (("0", 4.0), ("1", 2.0), ("\n", 3.0)):
        bias[session.token_texts.index(text)] = value
    bias[session.eos_id] = 4.0
    return session.with_model(Nudged(session.model, bias))


# --------------------------------------------------------------------------------------------------
# The previous implementation (the reference)


def decoding_prompts(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession, config: EvalConfig,
                     rng: np.random.Generator) -> list[tuple]:
    """Each decoding view's key and prompt ids, drawn as the pipeline draws them."""
    from training_code.inference_tools import torch_generator

    room = reply_room(task, session.fmt)
    torch_generator(rng)  # the pipeline draws a sampling generator first: keep the views the same
    keys = [fit_key(dataset, key, session, room)
            for key in decoding_keys(task, test_index, config.decoding.views, rng, config.keep_background)]
    return [(key, session.ids(dataset.render(key, session.fmt, with_reply=False).prompt)) for key in keys]


def reference_candidates(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession,
                         config: EvalConfig, rng: np.random.Generator) -> list[ScoredCandidate]:
    """Candidates as the pipeline found them before: one view at a time, each a one-row DFS that
    follows the best candidate so far first; ranked by generation probability."""
    room = reply_room(task, session.fmt)
    found: list[tuple[Grid, float]] = []
    best: tuple[float, Grid] | None = None
    checker = session.fmt.reply_checker()
    for key, prompt_ids in decoding_prompts(dataset, task, test_index, session, config, rng):
        guess = None if best is None else session.ids(session.fmt.reply_text(key.transform(best[1])))[:-1]
        for cand in dfs_decode(session.model, prompt_ids, eos_id=session.eos_id, token_texts=session.token_texts,
                               checker=checker, min_prob=config.decoding.min_prob, max_new_tokens=room, guess=guess):
            try:
                grid = key.invert(session.fmt.parse_reply(cand.text))
            except FormatParseError:
                continue
            found.append((grid, cand.nll))
            if best is None or cand.nll < best[0]:
                best = (cand.nll, grid)
    return rank_candidates(merge_candidates(found), UNSCORED)


def reference_score(dataset: ArcDataset, task: Task, test_index: int, candidates: list[ScoredCandidate],
                    session: ModelSession, config: EvalConfig, rng: np.random.Generator) -> None:
    """Scoring as before: every candidate's prompt and reply as one sequence, in padded batches."""
    keys = scoring_keys(task, test_index, config.scoring.views, rng, config.keep_background)
    room = candidates_room(task, session, candidates)
    sequences, starts = [], []
    for key in keys:
        key = fit_key(dataset, key, session, room)
        view = dataset.view(key)
        for cand in candidates:
            rendered = session.fmt.render(view.train, view.test_input, key.transform(cand.grid))
            prompt_ids = session.ids(rendered.prompt)
            sequences.append(prompt_ids + session.ids(rendered.reply))
            starts.append(len(prompt_ids))
    nlls = batched_nll(session.model, sequences, starts) if sequences else []
    for k in range(len(keys)):
        for cand, nll in zip(candidates, nlls[k * len(candidates): (k + 1) * len(candidates)]):
            cand.scoring_nlls.append(float(nll))


# --------------------------------------------------------------------------------------------------
# Side by side


def current_candidates(dataset, task, test_index, session, config, rng) -> list[ScoredCandidate]:
    candidates, _ = candidates_for(dataset, task, test_index, session, with_options(config, aggregation=UNSCORED), rng,
                                   float("inf"))
    return candidates


IMPLEMENTATIONS = {
    "previous": (reference_candidates, reference_score),
    "current": (current_candidates, score_candidates),
}


class PassCounter(torch.nn.Module):
    """The session's model, counting forward passes and the rows of one-token passes: machine-independent
    figures beside the times, which other jobs on a shared CPU disturb."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.passes = self.one_token_passes = self.one_token_rows = 0

    def forward(self, **kwargs):
        ids = kwargs["input_ids"]
        self.passes += 1
        if ids.shape[1] == 1:
            self.one_token_passes += 1
            self.one_token_rows += ids.shape[0]
        return self.inner(**kwargs)


COPYING_SDPA = "sdpa_copying"  # transformers' SDPA under another name, which ``grouped_attention`` leaves alone


@contextmanager
def copying_attention(model: torch.nn.Module) -> Iterator[None]:
    """The model runs transformers' own SDPA attention throughout (keys and values copied per query head
    wherever a mask is given): the current decoders as they were before ``grouped_attention``."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(COPYING_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(COPYING_SDPA, sdpa_mask)
    with attention_implementation(model, COPYING_SDPA):
        yield


@contextmanager
def prompts_one_by_one() -> Iterator[None]:
    """Each prompt (decoding's and scoring's) in a pass of its own, as before prompts shared passes (no budget
    fits two)."""
    kept = inference_tools.PROMPT_PASS_TOKENS
    inference_tools.PROMPT_PASS_TOKENS = 0
    try:
        yield
    finally:
        inference_tools.PROMPT_PASS_TOKENS = kept


def run_one(name: str, dataset, task, index, session, config, previous: str = "reference",
            adapted: ModelSession | None = None) -> dict:
    """``adapted``: for --previous unfolded, the session whose model carries the test-time adapter."""
    if name == "previous" and previous == "copies":
        with copying_attention(session.model):
            return run_one("current", dataset, task, index, session, config)
    if name == "previous" and previous == "separate-prompts":
        with prompts_one_by_one():
            return run_one("current", dataset, task, index, session, config)
    if previous == "unfolded":
        with adapted.adapter_folded() if name == "current" else nullcontext(False) as folded:
            if folded != (name == "current"):
                raise RuntimeError(f"the test-time adapter is {'not ' * (not folded)}folded for the {name} run")
            return run_one("current", dataset, task, index, session, config)
    decode_fn, score_fn = IMPLEMENTATIONS[name]
    rng = np.random.default_rng(stable_seed(config.seed, task.task_id, index, "views"))
    counter = session.model
    counter.passes = counter.one_token_passes = counter.one_token_rows = 0
    start = time.perf_counter()
    candidates = decode_fn(dataset, task, index, session, config, rng)
    decoded = time.perf_counter()
    counts = {"passes": counter.passes, "one_token_passes": counter.one_token_passes,
              "one_token_rows": counter.one_token_rows}
    if candidates and config.scoring.views:
        score_fn(dataset, task, index, candidates, session, config, rng)
    scored = time.perf_counter()
    ranked = rank_candidates(candidates, config.scoring.aggregation) if candidates else []
    return {"decoding": decoded - start, "scoring": scored - decoded, "candidates": candidates,
            "attempts": [c.grid.tolist() for c in ranked[:2]], "decoding_counts": counts,
            "scoring_passes": counter.passes - counts["passes"]}


def prompt_passes(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession,
                  config: EvalConfig) -> float:
    """Seconds of the decoding views' prompt passes alone (one row each, the first pass of every DFS): the
    part of decoding that both implementations run."""
    rng = np.random.default_rng(stable_seed(config.seed, task.task_id, test_index, "views"))
    prompts = decoding_prompts(dataset, task, test_index, session, config, rng)
    start = time.perf_counter()
    with torch.no_grad():
        for _key, ids in prompts:
            _prompt_pass(session.model, ids)
    return time.perf_counter() - start


def agree(a: list[ScoredCandidate], b: list[ScoredCandidate]) -> dict:
    """Same candidates in the same order, and the largest NLL differences."""
    same = [c.grid.tolist() for c in a] == [c.grid.tolist() for c in b]
    gen = [abs(x - y) for p, q in zip(a, b) for x, y in zip(p.generation_nlls, q.generation_nlls)]
    score = [abs(x - y) for p, q in zip(a, b) for x, y in zip(p.scoring_nlls, q.scoring_nlls)]
    return {"same_candidates": same, "max_generation_nll_diff": max(gen, default=0.0),
            "max_scoring_nll_diff": max(score, default=0.0)}


def run(args: argparse.Namespace) -> dict:
    config = with_options(EvalConfig(), challenges=args.challenges, model=args.model,
                          adapter=resolve_adapter(args.adapter), format=args.format, max_tokens=args.max_tokens,
                          ttt=False, views=args.views, scoring_views=args.scoring_views, min_prob=args.min_prob,
                          bf16_passes=args.bf16_passes, seed=args.seed, progress=False, cache=False, report=False)
    base = session_for(config, smoke=args.smoke)

    def counted(session: ModelSession) -> ModelSession:
        """The session's model (nudged in the smoke run), counting its passes."""
        session = nudged_session(session) if args.smoke else session
        return session.with_model(PassCounter(session.model))

    session = counted(base)
    dataset, _counts = load_challenges(config)
    ttt_config = replace(config, ttt=SMOLLM2_PRESET.ttt)  # --previous unfolded: the preset's test-time training
    task_ids = select_tasks(dataset, args.tasks, session.fmt)
    print(f"{len(task_ids)} tasks; {args.views} views, {args.scoring_views} scoring views, DFS at "
          f"{args.min_prob:g}; bf16 passes {args.bf16_passes}; adapter {config.adapter or 'none'}; previous: "
          f"{args.previous}; {machine()}",
          flush=True)
    records = []
    began = time.perf_counter()
    for task_id in task_ids:
        task = dataset.tasks[task_id]
        if args.previous == "unfolded":
            base.remove_adapter()
            rng = np.random.default_rng(stable_seed(config.seed, task_id))
            test_time_train(dataset, task_id, base, ttt_config, rng)
            session = counted(base)
        for index in range(len(task.test)):
            order = ["previous", "current"] if len(records) % 2 == 0 else ["current", "previous"]
            runs = {name: run_one(name, dataset, task, index, session, config, args.previous, base) for name in order}
            floor = prompt_passes(dataset, task, index, session, config)
            old, new = runs["previous"], runs["current"]
            record = {"task_id": task_id, "test_index": index, "first": order[0],
                      "candidates": len(new["candidates"]), "prompt_passes": floor,
                      **{f"{stage}_{name}": runs[name][stage] for stage in ("decoding", "scoring") for name in runs},
                      **{f"{what}_{name}": runs[name]["decoding_counts"][what] for name in runs
                         for what in ("passes", "one_token_passes", "one_token_rows")},
                      **{f"scoring_passes_{name}": runs[name]["scoring_passes"] for name in runs},
                      **agree(old["candidates"], new["candidates"]),
                      "same_attempts": old["attempts"] == new["attempts"]}
            records.append(record)
            print(f"  {task_id} test {index}: {record['candidates']} candidates; decoding {old['decoding']:.2f} -> "
                  f"{new['decoding']:.2f} s (prompt passes alone {floor:.2f} s), scoring {old['scoring']:.2f} -> "
                  f"{new['scoring']:.2f} s; same "
                  f"candidates {record['same_candidates']}, attempts {record['same_attempts']}", flush=True)
    base.remove_adapter()
    return {"benchmark": "inference", "command": args.command, "machine": machine(), "config": options(config),
            "previous": args.previous,
            "tasks": task_ids, "seconds": time.perf_counter() - began, "records": records,
            "summary": summarize(records)}


def summarize(records: list[dict]) -> dict:
    """Medians per stage and their ratios; scoring over the test inputs that had candidates to score."""
    summary: dict = {"test_inputs": len(records), "scored": sum(r["candidates"] > 0 for r in records)}
    all_records = records
    for stage in ("decoding", "scoring", "total"):
        records = [r for r in all_records if r["candidates"] > 0] if stage == "scoring" else all_records
        def seconds(r: dict, name: str, stage: str = stage) -> float:
            if stage == "total":
                return r[f"decoding_{name}"] + r[f"scoring_{name}"]
            return r[f"{stage}_{name}"]

        old = statistics.median(seconds(r, "previous") for r in records) if records else 0.0
        new = statistics.median(seconds(r, "current") for r in records) if records else 0.0
        ratios = [seconds(r, "previous") / seconds(r, "current") for r in records if seconds(r, "current") > 0]
        summary[stage] = {"previous_median": old, "current_median": new, "ratio_of_medians": old / new if new else 0.0,
                          "median_ratio": statistics.median(ratios) if ratios else 0.0}
    records = all_records
    bounds = [(r["decoding_previous"] + r["scoring_previous"]) / r["prompt_passes"] for r in records
              if r.get("prompt_passes")]
    floor = statistics.median(r["prompt_passes"] for r in records) if bounds else 0.0
    summary["prompt_passes"] = {"median": floor, "bound_median_ratio": statistics.median(bounds) if bounds else 0.0,
                                "bound_ratio_of_medians": summary["total"]["previous_median"] / floor if floor else 0.0}
    for what in ("passes", "one_token_passes", "one_token_rows", "scoring_passes"):
        summary[what] = {name: sum(r[f"{what}_{name}"] for r in records) for name in ("previous", "current")}
    summary["same_candidates"] = sum(r["same_candidates"] for r in records)
    summary["same_attempts"] = sum(r["same_attempts"] for r in records)
    summary["max_generation_nll_diff"] = max((r["max_generation_nll_diff"] for r in records), default=0.0)
    summary["max_scoring_nll_diff"] = max((r["max_scoring_nll_diff"] for r in records), default=0.0)
    return summary


def print_table(result: dict) -> None:
    s = result["summary"]
    print(f"\n{'stage':<10} {'previous (median s)':>20} {'current (median s)':>19} {'ratio of medians':>17} "
          f"{'median ratio':>13}")
    for stage in ("decoding", "scoring", "total"):
        row = s[stage]
        print(f"{stage:<10} {row['previous_median']:>20.2f} {row['current_median']:>19.2f} "
              f"{row['ratio_of_medians']:>16.2f}x {row['median_ratio']:>12.2f}x")
    n = s["test_inputs"]
    floor = s["prompt_passes"]
    print(f"{'prompts':<10} {'':>20} {floor['median']:>19.2f} {floor['bound_ratio_of_medians']:>16.2f}x "
          f"{floor['bound_median_ratio']:>12.2f}x   (the decoding views' prompt passes alone: the bound)")
    print(f"scoring over the {s['scored']} test inputs with candidates; decoding passes (one-token passes, their "
          f"rows) previous {s['passes']['previous']} ({s['one_token_passes']['previous']}, "
          f"{s['one_token_rows']['previous']}), current {s['passes']['current']} ({s['one_token_passes']['current']}, "
          f"{s['one_token_rows']['current']}); scoring passes previous {s['scoring_passes']['previous']}, current "
          f"{s['scoring_passes']['current']}")
    print(f"same candidates {s['same_candidates']}/{n}, same attempts {s['same_attempts']}/{n}; largest NLL "
          f"difference: generation {s['max_generation_nll_diff']:.1e}, scoring {s['max_scoring_nll_diff']:.1e}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--challenges", default="input/arc-agi_evaluation_challenges.json")
    parser.add_argument("--tasks", default="6", help="a count N (the N shortest renderings) or ids joined by commas")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default="auto", help="'auto': models/smollm2-arc/adapter when present; '' none")
    parser.add_argument("--format", default="architects", type=checked(format_from_spec))
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--scoring-views", type=int, default=8)
    parser.add_argument("--min-prob", type=float, default=0.1, help="DFS threshold")
    parser.add_argument("--bf16-passes", default="no", choices=["auto", "yes", "no"],
                        help="the current implementation's bfloat16 prompt and scoring passes (the previous one "
                             "runs in the model's own format): 'no' compares float32 with float32")
    parser.add_argument("--previous", default="reference", choices=["reference", "copies", "unfolded",
                                                                     "separate-prompts"],
                        help="what the current implementation is compared with: 'reference', the previous "
                             "decoders and scoring (above); 'copies', the current ones with transformers' own "
                             "SDPA attention, which copies keys and values per query head where a mask is given; "
                             "'unfolded', the current ones after test-time training with the adapter left unfolded; "
                             "'separate-prompts', the current ones with each prompt (decoding and scoring) in a pass "
                             "of its own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--out", default=str(RESULTS / "inference.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny random model, 2 tasks, tiny settings")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.views, args.scoring_views, args.adapter, args.min_prob = "2", 2, 2, "", SMOKE_MIN_PROB
    args.command = " ".join([".venv/bin/python -m benchmarks.bench_inference",
                             *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    result = run(args)
    save(result, Path(args.out))
    print_table(result)
    print(f"\n{args.out} written ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
