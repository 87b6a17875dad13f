"""Code as a task (Omni-ARC's idea): prompts where the model writes a program, or runs one.

Two prompt versions, beside the grid-only versions of ``formats.PROMPT_VERSIONS``:

* ``code-from-examples``: the model sees a task's examples and writes the program that solves it
  (a ``def solve(grid):`` in the grid DSL, ``training_code.induction.dsl``).
* ``output-from-code``: the model sees a program and an input grid and writes the output grid.

Both are built on a text format (``formats.TextFormat``): grids are written with the format's own
grid text, so an ``output-from-code`` reply is exactly the format's reply for that grid (its
``parse_reply`` and ``reply_checker`` work unchanged). The labels around the grids are plain text,
the same for every format::

    code-from-examples                      output-from-code
    ------------------                      ----------------
    <instruction line>                      <instruction line>
    input 1:                                program:
    <grid>                                  <program text>
    output 1:                               input:
    <grid>                                  <grid>
    ...                                     output:
    program:                                <reply: grid, "\\n", eos>
    <reply: program text, eos>

``output_spans`` cover the reply only (with its eos). Programs and their tasks come from
``training_code.induction.programs``: ``code_dataset`` gathers the original tasks and generated ones into a
``CodeTaskDataset``, which renders the code versions itself and plugs into the training loop as
``arc_loader.DataPart(dataset, "code-from-examples", weight)``; the source spec ``code`` (``sources``)
names it in a training-data spec (``code code-from-examples``).

Vocabulary: program text uses most printable ASCII characters, far more than a grid format's
``alphabet``. A model whose vocabulary was shrunk to ``fmt.alphabet`` cannot write programs;
shrink with ``code_alphabet(fmt)`` when training on these versions. ``ProgramChecker`` is the
decoders' checker for program text (the format's ``reply_checker`` only lets grids through).
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..arc_loader import ArcDataset, Key, Task
from ..formats import RenderedTask, TextFormat
from ..grids import Grid

CODE_FROM_EXAMPLES = "code-from-examples"
OUTPUT_FROM_CODE = "output-from-code"
CODE_PROMPT_VERSIONS: tuple[str, ...] = (CODE_FROM_EXAMPLES, OUTPUT_FROM_CODE)
INSTRUCTIONS = {
    CODE_FROM_EXAMPLES: "Write a program solve(grid) in the grid DSL that turns each input into its output.\n",
    OUTPUT_FROM_CODE: "Run the program on the input grid and write the output grid.\n",
}
PROGRAM_LABEL = "program:\n"
# Every character a program may contain: printable ASCII less the rare whitespace (\r, \x0b, \x0c)
CODE_CHARACTERS = "".join(sorted(set(string.printable) - set("\r\x0b\x0c")))


def code_alphabet(fmt: TextFormat) -> str:
    """Sorted characters of any text the code versions render in ``fmt`` (eos excluded): the
    format's alphabet, the labels and every character a program may contain."""
    return "".join(sorted(set(fmt.alphabet) | set(CODE_CHARACTERS)))


def grid_text(fmt: TextFormat, grid: Grid) -> str:
    """The format's text for a grid, without the closing newline and eos of a reply."""
    return fmt.reply_text(grid)[: -len("\n" + fmt.eos)]


def _program_text(program: str) -> str:
    """The program as it appears in a text: no blank lines around it, one closing newline."""
    text = program.strip("\n") + "\n"
    if not text.strip():
        raise ValueError("empty program")
    return text


def render_code_from_examples(fmt: TextFormat, examples: Sequence[tuple[Grid, Grid]],
                              program: str | None = None) -> RenderedTask:
    """The ``code-from-examples`` prompt for the given (input, output) examples; the reply is the
    program text and eos (empty when ``program`` is None, for decoding)."""
    if not examples:
        raise ValueError("code-from-examples needs at least one example")
    parts = [INSTRUCTIONS[CODE_FROM_EXAMPLES]]
    for number, (x, y) in enumerate(examples, 1):
        parts.append(f"input {number}:\n{grid_text(fmt, x)}\noutput {number}:\n{grid_text(fmt, y)}\n")
    parts.append(PROGRAM_LABEL)
    prompt = "".join(parts)
    reply = "" if program is None else _program_text(program) + fmt.eos
    spans = ((len(prompt), len(prompt) + len(reply)),) if reply else ()
    return RenderedTask(prompt, reply, spans)


def render_output_from_code(fmt: TextFormat, program: str, test_input: Grid,
                            test_output: Grid | None = None) -> RenderedTask:
    """The ``output-from-code`` prompt: the program and the input grid; the reply is the format's
    reply for ``test_output`` (empty when it is None, for decoding)."""
    prompt = (f"{INSTRUCTIONS[OUTPUT_FROM_CODE]}{PROGRAM_LABEL}{_program_text(program)}"
              f"input:\n{grid_text(fmt, test_input)}\noutput:\n")
    reply = "" if test_output is None else fmt.reply_text(test_output)
    spans = ((len(prompt), len(prompt) + len(reply)),) if reply else ()
    return RenderedTask(prompt, reply, spans)


class ProgramChecker:
    """A ``formats.ReplyChecker`` for program text, so the decoders can sample programs.

    Any text of ``CODE_CHARACTERS`` may follow; the end token may follow once the program is not
    empty. ``special_texts`` (the tokenizer's special tokens, whose texts are printable too: "<s>")
    are never program text. Two states (empty, not empty) keep the decoders' memoised masks few.
    """

    def __init__(self, special_texts: Iterable[str] = ()):
        self.characters = frozenset(CODE_CHARACTERS)
        self.special_texts = frozenset(special_texts)

    def start(self) -> bool:
        return False

    def step(self, state: Hashable, text: str) -> bool | None:
        if text in self.special_texts or not set(text) <= self.characters:
            return None
        return True

    def can_end(self, state: Hashable) -> bool:
        return bool(state)


