"""Tests of the decoders and of batched_nll on a tiny randomly initialised Llama.

The key check compares the DFS with a brute force: every checker-valid reply of a small grid
alphabet is enumerated and scored by a full forward pass without a cache; the DFS must return
exactly those above its threshold, with the same NLLs.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Hashable, Sequence

import numpy as np
import pytest
import torch
from pipeline_data import needs_smollm2
from transformers import LlamaConfig, LlamaForCausalLM

from training_code import inference_tools
from training_code import model_tools as mt
from training_code.formats import ArchitectsFormat, RowsChecker
from training_code.grids import MAX_SIDE
from training_code.inference_tools import (
    DECODERS,
    MAX_REPLY_TOKENS,
    Candidate,
    DecodeOptions,
    StageFormats,
    _crop_cache,
    _extend,
    _prompt_pass,
    batched_nll,
    cpu_computes_bf16,
    decode,
    dfs_decode,
    dfs_decode_many,
    greedy_decode,
    reply_nlls,
    reply_nlls_many,
    sample_decode,
    stage_formats,
    torch_generator,
)

TEXTS = ["0", "1", "2", "\n", "</s>", "I", "O", "<s>"]
EOS = TEXTS.index("</s>")
IDS = {text: i for i, text in enumerate(TEXTS)}
PROMPT = [IDS[t] for t in ["<s>", "I", "0", "1", "\n", "1", "0", "\n", "O"]]


def tiny_model(seed: int, head_scale: float = 4.0) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32 over TEXTS. The output head is scaled up so that the
    distributions are peaky and a handful of replies carry most of the probability."""
    config = LlamaConfig(
        vocab_size=len(TEXTS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=IDS["<s>"],
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    # fork_rng: the default initialisers draw from the global generator; keep it untouched
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    return model.eval()


class Biased(torch.nn.Module):
    """A model wrapper that adds a fixed bias to the logits (to push the model toward bad tokens)."""

    def __init__(self, inner: torch.nn.Module, bias: dict[int, float]):
        super().__init__()
        self.inner = inner
        self.bias = torch.zeros(len(TEXTS))
        for token, value in bias.items():
            self.bias[token] = value

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits + self.bias
        return out


class Recorder(torch.nn.Module):
    """A model wrapper that records the input ids of every call."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[list[int]] = []

    def forward(self, **kwargs):
        self.calls.append(kwargs["input_ids"][0].tolist())
        return self.inner(**kwargs)


def full_nll(model: torch.nn.Module, prompt: Sequence[int], reply: Sequence[int]) -> float:
    """NLL of ``reply`` after ``prompt`` by one forward pass over the whole sequence, no cache."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([list(prompt) + list(reply)])).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -sum(float(log_probs[len(prompt) - 1 + j, token]) for j, token in enumerate(reply))


def valid_replies(checker: RowsChecker, max_tokens: int) -> list[tuple[int, ...]]:
    """Every token sequence (end token excluded) of at most ``max_tokens - 1`` tokens that the
    checker accepts and lets end, by plain enumeration over the whole vocabulary."""
    found: list[tuple[int, ...]] = []
    frontier: list[tuple[tuple[int, ...], Hashable]] = [((), checker.start())]
    while frontier:
        tokens, state = frontier.pop()
        if checker.can_end(state):
            found.append(tokens)
        if len(tokens) + 2 > max_tokens:
            continue
        for token, text in enumerate(TEXTS):
            if token == EOS:
                continue
            nxt = checker.step(state, text)
            if nxt is not None:
                frontier.append((tokens + (token,), nxt))
    return found


def brute_force(model, checker, max_tokens=MAX_REPLY_TOKENS) -> dict[tuple[int, ...], float]:
    """The NLL of every valid reply, by full forward passes without a cache; replies of one length
    go in one batch (no padding, so nothing here depends on the padding logic under test)."""
    by_length: dict[int, list[tuple[int, ...]]] = {}
    for tokens in valid_replies(checker, max_tokens):
        by_length.setdefault(len(tokens), []).append(tokens)
    nlls = {}
    for replies in by_length.values():
        ids = torch.tensor([[*PROMPT, *tokens, EOS] for tokens in replies])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
        start = len(PROMPT)
        targets = ids[:, start:]
        token_nll = -log_probs[:, start - 1 : -1].gather(2, targets[:, :, None])[:, :, 0]
        for tokens, nll in zip(replies, token_nll.double().sum(dim=1).tolist(), strict=True):
            nlls[tokens] = nll
    return nlls


def is_complete_grid(checker: RowsChecker, text: str) -> bool:
    state = checker.start()
    state = checker.step(state, text) if text else state
    return state is not None and checker.can_end(state)


def masked_argmax_path(model, checker, max_tokens=MAX_REPLY_TOKENS) -> tuple[int, ...] | None:
    """Greedy decoding written the slow way: full forward each step, allowed tokens from the checker."""
    tokens: list[int] = []
    state = checker.start()
    while len(tokens) < max_tokens:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([PROMPT + tokens])).logits[0, -1]
        allowed = {EOS} if checker.can_end(state) else set()
        if len(tokens) + 2 <= max_tokens:
            allowed |= {t for t, text in enumerate(TEXTS) if t != EOS and checker.step(state, text) is not None}
        if not allowed:
            return None
        token = max(allowed, key=lambda t: (float(logits[t]), -t))
        if token == EOS:
            return tuple(tokens)
        tokens.append(token)
        state = checker.step(state, TEXTS[token])
    return None


def kwargs(checker) -> dict:
    return {"eos_id": EOS, "token_texts": TEXTS, "checker": checker}


# ---------------------------------------------------------------------------------------------
# DFS


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_dfs_finds_exactly_the_replies_above_the_threshold(seed):
    model = tiny_model(seed)
    checker = RowsChecker(cells="012", max_side=2)  # 102 grids: 3 + 9 + 9 + 81
    truth = brute_force(model, checker)
    assert len(truth) == 102
    ranked = sorted(truth.values())
    # a threshold midway between two well separated NLLs, so float noise cannot flip a reply
    k = next(k for k in range(4, 30) if ranked[k] - ranked[k - 1] > 1e-3)
    min_prob = math.exp(-(ranked[k - 1] + ranked[k]) / 2)
    found = dfs_decode(model, PROMPT, min_prob=min_prob, **kwargs(checker))
    assert len(found) == k
    assert {c.tokens for c in found} == {t for t, nll in truth.items() if nll <= ranked[k - 1]}
    for c in found:
        assert c.nll == pytest.approx(truth[c.tokens], abs=1e-4)
        assert c.text == "".join(TEXTS[t] for t in c.tokens)
        assert is_complete_grid(checker, c.text)
    assert [c.nll for c in found] == sorted(c.nll for c in found)


@pytest.mark.parametrize("seed", [1, 5, 7])
def test_dfs_with_a_fixed_threshold_on_taller_grids(seed):
    model = tiny_model(seed, head_scale=5.0)
    checker = RowsChecker(cells="01", max_side=3)  # 682 grids up to 3x3
    truth = brute_force(model, checker)
    # 0.002: an untrained model spreads its mass over non-grid tokens, so its best grids have
    # probabilities of about 0.5%; this keeps two to four of them
    min_prob = 0.002
    threshold = -math.log(min_prob)
    found = {c.tokens: c.nll for c in dfs_decode(model, PROMPT, min_prob=min_prob, **kwargs(checker))}
    assert len(found) >= 2
    # replies within 1e-4 of the threshold may fall either way: float noise of cache vs no cache
    sure = {t for t, nll in truth.items() if nll < threshold - 1e-4}
    maybe = {t for t, nll in truth.items() if nll <= threshold + 1e-4}
    assert sure <= set(found) <= maybe
    for tokens, nll in found.items():
        assert nll == pytest.approx(truth[tokens], abs=1e-4)


def test_dfs_follows_the_guess_first_without_changing_the_result():
    model = tiny_model(1)
    checker = RowsChecker(cells="012", max_side=2)
    plain = dfs_decode(model, PROMPT, min_prob=0.001, **kwargs(checker))
    assert len(plain) >= 3
    guess = plain[-1].tokens  # the least probable: not the path the search would take first
    recorder = Recorder(model)
    guided = dfs_decode(recorder, PROMPT, min_prob=0.001, guess=(*guess, EOS), **kwargs(checker))
    assert [(c.tokens, c.nll) for c in guided] == [(c.tokens, c.nll) for c in plain]
    # call 0 is the prompt; the next one-token calls walk down the guess
    assert [call[0] for call in recorder.calls[1 : 1 + len(guess)]] == list(guess)
    # a guess that is not a valid reply is followed as far as it is allowed, and changes nothing
    odd = dfs_decode(model, PROMPT, min_prob=0.001, guess=[IDS["I"], IDS["0"]], **kwargs(checker))
    assert [(c.tokens, c.nll) for c in odd] == [(c.tokens, c.nll) for c in plain]


def test_dfs_respects_max_new_tokens():
    model = tiny_model(2)
    checker = RowsChecker(cells="012", max_side=2)
    truth = brute_force(model, checker)
    for budget in (3, 5):  # 3: "d\n" + end, a 1x1 grid; 5: also 1x2 and 2x1 grids
        found = dfs_decode(model, PROMPT, min_prob=1e-4, max_new_tokens=budget, **kwargs(checker))
        expected = {t for t, nll in truth.items() if len(t) + 1 <= budget and nll <= -math.log(1e-4)}
        assert {c.tokens for c in found} == expected
    assert dfs_decode(model, PROMPT, min_prob=1e-4, max_new_tokens=2, **kwargs(checker)) == []


def test_decoders_end_only_after_a_complete_grid():
    # the end token is pushed hard; it must still wait for a finished row
    model = Biased(tiny_model(3), {EOS: 8.0})
    checker = RowsChecker(cells="012", max_side=3)
    found = dfs_decode(model, PROMPT, min_prob=1e-3, **kwargs(checker))
    found += greedy_decode(model, PROMPT, **kwargs(checker))
    found += sample_decode(model, PROMPT, n=16, generator=torch.Generator().manual_seed(0), **kwargs(checker))
    assert found
    for c in found:
        assert c.text.endswith("\n") and is_complete_grid(checker, c.text)


def test_nothing_allowed_gives_no_candidate():
    model = tiny_model(0)
    checker = RowsChecker(cells="", max_side=2)  # no cell is allowed, so no grid exists
    assert dfs_decode(model, PROMPT, min_prob=1e-6, **kwargs(checker)) == []
    assert greedy_decode(model, PROMPT, **kwargs(checker)) == []
    assert sample_decode(model, PROMPT, n=4, generator=torch.Generator().manual_seed(0), **kwargs(checker)) == []


def test_dfs_restores_train_mode_and_matches_eval():
    model = tiny_model(4)
    checker = RowsChecker(cells="012", max_side=2)
    expected = dfs_decode(model, PROMPT, min_prob=0.01, **kwargs(checker))
    model.train()
    assert dfs_decode(model, PROMPT, min_prob=0.01, **kwargs(checker)) == expected
    assert model.training


def test_cropped_cache_gives_the_logits_of_a_fresh_run():
    model = tiny_model(0)
    with torch.inference_mode():
        _, cache = _prompt_pass(model, PROMPT)
        for token in [IDS["0"], IDS["1"], IDS["\n"], IDS["2"]]:
            _extend(model, torch.tensor([token]), cache)
        assert cache.get_seq_length() == len(PROMPT) + 4
        _crop_cache(cache, len(PROMPT) + 1)  # back to the prompt + "0"
        assert cache.get_seq_length() == len(PROMPT) + 1
        cached = _extend(model, torch.tensor([IDS["2"]]), cache)[0]
        fresh = model(input_ids=torch.tensor([[*PROMPT, IDS["0"], IDS["2"]]])).logits[0, -1]
    torch.testing.assert_close(cached, fresh, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Greedy and sampling


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_is_the_masked_argmax_path(seed):
    model = tiny_model(seed)
    checker = RowsChecker(cells="012", max_side=3)
    (found,) = greedy_decode(model, PROMPT, **kwargs(checker))
    assert found.tokens == masked_argmax_path(model, checker)
    assert found.nll == pytest.approx(full_nll(model, PROMPT, (*found.tokens, EOS)), abs=1e-4)


def test_greedy_prunes_a_model_biased_toward_an_invalid_token():
    model = Biased(tiny_model(1), {IDS["I"]: 20.0})
    checker = RowsChecker(cells="012", max_side=3)
    with torch.no_grad():
        assert int(model(input_ids=torch.tensor([PROMPT])).logits[0, -1].argmax()) == IDS["I"]
    (found,) = greedy_decode(model, PROMPT, **kwargs(checker))
    assert is_complete_grid(checker, found.text)
    assert found.tokens == masked_argmax_path(model, checker)
    # the NLL counts the mass lost to "I": the full softmax, not the renormalised one
    assert found.nll > 15


def test_greedy_respects_max_new_tokens():
    model = tiny_model(2)
    checker = RowsChecker(cells="012", max_side=3)
    for budget in (1, 2, 3, 4, 7):
        found = greedy_decode(model, PROMPT, max_new_tokens=budget, **kwargs(checker))
        expected = masked_argmax_path(model, checker, max_tokens=budget)
        assert [c.tokens for c in found] == ([] if expected is None else [expected])
        assert all(len(c.tokens) + 1 <= budget for c in found)


def test_sampling_is_reproducible_and_scored_by_the_model():
    model = tiny_model(0)
    checker = RowsChecker(cells="012", max_side=3)

    def run(seed: int, batch_size: int | None = None) -> list[Candidate]:
        generator = torch.Generator().manual_seed(seed)
        return sample_decode(model, PROMPT, n=12, generator=generator, batch_size=batch_size, **kwargs(checker))

    first = run(7)
    assert first == run(7)
    assert first == run(7, batch_size=12)
    assert len({c.tokens for c in first}) == len(first) > 1
    assert [c.nll for c in first] == sorted(c.nll for c in first)
    scores = batched_nll(model, [PROMPT + [*c.tokens, EOS] for c in first], [len(PROMPT)] * len(first))
    for c, score in zip(first, scores, strict=True):
        assert is_complete_grid(checker, c.text)
        assert c.nll == pytest.approx(score, abs=1e-4)
    chunked = run(7, batch_size=5)  # 12 samples as 5 + 5 + 2 rows
    assert chunked == run(7, batch_size=5)
    scores = batched_nll(model, [PROMPT + [*c.tokens, EOS] for c in chunked], [len(PROMPT)] * len(chunked))
    assert [c.nll for c in chunked] == pytest.approx(scores, abs=1e-4)


def test_sampling_at_low_temperature_is_greedy():
    model = tiny_model(1)
    checker = RowsChecker(cells="012", max_side=3)
    greedy = greedy_decode(model, PROMPT, **kwargs(checker))
    cold = sample_decode(
        model, PROMPT, n=5, temperature=1e-4, generator=torch.Generator().manual_seed(3), **kwargs(checker)
    )
    assert [(c.tokens, round(c.nll, 4)) for c in cold] == [(c.tokens, round(c.nll, 4)) for c in greedy]


def test_torch_generator_comes_from_the_numpy_generator():
    a = torch_generator(np.random.default_rng(5))
    b = torch_generator(np.random.default_rng(5))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


# ---------------------------------------------------------------------------------------------
# Choosing by name


def test_decode_dispatches_by_name():
    model = tiny_model(2)
    checker = RowsChecker(cells="012", max_side=2)
    assert set(DECODERS) == {"dfs", "greedy", "sample"}
    dfs = decode(DecodeOptions("dfs", min_prob=0.05), model, PROMPT, **kwargs(checker))
    assert dfs == dfs_decode(model, PROMPT, min_prob=0.05, **kwargs(checker))
    greedy = decode(DecodeOptions("greedy"), model, PROMPT, guess=[0], **kwargs(checker))
    assert greedy == greedy_decode(model, PROMPT, **kwargs(checker))
    sample = decode(
        DecodeOptions("sample", n_samples=4),
        model,
        PROMPT,
        generator=torch.Generator().manual_seed(1),
        **kwargs(checker),
    )
    assert sample == sample_decode(model, PROMPT, n=4, generator=torch.Generator().manual_seed(1), **kwargs(checker))
    with pytest.raises(ValueError, match="generator"):
        decode(DecodeOptions("sample"), model, PROMPT, **kwargs(checker))
    with pytest.raises(ValueError, match="unknown decoder"):
        DecodeOptions("beam")
    with pytest.raises(ValueError, match="min_prob"):
        DecodeOptions("dfs", min_prob=0.0)


def test_default_budget_fits_the_largest_grid():
    assert MAX_REPLY_TOKENS == MAX_SIDE * (MAX_SIDE + 1) + 1 == 931


# ---------------------------------------------------------------------------------------------
# Scoring


def test_batched_nll_equals_one_sequence_at_a_time():
    model = tiny_model(3)
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, len(TEXTS), size=int(rng.integers(2, 20))).tolist() for _ in range(11)]
    starts = [int(rng.integers(1, len(s) + 1)) for s in sequences]
    expected = [
        full_nll(model, s[:start], s[start:]) if start < len(s) else 0.0
        for s, start in zip(sequences, starts, strict=True)
    ]
    for batch_size in (1, 3, 16):
        assert batched_nll(model, sequences, starts, batch_size=batch_size) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="reply start"):
        batched_nll(model, [[1, 2]], [0])


