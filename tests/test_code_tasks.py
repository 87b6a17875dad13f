"""Tests for training_code/induction/code_tasks.py: the code-from-examples and output-from-code prompt versions and
the training data built from programs."""

from __future__ import annotations

import numpy as np
import pytest

from training_code.arc_loader import DataPart, Example, Key, Task
from training_code.formats import ArchitectsFormat, format_from_spec
from training_code.induction.code_tasks import (
    CODE_FROM_EXAMPLES,
    CODE_PROMPT_VERSIONS,
    OUTPUT_FROM_CODE,
    CodeTaskDataset,
    code_alphabet,
    code_dataset,
    grid_text,
    program_from_reply,
    render_code_from_examples,
    render_code_task,
    render_output_from_code,
)
from training_code.induction.programs import GENERATORS, PROGRAMS, run_trusted_program

FORMATS = [ArchitectsFormat(), format_from_spec("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"),
           format_from_spec("GridCodeBlockEncoder(GridWithSeparationEncoder('|'))")]
PROGRAM = "def solve(grid):\n    return flip_h(grid)\n"
A = np.array([[1, 2, 0], [0, 3, 4]], dtype=np.uint8)
B = np.array([[5], [6]], dtype=np.uint8)


def flip_task() -> Task:
    train = tuple(Example(x, np.fliplr(x)) for x in (A, B, A.T))
    return Task("flip", train, (Example(A[::-1], np.fliplr(A[::-1])),))


def reply_span_is_the_reply(rendered) -> bool:
    return rendered.output_spans == ((len(rendered.prompt), len(rendered.text)),)


@pytest.fixture(scope="module")
def small_dataset() -> CodeTaskDataset:
    return code_dataset(np.random.default_rng(0), generated_per_task=2, n_examples=3,
                        task_ids=["007bbfb7", "3c9b0459", "be94b721"])


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.spec)
def test_grid_text_is_the_reply_without_its_closing(fmt):
    assert grid_text(fmt, A) + "\n" + fmt.eos == fmt.reply_text(A)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.spec)
def test_code_from_examples_shows_the_examples_and_answers_with_the_program(fmt):
    rendered = render_code_from_examples(fmt, [(A, np.fliplr(A)), (B, B)], PROGRAM)
    assert rendered.prompt.endswith("program:\n")
    assert rendered.reply == PROGRAM + fmt.eos
    assert reply_span_is_the_reply(rendered)
    for label, grid in (("input 1:\n", A), ("output 1:\n", np.fliplr(A)), ("input 2:\n", B)):
        assert label + grid_text(fmt, grid) + "\n" in rendered.prompt
    assert "input 3:" not in rendered.prompt
    assert program_from_reply(fmt, rendered.reply) == PROGRAM
    decoding = render_code_from_examples(fmt, [(A, A)])
    assert decoding.reply == "" and decoding.output_spans == ()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.spec)
def test_output_from_code_answers_with_the_formats_own_reply(fmt):
    rendered = render_output_from_code(fmt, PROGRAM, A, np.fliplr(A))
    assert rendered.prompt.endswith("input:\n" + grid_text(fmt, A) + "\noutput:\n")
    assert "program:\n" + PROGRAM + "input:\n" in rendered.prompt
    assert rendered.reply == fmt.reply_text(np.fliplr(A))
    assert np.array_equal(fmt.parse_reply(rendered.reply), np.fliplr(A))
    assert reply_span_is_the_reply(rendered)
    checker = fmt.reply_checker()  # the decoders' pruning works on these replies unchanged
    state = checker.step(checker.start(), rendered.reply[: -len(fmt.eos)])
    assert state is not None and checker.can_end(state)
    assert render_output_from_code(fmt, PROGRAM, A).reply == ""


def test_program_text_is_normalised_and_must_not_be_empty():
    fmt = ArchitectsFormat()
    rendered = render_output_from_code(fmt, "\n\n" + PROGRAM.rstrip("\n"), A, A)
    assert "program:\n" + PROGRAM + "input:" in rendered.prompt
    with pytest.raises(ValueError):
        render_code_from_examples(fmt, [(A, A)], "\n \n")
    with pytest.raises(ValueError):
        render_code_from_examples(fmt, [], PROGRAM)


def test_render_code_task_uses_the_example_order_and_the_test_input():
    fmt, task = ArchitectsFormat(), flip_task()
    ordered = render_code_task(fmt, task, PROGRAM, CODE_FROM_EXAMPLES, example_order=[2, 0])
    expected = render_code_from_examples(fmt, [(A.T, np.fliplr(A.T)), (A, np.fliplr(A))], PROGRAM)
    assert ordered == expected
    run = render_code_task(fmt, task, PROGRAM, OUTPUT_FROM_CODE)
    assert run == render_output_from_code(fmt, PROGRAM, A[::-1], np.fliplr(A[::-1]))
    assert render_code_task(fmt, task, PROGRAM, OUTPUT_FROM_CODE, with_reply=False).reply == ""
    with pytest.raises(ValueError):
        render_code_task(fmt, task, PROGRAM, "output-from-examples")


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.spec)
def test_code_alphabet_covers_every_rendered_text(fmt):
    alphabet = set(code_alphabet(fmt))
    assert set(fmt.alphabet) <= alphabet
    for source in PROGRAMS.values():
        for version in CODE_PROMPT_VERSIONS:
            text = render_code_task(fmt, flip_task(), source, version).text.replace(fmt.eos, "")
            assert set(text) <= alphabet


