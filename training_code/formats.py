"""Text formats: how a task is rendered as text for a language model and how a reply is parsed back.

``RenderedTask``, ``ReplyChecker`` and ``RowsChecker`` are the interfaces other modules use.

Two families of formats live here, both chosen by a spec string (``format_from_spec``):

* ``ArchitectsFormat`` (spec ``architects``): the ARChitects' layout. A preprompt of letters, then
  each example as ``I`` + input rows + ``\\n+/-=O`` + output rows + ``\\n`` + end-of-sequence. One
  digit is one character, and so one token with a digit-per-token tokenizer.
* ``EncoderFormat`` around one of arc24's composable grid encoders (spec
  ``GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))`` and the like): a short instruction
  line, labelled examples, and the grid text written by the encoder.

Every format renders a task in one of the ``PROMPT_VERSIONS``:

* ``output-from-examples``: the usual task. The examples are shown whole, then the test input;
  the model writes the test output.
* ``input-from-inputs``: only input grids are shown (the inputs of the training examples, then the
  test input) and the model writes one more input grid. ``render(train, test_input, grid)`` then
  reads ``grid`` (passed as ``test_output``) as "the new input to write"; the outputs in ``train``
  are ignored.

In both versions ``output_spans`` cover every grid the model is taught to write, each with its
closing text: the example outputs (for ``input-from-inputs``: every context input) in order, then
the reply. So "mask the first n outputs" means the same thing in both.

A reply is the grid text, then ``"\\n"`` and the end-of-sequence text. The end-of-sequence text is a
special token of the tokenizer, so it is not part of a format's ``alphabet``; a ``ReplyChecker``
sees the text before it (ending with the ``"\\n"``) and says when the end token may come.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .grids import MAX_SIDE, Grid, checked_grid

DIGITS = "0123456789"
DEFAULT_EOS = "</s>"
# The ARChitects' preprompt: the Latin letters less I and O (the input and output markers) and
# their lower-case i and o.
DEFAULT_PREPROMPT = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyz"
OUTPUT_FROM_EXAMPLES = "output-from-examples"
INPUT_FROM_INPUTS = "input-from-inputs"
PROMPT_VERSIONS: tuple[str, ...] = (OUTPUT_FROM_EXAMPLES, INPUT_FROM_INPUTS)
DEFAULT_FORMAT_SPEC = "architects"

_ZERO = ord("0")
_NEWLINE = ord("\n")


class FormatParseError(ValueError):
    """A text that is not exactly a grid in the format it was parsed with."""


class FormatSpecError(ValueError):
    """A format spec string that the grammar rejects; the message names the position."""


@dataclass(frozen=True)
class RenderedTask:
    """A task view rendered as text.

    ``prompt`` ends exactly where the model starts to write the answer; ``reply`` is the answer
    (test output grid and its closing text, the end-of-sequence text included) or "" when the
    output is unknown. ``output_spans`` are character spans ``[start, end)`` of ``text`` that carry
    loss in training: every output grid with its closing text, in order, the reply's last.
    """

    prompt: str
    reply: str
    output_spans: tuple[tuple[int, int], ...]

    @property
    def text(self) -> str:
        return self.prompt + self.reply


class ReplyChecker(Protocol):
    """Incremental check of a reply while it is decoded, for pruning decoders.

    States are immutable and hashable so a search can keep one per node. ``step`` takes the text of
    one token (one or more characters) and returns the next state, or None when the text can no
    longer become a grid in this format. ``can_end`` says whether the end token may follow.
    """

    def start(self) -> Hashable: ...

    def step(self, state: Hashable, text: str) -> Hashable | None: ...

    def can_end(self, state: Hashable) -> bool: ...


class RowsChecker:
    """Checker for replies made of rows of cell digits, each row closed by ``row_end``.

    State: (rows finished, width of the first row or 0, cells in the current row). A row longer or
    shorter than the first, a 31st row or column, or any other character cuts the branch.

    Why a second checker of rows when ``EncoderReplyChecker(MinimalGridEncoder())`` (``_RowMachine``) checks
    the same language (a test feeds both the same texts): decoding calls the checker for every candidate
    token of every step, and this one takes a token's whole text in one loop on a three-number state,
    where the general machine, built to nest for numbered, separated, shaped and fenced grids, makes a
    method call per character on a six-number state. The two formats most runs decode (architects,
    minimal) use this one; every other encoder uses the general checker.
    """

    def __init__(self, cells: str = "0123456789", row_end: str = "\n", max_side: int = 30):
        if len(row_end) != 1:
            raise ValueError("row_end must be one character")
        self.cells = frozenset(cells)
        self.row_end = row_end
        self.max_side = max_side

    def start(self) -> tuple[int, int, int]:
        return (0, 0, 0)

    def step(self, state: Hashable, text: str) -> tuple[int, int, int] | None:
        rows, width, col = state  # type: ignore[misc]
        for ch in text:
            if ch in self.cells:
                col += 1
                if col > self.max_side or (width and col > width) or rows >= self.max_side:
                    return None
            elif ch == self.row_end:
                if col == 0 or (width and col != width):
                    return None
                if not width:
                    width = col
                rows += 1
                col = 0
            else:
                return None
        return (rows, width, col)

    def can_end(self, state: Hashable) -> bool:
        rows, _width, col = state  # type: ignore[misc]
        return rows > 0 and col == 0


# --------------------------------------------------------------------------------------------------
# Grids to text and back


def _digit_rows(grid: np.ndarray, sep: str | None = None) -> str:
    """Rows of digits joined by newlines (no newline at the end), cells optionally separated by ``sep``.

    Built as one byte buffer (digits, separators and newlines placed by slicing) and decoded once,
    which is several times faster than joining per cell in Python.
    """
    h, w = grid.shape
    if sep is None:
        buf = np.empty((h, w + 1), dtype=np.uint8)
        np.add(grid, _ZERO, out=buf[:, :w])
    else:
        buf = np.empty((h, 2 * w), dtype=np.uint8)
        np.add(grid, _ZERO, out=buf[:, 0::2])
        buf[:, 1:-1:2] = ord(sep)
    buf[:, -1] = _NEWLINE
    return buf.tobytes()[:-1].decode("ascii")


def _grid_from_digit_rows(rows: list[str]) -> Grid:
    """Parse rows of digit characters (one cell each) into a grid, strictly."""
    if len(rows) > MAX_SIDE:
        raise FormatParseError(f"grid has {len(rows)} rows; at most {MAX_SIDE} are allowed")
    width = len(rows[0])
    for r, row in enumerate(rows, 1):
        if not row:
            raise FormatParseError(f"row {r} is empty")
        # isascii first: str.isdigit alone also accepts digits of other scripts, such as '²'
        if not (row.isascii() and row.isdigit()):
            stray = next(ch for ch in row if ch not in DIGITS)
            raise FormatParseError(f"row {r} has the stray character {stray!r}; cells are digits 0 to 9")
        if len(row) != width:
            raise FormatParseError(f"rows are ragged: row 1 has {width} cells, row {r} has {len(row)}")
    if width > MAX_SIDE:
        raise FormatParseError(f"grid has {width} columns; at most {MAX_SIDE} are allowed")
    cells = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8) - np.uint8(_ZERO)
    return cells.reshape(len(rows), width)


# --------------------------------------------------------------------------------------------------
# Incremental checking of encoder texts
#
# Each encoder has a character machine for its text followed by "\n" (the closing newline of a
# reply): ``start(shape)`` takes the (rows, columns) announced by an outer shape line, or None;
# ``feed`` takes one character and returns the next state or None; ``done`` says the text is a
# complete grid. Machines nest like the encoders, so a checker exists for every composition.


class _Machine(ABC):
    @abstractmethod
    def start(self, shape: tuple[int, int] | None) -> Hashable: ...

    @abstractmethod
    def feed(self, state: Hashable, ch: str) -> Hashable | None: ...

    @abstractmethod
    def done(self, state: Hashable) -> bool: ...


# Row machine phases
_ROW_START, _IN_NUMBER, _WANT_CELL, _AFTER_CELL = 0, 1, 2, 3


class _RowMachine(_Machine):
    """Rows of digit cells, each closed by a newline; optionally numbered ("1 ") and separated.

    State: (rows finished, row width or 0, cells in this row, phase, characters of the row number
    read, rows announced by a shape line or 0).
    """

    def __init__(self, numbered: bool, sep: str | None):
        self.numbered = numbered
        self.sep = sep

    def start(self, shape: tuple[int, int] | None) -> Hashable:
        rows, cols = shape if shape is not None else (0, 0)
        return (0, cols, 0, _ROW_START, 0, rows)

    def feed(self, state: Hashable, ch: str) -> Hashable | None:
        rows, width, col, phase, pos, want_rows = state  # type: ignore[misc]
        if phase == _ROW_START:
            if rows >= (want_rows or MAX_SIDE):
                return None
            if self.numbered:
                return (rows, width, 0, _IN_NUMBER, 1, want_rows) if ch == str(rows + 1)[0] else None
            phase = _WANT_CELL
        if phase == _IN_NUMBER:
            label = f"{rows + 1} "
            if ch != label[pos]:
                return None
            pos += 1
            return (rows, width, 0, _WANT_CELL if pos == len(label) else _IN_NUMBER, pos, want_rows)
        if phase == _AFTER_CELL:
            if ch == "\n":
                if width and col != width:
                    return None
                return (rows + 1, width or col, 0, _ROW_START, 0, want_rows)
            if self.sep is not None:
                return (rows, width, col, _WANT_CELL, 0, want_rows) if ch == self.sep else None
        # _WANT_CELL, or a cell right after a cell when there is no separator
        if ch not in DIGITS or col >= (width or MAX_SIDE):
            return None
        return (rows, width, col + 1, _AFTER_CELL, 0, want_rows)

    def done(self, state: Hashable) -> bool:
        rows, _width, _col, phase, _pos, want_rows = state  # type: ignore[misc]
        return phase == _ROW_START and rows > 0 and (not want_rows or rows == want_rows)


class _ShapeMachine(_Machine):
    """A ``shape: RxC`` line, then the inner text constrained to that shape.

    State: (stage, position in "shape: " or number read so far, rows, inner state or None).
    Numbers are 1 to 30 without leading zeros, exactly as ``str`` writes them.
    """

    HEAD = "shape: "

    def __init__(self, inner: _Machine):
        self.inner = inner

    def start(self, shape: tuple[int, int] | None) -> Hashable:
        return (0, 0, 0, None)

    def feed(self, state: Hashable, ch: str) -> Hashable | None:
        stage, value, rows, inner = state  # type: ignore[misc]
        if stage == 3:
            nxt = self.inner.feed(inner, ch)
            return None if nxt is None else (3, 0, rows, nxt)
        if stage == 0:
            if ch != self.HEAD[value]:
                return None
            return (1, 0, 0, None) if value + 1 == len(self.HEAD) else (0, value + 1, 0, None)
        # stage 1 reads the rows, stage 2 the columns
        if ch in DIGITS:
            value = value * 10 + int(ch)
            return (stage, value, rows, None) if 1 <= value <= MAX_SIDE else None
        if stage == 1 and ch == "x" and value:
            return (2, 0, value, None)
        if stage == 2 and ch == "\n" and value:
            return (3, 0, rows, self.inner.start((rows, value)))
        return None

    def done(self, state: Hashable) -> bool:
        stage, _value, _rows, inner = state  # type: ignore[misc]
        return stage == 3 and self.inner.done(inner)


class _FenceMachine(_Machine):
    """A "```grid" line, the inner text, then a "```" line.

    State: (stage, position in the fence line, inner state or None). The inner text can never
    contain a backtick, so the first one after a complete inner grid starts the closing fence.
    """

    OPEN = "```grid\n"
    CLOSE = "```\n"

    def __init__(self, inner: _Machine):
        self.inner = inner

    def start(self, shape: tuple[int, int] | None) -> Hashable:
        return (0, 0, self.inner.start(shape))

    def feed(self, state: Hashable, ch: str) -> Hashable | None:
        stage, pos, inner = state  # type: ignore[misc]
        if stage == 1:
            nxt = self.inner.feed(inner, ch)
            if nxt is not None:
                return (1, 0, nxt)
            return (2, 1, None) if ch == self.CLOSE[0] and self.inner.done(inner) else None
        fence = self.OPEN if stage == 0 else self.CLOSE
        if pos >= len(fence) or ch != fence[pos]:
            return None
        if stage == 0 and pos + 1 == len(fence):
            return (1, 0, inner)
        return (stage, pos + 1, inner)

    def done(self, state: Hashable) -> bool:
        stage, pos, _inner = state  # type: ignore[misc]
        return stage == 2 and pos == len(self.CLOSE)


class EncoderReplyChecker:
    """Exact incremental checker for the reply of an ``EncoderFormat``: ``to_text(grid) + "\\n"``.

    Row numbers are checked in sequence, the rows must match a shape line, separators and fences
    must be where the encoder writes them, and sides stay within 1 to 30. ``can_end`` is true
    exactly when the text so far parses as a grid.
    """

    def __init__(self, encoder: GridEncoder):
        self.encoder = encoder
        self._machine = encoder._machine()

    def start(self) -> Hashable:
        return self._machine.start(None)

    def step(self, state: Hashable, text: str) -> Hashable | None:
        feed = self._machine.feed
        for ch in text:
            state = feed(state, ch)
            if state is None:
                return None
        return state

    def can_end(self, state: Hashable) -> bool:
        return self._machine.done(state)


# --------------------------------------------------------------------------------------------------
# arc24-style grid encoders


class GridEncoder(ABC):
    """Writes a grid as text and reads it back; composable (wrappers take an ``inner`` encoder).

    ``to_text`` never ends with a newline; ``to_grid`` is strict and raises ``FormatParseError`` for
    any text that ``to_text`` could not have written. Encoders compare equal by ``spec``.
    """

    # The layers present in this encoder chain; a layer appears at most once so the text stays
    # unambiguous (a second shape line or fence would say nothing new).
    _layers: frozenset[str]

    @property
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec string; ``encoder_from_spec(e.spec) == e``."""

    @property
    @abstractmethod
    def alphabet(self) -> str:
        """Sorted unique characters this encoder can write."""

    def to_text(self, grid: Grid) -> str:
        """The grid as text (raises ArcDataError for an array that is not an ARC grid)."""
        return self._text(checked_grid(grid))

    @abstractmethod
    def _text(self, grid: np.ndarray) -> str:
        """``to_text`` for a grid already checked."""

    @abstractmethod
    def to_grid(self, text: str) -> Grid:
        """The grid written as ``text``; FormatParseError for anything else."""

    @abstractmethod
    def _machine(self) -> _Machine: ...

    def __repr__(self) -> str:
        return self.spec

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridEncoder) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)


