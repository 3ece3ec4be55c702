"""A deterministic teacher behind the loopback OpenAI server, with a known fate for every rule.

- every 5th question: the teacher's rationale is wrong (dropped at stage 0)
- R7: the first probe reply is not JSON, the repair is valid (repaired)
- R8: never valid JSON (invalid after the repair rounds)
- R9: the teacher's answer to its own probe disagrees with the probe (mismatched)
- R10: after the probe dialogue the teacher answers the original question wrongly (inconsistent)
- a seeded (sampled) call of a question: the same answer in another wording per seed (Answer-Aug's extra rationales)
- the other rules: consistent
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.prompts import build_prompt
from exgrpo.data.schema import Example
from exgrpo.teachers.loopback_server import Reply, last_user_message

_KIND = {"R5": "letter", "R8": "letter", "R7": "yes_no", "R10": "yes_no"}  # the rules' answer types
_PROBE = re.compile(r"Probe (R\d+) for [0-9a-f]+: what is (\d+) plus (\d+)\?")


def _numbers(text: str) -> tuple[int, int]:
    digest = hashlib.sha256(text.encode()).digest()
    return digest[0] % 50, digest[1] % 50


class ScriptedTeacher:
    def __init__(self, examples: list[Example], delay: float = 0.0) -> None:
        self.golds = {build_prompt(e): e for e in examples}
        self.wrong = {build_prompt(e) for i, e in enumerate(examples) if i % 5 == 4}
        self.delay = delay

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        text = last_user_message(body)
        if text.startswith("Your reply was rejected"):
            original = messages[0]["content"]
            rule = re.search(r"\((R\d+)\): ", original).group(1)
            return Reply(self._probe_json(rule, original) if rule != "R8" else "still not json", delay=self.delay)
        if text.startswith("You write probing questions"):
            rule = re.search(r"\((R\d+)\): ", text).group(1)
            if rule in ("R7", "R8"):
                return Reply("Sure! Here is a probe: what is two plus two?", delay=self.delay)
            return Reply(self._probe_json(rule, text), delay=self.delay)
        probe = _PROBE.search(text)
        if probe:
            rule, a, b = probe.group(1), int(probe.group(2)), int(probe.group(3))
            total = a + b + (1 if rule == "R9" else 0)
            answer = {"letter": "(A)", "yes_no": "yes"}.get(_KIND.get(rule, "number"), str(total))
            return Reply(f"{a} + {b} = {total}. The answer is {answer}.", delay=self.delay)
        example = self.golds.get(text)
        if example is None:
            return Reply("I do not know this question.", delay=self.delay)
        dialogue_rule = _PROBE.search(messages[0]["content"]) if len(messages) == 3 else None
        wrong = text in self.wrong if dialogue_rule is None else dialogue_rule.group(1) == "R10"
        answer = wrong_answer(example) if wrong else example.answer
        wording = "" if body.get("seed") is None else f", take {body['seed']}"
        return Reply(f"Step by step reasoning{wording}. {final_answer_sentence(answer, example.answer_type)}",
                     delay=self.delay)

    @staticmethod
    def _probe_json(rule: str, prompt: str) -> str:
        a, b = _numbers(prompt)
        tag = hashlib.sha256(prompt.encode()).hexdigest()[:8]
        probe = {"probe": f"Probe {rule} for {tag}: what is {a} plus {b}?", "answer_type": _KIND.get(rule, "number"),
                 "choices": None, "answer": str(a + b)}
        if probe["answer_type"] == "letter":
            probe.update(choices=[str(a + b), str(a + b + 1), str(a + b + 2)], answer="A")
        elif probe["answer_type"] == "yes_no":
            probe.update(probe=f"{probe['probe']} Is it {a + b}?", answer="yes")
        return json.dumps(probe)


def wrong_answer(example: Example) -> str:
    if example.answer_type == "letter":
        return "B" if example.answer == "A" else "A"
    return str(int(example.answer) + 1)