def test_batched_nll_equals_the_dfs_nll():
    model = tiny_model(4)
    checker = RowsChecker(cells="012", max_side=2)
    found = dfs_decode(model, PROMPT, min_prob=0.001, **kwargs(checker))
    assert len(found) >= 2
    scores = batched_nll(model, [PROMPT + [*c.tokens, EOS] for c in found], [len(PROMPT)] * len(found), batch_size=3)
    assert [c.nll for c in found] == pytest.approx(scores, abs=1e-4)


def test_reply_nlls_equal_batched_nll_for_replies_of_different_lengths():
    model = tiny_model(5)
    checker = RowsChecker(cells="012", max_side=3)
    found = dfs_decode(model, PROMPT, min_prob=1e-3, **kwargs(checker))
    rng = np.random.default_rng(1)
    # the decoded replies, a longer one than any of them (a program's larger grid), one token, and none
    replies = [[*c.tokens, EOS] for c in found] + [[IDS["1"]] * 12 + [EOS], [EOS], []]
    replies += [rng.integers(0, len(TEXTS), size=int(rng.integers(1, 9))).tolist() for _ in range(5)]
    expected = batched_nll(model, [PROMPT + r for r in replies], [len(PROMPT)] * len(replies))
    for batch_size in (1, 3, 16):
        got = reply_nlls(model, PROMPT, replies, batch_size=batch_size)
        assert got == pytest.approx(expected, abs=1e-4)
    assert got[len(found) + 2] == 0.0
    for c, nll in zip(found, got, strict=False):
        assert nll == pytest.approx(c.nll, abs=1e-4)
    assert reply_nlls(model, PROMPT, []) == []
    with pytest.raises(ValueError, match="batch_size"):
        reply_nlls(model, PROMPT, replies, batch_size=0)


