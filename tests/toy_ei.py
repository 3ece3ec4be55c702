"""A toy EI dataset a tiny model can learn in seconds: fixed yes/no facts about animals, with probes."""

from __future__ import annotations

import json
from pathlib import Path

ANIMALS = ["cat", "dog", "cow", "owl", "fox", "bee", "eel", "elk"]
FRIENDLY = {"cat": "yes", "dog": "yes", "cow": "yes", "owl": "no", "fox": "no", "bee": "no", "eel": "no", "elk": "yes"}
SMALL = {"cat": "yes", "dog": "no", "cow": "no", "owl": "yes", "fox": "yes", "bee": "yes", "eel": "yes", "elk": "no"}
FLIES = {"cat": "no", "dog": "no", "cow": "no", "owl": "yes", "fox": "no", "bee": "yes", "eel": "no", "elk": "no"}


def _probe(animal: str, rule: str, question: str, answer: str) -> dict:
    return {"rule": rule, "rule_name": rule, "id": f"{animal}#{rule}", "question": question, "choices": [],
            "answer": answer, "answer_type": "yes_no", "teacher_response": f"The answer is {answer}.",
            "student_solved": None}


def toy_records() -> list[dict]:
    return [{
        "schema_version": 1, "id": animal, "question": f"Is the {animal} friendly?", "answer": FRIENDLY[animal],
        "answer_type": "yes_no", "source": "toy", "choices": None, "location": "",
        "teacher_response": f"The answer is {FRIENDLY[animal]}.",
        "probes": [_probe(animal, "R1", f"Is the {animal} small?", SMALL[animal]),
                   _probe(animal, "R2", f"Does the {animal} fly?", FLIES[animal]),
                   _probe(animal, "R3", f"Is the {animal} an animal?", "yes")],
        "difficulty": {"consistent": 3, "solved": 0},
    } for animal in ANIMALS]


def write_toy_ei(path: Path) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in toy_records()))
    return path


def write_all_yes_ei(path: Path) -> Path:
    """The same questions, every answer 'yes': a shift a student SFT'd on the mixed facts must learn by RL."""
    records = toy_records()
    for record in records:
        record["answer"], record["teacher_response"] = "yes", "The answer is yes."
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path
