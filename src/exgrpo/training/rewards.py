"""ExGRPO's rewards: the outcome of the final answer, and the Dialogue Structure Utility bonus.

`outcome_reward` is a plain TRL reward callable. The DSU bonus needs every rollout of a question (A and
B) at once, across processes: the trainer computes it on the gathered rewards with `dsu_bonus`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exgrpo.data.answers import check_answer

FULL, PARTIAL = "A", "B"


def outcome_reward(prompts: list[Any], completions: list[Any], final_answer: list[str], answer: list[str],
                   answer_type: list[str], choices: list[list[str] | None], **_: Any) -> list[float]:
    """R_outcome: 1 when the student's answer to the original question (its last turn) is correct."""
    return [float(check_answer(text, gold, kind, tuple(options) if options else None).correct)
            for text, gold, kind, options in zip(final_answer, answer, answer_type, choices, strict=True)]


def format_reward(prompts: list[Any], completions: list[Any], final_answer: list[str], answer_type: list[str],
                  choices: list[list[str] | None], **_: Any) -> list[float]:
    """(ours) 1 when the final answer can be read at all; weighted by `format_reward` in the config."""
    from exgrpo.data.answers import extract_answer

    return [float(extract_answer(text, kind, tuple(options) if options else None) is not None)
            for text, kind, options in zip(final_answer, answer_type, choices, strict=True)]


def dsu_bonus_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    """A column for the DSU bonus in TRL's reward table; the trainer fills it once groups are gathered."""
    return [0.0] * len(prompts)


@dataclass(frozen=True)
class GroupDSU:
    p_full: float  # mean outcome of the question's A rollouts
    p_partial: float  # mean outcome of its B rollouts
    fired: bool


def dsu_bonus(outcomes: Sequence[float], scenarios: Sequence[str], delta: float, nu: float) -> tuple[list[float], GroupDSU]:
    """Paper Eq. 5-6 for one question's rollouts: if P_full > nu * P_partial, every correct A rollout gets +delta.

    (ours) Without B rollouts there is nothing to compare with, and the bonus never fires.
    """
    full = [o for o, s in zip(outcomes, scenarios, strict=True) if s == FULL]
    partial = [o for o, s in zip(outcomes, scenarios, strict=True) if s == PARTIAL]
    p_full = sum(full) / len(full) if full else 0.0
    p_partial = sum(partial) / len(partial) if partial else 0.0
    fired = bool(full) and bool(partial) and p_full > nu * p_partial
    bonus = [delta if fired and s == FULL and o > 0 else 0.0 for o, s in zip(outcomes, scenarios, strict=True)]
    return bonus, GroupDSU(p_full, p_partial, fired)


def per_scenario_advantages(rewards: Sequence[float], scenarios: Sequence[str], group_size: int) -> list[float]:
    """(ours, an option) Advantages normalised within each question's A rollouts and, apart, its B rollouts,
    instead of over the whole group: (reward - mean) / (std + 1e-4), as TRL does for a group."""
    import statistics

    advantages = [0.0] * len(rewards)
    for start in range(0, len(rewards), group_size):
        for scenario in (FULL, PARTIAL):
            rows = [i for i in range(start, start + group_size) if scenarios[i] == scenario]
            if not rows:
                continue
            values = [rewards[i] for i in rows]
            mean = sum(values) / len(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0  # TRL's nanstd is the sample std
            for i in rows:
                advantages[i] = (rewards[i] - mean) / (spread + 1e-4)
    return advantages
