"""Running programs that a model wrote, safely enough: a separate process, limits, and no side effects.

A predicted program is untrusted text. It runs only in a worker process started with
``python -I -B`` (no environment, no user site, no bytecode writes), after these layers:

1. **AST check** (here and again in the worker): no name, attribute or argument that starts with
   ``__``, no attribute that starts with ``_``, no forbidden name (``eval``, ``exec``, ``open``,
   ``getattr``...), no attribute that reaches files, processes, frames or modules (``save``,
   ``tofile``, ``os``, ``f_globals``...), no assignment to attributes, and imports only of
   ``ALLOWED_IMPORTS``. A rejected program never reaches the worker: kind ``forbidden``.
2. **Restricted builtins**: a whitelist without ``open``, ``eval``, ``exec``, ``compile``,
   ``input``, ``globals``, ``getattr``...; ``__import__`` admits ``ALLOWED_IMPORTS`` only.
3. **The worker's own guards**, set once before any program runs: ``socket.socket`` and friends
   replaced by functions that raise; an audit hook (``sys.addaudithook``, which cannot be removed)
   that refuses opening files for writing, starting processes, sockets, ``ctypes`` and the like;
   ``RLIMIT_FSIZE`` = 0 (no file can grow); ``RLIMIT_AS`` = its size after start-up plus
   ``memory_mb``; the working directory a fresh temporary folder, deleted afterwards.
4. **Wall time**: the parent waits ``timeout`` seconds per grid and kills the worker when it is
   late (a numpy call cannot be interrupted from inside).

Each run gives a ``RunResult`` (``ok``, ``grid``, ``error`` kind, ``message``). A worker that timed
out, ran out of memory, hit a guard or died is replaced by a fresh one before the next program, so
a batch goes on. The worker speaks JSON lines (never pickle: the parent must not unpickle what an
untrusted process wrote). POSIX only (``resource``, ``select``). This is defence in depth for
programs written by our own models, not a boundary against a determined attacker: run the whole
pipeline in a container for that.
"""

from __future__ import annotations

import ast
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..grids import Grid, checked_grid

if TYPE_CHECKING:  # the worker imports this module; it needs none of the data layer
    from ..arc_loader import Task

ERROR_KINDS = ("timeout", "memory", "forbidden", "error", "invalid-output")
ALLOWED_IMPORTS = frozenset({"numpy", "math", "itertools", "collections", "training_code.induction.dsl"})
FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "input", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "breakpoint", "exit", "quit", "help", "memoryview", "dir", "copyright", "credits", "license",
})
# Attribute names that reach files, processes, frames, code or whole modules. Programs never need
# them, and getattr is gone, so an attribute name written in the text is the only way to reach one.
FORBIDDEN_ATTRIBUTES = frozenset({
    # files
    "load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "tofile",
    "dump", "dumps", "memmap", "open_memmap", "fromregex", "DataSource", "open", "write", "read",
    # processes and the system
    "system", "popen", "spawn", "fork", "exec", "remove", "unlink", "rmdir", "mkdir", "rename", "kill",
    # modules, and numpy's modules that reach any of the above
    "os", "sys", "subprocess", "shutil", "socket", "builtins", "importlib", "ctypes", "ctypeslib", "io", "pickle",
    "marshal", "gc", "inspect", "cffi", "threading", "multiprocessing", "signal", "resource", "tempfile", "pathlib",
    "glob", "code", "runpy", "platform", "lib", "core", "f2py", "distutils", "testing", "sandbox",
    # frames and code objects
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "tb_frame", "tb_next", "co_code", "mro",
})
SAFE_BUILTINS = (
    "abs", "all", "any", "bin", "bool", "callable", "chr", "dict", "divmod", "enumerate", "filter", "float",
    "format", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "min", "next", "oct", "ord", "pow", "print", "range", "repr", "reversed", "round", "set", "slice", "sorted",
    "str", "sum", "tuple", "type", "zip", "object", "property", "staticmethod", "classmethod", "super",
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError", "LookupError", "NotImplementedError",
    "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError", "True", "False", "None",
)
# Audit events the worker refuses once a program may run (see the docs of sys.audit's events).
BLOCKED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.link", "os.symlink",
    "os.truncate", "os.chmod", "os.chown", "os.chdir", "os.putenv", "os.unsetenv", "os.startfile",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.sendto", "socket.sendmsg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
    "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at", "sys._getframe", "sys._current_frames",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "pickle.find_class",
    "builtins.input", "tempfile.mkstemp", "tempfile.mkdtemp", "urllib.Request", "http.client.connect",
    "sys.addaudithook", "sys.setprofile", "sys.settrace", "mmap.__new__", "resource.setrlimit",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MAX_REPLY_BYTES = 1 << 20  # one grid as JSON is a few kilobytes; anything longer is not a grid
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class RunResult:
    """The outcome of running a program on one input grid.

    ``ok`` with the output ``grid``; otherwise ``grid`` is None, ``error`` is one of
    ``ERROR_KINDS`` and ``message`` says what happened.
    """

    ok: bool
    grid: Grid | None = None
    error: str | None = None
    message: str = ""