class _RowEncoder(GridEncoder):
    """An encoder that writes one line per grid row and nothing else (what RowNumberEncoder wraps)."""

    _layers = frozenset({"cells"})
    sep: str | None = None


class MinimalGridEncoder(_RowEncoder):
    """Rows of digits joined by newlines: ``"012\\n345"``. One character per cell."""

    @property
    def spec(self) -> str:
        return "MinimalGridEncoder()"

    @property
    def alphabet(self) -> str:
        return "".join(sorted(DIGITS + "\n"))

    def _text(self, grid: np.ndarray) -> str:
        return _digit_rows(grid)

    def to_grid(self, text: str) -> Grid:
        return _grid_from_digit_rows(text.split("\n"))

    def _machine(self) -> _Machine:
        return _RowMachine(numbered=False, sep=None)


# Separators that keep the spec grammar simple (no quotes or backslash inside a quoted string) and
# the text unambiguous (not a digit, not the fence's backtick, not a line break).
SEPARATORS = frozenset(" !#$%&()*+,-./:;<=>?@[]^_{|}~")


_DIGIT_ROWS = MinimalGridEncoder()  # the ARChitects' grid text is the minimal encoder's


class GridWithSeparationEncoder(_RowEncoder):
    """Cells separated by one character within a row: ``"0|1|2\\n3|4|5"`` for ``sep="|"``.

    ``inner`` is accepted for the arc24 signature but can only be ``MinimalGridEncoder()`` (the
    cells the separator goes between); the canonical spec leaves it out.
    """

    def __init__(self, sep: str = "|", inner: GridEncoder | None = None):
        if len(sep) != 1 or sep not in SEPARATORS:
            raise ValueError(f"separator must be one of {''.join(sorted(SEPARATORS))!r}, got {sep!r}")
        if inner is not None and not isinstance(inner, MinimalGridEncoder):
            raise ValueError(f"GridWithSeparationEncoder can only wrap MinimalGridEncoder(), got {inner.spec}")
        self.sep = sep

    @property
    def spec(self) -> str:
        return f"GridWithSeparationEncoder('{self.sep}')"

    @property
    def alphabet(self) -> str:
        return "".join(sorted(set(DIGITS + "\n" + self.sep)))

    def _text(self, grid: np.ndarray) -> str:
        return _digit_rows(grid, self.sep)

    def to_grid(self, text: str) -> Grid:
        rows = text.split("\n")
        for r, row in enumerate(rows, 1):
            separators = row[1::2]
            # a row of n cells is exactly 2n - 1 characters with the separator at every odd index
            if len(row) % 2 == 0 or separators != self.sep * len(separators):
                raise FormatParseError(f"row {r} ({row[:70]!r}) is not cells separated by {self.sep!r}")
        return _grid_from_digit_rows([row[0::2] for row in rows])

    def _machine(self) -> _Machine:
        return _RowMachine(numbered=False, sep=self.sep)