def test_reply_nlls_of_many_prompts_share_prompt_passes_and_equal_one_prompt_at_a_time(monkeypatch):
    from training_code import inference_tools

    model = tiny_model(5)
    rng = np.random.default_rng(4)
    # prompts of different lengths (the shorter ones right-padded in the shared pass), replies of different
    # lengths, one prompt without replies, one whose replies are all empty
    prompts = [PROMPT, PROMPT[:-1] + [IDS["2"], IDS["1"], IDS["O"]], [IDS["<s>"], IDS["O"]], PROMPT, PROMPT[:4]]
    replies = [[rng.integers(0, len(TEXTS), size=int(rng.integers(1, 9))).tolist() for _ in range(n)]
               for n in (4, 3, 5, 0, 2)]
    replies[4] = [[], []]
    expected = [[float(x) for x in batched_nll(model, [p + r for r in rs], [len(p)] * len(rs))] if rs else []
                for p, rs in zip(prompts, replies)]
    counter = PassCounter(model)
    got = reply_nlls_many(counter, prompts, replies, batch_size=2)
    for want, have in zip(expected, got, strict=True):
        assert have == pytest.approx(want, abs=1e-4)
    assert got[4] == [0.0, 0.0]
    # one pass for the three prompts with replies, then the reply passes (2 + 2 + 3 rows in batches of 2)
    assert counter.shapes[0] == (3, max(len(p) for p in prompts[:3]))
    assert len(counter.shapes) == 1 + 2 + 2 + 3
    monkeypatch.setattr(inference_tools, "PROMPT_PASS_TOKENS", 0)  # every prompt alone
    alone = PassCounter(model)
    for want, have in zip(got, reply_nlls_many(alone, prompts, replies, batch_size=2), strict=True):
        assert have == pytest.approx(want, abs=1e-4)
    assert [shape[0] for shape in alone.shapes[:1]] == [1] and len(alone.shapes) == 3 + 2 + 2 + 3
    with pytest.raises(ValueError, match="2 prompts but 1"):
        reply_nlls_many(model, prompts[:2], replies[:1])


