"""The run's results reader: accuracies, floors and group averages from the eval reports, per-question verdicts
from the predictions (a resumed file's later line wins), training logs and stage seconds."""

from __future__ import annotations

import json
from pathlib import Path

from exgrpo.runner.layout import RunLayout
from exgrpo.runner.results import RunResults, mean_accuracy, pooled_accuracy

REPORT = {
    "seconds": 12.5,
    "datasets": [
        {"name": "a", "accuracy": {"value": 50.0, "low": 40.0, "high": 60.0}, "num_correct": 5, "num_examples": 10,
         "floors": {"random": 10.0, "majority": 20.0}},
        {"name": "b", "accuracy": {"value": 25.0, "low": 5.0, "high": 45.0}, "num_correct": 1, "num_examples": 4},
    ],
    "averages": {"held_out": {"datasets": ["a", "b"], "accuracy": {"value": 37.5, "low": 30.0, "high": 45.0},
                              "floors": {"random": 5.0, "majority": 10.0}}},
}


def write_run(run_dir: Path) -> RunLayout:
    layout = RunLayout(run_dir)
    evaluation = layout.evaluation("sft")
    evaluation.predictions("a").parent.mkdir(parents=True)
    evaluation.report.write_text(json.dumps(REPORT))
    lines = [{"id": "q1", "correct": False}, {"id": "q2", "correct": True}, {"id": "q1", "correct": True}]
    evaluation.predictions("a").write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    for stage, seconds in (("sft", 3.0), ("eval", 4.0)):
        layout.stage_dir(stage).mkdir(exist_ok=True)
        layout.manifest(stage).write_text(json.dumps({"stage": stage, "seconds": seconds}))
    layout.log_history("sft").write_text(json.dumps([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]))
    return layout


def test_an_evaluation_reads_accuracies_floors_and_groups(tmp_path: Path) -> None:
    run = RunResults(write_run(tmp_path))
    evaluation = run.evaluation("sft")
    assert evaluation is not None and run.evaluation("exgrpo") is None  # not evaluated: no report
    assert evaluation.seconds == 12.5
    assert list(evaluation.accuracies()) == ["a", "b"] and evaluation.accuracy("b") == REPORT["datasets"][1]["accuracy"]
    assert evaluation.accuracy("missing") is None and evaluation.floors("b") is None
    assert evaluation.floors("a") == {"random": 10.0, "majority": 20.0}
    assert evaluation.group_accuracy("held_out")["value"] == 37.5 and evaluation.group_accuracy("held_in") is None
    assert evaluation.group_datasets("held_out") == ["a", "b"] and evaluation.group_datasets("held_in") == []
    assert mean_accuracy(REPORT, ["a", "b"]) == 37.5 and mean_accuracy(REPORT, ["a", "c"]) is None
    assert pooled_accuracy(REPORT) == 6 / 14 and pooled_accuracy(REPORT, ["b"]) == 0.25


def test_verdicts_take_a_resumed_files_last_line_and_logs_and_seconds_are_read(tmp_path: Path) -> None:
    run = RunResults(write_run(tmp_path))
    assert run.verdicts("sft", "a") == {"q1": True, "q2": True}
    assert run.verdicts("sft", "b") is None and run.verdicts("base", "a") is None
    assert run.evaluation("sft").verdicts("a") == {"q1": True, "q2": True}  # type: ignore[union-attr]
    assert run.training_log("sft") == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]
    assert run.training_log("train") is None
    assert run.stage_seconds() == {"sft": 3.0, "eval": 4.0} and run.stage_seconds(["sft"]) == {"sft": 3.0}