def _failure(kind: str, message: str) -> RunResult:
    return RunResult(False, None, kind, message[:MESSAGE_CHARS])


# --------------------------------------------------------------------------------------------------
# The AST check


def _identifiers(node: ast.AST) -> list[str]:
    """Identifier strings a node introduces or uses (names, attributes, arguments, aliases...)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg is not None:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [n for n in (node.name, node.asname) if n]
    if isinstance(node, ast.ExceptHandler) and node.name:
        return [node.name]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        return [node.name]
    if isinstance(node, ast.MatchMapping) and node.rest:
        return [node.rest]
    if isinstance(node, ast.MatchClass):
        return list(node.kwd_attrs)
    return []


def forbidden_reason(source: str) -> str | None:
    """Why the program text may not run (a short sentence), or None when the AST check passes.

    Raises SyntaxError for text that is not Python.
    """
    tree = ast.parse(source, mode="exec")
    for node in ast.walk(tree):
        for name in _identifiers(node):
            if name.startswith("__"):
                return f"the name {name!r} starts with '__'"
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            return f"the name {node.id!r} is not allowed"
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                return f"the attribute {node.attr!r} is private"
            if node.attr in FORBIDDEN_ATTRIBUTES:
                return f"the attribute {node.attr!r} is not allowed"
            if not isinstance(node.ctx, ast.Load):
                return f"assigning or deleting the attribute {node.attr!r} is not allowed"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS:
                    return f"importing {alias.name!r} is not allowed"
                if "." in alias.name and not alias.asname:
                    return f"write 'import {alias.name} as NAME' (the package itself may not be bound)"
        if isinstance(node, ast.ImportFrom):
            if node.level or node.module not in ALLOWED_IMPORTS:
                return f"importing from {'.' * node.level}{node.module or ''!r} is not allowed"
            for alias in node.names:
                if alias.name != "*" and (alias.name.startswith("_") or alias.name in FORBIDDEN_ATTRIBUTES):
                    return f"importing {alias.name!r} from {node.module!r} is not allowed"
    return None


# --------------------------------------------------------------------------------------------------
# The parent side


class Sandbox:
    """A worker process that runs untrusted programs, replaced whenever a run leaves it unusable.

    ``timeout`` is the wall time allowed per input grid (defining the program counts towards the
    first grid), ``memory_mb`` the memory a program may add to the worker's start-up size.
    ``ast_check=False`` skips the parent's AST check (the worker checks again unless
    ``worker_ast_check=False`` too); only tests use that, to show the inner layers hold alone.
    Use as a context manager, or call ``close``.
    """

    def __init__(self, timeout: float = 1.0, memory_mb: int = 256, startup_timeout: float = 60.0,
                 ast_check: bool = True, worker_ast_check: bool = True):
        if timeout <= 0 or memory_mb <= 0:
            raise ValueError("timeout and memory_mb must be positive")
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.startup_timeout = startup_timeout
        self.ast_check = ast_check
        self.worker_ast_check = worker_ast_check
        self._proc: subprocess.Popen | None = None
        self._folder: str | None = None
        self._log = None
        self._buffer = b""
        self.restarts = 0  # workers started so far, for tests and logs

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_log"):  # __init__ finished
            self.close()

    # ---- worker life

    def _start(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="arc-sandbox-")
        root = str(Path(__file__).resolve().parents[2])  # the folder that holds training_code
        boot = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from training_code.induction.sandbox import worker_main; worker_main()")
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
        if "LD_LIBRARY_PATH" in os.environ:  # some Python builds (conda) need it to find libpython
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        args = [sys.executable, "-I", "-B", "-c", boot, root, str(self.memory_mb), str(int(self.worker_ast_check))]
        self._log = open(os.path.join(self._folder, "worker.log"), "wb")  # start-up errors, for the message
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      cwd=self._folder, env=env, start_new_session=True, close_fds=True)
        self._buffer = b""
        self.restarts += 1
        ready = self._read_line(time.monotonic() + self.startup_timeout)
        if not isinstance(ready, dict) or ready.get("ready") is not True:
            log_text = self._log_tail()
            self._stop()
            raise RuntimeError(f"the sandbox worker did not start: {ready!r}; its log ends: {log_text}")

    def _log_tail(self) -> str:
        try:
            return Path(self._folder, "worker.log").read_text(errors="replace")[-500:]
        except OSError:
            return ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and anything it started
                except ProcessLookupError:
                    pass
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def close(self) -> None:
        """Stop the worker and delete its folder."""
        self._stop()

    def _read_line(self, deadline: float) -> dict | str:
        """The worker's next JSON message, or "timeout", "eof" or "too-long"."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return "timeout"
            chunk = os.read(fd, 65536)
            if not chunk:
                return "eof"
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                return "too-long"
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            return "too-long"
        return message if isinstance(message, dict) else "too-long"

    def _death_result(self) -> RunResult:
        """What a worker that closed its pipe died of, as well as can be told."""
        assert self._proc is not None
        code = self._proc.wait()
        if code in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGBUS):
            # the kernel's OOM killer sends SIGKILL; a failed allocation in C code may end in SIGSEGV
            return _failure("memory", f"the worker died with signal {-code}")
        return _failure("error", f"the worker exited with code {code}")

    # ---- running

    def run(self, source: str, grids: Sequence[Grid], deadline: float = float("inf")) -> list[RunResult]:
        """The program's result for each input grid, in order.

        When a grid times out or the worker dies, the grids after it are not run and get the same
        kind of failure. ``deadline`` (a ``time.monotonic()`` value) cuts the wait short: a program
        still running then is stopped and its remaining grids fail with a timeout.
        """
        grids = [np.asarray(g) for g in grids]
        if not grids:
            return []
        try:
            reason = forbidden_reason(source) if self.ast_check else None
        except SyntaxError as e:
            return [_failure("error", f"syntax error: {e.msg} (line {e.lineno})")] * len(grids)
        if reason is not None:
            return [_failure("forbidden", reason)] * len(grids)
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._start()
        job = json.dumps({"source": source, "grids": [g.astype(int).tolist() for g in grids]})
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(job.encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._stop()
            return [_failure("error", "the worker closed its input")] * len(grids)
        results: list[RunResult] = []
        restart = False
        for _ in grids:
            grid_deadline = time.monotonic() + self.timeout
            message = self._read_line(min(grid_deadline, deadline))
            if message == "timeout" and deadline < grid_deadline:
                result = _failure("timeout", "stopped at the run's deadline")
            elif message == "timeout":
                result = _failure("timeout", f"no output within {self.timeout:g} s")
            elif message == "eof":
                result = self._death_result()
            elif message == "too-long":
                result = _failure("invalid-output", "the worker's reply is not a grid message")
            else:
                result = _result_from_message(message)
                restart = restart or result.error in ("memory", "forbidden")
                results.append(result)
                continue
            # the worker is late, dead or confused: the rest of this job cannot run
            self._stop()
            results.extend([result] * (len(grids) - len(results)))
            return results
        if restart:  # a guard fired or memory ran out: start the next program on a clean worker
            self._stop()
        return results

    def run_one(self, source: str, grid: Grid) -> RunResult:
        """The program's result for one input grid."""
        return self.run(source, [grid])[0]


def _result_from_message(message: dict) -> RunResult:
    if message.get("ok") is True:
        try:
            return RunResult(True, checked_grid(message.get("grid")))
        except ValueError as e:
            return _failure("invalid-output", str(e))
    kind = message.get("error")
    if kind not in ERROR_KINDS:
        return _failure("error", f"unexpected message from the worker: {str(message)[:100]}")
    return _failure(kind, str(message.get("message", "")))


@dataclass(frozen=True)
class ProgramOutputs:
    """What sampled programs gave for a task: the distinct program texts that reproduce every
    training pair (``valid``, in first-seen order) and, per test input, their distinct outputs,
    most often produced first (ties: first produced first)."""

    valid: tuple[str, ...]
    per_test: tuple[tuple[Grid, ...], ...]


def program_outputs(task: Task, sources: Sequence[str], timeout: float = 1.0, memory_mb: int = 256,
                    sandbox: Sandbox | None = None, deadline: float = float("inf")) -> ProgramOutputs:
    """Run each distinct program of ``sources`` on the training and test inputs of ``task`` (an
    ``arc_loader.Task``); keep the programs that reproduce every training pair and their test outputs.
    No program starts after ``deadline`` (a ``time.monotonic()`` value), and one still running then is
    stopped: the rest are skipped."""
    box = sandbox or Sandbox(timeout=timeout, memory_mb=memory_mb)
    try:
        counts: list[dict[bytes, list]] = [{} for _ in task.test]
        inputs = [e.input for e in task.train] + [e.input for e in task.test]
        valid: list[str] = []
        for source in dict.fromkeys(sources):  # sampling repeats programs; each distinct text counts once
            if time.monotonic() > deadline:
                break
            results = box.run(source, inputs, deadline=deadline)
            train_results, test_results = results[: len(task.train)], results[len(task.train) :]
            if not all(r.ok and np.array_equal(r.grid, e.output) for r, e in zip(train_results, task.train)):
                continue
            valid.append(source)
            for i, r in enumerate(test_results):
                if r.ok:
                    key = bytes(r.grid.shape) + r.grid.tobytes()
                    entry = counts[i].setdefault(key, [0, len(counts[i]), r.grid])
                    entry[0] += 1
        per_test = tuple(tuple(g for _, _, g in sorted(c.values(), key=lambda e: (-e[0], e[1]))) for c in counts)
        return ProgramOutputs(tuple(valid), per_test)
    finally:
        if sandbox is None:
            box.close()


# --------------------------------------------------------------------------------------------------
# The worker side (runs in the child process only)


class ForbiddenError(BaseException):
    """Raised by the worker's guards. A BaseException, so ``except Exception`` in a program cannot
    swallow it."""


def _no_network(*args, **kwargs):
    raise ForbiddenError("network access is not allowed")


def _install_guards(memory_mb: int, violations: list[str]) -> None:
    """Make this process unable to reach the network, write files or start processes, and cap its
    memory. Called once, after every import the worker needs and before any program runs."""
    import resource
    import socket

    for name in ("socket", "socketpair", "create_connection", "create_server", "fromfd", "getaddrinfo"):
        setattr(socket, name, _no_network)

    def audit(event: str, args: tuple) -> None:
        blocked = event in BLOCKED_EVENTS or event.startswith(("ctypes.", "socket.", "winreg.", "webbrowser."))
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = (isinstance(mode, str) and any(ch in mode for ch in "wax+")) or \
                (isinstance(flags, int) and flags & _WRITE_FLAGS)
            blocked = blocked or (writing and not isinstance(path, int))
        if blocked:
            violations.append(event)
            raise ForbiddenError(f"{event} is not allowed")

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write then fails with an error, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + memory_mb * (1 << 20),) * 2)
    sys.addaudithook(audit)


