"""Rules the results page applies in code, never by hand: a goal's verdict from its paired CI, and whether a
run's outputs degenerated (a collapsed student is flagged by what it wrote, not annotated afterwards)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from exgrpo.evaluation.metrics import Estimate
from exgrpo.runner.layout import EvalFolder
from exgrpo.runner.results import read_predictions

COLLAPSE_SHARE = 0.8  # more than this share of one answer (or of no parseable answer) is a degenerate run


def verdict(difference: Estimate | None) -> str:
    """The verdict on "A beats B" from the paired 95% CI of A - B: met only when the CI excludes 0 in A's favour,
    failed when it excludes 0 against, else not resolved."""
    if difference is None:
        return "not measured yet"
    if difference.low > 0:
        return "met"
    if difference.high < 0:
        return "failed"
    return "not resolved"


def threshold_verdict(estimate: Estimate | None, threshold: float) -> str:
    """The verdict on "reaches `threshold`" from a 95% CI: met when the whole CI is at or above it, failed when it
    is wholly below, else not resolved."""
    if estimate is None:
        return "not measured yet"
    if estimate.low >= threshold:
        return "met"
    if estimate.high < threshold:
        return "failed"
    return "not resolved"


def degeneration(records: list[dict[str, Any]]) -> str | None:
    """Why a run's predictions on one dataset are degenerate, or None: more than 80 % of outputs without a
    parseable answer, or more than 80 % giving one answer where the gold answers are less uniform than that."""
    if not records:
        return None
    total = len(records)
    answers = [str(r["extracted"]).strip().lower() for r in records if r.get("extracted") not in (None, "")]
    if total - len(answers) > COLLAPSE_SHARE * total:
        return f"{(total - len(answers)) / total:.0%} of outputs have no parseable answer"
    if answers:
        answer, count = Counter(answers).most_common(1)[0]
        gold_share = Counter(str(r["gold"]).strip().lower() for r in records).most_common(1)[0][1] / total
        if count > COLLAPSE_SHARE * total and count / total > gold_share:
            return f"{count / total:.0%} of answers are {answer!r} (the most common gold answer: {gold_share:.0%})"
    return None


def degenerations(eval_folder: Path) -> dict[str, str]:
    """Every degenerate dataset of one evaluated model (its predictions folder): dataset -> why."""
    found = {}
    for path in sorted(EvalFolder(eval_folder).predictions_dir.glob("*.jsonl")):
        records = read_predictions(path)
        reason = degeneration(records)
        if reason is not None:
            found[path.stem] = reason
    return found