def test_reply_nlls_on_the_shared_tiny_model_restore_train_mode():
    loaded = mt.build_tiny_model("012\n", seed=3)
    model, eos = loaded.model, loaded.tokenizer.eos_token_id
    prompt = [0, 3, 4, 6, 5, 3, 6]
    replies = [[3, 6, eos], [4, 4, 6, 5, 5, 6, eos], [5, 3, 4, 3, 6, eos]]
    expected = batched_nll(model, [prompt + r for r in replies], [len(prompt)] * len(replies))
    model.train()
    assert reply_nlls(model, prompt, replies, batch_size=2) == pytest.approx(expected, abs=1e-4)
    assert model.training


def assert_same_candidates(reference: list[Candidate], got: list[Candidate]) -> None:
    assert [c.tokens for c in got] == [c.tokens for c in reference]
    assert [c.text for c in got] == [c.text for c in reference]
    assert [c.nll for c in got] == pytest.approx([c.nll for c in reference], abs=1e-4)


def test_dfs_decode_many_equals_dfs_decode_on_random_cases(monkeypatch):
    """Many searches at once, with and without guesses, give each search's one-row DFS result,
    including where the column cache must compact (a reserve of 2 columns) and drop finished rows."""
    rng = np.random.default_rng(0)
    cases = 0
    for case in range(24):
        monkeypatch.setattr(inference_tools, "_COLUMN_RESERVE", 2 if case % 2 else 64)
        model = tiny_model(int(rng.integers(100)), head_scale=float(rng.uniform(2, 6)))
        checker = RowsChecker(cells="012"[: int(rng.integers(2, 4))], max_side=int(rng.integers(2, 5)))
        prompts = [[IDS["<s>"], *rng.integers(0, len(TEXTS), size=int(rng.integers(1, 15))).tolist()]
                   for _ in range(int(rng.integers(1, 6)))]
        min_prob = float(10 ** rng.uniform(-4, -1.5))
        budget = int(rng.integers(3, 20)) if rng.random() < 0.3 else None
        reference = [dfs_decode(model, p, min_prob=min_prob, max_new_tokens=budget, **kwargs(checker))
                     for p in prompts]
        found = [c.tokens for r in reference for c in r]
        guesses = []
        for _ in prompts:
            roll = rng.random()
            if roll < 0.5 and found:  # another search's candidate
                guesses.append([*found[int(rng.integers(len(found)))], EOS])
            elif roll < 0.7:  # tokens that need not form a grid
                guesses.append(rng.integers(0, len(TEXTS), size=int(rng.integers(0, 8))).tolist())
            else:
                guesses.append(None)
        got = dfs_decode_many(model, prompts, min_prob=min_prob, max_new_tokens=budget, guesses=guesses,
                              rows=int(rng.integers(1, 6)), **kwargs(checker))
        assert len(got) == len(prompts)
        for ref, result in zip(reference, got, strict=True):
            assert_same_candidates(ref, result)
        cases += sum(map(len, reference))
    assert cases > 50  # the cases are not all empty searches


