"""Tests of the decoders and of batched_nll on a tiny randomly initialised Llama.

The key check compares the DFS with a brute force: every checker-valid reply of a small grid
alphabet is enumerated and scored by a full forward pass without a cache; the DFS must return
exactly those above its threshold, with the same NLLs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from training_code.formats import RowsChecker
from training_code.grids import MAX_SIDE
from training_code.inference_tools import (
    DECODERS,
    MAX_REPLY_TOKENS,
    Candidate,
    DecodeOptions,
    _crop_cache,
    _extend,
    _prompt_pass,
    batched_nll,
    decode,
    dfs_decode,
    greedy_decode,
    sample_decode,
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
