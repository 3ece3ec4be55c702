"""Accuracy with percentile-bootstrap confidence intervals.

Written with numpy rather than scipy.stats.bootstrap: the averages over datasets need each dataset
resampled on its own (a stratified bootstrap of a mean of means), a few vectorised lines here, and
scipy's default BCa interval is undefined (NaN) for the all-correct or all-wrong samples that small
evaluations produce. It would also be a dependency for this alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float  # in [0, 1]
    low: float
    high: float

    def as_percent(self) -> dict[str, float]:
        return {"value": round(100 * self.value, 2), "low": round(100 * self.low, 2), "high": round(100 * self.high, 2)}


def bootstrap_mean_of_means(samples: Sequence[Sequence[float]], resamples: int = 1000, seed: int = 0,
                            confidence: float = 0.95) -> Estimate:
    """Mean over groups of each group's mean, with a CI from resampling every group independently.

    With one group this is the usual bootstrap CI of an accuracy.
    """
    groups = [np.asarray(group, dtype=float) for group in samples]
    if not groups or any(group.size == 0 for group in groups):
        raise ValueError("every group needs at least one sample")
    rng = np.random.default_rng(seed)
    resampled_means = np.zeros(resamples)
    for group in groups:
        picks = rng.integers(0, group.size, size=(resamples, group.size))
        resampled_means += group[picks].mean(axis=1)
    resampled_means /= len(groups)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled_means, [tail, 100 - tail])
    value = float(np.mean([group.mean() for group in groups]))
    return Estimate(value=value, low=float(low), high=float(high))


def accuracy(correct: Sequence[bool], resamples: int = 1000, seed: int = 0) -> Estimate:
    return bootstrap_mean_of_means([correct], resamples=resamples, seed=seed)
