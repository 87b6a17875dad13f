"""The evaluation pipeline: from a challenges file to a verified submission.json.

    load challenges -> for each task: [test-time training] -> [sample programs, run them in a sandbox]
    -> decode each test input under N views -> invert candidates to the original frame -> merge (with the
    programs' outputs) -> score under K views -> choose two attempts
    -> write submission.json atomically -> read it back and validate -> with solutions: score, metrics, report

`run_evaluation` is that diagram in three calls: `start_run` (load the challenges and the model),
`solve_tasks` (one task after another) and `finish_run` (write, verify, score, report); each step is a
call into the module that owns it. `training_code.distributed` runs the same three steps with the tasks
split across processes. A task that fails anywhere is logged with why and answered with the fallback;
the submission always covers every test input of every task in the challenges file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import model_tools
from .arc_loader import ArcDataset, AugmentOptions, Key, Task, random_key
from .cli import OptionError, save_config
from .formats import FormatParseError, format_from_spec
from .grids import ArcDataError, Grid, grid_to_list
from .induction.code_tasks import ProgramChecker, code_alphabet, program_from_reply, render_code_from_examples
from .induction.program_search import SEARCH_VERSION, SearchConfig, search_task
from .induction.sandbox import ProgramOutputs, Sandbox, program_outputs
from .inference_tools import (
    BF16_CHOICES,
    DECODERS,
    DEFAULT_DFS_ROWS,
    MAX_REPLY_TOKENS,
    Candidate,
    DecodeOptions,
    StageFormats,
    decode,
    dfs_decode_many,
    reply_nlls,
    sample_decode,
    stage_formats,
    torch_generator,
)
from .metrics import evaluate
from .selection import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    ScoredCandidate,
    add_program_candidates,
    merge_candidates,
    rank_candidates,
)
from .submission import build_submission, score_submission, write_verified_submission
from .training import TrainConfig, leave_one_out_views, train

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FELL_BACK = 0, 3  # exit status of the run_evaluation_* scripts
# A task may use at most this many fair shares of the time left (time left / tasks left), so that one
# slow task cannot eat the budget of the tasks after it; 2 lets a big task take what small ones leave.
TASK_SHARES = 2.0
# Programs sampled per forward pass: every row holds its own copy of the prompt's KV cache, so all of
# --program-samples at once could take gigabytes with a long prompt on a large model.
PROGRAM_BATCH = 8


@dataclass
class EvalConfig:
    """Everything an evaluation run depends on. Entry scripts are presets of this."""

    challenges: str = field(default="input/arc-agi_evaluation_challenges.json",
                            metadata={"help": "Kaggle challenges JSON"})
    solutions: str = field(default="auto", metadata={
        "help": "solutions JSON; 'auto': the _solutions file beside the challenges if there is one; '' for none"})
    output: str = field(default="output/smollm2", metadata={"help": "folder for submission.json and the report"})
    tasks: str = field(default="", metadata={
        "help": "task ids joined by commas, or a count N: the N tasks with the shortest rendering; '' for all"})
    model: str = field(default="smollm2-135m", metadata={"help": "bundled model name or a local model path"})
    adapter: str = field(default="", metadata={"help": "a LoRA adapter to apply (and merge) before anything else"})
    format: str = field(default="architects", metadata={
        "help": "text format spec (see training_code.formats)", "check": format_from_spec})
    backend: str = field(default="auto", metadata={"help": "the model's library", "choices": model_tools.BACKENDS})
    load_in_4bit: str = field(default="auto", metadata={
        "help": "auto: 4-bit on CUDA, except 16 bits when an --adapter is merged into the base",
        "choices": model_tools.FOUR_BIT_CHOICES})
    max_tokens: int = field(default=8192, metadata={"help": "token budget of one rendered view"})
    ttt: bool = field(default=True, metadata={"help": "test-time training on each task's own examples"})
    ttt_steps: int = field(default=16, metadata={"help": "optimizer steps of test-time training per task"})
    ttt_batch_size: int = 2
    ttt_learning_rate: float = 1e-4
    ttt_lora_r: int = 16
    ttt_lora_alpha: int = 16
    decoder: str = field(default="dfs", metadata={"help": "how candidates are decoded", "choices": tuple(DECODERS)})
    min_prob: float = field(default=0.1, metadata={"help": "DFS threshold: keep replies with probability >= this"})
    views: int = field(default=8, metadata={"help": "augmented views each test input is decoded under"})
    scoring_views: int = field(default=8, metadata={"help": "augmented views each candidate is scored under"})
    bf16_passes: str = field(default="auto", metadata={
        "help": "bfloat16 (autocast) prompt passes of decoding and scoring passes: no keeps the model's own format "
                "throughout; auto: yes on CUDA with bf16 and on CPUs with bf16 instructions",
        "choices": BF16_CHOICES})
    aggregation: str = field(default=DEFAULT_AGGREGATION, metadata={
        "help": "how scores rank candidates", "choices": tuple(AGGREGATIONS)})
    program_samples: int = field(default=0, metadata={
        "help": "programs sampled per task with the code-from-examples prompt and run in a sandbox; the outputs "
                "of those that reproduce the examples join the candidates (0: off); when on, the vocabulary "
                "keeps the code alphabet, so an --adapter must be fine-tuned with a code source"})
    program_temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the programs"})
    program_max_tokens: int = field(default=1024, metadata={
        "help": "longest program in tokens (end token included); the prompt drops examples to leave this room"})
    program_timeout: float = field(default=1.0, metadata={
        "help": "seconds a program may run on one grid (the task's deadline stops it sooner)"})
    search_seconds: float = field(default=0.0, metadata={
        "help": "seconds of program search over the DSL per task (no model); the outputs of programs that "
                "reproduce the examples join the candidates, scored and ranked with the model's (0: off)"})
    keep_background: bool = field(default=True, metadata={"help": "colour permutations keep colour 0"})
    seed: int = 0
    time_budget: float = field(default=0.0, metadata={"help": "seconds; stop starting new work in time (0: none)"})
    cache: bool = field(default=True, metadata={"help": "cache task results on disk so a killed run resumes"})
    report: bool = field(default=True, metadata={"help": "write report.json and a picture per task"})
    progress: bool = True


@dataclass
class TaskResult:
    """What one task produced: per test input, the ranked candidates and the per-view predictions."""

    task_id: str
    candidates: dict[int, list[ScoredCandidate]] = field(default_factory=dict)
    view_predictions: dict[int, list[Grid | None]] = field(default_factory=dict)  # best grid of each view
    error: str = ""
    seconds: float = 0.0
    programs_sampled: int = 0  # distinct complete programs sampled (--program-samples)
    programs_valid: int = 0  # of those, the ones that reproduce every training pair
    search_programs: dict[int, list[str]] = field(default_factory=dict)  # per test input, the search's programs

    def to_json(self) -> dict:
        return {
            "task_id": self.task_id, "error": self.error, "seconds": self.seconds,
            "programs_sampled": self.programs_sampled, "programs_valid": self.programs_valid,
            "search_programs": {str(i): p for i, p in self.search_programs.items()},
            "candidates": {str(i): [{"grid": grid_to_list(c.grid), "generation_nlls": c.generation_nlls,
                                     "scoring_nlls": c.scoring_nlls, "from_program": c.from_program,
                                     "from_search": c.from_search}
                                    for c in cands]
                           for i, cands in self.candidates.items()},
            "view_predictions": {str(i): [None if g is None else grid_to_list(g) for g in preds]
                                 for i, preds in self.view_predictions.items()},
        }

    @classmethod
    def from_json(cls, obj: dict) -> TaskResult:
        return cls(
            obj["task_id"],
            {int(i): [ScoredCandidate(np.asarray(c["grid"], dtype=np.uint8), list(c["generation_nlls"]),
                                      list(c["scoring_nlls"]), bool(c.get("from_program", False)),
                                      bool(c.get("from_search", False)))
                      for c in cands]
             for i, cands in obj["candidates"].items()},
            {int(i): [None if g is None else np.asarray(g, dtype=np.uint8) for g in preds]
             for i, preds in obj["view_predictions"].items()},
            obj["error"], obj["seconds"], obj.get("programs_sampled", 0), obj.get("programs_valid", 0),
            {int(i): list(p) for i, p in obj.get("search_programs", {}).items()},
        )


@dataclass
class EvalSummary:
    submission_path: Path
    fell_back: list[tuple[str, int]]
    errors: dict[str, str]
    score: Any = None  # KaggleScore when solutions were given
    metrics: dict[str, float] | None = None
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        return EXIT_FELL_BACK if self.fell_back else EXIT_OK


# --------------------------------------------------------------------------------------------------
# Small pieces


def stable_seed(*parts: Any) -> int:
    """A seed from text parts (task id, run seed): independent of task order, so resumed and partial
    runs draw the same views as a full one."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def select_tasks(dataset: ArcDataset, spec: str, fmt) -> list[str]:
    """Task ids from ``--tasks``: ids joined by commas, a count N (the N shortest renderings, ties by id)
    or '' for all, in id order."""
    spec = spec.strip()
    if not spec:
        return sorted(dataset.tasks)
    if spec.isdigit():
        lengths: dict[str, int] = {}
        for key, length in zip(dataset.keys, dataset.lengths(fmt)):
            lengths[key.task_id] = max(length, lengths.get(key.task_id, 0))
        return sorted(sorted(lengths, key=lambda t: (lengths[t], t))[: int(spec)])
    ids = [t.strip() for t in spec.split(",") if t.strip()]
    known = set(dataset.tasks) | {e.task_id for e in dataset.skipped}  # a task that failed to load falls back
    unknown = [t for t in ids if t not in known]
    if unknown:
        raise ValueError(f"--tasks names tasks not in the challenges: {', '.join(unknown)}")
    return ids


