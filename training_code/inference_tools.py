"""Decoders that turn a prompt into candidate replies, and the NLLs that score candidates.

Every decoder works on token ids with a Hugging Face causal LM (``model(input_ids=...,
past_key_values=..., use_cache=True)`` returning ``.logits`` and a ``DynamicCache``), a table
``token_texts`` (token id -> its text; the shrunk vocabulary has one token per alphabet character,
special tokens map to their own strings), the end token ``eos_id`` and a ``formats.ReplyChecker``
that says which texts may follow. All decoders prune the same way: a token whose text the checker
rejects, a token with empty text, and the end token before ``checker.can_end`` are never chosen.

The NLL convention (one for every decoder, for the DFS threshold and for ``batched_nll``):
the NLL of a reply is the sum, over its tokens *including the end token*, of ``-log p`` where ``p``
comes from the model's full softmax at temperature 1, computed in float32 before any masking.
Pruned tokens' probability mass is lost, not renormalised over the allowed tokens (as in the
ARChitects' DFS). So a candidate's NLL is the same whichever decoder found it, and equals what
``batched_nll`` gives for the prompt followed by the reply, and a DFS with ``min_prob`` returns
exactly the checker-valid replies with ``NLL <= -log(min_prob)``.

Two implementations of the DFS and of scoring live here: ``dfs_decode`` (one prompt, one row per
pass) and ``batched_nll`` (whole sequences) are the plain references; ``dfs_decode_many`` (many
prompts advancing together in shared passes, a guess checked in the prompt's pass) and
``reply_nlls_many`` (each prompt once, all its replies on its KV cache) are what the pipeline runs,
with the same results up to float rounding. Both run short prompts several to a pass (right-padded,
``PROMPT_PASS_TOKENS`` at most).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicCache

from .formats import ReplyChecker
from .grids import MAX_SIDE
from .model_tools import compute_device, transformers_code

logger = logging.getLogger(__name__)

# The longest reply a decoder writes unless told otherwise: the largest grid, 30 rows of 30 cells,
# each row closed by a newline (30 x 30 + 30 = 930 tokens at one token per character), plus the
# end token: 931. Formats that add text to the reply (a shape line, row numbers) pass their own.
MAX_REPLY_TOKENS = MAX_SIDE * MAX_SIDE + MAX_SIDE + 1

# 0.1: the DFS threshold of the design's timing figure (the ARChitects' "DFS 10%"): a reply is kept
# while its probability is at least 10%, so at most 10 complete replies can exist.
DEFAULT_MIN_PROB = 0.1

# 8: a small default for the sampling baseline; raise it for more coverage.
DEFAULT_SAMPLES = 8

# 8: rows per forward pass in batched_nll; memory grows with rows x kept positions x vocabulary.
DEFAULT_SCORE_BATCH = 8


@dataclass(frozen=True)
class Candidate:
    """One decoded reply: its tokens (end token excluded), its NLL (end token included) and its text."""

    tokens: tuple[int, ...]
    nll: float
    text: str


# ---------------------------------------------------------------------------------------------
# Model plumbing


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode, through transformers' own code (``transformers_code``), and restore the
    previous mode: a model fresh from test-time training is in train mode, and dropout would make
    decoding and scoring random."""
    was_training = model.training
    model.eval()
    try:
        with transformers_code(model):
            yield
    finally:
        model.train(was_training)


GROUPED_SDPA = "arc_sdpa_grouped"  # the attention implementation name ``grouped_attention`` switches to


def _sdpa_grouped(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except where a mask is given to a model whose query heads share key
    and value heads: there transformers copies the keys and values once per query head, and torch's
    grouped-query SDPA reads them shared instead (the same numbers; on a CPU, a one-token pass of 8 rows
    over a cache of a thousand columns spends most of its attention time on that copy)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if groups <= 1 or attention_mask is None or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout if module.training else 0.0, scale=scaling,
        enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def _register_grouped_sdpa() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if GROUPED_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(GROUPED_SDPA, _sdpa_grouped)
        AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)  # masks built exactly as for SDPA


@contextmanager
def attention_implementation(model: torch.nn.Module, name: str) -> Iterator[None]:
    """Run the model's parts that use transformers' SDPA attention with the registered implementation
    ``name`` instead, restored after."""
    configs = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) == "sdpa":
            configs[id(config)] = config
    for config in configs.values():
        config._attn_implementation = name
    try:
        yield
    finally:
        for config in configs.values():
            config._attn_implementation = "sdpa"


@contextmanager
def grouped_attention(model: torch.nn.Module) -> Iterator[None]:
    """On a CPU, run a model that uses transformers' SDPA attention with ``_sdpa_grouped`` instead, restored
    after; elsewhere (CUDA's fast kernels take no mask with grouped heads) and for other attention code,
    nothing changes."""
    if compute_device(model).type != "cpu":
        yield
        return
    _register_grouped_sdpa()
    with attention_implementation(model, GROUPED_SDPA):
        yield


def _crop_cache(cache: Any, length: int) -> None:
    """Shorten a transformers cache to its first ``length`` positions.

    transformers 5.17 changed ``Cache.crop``'s argument from the length to keep to the number of
    tokens to remove (a positive "length to keep" still works but warns and goes away in 5.18). A
    negative argument means "remove this many" both in 4.x and in 5.x, so that is what we pass.
    """
    excess = cache.get_seq_length() - length
    if excess > 0:
        cache.crop(-excess)


def _prompt_pass(model: torch.nn.Module, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, Any]:
    """Run the prompt once: the logits for the first reply token (shape [vocab]) and the KV cache."""
    if len(prompt_ids) == 0:
        raise ValueError("the prompt must have at least one token")
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=compute_device(model))
    # logits_to_keep=1: only the last position's logits are needed; with a full vocabulary the
    # logits of a long prompt would take gigabytes.
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    if not hasattr(cache, "crop") or not hasattr(cache, "get_seq_length"):
        raise TypeError(f"the model returned a {type(cache).__name__} cache; decoders need a transformers Cache")
    return out.logits[0, -1], cache


