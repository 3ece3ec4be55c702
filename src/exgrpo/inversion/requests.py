"""The requests the probe stage sends to the teacher (and, for the difficulty filter, to the student).

Every request carries `meta` (purpose, dataset, example id, rule) so that replay and exact teachers
can answer it; meta is not part of the cache key.
"""

from __future__ import annotations

from jinja2.sandbox import ImmutableSandboxedEnvironment

from exgrpo.data.prompts import build_messages, build_prompt, options_block
from exgrpo.data.schema import Example
from exgrpo.inversion.rules import Rule
from exgrpo.teachers.base import ChatRequest

PROBE_PROMPT = """You write probing questions that test whether a student understands WHY an answer holds.

Original question:
{{ question }}{% if options %}
Options:
{{ options }}{% endif %}

Correct answer: {{ answer }}

Reference reasoning:
{{ rationale }}

Write one probing question of type "{{ rule.name }}" ({{ rule.id }}): {{ rule.instruction }}

The probe must be answerable on its own: restate every fact it needs. It must have one short, checkable
answer of type {{ answer_types }}.
Answer types: number (a plain number), letter (multiple choice: give "choices", answer with the letter),
yes_no ("yes" or "no"), nli ("entailment", "neutral" or "contradiction"), date ("MM/DD/YYYY"),
text (a span of at most 8 words).

Reply with only a JSON object, no other text:
{"probe": "<the probing question>", "answer_type": "<type>", "choices": ["<option>", ...] or null, "answer": "<the short answer>"}"""

REPAIR_PROMPT = "Your reply was rejected: {reason}. Reply again with only the corrected JSON object."

_ENV = ImmutableSandboxedEnvironment()
_PROBE_TEMPLATE = _ENV.from_string(PROBE_PROMPT)


def _meta(purpose: str, example: Example, rule: Rule | None = None, **extra: object) -> dict[str, object]:
    return {"purpose": purpose, "source": example.source, "example_id": example.id,
            **({"rule": rule.id} if rule else {}), **extra}


def cot_request(example: Example, max_tokens: int, sample: int = 0, temperature: float = 0.0) -> ChatRequest:
    """Stage 0: the teacher answers the original question with its reasoning (the eval prompt). Samples 1, 2...
    (the Answer-Aug baseline's extra rationales) are seeded, sampled calls of the same prompt."""
    if sample == 0:
        return ChatRequest(messages=tuple(build_messages(example)), max_tokens=max_tokens, meta=_meta("cot", example))
    return ChatRequest(messages=tuple(build_messages(example)), max_tokens=max_tokens, temperature=temperature,
                       seed=sample, meta=_meta("cot", example, sample=sample))


def probe_request(example: Example, rationale: str, rule: Rule, max_tokens: int) -> ChatRequest:
    """Stage 1: the teacher writes the rule's probe for (Q, A, R_T) as a JSON object."""
    answer_types = " or ".join(t.value for t in rule.allowed_answer_types())
    prompt = _PROBE_TEMPLATE.render(question=example.question, options=options_block(example.choices),
                                    answer=example.answer, rationale=rationale, rule=rule, answer_types=answer_types)
    return ChatRequest(messages=({"role": "user", "content": prompt},), max_tokens=max_tokens, json_mode=True,
                       meta=_meta("probe", example, rule, attempt=0))


def repair_request(request: ChatRequest, rejected_reply: str, reason: str) -> ChatRequest:
    """The same conversation, with the rejected reply and what was wrong with it: a new, cacheable call."""
    messages = (*request.messages, {"role": "assistant", "content": rejected_reply},
                {"role": "user", "content": REPAIR_PROMPT.format(reason=reason)})
    meta = {**request.meta, "attempt": int(request.meta.get("attempt", 0)) + 1}  # type: ignore[call-overload]
    return ChatRequest(messages=messages, max_tokens=request.max_tokens, json_mode=True, meta=meta)


def probe_answer_request(probe: Example, original: Example, rule: Rule, max_tokens: int,
                         purpose: str = "probe_answer") -> ChatRequest:
    """The teacher (or, for the difficulty filter, the student) answers a probe like any question."""
    return ChatRequest(messages=tuple(build_messages(probe)), max_tokens=max_tokens,
                       meta=_meta(purpose, original, rule, probe=probe.to_dict()))


def consistency_request(original: Example, probe: Example, probe_response: str, rule: Rule,
                        max_tokens: int) -> ChatRequest:
    """EI-consistency (paper Eq. 1): the probe and the teacher's answer to it, then the original question."""
    messages = ({"role": "user", "content": build_prompt(probe)},
                {"role": "assistant", "content": probe_response},
                {"role": "user", "content": build_prompt(original)})
    return ChatRequest(messages=messages, max_tokens=max_tokens, meta=_meta("consistency", original, rule))
