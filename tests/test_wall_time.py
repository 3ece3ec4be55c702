"""A training stage's wall-time budget, and a model made of a stopped run's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_sft import sft_config
from toy_ei import write_toy_ei
from transformers import AutoModelForCausalLM

from exgrpo.errors import DataError
from exgrpo.training.common import checkpoint_to_model
from exgrpo.training.sft import run_sft


def test_a_spent_budget_stops_sft_cleanly_and_its_checkpoint_becomes_a_model(tiny_model_path: Path,
                                                                            tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from exgrpo.cli import app

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    final = run_sft(sft_config(tiny_model_path, ei, tmp_path / "out", max_steps=50, save_steps=1_000, max_seconds=1e-3,
                               lora={"r": 4, "alpha": 8}))
    state = json.loads((tmp_path / "out" / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and not (tmp_path / "out" / "checkpoint-2").exists()  # stopped after step 1
    assert (tmp_path / "out" / "checkpoint-1" / "adapter_config.json").exists()
    assert state["stateful_callbacks"]["WallTimeBudget"]["attributes"]["spent"] > 0  # what a resumed run counts on

    result = CliRunner().invoke(app, ["checkpoint-to-model", str(tmp_path / "out" / "checkpoint-1")])
    assert result.exit_code == 0, result.output
    exported = tmp_path / "out" / "final-from-checkpoint-1"
    assert not (exported / "adapter_config.json").exists()  # merged: a plain model, like final/
    merged, finished = AutoModelForCausalLM.from_pretrained(exported), AutoModelForCausalLM.from_pretrained(final)
    assert all(torch.equal(p, q) for p, q in zip(merged.parameters(), finished.parameters(), strict=True))


def test_a_resumed_run_gets_only_the_budget_its_checkpoint_left() -> None:
    from transformers import TrainerControl, TrainerState

    from exgrpo.training.wall_time import WallTimeBudget

    def resumed(seconds: float, stored: dict | None) -> tuple[WallTimeBudget, TrainerState, TrainerControl]:
        state, control = TrainerState(global_step=10, max_steps=100), TrainerControl()
        state.stateful_callbacks = {"WallTimeBudget": stored} if stored is not None else {}
        budget = WallTimeBudget(seconds)
        budget.on_train_begin(None, state, control)
        return budget, state, control

    budget, state, control = resumed(150.0, {"args": {"seconds": 150.0}, "attributes": {"spent": 100.0}})
    assert 100.0 <= budget.spent() < 110.0 and not budget.on_step_end(None, state, control).should_training_stop
    assert state.stateful_callbacks["WallTimeBudget"]["attributes"]["spent"] >= 100.0
    budget, state, control = resumed(50.0, {"args": {"seconds": 150.0}, "attributes": {"spent": 100.0}})
    assert budget.on_step_end(None, state, control).should_training_stop and budget.stopped_at_step == 10
    # A checkpoint written before the budget existed: nothing spent before, and the entry transformers' save updates
    budget, state, control = resumed(150.0, None)
    assert budget.spent() < 10.0 and "WallTimeBudget" in state.stateful_callbacks


def test_the_progress_bar_counts_to_the_stop_step_from_the_step_it_resumed_from() -> None:
    from transformers import TrainerControl, TrainerState

    from exgrpo.training.wall_time import BudgetedProgress

    def begun(stop_at_step: int | None, global_step: int) -> tuple[BudgetedProgress, TrainerState]:
        progress, state = BudgetedProgress(stop_at_step), TrainerState(global_step=global_step, max_steps=300)
        progress.on_train_begin(None, state, TrainerControl())
        return progress, state

    progress, state = begun(52, 50)  # resumed at step 50 of a run that stops at 52 of a 300-step schedule
    assert (progress.training_bar.total, progress.training_bar.n) == (52, 50)
    state.global_step = 51
    progress.on_step_end(None, state, TrainerControl())
    assert progress.training_bar.n == 51  # one step on, not 51 at once
    progress, _ = begun(None, 0)
    assert (progress.training_bar.total, progress.training_bar.n) == (300, 0)
    progress, _ = begun(500, 0)  # a stop after the schedule's end: the schedule ends the run
    assert progress.training_bar.total == 300


def test_sft_stopped_at_a_step_shows_a_bar_to_that_step(tiny_model_path: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")
    run_sft(sft_config(tiny_model_path, ei, tmp_path / "out", max_steps=30, save_steps=1_000, stop_at_step=2))
    err = capsys.readouterr().err
    assert "| 2/2 [" in err and "/30 [" not in err  # 30 steps: no other bar of the run counts to 30


def test_a_folder_that_is_no_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty.*not a training checkpoint"):
        checkpoint_to_model(tmp_path / "empty", tmp_path / "model")


def test_a_spent_budget_stops_exgrpo_with_its_diagnostics(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    from test_exgrpo import train_config

    from exgrpo.rl.train import run_train

    model, ei = toy_sft_model
    final = run_train(train_config(model, ei, tmp_path, max_steps=20, max_seconds=1e-3))
    steps = json.loads((tmp_path / "diagnostics.json").read_text())["steps"]
    assert [r["step"] for r in steps] == [1]
    assert (tmp_path / "checkpoint-1").is_dir() and (final / "model.safetensors").exists()
    assert (tmp_path / "diagnostics.png").exists()


def test_stop_at_step_ends_exgrpo_on_that_step_on_the_long_runs_learning_rates(
        toy_sft_model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_exgrpo import train_config

    from exgrpo.rl.train import run_train

    model, ei = toy_sft_model
    final = run_train(train_config(model, ei, tmp_path, max_steps=30, stop_at_step=2, learning_rate=1e-4,
                                   logging_steps=1))
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    assert state["global_step"] == 2 and (final / "model.safetensors").exists()
    assert rates[-1] == pytest.approx(1e-4 * (1 - 1 / 30))  # step 2 of a linear decay over 30 steps, not over 2
    err = capsys.readouterr().err
    assert "| 2/2 [" in err and "/30 [" not in err  # the bar counts to the step the run stops at (no other to 30)


def test_distillation_stopped_at_a_step_saves_it_and_shows_a_bar_to_that_step(
        tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exgrpo.config.training import DistillStageConfig
    from exgrpo.training.distill import run_distill

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    config = DistillStageConfig(method="distill", model=str(tiny_model_path), teacher_model=str(tiny_model_path),
                                ei_data=ei, output_dir=tmp_path / "out", max_steps=30, stop_at_step=2,
                                per_device_batch_size=2, max_new_tokens=8, save_steps=1_000, logging_steps=1,
                                report_to=["none"])
    final = run_distill(config)
    err = capsys.readouterr().err
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and (final / "model.safetensors").exists()
    assert "| 2/2 [" in err and "/30 [" not in err
