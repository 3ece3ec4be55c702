"""The study's goals as its spec names them before the runs: one primary goal, judged at the 5 % level, and
secondary goals judged after Holm's correction over them; each with its paired bootstrap CI, a seed-level
interval, its p-value, the minimum detectable difference of the design, and what an unresolved CI rules out.

In the spec:

    goals:
      primary: {better: ei_exgrpo, worse: skd, splits: held_out, detect: 3}
      secondary:
        - {better: ei_exgrpo, worse: revthink, splits: held_out}
        - {better: "ei_exgrpo:exgrpo", worse: "ei_exgrpo:sft", splits: held_out, detect: 2}

`better` / `worse`: a method (its own final model) or "method:model" (base, sft, exgrpo); `splits`: held_out (the
held-out splits of a format no arm trained on), held_in, ei_test, or a list of datasets; `detect`: the difference
(points) the design must be able to detect, printed against the minimum detectable difference; `text`: words for
the goal (default: "<better> beats <worse> on <splits>"). (Not `on`: YAML reads that key as true.)

A goal is **met** only when both its paired bootstrap CI excludes 0 in its favour and its p-value (for a secondary
goal, Holm-adjusted over all secondary goals) is below 0.05; **failed** when both say so against it; otherwise
**not resolved**, with the gains the CI still excludes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from exgrpo.errors import ConfigError
from exgrpo.evaluation.metrics import Estimate
from lab.study.statistics import (
    ALPHA,
    PairedTest,
    excluded_gains,
    holm,
    minimum_detectable,
    paired_test,
    seed_interval,
)
from lab.study.tables import Row, cell, method_row

MODELS = ("base", "sft", "exgrpo")
SPLIT_GROUPS = ("held_out", "held_in", "ei_test")


@dataclass(frozen=True)
class Goal:
    name: str  # "primary" or "secondary N"
    better: Row
    worse: Row
    splits: tuple[str, ...]  # a split group (SPLIT_GROUPS) alone, or dataset names
    text: str
    detect: float | None  # the difference (points) the design must detect, if the spec sets one
    primary: bool


@dataclass(frozen=True)
class GoalResult:
    goal: Goal
    estimate: Estimate | None  # paired bootstrap over seeds and questions (fractions)
    test: PairedTest | None
    seed_ci: tuple[float, float, float] | None  # points
    p: float | None  # the p-value the verdict uses: Holm-adjusted for a secondary goal
    mdd: float | None  # points, at the level the verdict uses (a secondary goal's strictest Holm level)

    @property
    def verdict(self) -> str:
        if self.estimate is None or self.p is None:
            return "not measured yet"
        if self.p < ALPHA and self.estimate.low > 0:
            return "met"
        if self.p < ALPHA and self.estimate.high < 0:
            return "failed"
        return "not resolved"


def _row(study: Any, reference: Any, where: str) -> Row:
    method, _, model = str(reference).partition(":")
    if method not in study.methods:
        raise ConfigError(f"{where}: no method {method!r} (methods: {', '.join(study.methods)})")
    if not model:
        return method_row(study, method)
    if model not in MODELS:
        raise ConfigError(f"{where}: {reference!r}: the model after ':' is one of {', '.join(MODELS)}")
    title = {"base": "the base student", "sft": f"{study.title(method)}'s SFT model"}.get(model, study.title(method))
    return Row(title, method, model)


def _goal(study: Any, entry: Any, name: str, where: str, primary: bool) -> Goal:
    if not isinstance(entry, dict) or not {"better", "worse", "splits"} <= set(entry):
        raise ConfigError(f"{where}: a goal needs `better`, `worse` and `splits` (and may set `detect`, `text`)")
    unknown = set(map(str, entry)) - {"better", "worse", "splits", "detect", "text"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    splits = entry["splits"]
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits or (len(splits) > 1 and any(group in SPLIT_GROUPS for group in splits)):
        raise ConfigError(f"{where}.splits: one of {', '.join(SPLIT_GROUPS)}, or a list of dataset names")
    better, worse = _row(study, entry["better"], f"{where}.better"), _row(study, entry["worse"], f"{where}.worse")
    words = splits[0].replace("_", "-") if splits[0] in SPLIT_GROUPS else ", ".join(splits)
    text = entry.get("text") or f"{better.title} beats {worse.title} on {words}"
    detect = entry.get("detect")
    return Goal(name, better, worse, splits, text, None if detect is None else float(detect), primary)


def spec_goals(study: Any) -> list[Goal]:
    """The spec's goals, primary first; [] when the spec names none (the page then keeps its built-in goals)."""
    spec = study.goals_spec
    if not spec:
        return []
    where = f"{study.spec_path}: goals"
    if not isinstance(spec, dict) or "primary" not in spec or set(spec) - {"primary", "secondary"}:
        raise ConfigError(f"{where}: needs exactly one `primary` goal and may list `secondary` goals")
    secondary = spec.get("secondary") or []
    if not isinstance(secondary, list):
        raise ConfigError(f"{where}.secondary: a list of goals")
    return [_goal(study, spec["primary"], "primary", f"{where}.primary", True)] + [
        _goal(study, entry, f"secondary {i + 1}", f"{where}.secondary[{i}]", False) for i, entry in enumerate(secondary)]


