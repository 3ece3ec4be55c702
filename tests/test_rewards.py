"""The outcome reward and the DSU bonus against hand-computed tables (paper Eq. 5-6)."""

from __future__ import annotations

import statistics

import pytest

from exgrpo.rl.rewards import FULL, PARTIAL, dsu_bonus, outcome_reward, per_scenario_advantages

A, B = FULL, PARTIAL


@pytest.mark.parametrize(("outcomes", "scenarios", "nu", "bonus", "p_full", "p_partial", "fired"), [
    # P_full 0.75 > 1.0 x P_partial 0.25: every correct A rollout gets +0.5, B and wrong A get nothing
    ([1, 1, 0, 1, 0, 1, 0, 0], [A, A, A, A, B, B, B, B], 1.0, [.5, .5, 0, .5, 0, 0, 0, 0], .75, .25, True),
    # equal success with and without the full dialogue: no bonus
    ([1, 0, 1, 0], [A, A, B, B], 1.0, [0, 0, 0, 0], .5, .5, False),
    # nu > 1 demands a clear margin: 0.75 > 2 x 0.5 is false
    ([1, 1, 1, 0, 1, 0], [A, A, A, A, B, B], 2.0, [0] * 6, .75, .5, False),
    # nu > 1 with a margin: 1.0 > 1.5 x 0.5
    ([1, 1, 1, 0], [A, A, B, B], 1.5, [.5, .5, 0, 0], 1.0, .5, True),
    # P_partial = 0: any correct A rollout fires the bonus
    ([0, 1, 0, 0], [A, A, B, B], 1.0, [0, .5, 0, 0], .5, 0.0, True),
    # all correct: P_full = P_partial = 1, no bonus
    ([1, 1, 1, 1], [A, A, B, B], 1.0, [0, 0, 0, 0], 1.0, 1.0, False),
    # none correct: nothing to reward
    ([0, 0, 0, 0], [A, A, B, B], 1.0, [0, 0, 0, 0], 0.0, 0.0, False),
    # (ours) no B rollouts: no comparison, no bonus
    ([1, 1], [A, A], 1.0, [0, 0], 1.0, 0.0, False),
])
def test_dsu_bonus_matches_hand_computed_values(outcomes, scenarios, nu, bonus, p_full, p_partial, fired) -> None:
    values, group = dsu_bonus(outcomes, scenarios, delta=0.5, nu=nu)
    assert values == pytest.approx(bonus)
    assert (group.p_full, group.p_partial, group.fired) == (pytest.approx(p_full), pytest.approx(p_partial), fired)


def test_dsu_bonus_fires_only_when_a_was_asked_more_probes_than_b() -> None:
    outcomes, scenarios = [1, 1, 0, 0], [A, A, B, B]
    _, longer = dsu_bonus(outcomes, scenarios, delta=0.5, nu=1.0, probes=[2, 2, 1, 1])
    assert longer.fired
    # A question with no probes left: A and B are the same dialogue, P_full > P_partial is sampling noise.
    bonus, same = dsu_bonus(outcomes, scenarios, delta=0.5, nu=1.0, probes=[0, 0, 0, 0])
    assert not same.fired and bonus == [0, 0, 0, 0]


def test_per_scenario_advantages_keep_the_dsu_bonus_effective() -> None:
    outcomes, scenarios = [1, 1, 0, 1, 0, 1, 0, 0], [A, A, A, A, B, B, B, B]
    by_delta = []
    for delta in (0.0, 0.5, 2.0):
        bonus, group = dsu_bonus(outcomes, scenarios, delta=delta, nu=1.0)
        assert group.fired
        rewards = [o + b for o, b in zip(outcomes, bonus, strict=True)]
        by_delta.append(per_scenario_advantages(rewards, scenarios, group_size=8))
    # A larger bonus gives A's correct rollouts a larger advantage (it no longer cancels out) ...
    assert by_delta[0][0] < by_delta[1][0] < by_delta[2][0]
    # ... and B's advantages stay centred on B's own mean.
    assert all(sum(advantages[4:]) == pytest.approx(0.0, abs=1e-9) for advantages in by_delta)


def test_outcome_reward_reads_the_final_answer_with_the_checker() -> None:
    rewards = outcome_reward(prompts=[None] * 4, completions=[None] * 4,
                             final_answer=["The answer is yes.", "No.", "The answer is (B).", "I think 41"],
                             answer=["yes", "yes", "B", "42"], answer_type=["yes_no", "yes_no", "letter", "number"],
                             choices=[None, None, ["x", "y"], None])
    assert rewards == [1.0, 0.0, 1.0, 0.0]


def test_per_scenario_advantages_centre_a_and_b_apart_and_scale_by_the_group() -> None:
    rewards = [1.5, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    scenarios = [A, A, B, B, A, A, B, B]
    advantages = per_scenario_advantages(rewards, scenarios, group_size=4)
    spread = statistics.stdev([1.5, 0.0, 1.0, 1.0])  # the whole group's sample std, as TRL's nanstd
    assert advantages[:2] == pytest.approx([0.75 / (spread + 1e-4), -0.75 / (spread + 1e-4)])
    assert advantages[2:4] == [0.0, 0.0]  # B all equal: no signal, whatever A did
    assert advantages[4:6] == [0.0, 0.0] and advantages[6] == pytest.approx(-advantages[7]) and advantages[6] > 0


def test_dsu_column_scores_each_group_on_its_own() -> None:
    from exgrpo.rl.rewards import dsu_column

    outcomes = [1, 1, 0, 0] + [1, 0, 1, 1]
    scenarios = [FULL, FULL, PARTIAL, PARTIAL] * 2
    bonus, groups = dsu_column(outcomes, scenarios, [2, 2, 1, 1] * 2, group_size=4, delta=0.5, nu=1.0)
    assert bonus == [0.5, 0.5, 0.0, 0.0] + [0.0] * 4  # group 2: P_full 0.5 is not above P_partial 1.0
    assert [g.fired for g in groups] == [True, False] and groups[1].p_partial == 1.0
