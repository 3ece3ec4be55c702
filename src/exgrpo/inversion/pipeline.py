"""`exgrpo probe`: Stage 0 and 1 of METHOD.md, read top to bottom in `run_probe`.

    questions -> teacher CoT (drop where the teacher is wrong)
              -> one probe per rule (JSON; invalid replies repaired up to json_retries times)
              -> the teacher answers each probe (drop where it disagrees with the probe's own answer)
              -> EI-consistency: the teacher re-answers Q after the probe dialogue (drop where wrong)
              -> difficulty: the base student answers the consistent probes (drop Q when none or all solved)
              -> the EI dataset + statistics

Each step is a "wave" of requests sent together (bounded concurrency inside the teacher), and every
answer is cached the moment it arrives. A rerun replays the waves from the cache and pays only for
what is missing; if calls still fail after the client's retries, the stage stops with a clear error
after the wave, having kept every answer it received (a teacher that cannot answer at all stops it at
once: TeacherUnavailable). A reply cut off at its budget is asked again with a larger one (up to
max_tokens_cap), then recorded as truncated; a request the server refuses as such (e.g. too long) is
recorded as failed with the reason. Neither counts as the teacher being wrong.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from exgrpo.config import ProbeConfig
from exgrpo.data.answers import check_example
from exgrpo.data.registry import DatasetRegistry
from exgrpo.errors import ConfigError, ExgrpoError
from exgrpo.inversion import requests as build
from exgrpo.inversion.output import record_calls, remove_outputs, write_outputs
from exgrpo.inversion.rules import Rejection, Rule, all_rules, parse_probe_reply
from exgrpo.inversion.state import ProbeOutcome, QuestionState
from exgrpo.teachers.base import ChatRequest, ChatResponse
from exgrpo.teachers.cache import CachedTeacher, CallStats, TeacherCache
from exgrpo.teachers.factory import ExtraTeachers, make_backend
from exgrpo.teachers.local import LocalTeacher

# (stage description, requests answered, requests in the wave, the teacher's running stats)
ProgressCallback = Callable[[str, int, int, CallStats], None]


class TeacherCallsFailed(ExgrpoError):
    """Some calls failed after all retries; everything received is cached, a rerun asks only for the rest."""


def unusable(response: ChatResponse) -> tuple[str, str] | None:
    """(status, reason) for an answer that cannot be judged: cut off at the cap, or refused by the server."""
    if response.rejected:
        return "failed", f"the server refused the request: {response.error}"
    if response.ok and response.truncated:
        return "truncated", "the reply was cut off at max_tokens_cap"
    return None


class Waves:
    """Sends waves of requests through a cached teacher, with progress and a stop on failed calls."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.on_progress = on_progress
        self.teachers: dict[str, CachedTeacher] = {}  # by role: teacher, probe_teacher, student

    def add(self, role: str, teacher: CachedTeacher) -> CachedTeacher:
        self.teachers[role] = teacher
        return teacher

    def ask(self, teacher: CachedTeacher, stage: str, requests: list[ChatRequest]) -> list[ChatResponse]:
        done_before = teacher.stats.calls + teacher.stats.cached + teacher.stats.errors
        longer_before = teacher.stats.longer  # replies asked again with a larger budget are requests too

        def changed(stats: CallStats) -> None:
            if self.on_progress is not None:
                self.on_progress(stage, stats.calls + stats.cached + stats.errors - done_before,
                                 len(requests) + stats.longer - longer_before, stats)

        teacher.on_change = changed
        changed(teacher.stats)
        responses = teacher.complete(requests)
        failed = [response for response in responses if not response.ok and not response.rejected]
        if failed:
            received = len(requests) - len(failed)
            reasons = Counter(str(response.error) for response in failed).most_common(3)
            kept = (f"The {received} answers received are cached in {teacher.cache.path}: rerun the same command to "
                    "ask only for the missing ones." if received else "No answer was received: rerun the same command "
                    "once the teacher answers.")
            raise TeacherCallsFailed(
                f"{len(failed)} of {len(requests)} calls to {teacher.model} failed in stage '{stage}' after retries ("
                + "; ".join(f"{count} x {reason}" for reason, count in reasons) + f"). {kept}")
        return responses


