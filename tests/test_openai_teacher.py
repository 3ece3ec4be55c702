"""The OpenAI-compatible teacher against a real HTTP server on 127.0.0.1 and the real `openai` client:
retries (429 + Retry-After, 5xx, hangs), bodies that are not completions, a server that dies mid-run and
the cache that makes the rerun ask only for what is missing, bounded concurrency, what is sent, the key.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from exgrpo.errors import ConfigError
from exgrpo.teachers.base import ChatRequest, ChatResponse, TeacherUnavailable
from exgrpo.teachers.cache import CachedTeacher, TeacherCache
from exgrpo.teachers.loopback_server import LoopbackChatServer, Reply, last_user_message, prompt_tokens
from exgrpo.teachers.openai_api import OpenAITeacher


def ask(text: str, max_tokens: int = 16, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=max_tokens, **fields)


def teacher_for(server: LoopbackChatServer, **options: Any) -> OpenAITeacher:
    options = {"api_key_env": None, "timeout": 2.0, "max_retries": 2, "concurrency": 4, "retry_delay": 0.01, **options}
    return OpenAITeacher("loopback-model", base_url=server.base_url, **options)


def complete(teacher: OpenAITeacher, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
    """Run a batch; every request must get exactly one result, whatever happened to it."""
    results: dict[int, list[ChatResponse]] = {}
    teacher.complete(requests, on_result=lambda i, response: results.setdefault(i, []).append(response))
    assert sorted(results) == list(range(len(requests)))
    assert all(len(answers) == 1 for answers in results.values())
    return [results[i][0] for i in range(len(requests))]


def in_order(*first: Reply, then: Reply | None = None) -> Callable[[dict[str, Any]], Reply]:
    """A script answering its n-th request with first[n], and every later one with `then` (an echo if None)."""
    lock = threading.Lock()
    seen = [0]

    def script(body: dict[str, Any]) -> Reply:
        with lock:
            n = seen[0]
            seen[0] += 1
        if n < len(first):
            return first[n]
        return then if then is not None else Reply(f"echo: {last_user_message(body)}")

    return script


# ---------------------------------------------------------------- retries


def test_429_with_retry_after_is_retried_after_the_server_s_delay() -> None:
    with LoopbackChatServer(in_order(Reply("slow down", status=429, headers={"Retry-After": "1"}))) as server:
        started = time.monotonic()
        [response] = complete(teacher_for(server), [ask("q")])
        elapsed = time.monotonic() - started
        assert server.request_count() == 2
    assert response.ok and response.text == "echo: q"
    # The client's own first backoff is at most 0.5 s: waiting >= 1 s means Retry-After was honoured.
    assert 0.95 <= elapsed < 2.5


def test_a_500_is_retried_and_a_persistent_500_becomes_an_error_response() -> None:
    with LoopbackChatServer(in_order(Reply("overloaded", status=500))) as server:
        [response] = complete(teacher_for(server), [ask("q")])
        assert server.request_count() == 2
    assert response.ok and response.text == "echo: q"

    with LoopbackChatServer(in_order(then=Reply("still overloaded", status=500))) as server:
        [response] = complete(teacher_for(server, max_retries=1), [ask("q")])
        assert server.request_count() == 2  # the first try and one retry, no more
    assert not response.ok and response.text is None
    assert response.error.startswith("HTTP 500") and "still overloaded" in response.error


def test_a_hung_request_times_out_and_the_retry_succeeds() -> None:
    with LoopbackChatServer(in_order(Reply("too late", delay=2.0))) as server:
        started = time.monotonic()
        [response] = complete(teacher_for(server, timeout=0.5), [ask("q")])
        elapsed = time.monotonic() - started
        assert server.request_count() == 2
    assert response.ok and response.text == "echo: q"  # not the late answer of the first try
    assert elapsed < 1.8


def test_a_server_that_never_answers_gives_a_timed_out_error_in_bounded_time() -> None:
    with LoopbackChatServer(in_order(then=Reply("never sent", delay=5.0))) as server:
        started = time.monotonic()
        [response] = complete(teacher_for(server, timeout=0.3, max_retries=1), [ask("q")])
        elapsed = time.monotonic() - started
        assert server.request_count() == 2
    assert not response.ok and "timed out" in response.error
    assert elapsed < 2.0  # two 0.3 s timeouts and one backoff of at most 0.5 s


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize("body", ["not json", "", "[]", "null", '"a string"', '{"choices": "x"}',
                                  '{"choices": [1]}', '{"choices": [{"message": {"content": 5}}]}',
                                  '{"choices": [{"message": {"content": "x"}}], "usage": 7}', "{}", '{"choices": []}',
                                  '{"choices": [{"message": {"role": "assistant"}}]}'])
def test_a_200_reply_without_an_answer_is_retried_then_an_error_response_saying_why(body: str) -> None:
    with LoopbackChatServer(in_order(then=Reply(raw_body=body))) as server:
        [response] = complete(teacher_for(server), [ask("q")])
        assert server.request_count() == 3  # asked again like a transport error: max_retries 2
    assert not response.ok and not response.rejected and response.error.endswith("(asked 3 times)")
    assert response.error.startswith(("invalid response", "the server returned no message content"))


def test_a_200_reply_without_an_answer_then_a_good_one_is_the_good_one() -> None:
    with LoopbackChatServer(in_order(Reply(raw_body="not json"), Reply(raw_body='{"choices": []}'))) as server:
        [response] = complete(teacher_for(server), [ask("q")])
        assert server.request_count() == 3
    assert response.ok and response.text == "echo: q"


def test_a_reply_cut_off_at_max_tokens_says_so() -> None:
    with LoopbackChatServer(in_order(Reply("The answer is", finish_reason="length"))) as server:
        cut, whole = complete(teacher_for(server, concurrency=1), [ask("q1"), ask("q2")])
    assert cut.ok and cut.truncated and cut.finish_reason == "length"
    assert whole.ok and not whole.truncated and whole.finish_reason == "stop"


def test_plain_text_where_json_was_asked_for_is_returned_as_text() -> None:
    prose = "Sure! Here is a probe: what is two plus two?"
    with LoopbackChatServer(in_order(then=Reply(prose))) as server:
        [response] = complete(teacher_for(server), [ask("write a probe", json_mode=True)])
        assert server.request_count() == 1  # the client does not judge the content
    assert response.ok and response.text == prose


# ---------------------------------------------------------------- a server that dies


def test_a_server_dying_mid_run_stops_the_batch_and_the_rerun_asks_only_for_the_missing(tmp_path: Path) -> None:
    requests = [ask(f"question {i}") for i in range(40)]
    served = 6
    lock = threading.Lock()
    count = [0]
    stopper: list[threading.Thread] = []

    def dying(body: dict[str, Any]) -> Reply:
        with lock:
            count[0] += 1
            dies = count[0] == served + 1
        if dies:  # stop from another thread: the script runs on the server's event loop, which stop() needs
            stopper.append(threading.Thread(target=server.stop))
            stopper[0].start()
        return Reply(f"answer to {last_user_message(body)}", delay=0.02)

    cache_path = tmp_path / "teacher_cache.jsonl"
    server = LoopbackChatServer(dying).start()
    sent: list[int] = []
    try:
        teacher = CachedTeacher(teacher_for(server, max_retries=0, max_consecutive_failures=3), TeacherCache(cache_path))
        teacher.backend.complete = _counting(teacher.backend.complete, sent)
        started = time.monotonic()
        with pytest.raises(TeacherUnavailable, match=r"3 calls in a row failed.*connection failed.*Stopped after \d+ "
                                                     r"of 40 requests; the \d+ answers received are kept"):
            teacher.complete(requests)
        elapsed = time.monotonic() - started
        assert len(stopper) == 1
        stopper[0].join(timeout=5)
        assert not stopper[0].is_alive()
    finally:
        server.stop()
    answered = {entry["request"]["messages"][0]["content"]: entry["text"]
                for entry in map(json.loads, cache_path.read_text().splitlines())}
    # The request that killed it and those in flight with it (concurrency 4) are not answered; after the third
    # failure in a row no new request goes out: at most 3 + 4 requests after the death.
    assert served - 3 <= len(answered) <= served
    assert all(text == f"answer to {question}" for question, text in answered.items())
    assert len(sent) <= served + 1 + 3 + 4 < len(requests)
    assert teacher.stats.calls == len(answered)
    assert elapsed < 3.0

    with LoopbackChatServer(in_order()) as healthy:  # a new server; the cache reopened from disk
        teacher = CachedTeacher(teacher_for(healthy), TeacherCache(cache_path))
        second = teacher.complete(requests)
        asked = [last_user_message(body) for body in healthy.requests]
    assert sorted(asked) == sorted(r.messages[0]["content"] for r in requests if r.messages[0]["content"] not in answered)
    assert all(response.ok for response in second)
    assert [response.text for response in second] == [answered.get(text, f"echo: {text}")
                                                      for text in (r.messages[0]["content"] for r in requests)]
    assert teacher.stats.cached == len(answered) and teacher.stats.calls == len(requests) - len(answered)


def _counting(complete: Callable[..., None], sent: list[int]) -> Callable[..., None]:
    """The backend's complete, counting the requests it starts (on_start)."""
    def counted(requests: Sequence[ChatRequest], on_result: Any, on_start: Any = None) -> None:
        def started(index: int) -> None:
            sent.append(index)
            if on_start is not None:
                on_start(index)
        complete(requests, on_result, on_start=started)
    return counted


