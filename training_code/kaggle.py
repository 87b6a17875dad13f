"""The Kaggle run: settings from the environment, the time budget, the placeholder rule, the run in this
process or under torchrun with a deadline, and the submission that Kaggle must get whatever happened.

``kaggle_notebooks/arc-prize-kaggle.ipynb`` installs the project and then calls this module in a few
cells; the tests call it directly. Every setting is an environment variable with Kaggle's default
(``KaggleSettings.from_environment``), so the same code runs on Kaggle, locally and in the tests.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from .cli import save_config, with_options
from .grids import ArcDataError
from .presets import preset_config
from .submission import build_submission, read_submission, write_verified_submission

log = logging.getLogger(__name__)

# The public sets Kaggle puts beside the test file: a test file whose every task id is in them is the placeholder
PUBLIC_SETS = ("arc-agi_training_challenges.json", "arc-agi_evaluation_challenges.json")
STOP_GRACE = 45.0  # seconds torchrun gets to stop its workers (it gives them 30) before everything is killed


def setting(name: str, default: str) -> str:
    """An environment variable, or the default when it is unset or empty."""
    return os.environ.get(name) or default


def kaggle_challenges() -> str:
    """The competition's test challenges: ARC Prize 2025's, else 2024's."""
    for year in (2025, 2024):
        path = Path(f"/kaggle/input/arc-prize-{year}/arc-agi_test_challenges.json")
        if path.is_file():
            return str(path)
    return "/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json"


@dataclass
class KaggleSettings:
    """What a Kaggle run needs to know, with the clock it runs against (``started``: Kaggle's 12 hours
    count from the notebook's start, installing and loading the model included)."""

    challenges: Path
    model: str = "/kaggle/input/arc-model"  # a model folder; "tiny": a random test model
    adapter: str = ""  # a LoRA adapter folder to merge first (none: the model has it merged)
    preset: str = "nemo"  # training_code/run_evaluation_<preset>.py: format, TTT, views
    output: Path = Path("/kaggle/working")
    time_budget: float = 11.5 * 3600  # seconds for the whole notebook (Kaggle: 12 h)
    time_margin: float = 30 * 60  # kept for the last task's overrun and the writing
    # the end of the margin: a torchrun still running then is stopped and the submission written without it
    write_reserve: float = 5 * 60
    smoke: str = "auto"  # auto: a smoke run on Kaggle's placeholder tasks; "1" or "0" forces it
    smoke_budget: float = 15 * 60
    nproc: str = "auto"  # processes, one per GPU; auto: every GPU there is
    # the program search on the CPU cores beside the model: seconds per task (0: off) and processes
    # (auto: every core but one per model process, at least one)
    search_seconds: float = 10.0
    search_workers: str = "auto"
    torchrun: list[str] = field(default_factory=lambda: [sys.executable, "-m", "torch.distributed.run"])
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.write_reserve = min(self.write_reserve, self.time_margin)

    @classmethod
    def from_environment(cls, started: float | None = None) -> KaggleSettings:
        """The ``ARC_*`` variables (see ``kaggle_notebooks/README.md``), Kaggle's defaults for the rest."""
        defaults = cls(Path(kaggle_challenges()))
        return cls(
            challenges=Path(setting("ARC_CHALLENGES", str(defaults.challenges))),
            model=setting("ARC_MODEL", defaults.model),
            adapter=setting("ARC_ADAPTER", defaults.adapter),
            preset=setting("ARC_PRESET", defaults.preset),
            output=Path(setting("ARC_OUTPUT", str(defaults.output))),
            time_budget=float(setting("ARC_TIME_BUDGET", str(defaults.time_budget))),
            time_margin=float(setting("ARC_TIME_MARGIN", str(defaults.time_margin))),
            write_reserve=float(setting("ARC_WRITE_RESERVE", str(defaults.write_reserve))),
            smoke=setting("ARC_SMOKE", defaults.smoke),
            smoke_budget=float(setting("ARC_SMOKE_BUDGET", str(defaults.smoke_budget))),
            nproc=setting("ARC_NPROC", defaults.nproc),
            search_seconds=float(setting("ARC_SEARCH_SECONDS", str(defaults.search_seconds))),
            search_workers=setting("ARC_SEARCH_WORKERS", defaults.search_workers),
            # the launcher of the processes (the tests put stand-ins here)
            torchrun=shlex.split(setting("ARC_TORCHRUN", "")) or defaults.torchrun,
            started=time.time() if started is None else started,
        )

    @property
    def run_dir(self) -> Path:
        """The run's cache, per-rank results, report and pictures."""
        return self.output / "arc-run"

    @property
    def search_dir(self) -> Path:
        """Where the program search beside the model writes its results."""
        return self.run_dir / "search"

    @property
    def barrier_slack(self) -> float:
        """The ranks wait half of the margin left before the write reserve for a slow one; rank 0 has the
        other half to write."""
        return (self.time_margin - self.write_reserve) / 2

    def time_left(self, now: float | None = None) -> float:
        """Seconds the run may still start new work in."""
        return self.time_budget - self.time_margin - ((time.time() if now is None else now) - self.started)

    def time_to_deadline(self, now: float | None = None) -> float:
        """Seconds until a run still going must be stopped, to leave ``write_reserve`` for the submission."""
        return self.time_budget - self.write_reserve - ((time.time() if now is None else now) - self.started)