def _extend(model: torch.nn.Module, tokens: torch.Tensor, cache: Any) -> torch.Tensor:
    """Feed one token per row ([rows]) after the cached positions; the next logits, [rows, vocab]."""
    out = model(input_ids=tokens[:, None], past_key_values=cache, use_cache=True)
    return out.logits[:, -1]


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    # float32: bf16 log-probabilities are too coarse to compare NLLs to 1e-4 across decoders
    return torch.log_softmax(logits.float(), dim=-1)


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (avx512_bf16 or AMX): there, prompt passes under
    bfloat16 autocast made SmolLM2's decoding about 1.4x faster than float32 (BENCHMARKS.md)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class StageFormats:
    """The number format of the passes of each inference stage; None: the model's own.

    ``prompt``: the prompt passes of decoding (the search's one-token passes always use the model's
    own format: on a CPU they are not faster in bfloat16); ``scoring``: all passes of scoring.
    """

    prompt: torch.dtype | None = None
    scoring: torch.dtype | None = None


BF16_CHOICES = ("auto", "yes", "no")


def stage_formats(choice: str, device: torch.device | str) -> StageFormats:
    """``choice`` "yes": bfloat16 prompt passes and scoring; "no": the model's own format throughout;
    "auto": bfloat16 where the device computes it natively (CUDA with bf16 support, a CPU with bf16
    instructions), else the model's own. A model already in bfloat16 runs as it is either way."""
    if choice not in BF16_CHOICES:
        raise ValueError(f"bf16_passes must be auto, yes or no, not {choice!r}")
    device = torch.device(device)
    if choice == "auto":
        if device.type == "cuda":  # emulated bfloat16 (a T4) is slower than the model's float16
            fast = torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            fast = device.type == "cpu" and cpu_computes_bf16()
        choice = "yes" if fast else "no"
    return StageFormats(torch.bfloat16, torch.bfloat16) if choice == "yes" else StageFormats()