class _WrappingEncoder(GridEncoder):
    """An encoder that adds one layer (``LAYER``, described by ``WHAT`` in errors) around another's text,
    writing the characters ``ADDED`` besides the inner encoder's."""

    LAYER: str
    WHAT: str
    ADDED: str

    def __init__(self, inner: GridEncoder):
        if self.LAYER in inner._layers:
            raise ValueError(f"{type(self).__name__} cannot wrap another {self.WHAT}: {inner.spec}")
        self.inner = inner
        self._layers = inner._layers | {self.LAYER}

    @property
    def spec(self) -> str:
        return f"{type(self).__name__}({self.inner.spec})"

    @property
    def alphabet(self) -> str:
        return "".join(sorted(set(self.inner.alphabet + self.ADDED)))


class RowNumberEncoder(_WrappingEncoder):
    """Each row prefixed with its 1-based number and a space: ``"1 012\\n2 345"``."""

    LAYER, WHAT, ADDED = "numbers", "row numbering", DIGITS + " "
    inner: _RowEncoder

    def __init__(self, inner: GridEncoder):
        if not isinstance(inner, _RowEncoder):
            raise ValueError(
                f"RowNumberEncoder needs an encoder that writes one line per row "
                f"(MinimalGridEncoder or GridWithSeparationEncoder), got {inner.spec}"
            )
        super().__init__(inner)

    def _text(self, grid: np.ndarray) -> str:
        return "\n".join(f"{r} {row}" for r, row in enumerate(self.inner._text(grid).split("\n"), 1))

    def to_grid(self, text: str) -> Grid:
        lines = text.split("\n")
        if len(lines) > MAX_SIDE:
            raise FormatParseError(f"grid has {len(lines)} rows; at most {MAX_SIDE} are allowed")
        rows = []
        for r, line in enumerate(lines, 1):
            label = f"{r} "
            if not line.startswith(label):
                raise FormatParseError(f"row {r} should start with {label!r}, found {line[: len(label) + 2]!r}")
            rows.append(line[len(label) :])
        return self.inner.to_grid("\n".join(rows))

    def _machine(self) -> _Machine:
        return _RowMachine(numbered=True, sep=self.inner.sep)


