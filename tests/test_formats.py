"""Tests for training_code/formats.py: rendering, strict parsing, spec strings and reply checkers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training_code.formats import (
    DEFAULT_FORMAT_SPEC,
    DEFAULT_PREPROMPT,
    PROMPT_VERSIONS,
    ArchitectsFormat,
    EncoderFormat,
    EncoderReplyChecker,
    FormatParseError,
    FormatSpecError,
    GridShapeEncoder,
    GridWithSeparationEncoder,
    MinimalGridEncoder,
    RowNumberEncoder,
    RowsChecker,
    TextFormat,
    encoder_from_spec,
    format_from_spec,
)
from training_code.grids import ArcDataError

ENCODER_SPECS = [
    "MinimalGridEncoder()",
    "RowNumberEncoder(MinimalGridEncoder())",
    "GridShapeEncoder(MinimalGridEncoder())",
    "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "GridWithSeparationEncoder('|')",
    "RowNumberEncoder(GridWithSeparationEncoder(','))",
    "GridCodeBlockEncoder(MinimalGridEncoder())",
    "GridCodeBlockEncoder(GridWithSeparationEncoder('|'))",
    "GridCodeBlockEncoder(GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder())))",
    "GridShapeEncoder(GridCodeBlockEncoder(RowNumberEncoder(GridWithSeparationEncoder(' '))))",
]
FORMAT_SPECS = ["architects", "architects('ABC')", *ENCODER_SPECS]
EOS_TEXTS = ["</s>", "<|endoftext|>"]

FAST = settings(max_examples=25, deadline=None)


def grids(max_side: int = 30) -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return arrays(np.uint8, shape, elements=st.integers(0, 9))


def tasks(max_side: int = 30):
    pair = st.tuples(grids(max_side), grids(max_side))
    return st.tuples(st.lists(pair, max_size=3), grids(max_side), grids(max_side))


def g(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def parses(fmt: TextFormat, text: str) -> bool:
    try:
        fmt.parse_reply(text)
    except FormatParseError:
        return False
    return True


def grid_text(fmt: TextFormat, grid: np.ndarray) -> str:
    """The text a decoder writes before the end token."""
    return fmt.reply_text(grid)[: -len(fmt.eos)]


# ---- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@pytest.mark.parametrize("eos", EOS_TEXTS)
@FAST
@given(grid=grids())
def test_reply_round_trips_with_and_without_eos(spec, eos, grid):
    fmt = format_from_spec(spec, eos=eos)
    reply = fmt.reply_text(grid)
    assert reply.endswith("\n" + eos)
    assert np.array_equal(fmt.parse_reply(reply), grid)
    parsed = fmt.parse_reply(reply[: -len(eos)])
    assert np.array_equal(parsed, grid)
    assert parsed.dtype == np.uint8


@pytest.mark.parametrize("spec", ENCODER_SPECS)
@FAST
@given(grid=grids())
def test_encoder_round_trips(spec, grid):
    encoder = encoder_from_spec(spec)
    text = encoder.to_text(grid)
    assert not text.endswith("\n")
    assert np.array_equal(encoder.to_grid(text), grid)
    assert set(text) <= set(encoder.alphabet)


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@pytest.mark.parametrize("version", PROMPT_VERSIONS)
@FAST
@given(task=tasks(max_side=12))
def test_rendered_task_structure(spec, version, task):
    train, test_input, test_output = task
    fmt = format_from_spec(spec)
    rendered = fmt.render(train, test_input, test_output, prompt_version=version)
    text = rendered.text

    # the reply parses back to the grid it was rendered from
    assert np.array_equal(fmt.parse_reply(rendered.reply), test_output)

    # spans: every written grid with its closing text, in order, the reply last
    if version == "output-from-examples":
        written = [y for _, y in train] + [test_output]
    else:
        written = [x for x, _ in train] + [test_input, test_output]
    assert [text[a:b] for a, b in rendered.output_spans] == [fmt.reply_text(w) for w in written]
    assert rendered.output_spans[-1] == (len(rendered.prompt), len(text))
    ends = [0] + [b for _, b in rendered.output_spans]
    starts = [a for a, _ in rendered.output_spans]
    assert all(previous_end <= start for previous_end, start in zip(ends, starts, strict=False))

    # every character but the eos special token is in the alphabet
    assert set(text.replace(fmt.eos, "")) <= set(fmt.alphabet)
    assert set(grid_text(fmt, test_output)) <= set(fmt.reply_alphabet)

    # without an output, the prompt is unchanged and only the reply's span is gone
    open_ended = fmt.render(train, test_input, None, prompt_version=version)
    assert open_ended.prompt == rendered.prompt
    assert open_ended.reply == ""
    assert open_ended.output_spans == rendered.output_spans[:-1]


@pytest.mark.parametrize("spec", FORMAT_SPECS)
def test_alphabets_are_sorted_unique_and_nested(spec):
    fmt = format_from_spec(spec, eos="<|endoftext|>")
    for alphabet in (fmt.alphabet, fmt.reply_alphabet):
        assert list(alphabet) == sorted(set(alphabet))
    assert set(fmt.reply_alphabet) <= set(fmt.alphabet)
    assert "<" not in fmt.alphabet  # the eos text is a special token, not part of the alphabet


def test_architects_alphabet_is_exactly_what_it_writes():
    fmt = ArchitectsFormat()
    assert fmt.alphabet == "".join(sorted(set(DEFAULT_PREPROMPT + "IO+/-=\n0123456789")))
    assert fmt.reply_alphabet == "\n0123456789"


# ---- exact texts of a small task ---------------------------------------------------------------

TRAIN = [(g([[1, 2], [3, 4]]), g([[5]])), (g([[0]]), g([[6, 7]]))]
TEST_INPUT = g([[8]])
TEST_OUTPUT = g([[9, 9]])


def test_architects_text_and_spans():
    fmt = ArchitectsFormat()
    rendered = fmt.render(TRAIN, TEST_INPUT, TEST_OUTPUT)
    assert rendered.prompt == DEFAULT_PREPROMPT + "I12\n34\n+/-=O5\n</s>I0\n+/-=O67\n</s>I8\n+/-=O"
    assert rendered.reply == "99\n</s>"
    assert [rendered.text[a:b] for a, b in rendered.output_spans] == ["5\n</s>", "67\n</s>", "99\n</s>"]


def test_architects_input_from_inputs_text_and_spans():
    fmt = ArchitectsFormat(preprompt="AB", eos="<|endoftext|>")
    rendered = fmt.render(TRAIN, TEST_INPUT, g([[3]]), prompt_version="input-from-inputs")
    eos = "<|endoftext|>"
    assert rendered.prompt == f"ABI12\n34\n{eos}I0\n{eos}I8\n{eos}I"
    assert rendered.reply == f"3\n{eos}"
    spans = [rendered.text[a:b] for a, b in rendered.output_spans]
    assert spans == [f"12\n34\n{eos}", f"0\n{eos}", f"8\n{eos}", rendered.reply]


def test_encoder_format_text_and_spans():
    fmt = format_from_spec("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")
    rendered = fmt.render(TRAIN, TEST_INPUT, TEST_OUTPUT)
    assert rendered.prompt == (
        EncoderFormat.INSTRUCTIONS["output-from-examples"]
        + "input 1:\nshape: 2x2\n1 12\n2 34\noutput 1:\nshape: 1x1\n1 5\n</s>"
        + "input 2:\nshape: 1x1\n1 0\noutput 2:\nshape: 1x2\n1 67\n</s>"
        + "test input:\nshape: 1x1\n1 8\ntest output:\n"
    )
    assert rendered.reply == "shape: 1x2\n1 99\n</s>"
    assert [rendered.text[a:b] for a, b in rendered.output_spans] == [
        "shape: 1x1\n1 5\n</s>",
        "shape: 1x2\n1 67\n</s>",
        "shape: 1x2\n1 99\n</s>",
    ]


def test_encoder_format_input_from_inputs_text():
    fmt = format_from_spec("GridCodeBlockEncoder(GridWithSeparationEncoder('|'))")
    rendered = fmt.render(TRAIN, TEST_INPUT, g([[4, 5]]), prompt_version="input-from-inputs")
    assert rendered.prompt == (
        EncoderFormat.INSTRUCTIONS["input-from-inputs"]
        + "input 1:\n```grid\n1|2\n3|4\n```\n</s>"
        + "input 2:\n```grid\n0\n```\n</s>"
        + "input 3:\n```grid\n8\n```\n</s>"
        + "input 4:\n"
    )
    assert rendered.reply == "```grid\n4|5\n```\n</s>"
    assert len(rendered.output_spans) == 4


def test_input_from_inputs_ignores_train_outputs():
    fmt = format_from_spec(DEFAULT_FORMAT_SPEC)
    other_outputs = [(x, g([[1, 1, 1]])) for x, _ in TRAIN]
    assert (
        fmt.render(TRAIN, TEST_INPUT, TEST_OUTPUT, "input-from-inputs").text
        == fmt.render(other_outputs, TEST_INPUT, TEST_OUTPUT, "input-from-inputs").text
    )
    assert "+/-=O" not in fmt.render(TRAIN, TEST_INPUT, TEST_OUTPUT, "input-from-inputs").text


@pytest.mark.parametrize("spec", ["architects", "MinimalGridEncoder()"])
def test_unknown_prompt_version_is_refused(spec):
    with pytest.raises(ValueError, match="prompt version"):
        format_from_spec(spec).render(TRAIN, TEST_INPUT, TEST_OUTPUT, prompt_version="output-from-inputs")


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((31, 1), np.uint8),
        np.zeros((1, 31), np.uint8),
        np.full((2, 2), 10, np.uint8),
        np.array([[-1]]),
        np.zeros((0, 3), np.uint8),
        np.zeros((2, 2, 2), np.uint8),
        np.array([[0.5]]),
    ],
)
def test_render_refuses_grids_that_are_not_arc_grids(bad):
    fmt = ArchitectsFormat()
    with pytest.raises(ArcDataError):
        fmt.render([], bad, None)
    with pytest.raises(ArcDataError):
        fmt.reply_text(bad)


def test_render_accepts_other_integer_dtypes():
    fmt = ArchitectsFormat()
    assert fmt.reply_text(np.array([[1, 2]], dtype=np.int64)) == "12\n</s>"


# ---- spec strings ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FORMAT_SPECS)
def test_format_spec_round_trips(spec):
    fmt = format_from_spec(spec, eos="<|endoftext|>")
    assert fmt.spec == spec
    assert format_from_spec(fmt.spec, eos=fmt.eos) == fmt
    assert fmt.eos == "<|endoftext|>"


@pytest.mark.parametrize("spec", ENCODER_SPECS)
def test_encoder_spec_round_trips(spec):
    encoder = encoder_from_spec(spec)
    assert encoder.spec == spec
    assert encoder_from_spec(encoder.spec) == encoder
    assert isinstance(format_from_spec(spec), EncoderFormat)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        (
            " GridShapeEncoder ( RowNumberEncoder( MinimalGridEncoder( ) ) ) ",
            "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
        ),
        ('GridWithSeparationEncoder("|")', "GridWithSeparationEncoder('|')"),
        ("GridWithSeparationEncoder('|', MinimalGridEncoder())", "GridWithSeparationEncoder('|')"),
        (f"architects('{DEFAULT_PREPROMPT}')", "architects"),
        ("architects('')", "architects('')"),
    ],
)
def test_spec_is_written_back_canonically(written, canonical):
    assert format_from_spec(written).spec == canonical


def test_default_format_is_architects():
    fmt = format_from_spec(DEFAULT_FORMAT_SPEC)
    assert isinstance(fmt, ArchitectsFormat)
    assert fmt.preprompt == DEFAULT_PREPROMPT
    assert fmt.name == "architects"


@pytest.mark.parametrize(
    ("spec", "position"),
    [
        ("FooEncoder()", 0),
        ("__import__('os')", 0),
        ("open('x').read()", 0),
        ("minimalgridencoder()", 0),
        ("", 0),
        ("(MinimalGridEncoder())", 0),
        ("MinimalGridEncoder() x", 21),
        ("MinimalGridEncoder())", 20),
        ("MinimalGridEncoder(", 19),
        ("GridShapeEncoder(MinimalGridEncoder()", 37),
        ("GridShapeEncoder(MinimalGridEncoder)", 35),
        ("MinimalGridEncoder(MinimalGridEncoder())", 19),
        ("GridShapeEncoder(architects)", 17),
        ("GridWithSeparationEncoder('|'", 29),
        ("GridWithSeparationEncoder('|", 28),
        ("GridWithSeparationEncoder('||')", 26),
        ("GridWithSeparationEncoder('1')", 26),
        ("GridWithSeparationEncoder('`')", 26),
        ("GridWithSeparationEncoder('|', GridShapeEncoder(MinimalGridEncoder()))", 0),
        ("RowNumberEncoder(GridShapeEncoder(MinimalGridEncoder()))", 0),
        ("GridShapeEncoder(GridShapeEncoder(MinimalGridEncoder()))", 0),
        ("GridCodeBlockEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))", 0),
        ("architects x", 11),
        ("architects('A1')", 11),
        ("architects(", 11),
    ],
)
def test_bad_specs_are_refused_with_the_position(spec, position):
    with pytest.raises(FormatSpecError, match=f"at position {position}\\b") as info:
        format_from_spec(spec)
    assert isinstance(info.value, ValueError)


def test_spec_error_says_what_was_expected():
    with pytest.raises(ValueError, match="unknown name '__import__'; expected one of architects, MinimalGridEncoder"):
        format_from_spec("__import__('os')")
    with pytest.raises(ValueError, match="expected '\\)'"):
        format_from_spec("MinimalGridEncoder(")


def test_deep_nesting_is_refused_without_recursion_error():
    with pytest.raises(FormatSpecError, match="nested"):
        format_from_spec("RowNumberEncoder(" * 200 + "MinimalGridEncoder()" + ")" * 200)


def test_encoder_from_spec_refuses_a_format_name():
    with pytest.raises(FormatSpecError, match="unknown name 'architects'"):
        encoder_from_spec("architects")


def test_encoders_compare_by_spec():
    assert RowNumberEncoder(MinimalGridEncoder()) == encoder_from_spec("RowNumberEncoder(MinimalGridEncoder())")
    assert GridWithSeparationEncoder("|") != GridWithSeparationEncoder(",")
    same = {GridShapeEncoder(MinimalGridEncoder()), encoder_from_spec("GridShapeEncoder(MinimalGridEncoder())")}
    assert len(same) == 1


# ---- strict parsing ----------------------------------------------------------------------------

THIRTY_ONE_ROWS = "0\n" * 31
THIRTY_ONE_COLUMNS = "0" * 31 + "\n"


@pytest.mark.parametrize(
    ("spec", "reply"),
    [
        ("architects", "012\n34\n"),  # ragged
        ("architects", "012\n3456\n"),
        ("architects", "01a\n"),  # stray character
        ("architects", "012 \n"),
        ("architects", " 012\n"),
        ("architects", "012\r\n"),
        ("architects", "\uff10\n"),  # a full-width digit is not a cell
        ("architects", "\u00b2\n"),
        ("architects", "012"),  # the closing newline is part of the reply
        ("architects", "012</s>"),
        ("architects", "012\n</s></s>"),
        ("architects", "012\n\n"),
        ("architects", ""),
        ("architects", "\n"),
        ("architects", "</s>"),
        ("architects", THIRTY_ONE_ROWS),
        ("architects", THIRTY_ONE_COLUMNS),
        ("MinimalGridEncoder()", "012\n34\n</s>"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n3 345\n"),  # wrong row number
        ("RowNumberEncoder(MinimalGridEncoder())", "012\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1  012\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "01 012\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n2 34\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "".join(f"{r} 0\n" for r in range(1, 32))),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 2x3\n012\n"),  # wrong shape line
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x4\n012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 01x3\n012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x3 \n012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape:1x3\n012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1X3\n012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "012\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x3\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 31x1\n" + THIRTY_ONE_ROWS),
        ("GridWithSeparationEncoder('|')", "0|1|\n"),
        ("GridWithSeparationEncoder('|')", "|0|1\n"),
        ("GridWithSeparationEncoder('|')", "0||1\n"),
        ("GridWithSeparationEncoder('|')", "01\n"),
        ("GridWithSeparationEncoder('|')", "0,1\n"),
        ("GridWithSeparationEncoder('|')", "0|1\n2\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "012\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n012\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n012\n```\n\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```python\n012\n```\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n```\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n\n```\n"),
    ],
)
def test_parse_reply_is_strict(spec, reply):
    with pytest.raises(FormatParseError):
        format_from_spec(spec).parse_reply(reply)


def test_parse_error_is_a_value_error_with_a_clear_message():
    with pytest.raises(ValueError, match="ragged: row 1 has 3 cells, row 2 has 2"):
        ArchitectsFormat().parse_reply("012\n34\n")
    with pytest.raises(ValueError, match="says 2x3 but the grid is 1x3"):
        format_from_spec("GridShapeEncoder(MinimalGridEncoder())").parse_reply("shape: 2x3\n012\n")
    with pytest.raises(ValueError, match="row 2 should start with '2 '"):
        format_from_spec("RowNumberEncoder(MinimalGridEncoder())").parse_reply("1 012\n3 345\n")


# ---- reply checkers ----------------------------------------------------------------------------


def feed(checker, text: str, chunks: list[int] | None = None):
    """The checker's state after ``text`` fed one character at a time (or in chunks of the given sizes)."""
    state = checker.start()
    pieces = list(text) if chunks is None else split(text, chunks)
    for piece in pieces:
        state = checker.step(state, piece)
        if state is None:
            return None
    return state