def _passes_in(model: torch.nn.Module, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on the model's device; nothing when ``dtype`` is None or the model's own."""
    if dtype is None or dtype == next(model.parameters()).dtype:
        return nullcontext()
    return torch.autocast(compute_device(model).type, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Pruning


class _TokenGate:
    """Which tokens may follow a checker state: the checker's verdict per token, memoised by state.

    A token is allowed when it has text and the checker accepts that text, or when it is the end
    token and the checker says the reply may end there. Empty-text tokens are never allowed: they
    would not change the reply, so a search could loop on them. Ids past ``token_texts`` (a model
    head padded beyond the vocabulary) are never allowed.
    """

    def __init__(self, token_texts: Sequence[str], eos_id: int, checker: ReplyChecker):
        if not 0 <= eos_id < len(token_texts):
            raise ValueError(f"eos_id {eos_id} is outside token_texts (size {len(token_texts)})")
        self.texts = token_texts
        self.eos_id = eos_id
        self.checker = checker
        self._next: dict[tuple[Hashable, int], Hashable | None] = {}
        self._masks: dict[tuple[Hashable, bool], torch.Tensor] = {}

    def next_state(self, state: Hashable, token: int) -> Hashable | None:
        """The state after a non-end token, or None when the token is cut."""
        key = (state, token)
        if key not in self._next:
            text = self.texts[token] if 0 <= token < len(self.texts) and token != self.eos_id else ""
            self._next[key] = self.checker.step(state, text) if text else None
        return self._next[key]

    def can_end(self, state: Hashable) -> bool:
        return self.checker.can_end(state)

    def mask(self, state: Hashable, may_continue: bool, vocab_size: int, device: torch.device) -> torch.Tensor:
        """Boolean [vocab_size] mask of allowed tokens; with ``may_continue`` False only the end token
        can be allowed (the token budget has room for nothing else)."""
        key = (state, may_continue)
        mask = self._masks.get(key)
        if mask is None:
            allowed = [False] * vocab_size
            if may_continue:
                for token in range(min(vocab_size, len(self.texts))):
                    allowed[token] = self.next_state(state, token) is not None
            allowed[self.eos_id] = self.can_end(state)
            mask = torch.tensor(allowed, dtype=torch.bool, device=device)
            self._masks[key] = mask
        return mask


def _budget(max_new_tokens: int | None) -> int:
    budget = MAX_REPLY_TOKENS if max_new_tokens is None else max_new_tokens
    if budget < 1:
        raise ValueError(f"max_new_tokens must be at least 1 (room for the end token), got {budget}")
    return budget


def _text(token_texts: Sequence[str], tokens: Sequence[int]) -> str:
    return "".join(token_texts[t] for t in tokens)


# ---------------------------------------------------------------------------------------------
# Depth-first search


@dataclass
class _Frame:
    """A node of the DFS tree: the reply so far has ``depth`` tokens. ``children`` are the allowed
    next tokens under the threshold, best first, as (token, NLL after it, state after it)."""

    depth: int
    on_guess: bool
    children: list[tuple[int, float, Hashable]]
    next_child: int = 0


def _children(
    log_probs: torch.Tensor,
    *,
    depth: int,
    nll: float,
    state: Hashable,
    threshold: float,
    budget: int,
    gate: _TokenGate,
    preferred: int | None,
) -> list[tuple[int, float, Hashable]]:
    """The children of a node worth visiting, best first (``preferred`` first when it is one)."""
    # Only tokens whose -log p fits in what is left of the threshold can be children. There are at
    # most 1/p of them with probability p, so this moves a handful of numbers off the device
    # instead of the whole vocabulary. The 1e-5 slack errs on the side of including; the exact
    # comparison below, in float64, decides.
    room = threshold - nll
    candidates = torch.nonzero(log_probs >= -(room + 1e-5)).flatten()
    values = log_probs[candidates]
    order = torch.argsort(values, descending=True, stable=True)
    tokens = candidates[order].tolist()
    token_log_probs = values[order].tolist()
    # a non-end child at depth+1 needs one more token (the end) to finish: depth + 2 <= budget
    may_continue = depth + 2 <= budget
    children = []
    for token, log_p in zip(tokens, token_log_probs, strict=True):
        child_nll = nll - log_p
        if child_nll > threshold:
            break  # the rest are less probable still
        if token == gate.eos_id:
            if gate.can_end(state):
                children.append((token, child_nll, state))
        elif may_continue:
            child_state = gate.next_state(state, token)
            if child_state is not None:
                children.append((token, child_nll, child_state))
    if preferred is not None:
        for i, child in enumerate(children):
            if child[0] == preferred:
                children.insert(0, children.pop(i))
                break
    return children


@torch.inference_mode()
def dfs_decode(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    *,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    min_prob: float = DEFAULT_MIN_PROB,
    max_new_tokens: int | None = None,
    guess: Sequence[int] | None = None,
) -> list[Candidate]:
    """Every checker-valid reply whose probability is at least ``min_prob``, best first.

    A depth-first search over the token tree: a child is expanded only while the path's cumulative
    NLL stays ``<= -log(min_prob)`` (see the module docstring for the NLL convention), children in
    order of probability. The prompt runs once; each visited node then costs one forward pass of
    one token on the KV cache, which is cropped back when the search returns to a shallower node.
    The search is iterative (an explicit stack), so long replies cannot hit a recursion limit.

    Work is bounded by the threshold: at any depth at most ``1/min_prob`` prefixes have probability
    ``>= min_prob``, so there are at most ``max_new_tokens / min_prob`` forward passes.

    ``max_new_tokens`` counts every reply token including the end token (default
    ``MAX_REPLY_TOKENS``). ``guess`` (for example the best candidate of another view, mapped into
    this view; a trailing end token is ignored) is followed first where it is allowed and under the
    threshold: it changes the order of the search, not the result.
    """
    if not 0.0 < min_prob <= 1.0:
        raise ValueError(f"min_prob must be in (0, 1], got {min_prob}")
    threshold = -math.log(min_prob)
    budget = _budget(max_new_tokens)
    gate = _TokenGate(token_texts, eos_id, checker)
    guess_tokens = list(guess or ())
    if guess_tokens and guess_tokens[-1] == eos_id:
        guess_tokens.pop()

    def preferred(depth: int, on_guess: bool) -> int | None:
        if not on_guess or guess is None:
            return None
        return guess_tokens[depth] if depth < len(guess_tokens) else eos_id

    results: list[Candidate] = []
    passes = 0
    with _eval_mode(model):
        logits, cache = _prompt_pass(model, prompt_ids)
        prompt_len = len(prompt_ids)
        device = logits.device
        start = checker.start()
        root_children = _children(
            _log_probs(logits),
            depth=0,
            nll=0.0,
            state=start,
            threshold=threshold,
            budget=budget,
            gate=gate,
            preferred=preferred(0, True),
        )
        stack = [_Frame(depth=0, on_guess=guess is not None, children=root_children)]
        path: list[int] = []  # path[:frame.depth] is the reply so far of the frame on top
        while stack:
            frame = stack[-1]
            if frame.next_child >= len(frame.children):
                stack.pop()
                continue
            token, nll, state = frame.children[frame.next_child]
            frame.next_child += 1
            del path[frame.depth :]
            if token == eos_id:
                results.append(Candidate(tuple(path), nll, _text(token_texts, path)))
                continue
            # the cache must hold the prompt and this frame's reply, nothing deeper
            _crop_cache(cache, prompt_len + frame.depth)
            logits = _extend(model, torch.tensor([token], device=device), cache)[0]
            passes += 1
            path.append(token)
            on_guess = frame.on_guess and frame.depth < len(guess_tokens) and guess_tokens[frame.depth] == token
            depth = frame.depth + 1
            children = _children(
                _log_probs(logits),
                depth=depth,
                nll=nll,
                state=state,
                threshold=threshold,
                budget=budget,
                gate=gate,
                preferred=preferred(depth, on_guess),
            )
            stack.append(_Frame(depth=depth, on_guess=on_guess, children=children))
    logger.debug("dfs: %d one-token passes, %d candidates", passes, len(results))
    results.sort(key=lambda c: c.nll)
    return results


# ---------------------------------------------------------------------------------------------
# Greedy and sampling baselines


def _rollouts(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    *,
    rows: int,
    batch_size: int,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    max_new_tokens: int | None,
    choose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> list[Candidate]:
    """Decode ``rows`` replies token by token, ``batch_size`` rows per forward pass, sharing one run
    of the prompt. ``choose(logits, allowed)`` picks one token per row from float32 logits [rows,
    vocab] and a boolean mask with at least one allowed token per row. A row whose state allows no
    token, or that reaches the budget without the end token, gives no candidate."""
    budget = _budget(max_new_tokens)
    gate = _TokenGate(token_texts, eos_id, checker)
    results: list[Candidate] = []
    with _eval_mode(model):
        first_logits, cache = _prompt_pass(model, prompt_ids)
        prompt_len = len(prompt_ids)
        device = first_logits.device
        vocab = first_logits.shape[-1]
        only_end = torch.zeros(vocab, dtype=torch.bool, device=device)
        only_end[eos_id] = True  # the dummy mask of rows that are already done
        for chunk_start in range(0, rows, batch_size):
            k = min(batch_size, rows - chunk_start)
            # back to the prompt, one row, then one copy of it per row of this chunk
            _crop_cache(cache, prompt_len)
            cache.batch_select_indices(torch.tensor([0], device=device))
            cache.batch_repeat_interleave(k)
            logits = first_logits.expand(k, vocab)
            states: list[Hashable] = [checker.start()] * k
            tokens: list[list[int]] = [[] for _ in range(k)]
            nlls = [0.0] * k
            live = [True] * k
            for step in range(budget):
                log_probs = _log_probs(logits)
                may_continue = step + 2 <= budget
                masks = []
                for row in range(k):
                    mask = gate.mask(states[row], may_continue, vocab, device) if live[row] else only_end
                    if live[row] and not bool(mask.any()):
                        live[row] = False  # nothing can follow: this row fails
                        mask = only_end
                    masks.append(mask)
                if not any(live):
                    break
                chosen = choose(logits.float(), torch.stack(masks)).to(device)
                chosen_log_probs = log_probs.gather(1, chosen[:, None])[:, 0].tolist()
                for row, token in enumerate(chosen.tolist()):
                    if not live[row]:
                        continue
                    nlls[row] -= chosen_log_probs[row]
                    if token == eos_id:
                        results.append(Candidate(tuple(tokens[row]), nlls[row], _text(token_texts, tokens[row])))
                        live[row] = False
                    else:
                        tokens[row].append(token)
                        states[row] = gate.next_state(states[row], token)
                if not any(live):
                    break
                logits = _extend(model, chosen, cache)
    return results


def _merge(candidates: list[Candidate]) -> list[Candidate]:
    """Distinct token sequences, each with its lowest NLL, best first."""
    best: dict[tuple[int, ...], Candidate] = {}
    for c in candidates:
        if c.tokens not in best or c.nll < best[c.tokens].nll:
            best[c.tokens] = c
    return sorted(best.values(), key=lambda c: c.nll)


@torch.inference_mode()
def greedy_decode(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    *,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    max_new_tokens: int | None = None,
) -> list[Candidate]:
    """The most probable allowed token at every step: one candidate, or none when the checker
    allows no token somewhere or the budget ends first. Disallowed tokens get -inf before argmax."""

    def argmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~allowed, -math.inf).argmax(dim=-1)

    return _rollouts(
        model,
        prompt_ids,
        rows=1,
        batch_size=1,
        eos_id=eos_id,
        token_texts=token_texts,
        checker=checker,
        max_new_tokens=max_new_tokens,
        choose=argmax,
    )


@torch.inference_mode()
def sample_decode(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    *,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    n: int = DEFAULT_SAMPLES,
    temperature: float = 1.0,
    generator: torch.Generator,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
) -> list[Candidate]:
    """``n`` replies sampled from the masked, tempered distribution; the distinct ones, best first.

    Randomness comes only from ``generator`` (draws happen on its device): the same seed, ``n`` and
    ``batch_size`` (default ``n``: all samples in one batch) give the same candidates. NLLs follow
    the module's convention (temperature 1, no mask), so they compare with the other decoders.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (use greedy_decode for temperature 0), got {temperature}")

    def draw(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax((logits / temperature).masked_fill(~allowed, -math.inf), dim=-1)
        return torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0]

    found = _rollouts(
        model,
        prompt_ids,
        rows=n,
        batch_size=batch_size or n,
        eos_id=eos_id,
        token_texts=token_texts,
        checker=checker,
        max_new_tokens=max_new_tokens,
        choose=draw,
    )
    return _merge(found)


def torch_generator(rng: np.random.Generator, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from the pipeline's numpy generator (the project's one source of
    randomness), for ``sample_decode``."""
    return torch.Generator(device=device).manual_seed(int(rng.integers(2**63 - 1)))


# ---------------------------------------------------------------------------------------------
# Choosing a decoder by name


@dataclass(frozen=True)
class DecodeOptions:
    """Which decoder to run and its settings; ``decode`` dispatches on ``name``.

    ``min_prob`` is used by "dfs", ``n_samples`` and ``temperature`` by "sample"; ``max_new_tokens``
    (None: ``MAX_REPLY_TOKENS``) by all.
    """

    name: str = "dfs"
    min_prob: float = DEFAULT_MIN_PROB
    n_samples: int = DEFAULT_SAMPLES
    temperature: float = 1.0
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.name not in DECODERS:
            raise ValueError(f"unknown decoder {self.name!r}; choose one of {', '.join(DECODERS)}")
        if not 0.0 < self.min_prob <= 1.0:
            raise ValueError(f"min_prob must be in (0, 1], got {self.min_prob}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


def _run_dfs(options: DecodeOptions, model: torch.nn.Module, prompt_ids: Sequence[int], **kw: Any) -> list[Candidate]:
    kw.pop("generator")
    return dfs_decode(model, prompt_ids, min_prob=options.min_prob, max_new_tokens=options.max_new_tokens, **kw)


def _run_greedy(
    options: DecodeOptions, model: torch.nn.Module, prompt_ids: Sequence[int], **kw: Any
) -> list[Candidate]:
    kw.pop("generator")
    kw.pop("guess")
    return greedy_decode(model, prompt_ids, max_new_tokens=options.max_new_tokens, **kw)


def _run_sample(
    options: DecodeOptions, model: torch.nn.Module, prompt_ids: Sequence[int], **kw: Any
) -> list[Candidate]:
    kw.pop("guess")
    if kw["generator"] is None:
        raise ValueError("the 'sample' decoder needs a torch.Generator (see torch_generator)")
    return sample_decode(
        model,
        prompt_ids,
        n=options.n_samples,
        temperature=options.temperature,
        max_new_tokens=options.max_new_tokens,
        **kw,
    )


DECODERS: dict[str, Callable[..., list[Candidate]]] = {"dfs": _run_dfs, "greedy": _run_greedy, "sample": _run_sample}


def decode(
    options: DecodeOptions,
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    *,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    guess: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> list[Candidate]:
    """Run the decoder ``options.name`` with ``options``; candidates best first. ``guess`` is used
    by "dfs" only, ``generator`` (required there) by "sample" only."""
    return DECODERS[options.name](
        options,
        model,
        prompt_ids,
        eos_id=eos_id,
        token_texts=token_texts,
        checker=checker,
        guess=guess,
        generator=generator,
    )


# ---------------------------------------------------------------------------------------------
# Scoring


@torch.inference_mode()
def batched_nll(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    reply_starts: Sequence[int],
    *,
    batch_size: int = DEFAULT_SCORE_BATCH,
) -> list[float]:
    """The NLL of each sequence's reply (its tokens from ``reply_starts[i]`` to the end).

    Sequences run in padded batches (right padding, an attention mask, sequences of similar length
    together) and only the positions from the earliest reply on go through the output head. NLLs
    follow the module's convention: for a prompt, a candidate's tokens and the end token, with
    ``reply_start = len(prompt)``, the result equals the candidate's ``nll``.
    """
    if len(sequences) != len(reply_starts):
        raise ValueError(f"{len(sequences)} sequences but {len(reply_starts)} reply starts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for i, (seq, start) in enumerate(zip(sequences, reply_starts, strict=True)):
        # the first token has no prediction, so a reply starts at position 1 at the earliest
        if not 1 <= start <= len(seq):
            raise ValueError(f"sequence {i}: reply start {start} is outside 1..{len(seq)}")
    results = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    device = compute_device(model)
    with _eval_mode(model):
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(sequences[i])] = torch.tensor(list(sequences[i]), dtype=torch.long)
                attention[row, : len(sequences[i])] = 1
            ids, attention = ids.to(device), attention.to(device)
            # logits at position p predict token p + 1; the earliest one needed is at min(start) - 1
            low = min(reply_starts[i] for i in chunk) - 1
            out = model(input_ids=ids, attention_mask=attention, use_cache=False, logits_to_keep=width - low)
            log_probs = _log_probs(out.logits)[:, :-1]  # positions low .. width-2
            targets = ids[:, low + 1 :]
            token_nll = -log_probs.gather(2, targets[:, :, None])[:, :, 0]
            positions = torch.arange(low + 1, width, device=device)[None, :]
            starts = torch.tensor([reply_starts[i] for i in chunk], device=device)[:, None]
            ends = torch.tensor([len(sequences[i]) for i in chunk], device=device)[:, None]
            in_reply = (positions >= starts) & (positions < ends)
            # where, not a product: a padding position's value is not to be trusted (0 x inf is nan)
            sums = torch.where(in_reply, token_nll, torch.zeros_like(token_nll)).double().sum(dim=1).tolist()
            for row, i in enumerate(chunk):
                results[i] = sums[row]
    return results


# 8: searches (views) advanced together by dfs_decode_many; each row holds its prompt's KV cache.
DEFAULT_DFS_ROWS = 8

# 64: free cache columns kept after the prompts in a batched search; the column cache compacts (drops
# the columns of abandoned branches) when they run out, and grows when compacting frees too few.
_COLUMN_RESERVE = 64
# tokens of one prompt pass of several rows (rows x the longest): short prompts share a pass (their matrix
# products run faster on many rows), long ones run alone (the memory of a pass grows with its tokens)
PROMPT_PASS_TOKENS = 2048


@torch.inference_mode()
def reply_nlls(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    replies: Sequence[Sequence[int]],
    *,
    batch_size: int = DEFAULT_SCORE_BATCH,
    dtype: torch.dtype | None = None,
) -> list[float]:
    """The NLL of each reply after one shared prompt; the prompt runs once (``reply_nlls_many`` of one
    prompt)."""
    return reply_nlls_many(model, [prompt_ids], [replies], batch_size=batch_size, dtype=dtype)[0]


def _prompt_caches(model: torch.nn.Module, prompts: Sequence[Sequence[int]]) -> Iterator[tuple[int, torch.Tensor, Any]]:
    """Each prompt's log-probabilities of its first reply token and its own KV cache (a transformers
    cache), in order; the prompts run several to a pass (right-padded, ``PROMPT_PASS_TOKENS`` at most)."""
    lengths = [len(p) for p in prompts]
    if min(lengths, default=1) == 0:
        raise ValueError("the prompt must have at least one token")
    for group in _prompt_groups(lengths, PROMPT_PASS_TOKENS):
        if len(group) == 1:
            logits, cache = _prompt_pass(model, prompts[group[0]])
            yield group[0], _log_probs(logits), cache
            continue
        out, at = _padded_pass(model, [prompts[r] for r in group], [range(lengths[r] - 1, lengths[r]) for r in group])
        layers = out.past_key_values.layers
        for row, r in enumerate(group):
            # the row's own columns, without the padding after them, as a cache of one row
            cache = DynamicCache(ddp_cache_data=[(layer.keys[row : row + 1, :, : lengths[r]],
                                                  layer.values[row : row + 1, :, : lengths[r]]) for layer in layers],
                                 config=getattr(model, "config", None))
            yield r, _log_probs(out.logits[row, at[lengths[r] - 1]]), cache


@torch.inference_mode()
def reply_nlls_many(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    replies: Sequence[Sequence[Sequence[int]]],
    *,
    batch_size: int = DEFAULT_SCORE_BATCH,
    dtype: torch.dtype | None = None,
) -> list[list[float]]:
    """Per prompt, the NLL of each of its replies; every prompt runs once, short prompts several to a pass.

    A prompt's pass gives the log-probabilities of every reply's first token and a KV cache; its
    replies then run ``batch_size`` rows at a time on copies of that cache. Rows are right-padded:
    a causal model never lets a token see the padding after it, so no mask is needed. Same NLL
    convention as ``batched_nll``: for a candidate's tokens followed by the end token, its ``nll``.
    ``dtype``: the passes' number format under autocast (None: the model's own).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} lists of replies")
    replies = [[list(r) for r in rs] for rs in replies]
    results = [[0.0] * len(rs) for rs in replies]
    todo = [i for i, rs in enumerate(replies) if any(rs)]
    if not todo:
        return results
    with _eval_mode(model), _passes_in(model, dtype):
        for at, first, cache in _prompt_caches(model, [prompts[i] for i in todo]):
            i = todo[at]
            results[i] = _replies_on(model, first, cache, len(prompts[i]), replies[i], batch_size)
    return results