_SHAPE_LINE = re.compile(r"shape: ([1-9][0-9]?)x([1-9][0-9]?)")


class GridShapeEncoder(_WrappingEncoder):
    """A first line ``shape: RxC`` (rows x columns), then the inner text; the shape is checked."""

    LAYER, WHAT, ADDED = "shape", "shape line", "shape: x\n" + DIGITS

    def _text(self, grid: np.ndarray) -> str:
        return f"shape: {grid.shape[0]}x{grid.shape[1]}\n{self.inner._text(grid)}"

    def to_grid(self, text: str) -> Grid:
        head, newline, body = text.partition("\n")
        match = _SHAPE_LINE.fullmatch(head)
        if not newline or match is None:
            raise FormatParseError(f"expected a first line 'shape: <rows>x<columns>' and the grid, found {head!r}")
        shape = (int(match[1]), int(match[2]))
        if max(shape) > MAX_SIDE:
            raise FormatParseError(f"shape line says {head[7:]}; sides must be 1 to {MAX_SIDE}")
        grid = self.inner.to_grid(body)
        if grid.shape != shape:
            raise FormatParseError(f"shape line says {head[7:]} but the grid is {grid.shape[0]}x{grid.shape[1]}")
        return grid

    def _machine(self) -> _Machine:
        return _ShapeMachine(self.inner._machine())


