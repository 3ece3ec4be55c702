"""The RL gate's page: verdicts from paired CIs and reward curves, read from run folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rl_gate_report as gate  # noqa: E402

from exgrpo.runner.layout import RunLayout  # noqa: E402


def write_evaluation(run_dir: Path, model: str, correct: dict[str, list[bool]]) -> None:
    folder = RunLayout(run_dir).evaluation(model)
    folder.predictions_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for dataset, answers in correct.items():
        folder.predictions(dataset).write_text("".join(json.dumps({"id": f"{dataset}-{i}", "correct": c, "gold": "1",
                                                                   "extracted": "1" if c else "2"}) + "\n"
                                                       for i, c in enumerate(answers)))
        value = 100 * sum(answers) / len(answers)
        rows.append({"name": dataset, "num_examples": len(answers), "num_correct": sum(answers),
                     "accuracy": {"value": value, "low": value, "high": value},
                     "floors": {"random": 20.0, "majority": 30.0}})
    folder.report.write_text(json.dumps({"datasets": rows, "averages": {}, "seconds": 1.0}))


def write_steps(run_dir: Path, rewards: list[float]) -> None:
    train = RunLayout(run_dir).stage_dir("train")
    train.mkdir(parents=True, exist_ok=True)
    steps = [{"step": i + 1, "reward": r, "reward_full": r, "reward_partial": None, "zero_spread": 0.1,
              "cut_turns": 0.0, "kl": 0.01, "entropy": 0.5, "step_seconds": 60.0} for i, r in enumerate(rewards)]
    (train / "diagnostics.json").write_text(json.dumps({"schema_version": 1, "steps": steps, "warnings": []}))


def test_reward_rise_is_read_from_the_first_and_last_fifth() -> None:
    rise = gate.reward_rise([0.2] * 10 + [0.5] * 30 + [0.8] * 10)
    assert rise["first"] == pytest.approx(0.2) and rise["last"] == pytest.approx(0.8)
    assert rise["low"] == pytest.approx(0.6) and rise["high"] == pytest.approx(0.6)
    assert gate.reward_rise([0.1] * 9) is None  # too few steps for two fifths of two


def test_outcome_leaves_the_dsu_bonus_out() -> None:
    records = [{"reward": 1.4, "reward_full": 0.8, "reward_partial": 0.4}, {"reward": 0.5, "reward_full": 0.5}]
    assert gate.outcome_series(records) == pytest.approx([0.6, 0.5])


def test_an_arm_that_learns_meets_the_gate_and_one_that_does_not_is_explained(tmp_path: Path) -> None:
    held_in_start = [i % 2 == 0 for i in range(200)]
    unseen = [i % 3 == 0 for i in range(100)]
    for start in ("ei", "ei_first"):  # outcome-only GRPO's start, and full ExGRPO's (trained in an earlier sitting)
        write_evaluation(tmp_path / start, "sft", {"world_val": held_in_start, "world_ood_steps": unseen,
                                                   "world_ood_surface": unseen})
    better = [c or i % 4 == 1 for i, c in enumerate(held_in_start)]  # +25 points on the same questions
    write_evaluation(tmp_path / "grpo", "exgrpo", {"world_val": better, "world_ood_steps": unseen,
                                                   "world_ood_surface": unseen})
    write_steps(tmp_path / "grpo", [0.2 + 0.01 * i for i in range(40)])
    write_evaluation(tmp_path / "exgrpo", "exgrpo", {"world_val": held_in_start, "world_ood_steps": unseen,
                                                     "world_ood_surface": unseen})
    write_steps(tmp_path / "exgrpo", [0.3] * 40)
    for stage, manifest in (("sft", {"seconds": 0.0, "outputs": {"skipped": "no sft section"}}),
                            ("train", {"seconds": 60.0, "cpu_seconds": 118.0})):
        (tmp_path / "grpo" / stage).mkdir(parents=True, exist_ok=True)
        (tmp_path / "grpo" / stage / "manifest.json").write_text(json.dumps({"stage": stage, **manifest}))
    summaries = [gate.arm_summary(tmp_path, arm) for arm in gate.ARMS[:2]]
    assert summaries[0]["met"] and summaries[0]["held_in"]["value"] == pytest.approx(25.0)
    assert summaries[1]["finished"] and not summaries[1]["met"]
    assert not summaries[1]["verdicts"]["held-in validation rises"]
    text = gate.page(tmp_path, summaries, "rl.png")
    assert "| outcome-only GRPO | EI-SFT (retrained) | 1e-05 | **met** | +25.0" in text
    assert summaries[0]["changed"] == {"fixed": 50, "broken": 0, "questions": 200}  # i % 4 == 1: 50 of 200
    assert "| 50 / 0 of 200 |" in text
    assert "| grpo | n/a | n/a | skipped | 60 / 118 |" in text  # seconds per stage; a skipped stage says so
    assert "| full ExGRPO | EI-SFT (first sitting) | 1e-05 | **not met** |" in text
    assert "full ExGRPO: held-in validation rises, reward rises not met; 40 steps in 40 min" in text
    gate.plot(summaries, tmp_path / "rl.png")
    assert (tmp_path / "rl.png").stat().st_size > 0


def test_the_dialogue_warm_up_is_read_on_validation(tmp_path: Path) -> None:
    assert "not finished" in "\n".join(gate.dialogue_section(tmp_path))
    write_evaluation(tmp_path / "ei", "sft", {"world_val": [i % 2 == 0 for i in range(200)]})
    write_evaluation(tmp_path / "ei_nodialogue", "sft", {"world_val": [i % 4 == 0 for i in range(200)]})
    text = "\n".join(gate.dialogue_section(tmp_path))
    assert "+25.0 [" in text and "the warm-up keeps them on validation" in text



def test_the_dialogue_warm_up_is_also_read_on_the_format_the_rl_rolls_out(tmp_path: Path) -> None:
    assert gate.dialogue_format_lines(tmp_path) == []  # not measured: nothing said
    with_them, without = [i % 2 == 0 for i in range(100)], [i % 4 == 0 for i in range(100)]
    difference = {"value": 25.0, "low": 15.0, "high": 35.0}
    (tmp_path / gate.DIALOGUE_START_FILE).write_text(json.dumps({
        "questions": 100, "probes": 2, "turn_tokens": 240, "answer_tokens": 256,
        "scores": {"ei": {"dialogue": with_them, "single_turn": without},
                   "ei_nodialogue": {"dialogue": without, "single_turn": without}},
        "with_minus_without": {"dialogue": difference, "single_turn": {"value": 0.0, "low": -1.0, "high": 1.0}}}))
    text = "\n".join(gate.dialogue_format_lines(tmp_path))
    assert "right 50.0 % of the time with dialogues in the SFT data and 25.0 % without: +25.0 [+15.0, +35.0]" in text
    assert "keep the dialogues" in text
    difference["low"] = -5.0  # not resolved on the RL's format either: the recipes may drop them
    (tmp_path / gate.DIALOGUE_START_FILE).write_text(json.dumps({
        **json.loads((tmp_path / gate.DIALOGUE_START_FILE).read_text()),
        "with_minus_without": {"dialogue": difference, "single_turn": difference}}))
    assert "can drop them" in "\n".join(gate.dialogue_format_lines(tmp_path))


def write_sft_manifest(run_dir: Path, native_bf16: bool) -> None:
    path = RunLayout(run_dir).manifest("sft")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": "sft", "seconds": 1.0, "machine": {"native_bf16": native_bf16}}))


def test_a_retrained_start_is_compared_with_its_first_training_and_names_its_precision(tmp_path: Path) -> None:
    assert gate.retraining_section(tmp_path) == []  # nothing retrained: no section
    write_evaluation(tmp_path / "ei_first", "sft", {"world_val": [i % 2 == 0 for i in range(200)]})
    write_evaluation(tmp_path / "ei", "sft", {"world_val": [i % 4 == 0 for i in range(200)]})
    write_sft_manifest(tmp_path / "ei_first", native_bf16=True)
    write_sft_manifest(tmp_path / "ei", native_bf16=False)
    text = "\n".join(gate.retraining_section(tmp_path))
    assert "EI-SFT (retrained) (fp32) minus EI-SFT (first sitting) (bf16)" in text and "-25.0 [" in text
    assert "0 answers wrong -> right and 50 right -> wrong of 200" in text
    # Without probe dialogues, trained on an fp32 machine: read against the start trained in fp32 too
    write_evaluation(tmp_path / "ei_nodialogue", "sft", {"world_val": [i % 4 == 0 for i in range(200)]})
    write_sft_manifest(tmp_path / "ei_nodialogue", native_bf16=False)
    assert "+0.0 [" in "\n".join(gate.dialogue_section(tmp_path))


def test_the_record_keeps_what_the_page_reads(tmp_path: Path) -> None:
    from lab.study.record import record_tree, restore_tree

    runs, record, restored = tmp_path / "runs", tmp_path / "record", tmp_path / "restored"
    held_in = [i % 2 == 0 for i in range(50)]
    write_evaluation(runs / "ei", "sft", {"world_val": held_in, "world_ood_steps": held_in[:20],
                                         "world_ood_surface": held_in[:20]})
    write_evaluation(runs / "grpo", "exgrpo", {"world_val": [not c for c in held_in], "world_ood_steps": held_in[:20],
                                               "world_ood_surface": held_in[:20]})
    write_steps(runs / "grpo", [0.1 * i for i in range(20)])
    for run, stages in (("ei", ("eval",)), ("grpo", ("train", "eval"))):
        for stage in stages:
            (runs / run / stage / "manifest.json").write_text(json.dumps({"stage": stage, "seconds": 1.0}))
    assert record_tree(runs, record, folders=("*",)) > 0
    assert sorted(p.name for p in record.iterdir()) == ["ei.json.gz", "grpo.json.gz"]
    assert restore_tree(record, restored) > 0
    arm = gate.ARMS[0]
    original, again = gate.arm_summary(runs, arm), gate.arm_summary(restored, arm)
    assert again["held_in"] == original["held_in"] and again["series"] == original["series"]
    assert again["rise"] == original["rise"]


def test_the_page_shows_which_formats_each_start_trained_on(tmp_path: Path) -> None:
    from exgrpo.world.datasets import write_world

    runs = tmp_path / "runs"
    write_world(runs / "ei" / "world", seed=0, train_size=8, test_size=4, ood_size=4, val_size=4)
    layout = RunLayout(runs / "ei")
    layout.ei_data.parent.mkdir(parents=True)
    layout.ei_data.write_text((runs / "ei" / "world" / "train.jsonl").read_text())
    overlaps = gate.format_overlaps(runs)
    assert list(overlaps) == ["EI data: questions and their probes"]  # no skd run here
    row = overlaps["EI data: questions and their probes"]
    assert "whole questions 0%" in row["world_ood_steps"] and row["world_ood_surface"].startswith("sentences 0%")
    (tmp_path / gate.OVERLAP_FILE).write_text(json.dumps(overlaps))
    text = "\n".join(gate.overlap_section(tmp_path))
    assert "| EI data: questions and their probes | sentences 100%" in text


def test_the_learning_rate_is_the_one_with_the_higher_validation_accuracy(tmp_path: Path) -> None:
    chosen, lines = gate.learning_rate_check(tmp_path)
    assert chosen == "exgrpo" and "not finished" in "\n".join(lines)  # nothing run yet: the default
    write_evaluation(tmp_path / "exgrpo", "exgrpo", {"world_val": [i % 2 == 0 for i in range(100)]})
    write_evaluation(tmp_path / "exgrpo_lr3e-5", "exgrpo", {"world_val": [i % 5 != 0 for i in range(100)]})
    chosen, lines = gate.learning_rate_check(tmp_path)
    text = "\n".join(lines)
    assert chosen == "exgrpo_lr3e-5" and "**3e-05** (exgrpo_lr3e-5)" in text
    assert "| 1e-05 | exgrpo | 50.0 |" in text and "| 3e-05 | exgrpo_lr3e-5 | 80.0 |" in text


def test_lockstep_compares_every_two_arms_and_says_whether_they_share_a_question_order() -> None:
    rising = [0.1 * step for step in range(10)]
    summaries = [{"arm": gate.Arm("a", "A", "ei", "EI-SFT"), "series": rising},
                 {"arm": gate.Arm("b", "B", "ei", "EI-SFT"), "series": [r + 0.01 * (i % 2) for i, r in enumerate(rising)]},
                 {"arm": gate.Arm("c", "C", "skd", "SKD"), "series": [1.0 - r for r in rising]}]
    lines = gate.lockstep(summaries)
    assert len(lines) == 3
    assert "A and B (both from EI-SFT, the same question order)" in lines[0] and "moving in lockstep" in lines[0]
    assert "A and C (from EI-SFT and SKD: each start's own questions)" in lines[1] and "r = -1.00" in lines[1]
    assert "lockstep" not in lines[1]
