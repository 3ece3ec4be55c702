"""The RL stage's turn budgets: `max_new_tokens: auto` from the teacher's answer lengths, the final answer's own
budget, what `exgrpo train` prints and records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toy_ei import toy_records
from transformers import AutoTokenizer, TrainerCallback

from exgrpo.config import TrainConfig
from exgrpo.rl.budgets import (
    BUDGETS_FILE,
    TurnBudgets,
    auto_turn_budget,
    nearest_rank_percentile,
    resolve_turn_budgets,
    teacher_response_lengths,
)
from exgrpo.training.dialogues import load_ei_questions

LONG_RESPONSE = "The cat is small, it is an animal, and it does not fly: " * 6 + "The answer is no."


def test_the_auto_budget_is_a_high_percentile_plus_a_margin_in_multiples_of_16() -> None:
    lengths = list(range(1, 101))  # 1..100 tokens
    assert nearest_rank_percentile(lengths, 99) == 99 and nearest_rank_percentile(lengths, 50) == 50
    assert auto_turn_budget(lengths) == 128  # 99 x 1.25 = 123.75, up to a multiple of 16
    assert auto_turn_budget(lengths, margin=0.0) == 112  # 99 -> 112
    assert auto_turn_budget(lengths, percentile=50, margin=0.0, multiple=10) == 50
    # One runaway answer in a hundred does not set the budget; two do.
    assert auto_turn_budget([20] * 99 + [900]) == 32
    assert auto_turn_budget([20] * 98 + [900] * 2) == 1136
    assert auto_turn_budget([1, 2]) == 16  # never below one multiple
    for bad in ([], [-1, 5]):
        with pytest.raises(ValueError):
            auto_turn_budget(bad)


def long_toy_ei(path: Path) -> Path:
    """The toy EI data, with one long teacher response (to the cat's R2 probe)."""
    records = toy_records()
    records[0]["probes"][1]["teacher_response"] = LONG_RESPONSE
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_teacher_answers_are_measured_in_the_students_tokenizer(tiny_model_path: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    questions = load_ei_questions(long_toy_ei(tmp_path / "ei.jsonl"))
    lengths = teacher_response_lengths(questions, tokenizer)
    assert len(lengths) == 8 + 8 * 3  # every question's response and every probe's
    long = len(tokenizer(LONG_RESPONSE, add_special_tokens=False)["input_ids"]) + 1  # + the turn end
    short = len(tokenizer("The answer is no.", add_special_tokens=False)["input_ids"]) + 1
    assert max(lengths) == long > 3 * short and min(lengths) <= short


def auto_config(ei: Path, model: Path, output_dir: Path, **values: Any) -> TrainConfig:
    return TrainConfig(model=str(model), ei_data=ei, output_dir=output_dir, max_new_tokens="auto", **values)


def test_auto_reads_the_stages_own_questions_and_probes(tiny_model_path: Path, tmp_path: Path) -> None:
    ei = long_toy_ei(tmp_path / "ei.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    long = len(tokenizer(LONG_RESPONSE, add_special_tokens=False)["input_ids"]) + 1
    budgets = resolve_turn_budgets(auto_config(ei, tiny_model_path, tmp_path))  # the starting model's tokenizer
    # 32 responses: the 99th percentile is the longest, the cat's R2 probe.
    assert budgets.auto is not None and (budgets.auto.responses, budgets.auto.percentile_tokens) == (32, long)
    assert budgets.probe == auto_turn_budget([long]) and budgets.probe >= 1.25 * long
    assert budgets.answer == budgets.probe  # no answer budget: the turn budget
    assert budgets.lines()[0] == (f"per-turn budget auto: {budgets.probe} tokens (99th percentile of 32 teacher "
                                  f"responses: {long} tokens)")
    without_r2 = resolve_turn_budgets(auto_config(ei, tiny_model_path, tmp_path, probe_rules=["R1", "R3"]), tokenizer)
    assert without_r2.auto.responses == 8 + 8 * 2 and without_r2.probe < budgets.probe  # type: ignore[union-attr]
    # The answer budget is never below the auto turn budget; above it, it stays.
    low = resolve_turn_budgets(auto_config(ei, tiny_model_path, tmp_path, max_answer_tokens=16), tokenizer)
    assert low.answer == low.probe == budgets.probe
    high = resolve_turn_budgets(auto_config(ei, tiny_model_path, tmp_path, max_answer_tokens=999), tokenizer)
    assert (high.probe, high.answer) == (budgets.probe, 999)


def test_given_budgets_are_taken_as_they_are(tmp_path: Path) -> None:
    config = TrainConfig(model="m", ei_data=tmp_path / "absent.jsonl", output_dir=tmp_path, max_new_tokens=40)
    assert resolve_turn_budgets(config) == TurnBudgets(40, 40)  # nothing is read
    longer = config.model_copy(update={"max_answer_tokens": 256})
    assert resolve_turn_budgets(longer) == TurnBudgets(40, 256)
    assert TurnBudgets(40, 256).of_turn(2, 3) == 256 and TurnBudgets(40, 256).of_turn(1, 3) == 40


def test_the_yaml_takes_auto_and_nothing_else_that_is_not_a_number(tmp_path: Path) -> None:
    from pydantic import ValidationError

    assert TrainConfig(model="m", ei_data=tmp_path, max_new_tokens="auto").max_new_tokens == "auto"
    for bad in ({"max_new_tokens": "automatic"}, {"max_new_tokens": 0}, {"max_answer_tokens": 0}):
        with pytest.raises(ValidationError):
            TrainConfig(model="m", ei_data=tmp_path, **bad)


class TrainerArgs(TrainerCallback):
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.args = args


def test_exgrpo_train_resolves_auto_before_training_prints_and_records_it(
        toy_sft_model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_exgrpo import train_config

    from exgrpo.rl.train import build_trainer, run_train

    model, ei = toy_sft_model
    config = train_config(model, ei, tmp_path, max_steps=1, max_new_tokens="auto", max_answer_tokens=48)
    with pytest.raises(ValueError, match="max_new_tokens: auto"):
        build_trainer(config)  # unresolved: refused, not guessed
    expected = resolve_turn_budgets(config)
    seen = TrainerArgs()
    run_train(config, callbacks=[seen])
    assert (seen.args.max_turn_tokens, seen.args.max_answer_tokens) == (expected.probe, 48)
    record = json.loads((tmp_path / BUDGETS_FILE).read_text())
    assert record["max_turn_tokens"] == expected.probe and record["max_answer_tokens"] == 48
    assert record["auto"]["responses"] == 8 + 8 * 3 and record["auto"]["percentile"] == 99
    assert f"per-turn budget auto: {expected.probe} tokens" in capsys.readouterr().out