def goal_datasets(page: Any, goal: Goal) -> list[str]:
    if goal.splits[0] in SPLIT_GROUPS:
        return list(getattr(page, goal.splits[0]))
    return list(goal.splits)


def paired_differences(page: Any, goal: Goal) -> tuple[list[list[float]], list[float]]:
    """Per dataset, each question's difference of the two models' verdicts averaged over the seeds both finished;
    and per seed, the goal's difference (mean over the datasets of their question means), in points."""
    seeds = page.results.seeds(goal.better, goal.worse)
    groups, per_seed = [], np.zeros(len(seeds))
    datasets = goal_datasets(page, goal)
    for dataset in datasets:
        difference = (page.results.matrix(goal.better, seeds, dataset, page.averaged)
                      - page.results.matrix(goal.worse, seeds, dataset, page.averaged))
        if difference.size:
            groups.append(difference.mean(axis=0).tolist())
            per_seed += difference.mean(axis=1)
    return groups, (100 * per_seed / max(len(groups), 1)).tolist() if groups else []


def judge(page: Any, goals: list[Goal]) -> list[GoalResult]:
    """Every goal's numbers; the secondary goals' p-values Holm-adjusted over the secondary goals measured."""
    measured = {}
    for goal in goals:
        groups, per_seed = paired_differences(page, goal) if page.results.seeds(goal.better, goal.worse) else ([], [])
        test = paired_test(groups) if groups else None
        estimate = page.estimate(goal.better, goal_datasets(page, goal), minus=goal.worse) if groups else None
        measured[goal.name] = (goal, estimate, test, seed_interval(per_seed))
    secondary = [goal for goal in goals if not goal.primary]
    adjusted = holm({g.name: measured[g.name][2].p for g in secondary if measured[g.name][2] is not None})
    results = []
    for goal, estimate, test, seed_ci in measured.values():
        p = None if test is None else test.p if goal.primary else adjusted[goal.name]
        # A secondary goal's MDD at the strictest level Holm may hold it to (alpha over the number of them).
        level = ALPHA if goal.primary else ALPHA / max(len(secondary), 1)
        mdd = None if test is None else minimum_detectable(test.se, alpha=level)
        results.append(GoalResult(goal, estimate, test, seed_ci, p, mdd))
    return results


def power_note(result: GoalResult) -> str:
    if result.mdd is None:
        return ""
    note = f"minimum detectable difference {result.mdd:.1f} points"
    if result.goal.detect is not None:
        note += (f" (the design must detect {result.goal.detect:g}: "
                 + ("powered" if result.mdd <= result.goal.detect else "**underpowered**") + ")")
    return note


def p_text(p: float) -> str:
    """A p-value as the page prints it. Why not `p = 0`: the normal approximation's tail underflows to 0.0 far out,
    and no test of a few hundred questions supports more than an upper bound there."""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.3g}"


def goal_line(result: GoalResult, noise: float | None = None) -> str:
    """One goal as the page prints it."""
    goal = result.goal
    kind = "primary goal" if goal.primary else "secondary goal, Holm-adjusted"
    if result.test is None:
        return f"- **not measured yet** ({kind}): {goal.text}."
    parts = [f"paired difference {cell(result.estimate)} points (bootstrap over seeds and questions)"]
    if result.seed_ci is not None:
        centre, low, high = result.seed_ci
        parts.append(f"seed-level {centre:+.1f} [{low:+.1f}, {high:+.1f}]")
    parts.append(p_text(result.p) + ("" if goal.primary else f" (unadjusted {p_text(result.test.p)})"))
    parts.append(f"{result.test.questions} questions")
    parts.append(power_note(result))
    if noise is not None:
        parts.append(f"re-evaluation noise {noise:.1f} points")
    if result.verdict == "not resolved" and result.estimate is not None:
        parts.append(excluded_gains(100 * result.estimate.high))
    return f"- **{result.verdict}** ({kind}): {goal.text}: " + "; ".join(p for p in parts if p) + "."


