"""The evaluation pipeline: from a challenges file to a verified submission.json.

    load challenges -> for each task: [test-time training] -> [sample programs, run them in a sandbox]
    -> decode each test input under N views -> invert candidates to the original frame -> merge (with the
    programs' outputs) -> score under K views -> choose two attempts
    -> write submission.json atomically -> read it back and validate -> with solutions: score, metrics, report

`run_evaluation` is that diagram in three calls: `start_run` (load the challenges and the model),
`solve_tasks` (one task after another) and `finish_run` (write, verify, score, report); each step is a
call into the module that owns it: `model_session` (the model, and the adapter test-time training
attaches and removes), `candidates` (views, decoding, merging, scoring, ranking), `induction` (programs),
`submission` and `report` (the results JSON, pictures and the printed summary). `training_code.distributed`
runs the same three steps with the tasks split across processes. A task that fails anywhere is logged with
why and answered with the fallback; the submission always covers every test input of every task in the
challenges file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import model_tools
from .arc_loader import ArcDataset, AugmentOptions, RunFiles, Task, submission_counts
from .candidates import DecodingConfig, ScoringConfig, candidates_for, unread_candidates, unreadable
from .cli import options, save_config
from .formats import FormatParseError, format_from_spec
from .grids import ArcDataError, Grid, checked_grid, grid_to_list
from .induction.code_tasks import ProgramChecker, code_alphabet, program_from_reply, render_code_from_examples
from .induction.program_search import SEARCH_VERSION, SearchConfig, search_task
from .induction.run_search import wait_for_result
from .induction.sandbox import ProgramOutputs, Sandbox, program_outputs
from .inference_tools import BF16_CHOICES, sample_decode, stage_formats, torch_generator
from .metrics import evaluate
from .model_session import ModelSession
from .report import EvalSummary, TaskResult, print_summary, write_report
from .submission import build_submission, score_submission, write_verified_submission
from .task_choice import check_task_spec, select_tasks
from .training import TrainConfig, leave_one_out_views

log = logging.getLogger(__name__)

# A task may use at most this many fair shares of the time left (time left / tasks left), so that one
# slow task cannot eat the budget of the tasks after it; 2 lets a big task take what small ones leave.
TASK_SHARES = 2.0
# Programs sampled per forward pass: every row holds its own copy of the prompt's KV cache, so all of
# --program-samples at once could take gigabytes with a long prompt on a large model.
PROGRAM_BATCH = 8


@dataclass
class TestTimeTraining:
    """Test-time training: a fresh LoRA per task, trained on leave-one-out views of its own examples."""

    __test__ = False  # not a pytest test class, whatever its name

    enabled: bool = field(default=True, metadata={"flag": "ttt",
                                                  "help": "test-time training on each task's own examples"})
    steps: int = field(default=16, metadata={"help": "optimizer steps of test-time training per task"})
    batch_size: int = 2
    learning_rate: float = 1e-4
    lora_r: int = 16
    lora_alpha: int = 16
    views: int = field(default=8, metadata={"help": "views of each leave-one-out task (the identity view included)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps that warm the learning rate up"})
    # kept activations cost SmolLM2 about 2.3 MB per token of a batch on a CPU (two 2,048-token views: 10.3 GB
    # at the peak); recomputing them in the backward pass costs about 0.9 MB (5.3 GB) for 2 to 27% more time
    # per step (benchmarks/bench_ttt_memory.py, BENCHMARKS.md); the limit keeps a task's peak near 10 GB
    checkpoint_above: int = field(default=4096, metadata={
        "help": "tokens in a batch (batch size x the task's longest view) above which the transformers backend "
                "recomputes activations in the backward pass instead of keeping them (gradient checkpointing; "
                "unsloth always does its own); 0: never"})


@dataclass
class ProgramSampling:
    """Programs sampled from the model with the code-from-examples prompt (after test-time training) and run
    in a sandbox; the outputs of those that reproduce the examples join the candidates."""

    samples: int = field(default=0, metadata={
        "help": "programs sampled per task with the code-from-examples prompt and run in a sandbox; the outputs "
                "of those that reproduce the examples join the candidates (0: off); when on, the vocabulary "
                "keeps the code alphabet, so an --adapter must be fine-tuned with a code source"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the programs"})
    max_tokens: int = field(default=1024, metadata={
        "help": "longest program in tokens (end token included); the prompt drops examples to leave this room"})
    timeout: float = field(default=1.0, metadata={
        "help": "seconds a program may run on one grid (the task's deadline stops it sooner)"})


@dataclass
class ProgramSearchSettings:
    """The program search over the DSL (no model), run on the CPU before decoding; the outputs of programs that
    reproduce the examples join the candidates, scored and ranked with the model's."""

    seconds: float = field(default=0.0, metadata={"help": "seconds of program search per task (0: off)"})
    max_steps: int = field(default=0, metadata={
        "help": "step applications per task (0: no limit): a budget the same on any machine, so that a search "
                "that ends on it rather than on --search-seconds gives the same candidates everywhere"})
    cpu_time: bool = field(default=False, metadata={
        "help": "--search-seconds of this process's CPU time rather than of the wall clock (the same candidates "
                "on a busy machine, at the cost of a longer wall time there)"})
    results: str = field(default="", metadata={
        "help": "the search_results.jsonl of a run_search running beside this run (the search on the CPU cores "
                "while the model has the GPUs): each task's candidates are read from it, not searched here"})
    wait: float = field(default=0.0, metadata={
        "help": "with --search-results: seconds to wait for a task the search has not finished yet"})

    @property
    def on(self) -> bool:
        return self.seconds > 0 or bool(self.results)