def split(text: str, sizes: list[int]) -> list[str]:
    pieces, pos, i = [], 0, 0
    while pos < len(text):
        size = sizes[i % len(sizes)] if sizes else 1
        pieces.append(text[pos : pos + size])
        pos += size
        i += 1
    return pieces


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@FAST
@given(grid=grids(max_side=8), chunks=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_checker_accepts_every_prefix_and_ends_only_on_a_grid(spec, grid, chunks):
    fmt = format_from_spec(spec)
    checker = fmt.reply_checker()
    text = grid_text(fmt, grid)
    state = checker.start()
    assert not checker.can_end(state)
    for i, ch in enumerate(text, 1):
        state = checker.step(state, ch)
        assert state is not None, f"prefix {text[:i]!r} was cut"
        hash(state)
        # exactly when the text so far is itself a whole grid (a grid's first rows can be one)
        assert checker.can_end(state) == parses(fmt, text[:i]), text[:i]
    assert checker.can_end(state)
    chunked = feed(checker, text, chunks)
    assert chunked == state
    assert checker.step(state, "") == state


@pytest.mark.parametrize("spec", FORMAT_SPECS)
def test_checker_accepts_a_full_thirty_by_thirty_grid(spec):
    fmt = format_from_spec(spec)
    checker = fmt.reply_checker()
    grid = (np.arange(900).reshape(30, 30) % 10).astype(np.uint8)
    state = feed(checker, grid_text(fmt, grid))
    assert state is not None and checker.can_end(state)


def oversized_text(fmt: TextFormat, rows: int, cols: int) -> str:
    """The text the format would write for a grid over the size limit (bypassing the grid check)."""
    return fmt._grid_text(np.zeros((rows, cols), np.uint8)) + "\n"


@pytest.mark.parametrize("spec", FORMAT_SPECS)
def test_checker_refuses_a_31st_row_or_column(spec):
    fmt = format_from_spec(spec)
    checker = fmt.reply_checker()
    for rows, cols in [(31, 1), (1, 31), (31, 31)]:
        assert feed(checker, oversized_text(fmt, rows, cols)) is None
    for rows, cols in [(30, 1), (1, 30)]:
        assert checker.can_end(feed(checker, oversized_text(fmt, rows, cols)))


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        # the last character is the first one that cannot lead to a grid
        ("architects", "012\n34\n"),
        ("architects", "012\n3456"),
        ("architects", "0" * 31),
        ("architects", "0\n" * 30 + "0"),
        ("architects", "\n"),
        ("MinimalGridEncoder()", "012\n34\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n2 34\n"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n3"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n2 3456"),
        ("RowNumberEncoder(MinimalGridEncoder())", "".join(f"{r} 0\n" for r in range(1, 31)) + "3"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1 012\n1"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 2x3\n012\n34\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 2x3\n0123"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x3\n012\n0"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 31"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 0"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "shape: 1x30\n0\n"),
        ("GridShapeEncoder(MinimalGridEncoder())", "0"),
        ("GridWithSeparationEncoder('|')", "0|1|2\n3|4\n"),
        ("GridWithSeparationEncoder('|')", "0|\n"),
        ("GridWithSeparationEncoder('|')", "01"),
        ("GridWithSeparationEncoder('|')", "0||"),
        ("GridWithSeparationEncoder('|')", "0,"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n012\n34\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n`"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n012\n```\n\n"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```grid\n012\n```\n0"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```p"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "0"),
        ("GridCodeBlockEncoder(GridShapeEncoder(MinimalGridEncoder()))", "```grid\nshape: 1x1\n0\n0"),
        ("GridShapeEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))", "shape: 1x1\n```grid\n0\n0"),
        ("GridShapeEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))", "shape: 2x1\n```grid\n0\n`"),
    ],
)
def test_checker_cuts_at_the_first_impossible_character(spec, text):
    checker = format_from_spec(spec).reply_checker()
    state = feed(checker, text[:-1])
    assert state is not None, f"{text[:-1]!r} should still be a possible start"
    assert checker.step(state, text[-1]) is None
    assert checker.step(state, text[-1:] + "0") is None  # also inside a longer token


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@pytest.mark.parametrize("stray", ["a", "I", "\uff10", "<", " \n", "\t"])
def test_checker_refuses_characters_outside_the_reply(spec, stray):
    fmt = format_from_spec(spec)
    checker = fmt.reply_checker()
    text = grid_text(fmt, g([[1, 2], [3, 4]]))
    for cut in range(len(text) + 1):
        state = feed(checker, text[:cut])
        after = checker.step(state, stray)
        # a stray character can only be accepted where the format itself writes it
        if after is not None:
            assert stray in fmt.reply_alphabet and stray == text[cut : cut + len(stray)]


def mutations(fmt: TextFormat):
    """Valid reply texts with one random edit (insert, delete, replace) from the reply alphabet."""
    alphabet = fmt.reply_alphabet
    return st.tuples(grids(max_side=5), st.integers(0, 2), st.integers(0, 10_000), st.sampled_from(alphabet)).map(
        lambda t: _mutate(grid_text(fmt, t[0]), t[1], t[2], t[3])
    )


def _mutate(text: str, kind: int, where: int, ch: str) -> str:
    i = where % (len(text) + 1)
    if kind == 0:
        return text[:i] + ch + text[i:]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    return text[:i] + ch + text[i + 1 :]


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_checker_agrees_with_the_parser(spec, data):
    fmt = format_from_spec(spec)
    text = data.draw(mutations(fmt))
    checker = fmt.reply_checker()
    state = feed(checker, text)
    assert (state is not None and checker.can_end(state)) == parses(fmt, text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="01\n|x", max_size=40))
def test_encoder_checker_matches_rows_checker_on_minimal_grids(text):
    general = EncoderReplyChecker(MinimalGridEncoder())
    rows = RowsChecker()
    a, b = feed(general, text), feed(rows, text)
    assert (a is None) == (b is None)
    if a is not None:
        assert general.can_end(a) == rows.can_end(b)


def test_formats_take_the_tokenizers_eos():
    fmt = EncoderFormat(MinimalGridEncoder(), eos="<|im_end|>")
    assert fmt.reply_text(g([[1]])) == "1\n<|im_end|>"
    assert fmt.parse_reply("1\n<|im_end|>").tolist() == [[1]]
    with pytest.raises(FormatParseError):
        fmt.parse_reply("1\n</s>")
    with pytest.raises(ValueError):
        ArchitectsFormat(eos="")
