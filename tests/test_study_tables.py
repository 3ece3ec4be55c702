"""The study's tables: the bootstrap pooled over seeds and questions, families from question ids."""

from __future__ import annotations

import numpy as np
import pytest

from exgrpo.study.tables import family, pooled_bootstrap


def test_pooled_bootstrap_of_all_correct_is_one_without_spread() -> None:
    estimate = pooled_bootstrap([np.ones((3, 5)), np.ones((3, 8))])
    assert (estimate.value, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


def test_pooled_value_is_the_mean_of_group_means() -> None:
    rng = np.random.default_rng(0)
    groups = [(rng.random((3, 4)) < 0.9).astype(float), (rng.random((3, 30)) < 0.2).astype(float)]
    estimate = pooled_bootstrap(groups)
    assert estimate.value == pytest.approx(np.mean([g.mean() for g in groups]))
    assert estimate.value != pytest.approx(np.concatenate(groups, axis=1).mean())  # not pooled by question
    assert estimate.low <= estimate.value <= estimate.high


def test_pooled_ci_widens_when_seeds_disagree() -> None:
    half = np.tile([1.0, 0.0], 20)
    agree = pooled_bootstrap([np.stack([half, half])])
    disagree = pooled_bootstrap([np.stack([np.ones(40), np.zeros(40)])])
    assert agree.value == disagree.value == 0.5
    for estimate in (agree, disagree):
        assert estimate.low <= estimate.value <= estimate.high
    assert disagree.high - disagree.low > agree.high - agree.low


def test_pooled_bootstrap_of_nothing_is_none() -> None:
    assert pooled_bootstrap([]) is None
    assert pooled_bootstrap([np.zeros((2, 0))]) is None


def test_family_is_read_from_question_and_probe_ids() -> None:
    assert family("test-arith-0#R1") == "arith"
    assert family("ood_steps-date-3") == "date"
    assert family("cc74340c8a8111eeb582aed9ebe82ba1") == "" and family("svamp-0") == ""  # real benchmarks' ids