@dataclass
class EvalConfig:
    """Everything an evaluation run depends on, a config per stage. Entry scripts are presets of this."""

    files: RunFiles = field(default_factory=lambda: RunFiles(output="output/smollm2"), metadata={"flags": ""})
    tasks: str = field(default="", metadata={
        "help": "task ids joined by commas; a count N: the N tasks with the shortest rendering; every:K: every K-th "
                "task in id order, from the first (a sample that does not favour short tasks); '' for all"})
    model: str = field(default="smollm2-135m", metadata={"help": "bundled model name or a local model path"})
    adapter: str = field(default="", metadata={"help": "a LoRA adapter to apply (and merge) before anything else"})
    format: str = field(default="architects", metadata={
        "help": "text format spec (see training_code.formats)", "check": format_from_spec})
    backend: str = field(default="auto", metadata={"help": "the model's library", "choices": model_tools.BACKENDS})
    load_in_4bit: str = field(default="auto", metadata={
        "help": "auto: 4-bit on CUDA, except 16 bits when an --adapter is merged into the base",
        "choices": model_tools.FOUR_BIT_CHOICES})
    max_tokens: int = field(default=8192, metadata={"help": "token budget of one rendered view"})
    ttt: TestTimeTraining = field(default_factory=TestTimeTraining, metadata={"flags": "ttt_"})
    decoding: DecodingConfig = field(default_factory=DecodingConfig, metadata={"flags": ""})
    scoring: ScoringConfig = field(default_factory=ScoringConfig, metadata={"flags": ""})
    bf16_passes: str = field(default="auto", metadata={
        "help": "bfloat16 (autocast) prompt passes of decoding and scoring passes: no keeps the model's own format "
                "throughout; auto: yes on CUDA with bf16 and on CPUs with bf16 instructions",
        "choices": BF16_CHOICES})
    programs: ProgramSampling = field(default_factory=ProgramSampling, metadata={"flags": "program_"})
    search: ProgramSearchSettings = field(default_factory=ProgramSearchSettings, metadata={"flags": "search_"})
    keep_background: bool = field(default=True, metadata={"help": "colour permutations keep colour 0"})
    seed: int = 0
    time_budget: float = field(default=0.0, metadata={"help": "seconds; stop starting new work in time (0: none)"})
    cache: bool = field(default=True, metadata={"help": "cache task results on disk so a killed run resumes"})
    report: bool = field(default=True, metadata={"help": "write report.json and a picture per task"})
    progress: bool = True


# --------------------------------------------------------------------------------------------------
# Small pieces