# --------------------------------------------------------------------------------------------------
# Placeholder or hidden tasks


def placeholder_reason(challenges: Path) -> str | None:
    """Why ``challenges`` is Kaggle's placeholder test file, or None when it may hold the hidden tasks.

    While a notebook is edited or saved, the test file holds public tasks; when it is scored, Kaggle
    swaps in hidden tasks with new ids. So the file is the placeholder when every one of its task ids
    is also in a public challenges file beside it. With no public file beside it the run is always
    full: a full run by mistake costs time, a smoke run by mistake would cost the score.
    """
    ids = set(json.loads(challenges.read_text(encoding="utf-8")))
    public: set[str] = set()
    for name in PUBLIC_SETS:
        if challenges.with_name(name).is_file():
            public |= set(json.loads(challenges.with_name(name).read_text(encoding="utf-8")))
    if ids and ids <= public:
        return f"all {len(ids)} task ids of {challenges.name} are in the public sets beside it"
    return None


def smoke_run(settings: KaggleSettings) -> tuple[bool, str | None]:
    """Whether this is a smoke run, and why (``ARC_SMOKE`` overrides the placeholder rule)."""
    if settings.smoke == "auto":
        reason = placeholder_reason(settings.challenges)
        return reason is not None, reason
    return settings.smoke == "1", f"ARC_SMOKE={settings.smoke}"


def run_config(settings: KaggleSettings, smoke: bool) -> Any:
    """The preset with Kaggle's paths, every task and the time left; a smoke run is the same pipeline with
    fewer training steps and views and a short budget."""
    config = with_options(preset_config(settings.preset), challenges=str(settings.challenges), solutions="auto",
                          output=str(settings.run_dir), model=settings.model, adapter=settings.adapter, tasks="",
                          time_budget=max(settings.time_left(), 1.0))
    if smoke:
        config = with_options(config, time_budget=min(config.time_budget, settings.smoke_budget),
                              ttt_steps=min(config.ttt.steps, 4), views=2, scoring_views=2)
    if settings.search_seconds > 0:
        # the search runs in its own processes (start_search); each task reads its candidates from their file,
        # waiting for a task the search has not reached yet at most twice its time
        from .induction.run_search import RESULTS_FILE

        config = with_options(config, search_seconds=0.0, search_results=str(settings.search_dir / RESULTS_FILE),
                              search_wait=2 * settings.search_seconds)
    return config


def process_count(settings: KaggleSettings, gpus: int) -> int:
    """Processes to start: one per GPU (at least one) unless ``ARC_NPROC`` says; one for the tiny test
    model, which is built inside this process."""
    if settings.model == "tiny":
        return 1
    return max(1, gpus) if settings.nproc == "auto" else int(settings.nproc)


# --------------------------------------------------------------------------------------------------
# Running, in this process or under torchrun


def run_here(config: Any) -> None:
    """The whole evaluation in this process."""
    from .evaluation import print_summary, run_evaluation  # loads torch and the model code: only when run

    loaded = None
    if config.model == "tiny":  # random weights: checks the wiring in seconds, answers are noise
        from .formats import format_from_spec
        from .model_tools import build_tiny_model

        loaded = build_tiny_model(format_from_spec(config.format).alphabet, max_seq_length=config.max_tokens)
    print_summary(run_evaluation(config, loaded), Path(config.files.output))


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process below it (torchrun starts each worker in a session of its own, so
    killing torchrun's process group would miss them); empty when ``pid`` is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to torchrun, which stops its workers; after ``grace`` seconds SIGKILL to whatever of it and
    of the processes below it is still there."""
    tree = process_tree(process.pid)
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    for member in tree:
        try:
            # psutil remembers each process's start time: a pid the system has given to another process since
            # is not running any more in its eyes, and is left alone
            if member.is_running() and member.status() != psutil.STATUS_ZOMBIE:
                member.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if process.poll() is None:
        process.kill()
    process.wait()


def child_environment(source: Path | None) -> dict[str, str]:
    """This process's environment for a child process, with ``source`` (the checkout the child imports the
    project from when it is not installed) first on its PYTHONPATH."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


def search_workers(settings: KaggleSettings, processes: int, cores: int | None = None) -> int:
    """Processes for the program search: ``ARC_SEARCH_WORKERS``, or every CPU core but one per model process."""
    if settings.search_workers != "auto":
        return max(1, int(settings.search_workers))
    return max(1, (cores or os.cpu_count() or 1) - processes)


