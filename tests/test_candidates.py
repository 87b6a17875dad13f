"""Candidates for one test input: decoded under views, merged with the programs' grids, scored, ranked."""

from __future__ import annotations

import numpy as np
from pipeline_data import FMT, task, tiny, write_set

from training_code.arc_loader import ArcDataset, Example, Key, Task, d8_keys
from training_code.candidates import candidates_for, fit_key, reply_room, scoring_keys, unreadable
from training_code.cli import with_options
from training_code.evaluation import EvalConfig, prepare_session
from training_code.inference_tools import MAX_REPLY_TOKENS


def test_the_reply_room_is_twice_the_largest_grid_of_the_task(tmp_path):
    dataset = ArcDataset.from_kaggle(write_set(tmp_path, {"aaa": task(1, size=3)}))
    t = dataset.tasks["aaa"]
    largest = max(len(FMT.reply_text(e.input)) for e in (*t.train, *t.test))
    assert reply_room(t, FMT) == min(MAX_REPLY_TOKENS, 2 * largest)


def test_scoring_views_follow_the_generator_given():
    grid = np.zeros((2, 2), dtype=np.uint8)
    t = Task("aaa", (Example(grid, grid), Example(grid, grid + 1)), (Example(grid),))
    a = scoring_keys(t, 0, 4, np.random.default_rng(3), keep_background=True)
    b = scoring_keys(t, 0, 4, np.random.default_rng(3), keep_background=True)
    assert a == b and len(a) == 4 and all(k.test_index == 0 and k.task_id == "aaa" for k in a)


def test_a_searched_grid_joins_the_candidates_with_its_identity_nll(tmp_path):
    dataset = ArcDataset.from_kaggle(write_set(tmp_path, {"aaa": task(1)}))
    config = with_options(EvalConfig(), decoder="greedy", views=2, scoring_views=2, ttt=False, program_samples=0)
    session = prepare_session(config, tiny())
    searched = np.full((2, 2), 7, dtype=np.uint8)  # a grid of a colour the task never uses: no view decodes it
    cands, per_view = candidates_for(dataset, dataset.tasks["aaa"], 0, session, config, np.random.default_rng(0),
                                     float("inf"), search_grids=[searched])
    assert len(per_view) == 2
    found = [c for c in cands if np.array_equal(c.grid, searched)]
    assert len(found) == 1 and found[0].from_search and not found[0].from_program
    assert len(found[0].generation_nlls) == 1 and len(found[0].scoring_nlls) == 2
    assert all(len(c.scoring_nlls) == 2 for c in cands)


def test_views_that_do_not_fit_the_context_are_left_out_and_the_others_decode(tmp_path):
    rng = np.random.default_rng(2)
    wide = [rng.integers(0, 3, size=(2, 12)).tolist() for _ in range(3)]  # turned upright, 12 rows: more tokens
    challenge = {"train": [{"input": wide[0], "output": wide[1]}], "test": [{"input": wide[2]}]}
    dataset = ArcDataset.from_kaggle(write_set(tmp_path, {"aaa": (challenge, [wide[0]])}))
    t = dataset.tasks["aaa"]
    config = with_options(EvalConfig(), decoder="greedy", views=8, scoring_views=8, ttt=False, program_samples=0)
    session = prepare_session(config, tiny())

    def tokens(key: Key) -> int:
        return len(session.ids(dataset.render(key, session.fmt, with_reply=False).prompt))

    upright, turned = d8_keys(Key("aaa", 0))[0], d8_keys(Key("aaa", 0))[1]  # identity, a quarter turn
    assert tokens(turned) > tokens(upright)
    session.max_tokens = tokens(upright) + reply_room(t, session.fmt)  # the upright views fit, the turned do not
    searched = np.array(wide[0], dtype=np.uint8)
    cands, per_view = candidates_for(dataset, t, 0, session, config, np.random.default_rng(0), float("inf"),
                                     search_grids=[searched])
    assert len(per_view) == 4  # the four views that keep the grid wide decoded; the others were left out
    assert cands and all(0 < len(c.scoring_nlls) < 8 for c in cands)  # scored under the views that fit


def test_a_known_test_output_does_not_change_how_a_prompt_is_fitted(tmp_path):
    rng = np.random.default_rng(9)
    grids = [rng.integers(0, 3, size=(6, 6)).tolist() for _ in range(5)]
    large = rng.integers(0, 3, size=(16, 16)).tolist()  # the answer: many tokens
    challenge = {"train": [{"input": grids[0], "output": grids[1]}, {"input": grids[2], "output": grids[3]}],
                 "test": [{"input": grids[4]}]}
    challenges = write_set(tmp_path, {"aaa": (challenge, [large])})
    known = ArcDataset.from_kaggle(challenges, tmp_path / "x_solutions.json")
    unknown = ArcDataset.from_kaggle(challenges)
    assert known.tasks["aaa"].test[0].output is not None and unknown.tasks["aaa"].test[0].output is None
    config = with_options(EvalConfig(), ttt=False, program_samples=0)
    session = prepare_session(config, tiny())
    key = Key("aaa", 0)
    prompt = len(session.ids(unknown.render(key, session.fmt, with_reply=False).prompt))
    room = reply_room(known.tasks["aaa"], session.fmt)
    session.max_tokens = prompt + room  # the prompt with both examples fits; with the answer added it would not
    assert fit_key(known, key, session, room) == fit_key(unknown, key, session, room) == key
    assert unreadable(known, known.tasks["aaa"], 0, session) == ""