# ---------------------------------------------------------------- fail fast


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_answer_that_dooms_every_request_stops_the_batch_after_those_in_flight(status: int) -> None:
    with LoopbackChatServer(in_order(then=Reply("no", status=status, delay=0.05))) as server:
        teacher = teacher_for(server, concurrency=4)
        results: list[ChatResponse] = []
        with pytest.raises(TeacherUnavailable, match=rf"{server.base_url}.*loopback-model.*HTTP {status}.*Stopped "
                                                     r"after 4 of 50 requests; the 0 answers"):
            teacher.complete([ask(f"q{i}") for i in range(50)], on_result=lambda i, r: results.append(r))
        assert server.request_count() == 4  # those in flight when the first answer came, no more
    assert len(results) == 4 and all(f"HTTP {status}" in r.error for r in results)


def test_nothing_listening_fails_at_once_naming_the_url_and_sends_nothing() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    teacher = OpenAITeacher("some-model", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=5)
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable, match=rf"http://127.0.0.1:{port}/v1 \(model some-model\).*No request was sent"):
        teacher.complete([ask("q")], on_result=lambda i, r: pytest.fail("no result expected"))
    assert time.monotonic() - started < 2.0


def test_a_request_the_server_refuses_as_such_is_rejected_and_the_batch_goes_on() -> None:
    def script(body: dict[str, Any]) -> Reply:
        if "long" in last_user_message(body):
            return Reply("maximum context length exceeded", status=400)
        return Reply(f"echo: {last_user_message(body)}")

    with LoopbackChatServer(script) as server:
        responses = complete(teacher_for(server, max_consecutive_failures=2), [ask("a long one")] * 3 + [ask("b")])
    assert [r.rejected for r in responses] == [True, True, True, False]
    assert responses[0].error.startswith("HTTP 400") and "maximum context length exceeded" in responses[0].error and responses[3].text == "echo: b"