def _address_space() -> int:
    """This process's virtual memory size in bytes (Linux), or a generous guess elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 30


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    # numpy's C code imports its own submodules lazily through the builtins of the calling frame,
    # which are these when a program called it; programs themselves cannot name them (AST check)
    internal = name.startswith("numpy.")
    if level != 0 or not (name in ALLOWED_IMPORTS or internal):
        raise ForbiddenError(f"importing {name!r} is not allowed")
    return __import__(name, globals, locals, fromlist, level)


def _program_globals() -> dict:
    import builtins

    from . import dsl

    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS if hasattr(builtins, name)}
    safe["__import__"] = _restricted_import
    safe["__build_class__"] = builtins.__build_class__  # what a class statement calls
    names = dsl.namespace()
    names["__builtins__"] = safe
    names["__name__"] = "program"
    return names


def failure(kind: str, message: str) -> dict:
    """A worker's failure message (JSON-ready), its text cut to MESSAGE_CHARS."""
    return {"ok": False, "error": kind, "message": message[:MESSAGE_CHARS]}


def program_failure(error: BaseException, out_of_memory: str) -> dict:
    """The failure message for what a program raised: forbidden, memory, or its own error."""
    if isinstance(error, ForbiddenError):
        return failure("forbidden", str(error))
    if isinstance(error, MemoryError):
        return failure("memory", out_of_memory)
    return failure("error", f"{type(error).__name__}: {error}")