def _replies_on(model: torch.nn.Module, first: torch.Tensor, cache: Any, prompt_len: int,
                replies: list[list[int]], batch_size: int) -> list[float]:
    """The NLL of each reply after a prompt whose pass gave ``first`` (the first reply token's
    log-probabilities) and ``cache``."""
    results = [0.0] * len(replies)
    device = first.device
    order = sorted((i for i in range(len(replies)) if replies[i]), key=lambda i: len(replies[i]), reverse=True)
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        width = len(replies[chunk[0]])  # the longest of the chunk: replies are sorted by length
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        lengths = torch.tensor([len(replies[i]) for i in chunk])
        for row, i in enumerate(chunk):
            ids[row, : len(replies[i])] = torch.tensor(replies[i], dtype=torch.long)
        ids = ids.to(device)
        token_log_probs = first[ids[:, :1]]  # [rows, 1]
        if width > 1:
            # every row starts from the prompt alone: one copy of its cache per row
            _crop_cache(cache, prompt_len)
            cache.batch_select_indices(torch.tensor([0], device=device))
            cache.batch_repeat_interleave(len(chunk))
            # the last token of the longest reply predicts nothing: it is not fed
            with grouped_attention(model):
                out = model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True)
            rest = _log_probs(out.logits).gather(2, ids[:, 1:, None])[:, :, 0]
            token_log_probs = torch.cat([token_log_probs, rest], dim=1)
        in_reply = torch.arange(width)[None, :] < lengths[:, None]
        # where, not a product: a padding position's value is not to be trusted (0 x inf is nan)
        sums = torch.where(in_reply.to(device), -token_log_probs, torch.zeros_like(token_log_probs))
        for row, total in enumerate(sums.double().sum(dim=1).tolist()):
            results[chunk[row]] = total
    return results