class PassCounter(torch.nn.Module):
    """A model wrapper that records the shape of every call's input ids."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, int]] = []
        self.first_ids: list[list[int]] = []

    def forward(self, **kwargs):
        self.shapes.append(tuple(kwargs["input_ids"].shape))
        self.first_ids.append(kwargs["input_ids"][0].tolist())
        return self.inner(**kwargs)


def test_dfs_decode_many_checks_a_guess_in_the_prompt_pass():
    model = tiny_model(1)
    checker = RowsChecker(cells="012", max_side=2)
    plain = dfs_decode(model, PROMPT, min_prob=0.001, **kwargs(checker))
    assert len(plain) >= 3
    guess = plain[-1].tokens  # the least probable: not the path the search would take first

    def run(guesses):
        counter = PassCounter(model)
        (found,) = dfs_decode_many(counter, [PROMPT], min_prob=0.001, guesses=guesses, **kwargs(checker))
        assert_same_candidates(plain, found)
        return counter

    unguided, guided = run(None), run([[*guess, EOS]])
    # the prompt and the whole guess go in the first pass; every node on the guess is then free
    assert guided.first_ids[0] == [*PROMPT, *guess]
    assert unguided.shapes[0] == (1, len(PROMPT))
    assert len(unguided.shapes) - len(guided.shapes) == len(guess)
    assert all(shape == (1, 1) for shape in guided.shapes[1:])


def test_dfs_decode_many_advances_all_searches_in_shared_passes():
    model = tiny_model(2)
    checker = RowsChecker(cells="012", max_side=2)
    prompts = [PROMPT, PROMPT[:-1] + [IDS["2"], IDS["O"]], [IDS["<s>"], IDS["O"]]]
    alone = [PassCounter(model) for _ in prompts]
    reference = [dfs_decode_many(c, [p], min_prob=0.002, **kwargs(checker))[0] for c, p in zip(alone, prompts)]
    together = PassCounter(model)
    found = dfs_decode_many(together, prompts, min_prob=0.002, **kwargs(checker))
    for ref, result in zip(reference, found, strict=True):
        assert_same_candidates(ref, result)
    # one prompt pass for all (right-padded to the longest), then shared one-token passes: as many as the
    # longest search needs
    assert together.shapes[0] == (len(prompts), max(len(p) for p in prompts))
    assert len(together.shapes) - 1 == max(len(c.shapes) - 1 for c in alone)
    assert max(shape[0] for shape in together.shapes) == len(prompts)
    assert found == dfs_decode_many(model, prompts, min_prob=0.002, **kwargs(checker))  # deterministic


def test_prompts_beyond_the_token_budget_of_a_pass_run_in_several(monkeypatch):
    from training_code import inference_tools

    model = tiny_model(2)
    checker = RowsChecker(cells="012", max_side=2)
    prompts = [PROMPT, PROMPT[:-1] + [IDS["2"], IDS["O"]], [IDS["<s>"], IDS["O"]]]
    shared = dfs_decode_many(model, prompts, min_prob=0.002, **kwargs(checker))
    monkeypatch.setattr(inference_tools, "PROMPT_PASS_TOKENS", 2 * len(prompts[1]))
    counter = PassCounter(model)
    found = dfs_decode_many(counter, prompts, min_prob=0.002, **kwargs(checker))
    for ref, result in zip(shared, found, strict=True):
        assert_same_candidates(ref, result)
    # the first two share a pass (2 x the longer), the third does not fit beside them
    assert counter.shapes[:2] == [(2, len(prompts[1])), (1, len(prompts[2]))]


def test_prompt_groups_keep_each_pass_within_its_budget():
    from training_code.inference_tools import _prompt_groups

    assert _prompt_groups([200, 210, 190, 215], 2048) == [[0, 1, 2, 3]]
    assert _prompt_groups([900, 1000, 800, 3000, 100], 2048) == [[0, 1], [2], [3], [4]]
    assert _prompt_groups([], 2048) == []


def test_dfs_decode_many_validates_its_arguments():
    model = tiny_model(0)
    checker = RowsChecker(cells="012", max_side=2)
    with pytest.raises(ValueError, match="min_prob"):
        dfs_decode_many(model, [PROMPT], min_prob=0.0, **kwargs(checker))
    with pytest.raises(ValueError, match="guesses"):
        dfs_decode_many(model, [PROMPT], guesses=[None, None], **kwargs(checker))
    with pytest.raises(ValueError, match="prompt"):
        dfs_decode_many(model, [[]], **kwargs(checker))
    assert dfs_decode_many(model, [], **kwargs(checker)) == []


def test_stage_formats_by_choice_and_device():
    assert stage_formats("no", "cpu") == StageFormats(None, None)
    assert stage_formats("yes", "cpu") == StageFormats(torch.bfloat16, torch.bfloat16)
    assert stage_formats("auto", "cpu") == stage_formats("yes" if cpu_computes_bf16() else "no", "cpu")
    with pytest.raises(ValueError, match="auto, yes or no"):
        stage_formats("bf16", "cpu")


def test_bf16_prompt_and_scoring_passes_stay_near_float32():
    model = tiny_model(5)
    checker = RowsChecker(cells="012", max_side=3)
    found = dfs_decode(model, PROMPT, min_prob=1e-3, **kwargs(checker))
    replies = [[*c.tokens, EOS] for c in found]
    exact = reply_nlls(model, PROMPT, replies)
    assert reply_nlls(model, PROMPT, replies, dtype=torch.float32) == exact  # the model's own: no autocast
    assert reply_nlls(model, PROMPT, replies, dtype=torch.bfloat16) == pytest.approx(exact, rel=0.05)
    (bf16,) = dfs_decode_many(model, [PROMPT], min_prob=1e-3, prompt_dtype=torch.bfloat16, **kwargs(checker))
    assert [bf16] == dfs_decode_many(model, [PROMPT], min_prob=1e-3, prompt_dtype=torch.bfloat16, **kwargs(checker))
    shared = {c.tokens: c.nll for c in found}
    assert any(c.tokens in shared for c in bf16)
    for c in bf16:
        if c.tokens in shared:
            assert c.nll == pytest.approx(shared[c.tokens], rel=0.05)


def quantized_4bit(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every linear layer but the head replaced by a bitsandbytes 4-bit (nf4) layer."""
    import bitsandbytes as bnb

    for name, child in model.named_children():
        if isinstance(child, torch.nn.Linear) and name != "lm_head":
            layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.float32, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False, quant_type="nf4").to("cpu")
            setattr(model, name, layer)
        else:
            quantized_4bit(child)
    return model


