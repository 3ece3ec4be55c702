"""Reading records with positions, atomic writes and crash-tolerant appends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exgrpo.errors import DataError
from exgrpo.files import append_jsonl, atomic_write_json, read_appended_jsonl, read_records


def test_read_records_understands_every_layout(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    (tmp_path / "lines.json").write_text('{"x": 1}\n{"x": 2}\n')  # JSON Lines under a .json name
    (tmp_path / "list.json").write_text('[{"x": 1}, {"x": 2}]')
    (tmp_path / "bigbench.json").write_text('{"name": "t", "examples": [{"x": 1}, {"x": 2}]}')
    (tmp_path / "keyed.json").write_text('{"7": {"x": 1}, "9": {"x": 2}}')
    (tmp_path / "t.csv").write_text("x,y\n1,a\n2,b\n")
    assert read_records(tmp_path / "a.jsonl") == [(1, {"x": 1}), (3, {"x": 2})]
    assert read_records(tmp_path / "lines.json") == [(1, {"x": 1}), (2, {"x": 2})]
    assert read_records(tmp_path / "list.json") == [(1, {"x": 1}), (2, {"x": 2})]
    assert read_records(tmp_path / "bigbench.json") == [(1, {"x": 1}), (2, {"x": 2})]
    assert read_records(tmp_path / "keyed.json") == [(1, {"_key": "7", "x": 1}), (2, {"_key": "9", "x": 2})]
    assert read_records(tmp_path / "t.csv") == [(2, {"x": "1", "y": "a"}), (3, {"x": "2", "y": "b"})]


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "scalar.jsonl").write_text('{"x": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="scalar.jsonl:2: expected a JSON object"):
        read_records(tmp_path / "scalar.jsonl")


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_torn_last_line_is_dropped_and_appends_continue_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    with path.open("a") as handle:
        handle.write('{"i": 2, "tr')  # a process killed mid-write
    assert read_appended_jsonl(path) == [{"i": 0}, {"i": 1}]
    append_jsonl(path, [{"i": 2}])
    assert read_appended_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_corruption_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(DataError, match="log.jsonl:2"):
        read_appended_jsonl(path)