def program_from_reply(fmt: TextFormat, reply: str) -> str:
    """The program text of a ``code-from-examples`` reply (the eos text, if there, removed)."""
    return reply[: -len(fmt.eos)] if reply.endswith(fmt.eos) else reply


def render_code_task(fmt: TextFormat, task: Task, program: str, prompt_version: str, test_index: int = 0,
                     example_order: Sequence[int] | None = None, with_reply: bool = True) -> RenderedTask:
    """A task with its program in one of the ``CODE_PROMPT_VERSIONS``.

    ``code-from-examples`` shows the training examples (in ``example_order``, default all in
    order); ``output-from-code`` shows the program and test input ``test_index``.
    """
    if prompt_version == CODE_FROM_EXAMPLES:
        order = range(len(task.train)) if example_order is None else example_order
        examples = [(task.train[i].input, task.train[i].output) for i in order]
        return render_code_from_examples(fmt, examples, program if with_reply else None)
    if prompt_version == OUTPUT_FROM_CODE:
        test = task.test[test_index]
        return render_output_from_code(fmt, program, test.input, test.output if with_reply else None)
    raise ValueError(f"unknown code prompt version {prompt_version!r}; expected one of "
                     f"{', '.join(CODE_PROMPT_VERSIONS)}")


# --------------------------------------------------------------------------------------------------
# Training data


@dataclass(repr=False)  # ArcDataset's short repr, not every task
class CodeTaskDataset(ArcDataset):
    """An ArcDataset whose tasks have programs (``programs``: task id -> source text).

    ``render`` handles the ``CODE_PROMPT_VERSIONS`` itself and hands every other version to
    ArcDataset. A program is written for the task's own frame and colours, so for the code
    versions a key's rotation, transposition and colour permutation are ignored (the task is shown
    as it is); its example order is kept, so shuffling examples and dropping them to fit a token
    budget still work. ``ArcDataset.merge`` returns a plain dataset (programs dropped):
    give the training loop one ``DataPart`` per dataset instead.
    """

    programs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = [t for t in self.tasks if t not in self.programs]
        if missing:
            raise ValueError(f"tasks without a program: {', '.join(missing[:5])}")

    def render(self, key: Key, fmt, prompt_version: str = "output-from-examples",
               with_reply: bool = True) -> RenderedTask:
        if prompt_version not in CODE_PROMPT_VERSIONS:
            return super().render(key, fmt, prompt_version, with_reply)
        task = self.tasks[key.task_id]
        if key.test_index >= len(task.test):
            raise KeyError(f"key {key}: task has {len(task.test)} test inputs")
        return render_code_task(fmt, task, self.programs[key.task_id], prompt_version, key.test_index,
                                key.example_order, with_reply)

    def with_keys(self, keys: Iterable[Key], name: str | None = None) -> CodeTaskDataset:
        plain = super().with_keys(keys, name)
        return CodeTaskDataset(plain.tasks, plain.keys, plain.name, plain.skipped, self.programs)

    def subset(self, task_ids: Iterable[str]) -> CodeTaskDataset:
        plain = super().subset(task_ids)
        return CodeTaskDataset(plain.tasks, plain.keys, plain.name, plain.skipped,
                               {t: self.programs[t] for t in plain.tasks})


def code_dataset(rng: np.random.Generator, generated_per_task: int = 4, n_examples: int = 4,
                 include_original: bool = True, task_ids: Iterable[str] | None = None) -> CodeTaskDataset:
    """Tasks with programs: the original ARC-AGI-1 training tasks that have a program (with
    ``include_original``) and ``generated_per_task`` new tasks (ids ``<id>-g<k>``, ``n_examples``
    examples each, the last the test) for every task that also has a generator.

    ``task_ids`` limits it to some tasks (default: every task with a program).
    """
    from .programs import GENERATORS, PROGRAMS, new_task

    ids = list(PROGRAMS) if task_ids is None else list(task_ids)
    unknown = [t for t in ids if t not in PROGRAMS]
    if unknown:
        raise KeyError(f"no program for tasks: {', '.join(unknown[:5])}")
    tasks: dict[str, Task] = {}
    programs: dict[str, str] = {}
    if include_original:
        original = ArcDataset.from_bundled("arc-agi-1/training")
        for task_id in ids:
            tasks[task_id] = original.tasks[task_id]
            programs[task_id] = PROGRAMS[task_id]
    for task_id in ids:
        if task_id not in GENERATORS:
            continue
        for k in range(generated_per_task):
            new_id = f"{task_id}-g{k}"
            tasks[new_id] = new_task(task_id, rng, n_examples, new_id=new_id)
            programs[new_id] = PROGRAMS[task_id]
    return CodeTaskDataset(tasks, name="code-tasks", programs=programs)


__all__ = [
    "CODE_CHARACTERS",
    "CODE_FROM_EXAMPLES",
    "CODE_PROMPT_VERSIONS",
    "INSTRUCTIONS",
    "OUTPUT_FROM_CODE",
    "CodeTaskDataset",
    "ProgramChecker",
    "code_alphabet",
    "code_dataset",
    "grid_text",
    "program_from_reply",
    "render_code_from_examples",
    "render_code_task",
    "render_output_from_code",
]