def run_probe(config: ProbeConfig, on_progress: ProgressCallback | None = None, registry: DatasetRegistry | None = None,
              extra_teachers: ExtraTeachers | None = None) -> dict[str, Any]:
    """The probe stage. `registry`: the datasets the config's names refer to (default: the built-ins; the config's
    own files are added); `extra_teachers`: teacher kinds built outside exgrpo.teachers (the world's exact one)."""
    started = time.time()
    registry = config.dataset_registry(registry)
    questions = [QuestionState(example) for name in config.datasets
                 for example in registry.load(name, config.split, limit=config.limit)]
    if not questions:
        raise ConfigError(f"no questions to probe: datasets {', '.join(config.datasets)}, split '{config.split}'"
                          + (f", limit {config.limit}" if config.limit else "") + " gave none")
    rules = [all_rules()[rule_id] for rule_id in config.rules]
    remove_outputs(config)  # from here on, a failed run leaves no earlier run's dataset looking current
    cache = TeacherCache(config.resolved_cache_path())
    waves = Waves(on_progress)
    cap = config.resolved_max_tokens_cap()
    teacher = waves.add("teacher", CachedTeacher(make_backend(config.teacher, config.datasets, extra_teachers), cache,
                                                 max_tokens_cap=cap))
    probe_teacher = (waves.add("probe_teacher", CachedTeacher(
        make_backend(config.probe_teacher, config.datasets, extra_teachers), cache, max_tokens_cap=cap))
                     if config.probe_teacher is not None else teacher)
    try:
        run_waves(config, questions, rules, waves, teacher, probe_teacher)
    finally:
        cumulative = record_calls(cache, waves.teachers)
    teacher_stats = {role: {"model": t.model, **t.stats.as_dict()} for role, t in waves.teachers.items()}
    return write_outputs(config, questions, rules, teacher_stats, seconds=time.time() - started, cumulative=cumulative)


