"""What training stages read from the EI data: fractions, probe rules, and the baselines' SFT formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toy_ei import write_toy_ei

from exgrpo.config import SFTStageConfig
from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.prompts import build_prompt
from exgrpo.errors import ConfigError
from exgrpo.training.dialogues import load_ei_questions
from exgrpo.training.sft_data import (
    BACKWARD_QUESTION_TASK,
    RATIONALE_TASK,
    keep_probe_rules,
    revthink_examples,
    select_fraction,
    sft_examples,
    step_by_step_examples,
    training_questions,
)

RULES = ("R1", "R4", "RP")


def _probe(qid: str, rule: str) -> dict[str, Any]:
    return {"id": f"{qid}#{rule}", "question": f"{rule} probe of {qid}?", "answer": "yes", "answer_type": "yes_no",
            "choices": [], "teacher_response": f"{rule} reasoning for {qid}. The answer is yes."}


def write_ei(path: Path, n: int = 20, rules: tuple[str, ...] = RULES) -> Path:
    """n math questions, each with one probe per rule (ids '<question id>#<rule>')."""
    records = [{"schema_version": 1, "id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i),
                "answer_type": "math", "source": "toy", "choices": None, "location": "",
                "teacher_response": f"Adding {i} and {i} gives {2 * i}.", "probes": [_probe(f"q{i}", r) for r in rules]}
               for i in range(n)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.fixture
def ei(tmp_path: Path) -> Path:
    return write_ei(tmp_path / "ei.jsonl")


def rules_of(question) -> set[str]:
    return {probe.id.split("#")[1] for probe, _ in question.probes}


def test_fractions_are_fixed_nested_subsets_of_the_rounded_size(ei: Path) -> None:
    questions = load_ei_questions(ei)
    subsets = [{q.example.id for q in select_fraction(questions, f)} for f in (0.1, 0.25, 0.5, 1.0)]
    assert [len(s) for s in subsets] == [round(f * len(questions)) for f in (0.1, 0.25, 0.5, 1.0)]
    assert subsets[0] < subsets[1] < subsets[2] < subsets[3]
    assert {q.example.id for q in select_fraction(questions[::-1], 0.25)} == subsets[1]  # by id, not position
    assert len(select_fraction(questions, 0.001)) == 1


def test_probe_rules_default_to_the_ei_rules_without_augmentations(ei: Path) -> None:
    questions = load_ei_questions(ei)
    assert all(rules_of(q) == set(RULES) for q in questions)
    default = keep_probe_rules(questions, None)
    assert [q.example for q in default] == [q.example for q in questions]
    assert all(rules_of(q) == {"R1", "R4"} for q in default)  # RP (Rephrase-Question) only when named
    assert all(rules_of(q) == {"RP"} for q in keep_probe_rules(questions, ["RP"]))
    assert all(not q.probes for q in keep_probe_rules(questions, []))


def test_step_by_step_pairs_the_answer_alone_with_a_rationale_task(ei: Path) -> None:
    questions = load_ei_questions(ei)[:3]
    examples = step_by_step_examples(questions)
    assert len(examples) == 2 * len(questions)
    for question, label, rationale in zip(questions, examples[::2], examples[1::2], strict=True):
        answer = final_answer_sentence(question.example.answer, question.example.answer_type)
        assert label["messages"] == [{"role": "user", "content": question.prompt},
                                     {"role": "assistant", "content": answer}]
        assert rationale["messages"] == [{"role": "user", "content": RATIONALE_TASK + question.prompt},
                                         {"role": "assistant", "content": question.teacher_response}]


def test_revthink_adds_the_backward_question_and_its_answer(ei: Path) -> None:
    questions = keep_probe_rules(load_ei_questions(ei)[:2], ["R4"])
    examples = [e["messages"] for e in revthink_examples(questions)]
    assert len(examples) == 3 * len(questions)
    question, (probe, response) = questions[1], questions[1].probes[0]
    forward, ask_backward, backward = examples[3:6]
    assert forward == [{"role": "user", "content": question.prompt},
                       {"role": "assistant", "content": question.teacher_response}]
    assert ask_backward == [{"role": "user", "content": BACKWARD_QUESTION_TASK + question.prompt},
                            {"role": "assistant", "content": probe.question}]
    assert probe.id.endswith("#R4")
    assert backward == [{"role": "user", "content": build_prompt(probe)}, {"role": "assistant", "content": response}]
    assert len(revthink_examples(keep_probe_rules(questions, []))) == len(questions)  # no probe: forward only


def sft_config(ei: Path, **values: Any) -> SFTStageConfig:
    return SFTStageConfig(model="student", ei_data=ei, **values)


def test_sft_examples_follow_the_configured_format_and_fraction(ei: Path) -> None:
    n = len(load_ei_questions(ei))
    assert len(sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0))) == n
    assert len(sft_examples(sft_config(ei, dialogues_per_question=0))) == n * 3  # Q + the R1 and R4 probes
    assert len(sft_examples(sft_config(ei, format="step_by_step"))) == 2 * n
    assert len(sft_examples(sft_config(ei, format="step_by_step", data_fraction=0.5))) == 2 * round(n / 2)
    revthink = sft_examples(sft_config(ei, format="revthink", probe_rules=["R4"]))
    assert len(revthink) == 3 * n
    assert all(m["messages"][1]["content"].startswith("R4 probe") for m in revthink[1::3])


def test_revthink_without_backward_probes_is_a_config_error(tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")  # probes of R1, R2, R3 only
    with pytest.raises(ConfigError, match="R4"):
        sft_examples(sft_config(ei, format="revthink", probe_rules=["R4"]))


def test_answer_aug_trains_on_every_rationale_of_a_question(tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")
    records = [json.loads(line) for line in ei.read_text().splitlines()]
    for record in records:
        record["extra_responses"] = [f"Another way for {record['id']}. The answer is {record['answer']}."]
    ei.write_text("".join(json.dumps(record) + "\n" for record in records))
    plain = sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0))
    augmented = sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0, extra_rationales=True))
    assert len(augmented) == 2 * len(plain) == 2 * len(records)
    extra = [e["messages"] for e in augmented if e["messages"][1]["content"].startswith("Another way")]
    assert [m[0] for m in extra] == [m["messages"][0] for m in plain]  # the same question, another rationale


def test_revthink_takes_only_reverse_reasoning_probes_as_backward_questions(ei: Path, tmp_path: Path) -> None:
    examples = sft_examples(sft_config(ei, format="revthink"))  # default rules: R1 and R4 probes are kept
    backward = [e["messages"][1]["content"] for e in examples
                if e["messages"][0]["content"].startswith(BACKWARD_QUESTION_TASK)]
    assert backward and all(text.startswith("R4 probe") for text in backward)
    with pytest.raises(ConfigError, match="R4"):  # R1-R3 probes are no backward questions
        sft_examples(sft_config(write_toy_ei(tmp_path / "toy.jsonl"), format="revthink"))


def test_training_questions_take_the_fraction_then_the_rules(ei: Path) -> None:
    config = sft_config(ei, data_fraction=0.25, probe_rules=["RP"])
    questions = training_questions(config)
    expected = select_fraction(load_ei_questions(ei), 0.25)
    assert [q.example.id for q in questions] == [q.example.id for q in expected]
    assert all(rules_of(q) == {"RP"} for q in questions)


