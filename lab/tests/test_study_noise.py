"""Re-evaluation noise: one model evaluated again with other batch neighbours, read against its first evaluation,
recorded with the run, and printed beside every goal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from exgrpo.errors import ConfigError
from exgrpo.runner.layout import RunLayout
from lab.study.noise import Noise, noise, noise_line, reevaluate, reevaluation, reevaluation_folder
from lab.study.record import record_tree, restore_tree
from lab.study.spec import Study

SPEC = Path(__file__).parent.parent / "configs" / "smollm2_fair.yaml"


def write_predictions(folder: Path, dataset: str, correct: list[bool]) -> None:
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"{dataset}-{i}", "gold": "1", "extracted": "1" if ok else "2", "correct": ok}
            for i, ok in enumerate(correct)]
    (folder / "predictions" / f"{dataset}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "report.json").write_text(json.dumps({"datasets": []}))


def test_noise_reads_the_second_evaluation_against_the_first(tmp_path: Path) -> None:
    study = Study(SPEC, run_root=tmp_path / "runs")
    run_dir = study.run_dir(0, "ei_exgrpo")
    first, second = RunLayout(run_dir).evaluation("sft").path, reevaluation_folder(run_dir, "sft").path
    write_predictions(first, "a", [True] * 50 + [False] * 50)
    write_predictions(first, "b", [True] * 20 + [False] * 80)
    assert noise(study, ["a", "b"]) is None  # not evaluated again yet
    said: list[str] = []
    assert not reevaluate(study, "skd", 0, log=said.append)  # not the run the spec names
    assert not reevaluate(study, "ei_exgrpo", 0, log=said.append) and "its model is not on this machine" in said[0]
    # a: 4 right -> wrong, 2 wrong -> right (-2 points); b: 3 wrong -> right (+3 points)
    write_predictions(second, "a", [False] * 4 + [True] * 46 + [True] * 2 + [False] * 48)
    write_predictions(second, "b", [True] * 23 + [False] * 77)
    measured = noise(study, ["a", "b"])
    assert measured is not None and measured.questions == 200
    assert measured.points == pytest.approx(0.5) and measured.changed == pytest.approx(9 / 200)
    assert noise(study, ["a"]).points == pytest.approx(2.0)
    # Only the questions the averages keep (a family at the floor left out): a keeps its last 50 (+2 right: +4
    # points), b all of its 100 (+3 points).
    assert noise(study, ["a", "b"], keep=lambda q: q.startswith("b") or int(q.split("-")[1]) >= 50) == Noise(
        pytest.approx(3.5), pytest.approx(5 / 150), 150)
    # A split with no question kept (its family at the floor) is left out, as the averages leave it out.
    assert noise(study, ["a", "b"], keep=lambda q: q.startswith("b")) == noise(study, ["b"])
    assert noise(study, ["a", "b"], keep=lambda q: False) is None
    line = noise_line(study, ["a", "b"], keep=lambda question: True)
    assert "batch size 48 instead of the runs' own 64," in line and "4.5 %" in line and "0.5 points" in line and "EI + ExGRPO (ours)'s sft" in line
    # Recorded with the run (the diagnostics folder), and restored on a machine without it.
    RunLayout(run_dir).manifest("eval").write_text(json.dumps({"stage": "eval"}))  # the run's eval stage finished
    record_tree(tmp_path / "runs", tmp_path / "record")
    restore_tree(tmp_path / "record", tmp_path / "fresh")
    fresh = Study(SPEC, run_root=tmp_path / "fresh")
    assert noise(fresh, ["a", "b"]) == measured


@pytest.mark.parametrize(("entry", "message"), [
    ({"method": "nope", "model": "sft", "seed": 0, "batch_size": 48}, "no run of method 'nope' for seed 0"),
    ({"method": "skd_compute_matched", "model": "sft", "seed": 1, "batch_size": 48},
     "no run of method 'skd_compute_matched' for seed 1"),
    ({"method": "skd", "model": "exgrpo", "seed": 0, "batch_size": 48}, "skd evaluates \\['sft'\\], not 'exgrpo'"),
    ({"method": "ei_exgrpo", "model": "sft", "seed": 0, "batch_size": 64}, "batch_size 64 is the runs' own"),
    ({"method": "ei_exgrpo", "model": "sft"}, "expected \\{method, model, seed, batch_size\\}"),
])
def test_a_reevaluation_the_study_cannot_run_is_named(tmp_path: Path, entry: dict, message: str) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    spec["report"]["reevaluation"] = entry
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=f"report.reevaluation: {message}"):
        reevaluation(Study(path, run_root=tmp_path))