# ---------------------------------------------------------------------------------------------
# Depth-first search of many prompts at once


class _ColumnCache(Cache):
    """The KV cache of a batch of searches, one row per search, in preallocated buffers.

    A pass writes one new column for every row; which columns a row's next token may attend to is
    the business of the attention mask (its prompt and the columns of its current path), so a row
    backtracks by leaving columns out of its mask, not by cropping. Position ids come with each
    pass, as columns are not positions. ``length`` counts the columns written; the caller advances
    it after each pass (the model writes every layer at ``length``).
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int):
        super().__init__(layers=[])
        self.keys, self.values, self.length = keys, values, length

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        self.keys[layer_idx][:, :, self.length : end] = key_states
        self.values[layer_idx][:, :, self.length : end] = value_states
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def select_rows(self, rows: torch.Tensor) -> None:
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]

    def gather_columns(self, index: torch.Tensor, capacity: int) -> None:
        """Keep, for row r, the columns ``index[r]`` (in that order) and room for ``capacity`` in all."""
        rows, width = index.shape

        def regather(buffers: list[torch.Tensor]) -> list[torch.Tensor]:
            out = []
            for buffer in buffers:
                heads, dim = buffer.shape[1], buffer.shape[3]
                fresh = buffer.new_zeros((rows, heads, capacity, dim))
                fresh[:, :, :width] = buffer.gather(2, index[:, None, :, None].expand(rows, heads, width, dim))
                out.append(fresh)
            return out

        self.keys, self.values = regather(self.keys), regather(self.values)
        self.length = width


class _Search:
    """One DFS of ``dfs_decode_many``: the same walk as ``dfs_decode``, stopped wherever it needs the
    logits of a node not yet computed, so that many searches can share the forward pass.

    ``guess_log_probs[d]`` are the log-probabilities after the prompt and the first ``d`` tokens of
    the guess (all from one pass over prompt + guess); a node on the guess costs no pass of its own.
    The prompt sits in cache columns ``0 .. prompt_len - 1`` and guess token ``d`` in column
    ``prompt_len + d``; ``path_columns`` are the columns of the current path's tokens.
    """

    def __init__(self, prompt_len: int, guess: list[int], guess_log_probs: torch.Tensor, *, threshold: float,
                 budget: int, gate: _TokenGate, has_guess: bool):
        self.prompt_len = prompt_len
        self.guess = guess
        self.guess_log_probs = guess_log_probs
        self.threshold = threshold
        self.budget = budget
        self.gate = gate
        self.has_guess = has_guess
        self.results: list[Candidate] = []
        self.path: list[int] = []
        self.path_columns: list[int] = []
        self.pending: tuple[int, float, Hashable, int] | None = None
        root = self._children(guess_log_probs[0], 0, 0.0, gate.checker.start(), has_guess)
        self.stack = [_Frame(depth=0, on_guess=has_guess, children=root)]

    def _children(self, log_probs: torch.Tensor, depth: int, nll: float, state: Hashable,
                  on_guess: bool) -> list[tuple[int, float, Hashable]]:
        preferred = None
        if on_guess and self.has_guess:
            preferred = self.guess[depth] if depth < len(self.guess) else self.gate.eos_id
        return _children(log_probs, depth=depth, nll=nll, state=state, threshold=self.threshold, budget=self.budget,
                         gate=self.gate, preferred=preferred)

    def advance(self) -> int | None:
        """Walk to the next node whose logits need a pass; its last token, or None when the search is done."""
        gate = self.gate
        while self.stack:
            frame = self.stack[-1]
            if frame.next_child >= len(frame.children):
                self.stack.pop()
                continue
            token, nll, state = frame.children[frame.next_child]
            frame.next_child += 1
            del self.path[frame.depth :]
            del self.path_columns[frame.depth :]
            if token == gate.eos_id:
                self.results.append(Candidate(tuple(self.path), nll, _text(gate.texts, self.path)))
                continue
            depth = frame.depth + 1
            if frame.on_guess and frame.depth < len(self.guess) and self.guess[frame.depth] == token:
                self.path.append(token)
                self.path_columns.append(self.prompt_len + frame.depth)
                children = self._children(self.guess_log_probs[depth], depth, nll, state, True)
                self.stack.append(_Frame(depth=depth, on_guess=True, children=children))
                continue
            self.pending = (token, nll, state, frame.depth)
            return token
        return None

    @property
    def position(self) -> int:
        """The position id of the pending token."""
        return self.prompt_len + self.pending[3]

    def expand(self, log_probs: torch.Tensor, column: int) -> None:
        """Take the pass's log-probabilities for the pending token, written to cache ``column``."""
        token, nll, state, depth = self.pending
        self.pending = None
        self.path.append(token)
        self.path_columns.append(column)
        children = self._children(log_probs, depth + 1, nll, state, False)
        self.stack.append(_Frame(depth=depth + 1, on_guess=False, children=children))