class GridCodeBlockEncoder(_WrappingEncoder):
    """The inner text in a fenced block: ``"```grid\\n" + inner + "\\n```"``."""

    OPEN = "```grid\n"
    CLOSE = "\n```"
    LAYER, WHAT, ADDED = "fence", "code block", OPEN + CLOSE

    def _text(self, grid: np.ndarray) -> str:
        return f"{self.OPEN}{self.inner._text(grid)}{self.CLOSE}"

    def to_grid(self, text: str) -> Grid:
        # the length test stops "```grid\n```" from sharing its newline between the two fences
        if (
            len(text) < len(self.OPEN) + len(self.CLOSE)
            or not text.startswith(self.OPEN)
            or not text.endswith(self.CLOSE)
        ):
            raise FormatParseError(f"expected the grid between '```grid' and '```' lines, found {text[:40]!r}...")
        return self.inner.to_grid(text[len(self.OPEN) : -len(self.CLOSE)])

    def _machine(self) -> _Machine:
        return _FenceMachine(self.inner._machine())


# --------------------------------------------------------------------------------------------------
# Formats


class TextFormat(ABC):
    """A way of writing a task as text: ``render`` for prompts, ``parse_reply`` for answers.

    Attributes: ``name`` (a short label for logs), ``spec`` (``format_from_spec(f.spec, eos=f.eos)``
    rebuilds the format), ``eos`` (the tokenizer's end-of-sequence text), ``alphabet`` (sorted
    unique characters of any rendered text, eos excluded) and ``reply_alphabet`` (those of a
    reply's grid text). Subclasses provide the labels around the grids and the grid text itself.
    """

    name: str

    def __init__(self, eos: str = DEFAULT_EOS):
        if not isinstance(eos, str) or not eos or "\n" in eos:
            raise ValueError(f"eos must be a non-empty text without newlines, got {eos!r}")
        self.eos = eos
        self._closing = "\n" + eos  # closes every grid the model writes

    # ---- what subclasses provide

    @property
    @abstractmethod
    def spec(self) -> str: ...

    @abstractmethod
    def _grid_text(self, grid: np.ndarray) -> str:
        """A checked grid as text, without the closing newline."""

    @abstractmethod
    def _grid_from_text(self, text: str) -> Grid:
        """Strict inverse of ``_grid_text``."""

    @abstractmethod
    def _header(self, prompt_version: str) -> str: ...

    @abstractmethod
    def _query_label(self, number: int | None) -> str:
        """Text before the input grid of example ``number`` (1-based; None for the test input)."""

    @abstractmethod
    def _answer_label(self, number: int | None) -> str:
        """Text between an input grid and its output grid (None: the test example)."""

    @abstractmethod
    def _input_label(self, number: int) -> str:
        """Text before input grid ``number`` (1-based) in the input-from-inputs version."""

    @abstractmethod
    def reply_checker(self) -> ReplyChecker:
        """A checker of the reply's grid text (the text before the end token)."""

    @property
    @abstractmethod
    def alphabet(self) -> str: ...

    @property
    @abstractmethod
    def reply_alphabet(self) -> str: ...

    # ---- shared behaviour

    def render(
        self,
        train: Sequence[tuple[Grid, Grid]],
        test_input: Grid,
        test_output: Grid | None = None,
        prompt_version: str = OUTPUT_FROM_EXAMPLES,
    ) -> RenderedTask:
        """Render a task view; ``prompt`` ends where the model starts writing.

        ``output-from-examples``: the examples ``train`` in order, then ``test_input``; the reply is
        ``test_output``. ``input-from-inputs``: the inputs of ``train`` and then ``test_input`` (the
        outputs of ``train`` are not shown); the reply is ``test_output`` read as one more input
        grid. Either way ``test_output=None`` gives an empty reply (for decoding), and
        ``output_spans`` cover every grid the model is taught to write, with its closing text.
        """
        if prompt_version not in PROMPT_VERSIONS:
            raise ValueError(f"unknown prompt version {prompt_version!r}; expected one of {', '.join(PROMPT_VERSIONS)}")
        grid_text = self._grid_text
        closing = self._closing
        parts = [self._header(prompt_version)]
        pos = len(parts[0])
        spans: list[tuple[int, int]] = []
        if prompt_version == OUTPUT_FROM_EXAMPLES:
            for number, (x, y) in enumerate(train, 1):
                lead = self._query_label(number) + grid_text(checked_grid(x)) + self._answer_label(number)
                written = grid_text(checked_grid(y)) + closing
                parts += (lead, written)
                spans.append((pos + len(lead), pos + len(lead) + len(written)))
                pos += len(lead) + len(written)
            parts += (self._query_label(None), grid_text(checked_grid(test_input)), self._answer_label(None))
        else:
            inputs = [x for x, _ in train]
            inputs.append(test_input)
            for number, x in enumerate(inputs, 1):
                lead = self._input_label(number)
                written = grid_text(checked_grid(x)) + closing
                parts += (lead, written)
                spans.append((pos + len(lead), pos + len(lead) + len(written)))
                pos += len(lead) + len(written)
            parts.append(self._input_label(len(inputs) + 1))
        prompt = "".join(parts)
        reply = "" if test_output is None else grid_text(checked_grid(test_output)) + closing
        if reply:
            spans.append((len(prompt), len(prompt) + len(reply)))
        return RenderedTask(prompt, reply, tuple(spans))

    def reply_text(self, grid: Grid) -> str:
        """The reply that answers with ``grid``: its grid text and closing text, eos included."""
        return self._grid_text(checked_grid(grid)) + self._closing

    def parse_reply(self, reply: str) -> Grid:
        """The grid of a reply, with or without the trailing eos text; strict.

        The grid text must end with its closing newline; nothing is dropped or repaired to rescue a
        grid, so any other text raises FormatParseError.
        """
        text = reply[: -len(self.eos)] if reply.endswith(self.eos) else reply
        if not text.endswith("\n"):
            raise FormatParseError(f"a reply is the grid text and a newline; this one ends with {text[-20:]!r}")
        return self._grid_from_text(text[:-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, eos={self.eos!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.spec, other.eos) == (self.spec, self.eos)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec, self.eos))


