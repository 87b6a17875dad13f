"""Tests of the data layer: keys, augmentation and inversion, loaders, dataset operations, budget fitting."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training_code.arc_loader import (
    ArcDataset,
    AugmentOptions,
    Key,
    RunFiles,
    base_task_id,
    d8_keys,
    dataset_grids,
    export_bundled,
    random_key,
    solutions_beside,
    submission_counts,
)
from training_code.formats import format_from_spec
from training_code.grids import ArcDataError
from training_code.sources import load_source

# ---- strategies -------------------------------------------------------------------------------------

task_ids = st.from_regex(r"[0-9a-f]{8}|[A-Za-z][A-Za-z0-9\-]{0,12}", fullmatch=True)
permutations = st.permutations(list(range(10))).map(tuple)
orders = st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True).map(tuple)
keys = st.builds(
    Key,
    task_id=task_ids,
    test_index=st.integers(0, 3),
    transpose=st.booleans(),
    rotation=st.integers(0, 3),
    colours=st.none() | permutations,
    example_order=st.none() | orders,
)
grids = st.integers(1, 30).flatmap(
    lambda h: st.integers(1, 30).flatmap(lambda w: arrays(np.uint8, (h, w), elements=st.integers(0, 9)))
)


def tiny_task(n_train: int = 3, n_test: int = 1, with_outputs: bool = True) -> dict:
    """A Kaggle-style task whose grids differ per example, so order and swaps are visible."""
    train = [{"input": [[i, 1], [2, 3]], "output": [[i, i, 4]]} for i in range(n_train)]
    test = [{"input": [[5 + i]], **({"output": [[6, i]]} if with_outputs else {})} for i in range(n_test)]
    return {"train": train, "test": test}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


# ---- keys ---------------------------------------------------------------------------------------------


@given(keys)
def test_key_renders_and_parses_back(key):
    text = str(key)
    assert Key.parse(text) == key
    assert str(Key.parse(text)) == text


def test_key_text_matches_the_documented_form():
    key = Key("007bbfb7", 0, transpose=True, rotation=2, colours=(3, 0, 1, 2, 4, 5, 6, 7, 8, 9),
              example_order=(2, 0, 1))
    assert str(key) == "007bbfb7_0.tp.rt.rt.perm3012456789.ex2-0-1"
    assert str(Key("abc", 1)) == "abc_1"


@pytest.mark.parametrize("text", [
    "007bbfb7",  # no test index
    "007bbfb7_x",
    "007bbfb7_0.rt.tp",  # misplaced: tp comes before rt
    "007bbfb7_0.tp.tp",
    "007bbfb7_0.rt.rt.rt.rt",  # four quarter turns is the identity, written as none
    "007bbfb7_0.perm012345678",  # nine digits
    "007bbfb7_0.perm0123456788",  # not a permutation
    "007bbfb7_0.ex",
    "007bbfb7_0.ex1-a",
    "007bbfb7_0.flip",
    "007bbfb7_0.ex0-1.perm0123456789",  # perm after ex
    "a.b_0",
])
def test_malformed_keys_are_rejected(text):
    with pytest.raises(ValueError):
        Key.parse(text)


@given(keys, grids)
def test_every_view_inverts_exactly(key, grid):
    assert np.array_equal(key.invert(key.transform(grid)), grid)
    assert key.transform(grid).dtype == np.uint8


def test_rotation_turns_clockwise_and_transpose_comes_first():
    grid = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert Key("t", 0, rotation=1).transform(grid).tolist() == [[3, 1], [4, 2]]
    assert Key("t", 0, transpose=True).transform(grid).tolist() == [[1, 3], [2, 4]]
    # transpose, then a quarter turn clockwise: a horizontal flip
    assert Key("t", 0, transpose=True, rotation=1).transform(grid).tolist() == [[2, 1], [4, 3]]
    perm = Key("t", 0, colours=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    assert perm.transform(grid).tolist() == [[2, 1], [3, 4]]


def test_the_eight_d8_views_are_distinct_on_an_asymmetric_grid():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    views = {Key.transform(k, grid).tobytes() + bytes(Key.transform(k, grid).shape) for k in d8_keys(Key("t", 0))}
    assert len(views) == 8


def test_keep_background_keeps_colour_zero():
    rng = np.random.default_rng(1)
    for _ in range(50):
        key = random_key(Key("t", 0), 3, rng, AugmentOptions(keep_background=True))
        assert key.colours[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arc-agi-1/training", "arc-agi-1/evaluation", "arc-agi-2/training",
                                  "arc-agi-2/evaluation"])
def test_every_augmentation_round_trips_on_every_bundled_task(name):
    ds = ArcDataset.from_bundled(name)
    rng = np.random.default_rng(0)
    for task in ds.tasks.values():
        colours = tuple(int(c) for c in rng.permutation(10))
        for d8 in d8_keys(Key(task.task_id, 0)):
            key = Key(d8.task_id, 0, d8.transpose, d8.rotation, colours)
            for example in (*task.train, *task.test):
                for grid in (example.input, example.output):
                    assert np.array_equal(key.invert(key.transform(grid)), grid), (name, task.task_id, key)
        for test_index, test in enumerate(task.test):  # a whole view, colour 0 kept, examples shuffled
            key = random_key(Key(task.task_id, test_index), len(task.train), rng, AugmentOptions(keep_background=True))
            view = ds.view(key)
            assert key.colours[0] == 0 and sorted(key.example_order) == list(range(len(task.train)))
            for (grid_in, grid_out), index in zip(view.train, key.example_order):
                assert np.array_equal(key.invert(grid_in), task.train[index].input), (name, key)
                assert np.array_equal(key.invert(grid_out), task.train[index].output), (name, key)
            assert np.array_equal(key.invert(view.test_input), test.input), (name, key)
            assert np.array_equal(key.invert(view.test_output), test.output), (name, key)


# ---- views ----------------------------------------------------------------------------------------


def test_view_applies_the_key_to_every_grid_and_orders_examples(tmp_path):
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "c.json", {"t1": tiny_task(3, with_outputs=False)}))
    key = Key("t1", 0, rotation=1, colours=(9, 8, 7, 6, 5, 4, 3, 2, 1, 0), example_order=(2, 0))
    view = ds.view(key)
    task = ds.tasks["t1"]
    assert len(view.train) == 2
    assert np.array_equal(view.train[0][0], key.transform(task.train[2].input))
    assert np.array_equal(view.train[1][1], key.transform(task.train[0].output))
    assert np.array_equal(view.test_input, key.transform(task.test[0].input))
    assert view.test_output is None
    with pytest.raises(KeyError):
        ds.view(Key("t1", 0, example_order=(5,)))
    with pytest.raises(KeyError):
        ds.view(Key("t1", 1))


def test_multi_test_tasks_get_one_key_per_test_input(tmp_path):
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "c.json", {"a": tiny_task(2, 3), "b": tiny_task(2, 1)}))
    assert [str(k) for k in ds.keys] == ["a_0", "a_1", "a_2", "b_0"]
    assert ds.test_counts() == {"a": 3, "b": 1}


def test_augment_is_reproducible_with_a_seed_and_differs_across_seeds():
    ds = ArcDataset.from_bundled("arc-agi-1/evaluation").subset(["00576224", "009d5c81", "00dbd492"])
    a = ds.augment(np.random.default_rng(7), n=4)
    b = ds.augment(np.random.default_rng(7), n=4)
    c = ds.augment(np.random.default_rng(8), n=4)
    assert [str(k) for k in a] == [str(k) for k in b]
    assert [str(k) for k in a] != [str(k) for k in c]
    assert len(a) == 4 * len(ds)
    with_original = ds.augment(np.random.default_rng(7), n=2, keep_original=True)
    assert with_original.keys[0] == ds.keys[0] and len(with_original) == 3 * len(ds)
    assert len(ds.repeat(3)) == 3 * len(ds)


# ---- loaders and bad input ------------------------------------------------------------------------


def test_kaggle_challenges_with_solutions(tmp_path):
    tasks = {"t1": tiny_task(2, 2, with_outputs=False), "t2": tiny_task(3, 1, with_outputs=False)}
    sols = {"t1": [[[1]], [[2, 2]]], "t2": [[[3]]]}
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "c.json", tasks), write_json(tmp_path / "s.json", sols))
    assert ds.solutions()["t1"][1].tolist() == [[2, 2]]
    challenges, solutions = ds.to_kaggle_json()
    assert challenges == tasks and solutions == sols


BAD_TASKS = {
    "no training examples": {"train": [], "test": [{"input": [[1]]}]},
    "not rectangular": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "values must be integers 0 to 9": {"train": [{"input": [[1, 12]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "non-empty": {"train": [{"input": [], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "sides must be 1 to 30": {"train": [{"input": [[0] * 31], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "grid is 31x1; sides must be 1 to 30": {"train": [{"input": [[0]] * 31, "output": [[1]]}],
                                            "test": [{"input": [[1]]}]},
    "cell (0, 1) is -1; values must be integers 0 to 9": {"train": [{"input": [[1, -1]], "output": [[1]]}],
                                                          "test": [{"input": [[1]]}]},
    "row 0 must be a non-empty list of cells": {"train": [{"input": [[]], "output": [[1]]}],
                                                "test": [{"input": [[1]]}]},
    "no 'output' grid": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]},
}


@pytest.mark.parametrize("problem", list(BAD_TASKS))
def test_bad_tasks_raise_an_error_naming_file_task_and_problem(tmp_path, problem):
    path = write_json(tmp_path / "challenges.json", {"good": tiny_task(), "bad1": BAD_TASKS[problem]})
    with pytest.raises(ArcDataError) as err:
        ArcDataset.from_kaggle(path)
    message = str(err.value)
    assert "challenges.json" in message and "bad1" in message and problem in message
    assert err.value.task_id == "bad1"


@pytest.mark.parametrize("problem", list(BAD_TASKS))
def test_skip_bad_leaves_the_task_out_with_a_warning(tmp_path, problem, caplog):
    path = write_json(tmp_path / "challenges.json", {"good": tiny_task(), "bad1": BAD_TASKS[problem]})
    with caplog.at_level(logging.WARNING):
        ds = ArcDataset.from_kaggle(path, skip_bad=True)
    assert list(ds.tasks) == ["good"]
    assert len(ds.skipped) == 1 and "bad1" in caplog.text and problem in caplog.text
    assert "challenges.json" in caplog.text and ds.skipped[0].file == str(path)


def test_malformed_json_names_the_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": {"train": [}')
    with pytest.raises(ArcDataError, match=r"broken\.json.*malformed JSON at line 1"):
        ArcDataset.from_kaggle(path)


@pytest.mark.parametrize("solutions, problem, task", [
    ({"t1": [[[1]]]}, "no solutions for 1 tasks", "t2"),  # missing id
    ({"t1": [[[1]]], "t2": [[[1]]], "zz": [[[1]]]}, "1 tasks not in the challenges", "zz"),  # extra id
    ({"t1": [[[1]], [[2]]], "t2": [[[1]]]}, "2 solution grids for 1 test inputs", "t1"),  # wrong count
    ({"t1": [[[1, 2], [3]]], "t2": [[[1]]]}, "not rectangular", "t1"),
])
def test_solutions_that_disagree_with_challenges(tmp_path, solutions, problem, task):
    c = write_json(tmp_path / "c.json", {"t1": tiny_task(), "t2": tiny_task()})
    s = write_json(tmp_path / "sol.json", solutions)
    with pytest.raises(ArcDataError) as err:
        ArcDataset.from_kaggle(c, s)
    assert "sol.json" in str(err.value) and problem in str(err.value) and err.value.task_id == task


@pytest.mark.parametrize("solutions, problem, kept", [
    ({"t1": [[[1]]]}, "no solutions for this task", ["t1"]),  # missing id: that task is left out
    ({"t1": [[[1]]], "t2": [[[1]]], "zz": [[[1]]]}, "not in the challenges: ignored", ["t1", "t2"]),  # extra id
    ({"t1": [[[1]], [[2]]], "t2": [[[1]]]}, "2 solution grids for 1 test inputs", ["t2"]),  # wrong count
    ({"t1": [[[1, 2], [3]]], "t2": [[[1]]]}, "not rectangular", ["t2"]),
])
def test_skip_bad_leaves_out_tasks_whose_solutions_disagree(tmp_path, solutions, problem, kept, caplog):
    c = write_json(tmp_path / "c.json", {"t1": tiny_task(), "t2": tiny_task()})
    s = write_json(tmp_path / "sol.json", solutions)
    with caplog.at_level(logging.WARNING):
        ds = ArcDataset.from_kaggle(c, s, skip_bad=True)
    assert sorted(ds.tasks) == kept and len(ds.skipped) == 1
    assert "sol.json" in caplog.text and problem in caplog.text and ds.skipped[0].task_id in caplog.text
    assert all(ds.tasks[t].test[0].output is not None for t in kept)


def test_duplicate_task_ids_across_merged_sources(tmp_path, caplog):
    a = ArcDataset.from_kaggle(write_json(tmp_path / "a.json", {"x": tiny_task(), "y": tiny_task()}))
    b = ArcDataset.from_kaggle(write_json(tmp_path / "b.json", {"x": tiny_task(2), "z": tiny_task()}))
    with pytest.raises(ArcDataError, match=r"b\.json.*task x.*duplicate task id.*a\.json"):
        ArcDataset.merge([a, b])
    with caplog.at_level(logging.WARNING):
        merged = ArcDataset.merge([a, b], skip_bad=True)
    assert sorted(merged.tasks) == ["x", "y", "z"] and merged.tasks["x"].source == str(tmp_path / "a.json")
    assert sorted(str(k) for k in merged.keys) == ["x_0", "y_0", "z_0"]  # b's x is gone with its key
    assert len(merged.skipped) == 1 and "b.json" in caplog.text and "task x" in caplog.text


def test_malformed_json_in_a_directory_names_file_and_task(tmp_path, caplog):
    write_json(tmp_path / "good.json", tiny_task())
    (tmp_path / "broken_1.json").write_text('{"train": [')
    with pytest.raises(ArcDataError, match=r"broken_1\.json.*task broken-1.*malformed JSON") as err:
        ArcDataset.from_directory(tmp_path)
    assert err.value.task_id == "broken-1"
    with caplog.at_level(logging.WARNING):
        ds = ArcDataset.from_directory(tmp_path, skip_bad=True)
    assert list(ds.tasks) == ["good"] and "broken-1" in caplog.text and "malformed JSON" in caplog.text


def test_a_malformed_kaggle_file_raises_even_with_skip_bad(tmp_path):
    # the file holds every task: there is no one task to leave out, so nothing can be loaded from it
    path = tmp_path / "broken.json"
    path.write_text('{"a": {"train": [}')
    with pytest.raises(ArcDataError, match=r"broken\.json.*malformed JSON"):
        ArcDataset.from_kaggle(path, skip_bad=True)


def test_duplicate_file_names_in_a_directory(tmp_path, caplog):
    (tmp_path / "sub").mkdir()
    write_json(tmp_path / "a_b.json", tiny_task())
    write_json(tmp_path / "sub" / "a.b.json", tiny_task(2))  # the same id, a-b, once '.' and '_' are replaced
    with pytest.raises(ArcDataError, match=r"task a-b.*also comes from"):
        ArcDataset.from_directory(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = ArcDataset.from_directory(tmp_path, skip_bad=True)
    assert list(ds.tasks) == ["a-b"] and len(ds.skipped) == 1 and "also comes from" in caplog.text


def test_directory_loader_reads_one_task_per_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write_json(tmp_path / "AboveBelow1.json", tiny_task())
    write_json(tmp_path / "sub" / "2x2_rotation.json", tiny_task(2))
    ds = ArcDataset.from_directory(tmp_path)
    assert sorted(ds.tasks) == ["2x2-rotation", "AboveBelow1"]
    write_json(tmp_path / "bad.json", {"train": []})
    with pytest.raises(ArcDataError, match=r"bad\.json.*no training examples"):
        ArcDataset.from_directory(tmp_path)
    assert len(ArcDataset.from_directory(tmp_path, skip_bad=True).tasks) == 2


def test_rearc_loader_samples_tasks_reproducibly(tmp_path):
    pairs = [{"input": [[i % 10]], "output": [[(i + 1) % 10]]} for i in range(20)]
    write_json(tmp_path / "007bbfb7.json", pairs)
    a = ArcDataset.from_rearc(tmp_path, np.random.default_rng(3), examples_per_task=4, tasks_per_file=2)
    b = ArcDataset.from_rearc(tmp_path, np.random.default_rng(3), examples_per_task=4, tasks_per_file=2)
    assert sorted(a.tasks) == ["007bbfb7-r0", "007bbfb7-r1"]
    task = a.tasks["007bbfb7-r0"]
    assert len(task.train) == 4 and len(task.test) == 1 and task.test[0].output is not None
    seen = [int(e.input[0, 0]) for e in (*task.train, *task.test)]
    assert len(set(seen)) == 5  # drawn without replacement
    assert [e.input.tolist() for e in b.tasks["007bbfb7-r0"].train] == [e.input.tolist() for e in task.train]


def test_the_solutions_file_beside_a_challenges_file(tmp_path):
    challenges = write_json(tmp_path / "x_challenges.json", {})
    assert solutions_beside(challenges) is None  # no such file yet
    solutions = write_json(tmp_path / "x_solutions.json", {})
    assert solutions_beside(challenges) == solutions == solutions_beside(str(challenges))
    assert solutions_beside(write_json(tmp_path / "x.json", {})) is None  # no "_challenges" in the name
    assert solutions_beside("") is None
    assert RunFiles(str(challenges)).solutions_path() == solutions  # "auto": the one beside
    assert RunFiles(str(challenges), solutions="").solutions_path() is None
    assert RunFiles(str(challenges), solutions="mine.json").solutions_path() == Path("mine.json")


def test_every_task_of_a_challenges_file_has_a_test_count_bad_ones_too(tmp_path):
    grid = [[1]]
    path = write_json(tmp_path / "x_challenges.json", {
        "two": {"train": [{"input": grid, "output": grid}], "test": [{"input": grid}, {"input": grid}]},
        "no_tests": {"train": [{"input": grid, "output": grid}], "test": []},
        "not_a_task": [1, 2]})
    assert submission_counts(path) == {"two": 2, "no_tests": 1, "not_a_task": 1}
    with pytest.raises(ArcDataError, match="x_list.json"):
        submission_counts(write_json(tmp_path / "x_list.json", [1]))


def test_tasks_are_ordered_by_their_longest_test_input_and_sized_by_all(tmp_path):
    def task(side: int, tests: int) -> dict:
        grid = [[1] * side] * side
        return {"train": [{"input": grid, "output": grid}], "test": [{"input": grid}] * tests}

    path = write_json(tmp_path / "x_challenges.json", {"b": task(2, 1), "a": task(2, 1), "big": task(3, 1),
                                                      "many": task(1, 3)})
    ds = ArcDataset.from_kaggle(path)
    fmt = format_from_spec("architects")
    longest, total = ds.task_lengths(fmt), ds.task_lengths(fmt, total=True)
    assert total["many"] == 3 * longest["many"] and total["a"] == longest["a"]
    assert ds.shortest_first(fmt) == ["many", "a", "b", "big"]  # ties by id
    assert ds.shortest_first(fmt, ["big", "b"]) == ["b", "big"]


def test_barc_loader_follows_arc24s_rules(tmp_path):
    def problem(n):
        return json.dumps({"source": "x", "examples": [[[[i % 10]], [[(i + 1) % 10]]] for i in range(n)],
                           "seeds": ["abc"]})

    path = tmp_path / "barc.jsonl"
    path.write_text("\n".join([problem(5), problem(6), problem(40)]) + "\n")
    ds, weight = load_source(f"barc-3-8-{path}", np.random.default_rng(0))
    assert weight == 3.0
    assert sorted(ds.tasks) == ["barc-barc-2", "barc-barc-3"]  # the 5-example problem is dropped
    for task in ds.tasks.values():
        assert 2 <= len(task.train) <= 4 and len(task.test) == 1
    # M=8: only the first eight examples of the 40 may be drawn
    drawn = {int(e.input[0, 0]) for _ in range(5) for e in
             ArcDataset.from_barc(path, np.random.default_rng(_), max_examples=8).tasks["barc-barc-3"].train}
    assert drawn <= set(range(8))
    path.write_text(problem(6) + "\nnot json\n")
    with pytest.raises(ArcDataError, match="line 2: malformed JSON"):
        ArcDataset.from_barc(path, np.random.default_rng(0))


# ---- dataset operations ---------------------------------------------------------------------------


def test_leave_one_out_builds_tasks_from_a_tasks_own_examples(tmp_path):
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "c.json", {"t": tiny_task(3), "small": tiny_task(2)}))
    loo = ds.leave_one_out(min_train=2)
    assert sorted(loo.tasks) == ["t-loo0", "t-loo1", "t-loo2"]
    task = loo.tasks["t-loo1"]
    assert [e.input[0, 0] for e in task.train] == [0, 2]
    assert task.test[0].output.tolist() == [[1, 1, 4]]
    assert len(ds.leave_one_out(min_train=1).tasks) == 5


def test_reversed_tasks_swap_input_and_output(tmp_path):
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "c.json", {"t": tiny_task(2), "u": tiny_task(2)}))
    rev = ds.reversed_tasks(["t"])
    assert list(rev.tasks) == ["t-rev"]
    assert rev.tasks["t-rev"].train[0].input.tolist() == [[0, 0, 4]]
    assert rev.tasks["t-rev"].test[0].output.tolist() == [[5]]
    unsolved = ArcDataset.from_kaggle(write_json(tmp_path / "d.json", {"t": tiny_task(2, with_outputs=False)}))
    with pytest.raises(ArcDataError, match="no output"):
        unsolved.reversed_tasks()


def test_split_partitions_tasks(tmp_path):
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "a.json", {f"t{i}": tiny_task() for i in range(10)}))
    first, second = ds.split(0.3, np.random.default_rng(0))
    assert len(first.tasks) == 3 and len(second.tasks) == 7
    assert set(first.tasks) | set(second.tasks) == set(ds.tasks) and not set(first.tasks) & set(second.tasks)


def test_filter_by_rendered_length(tmp_path):
    fmt = format_from_spec("architects")
    tasks = {"long": tiny_task(6), "short": tiny_task(1), "mid": tiny_task(3)}
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "a.json", tasks))
    lengths = dict(zip([k.task_id for k in ds], ds.lengths(fmt)))
    kept = ds.filter_by_length(fmt, lengths["mid"])
    assert sorted(k.task_id for k in kept) == ["mid", "short"]


def test_fit_to_budget_drops_examples_and_records_them_in_the_key(tmp_path):
    fmt = format_from_spec("architects")
    ds = ArcDataset.from_kaggle(write_json(tmp_path / "a.json", {"t": tiny_task(5)}))
    full = ds.lengths(fmt)[0]
    one_fewer = len(ds.render(Key("t", 0, example_order=(0, 1, 2, 3)), fmt).text)
    fitted, too_long = ds.fit_to_budget(fmt, one_fewer, len)
    assert not too_long and fitted.keys == [Key("t", 0, example_order=(0, 1, 2, 3))]
    assert len(fitted.render(fitted.keys[0], fmt).text) <= one_fewer < full
    fitted, too_long = ds.fit_to_budget(fmt, 10, len)
    assert fitted.keys == [] and too_long[0][0] == Key("t", 0) and too_long[0][1] > 10


# ---- export -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_writes_kaggle_files_for_both_collections(tmp_path):
    written = export_bundled(tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(f"{prefix}_{split}_{kind}.json" for prefix in ("arc-agi", "arc-agi-2")
                           for split in ("training", "evaluation") for kind in ("challenges", "solutions"))
    challenges = json.loads((tmp_path / "arc-agi_evaluation_challenges.json").read_text())
    solutions = json.loads((tmp_path / "arc-agi_evaluation_solutions.json").read_text())
    assert len(challenges) == 400 and set(solutions) == set(challenges)
    for task_id, task in challenges.items():
        assert len(solutions[task_id]) == len(task["test"])
        assert all("output" not in t for t in task["test"])
    again = ArcDataset.from_kaggle(tmp_path / "arc-agi-2_training_challenges.json",
                                   tmp_path / "arc-agi-2_training_solutions.json")
    assert len(again.tasks) == 1000 and len(again.solutions()) == 1000


def test_tasks_sharing_a_grid_are_found_and_left_out(tmp_path):
    tasks = {"aaa": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]},
             "bbb": {"train": [{"input": [[5]], "output": [[6]]}], "test": [{"input": [[7, 7]], "output": [[4]]}]},
             "ccc": {"train": [{"input": [[8]], "output": [[9]]}], "test": [{"input": [[0]], "output": [[0, 0]]}]}}
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps(tasks))
    ds = ArcDataset.from_kaggle(path)
    grids = dataset_grids(ds.subset(["aaa"]))
    assert len(grids) == 4 and ds.sharing_grids(grids) == ["aaa", "bbb"]  # [[4]] is bbb's test output
    rest = ds.without(["aaa", "bbb", "zzz"])
    assert list(rest.tasks) == ["ccc"] and [k.task_id for k in rest.keys] == ["ccc"]
    assert base_task_id("007bbfb7-rev") == base_task_id("007bbfb7-g3") == base_task_id("007bbfb7") == "007bbfb7"