def _attention_mask(searches: Sequence[_Search], width: int, dtype: torch.dtype, device: torch.device
                    ) -> torch.Tensor:
    """The additive 4D mask of one pass: row r attends to its prompt, its path and the new column
    ``width - 1``. The large negative value (not -inf) keeps fully unused columns harmless."""
    allowed = torch.zeros((len(searches), width), dtype=torch.bool)
    rows, columns = [], []
    for r, search in enumerate(searches):
        allowed[r, : search.prompt_len] = True
        rows += [r] * len(search.path_columns)
        columns += search.path_columns
    allowed[rows, columns] = True
    allowed[:, width - 1] = True
    mask = torch.zeros((len(searches), 1, 1, width), dtype=dtype)
    mask.masked_fill_(~allowed[:, None, None, :], torch.finfo(dtype).min)
    return mask.to(device)


def _make_room(cache: _ColumnCache, searches: Sequence[_Search], base: int) -> None:
    """Ensure a free column: keep only the columns on the searches' paths after the prompts (``base``
    columns), grow the buffers when that frees fewer than ``_COLUMN_RESERVE``."""
    if cache.length < cache.capacity:
        return
    kept = [[c for c in s.path_columns if c >= base] for s in searches]
    width = base + max((len(k) for k in kept), default=0)
    index = torch.zeros((len(searches), width), dtype=torch.long)
    index[:, :base] = torch.arange(base)
    for r, (search, columns) in enumerate(zip(searches, kept, strict=True)):
        index[r, base : base + len(columns)] = torch.tensor(columns, dtype=torch.long)
        renumber = {c: base + i for i, c in enumerate(columns)}
        search.path_columns = [renumber.get(c, c) for c in search.path_columns]
    capacity = max(cache.capacity, width + max(_COLUMN_RESERVE, width - base))
    cache.gather_columns(index.to(cache.keys[0].device), capacity)