class ArchitectsFormat(TextFormat):
    """The ARChitects' format.

    ``preprompt``, then per example ``"I" + input rows + "\\n+/-=O" + output rows + "\\n" + eos``,
    rows being digit strings joined by newlines; the prompt ends after the test's ``"\\n+/-=O"``.
    In ``input-from-inputs`` every input is ``"I" + rows + "\\n" + eos`` and the prompt ends after
    a last ``"I"``: the missing ``+/-=O`` lines tell the two versions apart.
    """

    name = "architects"
    QUERY = "I"
    ANSWER = "\n+/-=O"

    def __init__(self, preprompt: str = DEFAULT_PREPROMPT, eos: str = DEFAULT_EOS):
        super().__init__(eos)
        # letters only: they can never be read as grid text, and the spec can quote them plainly
        if preprompt and not (preprompt.isascii() and preprompt.isalpha()):
            raise ValueError(f"preprompt must be ASCII letters, got {preprompt!r}")
        self.preprompt = preprompt
        self._alphabet = "".join(sorted(set(preprompt + self.QUERY + self.ANSWER + DIGITS + "\n")))

    @property
    def spec(self) -> str:
        return "architects" if self.preprompt == DEFAULT_PREPROMPT else f"architects('{self.preprompt}')"

    @property
    def alphabet(self) -> str:
        return self._alphabet

    @property
    def reply_alphabet(self) -> str:
        return _DIGIT_ROWS.alphabet

    def _grid_text(self, grid: np.ndarray) -> str:
        return _DIGIT_ROWS._text(grid)

    def _grid_from_text(self, text: str) -> Grid:
        return _DIGIT_ROWS.to_grid(text)

    def _header(self, prompt_version: str) -> str:
        return self.preprompt

    def _query_label(self, number: int | None) -> str:
        return self.QUERY

    def _answer_label(self, number: int | None) -> str:
        return self.ANSWER

    def _input_label(self, number: int) -> str:
        return self.QUERY

    def reply_checker(self) -> ReplyChecker:
        return RowsChecker(DIGITS, "\n", MAX_SIDE)


