"""The study's statistics, fixed before its runs: a paired test per goal, Holm's correction over the secondary
goals, the minimum detectable difference of a design, and a seed-level interval beside the bootstrap one.

A goal compares two arms on the same questions: per question the difference of their verdicts (-1, 0, +1), per
dataset its mean, the goal's value the mean over datasets (as `exgrpo.evaluation.metrics.bootstrap_mean_of_means`,
whose percentile CI the page also prints). The test here is its normal approximation (hundreds of questions per
goal): the standard error of a mean of independent dataset means. The same standard error gives the minimum
detectable difference, so a design is sized with the number it is judged by.

Written with the standard library (statistics.NormalDist) and a table of ten t quantiles rather than scipy or
statsmodels: a dependency of tens of megabytes for Holm's six lines and ten constants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist, mean, stdev

ALPHA = 0.05
POWER = 0.8
# Two-sided 95 % quantiles of Student's t by degrees of freedom (seeds - 1); beyond the table, the normal's.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class PairedTest:
    """One goal's paired difference (percentage points), its standard error and two-sided p-value."""

    value: float
    se: float
    p: float
    questions: int

    def minimum_detectable(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """The smallest true difference (pp) this design detects with `power` at two-sided level `alpha`."""
        return minimum_detectable(self.se, alpha, power)


def paired_test(groups: Sequence[Sequence[float]]) -> PairedTest:
    """`groups`: per dataset, each question's difference of the two arms' verdicts (1 - 0 = +1, ...)."""
    if not groups or any(len(group) == 0 for group in groups):
        raise ValueError("every dataset needs at least one paired question")
    means = [mean(group) for group in groups]
    # Each dataset's mean has variance s^2 / n; the mean over datasets divides their sum by the count squared.
    variance = sum((stdev(group) ** 2 if len(group) > 1 else 0.0) / len(group) for group in groups) / len(groups) ** 2
    value, se = 100 * mean(means), 100 * math.sqrt(variance)
    p = 1.0 if se == 0 else 2 * (1 - NormalDist().cdf(abs(value) / se))
    if se == 0 and value != 0:
        p = 0.0  # every question moved the same way
    return PairedTest(value=value, se=se, p=p, questions=sum(len(group) for group in groups))


def minimum_detectable(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """(z_{1 - alpha/2} + z_{power}) x se: the difference a two-sided test at `alpha` finds with `power`."""
    normal = NormalDist()
    return (normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)) * se


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (a goal is met at family-wise level alpha when its adjusted p < alpha):
    the i-th smallest p times (m - i + 1), made monotone, capped at 1."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def seed_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean and 95 % t-interval of one number per seed (a goal's difference, each seed alone): the spread the
    bootstrap over questions does not see. None with fewer than two seeds."""
    if len(values) < 2:
        return None
    centre, half = mean(values), T_975.get(len(values) - 1, NormalDist().inv_cdf(0.975)) * stdev(values)
    half /= math.sqrt(len(values))
    return centre, centre - half, centre + half


def excluded_gains(high: float) -> str:
    """What a CI that does not resolve a difference still says: gains above its upper end are ruled out."""
    return f"gains above {high:+.1f} points are excluded" if high > 0 else "no gain is compatible with the data"
