"""The exact teacher: answers every probe-stage request of the synthetic world correctly, by construction.

It reads each request's `meta` (purpose, example id, rule) and replies with the problem's exact rationale,
the rule's exact probe (as the JSON a teacher LLM would write), or the exact rationale of that probe.
It sits behind the same `TeacherBackend` protocol and cache as the LLM teachers; the runner and the CLI hand it
to the probe stage as `WORLD_TEACHERS` (the teachers layer builds only its own kinds).
"""

from __future__ import annotations

from collections.abc import Sequence

from exgrpo.config import ExactTeacherConfig
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback
from exgrpo.teachers.factory import TeacherKind
from exgrpo.world.datasets import world_problems
from exgrpo.world.probes import make_probe, probe_reply_json
from exgrpo.world.program import Problem, rationale

EXACT_TEACHER_NAME = "exact-world"


class ExactTeacher:
    def __init__(self, problems: dict[str, Problem], name: str = EXACT_TEACHER_NAME) -> None:
        self.problems = problems
        self.model = name

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        for index, request in enumerate(requests):
            on_result(index, self.answer(request))

    def answer(self, request: ChatRequest) -> ChatResponse:
        purpose, problem = request.meta.get("purpose"), self.problems.get(str(request.meta.get("example_id")))
        if problem is None:
            return ChatResponse(None, error=f"the exact teacher knows no world problem {request.meta.get('example_id')!r}")
        if purpose == "cot":  # sampled rationales (Answer-Aug) are worded differently, as a sampling LLM's are
            return ChatResponse(rationale(problem, variant=(int(request.meta.get("sample", 0)) - 1) % 2 + 1
                                          if request.meta.get("sample") else 0))
        if purpose == "consistency":
            return ChatResponse(rationale(problem))
        spec = make_probe(problem, str(request.meta.get("rule")))
        if purpose == "probe":
            # A rule that cannot apply to this problem gets a reply the probe stage records as invalid.
            return ChatResponse(probe_reply_json(spec) if spec else "This rule does not apply to this problem.")
        if purpose == "probe_answer" and spec is not None:
            return ChatResponse(spec.rationale)
        return ChatResponse(None, error=f"the exact teacher does not answer {purpose!r} requests")


def exact_teacher(config: ExactTeacherConfig) -> ExactTeacher:
    """The exact teacher of the world a config describes."""
    world = config.world
    return ExactTeacher(world_problems(world.seed, world.train_size, world.test_size, world.ood_size, world.val_size))


# The teacher kinds the world adds, by the `kind` of their config (teachers.factory's extra_teachers).
WORLD_TEACHERS: dict[str, TeacherKind] = {
    "exact": TeacherKind(build=exact_teacher, identity=lambda config: EXACT_TEACHER_NAME)}