def test_prompt_once_scoring_and_batched_dfs_on_4bit_weights():
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed: the 4-bit path cannot be built")
    # 128: bitsandbytes' CPU kernels need the layer widths to be multiples of their block size
    loaded = mt.build_tiny_model("012\n", seed=4, hidden_size=128)
    model, eos = quantized_4bit(loaded.model), loaded.tokenizer.eos_token_id
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.uint8
    texts = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
    texts = [t if t in "012\n" else ("" if i != eos else t) for i, t in enumerate(texts)]
    checker = RowsChecker(cells="012", max_side=2)
    prompts = [[0, 3, 4, 6, 5, 3, 6], [0, 5, 5, 6, 4, 6]]
    args = {"eos_id": eos, "token_texts": texts, "checker": checker, "min_prob": 1e-3}
    reference = [dfs_decode(model, p, **args) for p in prompts]
    assert any(reference)
    for ref, result in zip(reference, dfs_decode_many(model, prompts, **args), strict=True):
        assert_same_candidates(ref, result)
    replies = [[*c.tokens, eos] for c in reference[0]] + [[3, 4, 6, 3, 4, 6, 3, 4, 6, eos]]
    expected = batched_nll(model, [prompts[0] + r for r in replies], [len(prompts[0])] * len(replies))
    assert reply_nlls(model, prompts[0], replies) == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# SmolLM2 (slow)