class EncoderFormat(TextFormat):
    """A plain-text prompt around a grid encoder.

    ``output-from-examples``::

        <instruction line>
        input 1:
        <grid>
        output 1:
        <grid>
        <eos>input 2:
        ...
        test input:
        <grid>
        test output:
        <reply grid>
        <eos>

    ``input-from-inputs`` has its own instruction and writes ``input k:`` before every grid, each
    followed by a newline and eos; the prompt ends after ``input <n+2>:`` and a newline.
    """

    INSTRUCTIONS = {
        OUTPUT_FROM_EXAMPLES: "Find the rule mapping each input grid to its output grid; apply it to the test input.\n",
        INPUT_FROM_INPUTS: "Write one more input grid like these input grids.\n",
    }

    def __init__(self, encoder: GridEncoder, eos: str = DEFAULT_EOS):
        super().__init__(eos)
        self.encoder = encoder
        self.name = encoder.spec
        fixed = "".join(self.INSTRUCTIONS.values()) + "input output test: \n" + DIGITS
        self._alphabet = "".join(sorted(set(fixed + encoder.alphabet)))

    @property
    def spec(self) -> str:
        return self.encoder.spec

    @property
    def alphabet(self) -> str:
        return self._alphabet

    @property
    def reply_alphabet(self) -> str:
        return "".join(sorted(set(self.encoder.alphabet + "\n")))

    def _grid_text(self, grid: np.ndarray) -> str:
        return self.encoder._text(grid)

    def _grid_from_text(self, text: str) -> Grid:
        return self.encoder.to_grid(text)

    def _header(self, prompt_version: str) -> str:
        return self.INSTRUCTIONS[prompt_version]

    def _query_label(self, number: int | None) -> str:
        return "test input:\n" if number is None else f"input {number}:\n"

    def _answer_label(self, number: int | None) -> str:
        return "\ntest output:\n" if number is None else f"\noutput {number}:\n"

    def _input_label(self, number: int) -> str:
        return f"input {number}:\n"

    def reply_checker(self) -> ReplyChecker:
        if isinstance(self.encoder, MinimalGridEncoder):
            return RowsChecker(DIGITS, "\n", MAX_SIDE)  # the same language, checked by the lighter RowsChecker
        return EncoderReplyChecker(self.encoder)


# --------------------------------------------------------------------------------------------------
# Spec strings
#
# Grammar (spaces allowed between tokens):
#   format     := "architects" [ "(" string ")" ] | encoder
#   encoder    := "MinimalGridEncoder" "(" ")"
#               | ("RowNumberEncoder" | "GridShapeEncoder" | "GridCodeBlockEncoder") "(" encoder ")"
#               | "GridWithSeparationEncoder" "(" string [ "," encoder ] ")"
#   string     := "'" chars "'" | '"' chars '"'      (no escapes)
# Names come from a whitelist and nothing is ever evaluated.

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRAPPERS: dict[str, type[GridEncoder]] = {
    "RowNumberEncoder": RowNumberEncoder,
    "GridShapeEncoder": GridShapeEncoder,
    "GridCodeBlockEncoder": GridCodeBlockEncoder,
}
ENCODER_NAMES: tuple[str, ...] = ("MinimalGridEncoder", "GridWithSeparationEncoder", *_WRAPPERS)
_MAX_DEPTH = 8  # deeper than any legal chain (each layer at most once); stops runaway recursion


