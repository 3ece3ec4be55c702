"""What the probe stage will ask its teachers, before it asks: a dry replay through the cache, then an
expectation for what the cache cannot tell.

The replay runs the stage's own waves (`run_waves`) with a backend that sends nothing: every answer on disk
is used as in a real run, so what a rerun would pay is exactly what is missing, and each request the cache
lacks is recorded and refused, which ends its chain. What would follow a missing answer is an expectation
from the pass rates measured on the answers the cache holds (per question: the teacher is right; per rule:
the probe is valid at the first try, after a repair, the teacher agrees with its probe, stays consistent),
or 1 where nothing measures a rate, said as an assumption. A pilot run (`probe.limit`) therefore turns the
guesses into measurements. Tokens: prompts of the recorded requests are counted (tokens.py) and scaled to the
server's own counts on the cached requests; replies, and prompts of requests not yet built, take the mean
lengths of the cached ones of their kind, or the config's assumed lengths.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from exgrpo.config import EstimateConfig, ProbeConfig
from exgrpo.data.registry import DatasetRegistry
from exgrpo.data.schema import Example
from exgrpo.inversion import requests as build
from exgrpo.inversion.pipeline import QuestionState, Waves, run_waves
from exgrpo.inversion.rules import Rule, all_rules
from exgrpo.runner.estimate.tokens import TokenCounter
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback
from exgrpo.teachers.cache import CachedTeacher, TeacherCache
from exgrpo.teachers.factory import ExtraTeachers, teacher_identity

NOT_CACHED = "not in the teacher cache (dry run)"
SAMPLE = 200  # questions whose prompts are rendered to size the requests no cached answer lets us build
PURPOSES = ["cot", "sample", "probe", "repair", "probe_answer", "consistency"]
Expected = dict[str, float]  # purpose -> expected number of requests


class DryBackend:
    """Sends nothing: each request reaching it is one the cache lacks, recorded and refused."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.missing: list[ChatRequest] = []

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        for index, request in enumerate(requests):
            self.missing.append(request)
            on_result(index, ChatResponse(None, error=NOT_CACHED, rejected=True))


