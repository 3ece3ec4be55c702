"""The student's side of a run, in tokens and (given a throughput) hours: the difficulty filter, SFT, the RL
stage and evaluation.

Lengths come from the probe forecast (teacher tokens; the student's tokenizer is taken to count alike, and a
student after SFT to answer about as long as its teacher, never beyond its max_new_tokens). SFT is counted on
the EI dataset itself once it exists, else from the forecast's expected questions and probes. Every figure is
for one process: under accelerate with N processes the wall time divides by about N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from exgrpo.config import DistillStageConfig, SFTStageConfig, StudentThroughput, TrainConfig
from exgrpo.runner.estimate.teacher_calls import ProbeForecast
from exgrpo.runner.estimate.tokens import TokenCounter
from exgrpo.training.sft_data import sft_examples


@dataclass
class StudentLoad:
    """One stage's student work: `tokens` are what `throughput` (a StudentThroughput field) is measured in."""

    stage: str
    steps: int | None
    tokens: float
    generated: float
    throughput: str
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Lengths:
    """Mean teacher tokens of a question prompt and its rationale, a probe prompt and its answer."""

    question: float
    rationale: float
    probe: float
    probe_answer: float
    probes_per_question: float  # kept probes of a kept question

    @classmethod
    def of(cls, forecast: ProbeForecast) -> Lengths:
        """In counted tokens (the teacher's counts undo the calibration): the student has its own tokenizer."""
        per_question = forecast.consistent_probes / forecast.kept_questions if forecast.kept_questions else 0.0
        prompts, replies, scale = forecast.prompt_tokens, forecast.completion_tokens, 1 / forecast.calibration
        return cls(prompts["cot"] * scale, replies["cot"] * scale, prompts["probe_answer"] * scale,
                   replies["probe_answer"] * scale, per_question)


def difficulty_load(forecast: ProbeForecast, max_new_tokens: int) -> StudentLoad:
    lengths = Lengths.of(forecast)
    generated = forecast.consistent_probes * min(max_new_tokens, lengths.probe_answer)
    return StudentLoad("probe: difficulty filter", None, generated, generated, "generate_tokens_per_s",
                       notes=["the base student answers every consistent probe (upper bound: every question kept)"])


def sft_load(config: SFTStageConfig, forecast: ProbeForecast, counter: TokenCounter) -> StudentLoad:
    if config.ei_path().exists():
        examples = sft_examples(config)
        tokens = float(sum(counter.messages(e["messages"]) for e in examples))
        count, notes = len(examples), [f"counted on {config.ei_path()} ({counter.method})"]
    else:
        count, tokens = _sft_size(config, forecast)
        extra = (f", {forecast.extra_rationales:.1f} extra rationales each (extra_rationales)"
                 if config.extra_rationales else "")
        notes = [f"from the expected EI data: {forecast.kept_questions * config.data_fraction:.0f} questions, "
                 f"{Lengths.of(forecast).probes_per_question:.1f} kept probes each{extra}"]
    batch = config.per_device_batch_size * config.gradient_accumulation_steps
    if config.max_steps > 0:  # steps, not epochs: the examples seen are steps x batch
        steps, tokens = config.max_steps, tokens * config.max_steps * batch / max(count, 1)
    else:
        steps, tokens = math.ceil(math.ceil(count / batch) * config.epochs), tokens * config.epochs
    return StudentLoad("sft", steps, tokens, 0.0, "sft_tokens_per_s", notes=notes)


def _sft_size(config: SFTStageConfig, forecast: ProbeForecast) -> tuple[int, float]:
    """(examples, tokens per epoch) of the EI data the forecast expects, in the stage's format."""
    n = Lengths.of(forecast)
    questions = forecast.kept_questions * config.data_fraction
    kept_rules = [r for r in forecast.rules if config.probe_rules is None or r in config.probe_rules]
    probes = n.probes_per_question * len(kept_rules) / max(1, len(forecast.rules))
    answered_question, answered_probe = n.question + n.rationale, n.probe + n.probe_answer
    if config.format == "step_by_step":
        per_question, examples = 2 * n.question + n.rationale + 10, 2.0
    elif config.format == "revthink":  # the R4 probe: the backward question and its answer
        per_question, examples = 2 * answered_question + answered_probe, 3.0
    else:  # the question, its teacher's other rationales (Answer-Aug), its probes, its probe dialogues
        dialogues = config.dialogues_per_question if probes and config.dialogue_probes else 0
        rationales = 1 + (forecast.extra_rationales if config.extra_rationales else 0.0)
        per_question = (rationales * answered_question + config.include_probes * probes * answered_probe
                        + dialogues * (min(config.dialogue_probes, probes) * answered_probe + answered_question))
        examples = rationales + config.include_probes * probes + dialogues
    return round(questions * examples), questions * per_question


def train_load(config: TrainConfig | DistillStageConfig, forecast: ProbeForecast) -> StudentLoad:
    n = Lengths.of(forecast)
    if isinstance(config, DistillStageConfig):
        final = min(config.max_new_tokens, n.rationale)
        samples = config.max_steps * config.per_device_batch_size * config.gradient_accumulation_steps
        generated = samples * final
        return StudentLoad("train (on-policy distillation)", config.max_steps, generated, generated,
                           "exgrpo_tokens_per_s", notes=["timed at the ExGRPO step rate (teacher-model passes "
                                                          "in place of the reference)"])
    # An auto turn budget is set above the teacher's answers: they run uncut.
    auto = config.max_new_tokens == "auto"
    answer = n.probe_answer if auto else min(config.max_new_tokens, n.probe_answer)
    final = n.rationale if auto else min(config.max_answer_tokens or config.max_new_tokens, n.rationale)
    settings = config.exgrpo
    questions = config.max_steps * config.questions_per_step * config.gradient_accumulation_steps
    full, partial = min(settings.k, n.probes_per_question), min(settings.partial_probes(), n.probes_per_question)
    generated = questions * (settings.rollouts_full * (full * answer + final)
                             + settings.rollouts_partial * (partial * answer + final))
    context = questions * (settings.rollouts_full * (full * n.probe + n.question)
                           + settings.rollouts_partial * (partial * n.probe + n.question))
    notes = [f"{questions} questions x {settings.rollouts_full}+{settings.rollouts_partial} rollouts; sequences "
             f"{context + generated:,.0f} tokens, scored by the policy" + (" and the reference" if config.beta else "")]
    return StudentLoad("train (ExGRPO)", config.max_steps, generated, generated, "exgrpo_tokens_per_s", notes=notes)


def eval_load(model: str, datasets: dict[str, tuple[str, list[Any]]], max_new_tokens: int,
              forecast: ProbeForecast | None) -> StudentLoad:
    questions = sum(len(examples) for _, examples in datasets.values())
    length = min(max_new_tokens, Lengths.of(forecast).rationale) if forecast is not None else max_new_tokens
    notes = [f"{questions} questions in {len(datasets)} datasets"
             + ("" if forecast is not None else f"; at most {max_new_tokens} tokens each")]
    generated = questions * length
    return StudentLoad(f"eval: {model}", None, generated, generated, "generate_tokens_per_s", notes=notes)


def time_loads(loads: list[StudentLoad], throughput: StudentThroughput) -> None:
    for load in loads:
        rate = getattr(throughput, load.throughput)
        load.seconds = load.tokens / rate if rate else None