# ---------------------------------------------------------------- concurrency


def test_at_most_concurrency_requests_are_in_flight() -> None:
    def slow(body: dict[str, Any]) -> Reply:
        return Reply(f"echo: {last_user_message(body)}", delay=0.2)

    requests = [ask(f"q{i}") for i in range(16)]
    started_at: list[int] = []
    with LoopbackChatServer(slow) as server:
        teacher = teacher_for(server, concurrency=4)
        results: dict[int, ChatResponse] = {}
        started = time.monotonic()
        teacher.complete(requests, on_result=results.__setitem__, on_start=started_at.append)
        elapsed = time.monotonic() - started
        assert server.request_count() == 16
    assert server.most_in_flight == 4  # never more, and the 4 allowed were used
    assert sorted(started_at) == list(range(16))
    assert [results[i].text for i in range(16)] == [f"echo: q{i}" for i in range(16)]
    assert 0.75 <= elapsed < 2.0  # 16 x 0.2 s / 4 = 0.8 s


# ---------------------------------------------------------------- what is sent


def test_the_request_sent_is_the_chat_request() -> None:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"})
    with LoopbackChatServer(in_order(then=Reply("four is the answer"))) as server:
        teacher = teacher_for(server, extra_body={"top_k": 5})
        plain, json_mode = complete(teacher, [ChatRequest(messages, max_tokens=7, temperature=0.7, seed=3),
                                              ChatRequest(messages[1:], max_tokens=64, json_mode=True,
                                                          meta={"purpose": "probe"})])
        bodies = sorted(server.requests, key=lambda body: body["max_tokens"])
    assert bodies[0]["model"] == "loopback-model"
    assert bodies[0]["messages"] == list(messages)
    assert (bodies[0]["max_tokens"], bodies[0]["temperature"]) == (7, 0.7)
    assert "response_format" not in bodies[0]
    assert bodies[0]["seed"] == 3 and "seed" not in bodies[1]  # a sampled request's number, sent as OpenAI's seed
    assert bodies[1]["messages"] == list(messages[1:])
    assert (bodies[1]["max_tokens"], bodies[1]["temperature"]) == (64, 0.0)
    assert bodies[1]["response_format"] == {"type": "json_object"}
    assert all(body["top_k"] == 5 for body in bodies)
    assert all("meta" not in body and "purpose" not in body for body in bodies)
    # The loopback server counts a token per word (and 3 per message); the client reports its counts.
    assert (plain.prompt_tokens, plain.completion_tokens) == (prompt_tokens(list(messages)), 4)
    assert (json_mode.prompt_tokens, json_mode.completion_tokens) == (prompt_tokens(list(messages[1:])), 4)


