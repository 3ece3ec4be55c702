"""The study's statistics on numbers worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lab.study.statistics import (  # noqa: E402
    excluded_gains,
    holm,
    minimum_detectable,
    paired_test,
    seed_interval,
)


def test_holm_multiplies_the_ith_smallest_p_by_the_goals_left_and_keeps_it_monotone() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adjusted == pytest.approx({"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    # The second study's headline: p = 0.031 as the smallest of seven goals is 0.217 after Holm, not met.
    assert holm({"headline": 0.031, **{f"g{i}": 0.5 for i in range(6)}})["headline"] == pytest.approx(0.217)
    assert holm({"x": 0.9, "y": 0.8})["x"] == 1.0  # capped


def test_a_paired_test_uses_each_datasets_standard_error() -> None:
    # 100 questions, 30 fixed and 10 broken: mean +0.2, sample sd sqrt((40 - 100 * 0.04) / 99) = 0.603
    test = paired_test([[1.0] * 30 + [-1.0] * 10 + [0.0] * 60])
    assert test.value == pytest.approx(20.0) and test.se == pytest.approx(6.030, abs=1e-3)
    assert test.p == pytest.approx(0.000911, abs=2e-5) and test.questions == 100
    # Two datasets: the mean of their means, the standard error of that mean.
    two = paired_test([[1.0] * 30 + [-1.0] * 10 + [0.0] * 60, [0.0] * 100])
    assert two.value == pytest.approx(10.0) and two.se == pytest.approx(3.015, abs=1e-3)
    assert paired_test([[0.0] * 50]).p == 1.0 and paired_test([[1.0] * 5]).p == 0.0


def test_the_minimum_detectable_difference_is_2_8_standard_errors_at_80_percent_power() -> None:
    assert minimum_detectable(1.0) == pytest.approx(1.95996 + 0.84162, abs=1e-4)
    assert paired_test([[1.0] * 30 + [-1.0] * 10 + [0.0] * 60]).minimum_detectable() == pytest.approx(16.90, abs=0.01)
    assert minimum_detectable(1.0, alpha=0.05 / 4) > minimum_detectable(1.0)  # a Holm-corrected goal needs more


def test_the_seed_interval_is_a_t_interval_over_seeds() -> None:
    centre, low, high = seed_interval([1.0, 2.0, 3.0])
    assert centre == 2.0 and high - centre == pytest.approx(4.303 * 1.0 / 3 ** 0.5, abs=1e-3)
    assert low == pytest.approx(2 * centre - high)
    assert seed_interval([1.0]) is None


def test_an_unresolved_difference_still_rules_out_gains_above_its_upper_end() -> None:
    assert excluded_gains(1.94) == "gains above +1.9 points are excluded"
    assert excluded_gains(-0.5) == "no gain is compatible with the data"