def _prompt_groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """The rows in consecutive groups whose padded pass (rows x the longest) stays within ``budget`` tokens;
    a row longer than the budget alone."""
    groups: list[list[int]] = []
    for r, length in enumerate(lengths):
        if groups and (len(groups[-1]) + 1) * max(length, *(lengths[i] for i in groups[-1])) <= budget:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _padded_pass(model: torch.nn.Module, rows: Sequence[Sequence[int]], wanted: Sequence[range]
                 ) -> tuple[Any, dict[int, int]]:
    """One pass over token rows right-padded to the longest, the logits kept at the positions in ``wanted`` (one
    range per row): the model's output and, per position, its index among the kept logits. No mask is needed:
    a causal model never lets a token see the padding after it, and the padding's own columns of the cache are
    left out by whoever reads it (the search's masks, a row's cache cut to its length)."""
    lengths = [len(r) for r in rows]
    device = compute_device(model)
    ids = torch.zeros((len(rows), max(lengths)), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : lengths[i]] = torch.tensor(list(row), dtype=torch.long)
    positions = sorted({p for span in wanted for p in span})
    out = model(input_ids=ids.to(device), use_cache=True, logits_to_keep=torch.tensor(positions, device=device))
    return out, {p: k for k, p in enumerate(positions)}


