"""ExGRPO's rewards: the outcome of the final answer, and the Dialogue Structure Utility bonus.

`outcome_reward` is a plain TRL reward callable. The DSU bonus needs every rollout of a question (A and
B) at once, across processes: the trainer computes it on the gathered rewards with `dsu_bonus`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exgrpo.data.answers import check_answer, extract_answer

FULL, PARTIAL = "A", "B"


def outcome_reward(prompts: list[Any], completions: list[Any], final_answer: list[str], answer: list[str],
                   answer_type: list[str], choices: list[list[str] | None], **_: Any) -> list[float]:
    """R_outcome: 1 when the student's answer to the original question (its last turn) is correct."""
    return [float(check_answer(text, gold, kind, tuple(options) if options else None).correct)
            for text, gold, kind, options in zip(final_answer, answer, answer_type, choices, strict=True)]


def format_reward(prompts: list[Any], completions: list[Any], final_answer: list[str], answer_type: list[str],
                  choices: list[list[str] | None], **_: Any) -> list[float]:
    """(ours) 1 when the final answer can be read at all; weighted by `format_reward` in the config."""
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


def dsu_bonus(outcomes: Sequence[float], scenarios: Sequence[str], delta: float, nu: float,
              probes: Sequence[int] | None = None) -> tuple[list[float], GroupDSU]:
    """Paper Eq. 5-6 for one question's rollouts: if P_full > nu * P_partial, every correct A rollout gets +delta.

    (ours) Without B rollouts there is nothing to compare with, and the bonus never fires. Nor does it when
    `probes` (the number of probes each rollout was asked) shows A no longer than B: a question with no
    probes left makes A and B the same dialogue, and P_full > P_partial would be sampling noise.
    """
    full = [o for o, s in zip(outcomes, scenarios, strict=True) if s == FULL]
    partial = [o for o, s in zip(outcomes, scenarios, strict=True) if s == PARTIAL]
    p_full = sum(full) / len(full) if full else 0.0
    p_partial = sum(partial) / len(partial) if partial else 0.0
    longer = True
    if probes is not None and full and partial:
        asked = {scenario: [n for n, s in zip(probes, scenarios, strict=True) if s == scenario]
                 for scenario in (FULL, PARTIAL)}
        longer = min(asked[FULL]) > max(asked[PARTIAL])
    fired = bool(full) and bool(partial) and longer and p_full > nu * p_partial
    bonus = [delta if fired and s == FULL and o > 0 else 0.0 for o, s in zip(outcomes, scenarios, strict=True)]
    return bonus, GroupDSU(p_full, p_partial, fired)


def dsu_column(outcomes: Sequence[float], scenarios: Sequence[str], probes: Sequence[int], group_size: int,
               delta: float, nu: float) -> tuple[list[float], list[GroupDSU]]:
    """The DSU bonus of every rollout of a gathered batch (whole groups of `group_size`, a question's rollouts
    together), and each group's P_full, P_partial and whether the bonus fired."""
    bonus, groups = [], []
    for start in range(0, len(outcomes), group_size):
        rows = slice(start, start + group_size)
        group_bonus, group = dsu_bonus(outcomes[rows], scenarios[rows], delta, nu, probes[rows])
        bonus += group_bonus
        groups.append(group)
    return bonus, groups


def per_scenario_advantages(rewards: Sequence[float], scenarios: Sequence[str], group_size: int) -> list[float]:
    """(ours, an option) Advantages centred on each question's A mean and, apart, its B mean, scaled by the
    std of the whole group: (reward - scenario mean) / (group std + 1e-4).

    Why the whole group's std: scaled by A's own std, a bonus added to every correct A rollout would only
    multiply A's rewards by (1 + delta) around their mean and cancel out (the same advantages for any delta).
    Against the group's std the bonus still widens A's advantages relative to B's."""
    import statistics

    advantages = [0.0] * len(rewards)
    for start in range(0, len(rewards), group_size):
        group = [rewards[i] for i in range(start, start + group_size)]
        spread = statistics.stdev(group) if len(group) > 1 else 0.0  # TRL's nanstd is the sample std
        for scenario in (FULL, PARTIAL):
            rows = [i for i in range(start, start + group_size) if scenarios[i] == scenario]
            if not rows:
                continue
            mean = sum(rewards[i] for i in rows) / len(rows)
            for i in rows:
                advantages[i] = (rewards[i] - mean) / (spread + 1e-4)
    return advantages