def stable_seed(*parts: Any) -> int:
    """A seed from text parts (task id, run seed): independent of task order, so resumed and partial
    runs draw the same views as a full one."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def check_options(config: EvalConfig) -> None:
    """What the fields alone cannot check: ``--tasks`` ids against the ``--challenges`` file."""
    check_task_spec(config.tasks, config.files.challenges)


# --------------------------------------------------------------------------------------------------
# One task: test-time training, programs (sampled and searched), then candidates (``candidates.py``)


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
        if len(prompt_ids) + config.programs.max_tokens <= session.max_tokens:
            break
        examples.pop()
    if not examples:
        log.info("task %s: no programs sampled: one example and %d tokens for the program exceed the %d-token "
                 "context", task.task_id, config.programs.max_tokens, session.max_tokens)
        return []
    # a generator of its own: decoding draws the same views whether programs are sampled or not
    rng = np.random.default_rng(stable_seed(config.seed, task.task_id, "programs"))
    generator = torch_generator(rng, model_tools.compute_device(session.model))
    replies = sample_decode(session.model, prompt_ids, eos_id=session.eos_id, token_texts=session.token_texts,
                            checker=ProgramChecker(session.tokenizer.all_special_tokens), n=config.programs.samples,
                            temperature=config.programs.temperature, generator=generator,
                            max_new_tokens=config.programs.max_tokens, batch_size=PROGRAM_BATCH)
    return [program_from_reply(session.fmt, reply.text) for reply in replies]


def sampled_program_outputs(task: Task, sources: Sequence[str], sandbox: Sandbox, deadline: float) -> ProgramOutputs:
    """The outputs of the model's sampled (untrusted) programs for the task, run in ``sandbox`` (no program
    starts after ``deadline``); none when the sandbox itself fails (the task goes on). The project's own,
    verified programs run in-process instead: ``induction.programs.run_trusted_program``."""
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
    own_sandbox = sandbox is None and config.programs.samples > 0
    if own_sandbox:
        sandbox = Sandbox(timeout=config.programs.timeout)
    unread = {i: why for i in range(len(task.test)) if (why := unreadable(dataset, task, i, session))}
    if unread:
        # the program search still answers them; training and decoding for no test input would be time lost
        log.warning("task %s: the model cannot read test input %s (%s); the program search answers %s alone", task_id,
                    ", ".join(map(str, unread)), next(iter(unread.values())), "it" if len(unread) == 1 else "them")
        result.error = "; ".join(f"test input {i}: {why}" for i, why in unread.items())
    model_reads_some = len(unread) < len(task.test)
    try:
        if config.ttt.enabled and model_reads_some:
            test_time_train(dataset, task_id, session, config, rng)
        # decoding, scoring and program sampling run with the test-time adapter folded into the weights (on a CPU)
        with session.adapter_folded():
            program_grids: Sequence[Sequence[Grid]] = [() for _ in task.test]
            if config.programs.samples > 0 and model_reads_some:  # after test-time training: it has learnt the task
                try:
                    sources = sampled_programs(task, session, config, deadline)
                except (RuntimeError, ValueError, MemoryError) as e:
                    # programs are an extra: their failure (out of memory, say) must not cost the task its grids
                    log.warning("task %s: program sampling failed, no program candidates: %s: %s", task_id,
                                type(e).__name__, e)
                    sources = []
                result.programs_sampled = len(sources)
                if sources:
                    outputs = sampled_program_outputs(task, sources, sandbox, deadline)
                    program_grids, result.programs_valid = outputs.per_test, len(outputs.valid)
                log.info("task %s: %d programs sampled, %d reproduce the examples", task_id, result.programs_sampled,
                         result.programs_valid)
            search_grids = searched_candidates(task, config, deadline, result)
            for test_index in range(len(task.test)):
                if test_index in unread:
                    result.candidates[test_index] = unread_candidates(program_grids[test_index],
                                                                      search_grids[test_index])
                    result.view_predictions[test_index] = []
                    continue
                cands, per_view = candidates_for(dataset, task, test_index, session, config, rng, deadline,
                                                 program_grids[test_index], search_grids[test_index])
                result.candidates[test_index] = cands
                result.view_predictions[test_index] = per_view
    finally:
        session.remove_adapter()  # the next task starts from the base model
        if own_sandbox:
            sandbox.close()
    result.seconds = time.monotonic() - began
    return result


def searched_candidates(task: Task, config: EvalConfig, deadline: float, result: TaskResult) -> list[list[Grid]]:
    """Per test input, the outputs of the programs the program search finds within its seconds and steps (none
    when off); their texts go to ``result.search_programs``. The search runs before decoding, on the CPU."""
    if config.search.results:
        return read_search_results(task, config, deadline, result)
    if config.search.seconds <= 0:
        return [[] for _ in task.test]
    seconds = min(config.search.seconds, deadline - time.monotonic())
    if seconds <= 0:
        return [[] for _ in task.test]
    found = search_task([(e.input, e.output) for e in task.train], [e.input for e in task.test],
                        SearchConfig(seconds=seconds, max_steps=config.search.max_steps,
                                     cpu_time=config.search.cpu_time), task.task_id)
    result.search_programs = dict(enumerate(found.programs))
    result.search_seconds = found.seconds
    log.info("task %s: the program search reached depth %d in %.1f s, %d programs", task.task_id, found.depth,
             found.seconds, len({p for ps in found.programs for p in ps}))
    return found.candidates


def read_search_results(task: Task, config: EvalConfig, deadline: float, result: TaskResult) -> list[list[Grid]]:
    """Per test input, the candidates a search running beside this run wrote for the task (waiting up to
    ``search.wait`` for them); none when they did not come or do not fit the task."""
    path = Path(config.search.results)
    found = wait_for_result(path, task.task_id, min(config.search.wait, deadline - time.monotonic()))
    if found is None:
        log.info("task %s: no result of the program search in %s (yet); no search candidates", task.task_id, path)
        return [[] for _ in task.test]
    try:
        candidates = [[checked_grid(g) for g in per_input] for per_input in found["candidates"]]
    except ArcDataError as e:
        log.warning("task %s: %s holds a candidate that is not a grid (%s); no search candidates", task.task_id,
                    path, e)
        return [[] for _ in task.test]
    if len(candidates) != len(task.test) or len(found["programs"]) != len(task.test):
        log.warning("task %s: %s answers %d test inputs, the task has %d; no search candidates", task.task_id, path,
                    len(candidates), len(task.test))
        return [[] for _ in task.test]
    result.search_programs = {i: list(p) for i, p in enumerate(found["programs"])}
    return candidates


def test_time_train(dataset: ArcDataset, task_id: str, session: ModelSession, config: EvalConfig,
                    rng: np.random.Generator) -> bool:
    """A fresh LoRA on the session's model, trained on leave-one-out views of the task's own examples; whether
    one was attached (the session keeps it until ``session.remove_adapter``)."""
    ttt = config.ttt
    data = leave_one_out_views(dataset, [task_id], rng, views=ttt.views,
                               options=AugmentOptions(keep_background=config.keep_background))
    if not data.keys:
        log.info("task %s: too few examples for test-time training", task_id)
        return False
    data, too_long = data.fit_to_budget(session.fmt, session.max_tokens, session.count_tokens)
    if not data.keys:
        return False
    seed = stable_seed(config.seed, task_id, "ttt")
    batch_tokens = ttt.batch_size * max(data.lengths(session.fmt, session.count_tokens))
    checkpointing = session.loaded.backend != "unsloth" and 0 < ttt.checkpoint_above < batch_tokens
    if checkpointing:
        log.info("task %s: test-time training recomputes activations (batches of up to %d tokens)", task_id,
                 batch_tokens)
    session.attach_adapter(r=ttt.lora_r, alpha=ttt.lora_alpha, seed=seed % (2**31))
    train_config = TrainConfig(learning_rate=ttt.learning_rate, embedding_learning_rate=ttt.learning_rate,
                               max_steps=ttt.steps, batch_size=ttt.batch_size, warmup_ratio=ttt.warmup_ratio,
                               seed=seed % (2**31), on_the_fly=False, progress=False, log_every=0,
                               max_length=session.max_tokens, gradient_checkpointing=checkpointing)
    session.train_adapter(data.shuffled(rng), train_config, description=f"ttt {task_id}")
    return True


# --------------------------------------------------------------------------------------------------
# The run


def result_cache(config: EvalConfig):
    """A disk cache of finished tasks; `task_cache_key` keys it by everything a result depends on."""
    if not config.cache:
        return None
    import diskcache

    return diskcache.Cache(str(Path(config.files.output) / "cache"))


def task_cache_key(fingerprint: str, task: Task, config: EvalConfig) -> str:
    """Model and adapter fingerprint, the task's content and every option that changes its result."""
    relevant = {k: v for k, v in options(config).items()
                if k not in ("challenges", "solutions", "output", "tasks", "time_budget", "cache", "report",
                             "progress")}
    if not config.programs.samples:  # programs off: their settings change nothing (and earlier caches stay valid)
        relevant = {k: v for k, v in relevant.items() if not k.startswith("program_")}
    if config.search.on:  # a changed search finds other programs
        relevant["search_version"] = SEARCH_VERSION
    else:  # search off: earlier caches stay valid
        relevant = {k: v for k, v in relevant.items() if not k.startswith("search_")}
    # test outputs are left out: knowing the solutions must not change what the model is asked
    content = ([[grid_to_list(e.input), grid_to_list(e.output)] for e in task.train]
               + [[grid_to_list(e.input)] for e in task.test])
    payload = json.dumps([fingerprint, task.task_id, content, relevant], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_challenges(config: EvalConfig) -> tuple[ArcDataset, dict[str, int]]:
    """The challenges (bad tasks left out with a warning) and the test counts of every task in the file,
    bad ones included, so that each still gets its two attempts."""
    challenges = Path(config.files.challenges)
    dataset = ArcDataset.from_kaggle(challenges, config.files.solutions_path(), skip_bad=True)
    return dataset, submission_counts(challenges)


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
    alphabet = code_alphabet(fmt) if config.programs.samples > 0 else fmt.alphabet
    loaded, _mapping = model_tools.shrink_for_format(loaded, fmt, alphabet)
    if config.adapter:  # trained on the shrunk vocabulary of this format: apply it after shrinking
        with_adapter = adapter_model(loaded, config)
        try:
            merged = model_tools.merge_adapter(with_adapter)
        except ValueError as e:  # 4-bit weights
            raise ValueError(f"{e}: run with --load-in-4bit no (or auto), or merge the adapter once in 16 bits "
                             f"(run_finetune_* writes <models>/<name>/merged) and pass that folder as --model") from e
        loaded = replace(loaded, model=merged).refingerprinted()
    formats = stage_formats(config.bf16_passes, model_tools.compute_device(loaded.model))
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
    which = ("the code alphabet, as --program-samples is on" if config.programs.samples > 0
             else f"the alphabet of the format {config.format!r}")
    if config.programs.samples > 0:
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
    out = Path(config.files.output)
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
             loaded.backend, len(task_ids), config.decoding.decoder, config.decoding.views,
             "on" if config.ttt.enabled else "off", config.programs.samples)
    sandbox = Sandbox(timeout=config.programs.timeout) if config.programs.samples > 0 else None
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
    out = Path(config.files.output)
    ranked = {(t, i): [c.grid for c in cands] for t, r in results.items() for i, cands in r.candidates.items()}
    build = build_submission(selected_counts, ranked)
    submission_path = out / "submission.json"
    write_verified_submission(submission_path, build.submission, selected_counts)
    for task_id, _index in build.fell_back:
        errors.setdefault(task_id, results[task_id].error if task_id in results and results[task_id].error
                          else "no candidate decoded")
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


def main(preset: EvalConfig, argv: Sequence[str] | None = None, description: str = "") -> int:
    """Entry point of the run_evaluation_* presets: parse flags onto the preset, run, print, exit status."""
    from .cli import parse_config

    config = parse_config(preset, argv, description, checks=(check_options,))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_evaluation(config)
    print_summary(summary, Path(config.files.output))
    return summary.exit_status
