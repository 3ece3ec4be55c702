"""The ten EI rules as data, and the validation of the teacher's probe replies."""

from __future__ import annotations

import json

import pytest

from exgrpo.data.schema import AnswerType, Example
from exgrpo.inversion.rules import Rejection, all_rules, ei_rules, extract_json_object, parse_probe_reply

ORIGINAL = Example(id="q1", question="Tom has 3 apples and buys 4 more. How many apples has he?", answer="7",
                   answer_type=AnswerType.number, source="toy")


def reply(**fields: object) -> str:
    return json.dumps({"probe": "If Tom had 5 apples and bought 4 more, how many would he have?",
                       "answer_type": "number", "choices": None, "answer": "9", **fields})


def test_ten_rules_with_the_papers_named_ones() -> None:
    rules = all_rules()
    assert ei_rules() == [f"R{i}" for i in range(1, 11)]
    assert [rule for rule in rules if rule not in ei_rules()] == ["RP"]  # a baseline's augmentation
    assert rules["R1"].name == "counterfactual" and rules["R10"].name == "causal"
    assert all(len(rule.instruction) > 50 for rule in rules.values())
    assert rules["R5"].allowed_answer_types() == [AnswerType.letter]
    assert AnswerType.math not in rules["R1"].allowed_answer_types()


def test_a_valid_reply_becomes_a_checkable_example() -> None:
    probe = parse_probe_reply(reply(answer="1,009"), all_rules()["R1"], ORIGINAL)
    assert isinstance(probe, Example)
    assert (probe.id, probe.answer, probe.answer_type, probe.source) == ("q1#R1", "1009", AnswerType.number, "toy")


def test_json_is_found_inside_fences_and_prose() -> None:
    assert extract_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json_object('Here it is: {"a": {"b": 2}} Hope it helps.') == {"a": {"b": 2}}
    assert extract_json_object("no json here") == "reply contains no JSON object"
    assert extract_json_object('{"a": 1,}').startswith("reply is not valid JSON")
    assert extract_json_object("[1, 2]") == "reply contains no JSON object"


@pytest.mark.parametrize(("text", "rule", "reason"), [
    ("Sure, here is a probe: what is 2+2?", "R1", "reply contains no JSON object"),
    (reply(probe="short"), "R1", "'probe' is missing or shorter than 10 characters"),
    (reply(probe=ORIGINAL.question), "R1", "'probe' repeats the original question"),
    (reply(answer_type="essay"), "R1", "'answer_type' 'essay' is not one of"),
    (reply(answer_type="math"), "R1", "'answer_type' math is not allowed for R1"),
    (reply(), "R5", "'answer_type' number is not allowed for R5"),
    (reply(answer_type="letter", answer="A"), "R5", "a letter answer needs 'choices'"),
    (reply(answer_type="letter", choices=["x", "X"], answer="A"), "R5", "'choices' repeats an option"),
    (reply(answer_type="letter", choices=["x", "y"], answer="C"), "R5", "'answer' 'C' is not a valid letter answer"),
    (reply(answer_type="yes_no", answer="maybe"), "R7", "'answer': 'maybe' is not a yes/no value"),
    (reply(answer="nine"), "R1", "'answer' 'nine' is not a valid number answer"),
    (reply(answer=None), "R1", "'answer' is missing"),
    (reply(answer_type="text", answer="a very long answer that goes on and on for many words"), "R1",
     "a text answer must be at most 8 words"),
])
def test_invalid_replies_are_rejected_with_a_reason(text: str, rule: str, reason: str) -> None:
    result = parse_probe_reply(text, all_rules()[rule], ORIGINAL)
    assert isinstance(result, Rejection)
    assert result.reason.startswith(reason)


def test_typed_answers_are_canonicalised() -> None:
    yes = parse_probe_reply(reply(answer_type="yes_no", answer="True"), all_rules()["R7"], ORIGINAL)
    letter = parse_probe_reply(reply(answer_type="letter", choices=["3", "7", "9"], answer="(b)"), all_rules()["R5"],
                               ORIGINAL)
    label = parse_probe_reply(reply(answer_type="nli", answer="Entailment"), all_rules()["R2"], ORIGINAL)
    assert isinstance(yes, Example) and yes.answer == "yes"
    assert isinstance(letter, Example) and (letter.answer, letter.choices) == ("B", ("3", "7", "9"))
    assert isinstance(label, Example) and label.answer == "entailment"
