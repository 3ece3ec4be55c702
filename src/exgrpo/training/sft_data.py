"""What a training stage reads from the EI dataset: a fraction of its questions, and SFT examples in the
method's format or in a baseline's.

Every baseline of the study is this pipeline with another configuration, reading the same `exgrpo probe`
output (teacher rationales + probes of the chosen rules):

- standard (the method's EI-SFT, and SKD with include_probes=false): Q -> the teacher's rationale, each kept
  probe -> the teacher's answer, and probe dialogues in the format ExGRPO rolls out. With `probe_rules`
  [RP] it is the Rephrase-Question baseline, with [R6] (analogy: a new question of the same kind) the
  Question-Aug baseline; with extra_rationales (probe with answer_samples) the Answer-Aug baseline.
- step_by_step (Distilling step-by-step, Hsieh et al. 2023): multi-task; the prompt -> the answer alone
  (the label task, what evaluation asks), "[rationale]" + prompt -> the teacher's rationale.
- revthink (RevThink, Chen et al. 2025): multi-task over forward and backward reasoning with R4 probes:
  Q -> forward rationale, "[backward question]" + Q -> the backward question, backward question -> its
  rationale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from exgrpo.config import SFTStageConfig, TrainingRun
from exgrpo.data.answers import final_answer_sentence
from exgrpo.errors import ConfigError
from exgrpo.inversion.rules import ei_rules
from exgrpo.training.dialogues import EIQuestion, load_ei_questions, sft_conversations

RATIONALE_TASK = "[rationale] "
BACKWARD_QUESTION_TASK = "[backward question] "


def probe_rule(probe_id: str) -> str:
    """The rule a probe was made by: probe ids are '<question id>#<rule id>'."""
    return probe_id.rsplit("#", 1)[-1]


def select_fraction(questions: Sequence[EIQuestion], fraction: float) -> list[EIQuestion]:
    """The first round(fraction * n) questions in the order of a hash of their ids: fixed subsets, nested
    (0.1 in 0.25 in 0.5 in 1.0), independent of the training seed, so data-efficiency curves compare like
    with like."""
    if fraction >= 1.0:
        return list(questions)
    ranked = sorted(questions, key=lambda q: hashlib.sha256(q.example.id.encode()).hexdigest())
    return ranked[: max(1, round(fraction * len(questions)))]


def training_questions(config: TrainingRun) -> list[EIQuestion]:
    """The EI questions a stage trains on: its fraction, with the probes of its rules."""
    questions = select_fraction(load_ei_questions(config.ei_path()), config.data_fraction)
    return keep_probe_rules(questions, config.probe_rules)


def keep_probe_rules(questions: Sequence[EIQuestion], rules: Sequence[str] | None) -> list[EIQuestion]:
    """Only the probes of `rules` (default: the ten EI rules, never a baseline's augmentation)."""
    rules = ei_rules() if rules is None else rules
    return [replace(q, probes=tuple(p for p in q.probes if probe_rule(p[0].id) in rules)) for q in questions]


def _turn(user: str, assistant: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def step_by_step_examples(questions: Sequence[EIQuestion]) -> list[dict[str, Any]]:
    examples = []
    for question in questions:
        label = final_answer_sentence(question.example.answer, question.example.answer_type)
        examples += [_turn(question.prompt, label), _turn(RATIONALE_TASK + question.prompt, question.teacher_response)]
    return examples


def revthink_examples(questions: Sequence[EIQuestion]) -> list[dict[str, Any]]:
    examples = []
    for question in questions:
        examples.append(_turn(question.prompt, question.teacher_response))
        backward_probes = [(p, r) for p, r in question.probes if probe_rule(p.id) == "R4"]
        for probe, response in backward_probes[:1]:  # the backward question: the R4 (reverse reasoning) probe
            backward = EIQuestion(probe, response, ())
            examples += [_turn(BACKWARD_QUESTION_TASK + question.prompt, probe.question),
                         _turn(backward.prompt, response)]
    return examples


def sft_examples(config: SFTStageConfig) -> list[dict[str, Any]]:
    """The SFT stage's examples (TRL conversational format) for the configured format."""
    questions = training_questions(config)
    if config.format == "step_by_step":
        return step_by_step_examples(questions)
    if config.format == "revthink":
        if not any(probe_rule(p.id) == "R4" for q in questions for p, _ in q.probes):
            raise ConfigError(f"{config.ei_path()}: the revthink format needs R4 (reverse reasoning) probes; "
                              "probe with rules: [R4] and set probe_rules: [R4]")
        return revthink_examples(questions)
    return sft_conversations(questions, config.include_probes, config.dialogues_per_question, config.dialogue_probes,
                             seed=config.seed, extra_rationales=config.extra_rationales)
