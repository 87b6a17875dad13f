"""run_search: a verified submission from the program search alone, every test input answered, bad tasks
and bad options named, and the same submission with one process or several."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pipeline_data import write_set

from training_code.induction.run_search import RESULTS_FILE, main, read_results, wait_for_result
from training_code.submission import read_submission


def flip_task(seed: int, n_test: int = 1) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 3, size=(3, 4)) for _ in range(3 + n_test)]
    return ({"train": [{"input": x.tolist(), "output": x[:, ::-1].tolist()} for x in inputs[:3]],
             "test": [{"input": x.tolist()} for x in inputs[3:]]},
            [x[:, ::-1].tolist() for x in inputs[3:]])


def unfit_task(seed: int) -> tuple[dict, list]:
    """Random outputs of other sizes than the inputs: no program fits."""
    rng = np.random.default_rng(seed)
    return ({"train": [{"input": rng.integers(0, 5, (4, 4)).tolist(), "output": rng.integers(0, 5, (3, 5)).tolist()}
                       for _ in range(3)],
             "test": [{"input": rng.integers(0, 5, (4, 4)).tolist()}]},
            [rng.integers(0, 5, (3, 5)).tolist()])


def run(challenges: Path, out: Path, *extra: str) -> int:
    return main(["--challenges", str(challenges), "--output", str(out), "--seconds", "2", "--max-depth", "1",
                 "--progress", "false", *extra])


def test_the_search_alone_writes_a_verified_submission(tmp_path):
    challenges = write_set(tmp_path, {"flip": flip_task(1, n_test=2), "none": unfit_task(2)})
    out = tmp_path / "out"
    assert run(challenges, out) == 0
    sub = read_submission(out / "submission.json", {"flip": 2, "none": 1})
    flip_solutions = flip_task(1, n_test=2)[1]
    assert [e["attempt_1"].tolist() for e in sub["flip"]] == flip_solutions
    # no program fits: both attempts are the fallback grid
    assert sub["none"][0]["attempt_1"].tolist() == [[0]] and sub["none"][0]["attempt_2"].tolist() == [[0]]
    report = json.loads((out / "search_report.json").read_text())
    assert report["summary"]["score"]["points"] == 1.0 and report["summary"]["peak_rss_mb"] > 0
    assert report["tasks"]["flip"]["programs"][0][0] == "flip_h(grid)" and report["tasks"]["flip"]["solved"]
    assert report["tasks"]["none"]["programs"] == [[]] and not report["tasks"]["none"]["solved"]


def test_a_bad_task_is_named_and_answered_with_the_fallback(tmp_path, capsys):
    bad = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}, {"input": [[2]]}]}
    challenges = write_set(tmp_path, {"flip": flip_task(3)}, extra={"broken": bad})
    out = tmp_path / "out"
    assert run(challenges, out) == 0
    sub = read_submission(out / "submission.json", {"flip": 1, "broken": 2})
    assert all(e["attempt_1"].tolist() == [[0]] for e in sub["broken"])
    printed = capsys.readouterr().out
    assert "broken" in printed and str(challenges) in printed and "not rectangular" in printed


def test_several_workers_give_the_same_submission(tmp_path):
    tasks = {f"t{i}": flip_task(i) for i in range(3)} | {"none": unfit_task(9)}
    challenges = write_set(tmp_path, tasks)
    assert run(challenges, tmp_path / "one", "--workers", "1") == 0
    assert run(challenges, tmp_path / "two", "--workers", "2") == 0
    assert (tmp_path / "one" / "submission.json").read_bytes() == (tmp_path / "two" / "submission.json").read_bytes()


def test_a_malformed_challenges_file_is_named(tmp_path, capsys):
    bad = tmp_path / "x_challenges.json"
    bad.write_text("{not json")
    assert run(bad, tmp_path / "out") == 1
    assert str(bad) in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--seconds", "0"), ("--workers", "0"), ("--max-depth", "-1"),
                                         ("--seconds", "soon")])
def test_a_bad_option_stops_with_status_2_naming_it(tmp_path, capsys, flag, value):
    challenges = write_set(tmp_path, {"flip": flip_task(1)})
    with pytest.raises(SystemExit) as stop:
        main(["--challenges", str(challenges), "--output", str(tmp_path / "out"), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and value in err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--challenges", "--output", "--seconds", "--workers", "--max-steps"))


def test_each_task_is_a_line_of_the_results_file_as_soon_as_it_is_searched(tmp_path):
    challenges = write_set(tmp_path, {"flip": flip_task(1, n_test=2), "none": unfit_task(2)})
    out = tmp_path / "out"
    assert run(challenges, out, "--workers", "2") == 0
    lines = (out / RESULTS_FILE).read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["flip", "none"]
    found = read_results(out / RESULTS_FILE)
    assert found["flip"]["candidates"][1][0] == flip_task(1, n_test=2)[1][1]
    assert found["flip"]["programs"][0][0] == "flip_h(grid)" and found["none"]["candidates"] == [[]]


def test_a_half_written_or_malformed_line_is_not_a_result(tmp_path, caplog):
    path = tmp_path / RESULTS_FILE
    good = {"task_id": "aaa", "programs": [["p"]], "candidates": [[[[1]]]]}
    path.write_text(json.dumps(good) + "\n" + "{not json\n" + json.dumps({**good, "task_id": "bbb"})[:-3])
    assert list(read_results(path)) == ["aaa"]
    assert "line 2: not a search result" in caplog.text
    assert read_results(tmp_path / "absent.jsonl") == {}


def test_waiting_for_a_task_sees_the_line_a_search_beside_it_appends(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text("")

    def finish_later():
        time.sleep(0.3)
        with open(path, "a") as f:
            f.write(json.dumps({"task_id": "late", "programs": [[]], "candidates": [[]]}) + "\n")

    writer = threading.Thread(target=finish_later)
    writer.start()
    assert wait_for_result(path, "never", seconds=0.2, poll=0.05) is None
    assert wait_for_result(path, "late", seconds=10.0, poll=0.05) == {"programs": [[]], "candidates": [[]]}
    writer.join()


def test_tasks_is_a_count_unless_its_digits_are_a_tasks_id():
    from training_code.induction.run_search import selected

    ids = ["00576224", "0a1d4ef5", "17b80ad2"]
    assert selected(ids, "00576224") == ["00576224"]  # an ARC id made of digits names its task
    assert selected(ids, "2") == ["00576224", "0a1d4ef5"]
