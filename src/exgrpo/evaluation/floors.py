"""Guessing floors: what a student scores without reasoning, to read every accuracy against.

- random: the expected accuracy of a uniformly random valid answer: 1 / options for multiple choice,
  1/2 for yes/no, 1/3 for NLI; 0 for open answers (numbers, dates, expressions), which have no finite set.
- majority: always giving the split's most common gold answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from exgrpo.data.schema import NLI_LABELS, AnswerType, Example


def random_answer_accuracy(example: Example) -> float:
    if example.choices:
        return 1 / len(example.choices)
    if example.answer_type == AnswerType.yes_no:
        return 1 / 2
    if example.answer_type == AnswerType.nli:
        return 1 / len(NLI_LABELS)
    return 0.0


def guessing_floors(examples: Sequence[Example]) -> dict[str, float]:
    """Both floors of a split, in percent."""
    if not examples:
        return {"random": 0.0, "majority": 0.0}
    random = sum(random_answer_accuracy(example) for example in examples) / len(examples)
    majority = Counter(example.answer.strip().lower() for example in examples).most_common(1)[0][1] / len(examples)
    return {"random": round(100 * random, 2), "majority": round(100 * majority, 2)}
