"""Bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

from exgrpo.evaluation.metrics import accuracy, bootstrap_mean_of_means


def test_accuracy_interval_contains_the_value_and_has_the_right_width() -> None:
    correct = [True] * 60 + [False] * 40
    estimate = accuracy(correct, resamples=2000, seed=1)
    assert estimate.value == pytest.approx(0.6)
    assert estimate.low < 0.6 < estimate.high
    # Normal approximation: half-width 1.96 * sqrt(.6 * .4 / 100) = 0.096.
    assert (estimate.high - estimate.low) / 2 == pytest.approx(0.096, abs=0.015)


def test_degenerate_samples_give_a_point_interval_not_nan() -> None:
    assert accuracy([True] * 5).as_percent() == {"value": 100.0, "low": 100.0, "high": 100.0}
    assert accuracy([False] * 5).as_percent() == {"value": 0.0, "low": 0.0, "high": 0.0}


def test_mean_of_means_weights_datasets_equally_and_is_seeded() -> None:
    small, large = [1.0] * 10, [0.0] * 1000
    estimate = bootstrap_mean_of_means([small, large])
    assert estimate.value == pytest.approx(0.5)  # not 10/1010: each dataset counts once
    assert estimate == bootstrap_mean_of_means([small, large])
    rng = np.random.default_rng(0)
    a, b = rng.random(50) < 0.3, rng.random(80) < 0.7
    pooled = bootstrap_mean_of_means([a, b], resamples=3000)
    assert pooled.low < pooled.value < pooled.high


def test_empty_group_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        bootstrap_mean_of_means([[1.0], []])