def task_ids_in(challenges: str | Path) -> list[str]:
    """The task ids of a challenges file, read without loading the tasks; OptionError naming
    ``--challenges`` when it is missing or not a JSON object of tasks."""
    path = Path(challenges)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise OptionError("--challenges", f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise OptionError("--challenges", f"{str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(tasks, dict):
        raise OptionError("--challenges", f"{str(path)!r} is not a JSON object of tasks by id")
    return list(tasks)


def check_task_spec(spec: str, challenges: str | Path) -> None:
    """OptionError unless ``--tasks`` is '' (all), a count, or ids joined by commas that the
    challenges file holds; the message names the unknown ids and some valid ones."""
    spec = spec.strip()
    if not spec or spec.isdigit():
        return
    known = task_ids_in(challenges)
    ids = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in ids if t not in set(known)]
    if unknown or not ids:
        examples = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise OptionError("--tasks", f"invalid task ids {', '.join(unknown) or repr(spec)}: not in {challenges} "
                                     f"(a count N, or ids of its {len(known)} tasks joined by commas: {examples})")


def check_options(config: EvalConfig) -> None:
    """What the fields alone cannot check: ``--tasks`` ids against the ``--challenges`` file."""
    check_task_spec(config.tasks, config.challenges)


def decoding_keys(task: Task, test_index: int, n: int, rng: np.random.Generator, keep_background: bool) -> list[Key]:
    """``n`` views of a test input: the eight D8 transforms in turn (identity first), each with a random
    colour permutation (the identity view keeps its colours) and shuffled examples."""
    keys = []
    for i in range(n):
        transpose, rotation = bool((i // 4) % 2), i % 4
        base = Key(task.task_id, test_index, transpose, rotation)
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


class ModelSession:
    """A loaded, shrunk model with its tokenizer and format: turns views into token ids and back."""

    def __init__(self, loaded: model_tools.LoadedModel, fmt, max_tokens: int, formats: StageFormats = StageFormats()):
        self.loaded = loaded
        self.formats = formats  # the number format of the prompt passes and of scoring
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.fmt = fmt
        self.max_tokens = max_tokens
        vocab = len(self.tokenizer)
        self.token_texts = [self.tokenizer.decode([i]) for i in range(vocab)]
        self.eos_id = self.tokenizer.eos_token_id

    def ids(self, text: str) -> list[int]:
        # no special tokens added: training (MaskingCollator(add_special_tokens=False)) sees the same ids
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.ids(text))


# --------------------------------------------------------------------------------------------------
# One task


def fit_key(dataset: ArcDataset, key: Key, session: ModelSession, reply_room: int) -> Key:
    """The key with training examples dropped until the prompt leaves ``reply_room`` tokens free."""
    fitted, too_long = dataset.with_keys([key]).fit_to_budget(
        session.fmt, session.max_tokens - reply_room, session.count_tokens)
    if too_long:
        raise ArcDataError(f"view {key} needs {too_long[0][1]} tokens with one example and {reply_room} for the "
                           f"reply; the context is {session.max_tokens} tokens", task_id=key.task_id)
    return fitted.keys[0]


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


def candidates_for(dataset: ArcDataset, task: Task, test_index: int, session: ModelSession, config: EvalConfig,
                   rng: np.random.Generator, deadline: float, program_grids: Sequence[Grid] = (),
                   search_grids: Sequence[Grid] = ()) -> tuple[list[ScoredCandidate], list[Grid | None]]:
    """Decode one test input under several views, invert, merge (with ``program_grids``, the outputs of
    sampled programs for it, and ``search_grids``, those of the program search), and score the candidates."""
    room = reply_room(task, session.fmt)
    found: list[tuple[Grid, float]] = []
    per_view: list[Grid | None] = []
    best_text: tuple[float, Grid] | None = None
    checker = session.fmt.reply_checker()
    generator = torch_generator(rng, next(session.model.parameters()).device)
    # replies longer than the room kept for them are cut: an untrained model otherwise writes
    # hundreds of tokens of grid-shaped noise per view
    options = DecodeOptions(name=config.decoder, min_prob=config.min_prob, max_new_tokens=room)
    decoding = dict(eos_id=session.eos_id, token_texts=session.token_texts, checker=checker)

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

    keys = decoding_keys(task, test_index, config.views, rng, config.keep_background)
    if config.decoder == "dfs":
        # up to 8 views at a time, their searches advancing together, one token each per shared pass (fewer passes
        # than the first view alone and then the others with its best candidate as their guess: the searches'
        # passes overlap); a later group checks the best candidate so far in its prompt pass
        for begin in range(0, len(keys), DEFAULT_DFS_ROWS):
            if time.monotonic() > deadline:
                break
            group = [fit_key(dataset, key, session, room) for key in keys[begin: begin + DEFAULT_DFS_ROWS]]
            decoded = dfs_decode_many(session.model, [prompt_of(key) for key in group], min_prob=options.min_prob,
                                      max_new_tokens=room, guesses=[guess_for(key) for key in group],
                                      prompt_dtype=session.formats.prompt, **decoding)
            for key, cands in zip(group, decoded):
                take(key, cands)
    else:
        for key in keys:
            if time.monotonic() > deadline:
                break
            key = fit_key(dataset, key, session, room)
            take(key, decode(options, session.model, prompt_of(key), guess=guess_for(key), generator=generator,
                             **decoding))
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
    if candidates and config.scoring_views and config.aggregation not in ("vote", "max-generation-probability"):
        score_candidates(dataset, task, test_index, candidates, session, config, rng)
    return rank_candidates(candidates, config.aggregation) if candidates else [], per_view


def view_nlls(dataset: ArcDataset, task: Task, keys: Sequence[Key], candidates: Sequence[ScoredCandidate],
              session: ModelSession) -> list[list[float]]:
    """Per key, each candidate's NLL as the reply of that view: the view's prompt runs once, the
    candidates' replies run in batches on its KV cache."""
    room = candidates_room(task, session, candidates)
    per_key = []
    for key in keys:
        key = fit_key(dataset, key, session, room)
        view = dataset.view(key)
        rendered = [session.fmt.render(view.train, view.test_input, key.transform(c.grid)) for c in candidates]
        if not rendered:
            per_key.append([])
            continue
        prompt = rendered[0].prompt
        if any(r.prompt != prompt for r in rendered):
            raise ValueError(f"view {key}: the format renders a prompt that depends on the reply")
        per_key.append([float(x) for x in reply_nlls(session.model, session.ids(prompt),
                                                      [session.ids(r.reply) for r in rendered],
                                                      dtype=session.formats.scoring)])
    return per_key


def score_candidates(dataset: ArcDataset, task: Task, test_index: int, candidates: Sequence[ScoredCandidate],
                     session: ModelSession, config: EvalConfig, rng: np.random.Generator) -> None:
    """Each candidate's NLL under ``scoring_views`` augmented views."""
    keys = scoring_keys(task, test_index, config.scoring_views, rng, config.keep_background)
    for per_candidate in view_nlls(dataset, task, keys, candidates, session):
        for cand, nll in zip(candidates, per_candidate):
            cand.scoring_nlls.append(nll)


def identity_nlls(dataset: ArcDataset, task: Task, test_index: int, candidates: Sequence[ScoredCandidate],
                  session: ModelSession) -> list[float]:
    """Each candidate's NLL as the reply to the task as given (no augmentation)."""
    return view_nlls(dataset, task, [Key(task.task_id, test_index)], candidates, session)[0]


# --------------------------------------------------------------------------------------------------
# Programs


def sampled_programs(task: Task, session: ModelSession, config: EvalConfig, deadline: float) -> list[str]:
    """Distinct program texts sampled with the code-from-examples prompt of the task's training examples
    (the last ones dropped until the prompt leaves ``program_max_tokens`` free); none once ``deadline``
    has passed or when even one example leaves no room."""
    if time.monotonic() > deadline:
        log.info("task %s: deadline passed, no programs sampled", task.task_id)
        return []
    examples = [(e.input, e.output) for e in task.train]
    prompt_ids: list[int] = []
    while examples:
        prompt_ids = session.ids(render_code_from_examples(session.fmt, examples).prompt)
        if len(prompt_ids) + config.program_max_tokens <= session.max_tokens:
            break
        examples.pop()
    if not examples:
        log.info("task %s: no programs sampled: one example and %d tokens for the program exceed the %d-token "
                 "context", task.task_id, config.program_max_tokens, session.max_tokens)
        return []
    # a generator of its own: decoding draws the same views whether programs are sampled or not
    rng = np.random.default_rng(stable_seed(config.seed, task.task_id, "programs"))
    generator = torch_generator(rng, next(session.model.parameters()).device)
    replies = sample_decode(session.model, prompt_ids, eos_id=session.eos_id, token_texts=session.token_texts,
                            checker=ProgramChecker(session.tokenizer.all_special_tokens), n=config.program_samples,
                            temperature=config.program_temperature, generator=generator,
                            max_new_tokens=config.program_max_tokens, batch_size=PROGRAM_BATCH)
    return [program_from_reply(session.fmt, reply.text) for reply in replies]


def run_programs(task: Task, sources: Sequence[str], sandbox: Sandbox, deadline: float) -> ProgramOutputs:
    """The programs' outputs for the task (no program starts after ``deadline``); none when the sandbox
    itself fails (the task goes on)."""
    try:
        return program_outputs(task, sources, sandbox=sandbox, deadline=deadline)
    except (RuntimeError, OSError, ValueError) as e:  # the worker did not start, a pipe broke...
        log.warning("task %s: the sandbox failed, no program candidates: %s: %s", task.task_id, type(e).__name__, e)
        sandbox.close()  # the next task starts a fresh worker
        return ProgramOutputs((), tuple(() for _ in task.test))


def solve_task(dataset: ArcDataset, task_id: str, session: ModelSession, config: EvalConfig,
               deadline: float, sandbox: Sandbox | None = None) -> TaskResult:
    """Test-time training (optional), sampled programs (optional, run in ``sandbox``; a fresh one when
    None), then candidates for every test input of one task."""
    began = time.monotonic()
    task = dataset.tasks[task_id]
    rng = np.random.default_rng(stable_seed(config.seed, task_id))
    result = TaskResult(task_id)
    adapter = None
    if config.ttt:
        adapter = test_time_train(dataset, task_id, session, config, rng)
    own_sandbox = sandbox is None and config.program_samples > 0
    if own_sandbox:
        sandbox = Sandbox(timeout=config.program_timeout)
    try:
        program_grids: Sequence[Sequence[Grid]] = [() for _ in task.test]
        if config.program_samples > 0:  # after test-time training: the model has learnt this task
            try:
                sources = sampled_programs(task, session, config, deadline)
            except (RuntimeError, ValueError, MemoryError) as e:
                # programs are an extra: their failure (out of memory, say) must not cost the task its grids
                log.warning("task %s: program sampling failed, no program candidates: %s: %s", task_id,
                            type(e).__name__, e)
                sources = []
            result.programs_sampled = len(sources)
            if sources:
                outputs = run_programs(task, sources, sandbox, deadline)
                program_grids, result.programs_valid = outputs.per_test, len(outputs.valid)
            log.info("task %s: %d programs sampled, %d reproduce the examples", task_id, result.programs_sampled,
                     result.programs_valid)
        search_grids = searched_candidates(task, config, deadline, result)
        for test_index in range(len(task.test)):
            cands, per_view = candidates_for(dataset, task, test_index, session, config, rng, deadline,
                                             program_grids[test_index], search_grids[test_index])
            result.candidates[test_index] = cands
            result.view_predictions[test_index] = per_view
    finally:
        if adapter is not None:
            session.model = model_tools.remove_adapter(session.model)
        if own_sandbox:
            sandbox.close()
    result.seconds = time.monotonic() - began
    return result


def searched_candidates(task: Task, config: EvalConfig, deadline: float, result: TaskResult) -> list[list[Grid]]:
    """Per test input, the outputs of the programs the program search finds in ``search_seconds`` (none when
    off); their texts go to ``result.search_programs``. The search runs before decoding, on the CPU."""
    if config.search_seconds <= 0:
        return [[] for _ in task.test]
    seconds = min(config.search_seconds, deadline - time.monotonic())
    if seconds <= 0:
        return [[] for _ in task.test]
    found = search_task([(e.input, e.output) for e in task.train], [e.input for e in task.test],
                        SearchConfig(seconds=seconds), task.task_id)
    result.search_programs = dict(enumerate(found.programs))
    log.info("task %s: the program search reached depth %d in %.1f s, %d programs", task.task_id, found.depth,
             found.seconds, len({p for ps in found.programs for p in ps}))
    return found.candidates


def test_time_train(dataset: ArcDataset, task_id: str, session: ModelSession, config: EvalConfig,
                    rng: np.random.Generator):
    """A fresh LoRA trained on leave-one-out views of the task's own examples; the model is left wrapped."""
    data = leave_one_out_views(dataset, [task_id], rng, views=8,
                               options=AugmentOptions(keep_background=config.keep_background))
    if not data.keys:
        log.info("task %s: too few examples for test-time training", task_id)
        return None
    data, too_long = data.fit_to_budget(session.fmt, session.max_tokens, session.count_tokens)
    if not data.keys:
        return None
    seed = stable_seed(config.seed, task_id, "ttt")
    # the loaded backend's LoRA: unsloth's get_peft_model (its fused LoRA kernels) on unsloth. Each task
    # attaches a fresh adapter and removes it after; peft's unload undoes it exactly (tests check it, 4-bit
    # included), and unsloth's patched layers fall back to the plain weights once the adapter is gone
    session.model = model_tools.add_lora(session.model, r=config.ttt_lora_r, alpha=config.ttt_lora_alpha,
                                         seed=seed % (2**31), backend=session.loaded.backend)
    train_config = TrainConfig(learning_rate=config.ttt_learning_rate, embedding_learning_rate=config.ttt_learning_rate,
                               max_steps=config.ttt_steps, batch_size=config.ttt_batch_size, warmup_ratio=0.1,
                               seed=seed % (2**31), on_the_fly=False, progress=False, log_every=0,
                               max_length=session.max_tokens)
    collate = model_tools.MaskingCollator(session.tokenizer, max_length=session.max_tokens, add_special_tokens=False)
    train(session.model, collate, data.shuffled(rng), session.fmt, train_config, description=f"ttt {task_id}")
    return session.model


# --------------------------------------------------------------------------------------------------
# The run


def result_cache(config: EvalConfig):
    """A disk cache of finished tasks; `task_cache_key` keys it by everything a result depends on."""
    if not config.cache:
        return None
    import diskcache

    return diskcache.Cache(str(Path(config.output) / "cache"))


def task_cache_key(fingerprint: str, task: Task, config: EvalConfig) -> str:
    """Model and adapter fingerprint, the task's content and every option that changes its result."""
    relevant = {k: v for k, v in asdict(config).items()
                if k not in ("challenges", "solutions", "output", "tasks", "time_budget", "cache", "report",
                             "progress")}
    if not config.program_samples:  # programs off: their settings change nothing (and earlier caches stay valid)
        relevant = {k: v for k, v in relevant.items() if not k.startswith("program_")}
    if config.search_seconds:  # a changed search finds other programs
        relevant["search_version"] = SEARCH_VERSION
    else:  # search off: earlier caches stay valid
        relevant.pop("search_seconds")
    # test outputs are left out: knowing the solutions must not change what the model is asked
    content = ([[grid_to_list(e.input), grid_to_list(e.output)] for e in task.train]
               + [[grid_to_list(e.input)] for e in task.test])
    payload = json.dumps([fingerprint, task.task_id, content, relevant], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_challenges(config: EvalConfig) -> tuple[ArcDataset, dict[str, int]]:
    """The challenges (bad tasks left out with a warning) and the test counts of every task in the file,
    bad ones included, so that each still gets its two attempts."""
    challenges = Path(config.challenges)
    solutions = None
    if config.solutions == "auto":
        guess = challenges.with_name(challenges.name.replace("_challenges", "_solutions"))
        solutions = guess if "_challenges" in challenges.name and guess.is_file() else None
    elif config.solutions:
        solutions = Path(config.solutions)
    dataset = ArcDataset.from_kaggle(challenges, solutions, skip_bad=True)
    raw = json.loads(challenges.read_text(encoding="utf-8"))
    counts = {}
    for task_id, task in raw.items():
        tests = task.get("test") if isinstance(task, dict) else None
        counts[task_id] = max(1, len(tests)) if isinstance(tests, list) else 1
    return dataset, counts


@dataclass
class EvalRun:
    """A run with its inputs loaded: what solving tasks and writing the submission need."""

    config: EvalConfig
    dataset: ArcDataset
    session: ModelSession
    task_ids: list[str]  # the selected tasks that loaded, in the order they are solved
    test_counts: dict[str, int]  # every selected task of the file (bad ones too) -> its number of test inputs
    errors: dict[str, str]  # task id -> why it fell back
    cache: Any  # a diskcache.Cache of finished tasks, or None
    began: float  # time.monotonic() at the start
    deadline: float  # time.monotonic() after which no new work starts
    sandbox: Sandbox | None = None  # runs the sampled programs (its worker starts on the first program)


def run_evaluation(config: EvalConfig, loaded: model_tools.LoadedModel | None = None) -> EvalSummary:
    """Challenges in, verified submission.json out (and a score and report when solutions are known).

    ``loaded``: an already loaded model to use instead of ``config.model`` (tests pass a tiny one).
    """
    run = start_run(config, loaded)
    results = solve_tasks(run, run.task_ids)
    return finish_run(run, results)


def prepare_session(config: EvalConfig, loaded: model_tools.LoadedModel | None = None) -> ModelSession:
    """The model of ``config`` (or ``loaded``), shrunk to the format (to the code alphabet when programs
    are sampled, so the model can write them), with the config's adapter merged."""
    if loaded is None:
        loaded = model_tools.load_model(config.model, backend=config.backend, max_seq_length=config.max_tokens,
                                        load_in_4bit=four_bit_choice(config))
    fmt = format_from_spec(config.format, eos=loaded.tokenizer.eos_token)
    alphabet = code_alphabet(fmt) if config.program_samples > 0 else fmt.alphabet
    loaded, _mapping = model_tools.shrink_for_format(loaded, fmt, alphabet)
    if config.adapter:  # trained on the shrunk vocabulary of this format: apply it after shrinking
        with_adapter = adapter_model(loaded, config)
        try:
            merged = model_tools.merge_adapter(with_adapter)
        except ValueError as e:  # 4-bit weights
            raise ValueError(f"{e}: run with --load-in-4bit no (or auto), or merge the adapter once in 16 bits "
                             f"(run_finetune_* writes <models>/<name>/merged) and pass that folder as --model") from e
        loaded = replace(loaded, model=merged).refingerprinted()
    formats = stage_formats(config.bf16_passes, next(loaded.model.parameters()).device)
    return ModelSession(loaded, fmt, config.max_tokens, formats)


def four_bit_choice(config: EvalConfig) -> bool | None:
    """``load_in_4bit`` for ``model_tools.load_model``: None (its default: 4-bit on CUDA) unless the config
    says yes or no, or an adapter is to be merged, which needs the base in 16 or 32 bits."""
    choice = model_tools.four_bit_option(config.load_in_4bit)
    if choice is not None:
        return choice
    if config.adapter:
        if torch.cuda.is_available():  # on a CPU nothing loads in 4 bits anyway
            log.info("the adapter %s is merged into the base: loading the base in 16 bits, not 4-bit", config.adapter)
        return False
    return None


def adapter_model(loaded: model_tools.LoadedModel, config: EvalConfig):
    """The shrunk model with ``config.adapter`` attached; a ValueError that says why, and what to do, when
    the adapter was trained on another vocabulary (its token ids would name other characters)."""
    adapter = config.adapter
    which = ("the code alphabet, as --program-samples is on" if config.program_samples > 0
             else f"the alphabet of the format {config.format!r}")
    if config.program_samples > 0:
        hint = ("if it was not fine-tuned on code tasks, fine-tune it with a code source (--train-datasets "
                "'code code-from-examples') or run with --program-samples 0")
    else:
        hint = "if it was fine-tuned on code tasks, run with --program-samples N (N > 0)"
    try:
        return model_tools.load_adapter(loaded.model, adapter, tokenizer=loaded.tokenizer)
    except model_tools.AdapterVocabularyError as e:
        if e.saved_size is None:
            raise ValueError(f"adapter {adapter} was trained on another vocabulary than this run's {e.base_size} "
                             f"tokens ({which}): {e.detail}; {hint}") from e
        raise ValueError(
            f"adapter {adapter} was trained on a vocabulary of {e.saved_size} tokens, this run shrinks the model "
            f"to {e.base_size} tokens ({which}); tokens only here: {e.only_base[:20]!r}, only in the adapter: "
            f"{e.only_saved[:20]!r}; {hint}") from e


def start_run(config: EvalConfig, loaded: model_tools.LoadedModel | None = None) -> EvalRun:
    """Load the challenges and the model (shrunk to the format, adapter merged) and select the tasks."""
    began = time.monotonic()
    deadline = began + config.time_budget if config.time_budget > 0 else float("inf")
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")

    dataset, test_counts = load_challenges(config)
    errors: dict[str, str] = {e.task_id or "?": str(e) for e in dataset.skipped}
    session = prepare_session(config, loaded)
    loaded, fmt = session.loaded, session.fmt
    requested = select_tasks(dataset, config.tasks, fmt)
    task_ids = [t for t in requested if t in dataset.tasks]
    selected_counts = {t: test_counts[t] for t in test_counts if not config.tasks or t in requested}
    log.info("model %s (%s backend), %d tasks, decoder %s, %d views, TTT %s, %d programs per task", loaded.source,
             loaded.backend, len(task_ids), config.decoder, config.views, "on" if config.ttt else "off",
             config.program_samples)
    sandbox = Sandbox(timeout=config.program_timeout) if config.program_samples > 0 else None
    return EvalRun(config, dataset, session, task_ids, selected_counts, errors,
                   result_cache(config), began, deadline, sandbox)


def solve_tasks(run: EvalRun, task_ids: Sequence[str]) -> dict[str, TaskResult]:
    """Each task from the cache or solved, in order; a failed or unstarted task goes to ``run.errors``."""
    config, dataset, fingerprint = run.config, run.dataset, run.session.loaded.fingerprint
    results: dict[str, TaskResult] = {}
    try:
        for done, task_id in enumerate(tqdm(task_ids, desc="tasks", disable=not config.progress, dynamic_ncols=True)):
            now = time.monotonic()
            if now > run.deadline:
                run.errors[task_id] = "time budget spent before the task started"
                continue
            task_deadline = min(run.deadline, now + TASK_SHARES * (run.deadline - now) / (len(task_ids) - done))
            key = task_cache_key(fingerprint, dataset.tasks[task_id], config) if run.cache is not None else ""
            if run.cache is not None and key in run.cache:
                results[task_id] = TaskResult.from_json(json.loads(run.cache[key]))
                continue
            try:
                results[task_id] = solve_task(dataset, task_id, run.session, config, task_deadline, run.sandbox)
            except (ArcDataError, RuntimeError, ValueError, MemoryError, FormatParseError) as e:
                # one bad task never sinks the run: log why, answer it with the fallback, go on
                log.warning("task %s fell back: %s: %s", task_id, type(e).__name__, e)
                run.errors[task_id] = f"{type(e).__name__}: {e}"
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            if run.cache is not None and time.monotonic() <= task_deadline:  # a task cut short is not cached
                run.cache[key] = json.dumps(results[task_id].to_json())  # JSON text: the cache never unpickles
    finally:
        if run.sandbox is not None:
            run.sandbox.close()  # stops its worker; a later call starts a fresh one
    return results


def finish_run(run: EvalRun, results: dict[str, TaskResult]) -> EvalSummary:
    """Write the verified submission for every selected task; with solutions, score it; the report."""
    config, dataset, errors, selected_counts = run.config, run.dataset, run.errors, run.test_counts
    out = Path(config.output)
    ranked = {(t, i): [c.grid for c in cands] for t, r in results.items() for i, cands in r.candidates.items()}
    build = build_submission(selected_counts, ranked)
    submission_path = out / "submission.json"
    write_verified_submission(submission_path, build.submission, selected_counts)
    for task_id, _index in build.fell_back:
        errors.setdefault(task_id, "no candidate decoded")
    summary = EvalSummary(submission_path, list(build.fell_back), errors, seconds=time.monotonic() - run.began)

    solutions = dataset.solutions()
    if solutions:
        solutions = {t: s for t, s in solutions.items() if t in selected_counts}
        summary.score = score_submission(build.submission, solutions)
        predictions = {(t, i): r.view_predictions.get(i, []) for t, r in results.items()
                       for i in range(len(dataset.tasks[t].test))}
        truths = {(t, i): g for t, grids in solutions.items() for i, g in enumerate(grids)}
        predictions.update({k: [] for k in truths if k not in predictions})
        chosen = {(t, i): [a["attempt_1"], a["attempt_2"]] for t, entries in build.submission.items()
                  for i, a in enumerate(entries) if (t, i) in truths}
        summary.metrics = evaluate(predictions, truths, chosen).overall.as_dict()
    if config.report:
        write_report(out, dataset, results, build.submission, summary, config)
    return summary


def write_report(out: Path, dataset: ArcDataset, results: dict[str, TaskResult], submission: dict,
                 summary: EvalSummary, config: EvalConfig) -> None:
    """report.json (every candidate with its scores) and a picture per task."""
    from .plots import plot_answer

    solutions = dataset.solutions()
    report = {
        "config": asdict(config),
        "seconds": summary.seconds,
        "errors": summary.errors,
        "fell_back": [list(x) for x in summary.fell_back],
        "score": None if summary.score is None else {"points": summary.score.points, "tasks": summary.score.tasks,
                                                     "percentage": summary.score.percentage},
        "metrics": summary.metrics,
        "tasks": {t: r.to_json() for t, r in results.items()},
    }
    for task_id, result in results.items():
        truths = solutions.get(task_id)
        for index, cands in result.candidates.items():
            truth = None if truths is None else truths[index]
            for cand, entry in zip(cands, report["tasks"][task_id]["candidates"][str(index)]):
                entry["correct"] = None if truth is None else bool(np.array_equal(cand.grid, truth))
            task = dataset.tasks[task_id]
            attempts = [np.asarray(submission[task_id][index][a]) for a in ("attempt_1", "attempt_2")]
            plot_answer(out / "pictures" / f"{task_id}_{index}.png", f"{task_id} test {index}",
                        [(e.input, e.output) for e in task.train], task.test[index].input, attempts, truth)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")


def print_summary(summary: EvalSummary, out: Path) -> None:
    print(f"\nsubmission: {summary.submission_path} (verified)")
    if summary.score is not None:
        s = summary.score
        print(f"score: {s.points:.2f} of {s.tasks} tasks = {s.percentage:.1f}% (Kaggle rule: either attempt right)")
    if summary.metrics:
        print("arc24 metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.metrics.items()))
    if summary.fell_back:
        print(f"{len(summary.fell_back)} test inputs fell back to [[0]]:")
        for task_id in sorted({t for t, _ in summary.fell_back}):
            print(f"  {task_id}: {summary.errors.get(task_id, 'no candidate decoded')}")
    if (out / "report.json").exists():
        print(f"report: {out / 'report.json'}, pictures in {out / 'pictures'}")
    print(f"time: {summary.seconds:.0f} s")


def main(preset: EvalConfig, argv: Sequence[str] | None = None, description: str = "") -> int:
    """Entry point of the run_evaluation_* presets: parse flags onto the preset, run, print, exit status."""
    from .cli import parse_config

    config = parse_config(preset, argv, description, checks=(check_options,))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_evaluation(config)
    print_summary(summary, Path(config.output))
    return summary.exit_status
