"""The durable teacher cache: what makes a key, reopening, a torn last line, and the cached teacher
(each distinct missing request asked once, repeats served from the cache, failures never cached)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from exgrpo.errors import DataError
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback, request_key
from exgrpo.teachers.cache import CachedTeacher, CallStats, TeacherCache


def ask(text: str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=32, **fields)


class EchoBackend:
    """A real backend: answers 'echo: <text>' with len(text) prompt tokens and 2 completion tokens,
    fails the texts in `failing`, and records every request it was sent."""

    def __init__(self, model: str = "echo-model", failing: set[str] | None = None) -> None:
        self.model = model
        self.failing = failing if failing is not None else set()
        self.sent: list[str] = []

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        for index, request in enumerate(requests):
            text = request.messages[-1]["content"]
            if on_start is not None:
                on_start(index)
            self.sent.append(text)
            if text in self.failing:
                on_result(index, ChatResponse(None, error=f"HTTP 503: {text} unavailable"))
            else:
                on_result(index, ChatResponse(f"echo: {text}", prompt_tokens=len(text), completion_tokens=2))


# ---------------------------------------------------------------- the key


BASE = ChatRequest(messages=({"role": "system", "content": "s"}, {"role": "user", "content": "q"}), max_tokens=64)


@pytest.mark.parametrize("changed", [
    dataclasses.replace(BASE, messages=({"role": "system", "content": "s"}, {"role": "user", "content": "q2"})),
    dataclasses.replace(BASE, messages=({"role": "user", "content": "s"}, {"role": "user", "content": "q"})),
    dataclasses.replace(BASE, messages=BASE.messages[1:]),
    dataclasses.replace(BASE, max_tokens=65),
    dataclasses.replace(BASE, temperature=0.7),
    dataclasses.replace(BASE, json_mode=True),
], ids=["content", "role", "message-count", "max_tokens", "temperature", "json_mode"])
def test_the_key_changes_with_everything_sent(changed: ChatRequest) -> None:
    assert request_key("m", changed) != request_key("m", BASE)


def test_the_key_changes_with_the_model_but_not_with_meta() -> None:
    assert request_key("m", BASE) != request_key("other-model", BASE)
    with_meta = dataclasses.replace(BASE, meta={"purpose": "cot", "example_id": "7"})
    assert request_key("m", with_meta) == request_key("m", BASE)
    assert request_key("m", BASE) == request_key("m", dataclasses.replace(BASE))  # stable
    assert len(request_key("m", BASE)) == 64


# ---------------------------------------------------------------- the cache file


def test_answers_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "teacher_cache.jsonl"
    cache = TeacherCache(path)
    assert len(cache) == 0 and not path.exists()
    key_a, key_b = request_key("m", ask("a")), request_key("m", ask("b"))
    cache.put(key_a, "m", ask("a"), ChatResponse("answer a", prompt_tokens=11, completion_tokens=3))
    cache.put(key_b, "m", ask("b"), ChatResponse("", prompt_tokens=5, completion_tokens=0))  # empty is an answer

    reopened = TeacherCache(path)
    assert len(reopened) == 2 and key_a in reopened and key_b in reopened
    assert reopened.get(key_a) == ChatResponse("answer a", prompt_tokens=11, completion_tokens=3, cached=True)
    assert reopened.get(key_b) == ChatResponse("", prompt_tokens=5, completion_tokens=0, cached=True)
    assert reopened.get(request_key("m", ask("c"))) is None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["key"] for r in records] == [key_a, key_b]
    assert records[0]["request"] == ask("a").payload() and records[0]["model"] == "m"


def test_a_torn_last_line_is_dropped_and_later_answers_still_land(tmp_path: Path) -> None:
    path = tmp_path / "teacher_cache.jsonl"
    key_a, key_b, key_c = (request_key("m", ask(t)) for t in "abc")
    TeacherCache(path).put(key_a, "m", ask("a"), ChatResponse("answer a"))
    with path.open("a", encoding="utf-8") as handle:  # killed in the middle of writing b's record
        handle.write(json.dumps({"schema_version": 1, "key": key_b, "text": "answer b"})[:40])

    cache = TeacherCache(path)
    assert len(cache) == 1 and key_a in cache and key_b not in cache
    cache.put(key_c, "m", ask("c"), ChatResponse("answer c"))

    reopened = TeacherCache(path)
    assert len(reopened) == 2 and reopened.get(key_c).text == "answer c" and key_b not in reopened
    assert all(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())


def test_a_malformed_line_before_the_last_is_corruption_not_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "teacher_cache.jsonl"
    TeacherCache(path).put(request_key("m", ask("a")), "m", ask("a"), ChatResponse("answer a"))
    good = path.read_text(encoding="utf-8")
    path.write_text(good + '{"key": "torn' + "\n" + good, encoding="utf-8")  # a bad line with a good one after
    with pytest.raises(DataError, match=r"teacher_cache\.jsonl:2: malformed JSON"):
        TeacherCache(path)
    assert path.read_text(encoding="utf-8").endswith(good)  # and nothing was cut off


# ---------------------------------------------------------------- the cached teacher


def test_each_distinct_missing_request_is_sent_once_and_repeats_come_from_the_cache(tmp_path: Path) -> None:
    backend = EchoBackend()
    teacher = CachedTeacher(backend, TeacherCache(tmp_path / "c.jsonl"))
    first = teacher.complete([ask("a"), ask("b"), ask("a"), ask("c"), ask("a", meta={"why": "again"})])
    assert backend.sent == ["a", "b", "c"]
    assert [r.text for r in first] == ["echo: a", "echo: b", "echo: a", "echo: c", "echo: a"]
    assert not any(r.cached for r in first)
    # Each of the five requests is counted once (the progress bar's done = calls + cached + errors).
    assert (teacher.stats.calls, teacher.stats.cached, teacher.stats.errors) == (3, 2, 0)

    second = teacher.complete([ask("c"), ask("d"), ask("a"), ask("d")])
    assert backend.sent == ["a", "b", "c", "d"]
    assert [r.text for r in second] == ["echo: c", "echo: d", "echo: a", "echo: d"]
    assert [r.cached for r in second] == [True, False, True, False]
    assert (teacher.stats.calls, teacher.stats.cached) == (4, 5)

    # Another teacher (a rerun) on the same file pays for nothing already answered.
    rerun_backend = EchoBackend()
    rerun = CachedTeacher(rerun_backend, TeacherCache(tmp_path / "c.jsonl"))
    assert [r.text for r in rerun.complete([ask(t) for t in "abcd"])] == [f"echo: {t}" for t in "abcd"]
    assert rerun_backend.sent == [] and rerun.stats.as_dict() == {
        "calls": 0, "cached": 4, "errors": 0, "longer": 0, "truncated": 0, "rejected": 0, "prompt_tokens": 0,
        "completion_tokens": 0}


class CuttingBackend(EchoBackend):
    """Answers a text of `needs[text]` tokens: cut off (finish_reason "length") when max_tokens is smaller."""

    def __init__(self, needs: dict[str, int]) -> None:
        super().__init__()
        self.needs, self.budgets = needs, []

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        for index, request in enumerate(requests):
            text = request.messages[-1]["content"]
            self.sent.append(text)
            self.budgets.append((text, request.max_tokens))
            cut = request.max_tokens < self.needs[text]
            on_result(index, ChatResponse(f"echo: {text}"[: request.max_tokens], completion_tokens=request.max_tokens,
                                          finish_reason="length" if cut else "stop"))


def test_a_cut_off_reply_is_asked_again_with_twice_the_budget_up_to_the_cap(tmp_path: Path) -> None:
    backend = CuttingBackend({"short": 10, "long": 50, "endless": 10_000})
    teacher = CachedTeacher(backend, TeacherCache(tmp_path / "c.jsonl"), max_tokens_cap=100)
    short, long, endless = teacher.complete([ask("short"), ask("long"), ask("endless")])
    assert sorted(backend.budgets) == sorted([("short", 32), ("long", 32), ("long", 64), ("endless", 32), ("endless", 64),
                                              ("endless", 100)])
    assert not short.truncated and not long.truncated and long.text == "echo: long"
    assert endless.ok and endless.truncated  # still cut at the cap: the caller records it as truncated
    assert (teacher.stats.calls, teacher.stats.longer, teacher.stats.truncated) == (6, 3, 1)
    # The rerun replays the same escalation from the cache: a cut-off reply in the cache is never the answer.
    rerun_backend = CuttingBackend(backend.needs)
    rerun = CachedTeacher(rerun_backend, TeacherCache(tmp_path / "c.jsonl"), max_tokens_cap=100)
    assert [r.text for r in rerun.complete([ask("short"), ask("long"), ask("endless")])] == [
        short.text, long.text, endless.text]
    assert rerun_backend.sent == [] and (rerun.stats.cached, rerun.stats.truncated) == (6, 1)
    # Without a cap a cut-off reply comes back as it is, marked.
    plain = CachedTeacher(CuttingBackend(backend.needs), TeacherCache(tmp_path / "other.jsonl"))
    assert plain.complete([ask("long")])[0].truncated


def test_another_model_does_not_share_answers(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path / "c.jsonl")
    CachedTeacher(EchoBackend("model-1"), cache).complete([ask("a")])
    other = EchoBackend("model-2")
    CachedTeacher(other, cache).complete([ask("a")])
    assert other.sent == ["a"] and len(cache) == 2


def test_failures_are_never_cached_and_are_asked_again(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    backend = EchoBackend(failing={"b"})
    teacher = CachedTeacher(backend, TeacherCache(path))
    first = teacher.complete([ask("a"), ask("b"), ask("b")])
    assert backend.sent == ["a", "b"]
    assert (teacher.stats.calls, teacher.stats.cached, teacher.stats.errors) == (1, 0, 2)  # both b's failed
    assert first[0].ok and not first[1].ok and not first[2].ok
    assert first[1].text is None and first[1].error == "HTTP 503: b unavailable"
    assert request_key(backend.model, ask("b")) not in teacher.cache
    assert request_key(backend.model, ask("b")) not in TeacherCache(path)

    again = teacher.complete([ask("a"), ask("b")])  # still failing: asked again, not served a cached error
    assert backend.sent == ["a", "b", "b"] and not again[1].ok

    backend.failing.clear()
    healed = teacher.complete([ask("a"), ask("b")])
    assert backend.sent == ["a", "b", "b", "b"]
    assert [r.text for r in healed] == ["echo: a", "echo: b"] and [r.cached for r in healed] == [True, False]
    assert teacher.complete([ask("b")])[0].cached and backend.sent[-1] == "b" and len(backend.sent) == 4
    assert len(TeacherCache(path)) == 2


def test_stats_count_calls_tokens_and_errors(tmp_path: Path) -> None:
    failing = {f"bad {i}" for i in range(7)}
    backend = EchoBackend(failing=failing)
    seen: list[dict[str, int]] = []
    in_flight: list[int] = []

    def on_change(stats: CallStats) -> None:
        seen.append(stats.as_dict())
        in_flight.append(stats.in_flight)

    teacher = CachedTeacher(backend, TeacherCache(tmp_path / "c.jsonl"), on_change=on_change)
    responses = teacher.complete([ask("hello"), ask("hi")] + [ask(t) for t in sorted(failing)])
    assert sum(r.ok for r in responses) == 2
    stats = teacher.stats
    assert (stats.calls, stats.cached, stats.errors) == (2, 0, 7)
    assert (stats.prompt_tokens, stats.completion_tokens) == (len("hello") + len("hi"), 4)  # failures cost nothing
    assert stats.last_error == "HTTP 503: bad 6 unavailable"
    assert len(stats.error_samples) == 5 and stats.error_samples[0] == "HTTP 503: bad 0 unavailable"
    assert stats.in_flight == 0 and max(in_flight) == 1  # this backend answers one at a time
    assert seen[-1] == stats.as_dict() and len(seen) >= 9

    teacher.complete([ask("hello")])
    assert (stats.calls, stats.cached, stats.prompt_tokens) == (2, 1, len("hello") + len("hi"))  # a hit is free
    assert teacher.model == "echo-model"


def test_integer_and_float_temperatures_are_one_key() -> None:
    from exgrpo.teachers.base import request_key

    messages = ({"role": "user", "content": "q"},)
    assert request_key("m", ChatRequest(messages, 8, temperature=0)) == request_key("m", ChatRequest(messages, 8, 0.0))
