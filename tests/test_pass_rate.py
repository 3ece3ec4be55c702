"""The pass-rate pre-pass (rl/pass_rate.py): RL keeps the questions the starting model solves sometimes, the rates
survive a kill and are never paid for twice, and rates measured under other settings are refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from toy_ei import FRIENDLY, write_toy_ei
from transformers import TrainerCallback

from exgrpo.config import PassRateSettings, TrainConfig
from exgrpo.errors import ConfigError, DataError
from exgrpo.generation.generators import Conversation, Generation, ResultCallback
from exgrpo.rl.pass_rate import PASS_RATES_FILE, select_by_pass_rate
from exgrpo.runner.plan import hashed_settings

SAMPLES = 4
# Answers right in this many of SAMPLES samples, per toy question (the others: 0 < solved < SAMPLES).
SOLVED = {"cat": 4, "dog": 0, "cow": 1, "owl": 3, "fox": 4, "bee": 2, "eel": 0, "elk": 4}
MIXED = {"cow", "owl", "bee"}


class ScriptedGenerator:
    """A stand-in generator whose outcomes are known: for the toy question about ANIMAL, the first
    SOLVED[animal] samples say the right answer, the rest the wrong one; it counts what it was asked."""

    name = "scripted"

    def __init__(self, fail_after: int | None = None) -> None:
        self.asked: list[str] = []  # the animal of every conversation it was given
        self.fail_after = fail_after  # results handed out before it dies like a killed process

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int, temperature: float = 0.0,
                 on_result: ResultCallback | None = None) -> list[Generation]:
        assert len(conversations[0]) == 1 and conversations[0][0]["role"] == "user"  # single-turn question prompts
        seen: dict[str, int] = {}
        generations = []
        for index, conversation in enumerate(conversations):
            animal = conversation[0]["content"].split("Is the ")[1].split(" ")[0]
            self.asked.append(animal)
            count = seen[animal] = seen.get(animal, 0) + 1
            right = FRIENDLY[animal]
            answer = right if count <= SOLVED[animal] else {"yes": "no", "no": "yes"}[right]
            generation = Generation(text=f"The answer is {answer}.", num_tokens=5)
            if self.fail_after is not None and len(self.asked) > self.fail_after:
                raise KeyboardInterrupt("killed")
            if on_result is not None:
                on_result(index, generation)
            generations.append(generation)
        return generations


class QuestionsSeen(TrainerCallback):
    """Records the ids of the questions the trainer was built on."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ids = list(kwargs["train_dataloader"].dataset["question_id"])


def config(model: Path, tmp_path: Path, **changes: Any) -> TrainConfig:
    ei = tmp_path / "ei.jsonl"
    if not ei.exists():
        write_toy_ei(ei)
    values: dict[str, Any] = {"model": str(model), "ei_data": ei, "output_dir": tmp_path / "train",
                              "report_to": ["none"], "max_steps": 1, "max_new_tokens": 8,
                              "pass_rate": {"enabled": True, "samples": SAMPLES}}
    return TrainConfig(**(values | changes))