def test_code_dataset_holds_original_and_generated_tasks(small_dataset):
    ids = set(small_dataset.tasks)
    assert {"007bbfb7", "3c9b0459", "be94b721"} <= ids
    assert {"007bbfb7-g0", "007bbfb7-g1", "3c9b0459-g0", "3c9b0459-g1"} <= ids
    assert "be94b721" not in GENERATORS and not any(t.startswith("be94b721-g") for t in ids)
    assert small_dataset.programs["007bbfb7-g1"] == PROGRAMS["007bbfb7"]
    generated = small_dataset.tasks["007bbfb7-g1"]
    assert len(generated.train) == 2 and len(generated.test) == 1
    for e in (*generated.train, *generated.test):
        assert np.array_equal(e.output, run_trusted_program(PROGRAMS["007bbfb7"], e.input))
    with pytest.raises(KeyError):
        code_dataset(np.random.default_rng(0), task_ids=["not-a-task"])


def test_code_dataset_is_deterministic_per_seed():
    a = code_dataset(np.random.default_rng(5), 1, 3, include_original=False, task_ids=["a699fb00"])
    b = code_dataset(np.random.default_rng(5), 1, 3, include_original=False, task_ids=["a699fb00"])
    fmt = ArchitectsFormat()
    for version in CODE_PROMPT_VERSIONS:
        assert [a.render(k, fmt, version) for k in a.keys] == [b.render(k, fmt, version) for k in b.keys]


def test_dataset_renders_code_versions_in_the_tasks_own_frame(small_dataset):
    fmt = ArchitectsFormat()
    plain = Key("3c9b0459", 0, example_order=(1, 0))
    augmented = Key("3c9b0459", 0, transpose=True, rotation=3, colours=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9),
                    example_order=(1, 0))
    for version in CODE_PROMPT_VERSIONS:
        assert small_dataset.render(augmented, fmt, version) == small_dataset.render(plain, fmt, version)
    task = small_dataset.tasks["3c9b0459"]
    shown = small_dataset.render(plain, fmt, CODE_FROM_EXAMPLES)
    assert shown == render_code_task(fmt, task, PROGRAMS["3c9b0459"], CODE_FROM_EXAMPLES, example_order=(1, 0))
    # the grid versions still go to ArcDataset, augmentation included
    assert small_dataset.render(augmented, fmt) != small_dataset.render(plain, fmt)
    with pytest.raises(KeyError):
        small_dataset.render(Key("3c9b0459", 5), fmt, OUTPUT_FROM_CODE)


def test_dataset_operations_keep_the_programs(small_dataset):
    keys = [Key("007bbfb7", 0)]
    assert isinstance(small_dataset.with_keys(keys), CodeTaskDataset)
    sub = small_dataset.subset(["007bbfb7", "be94b721"])
    assert isinstance(sub, CodeTaskDataset) and set(sub.programs) == {"007bbfb7", "be94b721"}
    augmented = small_dataset.augment(np.random.default_rng(0), n=2)
    assert isinstance(augmented, CodeTaskDataset) and len(augmented.keys) == 2 * len(small_dataset.keys)
    assert "007bbfb7" in repr(small_dataset) or "code-tasks" in repr(small_dataset)
    with pytest.raises(ValueError, match="without a program"):
        CodeTaskDataset(small_dataset.tasks, programs={})


def test_fit_to_budget_drops_examples_of_code_from_examples(small_dataset):
    fmt = ArchitectsFormat()
    key = Key("007bbfb7", 0)
    full = len(small_dataset.render(key, fmt, CODE_FROM_EXAMPLES).text)
    fitted, too_long = small_dataset.with_keys([key]).fit_to_budget(fmt, full - 1, len, CODE_FROM_EXAMPLES)
    assert not too_long and len(fitted.keys[0].example_order) < len(small_dataset.tasks["007bbfb7"].train)
    assert len(fitted.render(fitted.keys[0], fmt, CODE_FROM_EXAMPLES).text) <= full - 1


def test_code_parts_feed_the_training_loop(small_dataset):
    training = pytest.importorskip("training_code.training")
    fmt = ArchitectsFormat()
    parts = [DataPart(small_dataset, version, 1.0) for version in CODE_PROMPT_VERSIONS]
    config = training.TrainConfig(batch_size=4, max_length=100_000, seed=3)
    batch = next(training.batches(parts, fmt, config, count_tokens=len))
    assert len(batch) == 4
    for rendered in batch:
        assert rendered.prompt.startswith(("Write a program", "Run the program"))
        assert reply_span_is_the_reply(rendered)