@pytest.fixture(scope="module")
def smol_arc():
    loaded = mt.load_model(mt.SMOLLM2_NAME, backend="transformers", dtype="float32")
    fmt = ArchitectsFormat(eos=loaded.tokenizer.eos_token)
    shrunk, _mapping = mt.shrink_for_format(loaded, fmt)
    return fmt, shrunk


@pytest.mark.slow
@needs_smollm2
def test_smollm2_prompt_once_scoring_and_batched_dfs(smol_arc):
    fmt, loaded = smol_arc
    tokenizer, model = loaded.tokenizer, loaded.model

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    rng = np.random.default_rng(0)
    # candidates of three sizes, the last larger than any the decoders would write (a program's grid)
    inputs = [rng.integers(0, 3, size=(3, 3), dtype=np.uint8) for _ in range(4)]
    train = [(g, g) for g in inputs[:3]]
    prompt = ids(fmt.render(train, inputs[3]).prompt)
    candidates = [inputs[3], inputs[3][:2], inputs[0], rng.integers(0, 10, size=(12, 9), dtype=np.uint8)]
    replies = [ids(fmt.reply_text(g)) for g in candidates]  # different lengths; the last is far longer
    expected = batched_nll(model, [prompt + r for r in replies], [len(prompt)] * len(replies))
    assert reply_nlls(model, prompt, replies, batch_size=3) == pytest.approx(expected, abs=1e-4)

    texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    args = {"eos_id": tokenizer.eos_token_id, "token_texts": texts, "checker": fmt.reply_checker(),
            "min_prob": 0.02, "max_new_tokens": 40}
    # grids of one colour: the base model is sure enough of the answer for DFS to find it
    train = [(np.full((2, 2), c, dtype=np.uint8),) * 2 for c in (1, 2, 3)]
    prompts = [ids(fmt.render(train, np.full((2, 2), c, dtype=np.uint8)).prompt) for c in (4, 5)]
    reference = [dfs_decode(model, p, **args) for p in prompts]
    assert reference[0]
    guesses = [None, [*reference[0][0].tokens, tokenizer.eos_token_id]]  # the first one's answer, checked first
    for ref, result in zip(reference, dfs_decode_many(model, prompts, guesses=guesses, **args), strict=True):
        assert_same_candidates(ref, result)