def stored_rates(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "train" / PASS_RATES_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def test_the_filter_keeps_exactly_the_questions_with_mixed_outcomes(tiny_model_path: Path, tmp_path: Path) -> None:
    generator = ScriptedGenerator()
    selection = select_by_pass_rate(config(tiny_model_path, tmp_path), generator)
    assert {q.example.id for q in selection.kept} == MIXED
    assert sorted(generator.asked) == sorted(animal for animal in SOLVED for _ in range(SAMPLES))
    assert {r["id"]: r["solved"] for r in stored_rates(tmp_path)} == SOLVED
    summary = selection.summary()
    assert (summary["questions"], summary["kept"], summary["always_solved"], summary["never_solved"]) == (8, 3, 3, 2)
    assert summary["questions_by_solved"] == [2, 1, 1, 1, 3]
    assert selection.line().startswith("pass-rate filter: kept 3 of 8 questions (3 always solved, 2 never solved; "
                                       "4 samples each, ")
    # Bounds are exclusive rates: above 0.25 keeps the questions solved 2 or 3 times of 4.
    narrower = select_by_pass_rate(config(tiny_model_path, tmp_path, pass_rate={
        "enabled": True, "samples": SAMPLES, "min_rate": 0.25}), ScriptedGenerator())
    assert {q.example.id for q in narrower.kept} == {"owl", "bee"}
    assert "1 mixed but outside (0.25, 1.0)" in narrower.line()


def test_a_rerun_samples_only_the_questions_an_interrupted_run_left(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):  # killed within the 4th question's samples
        select_by_pass_rate(config(tiny_model_path, tmp_path), ScriptedGenerator(fail_after=3 * SAMPLES + 2))
    assert len(stored_rates(tmp_path)) == 3
    with (tmp_path / "train" / PASS_RATES_FILE).open("a") as handle:
        handle.write('{"id": "fo')  # a line torn by the kill
    rerun = ScriptedGenerator()
    selection = select_by_pass_rate(config(tiny_model_path, tmp_path), rerun)
    assert len(rerun.asked) == 5 * SAMPLES and set(rerun.asked) == set(SOLVED) - {"cat", "dog", "cow"}
    assert {q.example.id for q in selection.kept} == MIXED and selection.sampled_now == 5
    assert {r["id"]: r["solved"] for r in stored_rates(tmp_path)} == SOLVED
    # Everything measured: a third run samples nothing (and would not even load a model).
    third = ScriptedGenerator()
    assert {q.example.id for q in select_by_pass_rate(config(tiny_model_path, tmp_path), third).kept} == MIXED
    assert third.asked == [] and "8 read from pass_rates.jsonl" in select_by_pass_rate(
        config(tiny_model_path, tmp_path)).line()


@pytest.mark.parametrize(("changes", "field"), [
    ({"pass_rate": {"enabled": True, "samples": SAMPLES + 2}}, "samples"),
    ({"temperature": 0.7}, "temperature"),
    ({"max_new_tokens": 16}, "max_new_tokens"),
])
def test_rates_measured_under_other_settings_are_refused(tiny_model_path: Path, tmp_path: Path,
                                                         changes: dict[str, Any], field: str) -> None:
    select_by_pass_rate(config(tiny_model_path, tmp_path), ScriptedGenerator())
    generator = ScriptedGenerator()
    with pytest.raises(ConfigError, match=rf"pass_rates.jsonl: .*measured under other settings \({field}: "):
        select_by_pass_rate(config(tiny_model_path, tmp_path, **changes), generator)
    assert generator.asked == []


def test_a_malformed_line_names_the_file_line_and_field(tiny_model_path: Path, tmp_path: Path) -> None:
    select_by_pass_rate(config(tiny_model_path, tmp_path), ScriptedGenerator())
    path = tmp_path / "train" / PASS_RATES_FILE
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"solved": ', '"solved": "x", "was": ')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"pass_rates.jsonl:3 field 'solved'"):
        select_by_pass_rate(config(tiny_model_path, tmp_path), ScriptedGenerator())
    path.write_text("\n".join(lines[:3]) + "\n{not json\n" + "\n".join(lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"pass_rates.jsonl:4: malformed JSON"):
        select_by_pass_rate(config(tiny_model_path, tmp_path), ScriptedGenerator())


def test_too_few_questions_left_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kept 3 of 8 questions.*fewer than questions_per_step \(4\)"):
        select_by_pass_rate(config(tiny_model_path, tmp_path, questions_per_step=4), ScriptedGenerator())


def test_the_filter_is_off_by_default_and_leaves_stage_hashes_alone() -> None:
    from exgrpo.config import TrainSettings

    assert not TrainSettings().pass_rate.enabled
    assert "pass_rate" not in hashed_settings(TrainSettings())
    assert PassRateSettings().keeps(0.5) and not PassRateSettings().keeps(0.0) and not PassRateSettings().keeps(1.0)
    with pytest.raises(ValueError, match="min_rate"):
        PassRateSettings(min_rate=0.5, max_rate=0.5)


def test_exgrpo_train_trains_on_the_kept_questions_of_the_tiny_student(toy_sft_model, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: the SFT'd tiny student samples its answers (the project's batched decoding), the trainer gets
    exactly the questions the file shows mixed, and diagnostics.json says how they were chosen."""
    from exgrpo.rl.diagnostics import read_diagnostics
    from exgrpo.rl.train import run_train

    model, ei = toy_sft_model
    train = config(model, tmp_path, ei_data=ei, questions_per_step=1, logging_steps=1,
                   exgrpo={"k": 1, "rollouts_full": 2, "rollouts_partial": 0, "k_partial": 0},
                   pass_rate={"enabled": True, "samples": 8})
    seen = QuestionsSeen()
    run_train(train, callbacks=[seen])
    rates = stored_rates(tmp_path)
    mixed = {r["id"] for r in rates if 0 < r["solved"] < 8}
    assert len(rates) == 8 and all(r["samples"] == 8 for r in rates)
    assert mixed and set(seen.ids) == mixed
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("pass-rate filter"))
    assert line.startswith(f"pass-rate filter: kept {len(mixed)} of 8 questions")
    selection = read_diagnostics(tmp_path / "train" / "diagnostics.json")["question_selection"]
    assert selection["kept"] == len(mixed) and selection["samples"] == 8 and selection["sampled_now"] == 8
