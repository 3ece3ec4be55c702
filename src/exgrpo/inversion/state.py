"""What the probe stage knows of each question and each of its probes as they pass the filters: filled in by
the pipeline (inversion/pipeline.py), written out by inversion/output.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exgrpo.data.schema import Example
from exgrpo.inversion.rules import Rule


@dataclass
class ProbeOutcome:
    """One (question, rule) pair through the filters."""

    question: Example
    rule: Rule
    status: str = "pending"  # invalid | truncated | failed | mismatched | inconsistent | consistent
    reason: str | None = None
    repairs: int = 0
    probe: Example | None = None
    teacher_response: str | None = None
    student_solved: bool | None = None


@dataclass
class QuestionState:
    example: Example
    teacher_response: str | None = None
    # teacher_failed | teacher_truncated | teacher_wrong | no_consistent_probes | too_easy | above_max_solved | kept
    status: str = "pending"
    reason: str | None = None  # why, for teacher_failed / teacher_truncated
    extra_responses: list[str] = field(default_factory=list)  # Answer-Aug: other correct teacher rationales
    outcomes: list[ProbeOutcome] = field(default_factory=list)

    def consistent(self) -> list[ProbeOutcome]:
        return [o for o in self.outcomes if o.status == "consistent"]


def rejection_reasons(outcomes: list[ProbeOutcome]) -> Counter[str]:
    """Reasons for invalid probes, grouped by their first words (the details vary per reply)."""
    return Counter((o.reason or "").split(" (")[0].split(": ")[0] for o in outcomes if o.status == "invalid")
