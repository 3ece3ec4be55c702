"""The one normalised record every benchmark is loaded into."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class AnswerType(StrEnum):
    number = "number"  # integers, decimals, fractions, percentages
    letter = "letter"  # an option letter A, B, C, ...
    yes_no = "yes_no"
    nli = "nli"  # entailment / neutral / contradiction
    date = "date"  # MM/DD/YYYY
    math = "math"  # a LaTeX expression, compared with math-verify
    text = "text"  # a short free-text span


NLI_LABELS = ("entailment", "neutral", "contradiction")
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Example:
    """One benchmark question in the normalised schema.

    `choices` holds the option texts in display order (option i is letter OPTION_LETTERS[i]);
    `answer` is canonical for its type: a letter, "yes"/"no", an NLI label, MM/DD/YYYY, a number or LaTeX.
    `location` says where the record came from ("path:line") for error messages.
    """

    id: str
    question: str
    answer: str
    answer_type: AnswerType
    source: str
    choices: tuple[str, ...] | None = None
    location: str = ""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["answer_type"] = str(self.answer_type)
        record["choices"] = list(self.choices) if self.choices is not None else None
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Example:
        choices = record.get("choices")
        return cls(
            id=str(record["id"]),
            question=record["question"],
            answer=str(record["answer"]),
            answer_type=AnswerType(record["answer_type"]),
            source=record["source"],
            choices=tuple(choices) if choices is not None else None,
            location=record.get("location", ""),
        )