def _run_job(job: dict, check: bool, violations: list[str]) -> Iterator[dict]:
    """The messages for one job: one per grid, in order."""
    source, grids = job["source"], job["grids"]

    try:
        reason = forbidden_reason(source) if check else None
    except SyntaxError as e:
        yield from [failure("error", f"syntax error: {e.msg} (line {e.lineno})")] * len(grids)
        return
    if reason is not None:
        yield from [failure("forbidden", reason)] * len(grids)
        return
    names = _program_globals()
    solve = None
    try:
        exec(compile(source, "<program>", "exec"), names)  # untrusted: checked above, restricted builtins
        solve = names.get("solve")
        setup_error = None if callable(solve) else failure("error", "the program defines no solve(grid) function")
    except BaseException as e:  # anything the program raises is its own failure, reported
        setup_error = program_failure(e, "out of memory while defining the program")
    for raw in grids:
        if setup_error is not None or violations:
            yield setup_error or failure("forbidden", f"{violations[-1]} is not allowed")
            continue
        try:
            value = solve(np.array(raw, dtype=np.uint8))
            try:
                message = {"ok": True, "grid": checked_grid(value).astype(int).tolist()}
            except ValueError as e:
                message = failure("invalid-output", str(e))
        except BaseException as e:  # anything the program raises is its own failure, reported
            message = program_failure(e, "out of memory")
        if violations:  # a guard fired and the program caught the error: still forbidden
            message = failure("forbidden", f"{violations[-1]} is not allowed")
        yield message


def worker_main() -> None:
    """The worker's loop: read a job (JSON line) from stdin, write one JSON line per grid to stdout."""
    memory_mb, check = int(sys.argv[2]), sys.argv[3] == "1"
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # a program's print goes nowhere, never into the protocol
    sys.stdout = open(quiet, "w", closefd=False)
    violations: list[str] = []
    _program_globals()  # import everything a program can use before the guards go up
    _install_guards(memory_mb, violations)
    sys.stderr = sys.stdout
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        job = json.loads(line)
        for message in _run_job(job, check, violations):
            protocol.write(json.dumps(message) + "\n")
            protocol.flush()
