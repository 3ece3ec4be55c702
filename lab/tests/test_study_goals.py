"""The spec's goals: one primary goal at the 5 % level, the secondary goals Holm-adjusted, each with its seed-level
interval and minimum detectable difference; a goal met only when the bootstrap CI and the p-value agree."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from exgrpo.errors import ConfigError
from lab.study.goals import goal_line, judge, p_text, spec_goals
from lab.study.statistics import minimum_detectable
from lab.study.tables import Row, pooled_bootstrap

METHODS = {"ei_exgrpo": {}, "skd": {"train": None}, "revthink": {"train": None}}


def study(goals: Any) -> SimpleNamespace:
    return SimpleNamespace(methods=METHODS, common={"train": {"max_steps": 1}}, title=lambda method: method.upper(),
                           spec_path="study.yaml", goals_spec=goals)


class FakeResults:
    """[seed, question] correctness per (method, model) and dataset."""

    def __init__(self, correct: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
        self.correct = correct

    def seeds(self, *rows: Row) -> list[int]:
        return [0, 1, 2] if all((row.method, row.model) in self.correct for row in rows) else []

    def matrix(self, row: Row, seeds: list[int], dataset: str, keep: Any = None) -> np.ndarray:
        return self.correct[(row.method, row.model)][dataset][seeds]


def fake_page(correct: dict[tuple[str, str], dict[str, np.ndarray]]) -> SimpleNamespace:
    results = FakeResults(correct)

    def estimate(row: Row, datasets: list[str], minus: Row) -> Any:
        seeds = results.seeds(row, minus)
        return pooled_bootstrap([results.matrix(row, seeds, d) - results.matrix(minus, seeds, d) for d in datasets])

    return SimpleNamespace(results=results, estimate=estimate, averaged=lambda question_id: True,
                           held_out=["ood_a", "ood_b"], held_in=["test"], ei_test=[])


def answers(share: float, questions: int = 300, seed: int = 0) -> np.ndarray:
    """Three seeds' verdicts on the same questions: a question's correctness mostly shared across seeds."""
    rng = np.random.default_rng(seed)
    base = rng.random(questions) < share
    flips = rng.random((3, questions)) < 0.05
    return (base ^ flips).astype(float)


SPEC = {"primary": {"better": "ei_exgrpo", "worse": "skd", "splits": "held_out", "detect": 3},
        "secondary": [{"better": "ei_exgrpo", "worse": "revthink", "splits": "held_out"},
                      {"better": "ei_exgrpo:exgrpo", "worse": "ei_exgrpo:sft", "splits": ["ood_a"], "detect": 2}]}


def test_the_spec_names_one_primary_goal_and_its_secondary_goals() -> None:
    goals = spec_goals(study(SPEC))
    assert [goal.name for goal in goals] == ["primary", "secondary 1", "secondary 2"]
    assert goals[0].primary and not goals[1].primary
    assert goals[0].better == Row("EI_EXGRPO", "ei_exgrpo", "exgrpo") and goals[0].worse == Row("SKD", "skd", "sft")
    assert goals[2].worse == Row("EI_EXGRPO's SFT model", "ei_exgrpo", "sft") and goals[2].splits == ("ood_a",)
    assert goals[0].text == "EI_EXGRPO beats SKD on held-out" and goals[0].detect == 3.0
    assert goals[2].text == "EI_EXGRPO beats EI_EXGRPO's SFT model on ood_a"  # dataset names as they are
    assert spec_goals(study(None)) == []


@pytest.mark.parametrize(("goals", "message"), [
    ({"secondary": []}, "exactly one `primary`"),
    ({"primary": {"better": "ei_exgrpo", "worse": "gkd", "splits": "held_out"}}, "goals.primary.worse: no method 'gkd'"),
    ({"primary": {"better": "ei_exgrpo:final", "worse": "skd", "splits": "held_out"}}, "the model after ':'"),
    ({"primary": {"better": "ei_exgrpo", "worse": "skd"}}, "needs `better`, `worse` and `splits`"),
    ({"primary": {"better": "ei_exgrpo", "worse": "skd", "splits": "held_out", "power": 1}}, "unknown keys power"),
    ({"primary": {"better": "ei_exgrpo", "worse": "skd", "splits": ["held_out", "held_in"]}}, "goals.primary.splits"),
])
def test_a_malformed_goal_is_refused_naming_its_field(goals: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("`", ".")):
        spec_goals(study(goals))


def correct_with(ours: float, skd: float, revthink: float, sft: float) -> dict:
    return {("ei_exgrpo", "exgrpo"): {"ood_a": answers(ours, seed=1), "ood_b": answers(ours, seed=2)},
            ("skd", "sft"): {"ood_a": answers(skd, seed=3), "ood_b": answers(skd, seed=4)},
            ("revthink", "sft"): {"ood_a": answers(revthink, seed=5), "ood_b": answers(revthink, seed=6)},
            ("ei_exgrpo", "sft"): {"ood_a": answers(sft, seed=7), "ood_b": answers(sft, seed=8)}}


def test_goals_are_judged_with_holm_over_the_secondary_goals_only() -> None:
    page = fake_page(correct_with(ours=0.6, skd=0.3, revthink=0.55, sft=0.58))
    primary, versus_revthink, rl_step = judge(page, spec_goals(study(SPEC)))
    assert primary.verdict == "met" and primary.p == primary.test.p < 1e-6  # unadjusted
    # Two secondary goals: the smaller p doubled, the larger kept (Holm), and never below the raw p.
    raw = sorted([versus_revthink.test.p, rl_step.test.p])
    adjusted = sorted([versus_revthink.p, rl_step.p])
    assert adjusted[0] == pytest.approx(min(1.0, 2 * raw[0])) and adjusted[1] == pytest.approx(max(adjusted[0], raw[1]))
    # The design's minimum detectable difference: a secondary goal's at alpha / 2.
    assert primary.mdd == pytest.approx(minimum_detectable(primary.test.se))
    assert rl_step.mdd == pytest.approx(minimum_detectable(rl_step.test.se, alpha=0.025))
    # The seed-level interval is around the mean of each seed's difference.
    centre, low, high = primary.seed_ci
    assert low < centre < high and centre == pytest.approx(primary.test.value, abs=1e-9)


def test_a_goal_line_says_what_an_unresolved_ci_rules_out_and_whether_the_design_is_powered() -> None:
    correct = correct_with(ours=0.5, skd=0.5, revthink=0.5, sft=0.5)
    ours = correct[("ei_exgrpo", "exgrpo")]
    # SKD: our answers with 10 questions per split fixed and 9 broken: a difference of a fraction of a point.
    correct[("skd", "sft")] = {name: np.where(np.arange(300) < 10, 1.0, np.where(np.arange(300) >= 291, 0.0, m))
                               for name, m in ours.items()}
    primary = judge(fake_page(correct), spec_goals(study(SPEC)))[0]
    line = goal_line(primary, noise=1.5)
    assert line.startswith("- **not resolved** (primary goal): EI_EXGRPO beats SKD on held-out: paired difference ")
    assert "seed-level" in line and "600 questions" in line and "re-evaluation noise 1.5 points" in line
    assert f"gains above {100 * primary.estimate.high:+.1f} points are excluded" in line
    powered = "powered" if primary.mdd <= 3 else "**underpowered**"
    assert f"minimum detectable difference {primary.mdd:.1f} points (the design must detect 3: {powered})" in line


def test_a_p_value_too_small_to_print_is_a_bound_not_zero() -> None:
    assert (p_text(0.0), p_text(3e-7), p_text(0.0107)) == ("p < 0.0001", "p < 0.0001", "p = 0.0107")
    line = goal_line(judge(fake_page(correct_with(ours=0.9, skd=0.1, revthink=0.1, sft=0.5)), spec_goals(study(SPEC)))[1])
    assert "p < 0.0001 (unadjusted p < 0.0001)" in line and "p = 0 " not in line and "p = 0;" not in line


def test_a_goal_whose_runs_have_not_finished_is_not_measured_yet() -> None:
    correct = correct_with(ours=0.6, skd=0.3, revthink=0.5, sft=0.5)
    del correct[("skd", "sft")]
    results = judge(fake_page(correct), spec_goals(study(SPEC)))
    assert results[0].verdict == "not measured yet" and goal_line(results[0]).startswith("- **not measured yet**")
    assert results[1].verdict in ("met", "not resolved")  # the others are still judged, Holm over those measured


def test_the_power_table_projects_each_goals_mdd_to_the_planned_seeds() -> None:
    from lab.study.goals import power_lines

    results = judge(fake_page(correct_with(ours=0.6, skd=0.3, revthink=0.55, sft=0.58)), spec_goals(study(SPEC)))
    lines = power_lines(results, pilot_seeds=1, planned_seeds=4)
    primary, _, rl_step = results
    rows = [line for line in lines if line.startswith("| EI_EXGRPO")]
    assert rows[0].startswith("| EI_EXGRPO beats SKD on held-out (primary) | 600 | ")
    assert f"| {primary.mdd:.1f} | {primary.mdd / 2:.1f}-{primary.mdd:.1f} | 3 |" in rows[0]
    assert rows[0].endswith(f"| {math.ceil(600 * (primary.mdd / 3) ** 2):,} |")
    expected = ("powered" if rl_step.mdd <= 2 else "underpowered" if rl_step.mdd / 2 > 2 else "powered only if seeds help")
    assert f"| 2 | {expected} | " in rows[2] and rows[1].endswith("|  | — |  |")
