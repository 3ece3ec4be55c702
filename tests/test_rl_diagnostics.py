"""Diagnostics of every logging step: records, warnings, the JSON file, the plot and the console line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from transformers import TrainerCallback

from exgrpo.errors import DataError
from exgrpo.rl.diagnostics import (
    SCHEMA_VERSION,
    CompactPrinter,
    TrainingDiagnostics,
    console_line,
    plot_diagnostics,
    read_diagnostics,
    signal_warnings,
    step_record,
)


def trl_logs(cut: float = 0.0, zero_spread: float = 0.0, **extra: float) -> dict[str, float]:
    """A training step's logs as ExGRPOTrainer hands them to callbacks (a subset of TRL's ~40 keys)."""
    return {"loss": 0.1, "reward": 0.5, "reward_std": 0.25, "frac_reward_zero_std": zero_spread, "kl": 0.002,
            "entropy": 1.5, "clip_ratio/low_mean": 0.01, "clip_ratio/high_mean": 0.02, "clip_ratio/region_mean": 0.03,
            "exgrpo/truncated_turns": cut, "exgrpo/dsu_fired": 0.25, "exgrpo/accuracy_full": 0.75,
            "exgrpo/accuracy_partial": 0.25, "step_time": 5.0, "exgrpo/rollout_seconds": 2.0,
            "exgrpo/generated_tokens": 100.0, "exgrpo/sequence_tokens": 300.0, "epoch": 0.1, **extra}


def state(step: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_world_process_zero=True, is_local_process_zero=True)


def test_step_record_reads_the_trainer_logs_and_measures_speeds() -> None:
    record = step_record(trl_logs(cut=0.1, zero_spread=0.4), step=7)
    assert record["step"] == 7 and record["cut_turns"] == 0.1 and record["zero_spread"] == 0.4
    assert (record["reward_full"], record["reward_partial"], record["dsu_fired"]) == (0.75, 0.25, 0.25)
    assert record["rollout_tokens_per_s"] == pytest.approx(100 / 2.0)
    assert record["update_tokens_per_s"] == pytest.approx(300 / (5.0 - 2.0))  # the step less its rollouts
    bare = step_record({"reward": 0.0, "kl": float("nan")}, step=1)
    assert bare["kl"] is None and bare["rollout_tokens_per_s"] is None and bare["update_tokens_per_s"] is None


@pytest.mark.parametrize(("cut", "zero", "kinds"), [
    (0.04, 0.5, []), (0.06, 0.0, ["cut_turns"]), (0.0, 0.6, ["zero_spread"]), (0.2, 0.9, ["cut_turns", "zero_spread"]),
])
def test_warnings_fire_above_their_limits_only(cut: float, zero: float, kinds: list[str]) -> None:
    records = [step_record(trl_logs(cut=cut, zero_spread=zero), step) for step in range(1, 6)]
    found = signal_warnings(records, window=5, max_new_tokens=8, max_answer_tokens=96)
    assert [w["kind"] for w in found] == kinds
    messages = " ".join(w["message"] for w in found)
    if "cut_turns" in kinds:  # both budgets named: a probe turn's and the final answer's
        assert "raise max_new_tokens (now 8)" in messages and "max_answer_tokens (now 96)" in messages
    if "zero_spread" in kinds:
        assert "more rollouts per question" in messages and "temperature" in messages


def test_warnings_look_at_the_recent_window_only() -> None:
    bad = [step_record(trl_logs(cut=0.5, zero_spread=1.0), step) for step in range(1, 6)]
    good = [step_record(trl_logs(zero_spread=0.2), step) for step in range(6, 11)]
    assert signal_warnings(bad + good, window=5) == []
    assert len(signal_warnings(bad + good, window=10)) == 2  # the mean over 10 steps is still above both limits


def test_callback_writes_the_file_and_warns_once_per_window(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callback = TrainingDiagnostics(tmp_path, window=3, max_new_tokens=4)
    with caplog.at_level(logging.WARNING, logger="exgrpo.rl.diagnostics"):
        for step in range(1, 7):
            callback.on_log(None, state(step), None, logs=trl_logs(cut=0.3))
        callback.on_log(None, state(6), None, logs={"train_runtime": 9.0, "train_loss": 0.1})  # the summary: no record
    document = read_diagnostics(tmp_path / "diagnostics.json")
    assert document["schema_version"] == SCHEMA_VERSION
    assert [r["step"] for r in document["steps"]] == [1, 2, 3, 4, 5, 6]
    assert [w["step"] for w in document["warnings"]] == [1, 4]  # then every `window` steps, not at every log
    assert sum("cut by their budget" in r.message for r in caplog.records) == 2
    callback.on_train_end(None, state(6), None)
    assert (tmp_path / "diagnostics.png").read_bytes().startswith(b"\x89PNG")


def test_a_resumed_run_keeps_the_steps_before_its_checkpoint(tmp_path: Path) -> None:
    first = TrainingDiagnostics(tmp_path)
    for step in range(1, 5):
        first.on_log(None, state(step), None, logs=trl_logs())
    resumed = TrainingDiagnostics(tmp_path)  # resumed from checkpoint-2: steps 3 and 4 are done again
    resumed.on_log(None, state(3), None, logs=trl_logs())
    assert [r["step"] for r in read_diagnostics(tmp_path / "diagnostics.json")["steps"]] == [1, 2, 3]


def test_a_file_of_another_schema_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "diagnostics.json"
    path.write_text(json.dumps({"schema_version": 99, "steps": []}))
    with pytest.raises(DataError, match="diagnostics.json.*schema_version"):
        read_diagnostics(path)


def test_console_line_is_compact(capsys: pytest.CaptureFixture[str]) -> None:
    line = console_line(trl_logs(cut=0.125, zero_spread=0.25), step=12)
    assert line == ("step    12 | reward 0.500 | spread 0.250 | groups with signal 75% | cut turns 12.5% | "
                    "KL 0.0020 | 5.0 s/step")
    CompactPrinter().on_log(None, state(12), None, logs=trl_logs())
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "step    12" in printed and "clip_ratio" not in printed


def test_plot_draws_records_with_missing_fields(tmp_path: Path) -> None:
    records = [step_record(trl_logs(), 1), step_record({"reward": 0.2}, 2)]
    plot_diagnostics(records, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")


class LogKeys(TrainerCallback):
    def __init__(self) -> None:
        self.keys: set[str] = set()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.keys |= set(logs or {})


def test_train_with_a_tiny_budget_writes_diagnostics_and_warns(
        toy_sft_model: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    from test_exgrpo import train_config

    from exgrpo.rl.train import run_train

    model, ei = toy_sft_model
    keys = LogKeys()
    with caplog.at_level(logging.WARNING, logger="exgrpo.rl.diagnostics"):
        run_train(train_config(model, ei, tmp_path, max_steps=2, max_new_tokens=2), callbacks=[keys])
    document = read_diagnostics(tmp_path / "diagnostics.json")
    steps = document["steps"]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["cut_turns"] > 0.05 and r["rollout_tokens_per_s"] > 0 and r["update_tokens_per_s"] > 0 for r in steps)
    assert "cut_turns" in {w["kind"] for w in document["warnings"]}
    assert any("raise max_new_tokens (now 2)" in r.message for r in caplog.records)
    assert (tmp_path / "diagnostics.png").read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr()
    console = printed.out + printed.err
    assert "step     1 | reward" in console and "step     2 | reward" in console
    assert "'frac_reward_zero_std'" not in console  # TRL's raw dictionary is not printed ...
    assert {"frac_reward_zero_std", "clip_ratio/low_mean", "exgrpo/truncated_turns"} <= keys.keys  # ... but logged