# ---------------------------------------------------------------- the API key


def test_a_missing_api_key_variable_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXGRPO_TEST_TEACHER_KEY", raising=False)
    with pytest.raises(ConfigError, match="EXGRPO_TEST_TEACHER_KEY"):
        OpenAITeacher("m", base_url="http://127.0.0.1:9/v1", api_key_env="EXGRPO_TEST_TEACHER_KEY")
    monkeypatch.setenv("EXGRPO_TEST_TEACHER_KEY", "")
    with pytest.raises(ConfigError, match="EXGRPO_TEST_TEACHER_KEY"):
        OpenAITeacher("m", base_url="http://127.0.0.1:9/v1", api_key_env="EXGRPO_TEST_TEACHER_KEY")


def test_the_api_key_is_sent_as_a_bearer_token_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-4f9a2c7e1b"
    monkeypatch.setenv("EXGRPO_TEST_TEACHER_KEY", key)
    with LoopbackChatServer(in_order()) as server:
        teacher = teacher_for(server, api_key_env="EXGRPO_TEST_TEACHER_KEY")
        [response] = complete(teacher, [ask("q")])
        [headers] = server.request_headers
    assert response.ok
    assert headers["authorization"] == f"Bearer {key}"
    assert key not in repr(teacher) and key not in str(teacher)
    assert "loopback-model" in repr(teacher)


def test_a_server_needing_no_key_gets_a_placeholder() -> None:
    with LoopbackChatServer(in_order()) as server:
        [response] = complete(teacher_for(server, api_key_env=None), [ask("q")])
        [headers] = server.request_headers
    assert response.ok and headers["authorization"] == "Bearer EMPTY"
