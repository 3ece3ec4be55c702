"""The RL stage's turn budgets, resolved before training starts: a probe turn's (`max_new_tokens`: a number or
`auto`) and the final answer's (`max_answer_tokens`), printed and recorded in output_dir/budgets.json.

`auto` sets the per-turn budget from the answers the student was trained on: the teacher's responses to the
stage's questions and probes in its EI data, measured in the starting model's tokenizer, a high percentile
plus a margin. Why: a fixed budget below those lengths cuts turns, and the reward then judges unfinished
answers (48 tokens cut half the turns of our first study, whose date rationales have a median of 88); one far
above them only lets runaway turns cost rollout time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exgrpo.config import TrainConfig
from exgrpo.files import atomic_write_json
from exgrpo.training.dialogues import EIQuestion

SCHEMA_VERSION = 1
BUDGETS_FILE = "budgets.json"
AUTO_PERCENTILE = 99.0
AUTO_MARGIN = 0.25  # room for a student a little wordier than its teacher
AUTO_MULTIPLE = 16


def nearest_rank_percentile(lengths: Sequence[int], percentile: float) -> int:
    """The smallest length that at least `percentile` % of `lengths` do not exceed."""
    if not lengths:
        raise ValueError("no lengths to take a percentile of")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {percentile}")
    ordered = sorted(lengths)
    return ordered[math.ceil(percentile / 100 * len(ordered)) - 1]


def auto_turn_budget(lengths: Sequence[int], percentile: float = AUTO_PERCENTILE, margin: float = AUTO_MARGIN,
                     multiple: int = AUTO_MULTIPLE) -> int:
    """A per-turn budget for answers of these token lengths: their `percentile` plus `margin`, rounded up to a
    multiple of `multiple` (at least one multiple)."""
    if any(length < 0 for length in lengths):
        raise ValueError("token lengths cannot be negative")
    padded = nearest_rank_percentile(lengths, percentile) * (1 + margin)
    return max(multiple, math.ceil(padded / multiple) * multiple)


def teacher_response_lengths(questions: Sequence[EIQuestion], tokenizer: Any) -> list[int]:
    """Token lengths of the teacher's responses to the questions and their probes, each + 1 for the turn end
    the student generates after its text (a sampler's budget counts it)."""
    texts = [q.teacher_response for q in questions] + [response for q in questions for _, response in q.probes]
    return [len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


@dataclass(frozen=True)
class AutoMeasure:
    """How an auto budget was measured."""

    responses: int
    percentile: float
    percentile_tokens: int
    margin: float
    multiple: int


@dataclass(frozen=True)
class TurnBudgets:
    """Student tokens per assistant turn: `probe` for the answers to probes (ExGRPOConfig.max_turn_tokens),
    `answer` for the final answer to the question (max_answer_tokens: the turn the outcome reward judges, which
    evaluation lets run longer); `auto`: how an auto probe budget was measured."""

    probe: int
    answer: int
    auto: AutoMeasure | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(budget, int) and budget > 0 for budget in (self.probe, self.answer)):
            raise ValueError(f"turn budgets must be positive token counts, not max_turn_tokens={self.probe!r}, "
                             f"max_answer_tokens={self.answer!r}")

    def of_turn(self, turn: int, turns: int) -> int:
        """The budget of turn `turn` (0-based) of a dialogue of `turns` assistant turns: the last is the answer."""
        return self.answer if turn == turns - 1 else self.probe

    def distinct(self) -> list[int]:
        return sorted({self.probe, self.answer})

    def lines(self) -> list[str]:
        """What `exgrpo train` prints before training."""
        lines = []
        if self.auto is not None:
            lines.append(f"per-turn budget auto: {self.probe} tokens ({self.auto.percentile:g}th percentile "
                         f"of {self.auto.responses} teacher responses: {self.auto.percentile_tokens} tokens)")
        return [*lines, f"final-answer budget: {self.answer} tokens (probe turns: {self.probe})"]

    def record(self) -> dict[str, Any]:
        """output_dir/budgets.json, under the config's names."""
        return {"schema_version": SCHEMA_VERSION, "max_turn_tokens": self.probe, "max_answer_tokens": self.answer,
                "auto": asdict(self.auto) if self.auto is not None else None}


def resolve_turn_budgets(config: TrainConfig, tokenizer: Any | None = None) -> TurnBudgets:
    """The stage's budgets: `max_new_tokens` as given, or measured (`auto`) with `tokenizer` (default: the
    starting model's); `max_answer_tokens` unset = the turn budget, and under auto never below it."""
    if config.max_new_tokens != "auto":
        return TurnBudgets(config.max_new_tokens, config.max_answer_tokens or config.max_new_tokens)
    from exgrpo.training.sft_data import training_questions

    if tokenizer is None:
        from transformers import AutoTokenizer

        from exgrpo.models.named import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model))
    lengths = teacher_response_lengths(training_questions(config), tokenizer)
    turn = auto_turn_budget(lengths)
    measure = AutoMeasure(responses=len(lengths), percentile=AUTO_PERCENTILE,
                          percentile_tokens=nearest_rank_percentile(lengths, AUTO_PERCENTILE), margin=AUTO_MARGIN,
                          multiple=AUTO_MULTIPLE)
    return TurnBudgets(turn, max(config.max_answer_tokens or turn, turn), measure)


def write_turn_budgets(output_dir: Path, budgets: TurnBudgets) -> Path:
    path = Path(output_dir) / BUDGETS_FILE
    atomic_write_json(path, budgets.record())
    return path
