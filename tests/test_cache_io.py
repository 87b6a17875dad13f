"""An evaluation's result cache written to a JSON-lines file and loaded elsewhere: the same entries, the
existing ones kept, and a clear error for a file that is not an export."""

from __future__ import annotations

import json

import diskcache
import pytest

from training_code import cache_io


def entry(n: int) -> tuple[str, str]:
    return f"{n:064x}", json.dumps({"task_id": f"task{n}", "seconds": n, "candidates": [[[n]]]})


def test_a_cache_goes_to_a_file_and_back_into_another_run(tmp_path):
    source = diskcache.Cache(str(tmp_path / "here" / "cache"))
    for key, value in map(entry, (3, 1, 2)):
        source[key] = value
    exported = tmp_path / "finished.jsonl"
    assert cache_io.main(["export", "--output", str(tmp_path / "here"), "--to", str(exported)]) == 0
    lines = exported.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == sorted(source)  # plain text, sorted by key
    elsewhere = diskcache.Cache(str(tmp_path / "there" / "cache"))
    elsewhere[entry(1)[0]] = json.dumps({"task_id": "task1", "seconds": 99})  # a task already finished there
    assert cache_io.import_cache(exported, tmp_path / "there") == (2, 1)
    assert json.loads(elsewhere[entry(1)[0]])["seconds"] == 99  # kept as it was
    for key, value in map(entry, (2, 3)):
        assert json.loads(elsewhere[key]) == json.loads(value)


@pytest.mark.parametrize(("line", "says"), [
    ("{not json", "line 2: not JSON"),
    ('{"key": "abc", "result": {"task_id": "x"}}', "line 2: the key is not"),
    (json.dumps({"key": "0" * 64, "result": {"seconds": 1}}), "line 2: the result is not"),
    (json.dumps({"key": "0" * 64}), "line 2: an entry is an object"),
])
def test_a_file_that_is_not_an_export_is_refused_before_anything_is_written(tmp_path, line, says):
    key, value = entry(1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": key, "result": json.loads(value)}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=says) as raised:
        cache_io.import_cache(bad, tmp_path / "run")
    assert "bad.jsonl" in str(raised.value)
    assert not (tmp_path / "run" / "cache").exists()


def test_exporting_a_run_without_a_cache_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cache_io.main(["export", "--output", str(tmp_path), "--to", str(tmp_path / "x.jsonl")])
    assert stopped.value.code == 2
    assert "no result cache there" in capsys.readouterr().err
