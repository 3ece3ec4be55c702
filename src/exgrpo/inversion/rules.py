"""The ten Explanatory Inversion rules as data (rules.yaml), and the validation of a teacher's probe.

A probe-generation reply must be one JSON object: {"probe": ..., "answer_type": ..., "choices": [...],
"answer": ...}. `parse_probe_reply` returns the probe as an `Example` (so the one answer checker can
score anyone's answer to it) or the reason it was rejected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from exgrpo.data.answers import canonical_answer, is_valid_gold
from exgrpo.data.schema import AnswerType, Example

PROBE_ANSWER_TYPES = [t for t in AnswerType if t is not AnswerType.math]  # short, checkable answers
MAX_TEXT_ANSWER_WORDS = 8


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    instruction: str
    answer_types: Literal["any"] | list[AnswerType] = "any"
    kind: Literal["ei", "augmentation"] = "ei"  # augmentation: a baseline's question rewrite, not an EI rule

    def allowed_answer_types(self) -> list[AnswerType]:
        return PROBE_ANSWER_TYPES if self.answer_types == "any" else list(self.answer_types)


@cache
def all_rules() -> dict[str, Rule]:
    text = resources.files("exgrpo.inversion").joinpath("rules.yaml").read_text(encoding="utf-8")
    return {rule["id"]: Rule.model_validate(rule) for rule in yaml.safe_load(text)}


def ei_rules() -> list[str]:
    """The ids of the ten Explanatory Inversion rules (the default of `exgrpo probe`)."""
    return [rule.id for rule in all_rules().values() if rule.kind == "ei"]


@dataclass(frozen=True)
class Rejection:
    reason: str


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def extract_json_object(text: str) -> dict | str:
    """The JSON object in a reply (code fences and text around it tolerated), or why there is none."""
    stripped = _FENCE.sub("", text.strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        return "reply contains no JSON object"
    try:
        value = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as error:
        return f"reply is not valid JSON: {error.msg} (column {error.colno})"
    return value if isinstance(value, dict) else "reply JSON is not an object"


def parse_probe_reply(text: str, rule: Rule, original: Example) -> Example | Rejection:
    """Validate a probe-generation reply; the probe comes back as an Example with id '<question id>#<rule>'."""
    reply = extract_json_object(text)
    if isinstance(reply, str):
        return Rejection(reply)
    probe = reply.get("probe")
    if not isinstance(probe, str) or len(probe.strip()) < 10:
        return Rejection("'probe' is missing or shorter than 10 characters")
    if probe.strip() == original.question.strip():
        return Rejection("'probe' repeats the original question")
    try:
        answer_type = AnswerType(str(reply.get("answer_type", "")).strip().lower())
    except ValueError:
        return Rejection(f"'answer_type' {reply.get('answer_type')!r} is not one of "
                         f"{', '.join(t.value for t in PROBE_ANSWER_TYPES)}")
    if answer_type not in rule.allowed_answer_types():
        return Rejection(f"'answer_type' {answer_type} is not allowed for {rule.id} "
                         f"({', '.join(t.value for t in rule.allowed_answer_types())})")
    choices = reply.get("choices") or None
    if answer_type is AnswerType.letter:
        if not isinstance(choices, list) or not 2 <= len(choices) <= 10 or not all(str(c).strip() for c in choices):
            return Rejection("a letter answer needs 'choices': a list of 2 to 10 options")
        if len({str(c).strip().lower() for c in choices}) != len(choices):
            return Rejection("'choices' repeats an option")
        choices = tuple(str(choice).strip() for choice in choices)
    else:
        choices = None
    raw_answer = reply.get("answer")
    if raw_answer is None or not str(raw_answer).strip():
        return Rejection("'answer' is missing")
    try:
        answer = canonical_answer(raw_answer, answer_type)
    except ValueError as error:
        return Rejection(f"'answer': {error}")
    if not is_valid_gold(answer, answer_type, choices):
        return Rejection(f"'answer' {raw_answer!r} is not a valid {answer_type} answer")
    if answer_type is AnswerType.text and len(answer.split()) > MAX_TEXT_ANSWER_WORDS:
        return Rejection(f"a text answer must be at most {MAX_TEXT_ANSWER_WORDS} words")
    return Example(id=f"{original.id}#{rule.id}", question=probe.strip(), answer=answer, answer_type=answer_type,
                   source=original.source, choices=choices, location=original.location)
