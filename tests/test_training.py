"""Tests of the training routine: schedule, data feed, learning, checkpoints and resume, test-time training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training_code import model_tools, training
from training_code.arc_loader import ArcDataset, DataPart, Key
from training_code.formats import format_from_spec
from training_code.inference_tools import greedy_decode
from training_code.training import (
    TrainConfig,
    batches,
    held_out_metrics,
    leave_one_out_views,
    length_grouped,
    lr_factor,
    train,
    use_bf16,
)

FMT = format_from_spec("architects")


def colour_swap_task(task_id: str = "swap", n_train: int = 4, seed: int = 0) -> dict:
    """A task whose rule is 'colour 1 <-> colour 2' on small grids."""
    rng = np.random.default_rng(seed)

    def pair():
        grid = rng.choice([1, 2], size=(2, 2))
        return {"input": grid.tolist(), "output": (3 - grid).tolist()}

    train_pairs = [pair() for _ in range(n_train)]
    test = pair()
    return {"train": train_pairs, "test": [{"input": test["input"], "output": test["output"]}]}


def dataset(tmp_path, tasks: dict) -> ArcDataset:
    path = tmp_path / "challenges.json"
    path.write_text(json.dumps(tasks))
    return ArcDataset.from_kaggle(path)


def tiny(seed: int = 0):
    loaded = model_tools.build_tiny_model(FMT.alphabet, seed=seed, hidden_size=48, layers=2, heads=4)
    return loaded


def collator(loaded):
    return model_tools.MaskingCollator(loaded.tokenizer, add_special_tokens=False)


def test_learning_rate_warms_up_then_decays_by_cosine():
    factors = [lr_factor(s, 100, 0.25, 0.0) for s in range(100)]
    assert factors[0] == pytest.approx(1 / 25) and factors[24] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:25], factors[1:25]))  # rising during warmup
    assert all(a >= b for a, b in zip(factors[25:], factors[26:]))  # falling after
    assert factors[62] == pytest.approx(0.5, abs=0.03)  # half way through the decay
    assert lr_factor(99, 100, 0.25, 0.1) > 0.1 - 1e-9


def test_batches_depend_only_on_seed_and_step(tmp_path):
    ds = dataset(tmp_path, {f"t{i}": colour_swap_task(f"t{i}", seed=i) for i in range(5)})
    config = TrainConfig(batch_size=2, grad_accumulation=2, seed=3)
    fresh = batches([DataPart(ds)], FMT, config)
    first_four = [[r.text for r in next(fresh)] for _ in range(8)]  # 4 steps x 2 micro-batches
    resumed = batches([DataPart(ds)], FMT, config, start_step=2)
    assert [[r.text for r in next(resumed)] for _ in range(4)] == first_four[4:]
    other = batches([DataPart(ds)], FMT, TrainConfig(batch_size=2, grad_accumulation=2, seed=4))
    assert [[r.text for r in next(other)] for _ in range(2)] != first_four[:2]


def test_weighted_parts_and_prompt_versions(tmp_path):
    a = dataset(tmp_path, {"a": colour_swap_task()})
    (tmp_path / "b").mkdir()
    b = dataset(tmp_path / "b", {"b": colour_swap_task(seed=1)})
    config = TrainConfig(batch_size=50, seed=0)
    drawn = next(batches([DataPart(a, "output-from-examples", 3.0), DataPart(b, "input-from-inputs", 1.0)], FMT,
                         config))
    from_b = sum("+/-=O" not in r.text for r in drawn)  # input-from-inputs renders no output markers
    assert 4 <= from_b <= 22  # expected 12.5 of 50


def test_views_too_long_drop_examples_to_fit(tmp_path):
    ds = dataset(tmp_path, {"t": colour_swap_task(n_train=6)})
    full = len(ds.render(Key("t", 0), FMT).text)
    config = TrainConfig(batch_size=4, max_length=full - 20, on_the_fly=False)
    for rendered in next(batches([DataPart(ds)], FMT, config, count_tokens=len)):
        assert len(rendered.text) <= full - 20
    with pytest.raises(ValueError, match="no view fits"):
        next(batches([DataPart(ds)], FMT, TrainConfig(max_length=10), count_tokens=len))


def test_training_lowers_the_loss_and_resumes_exactly_after_a_kill(tmp_path):
    ds = dataset(tmp_path, {"swap": colour_swap_task()})
    config = TrainConfig(learning_rate=3e-3, embedding_learning_rate=3e-3, max_steps=8, batch_size=2, seed=1,
                         warmup_ratio=0.1, progress=False, checkpoint_every=4)

    def fresh_model():
        loaded = tiny()
        return loaded, model_tools.add_lora(loaded.model, r=8, alpha=16, seed=0)

    loaded, model = fresh_model()
    before = held_out_metrics(model, collator(loaded), ds, FMT)["loss"]
    whole = train(model, collator(loaded), ds, FMT, config, checkpoint_dir=tmp_path / "whole")
    after = held_out_metrics(model, collator(loaded), ds, FMT)["loss"]
    assert after < before - 0.1
    assert whole.steps == 8 and len(whole.losses) == 8 and whole.tokens > 0

    # a kill during step 5 (after the step-4 checkpoint), then a new process that resumes from the checkpoint
    loaded2, model2 = fresh_model()
    calls = {"n": 0}
    base_collate = collator(loaded2)

    def dying_collate(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return base_collate(batch)

    with pytest.raises(KeyboardInterrupt):
        train(model2, dying_collate, ds, FMT, config, checkpoint_dir=tmp_path / "killed")
    loaded3, model3 = fresh_model()
    resumed = train(model3, collator(loaded3), ds, FMT, config, checkpoint_dir=tmp_path / "killed")
    assert resumed.steps == 4 and len(resumed.losses) == 8
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-4, abs=1e-5)
    for (name, p_whole), (_, p_resumed) in zip(model.named_parameters(), model3.named_parameters()):
        if p_whole.requires_grad:
            assert torch.allclose(p_whole, p_resumed, atol=1e-5), name


def test_training_leaves_the_global_random_state_alone(tmp_path):
    ds = dataset(tmp_path, {"swap": colour_swap_task()})
    loaded = tiny()
    model = model_tools.add_lora(loaded.model, r=4, alpha=8, dropout=0.1, seed=0)
    state = torch.random.get_rng_state()
    train(model, collator(loaded), ds, FMT, TrainConfig(max_steps=2, batch_size=1, progress=False))
    assert torch.equal(state, torch.random.get_rng_state())


def test_leave_one_out_views_for_test_time_training(tmp_path):
    ds = dataset(tmp_path, {"swap": colour_swap_task(n_train=3), "other": colour_swap_task(seed=5)})
    views = leave_one_out_views(ds, ["swap"], np.random.default_rng(0), views=4)
    assert sorted(views.tasks) == ["swap-loo0", "swap-loo1", "swap-loo2"]
    assert len(views.keys) == 3 * 4
    assert sum(k == Key(k.task_id, 0) for k in views.keys) == 3  # the identity view of each is kept


@pytest.mark.slow
def test_test_time_training_turns_a_wrong_greedy_answer_into_the_right_one(tmp_path):
    """SmolLM2 answers a colour-swap task wrongly; after test-time training on the task's own examples
    (leave-one-out, 8 views each, 40 steps) its greedy answer is right. About two minutes on 2 cores."""
    tasks = {"swap": colour_swap_task(n_train=5, seed=11)}
    ds = dataset(tmp_path, tasks)
    loaded = model_tools.load_model("smollm2-135m")
    fmt = format_from_spec("architects", eos=loaded.tokenizer.eos_token)
    loaded, _ = model_tools.shrink_for_format(loaded, fmt)
    truth = np.array(tasks["swap"]["test"][0]["output"])

    def greedy_answer(model):
        prompt = ds.render(Key("swap", 0), fmt, with_reply=False).prompt
        ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        texts = [loaded.tokenizer.decode([i]) for i in range(len(loaded.tokenizer))]
        found = greedy_decode(model, ids, eos_id=loaded.tokenizer.eos_token_id, token_texts=texts,
                              checker=fmt.reply_checker())
        return fmt.parse_reply(found[0].text) if found else None

    before = greedy_answer(loaded.model)
    assert before is None or not np.array_equal(before, truth)
    model = model_tools.add_lora(loaded.model, r=16, alpha=32, seed=0)
    data = leave_one_out_views(ds, ["swap"], np.random.default_rng(0), views=8)
    result = train(model, collator(loaded), data, fmt,
                   TrainConfig(learning_rate=1e-3, embedding_learning_rate=1e-3, max_steps=40, batch_size=4,
                               warmup_ratio=0.1, progress=False))
    assert result.losses[-1] < result.losses[0] / 4
    after = greedy_answer(model)
    assert after is not None and np.array_equal(after, truth)


def sized_task(size: int, seed: int) -> dict:
    """A colour-swap task on size x size grids (tasks of different sizes give views of different lengths)."""
    rng = np.random.default_rng(seed)

    def pair():
        grid = rng.choice([1, 2], size=(size, size))
        return {"input": grid.tolist(), "output": (3 - grid).tolist()}

    test = pair()
    return {"train": [pair() for _ in range(2)], "test": [test]}


def test_length_grouping_keeps_every_sequence_and_sorts_them():
    texts = ["aaaa", "a", "aaaaaa", "aa", "aaa", "aaaaa"]
    rendered = [type("R", (), {"text": t})() for t in texts]
    grouped = length_grouped([rendered[:2], rendered[2:4], rendered[4:]], batch_size=2)
    assert [[len(r.text) for r in batch] for batch in grouped] == [[1, 2], [3, 4], [5, 6]]
    assert sorted(id(r) for b in grouped for r in b) == sorted(id(r) for r in rendered)


def test_grouping_by_length_pads_less_and_gives_the_same_step_loss(tmp_path):
    # drawn in id order a, b, c, d: long, short, long, short, so the drawn micro-batches mix lengths
    ds = dataset(tmp_path, {name: sized_task(size, size) for name, size in zip("abcd", (6, 1, 5, 2))})
    results = {}
    for group in (False, True):
        loaded = tiny()
        model = model_tools.add_lora(loaded.model, r=4, alpha=8, seed=0)
        config = TrainConfig(max_steps=2, batch_size=2, grad_accumulation=2, on_the_fly=False, progress=False,
                             bf16="no", group_by_length=group, learning_rate=1e-3)
        results[group] = train(model, collator(loaded), ds, FMT, config)
    assert results[True].tokens == results[False].tokens
    assert results[True].padded_tokens < results[False].padded_tokens
    # the step loss is the mean over all output tokens of the step, however the micro-batches are cut
    assert results[True].losses == pytest.approx(results[False].losses, abs=1e-5)


def test_gradient_checkpointing_gives_the_same_losses_and_is_off_again_after_training(tmp_path):
    ds = dataset(tmp_path, {name: sized_task(size, size) for name, size in zip("abcd", (6, 1, 5, 2))})
    results, models = {}, {}
    for checkpointing in (False, True):
        loaded = tiny()
        model = model_tools.add_lora(loaded.model, r=4, alpha=8, seed=0)
        config = TrainConfig(max_steps=3, batch_size=2, on_the_fly=False, progress=False, bf16="no",
                             learning_rate=1e-3, gradient_checkpointing=checkpointing)
        results[checkpointing], models[checkpointing] = train(model, collator(loaded), ds, FMT, config), model
    assert results[True].losses == pytest.approx(results[False].losses, abs=1e-5)
    # the next training (test-time training of the next task) starts without it unless it asks again
    model = models[True]
    assert not model.base_model.model.is_gradient_checkpointing
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    assert not hasattr(model.base_model.model, "_require_grads_hook")


def test_bf16_is_forced_by_the_config_or_follows_the_processor(monkeypatch):
    cpu = torch.device("cpu")
    assert use_bf16(TrainConfig(bf16="yes"), cpu) and not use_bf16(TrainConfig(bf16="no"), cpu)
    monkeypatch.setattr(training, "cpu_computes_bf16", lambda: True)
    assert use_bf16(TrainConfig(), cpu)
    monkeypatch.setattr(training, "cpu_computes_bf16", lambda: False)
    assert not use_bf16(TrainConfig(), cpu)
    with pytest.raises(ValueError, match="bf16 must be auto, yes or no"):
        use_bf16(TrainConfig(bf16="maybe"), cpu)


def models_own_loss(model, collate, ds: ArcDataset) -> float:
    """Mean loss per output token over the dataset's keys, from the model's own loss of each sequence (the
    mean over its labelled tokens) weighted by its labelled tokens."""
    total, tokens = 0.0, 0
    with torch.no_grad():
        for key in ds.keys:
            batch = collate([ds.render(key, FMT)])
            count = int((batch["labels"][:, 1:] != model_tools.IGNORE_INDEX).sum())
            total += float(model(**batch).loss) * count
            tokens += count
    return total / tokens


def test_held_out_accuracy_is_greedy_success_and_loss_matches_the_models_own(tmp_path):
    tasks = {"swap": colour_swap_task(n_train=2, seed=3)}
    ds = dataset(tmp_path, tasks)
    loaded = tiny()
    model = model_tools.add_lora(loaded.model, r=8, alpha=16, seed=0)
    untrained = held_out_metrics(model, collator(loaded), ds, FMT)
    assert untrained["accuracy"] == 0.0
    assert untrained["loss"] == pytest.approx(models_own_loss(model, collator(loaded), ds), rel=1e-5)
    # learn the one task by heart: greedy decoding then writes its test output, and the accuracy says so
    train(model, collator(loaded), ds, FMT, TrainConfig(learning_rate=1e-2, embedding_learning_rate=1e-2,
                                                        max_steps=60, batch_size=2, on_the_fly=False,
                                                        warmup_ratio=0.05, progress=False, bf16="no"))
    prompt = ds.render(Key("swap", 0), FMT, with_reply=False).prompt
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    texts = [loaded.tokenizer.decode([i]) for i in range(len(loaded.tokenizer))]
    found = greedy_decode(model, ids, eos_id=loaded.tokenizer.eos_token_id, token_texts=texts,
                          checker=FMT.reply_checker())
    truth = np.array(tasks["swap"]["test"][0]["output"])
    assert found and np.array_equal(FMT.parse_reply(found[0].text), truth)
    assert held_out_metrics(model, collator(loaded), ds, FMT)["accuracy"] == 1.0
    # the same model judged against another test output: not right
    wrong = {"swap": {**tasks["swap"], "test": [{"input": tasks["swap"]["test"][0]["input"],
                                                  "output": (3 - truth).tolist()}]}}
    (tmp_path / "wrong").mkdir()
    assert held_out_metrics(model, collator(loaded), dataset(tmp_path / "wrong", wrong), FMT)["accuracy"] == 0.0


def test_evaluations_run_on_schedule_survive_a_resume_and_checkpoints_call_back(tmp_path):
    ds = dataset(tmp_path, {"swap": colour_swap_task()})
    loaded = tiny()
    model = model_tools.add_lora(loaded.model, r=4, alpha=8, seed=0)
    calls, saved = [], []

    def evaluate():
        calls.append(len(calls))
        return {"calls": len(calls)}

    def on_checkpoint(step, losses, evaluations):
        saved.append((step, len(losses), [e["step"] for e in evaluations]))

    config = TrainConfig(max_steps=4, batch_size=1, progress=False, evaluate_every=2, checkpoint_every=2)
    first = train(model, collator(loaded), ds, FMT, config, checkpoint_dir=tmp_path / "ckpt", evaluate=evaluate,
                  on_checkpoint=on_checkpoint)
    assert [e["step"] for e in first.evaluations] == [0, 2, 4]
    assert saved == [(2, 2, [0, 2])]  # the end of the run is its caller's to save
    longer = TrainConfig(max_steps=6, batch_size=1, progress=False, evaluate_every=2, checkpoint_every=2)
    resumed = train(model, collator(loaded), ds, FMT, longer, checkpoint_dir=tmp_path / "ckpt", evaluate=evaluate)
    assert [e["step"] for e in resumed.evaluations] == [0, 2, 4, 6] and len(calls) == 4


def test_a_run_can_start_at_a_later_step_without_a_checkpoint(tmp_path):
    ds = dataset(tmp_path, {f"t{i}": colour_swap_task(seed=i) for i in range(3)})
    loaded = tiny()
    model = model_tools.add_lora(loaded.model, r=4, alpha=8, seed=0)
    result = train(model, collator(loaded), ds, FMT, TrainConfig(max_steps=5, first_step=3, batch_size=1,
                                                                  progress=False))
    assert result.steps == 2 and len(result.losses) == 2
    with pytest.raises(ValueError, match="first_step 6 must lie between 0 and max_steps 5"):
        train(model, collator(loaded), ds, FMT, TrainConfig(max_steps=5, first_step=6, progress=False))