def _prompt_rows(model: torch.nn.Module, prompts: Sequence[Sequence[int]], guesses: Sequence[list[int]],
                 dtype: torch.dtype | None) -> tuple[_ColumnCache, list[torch.Tensor], int]:
    """The prompts (each with its guess after it) in passes of several rows (right-padded, at most
    ``PROMPT_PASS_TOKENS`` tokens a pass, in ``dtype`` under autocast); their caches as rows of one column
    cache in the model's own format, for the one-token passes, and each row's log-probabilities at the
    guess's positions [len(guess) + 1, vocab]."""
    lengths = [len(p) + len(g) for p, g in zip(prompts, guesses, strict=True)]
    if min(lengths, default=1) == 0 or any(len(p) == 0 for p in prompts):
        raise ValueError("the prompt must have at least one token")
    base = max(lengths)
    device = compute_device(model)
    own = next(model.parameters()).dtype
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    log_probs: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
    for group in _prompt_groups(lengths, PROMPT_PASS_TOKENS):
        width = max(lengths[r] for r in group)
        # the positions whose logits are wanted: each row's last prompt token and its guess's tokens
        spans = [range(len(prompts[r]) - 1, lengths[r]) for r in group]
        with _passes_in(model, dtype):
            out, at = _padded_pass(model, [[*prompts[r], *guesses[r]] for r in group], spans)
        # DynamicCache's per-layer tensors (transformers 5: cache.layers[i].keys, [rows, heads, length, dim])
        layers = out.past_key_values.layers
        if not keys:
            for layer in layers:
                shape = (len(prompts), layer.keys.shape[1], base + _COLUMN_RESERVE, layer.keys.shape[3])
                keys.append(layer.keys.new_zeros(shape, dtype=own))
                values.append(layer.values.new_zeros(shape[:3] + (layer.values.shape[3],), dtype=own))
        rows = torch.tensor(group, device=device)
        for i, layer in enumerate(layers):
            keys[i][rows, :, :width] = layer.keys.to(own)
            values[i][rows, :, :width] = layer.values.to(own)
        for row, (r, span) in enumerate(zip(group, spans, strict=True)):
            log_probs[r] = _log_probs(out.logits[row, [at[i] for i in span]])
    return _ColumnCache(keys, values, base), log_probs, base


@torch.inference_mode()
def dfs_decode_many(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    eos_id: int,
    token_texts: Sequence[str],
    checker: ReplyChecker,
    min_prob: float = DEFAULT_MIN_PROB,
    max_new_tokens: int | None = None,
    guesses: Sequence[Sequence[int] | None] | None = None,
    rows: int = DEFAULT_DFS_ROWS,
    prompt_dtype: torch.dtype | None = None,
) -> list[list[Candidate]]:
    """``dfs_decode`` of each prompt (the same candidates, best first), ``rows`` searches at a time.

    Each prompt runs once, with its guess after it in the same pass: the guess's tokens are checked
    in that one pass, and the search walks them without further passes, branching off where a token
    leaves the threshold or where another child is to be visited. Every other node costs one token
    of a pass shared by all searches still running: the searches advance together, each by one node
    per pass. Results match ``dfs_decode`` up to float rounding (batched matrix products).
    ``prompt_dtype``: the prompt passes' number format under autocast (None: the model's own); the
    one-token passes run in the model's own format.
    """
    if not 0.0 < min_prob <= 1.0:
        raise ValueError(f"min_prob must be in (0, 1], got {min_prob}")
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    guesses = list(guesses) if guesses is not None else [None] * len(prompts)
    if len(guesses) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(guesses)} guesses")
    threshold = -math.log(min_prob)
    budget = _budget(max_new_tokens)
    gate = _TokenGate(token_texts, eos_id, checker)
    found: list[list[Candidate]] = []
    with _eval_mode(model):
        for begin in range(0, len(prompts), rows):
            found += _dfs_rows(model, prompts[begin : begin + rows], guesses[begin : begin + rows],
                               gate=gate, threshold=threshold, budget=budget, prompt_dtype=prompt_dtype)
    return found


def _dfs_rows(model: torch.nn.Module, prompts: Sequence[Sequence[int]], guesses: Sequence[Sequence[int] | None], *,
              gate: _TokenGate, threshold: float, budget: int, prompt_dtype: torch.dtype | None,
              ) -> list[list[Candidate]]:
    guess_tokens = []
    for guess in guesses:
        tokens = list(guess or ())
        if tokens and tokens[-1] == gate.eos_id:
            tokens.pop()
        # a path holds at most budget - 1 tokens before its end token: guess tokens past that are never used
        guess_tokens.append(tokens[: budget - 1])
    cache, log_probs, base = _prompt_rows(model, prompts, guess_tokens, prompt_dtype)
    device = compute_device(model)
    dtype = cache.keys[0].dtype
    searches = [
        _Search(len(prompt), tokens, lp, threshold=threshold, budget=budget, gate=gate, has_guess=guess is not None)
        for prompt, tokens, lp, guess in zip(prompts, guess_tokens, log_probs, guesses, strict=True)
    ]
    with grouped_attention(model):
        _shared_passes(model, list(searches), cache, base, device, dtype)
    for search in searches:
        search.results.sort(key=lambda c: c.nll)
    return [s.results for s in searches]


def _shared_passes(model: torch.nn.Module, live: list[_Search], cache: _ColumnCache, base: int,
                   device: torch.device, dtype: torch.dtype) -> None:
    """Advance the searches together, one node each per pass, until every one is done."""
    passes = 0
    while True:
        tokens = [s.advance() for s in live]
        if any(t is None for t in tokens):
            keep = [r for r, t in enumerate(tokens) if t is not None]
            if not keep:
                break
            cache.select_rows(torch.tensor(keep, device=device))
            live = [live[r] for r in keep]
            tokens = [tokens[r] for r in keep]
        _make_room(cache, live, base)
        width = cache.length + 1
        out = model(
            input_ids=torch.tensor(tokens, device=device)[:, None],
            position_ids=torch.tensor([s.position for s in live], device=device)[:, None],
            attention_mask=_attention_mask(live, width, dtype, device),
            past_key_values=cache,
            use_cache=True,
        )
        column = cache.length
        cache.length += 1
        passes += 1
        next_log_probs = _log_probs(out.logits[:, -1])
        for r, search in enumerate(live):
            search.expand(next_log_probs[r], column)
    logger.debug("dfs: %d shared passes", passes)
