"""Candidates for one test input: views, decode, invert, merge, score, rank.

    test input -> ``decoding_keys`` (N views) -> decode each view (DFS, greedy or sampling) -> invert the
    replies to the original frame -> merge equal grids (with the outputs of programs) -> NLL under K
    ``scoring_keys`` views -> ranked candidates

``candidates_for`` is that line; the model and its tokenizer come in a ``ModelSession``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .arc_loader import ArcDataset, AugmentOptions, Key, Task, d8_keys, random_key
from .formats import FormatParseError
from .grids import ArcDataError, Grid
from .inference_tools import (
    DECODERS,
    DEFAULT_DFS_ROWS,
    DEFAULT_MIN_PROB,
    MAX_REPLY_TOKENS,
    Candidate,
    DecodeOptions,
    decode,
    dfs_decode_many,
    reply_nlls_many,
    torch_generator,
)
from .model_session import ModelSession
from .model_tools import compute_device
from .selection import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    ScoredCandidate,
    add_program_candidates,
    merge_candidates,
    rank_candidates,
)


@dataclass
class DecodingConfig:
    """How each test input is decoded: the decoder, its threshold and the views it runs under."""

    decoder: str = field(default="dfs", metadata={"help": "how candidates are decoded", "choices": tuple(DECODERS)})
    min_prob: float = field(default=DEFAULT_MIN_PROB, metadata={
        "help": "DFS threshold: keep replies with probability >= this"})
    views: int = field(default=8, metadata={"help": "augmented views each test input is decoded under"})


@dataclass
class ScoringConfig:
    """How candidates are scored and ranked, and how the two attempts are chosen from them."""

    views: int = field(default=8, metadata={"flag": "scoring_views",
                                            "help": "augmented views each candidate is scored under"})
    aggregation: str = field(default=DEFAULT_AGGREGATION, metadata={
        "help": "how scores rank candidates", "choices": tuple(AGGREGATIONS)})
    search_attempt: bool = field(default=True, metadata={
        "help": "when the ranking puts no answer of the program search among the two attempts, its best-ranked "
                "one becomes the second attempt"})


class CandidateSettings(Protocol):
    """The settings of an evaluation that decoding and scoring read (``EvalConfig`` has them)."""

    decoding: DecodingConfig
    scoring: ScoringConfig
    keep_background: bool


def decoding_keys(task: Task, test_index: int, n: int, rng: np.random.Generator, keep_background: bool) -> list[Key]:
    """``n`` views of a test input: the eight D8 transforms in turn (identity first), each with a random
    colour permutation (the identity view keeps its colours) and shuffled examples."""
    keys = []
    d8 = d8_keys(Key(task.task_id, test_index))
    for i in range(n):
        base = d8[i % len(d8)]
        if i == 0:
            keys.append(base)
            continue
        opts = AugmentOptions(d8=False, colours=True, keep_background=keep_background, shuffle_examples=True)
        keys.append(random_key(base, len(task.train), rng, opts))
    return keys


def scoring_keys(task: Task, test_index: int, n: int, rng: np.random.Generator, keep_background: bool) -> list[Key]:
    """``n`` random views for scoring, drawn independently of the decoding views."""
    opts = AugmentOptions(keep_background=keep_background)
    return [random_key(Key(task.task_id, test_index), len(task.train), rng, opts) for _ in range(n)]


def fit_key(dataset: ArcDataset, key: Key, session: ModelSession, reply_room: int) -> Key:
    """The key with training examples dropped until the prompt leaves ``reply_room`` tokens free (the prompt
    alone: a test output the dataset knows, from a solutions file, changes nothing)."""
    fitted, too_long = dataset.with_keys([key]).fit_to_budget(
        session.fmt, session.max_tokens - reply_room, session.count_tokens, with_reply=False)
    if too_long:
        raise ArcDataError(f"view {key} needs {too_long[0][1]} tokens with one example and {reply_room} for the "
                           f"reply; the context is {session.max_tokens} tokens", task_id=key.task_id)
    return fitted.keys[0]


def fitting_keys(dataset: ArcDataset, keys: Sequence[Key], session: ModelSession, reply_room: int) -> list[Key]:
    """``fit_key`` of each key, leaving out the views whose prompt cannot leave that room even with one example
    (a transposed grid writes more rows, so a task at the context's edge may fit under some views only)."""
    fitted = []
    for key in keys:
        try:
            fitted.append(fit_key(dataset, key, session, reply_room))
        except ArcDataError:
            continue
    return fitted


def unreadable(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession) -> str:
    """Why the model cannot answer a test input: its prompt as given, with one example, leaves no room for the
    reply in the context; "" when it can."""
    try:
        fit_key(dataset, Key(task.task_id, test_index), session, reply_room(task, session.fmt))
    except ArcDataError as e:
        return str(e)
    return ""


def unread_candidates(program_grids: Sequence[Grid], search_grids: Sequence[Grid]) -> list[ScoredCandidate]:
    """The candidates of a test input the model cannot read: the programs' grids, in their order, no scores."""
    candidates: list[ScoredCandidate] = []
    add_program_candidates(candidates, program_grids)
    add_program_candidates(candidates, search_grids, searched=True)
    return candidates


def reply_room(task: Task, fmt) -> int:
    """Tokens to keep free for the reply: twice the largest grid's reply in the task (outputs rarely
    outgrow that), at most the largest possible reply. One token per character after shrinking."""
    largest = max(len(fmt.reply_text(g)) for e in (*task.train, *task.test) for g in (e.input, e.output)
                  if g is not None)
    return min(MAX_REPLY_TOKENS, 2 * largest)


def candidates_room(task: Task, session: ModelSession, candidates: Sequence[ScoredCandidate]) -> int:
    """Tokens to keep free for the candidates as replies in any view: ``reply_room`` (the decoders wrote
    no longer reply), or more for a program's output larger than that (transposed, too)."""
    return max([reply_room(task, session.fmt),
                *(session.count_tokens(session.fmt.reply_text(g)) for c in candidates
                  if c.from_program or c.from_search
                  for g in (c.grid, c.grid.T))])


def candidates_for(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession, config: CandidateSettings,
                   rng: np.random.Generator, deadline: float, program_grids: Sequence[Grid] = (),
                   search_grids: Sequence[Grid] = ()) -> tuple[list[ScoredCandidate], list[Grid | None]]:
    """Decode one test input under several views, invert, merge (with ``program_grids``, the outputs of
    sampled programs for it, and ``search_grids``, those of the program search), and score the candidates."""
    room = reply_room(task, session.fmt)
    found: list[tuple[Grid, float]] = []
    per_view: list[Grid | None] = []
    best_text: tuple[float, Grid] | None = None
    checker = session.fmt.reply_checker()
    generator = torch_generator(rng, compute_device(session.model))
    # replies longer than the room kept for them are cut: an untrained model otherwise writes
    # hundreds of tokens of grid-shaped noise per view
    decoding, scoring = config.decoding, config.scoring
    options = DecodeOptions(name=decoding.decoder, min_prob=decoding.min_prob, max_new_tokens=room)
    model_args = dict(eos_id=session.eos_id, token_texts=session.token_texts, checker=checker)

    def prompt_of(key: Key) -> list[int]:
        return session.ids(dataset.render(key, session.fmt, with_reply=False).prompt)

    def guess_for(key: Key) -> list[int] | None:
        """The best candidate so far, transformed into this view (the end token follows): followed first."""
        return None if best_text is None else session.ids(session.fmt.reply_text(key.transform(best_text[1])))[:-1]

    def take(key: Key, cands: Sequence[Candidate]) -> None:
        nonlocal best_text
        view_best = None
        for cand in cands:
            try:
                grid = key.invert(session.fmt.parse_reply(cand.text))
            except FormatParseError:
                continue  # text the checker let through but the strict parser refuses: not a candidate
            found.append((grid, cand.nll))
            if view_best is None:
                view_best = grid
            if best_text is None or cand.nll < best_text[0]:
                best_text = (cand.nll, grid)
        per_view.append(view_best)

    keys = decoding_keys(task, test_index, decoding.views, rng, config.keep_background)
    if decoding.decoder == "dfs":
        # up to 8 views at a time, their searches advancing together, one token each per shared pass (fewer passes
        # than the first view alone and then the others with its best candidate as their guess: the searches'
        # passes overlap); a later group checks the best candidate so far in its prompt pass
        for begin in range(0, len(keys), DEFAULT_DFS_ROWS):
            if time.monotonic() > deadline:
                break
            group = fitting_keys(dataset, keys[begin: begin + DEFAULT_DFS_ROWS], session, room)
            decoded = dfs_decode_many(session.model, [prompt_of(key) for key in group], min_prob=options.min_prob,
                                      max_new_tokens=room, guesses=[guess_for(key) for key in group],
                                      prompt_dtype=session.formats.prompt, **model_args)
            for key, cands in zip(group, decoded):
                take(key, cands)
    else:
        for key in fitting_keys(dataset, keys, session, room):
            if time.monotonic() > deadline:
                break
            take(key, decode(options, session.model, prompt_of(key), guess=guess_for(key), generator=generator,
                             **model_args))
    candidates = merge_candidates(found)
    from_programs_only = add_program_candidates(candidates, program_grids)
    from_programs_only += add_program_candidates(candidates, search_grids, searched=True)
    if from_programs_only:
        # A program's grid that no view decoded has no generation NLL. It gets one: its NLL as the reply to
        # the task as given (identity view, examples in order), so max-generation-probability and vote's
        # tie-break rank it like a grid decoded under that view, and it counts as one vote.
        for cand, nll in zip(from_programs_only, identity_nlls(dataset, task, test_index, from_programs_only,
                                                               session)):
            cand.generation_nlls.append(nll)
    if candidates and scoring.views and scoring.aggregation not in ("vote", "max-generation-probability"):
        score_candidates(dataset, task, test_index, candidates, session, config, rng)
    return (rank_candidates(candidates, scoring.aggregation, scoring.search_attempt) if candidates else []), per_view


def view_nlls(dataset: ArcDataset, task: Task, keys: Sequence[Key], candidates: Sequence[ScoredCandidate],
              session: ModelSession) -> list[list[float]]:
    """Per key whose view leaves the candidates room in the context (the others are left out), each candidate's
    NLL as the reply of that view: each view's prompt runs once (short ones several to a pass), the candidates'
    replies run in batches on its KV cache."""
    if not candidates:
        return [[] for _ in keys]
    room = candidates_room(task, session, candidates)
    prompts, replies = [], []
    for key in fitting_keys(dataset, keys, session, room):
        view = dataset.view(key)
        rendered = [session.fmt.render(view.train, view.test_input, key.transform(c.grid)) for c in candidates]
        prompt = rendered[0].prompt
        if any(r.prompt != prompt for r in rendered):
            raise ValueError(f"view {key}: the format renders a prompt that depends on the reply")
        prompts.append(session.ids(prompt))
        replies.append([session.ids(r.reply) for r in rendered])
    found = reply_nlls_many(session.model, prompts, replies, dtype=session.formats.scoring)
    return [[float(x) for x in nlls] for nlls in found]


def score_candidates(dataset: ArcDataset, task: Task, test_index: int, candidates: Sequence[ScoredCandidate],
                     session: ModelSession, config: CandidateSettings, rng: np.random.Generator) -> None:
    """Each candidate's NLL under ``config.scoring.views`` augmented views."""
    keys = scoring_keys(task, test_index, config.scoring.views, rng, config.keep_background)
    for per_candidate in view_nlls(dataset, task, keys, candidates, session):
        for cand, nll in zip(candidates, per_candidate):
            cand.scoring_nlls.append(nll)


def identity_nlls(dataset: ArcDataset, task: Task, test_index: int, candidates: Sequence[ScoredCandidate],
                  session: ModelSession) -> list[float]:
    """Each candidate's NLL as the reply to the task as given (no augmentation); none when that view cannot hold
    them."""
    found = view_nlls(dataset, task, [Key(task.task_id, test_index)], candidates, session)
    return found[0] if found else []

