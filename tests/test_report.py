"""The run report's paired comparisons and the quickstart page's goal line, on prediction files written here."""

from __future__ import annotations

import json
from pathlib import Path

from exgrpo.runner.layout import RunLayout
from exgrpo.runner.report import goal_line, paired_difference
from exgrpo.runner.results import RunResults


def write_predictions(run_dir: Path, model: str, dataset: str, correct: list[bool]) -> None:
    path = RunLayout(run_dir).evaluation(model).predictions(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "correct": c} for i, c in enumerate(correct)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_paired_difference_is_above_below_or_not_resolved(tmp_path: Path) -> None:
    write_predictions(tmp_path, "sft", "test", [True] * 30 + [False] * 10)
    write_predictions(tmp_path, "base", "test", [False] * 40)
    write_predictions(tmp_path, "same", "test", [True] * 30 + [False] * 10)
    above = paired_difference(RunResults.of(tmp_path), "sft", "base", ["test"])
    assert above is not None and above["value"] == 75.0 and above["low"] > 0 and above["verdict"] == "above"
    below = paired_difference(RunResults.of(tmp_path), "base", "sft", ["test"])
    assert below is not None and below["value"] == -75.0 and below["verdict"] == "below"
    same = paired_difference(RunResults.of(tmp_path), "sft", "same", ["test"])
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0, "verdict": "not resolved", "questions": 40}
    assert paired_difference(RunResults.of(tmp_path), "sft", "missing", ["test"]) is None


def test_paired_difference_pairs_by_question_id_and_averages_datasets(tmp_path: Path) -> None:
    # The same 50 % accuracy on "a" for both, but on different questions: unpaired it is a tie, paired
    # it is a tie as well, with a wide CI; on "b" sft wins every question. Mean over datasets: +50.
    write_predictions(tmp_path, "sft", "a", [True, False] * 20)
    write_predictions(tmp_path, "base", "a", [False, True] * 20)
    write_predictions(tmp_path, "sft", "b", [True] * 20)
    write_predictions(tmp_path, "base", "b", [False] * 20)
    estimate = paired_difference(RunResults.of(tmp_path), "sft", "base", ["a", "b"])
    assert estimate is not None and estimate["value"] == 50.0
    assert estimate["low"] < 50.0 < estimate["high"]


def results(sft: tuple[float, float, float], base: tuple[float, float, float], verdict: str) -> dict:
    as_estimate = lambda v: {"value": v[0], "low": v[1], "high": v[2]}  # noqa: E731
    pair = {"value": sft[0] - base[0], "low": 1.0, "high": 20.0, "verdict": verdict}
    return {"models": {"base": {"held_in": as_estimate(base)}, "sft": {"held_in": as_estimate(sft)}},
            "comparisons": [{"model": "sft", "baseline": "base", "held_in": pair}]}


def test_goal_line_needs_separate_cis_and_a_paired_win() -> None:
    assert "**met**" in goal_line(results((40, 31, 49), (14, 7, 21), "above"))
    overlapping = goal_line(results((23, 15, 31), (14, 7, 21), "above"))
    assert "**not met**" in overlapping and "CIs overlap" in overlapping
    assert "**not met**" in goal_line(results((40, 31, 49), (14, 7, 21), "not resolved"))
    assert "not measured" in goal_line({"models": {}, "comparisons": []})


def test_a_resumed_sft_counts_every_sitting_and_its_speed_is_its_last_sittings(tmp_path: Path) -> None:
    from exgrpo.runner.results import RunResults
    from exgrpo.runner.speeds import sft_tokens_per_s

    layout = RunLayout(tmp_path)
    (tmp_path / "sft").mkdir()
    # Killed after step 3; resumed from checkpoint-2, whose log it restores; TRL's SFT counter starts from 0 again,
    # and the resumed sitting's train_runtime counts that sitting only.
    layout.log_history("sft").write_text(json.dumps([
        {"step": 1, "num_tokens": 1000.0}, {"step": 2, "num_tokens": 2000.0}, {"step": 2, "eval_loss": 1.0},
        {"step": 3, "num_tokens": 500.0}, {"step": 4, "num_tokens": 1000.0, "train_runtime": 10.0}]))
    run = RunResults(layout)
    assert run.trained_tokens("sft") == 3000.0 and run.trained_tokens("train") is None
    assert sft_tokens_per_s(run) == 100.0


def test_the_page_gives_measured_speeds_and_what_the_rl_stage_did(tmp_path: Path) -> None:
    from exgrpo.runner.report import markdown, rl_section
    from exgrpo.runner.speeds import speeds_line

    layout = RunLayout(tmp_path)
    (tmp_path / "sft").mkdir()
    layout.log_history("sft").write_text(json.dumps([{"step": 1, "loss": 2.0, "num_tokens": 4000},
                                                     {"step": 2, "num_tokens": 8000, "train_runtime": 40.0}]))
    folder = layout.evaluation("sft")
    folder.path.mkdir(parents=True)
    folder.report.write_text(json.dumps({"seconds": 10.0, "averages": {}, "datasets": [
        {"name": "world_test", "generated_tokens": 3000}]}))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "diagnostics.json").write_text(json.dumps({"steps": [
        {"step": 1, "reward": 0.25, "zero_spread": 0.5, "cut_turns": 0.0, "kl": 0.001, "rollout_tokens_per_s": 300.0,
         "update_tokens_per_s": 500.0},
        {"step": 2, "reward": 0.5, "zero_spread": 0.0, "cut_turns": 0.1, "kl": 0.003, "rollout_tokens_per_s": 100.0,
         "update_tokens_per_s": 300.0}]}))
    line = speeds_line(layout)
    assert "SFT training 200 tokens/s" in line and "evaluation (SFT model) 300 generated tokens/s" in line
    assert "RL rollouts 200 generated tokens/s" in line and "RL update 400 sequence tokens/s" in line
    section = "\n".join(rl_section(layout, tmp_path / "page.md"))
    assert ("2 steps; reward per step 0.25, 0.50; groups without reward spread 25%; turns cut by the budget 5%; "
            "KL to the SFT model 0.0020") in section
    assert "cannot show: learning" in section and "(rl.md)" in section
    # A run without held-out splits has no held-out column.
    row = {"held_in": {"value": 50.0, "low": 40.0, "high": 60.0}, "held_out": None, "ei_test": None,
           "datasets": {}, "floors": {"held_in": {"random": 20.0, "majority": 25.0}}}
    table = markdown({"sft": row}, {"sft": 1.0}, {"sft": "SFT"})
    assert table.splitlines()[0] == "| model | held-in |" and "| SFT | 50.0 [40.0, 60.0] |" in table