def start_search(config: Any, settings: KaggleSettings, processes: int, source: Path | None = None
                 ) -> subprocess.Popen | None:
    """The program search over every task, in processes of its own on the CPU cores while the model runs
    (``training_code.run_search``): it writes each task's candidates to ``config.search.results`` as it
    goes, which the evaluation reads. None when the search is off."""
    if not config.search.results:
        return None
    env = child_environment(source)
    command = [sys.executable, "-m", "training_code.run_search", "--challenges", config.files.challenges,
               "--solutions", "", "--output", str(Path(config.search.results).parent),
               "--seconds", f"{settings.search_seconds:g}", "--workers", str(search_workers(settings, processes)),
               "--progress", "no"]
    print(f"$ {shlex.join(command)} &  # the program search beside the model", flush=True)
    return subprocess.Popen(command, env=env, start_new_session=True)


def run_on_every_gpu(config: Any, processes: int, settings: KaggleSettings, source: Path | None = None) -> str:
    """One process per GPU (``training_code.distributed``): "done" when torchrun exits cleanly, "failed"
    when it does not, "timed out" when it still runs at its deadline (it is stopped): the run's budget and
    the margin less the write reserve from now, and never later than ``time_to_deadline``. ``source``:
    the checkout the processes import the project from when it is not installed."""
    config_file = settings.run_dir / "run_config.json"
    save_config(config, config_file)
    env = child_environment(source)
    command = settings.torchrun + ["--standalone", f"--nproc_per_node={processes}", "-m", "training_code.distributed",
                                   "--config", str(config_file), "--barrier-slack", f"{settings.barrier_slack:g}"]
    timeout = max(min(settings.time_to_deadline(), config.time_budget + settings.time_margin - settings.write_reserve),
                  1.0)
    print(f"$ {shlex.join(command)}  # stopped after {timeout:.0f} s", flush=True)
    process = subprocess.Popen(command, env=env)
    try:
        return "done" if process.wait(timeout) == 0 else "failed"
    except subprocess.TimeoutExpired:
        return "timed out"
    finally:
        if process.poll() is None:  # the deadline, or the cell was interrupted
            stop(process, min(STOP_GRACE, settings.write_reserve / 3))


def run(config: Any, processes: int, settings: KaggleSettings, source: Path | None = None) -> tuple[list[str], Any]:
    """The run: under torchrun with several processes (again in this process, with the time left, if
    torchrun fails in time: the finished tasks come back from the cache), else in this process. Returns
    what went wrong, for the record, and the config last run; never raises, since Kaggle must get a
    submission whatever happened."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "submission.json").unlink(missing_ok=True)  # never hand in an old run's answers
    problems = []
    search = None
    try:
        search = start_search(config, settings, processes, source)
        outcome = run_on_every_gpu(config, processes, settings, source) if processes > 1 else "one process"
        if outcome == "failed" and settings.time_left() <= 0:
            outcome = "failed too late"
        if outcome == "timed out":
            problems.append(f"torchrun still ran {settings.write_reserve:.0f} s before the end of the time budget "
                            "and was stopped; the submission is what rank 0 wrote, or else the fallback")
        elif outcome == "failed too late":
            problems.append("torchrun failed with no time left to run again; what rank 0 wrote, or else the fallback")
        elif outcome == "failed":
            problems.append("torchrun failed; ran again in one process, finished tasks from the cache")
            config = replace(config, time_budget=max(min(config.time_budget, settings.time_left()), 1.0))
        if outcome in ("one process", "failed"):
            run_here(config)
    except Exception as error:  # broad on purpose: whatever happened, Kaggle must get a valid submission
        problems.append(f"{type(error).__name__}: {error}")
        log.exception("the run failed; test inputs without answers get the fallback")
    finally:
        if search is not None and search.poll() is None:  # the model is done: the search's answers are of no use
            stop(search, 5.0)
    return problems, config


# --------------------------------------------------------------------------------------------------
# The submission


def submit(settings: KaggleSettings, config: Any, problems: list[str]) -> dict[str, int]:
    """``submission.json`` in the output folder: the run's answers where it wrote a valid submission, the
    fallback grid for every test input otherwise; validated, written atomically and read back. Returns
    the test counts of every task of the file (bad ones included), each of which got its two attempts."""
    from .evaluation import load_challenges

    _, counts = load_challenges(config)
    try:
        submission = read_submission(settings.run_dir / "submission.json", counts)
    except (FileNotFoundError, ArcDataError) as error:
        problems.append(f"no valid submission from the run ({error}); every test input gets the fallback")
        submission = build_submission(counts, {}).submission
    write_verified_submission(settings.output / "submission.json", submission, counts)
    return counts


def record(settings: KaggleSettings, info: dict) -> Path:
    """``arc-run/kaggle_run.json``: what happened, for a reader after the run."""
    path = settings.run_dir / "kaggle_run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return path