def test_cpu_bf16_check_reads_the_processor_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"

    def fake_open(name, *args, **kwargs):
        return open(cpuinfo if name == "/proc/cpuinfo" else name, *args, **kwargs)

    monkeypatch.setattr(inference_tools, "open", fake_open, raising=False)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert cpu_computes_bf16()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert not cpu_computes_bf16()
    cpuinfo.unlink()
    assert not cpu_computes_bf16()


def test_shared_passes_read_grouped_keys_without_copies_and_give_the_same_nlls():
    """On a CPU the one-token passes of many searches (and the reply passes of scoring) run torch's grouped-query
    attention in place of transformers' copy of the keys per query head; the results are the same and the
    model's attention setting is restored after."""
    model = tiny_model(2)
    assert model.config._attn_implementation == "sdpa" and model.config.num_key_value_heads < 4
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(m.config._attn_implementation))
    checker = RowsChecker(cells="012", max_side=2)
    prompts = [PROMPT, [IDS["<s>"], IDS["O"]]]
    try:
        found = dfs_decode_many(model, prompts, min_prob=0.002, **kwargs(checker))
    finally:
        hook.remove()
    # the prompts' pass (two rows, right-padded, no mask) is transformers' own; every pass after it grouped
    assert seen[0] == "sdpa" and set(seen[1:]) == {inference_tools.GROUPED_SDPA}
    assert model.config._attn_implementation == "sdpa"
    for prompt, result in zip(prompts, found, strict=True):
        assert_same_candidates(dfs_decode(model, prompt, min_prob=0.002, **kwargs(checker)), result)
    # the grouped attention itself: the same numbers as transformers' SDPA with its copies
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    attention = model.model.layers[0].self_attn
    gen = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(3, h, n, 8, generator=gen) for h, n in ((4, 1), (2, 7), (2, 7)))
    mask = torch.zeros(3, 1, 1, 7)
    mask[1, ..., 2:5] = torch.finfo(torch.float32).min
    ours, _ = inference_tools._sdpa_grouped(attention, query, key, value, mask, scaling=0.3)
    theirs, _ = sdpa_attention_forward(attention, query, key, value, mask, scaling=0.3)
    assert torch.allclose(ours, theirs, atol=1e-6)