def run_waves(config: ProbeConfig, questions: list[QuestionState], rules: list[Rule], waves: Waves,
              teacher: CachedTeacher, probe_teacher: CachedTeacher) -> None:
    # Stage 0: the teacher's rationale R_T; questions it gets wrong are dropped.
    responses = waves.ask(teacher, "teacher rationales", [build.cot_request(q.example, config.max_tokens) for q in questions])
    for question, response in zip(questions, responses, strict=True):
        question.teacher_response = response.text
        if fate := unusable(response):
            question.status, question.reason = f"teacher_{fate[0]}", fate[1]
        elif not check_example(response.text or "", question.example).correct:
            question.status = "teacher_wrong"
    answered = [q for q in questions if q.status == "pending"]
    if config.answer_samples:  # the Answer-Aug baseline: more rationales of the same questions, correct ones kept
        samples = [(q, s) for q in answered for s in range(1, config.answer_samples + 1)]
        responses = waves.ask(teacher, "teacher samples more rationales", [
            build.cot_request(q.example, config.max_tokens, sample, config.answer_temperature) for q, sample in samples])
        for (question, _), response in zip(samples, responses, strict=True):
            text = response.text or ""
            known = [question.teacher_response, *question.extra_responses]
            if not unusable(response) and check_example(text, question.example).correct and text not in known:
                question.extra_responses.append(text)

    # Stage 1a: one probe per rule, with bounded repair rounds for replies that fail validation.
    outcomes = [ProbeOutcome(q.example, rule) for q in answered for rule in rules]
    for question in answered:
        question.outcomes = [o for o in outcomes if o.question is question.example]
    generate_probes(waves, probe_teacher, outcomes, {q.example.id: q.teacher_response or "" for q in answered}, config)

    # Stage 1b: the teacher answers its own probes; a probe whose answer it contradicts is unreliable.
    valid = [o for o in outcomes if o.probe is not None and o.status == "valid"]
    responses = waves.ask(probe_teacher, "teacher answers probes", [
        build.probe_answer_request(o.probe, o.question, o.rule, config.max_tokens) for o in valid])  # type: ignore[arg-type]
    for outcome, response in zip(valid, responses, strict=True):
        outcome.teacher_response = response.text
        if fate := unusable(response):
            outcome.status, outcome.reason = fate
        else:
            outcome.status = "answered" if check_example(response.text or "", outcome.probe).correct else "mismatched"  # type: ignore[arg-type]

    # Filter 1, EI-consistency (Eq. 1): after the probe dialogue the teacher must still answer Q correctly.
    answered_probes = [o for o in outcomes if o.status == "answered"]
    if config.consistency_filter:
        responses = waves.ask(probe_teacher, "EI-consistency", [
            build.consistency_request(o.question, o.probe, o.teacher_response or "", o.rule, config.max_tokens)  # type: ignore[arg-type]
            for o in answered_probes])
        for outcome, response in zip(answered_probes, responses, strict=True):
            if fate := unusable(response):
                outcome.status, outcome.reason = fate
            else:
                outcome.status = ("consistent" if check_example(response.text or "", outcome.question).correct
                                  else "inconsistent")
    else:
        for outcome in answered_probes:
            outcome.status = "consistent"

    # Filter 2, difficulty (Eq. 2): the base student on the consistent probes of each question.
    if config.difficulty.enabled:
        student = waves.add("student", CachedTeacher(make_student(config), teacher.cache))
        consistent = [o for q in answered for o in q.consistent()]
        responses = waves.ask(student, "student answers probes", [
            build.probe_answer_request(o.probe, o.question, o.rule, config.difficulty.max_new_tokens,  # type: ignore[arg-type]
                                       purpose="student") for o in consistent])
        for outcome, response in zip(consistent, responses, strict=True):
            outcome.student_solved = check_example(response.text or "", outcome.probe).correct  # type: ignore[arg-type]
    for question in answered:
        question.status = difficulty_verdict(question, config)


def generate_probes(waves: Waves, teacher: CachedTeacher, outcomes: list[ProbeOutcome], rationales: dict[str, str],
                    config: ProbeConfig) -> None:
    pending = [(o, build.probe_request(o.question, rationales[o.question.id], o.rule, config.probe_max_tokens))
               for o in outcomes]
    for attempt in range(config.json_retries + 1):
        stage = "teacher writes probes" if attempt == 0 else f"teacher repairs probes (round {attempt})"
        responses = waves.ask(teacher, stage, [request for _, request in pending])
        retry = []
        for (outcome, request), response in zip(pending, responses, strict=True):
            outcome.repairs = attempt  # repair requests sent for this probe so far
            if fate := unusable(response):  # a cut-off reply is not repaired: the repair would be cut off too
                outcome.status, outcome.reason = fate
                continue
            parsed = parse_probe_reply(response.text or "", outcome.rule, outcome.question)
            if isinstance(parsed, Rejection):
                outcome.status, outcome.reason = "invalid", parsed.reason
                retry.append((outcome, build.repair_request(request, response.text or "", parsed.reason)))
            else:
                outcome.status, outcome.reason, outcome.probe = "valid", None, parsed
        pending = retry
        if not pending:
            break


def make_student(config: ProbeConfig):
    return LocalTeacher(config.difficulty.student or "", batch_size=config.difficulty.batch_size,
                        dtype=config.difficulty.dtype)


def difficulty_verdict(question: QuestionState, config: ProbeConfig) -> str:
    consistent = question.consistent()
    if not consistent:
        return "no_consistent_probes"
    if not config.difficulty.enabled:
        return "kept"
    solved = sum(bool(o.student_solved) for o in consistent)
    if solved == len(consistent):
        return "too_easy"
    if config.difficulty.max_solved is not None and solved > config.difficulty.max_solved:
        return "above_max_solved"
    return "kept"