RULE = ("The goals were fixed in the spec before the runs: one primary goal, judged at the 5 % level, and secondary "
        "goals judged after Holm's correction over them. A goal is **met** only when its paired 95 % bootstrap CI "
        "excludes 0 in its favour and its p-value (Holm-adjusted for a secondary goal; a normal approximation of "
        "the paired mean of dataset means) is below 0.05, **failed** when both say so against it, else **not "
        "resolved** (then the page says which gains the CI excludes). Beside each: the seed-level 95 % t-interval "
        "(one difference per seed), and the minimum detectable difference at 80 % power of this design (a "
        "secondary goal's at its strictest Holm level, 0.05 over their number) (lab/study/goals.py).")


# How a paired standard error shrinks from 1 to 3 seeds on the same questions, measured on the second study's
# record (lab/records/study-smollm2: 600 held-out questions, 4 goals): 0.44-0.69 times, not 1/sqrt(3) = 0.58 at
# most: a question's difficulty stays with it across seeds. The projection spans "all training noise" (1/sqrt of
# the seeds) to "all question noise" (no gain from seeds).
def power_lines(results: list[GoalResult], pilot_seeds: int, planned_seeds: int) -> list[str]:
    """Each goal's minimum detectable difference on the pilot's seeds, and projected to the planned seeds, against
    what the design must detect: printed before the rest of the study runs."""
    lines = [f"Minimum detectable difference of each goal (80 % power; a secondary goal at 0.05 over their number), "
             f"from the paired spread of the pilot's {pilot_seeds} seed(s), and projected to {planned_seeds} seeds "
             "(between no gain from more seeds and the 1/sqrt(seeds) of pure training noise):", "",
             "The last column: the questions (at the pilot's mix of splits) that would bring the MDD down to what "
             "the goal must detect, without counting on more seeds (a standard error falls as 1/sqrt(questions)).", "",
             "| goal | questions | pilot value | MDD now | MDD projected | must detect | verdict on power | "
             "questions needed |", "|---|---|---|---|---|---|---|---|"]
    for result in results:
        if result.mdd is None:
            lines.append(f"| {result.goal.text} | | | not measured yet | | | |")
            continue
        best = result.mdd * (pilot_seeds / planned_seeds) ** 0.5
        detect = result.goal.detect
        power = ("—" if detect is None else "powered" if result.mdd <= detect else
                 "underpowered" if best > detect else "powered only if seeds help")
        questions = result.test.questions  # type: ignore[union-attr]
        needed = "" if detect is None else f"{math.ceil(questions * (result.mdd / detect) ** 2):,}"
        lines.append(f"| {result.goal.text} ({result.goal.name}) | {questions} | "
                     f"{result.test.value:+.1f} | {result.mdd:.1f} | {best:.1f}-{result.mdd:.1f} | "  # type: ignore[union-attr]
                     f"{'' if detect is None else f'{detect:g}'} | {power} | {needed} |")
    return lines


def pilot_power_lines(study: Any) -> list[str]:
    """`project`'s power table: the spec's goals judged on the seeds finished so far (the pilot)."""
    from pathlib import Path

    from lab.study.spec import make_models
    from lab.study.tables import Page

    declared = spec_goals(study)
    if not declared:
        return []
    make_models(study.run_config(study.first, study.seeds[0]), "probe")  # the page reads the first run's world
    from lab.study.page import main_rows

    page = Page(study, Path(study.report.get("page", "docs/results.md")))
    page.exclude_floor_families(main_rows(study))  # the averages the page's goals read
    results = judge(page, declared)
    pilot = max((len(page.results.seeds(r.goal.better, r.goal.worse)) for r in results), default=0)
    if pilot == 0:
        return ["", "Power: no goal has a finished pair of runs yet (the pilot)."]
    return ["", *power_lines(results, pilot, len(study.seeds))]