class _SpecParser:
    def __init__(self, spec: str):
        self.spec = spec
        self.pos = 0

    def error(self, expected: str, at: int | None = None, found: str | None = None) -> FormatSpecError:
        at = self.pos if at is None else at
        if found is None:
            found = repr(self.spec[at]) if at < len(self.spec) else "the end"
        return FormatSpecError(f"bad format spec {self.spec!r}: at position {at} expected {expected}, found {found}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.spec) and self.spec[self.pos] == " ":
            self.pos += 1

    def expect(self, ch: str) -> None:
        self.skip_spaces()
        if not self.spec.startswith(ch, self.pos):
            raise self.error(repr(ch))
        self.pos += 1

    def peek(self, ch: str) -> bool:
        self.skip_spaces()
        return self.spec.startswith(ch, self.pos)

    def name(self, expected: str) -> tuple[str, int]:
        self.skip_spaces()
        match = _IDENT.match(self.spec, self.pos)
        if match is None:
            raise self.error(expected)
        self.pos = match.end()
        return match[0], match.start()

    def string(self) -> tuple[str, int]:
        self.skip_spaces()
        start = self.pos
        quote = self.spec[start] if start < len(self.spec) else ""
        if quote not in ("'", '"'):
            raise self.error("a quoted string")
        end = self.spec.find(quote, start + 1)
        if end < 0:
            raise self.error(f"a closing {quote} for the string at position {start}", at=len(self.spec))
        self.pos = end + 1
        return self.spec[start + 1 : end], start

    def end(self) -> None:
        self.skip_spaces()
        if self.pos != len(self.spec):
            raise self.error("the end of the spec")

    def format(self, eos: str) -> TextFormat:
        name, at = self.name("a format name: architects or an encoder such as MinimalGridEncoder()")
        if name != "architects":
            self.pos = at
            encoder = self.encoder(0, names=", ".join(("architects", *ENCODER_NAMES)))
            self.end()
            return EncoderFormat(encoder, eos=eos)
        preprompt = DEFAULT_PREPROMPT
        if self.peek("("):
            self.pos += 1
            preprompt, at = self.string()
            self.expect(")")
            if preprompt and not (preprompt.isascii() and preprompt.isalpha()):
                raise self.error("a preprompt of ASCII letters", at=at, found=repr(preprompt))
        self.end()
        return ArchitectsFormat(preprompt, eos=eos)

    def encoder(self, depth: int, names: str = ", ".join(ENCODER_NAMES)) -> GridEncoder:
        """An encoder; ``names`` is what the error for an unknown name says was expected."""
        if depth > _MAX_DEPTH:
            raise self.error(f"at most {_MAX_DEPTH} nested encoders")
        name, at = self.name(f"an encoder name ({names})")
        if name not in ENCODER_NAMES:
            raise FormatSpecError(
                f"bad format spec {self.spec!r}: at position {at} unknown name {name!r}; expected one of {names}"
            )
        self.expect("(")
        try:
            if name == "MinimalGridEncoder":
                encoder: GridEncoder = MinimalGridEncoder()
            elif name == "GridWithSeparationEncoder":
                sep, sep_at = self.string()
                if len(sep) != 1 or sep not in SEPARATORS:
                    raise self.error(
                        f"one separator character out of {''.join(sorted(SEPARATORS))!r}", at=sep_at, found=repr(sep)
                    )
                inner = None
                if self.peek(","):
                    self.pos += 1
                    inner = self.encoder(depth + 1)
                encoder = GridWithSeparationEncoder(sep, inner)
            else:
                encoder = _WRAPPERS[name](self.encoder(depth + 1))  # type: ignore[call-arg]
        except FormatSpecError:
            raise
        except ValueError as exc:  # a composition the encoders refuse, e.g. a nested shape line
            raise FormatSpecError(f"bad format spec {self.spec!r}: at position {at}: {exc}") from None
        self.expect(")")
        return encoder


def encoder_from_spec(spec: str) -> GridEncoder:
    """The grid encoder named by ``spec``, e.g. ``GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))``.

    Raises FormatSpecError (a ValueError) naming the position and what was expected.
    """
    parser = _SpecParser(spec)
    encoder = parser.encoder(0)
    parser.end()
    return encoder


def format_from_spec(spec: str, eos: str = DEFAULT_EOS) -> TextFormat:
    """The format named by ``spec``: ``architects`` (optionally ``architects('LETTERS')`` with
    another preprompt) or an encoder spec, which gives an ``EncoderFormat``.

    Raises FormatSpecError (a ValueError) naming the position and what was expected.
    """
    if not isinstance(spec, str):
        raise FormatSpecError(f"a format spec is a string, got {type(spec).__name__}")
    return _SpecParser(spec).format(eos)


__all__ = [
    "DEFAULT_EOS",
    "DEFAULT_FORMAT_SPEC",
    "DEFAULT_PREPROMPT",
    "ENCODER_NAMES",
    "INPUT_FROM_INPUTS",
    "OUTPUT_FROM_EXAMPLES",
    "PROMPT_VERSIONS",
    "SEPARATORS",
    "ArchitectsFormat",
    "EncoderFormat",
    "EncoderReplyChecker",
    "FormatParseError",
    "FormatSpecError",
    "GridCodeBlockEncoder",
    "GridEncoder",
    "GridShapeEncoder",
    "GridWithSeparationEncoder",
    "MinimalGridEncoder",
    "RenderedTask",
    "ReplyChecker",
    "RowNumberEncoder",
    "RowsChecker",
    "TextFormat",
    "encoder_from_spec",
    "format_from_spec",
]