class ReplayedTeacher(CachedTeacher):
    """The cached teacher of a real run, keeping the requests the cache answered (their lengths are measured)."""

    def __init__(self, backend: DryBackend, cache: TeacherCache, max_tokens_cap: int) -> None:
        super().__init__(backend, cache, max_tokens_cap=max_tokens_cap)
        self.dry = backend
        self.answered: list[tuple[ChatRequest, ChatResponse]] = []

    def _complete_once(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        responses = super()._complete_once(requests)
        self.answered += [(request, response) for request, response in zip(requests, responses, strict=True)
                          if response.cached]
        return responses


def purpose(request: ChatRequest) -> str:
    meta = request.meta
    if meta.get("purpose") == "probe" and meta.get("attempt"):
        return "repair"
    if meta.get("purpose") == "cot" and meta.get("sample"):
        return "sample"
    return str(meta.get("purpose"))


@dataclass
class Row:
    """One kind of request to one model: how many the run makes, how many the cache answers, what the rest cost."""

    requests: float = 0.0
    cached: int = 0
    to_pay: float = 0.0
    prompt_tokens: float = 0.0  # of the requests to pay
    completion_tokens: float = 0.0


@dataclass
class Rate:
    passed: int = 0
    judged: int = 0

    def add(self, passed: bool) -> None:
        self.passed += passed
        self.judged += 1


@dataclass
class ProbeForecast:
    """The probe stage's teacher bill and what the stages after it will get."""

    rows: dict[str, dict[str, Row]]  # model -> purpose -> row
    questions: int
    rules: list[str]
    kept_questions: float  # expected; the difficulty filter is not foreseen (so: at most)
    consistent_probes: float
    prompt_tokens: dict[str, float]  # mean teacher tokens per request, by purpose
    completion_tokens: dict[str, float]
    calibration: float  # server prompt tokens / counted tokens on the cached requests
    counter: str  # how tokens were counted
    notes: list[str] = field(default_factory=list)  # every rate or length assumed rather than measured
    extra_rationales: float = 0.0  # other correct rationales a kept question is expected to have (Answer-Aug)


class Funnel:
    """Pass rates (measured on the cached answers, else assumed 1) and what a chain of requests is expected to cost."""

    def __init__(self, config: ProbeConfig, questions: list[QuestionState], notes: list[str]) -> None:
        self.config = config
        self.rules = list(config.rules)
        right, first, repair, agrees, consistent = Rate(), _rates(self.rules), _rates(self.rules), \
            _rates(self.rules), _rates(self.rules)
        for question in questions:
            if question.status == "teacher_failed" and NOT_CACHED in (question.reason or ""):
                continue
            right.add(question.status in ("kept", "no_consistent_probes"))
            for o in question.outcomes:
                missing = NOT_CACHED in (o.reason or "")
                if o.probe is None:
                    ended_early = missing or o.status in ("truncated", "failed")
                    for attempt in range(o.repairs if ended_early else o.repairs + 1):
                        (first if attempt == 0 else repair)[o.rule.id].add(False)
                    if o.status in ("truncated", "failed") and not missing:
                        (first if o.repairs == 0 else repair)[o.rule.id].add(False)
                    continue
                for attempt in range(o.repairs + 1):
                    (first if attempt == 0 else repair)[o.rule.id].add(attempt == o.repairs)
                if o.teacher_response is not None:
                    agrees[o.rule.id].add(o.status not in ("mismatched", "truncated", "failed"))
                if config.consistency_filter and o.status in ("consistent", "inconsistent"):
                    consistent[o.rule.id].add(o.status == "consistent")
        self.teacher_right = _measured(right, "the teacher is right on a question", notes)
        self.valid_first = _per_rule(first, "a probe is valid at the first try", notes)
        self.valid_repair = _per_rule(repair, "a repaired probe is valid", notes)
        self.agrees = _per_rule(agrees, "the teacher agrees with its probe", notes)
        self.consistent = (_per_rule(consistent, "the teacher stays consistent after the probe", notes)
                           if config.consistency_filter else dict.fromkeys(self.rules, 1.0))

    # Each chain returns (expected requests by purpose, including its first; probability it ends consistent).
    def answer_chain(self, rule: str) -> tuple[Expected, float]:
        requests = {"probe_answer": 1.0, "consistency": self.agrees[rule] if self.config.consistency_filter else 0.0}
        return requests, self.agrees[rule] * self.consistent[rule]

    @functools.cache  # noqa: B019 (one funnel per estimate; chains are asked for thousands of times)
    def probe_chain(self, rule: str, attempt: int) -> tuple[Expected, float]:
        valid = self.valid_first[rule] if attempt == 0 else self.valid_repair[rule]
        after, consistent = self.answer_chain(rule)
        requests = _add({"probe" if attempt == 0 else "repair": 1.0}, after, valid)
        consistent *= valid
        if attempt < self.config.json_retries:
            more, more_consistent = self.probe_chain(rule, attempt + 1)
            requests = _add(requests, more, 1 - valid)
            consistent += (1 - valid) * more_consistent
        return requests, consistent

    @functools.cache  # noqa: B019
    def question_chain(self) -> tuple[Expected, float, float]:
        """(requests, expected consistent probes, probability the question is kept) of a question not yet asked."""
        requests: Expected = {"sample": float(self.config.answer_samples)}
        consistent, none_consistent = 0.0, 1.0
        for rule in self.rules:
            chain, p_consistent = self.probe_chain(rule, 0)
            requests = _add(requests, chain, 1.0)
            consistent += p_consistent
            none_consistent *= 1 - p_consistent
        return (_add({"cot": 1.0}, requests, self.teacher_right), self.teacher_right * consistent,
                self.teacher_right * (1 - none_consistent))

    def after_missing(self, request: ChatRequest) -> tuple[Expected, float, float]:
        """What a missing request would lead to: (requests after it, consistent probes, P(kept)) in expectation."""
        kind, rule = purpose(request), str(request.meta.get("rule", ""))
        if kind == "cot":
            chain, consistent, kept = self.question_chain()
        elif kind in ("probe", "repair"):
            chain, consistent = self.probe_chain(rule, int(request.meta.get("attempt", 0)))
            kept = consistent
        elif kind == "probe_answer":
            chain, consistent = self.answer_chain(rule)
            kept = consistent
        elif kind == "consistency":
            chain, consistent = {"consistency": 1.0}, self.consistent[rule]
            kept = consistent
        else:  # an Answer-Aug sample leads nowhere
            chain, consistent, kept = {kind: 1.0}, 0.0, 0.0
        return _add(chain, {kind: 1.0}, -1.0), consistent, kept


def _rates(rules: list[str]) -> dict[str, Rate]:
    return {rule: Rate() for rule in rules}


def _measured(rate: Rate, what: str, notes: list[str]) -> float:
    if rate.judged:
        return rate.passed / rate.judged
    notes.append(f"assumed: {what} (no cached answer measures it)")
    return 1.0


def _per_rule(rates: dict[str, Rate], what: str, notes: list[str]) -> dict[str, float]:
    """Each rule's own rate; a rule nothing measured takes the others' pooled rate, or 1."""
    pooled = Rate(sum(r.passed for r in rates.values()), sum(r.judged for r in rates.values()))
    fallback = _measured(pooled, what, notes)
    return {rule: rate.passed / rate.judged if rate.judged else fallback for rule, rate in rates.items()}


def _add(into: Expected, other: Expected, weight: float) -> Expected:
    merged = dict(into)
    for key, value in other.items():
        merged[key] = merged.get(key, 0.0) + weight * value
    return merged


def forecast_probe_stage(config: ProbeConfig, estimate: EstimateConfig, registry: DatasetRegistry | None = None,
                         extra_teachers: ExtraTeachers | None = None) -> ProbeForecast:
    """The probe stage replayed from the teacher cache; `registry` and `extra_teachers` as for run_probe."""
    notes: list[str] = []
    registry = config.dataset_registry(registry)
    questions = [QuestionState(example) for name in config.datasets
                 for example in registry.load(name, config.split, limit=config.limit)]
    rules = [all_rules()[rule_id] for rule_id in config.rules]
    # The difficulty filter's student is local compute, estimated with the student's tokens, not replayed here.
    dry_config = config.model_copy(update={"difficulty": config.difficulty.model_copy(update={"enabled": False})})
    cache = TeacherCache(config.resolved_cache_path())
    cap = config.resolved_max_tokens_cap()
    teacher = ReplayedTeacher(DryBackend(teacher_identity(config.teacher, extra_teachers)), cache, cap)
    probe_teacher = (ReplayedTeacher(DryBackend(teacher_identity(config.probe_teacher, extra_teachers)), cache, cap)
                     if config.probe_teacher is not None else teacher)
    run_waves(dry_config, questions, rules, Waves(None), teacher, probe_teacher)

    counter = TokenCounter(estimate.tokenizer)
    teachers = list({id(t): t for t in (teacher, probe_teacher)}.values())
    answered = [pair for t in teachers for pair in t.answered]
    missing = [request for t in teachers for request in t.dry.missing]
    calibration = _calibration(answered, counter)
    prompts, completions = _mean_lengths(answered, missing, counter, calibration, config, estimate, notes)
    _derive_prompts(prompts, completions, [q.example for q in questions[:SAMPLE]], rules, counter, calibration)

    funnel = Funnel(dry_config, questions, notes)
    rows: dict[str, dict[str, Row]] = {}
    consistent = float(sum(len(q.consistent()) for q in questions))
    kept_known = {(q.example.source, q.example.id) for q in questions if q.consistent()}
    not_kept = {}  # question id -> probability that no missing chain gives it a consistent probe
    for t in teachers:
        mine = rows.setdefault(t.model, {kind: Row() for kind in PURPOSES})
        for request, _ in t.answered:
            mine[purpose(request)].requests += 1
            mine[purpose(request)].cached += 1
        for request in t.dry.missing:
            kind = purpose(request)
            _pay(mine[kind], 1.0, counter.messages(request.messages) * calibration, completions[kind])
            follow_ups, more_consistent, kept = funnel.after_missing(request)
            consistent += more_consistent
            question = (request.meta.get("source"), request.meta.get("example_id"))
            if question not in kept_known:
                not_kept[question] = not_kept.get(question, 1.0) * (1 - kept)
            for later, count in follow_ups.items():
                model = (teacher if later in ("cot", "sample") else probe_teacher).model
                _pay(rows.setdefault(model, {k: Row() for k in PURPOSES})[later], count, prompts[later] * count,
                     completions[later] * count)
    kept = len(kept_known) + sum(1 - p for p in not_kept.values())
    sampled = sum(purpose(request) == "sample" for t in teachers for request, _ in t.answered)
    return ProbeForecast(rows, len(questions), list(config.rules), kept, consistent, prompts, completions, calibration,
                         counter.method, notes, _extra_rationales(config, questions, sampled, funnel, notes))


def _extra_rationales(config: ProbeConfig, questions: list[QuestionState], sampled: int, funnel: Funnel,
                      notes: list[str]) -> float:
    """Other correct rationales a kept question is expected to have (probe.answer_samples, the Answer-Aug baseline):
    answer_samples times the share of the cached samples that were kept (correct, and not a repeat of a rationale
    the question has), else times the rate at which the teacher is right (a repeat is not foreseen)."""
    if not config.answer_samples:
        return 0.0
    if sampled:
        return config.answer_samples * sum(len(q.extra_responses) for q in questions) / sampled
    notes.append("extra rationales (answer_samples): none cached, so each sample is assumed kept as often as the "
                 "teacher is right (a repeated wording, which is dropped, is not foreseen)")
    return config.answer_samples * funnel.teacher_right


def _pay(row: Row, count: float, prompt_tokens: float, completion_tokens: float) -> None:
    """`prompt_tokens` / `completion_tokens`: the total for these `count` requests."""
    row.requests += count
    row.to_pay += count
    row.prompt_tokens += prompt_tokens
    row.completion_tokens += completion_tokens


def _calibration(answered: list[tuple[ChatRequest, ChatResponse]], counter: TokenCounter) -> float:
    """The teacher's prompt tokens per counted token, on the requests it has answered (1 when it reported none)."""
    reported = [(response.prompt_tokens, counter.messages(request.messages)) for request, response in answered
                if response.prompt_tokens > 0]
    counted = sum(c for _, c in reported)
    return sum(r for r, _ in reported) / counted if counted else 1.0


def _mean_lengths(answered: list[tuple[ChatRequest, ChatResponse]], missing: list[ChatRequest],
                  counter: TokenCounter, calibration: float, config: ProbeConfig, estimate: EstimateConfig,
                  notes: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean prompt and reply tokens per purpose: measured where the replay built or the cache answered such
    requests, else derived from the lengths that are known (a probe prompt holds the rationale...)."""
    prompt_sizes: dict[str, list[float]] = {kind: [] for kind in PURPOSES}
    reply_sizes: dict[str, list[float]] = {kind: [] for kind in PURPOSES}
    for request, response in answered:
        counted = counter.messages(request.messages) * calibration
        prompt_sizes[purpose(request)].append(response.prompt_tokens or counted)
        reply_sizes[purpose(request)].append(response.completion_tokens or counter.text(response.text or "")
                                             * calibration)
    for request in missing:
        prompt_sizes[purpose(request)].append(counter.messages(request.messages) * calibration)

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    completions: dict[str, float] = {}
    for kind, budget in (("cot", config.max_tokens), ("probe", config.probe_max_tokens),
                         ("probe_answer", config.max_tokens), ("consistency", config.max_tokens)):
        measured = mean(reply_sizes[kind])
        if measured is None:
            measured = float(min(budget, estimate.assumed_length(kind)))
            notes.append(f"assumed: {kind} replies of {measured:.0f} tokens (estimate.assumed_completion_tokens)")
        completions[kind] = measured
    completions["sample"] = mean(reply_sizes["sample"]) or completions["cot"]
    completions["repair"] = mean(reply_sizes["repair"]) or completions["probe"]

    return {kind: mean(sizes) or 0.0 for kind, sizes in prompt_sizes.items()}, completions


def _derive_prompts(prompts: dict[str, float], completions: dict[str, float], examples: list[Example],
                    rules: list[Rule], counter: TokenCounter, calibration: float) -> None:
    """Prompt sizes of kinds no request was built for, from what they hold: a probe request is the question in
    the probe template plus the rationale, a probe is answered in the question prompt's frame, a repair carries
    the rejected reply, the consistency dialogue the probe, its answer and the question."""
    if not examples:
        return

    def mean_tokens(requests: list[ChatRequest]) -> float:
        return calibration * sum(counter.messages(r.messages) for r in requests) / len(requests)

    question = mean_tokens([build.cot_request(e, 1) for e in examples])
    frame = question - calibration * sum(counter.text(e.question) for e in examples) / len(examples)
    derived = {"cot": question, "sample": question,
               "probe": mean_tokens([build.probe_request(e, "", r, 1) for e in examples for r in rules])
               + completions["cot"],
               "probe_answer": completions["probe"] + frame}
    derived["repair"] = (prompts["probe"] or derived["probe"]) + completions["probe"] + calibration * counter.messages(
        [{"role": "assistant", "content": ""}, {"role": "user", "content": build.REPAIR_PROMPT.format(reason="x" * 60)}])
    derived["consistency"] = ((prompts["probe_answer"] or derived["probe_answer"]) + completions["probe_answer"]
                              + (prompts["cot"] or question))
    for kind, size in derived.items():
        if not prompts[kind]:
            prompts[kind] = size


