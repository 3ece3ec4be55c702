"""`exgrpo probe` end to end against a real loopback OpenAI server: statistics, outputs, filters, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from benchmark_files import require_dataset_files
from scripted_teacher import ScriptedTeacher

from exgrpo.config import ProbeConfig
from exgrpo.data.answers import check_example
from exgrpo.data.registry import load_examples
from exgrpo.data.schema import AnswerType, Example
from exgrpo.errors import ConfigError
from exgrpo.inversion.pipeline import (
    ProbeOutcome,
    QuestionState,
    TeacherCallsFailed,
    difficulty_verdict,
    run_probe,
)
from exgrpo.inversion.rules import all_rules
from exgrpo.teachers.base import ChatRequest, request_key
from exgrpo.teachers.cache import TeacherCache
from exgrpo.teachers.loopback_server import LoopbackChatServer, Reply

CONSISTENT_RULES = ["R1", "R2", "R3", "R4", "R5", "R6", "R7"]


def openai_teacher(server: LoopbackChatServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "model": "scripted-teacher", "base_url": server.base_url, "api_key_env": None,
            "concurrency": 8, "timeout": 10, "max_retries": 0, **extra}


def body_key(body: dict[str, Any]) -> str:
    """The cache key of a request as the server received it."""
    request = ChatRequest(messages=tuple(body["messages"]), max_tokens=body["max_tokens"],
                          temperature=body["temperature"], json_mode="response_format" in body)
    return request_key(body["model"], request)


@pytest.fixture(scope="module")
def gsm8k_questions() -> list[Example]:
    require_dataset_files("gsm8k")
    return load_examples("gsm8k", "train", limit=10)


def test_each_rule_meets_its_scripted_fate_in_the_statistics(gsm8k_questions: list[Example], tmp_path: Path) -> None:
    with LoopbackChatServer(ScriptedTeacher(gsm8k_questions)) as server:
        config = ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path)
        stats = run_probe(config)
        first_run_requests = server.request_count()
        # CoT, probes, repair rounds 1 (R7, R8) and 2 (R8), answers to 9 valid rules, consistency for 8 of them
        assert first_run_requests == 10 + 80 + 16 + 8 + 72 + 64
        rerun = run_probe(config)
        assert server.request_count() == first_run_requests  # everything comes from the cache
    assert stats["datasets"]["gsm8k"] == {"questions": 10, "teacher_failed": 0, "teacher_truncated": 0, "teacher_wrong": 2,
                                          "no_consistent_probes": 0, "too_easy": 0, "above_max_solved": 0, "kept": 8,
                                          "probes_kept": 56}
    rules = stats["rules"]
    assert all(rules[r]["consistent"] == rules[r]["kept"] == 8 for r in CONSISTENT_RULES)
    assert (rules["R7"]["repaired"], rules["R8"]["invalid"], rules["R9"]["mismatched"], rules["R10"]["inconsistent"]) \
        == (8, 8, 8, 8)
    assert stats["rejection_reasons"] == {"reply contains no JSON object": 8}
    assert stats["teachers"]["teacher"]["model"] == "scripted-teacher"
    assert stats["teachers"]["teacher"]["calls"] == first_run_requests
    assert rerun["teachers"]["teacher"] == {**stats["teachers"]["teacher"], "calls": 0, "cached": first_run_requests,
                                            "prompt_tokens": 0, "completion_tokens": 0}
    assert rerun["rules"] == stats["rules"] and rerun["datasets"] == stats["datasets"]
    # The ledger adds the runs up: calls paid once, answers from the cache the second time.
    assert rerun["cumulative_calls"]["scripted-teacher"] == {
        **{name: 0 for name in ("errors", "longer", "truncated", "rejected")}, "runs": 2, "calls": first_run_requests,
        "cached": first_run_requests, "prompt_tokens": stats["teachers"]["teacher"]["prompt_tokens"],
        "completion_tokens": stats["teachers"]["teacher"]["completion_tokens"]}


def test_outputs_hold_the_ei_dataset_every_probe_and_the_reports(gsm8k_questions: list[Example], tmp_path: Path) -> None:
    import datasets

    with LoopbackChatServer(ScriptedTeacher(gsm8k_questions)) as server:
        run_probe(ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path))
    records = [json.loads(line) for line in (tmp_path / "ei.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["schema_version"] == 1 for r in records)
    first = records[0]
    assert [p["rule"] for p in first["probes"]] == CONSISTENT_RULES
    assert check_example(first["teacher_response"], Example.from_dict(first)).correct
    for probe in first["probes"]:
        as_example = Example(id=probe["id"], question=probe["question"], answer=probe["answer"],
                             answer_type=AnswerType(probe["answer_type"]), source="gsm8k",
                             choices=tuple(probe["choices"]) or None)
        assert check_example(probe["teacher_response"], as_example).correct
    hf = datasets.load_from_disk(str(tmp_path / "ei_dataset"))
    assert hf.num_rows == 8 and hf[0]["probes"][0]["question"] == first["probes"][0]["question"]
    log = [json.loads(line) for line in (tmp_path / "probes.jsonl").read_text().splitlines()]
    assert len(log) == 80
    assert {r["status"] for r in log if r["rule"] == "R8"} == {"invalid"}
    assert all(r["reason"] == "reply contains no JSON object" for r in log if r["rule"] == "R8")
    assert {r["repairs"] for r in log if r["rule"] == "R8"} == {2} and {r["repairs"] for r in log if r["rule"] == "R7"} == {1}
    markdown = (tmp_path / "stats.md").read_text()
    assert "| R9 | error detection | 8 | 0 | 0 | 0 | 0 | 8 | 0 | 0 | 0 |" in markdown
    assert "| gsm8k | 10 | 0 | 0 | 2 | 0 | 0 | 0 | 8 | 56 |" in markdown


class FailingFor:
    """The scripted teacher, but HTTP 500 for probe requests of one rule until `healthy` is set."""

    def __init__(self, inner: ScriptedTeacher, rule: str) -> None:
        self.inner, self.rule, self.healthy = inner, rule, False

    def __call__(self, body: dict[str, Any]) -> Reply:
        text = body["messages"][0]["content"]
        if not self.healthy and text.startswith("You write probing") and f"({self.rule}):" in text:
            return Reply("overloaded", status=500)
        return self.inner(body)


def test_failed_calls_stop_the_stage_and_a_rerun_asks_only_for_them(gsm8k_questions: list[Example],
                                                                    tmp_path: Path) -> None:
    script = FailingFor(ScriptedTeacher(gsm8k_questions), "R3")
    with LoopbackChatServer(script) as server:
        config = ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path)
        with pytest.raises(TeacherCallsFailed, match=r"8 of 80 calls to scripted-teacher failed in stage 'teacher writes probes'"
                                                     r".*8 x HTTP 500.*rerun the same command"):
            run_probe(config)
        assert not (tmp_path / "ei.jsonl").exists()
        answered_before = set(TeacherCache(config.resolved_cache_path())._entries)
        seen_before = server.request_count()
        script.healthy = True
        stats = run_probe(config)
        rerun_keys = [body_key(body) for body in server.requests[seen_before:]]
    assert not answered_before & set(rerun_keys), "an answer already paid for was asked again"
    assert len(rerun_keys) == len(set(rerun_keys))
    assert stats["datasets"]["gsm8k"]["probes_kept"] == 56


def test_difficulty_verdicts_follow_eq_2() -> None:
    example = Example(id="q", question="Q?", answer="1", answer_type=AnswerType.number, source="toy")
    config = ProbeConfig(datasets=["gsm8k"], teacher={"kind": "local", "model": "x"},
                         difficulty={"enabled": True, "student": "s", "max_solved": 1})

    def state(*solved: bool | None, status: str = "consistent") -> QuestionState:
        outcomes = [ProbeOutcome(example, all_rules()["R1"], status=status, student_solved=s) for s in solved]
        return QuestionState(example, outcomes=outcomes)

    assert difficulty_verdict(state(), config) == "no_consistent_probes"
    assert difficulty_verdict(state(False, True, status="inconsistent"), config) == "no_consistent_probes"
    assert difficulty_verdict(state(True, True), config) == "too_easy"
    assert difficulty_verdict(state(True, True, False), config) == "above_max_solved"
    assert difficulty_verdict(state(True, False, False), config) == "kept"
    assert difficulty_verdict(state(False, False), config) == "kept"  # solved none of N' > 0: kept (Eq. 2)
    no_bound = config.model_copy(update={"difficulty": config.difficulty.model_copy(update={"max_solved": None})})
    assert difficulty_verdict(state(True, True, False), no_bound) == "kept"


@pytest.mark.slow
def test_difficulty_filter_runs_the_base_student(gsm8k_questions: list[Example], tiny_model_path: Path,
                                                 tmp_path: Path) -> None:
    with LoopbackChatServer(ScriptedTeacher(gsm8k_questions)) as server:
        config = ProbeConfig(datasets=["gsm8k"], limit=5, teacher=openai_teacher(server), output_dir=tmp_path,
                             rules=["R1", "R2"], difficulty={"student": str(tiny_model_path), "max_new_tokens": 8})
        stats = run_probe(config)
    student = stats["teachers"]["student"]
    assert (student["model"], student["calls"]) == (str(tiny_model_path), 8)  # 4 kept questions x 2 probes
    records = [json.loads(line) for line in (tmp_path / "ei.jsonl").read_text().splitlines()]
    # An untrained student solves nothing: no question is too easy, every one is kept.
    assert [r["difficulty"] for r in records] == [{"consistent": 2, "solved": 0}] * 4
    assert all(p["student_solved"] is False for r in records for p in r["probes"])


def test_replay_teacher_serves_palm_rationales_and_its_errors_are_filtered(tmp_path: Path) -> None:
    require_dataset_files("commonsenseqa")
    from exgrpo.data.registry import data_dir
    from exgrpo.teachers.replay import load_dss_rationales

    questions = load_examples("commonsenseqa", "train", limit=20)
    palm = load_dss_rationales(data_dir() / "dss_palm_rationales", "commonsenseqa")
    palm_wrong = sum(not check_example(palm[("commonsenseqa", q.id)], q).correct for q in questions)
    with LoopbackChatServer(ScriptedTeacher(questions)) as server:
        config = ProbeConfig(datasets=["commonsenseqa"], limit=20, teacher={"kind": "replay"},
                             probe_teacher=openai_teacher(server), rules=["R1"], output_dir=tmp_path)
        stats = run_probe(config)
        cot_prompts = [b for b in server.requests if b["messages"][-1]["content"].startswith(questions[0].question)
                       and len(b["messages"]) == 1]
    assert cot_prompts == []  # the original questions were answered by the replay teacher, not the server
    assert 0 < palm_wrong < 20
    assert stats["datasets"]["commonsenseqa"]["teacher_wrong"] == palm_wrong
    assert stats["teachers"]["teacher"]["model"] == "replay:dss-palm-540b"
    assert stats["teachers"]["teacher"]["calls"] == 20
    records = [json.loads(line) for line in (tmp_path / "ei.jsonl").read_text().splitlines()]
    assert len(records) == 20 - palm_wrong
    assert all(r["teacher_response"] == palm[("commonsenseqa", r["id"])] for r in records)


def test_config_errors_are_caught_before_any_call() -> None:
    with pytest.raises(ValueError, match="set probe_teacher"):
        ProbeConfig(datasets=["commonsenseqa"], teacher={"kind": "replay"})
    with pytest.raises(ValueError, match="difficulty.student is required"):
        ProbeConfig(datasets=["gsm8k"], teacher={"kind": "local", "model": "m"}, difficulty={"enabled": True})
    with pytest.raises(ValueError, match="unknown rule"):
        ProbeConfig(datasets=["gsm8k"], teacher={"kind": "local", "model": "m"}, rules=["R11"])
    with pytest.raises(ValueError, match="teacher"):
        ProbeConfig(datasets=["gsm8k"], teacher={"kind": "gemini-magic", "model": "m"})


def test_missing_api_key_fails_before_any_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_dataset_files("gsm8k")
    monkeypatch.delenv("EXGRPO_TEST_KEY", raising=False)
    config = ProbeConfig(datasets=["gsm8k"], limit=2, output_dir=tmp_path,
                         teacher={"kind": "openai", "model": "m", "api_key_env": "EXGRPO_TEST_KEY"})
    with pytest.raises(ConfigError, match="EXGRPO_TEST_KEY is not set"):
        run_probe(config)


def _write_config(path: Path, server: LoopbackChatServer, output_dir: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "datasets": ["gsm8k"], "limit": 10, "output_dir": str(output_dir),
        "teacher": openai_teacher(server, concurrency=4)}))
    return path


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_dataset_without_paying_twice(
        gsm8k_questions: list[Example], tmp_path: Path) -> None:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "exgrpo.cli", "probe", "--config"]
    with LoopbackChatServer(ScriptedTeacher(gsm8k_questions, delay=0.03)) as server:
        reference = _write_config(tmp_path / "reference.yaml", server, tmp_path / "reference")
        subprocess.run([*command, str(reference)], check=True, capture_output=True, env=environment, timeout=120)
        uninterrupted_requests = server.request_count()

        config = _write_config(tmp_path / "killed.yaml", server, tmp_path / "killed")
        before = server.request_count()
        process = subprocess.Popen([*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=environment)
        deadline = time.time() + 60
        while server.request_count() - before < uninterrupted_requests // 2 and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
        paid_before_kill = set(TeacherCache(tmp_path / "killed" / "teacher_cache.jsonl")._entries)
        assert 0 < len(paid_before_kill) < uninterrupted_requests
        killed_run_requests = server.request_count() - before

        resumed_from = server.request_count()
        subprocess.run([*command, str(config)], check=True, capture_output=True, env=environment, timeout=120)
        rerun_keys = [body_key(body) for body in server.requests[resumed_from:]]
    assert not paid_before_kill & set(rerun_keys), "the rerun asked again for an answer already cached"
    assert killed_run_requests + len(rerun_keys) <= uninterrupted_requests + 4  # at most the 4 calls in flight
    assert (tmp_path / "killed" / "ei.jsonl").read_text() == (tmp_path / "reference" / "ei.jsonl").read_text()
    # The killed run never wrote its counts, but its paid calls are in the cache, and in the totals.
    stats = json.loads((tmp_path / "killed" / "stats.json").read_text())
    cache_entries = len((tmp_path / "killed" / "teacher_cache.jsonl").read_text().splitlines())
    assert stats["cumulative_calls"]["scripted-teacher"]["calls"] == cache_entries >= killed_run_requests - 4
    assert stats["cumulative_calls"]["scripted-teacher"]["runs"] == 1  # only the run that ended counted itself


# ---------------------------------------------------------------- what a misbehaving teacher does to the stage


class CuttingCoT:
    """The scripted teacher, but the rationale of question `needs_more` is cut off (finish_reason "length")
    below 2048 tokens and that of `endless` always; every request's budget is recorded."""

    def __init__(self, inner: ScriptedTeacher, needs_more: str, endless: str) -> None:
        self.inner, self.needs_more, self.endless, self.budgets = inner, needs_more, endless, []

    def __call__(self, body: dict[str, Any]) -> Reply:
        text = body["messages"][-1]["content"]
        self.budgets.append(body["max_tokens"])
        if len(body["messages"]) == 1 and (text == self.endless or (text == self.needs_more and body["max_tokens"] < 2048)):
            return Reply("Step by step, the first thing to note is", finish_reason="length")
        return self.inner(body)


def test_a_cut_off_rationale_is_asked_again_longer_then_recorded_as_truncated_not_wrong(
        gsm8k_questions: list[Example], tmp_path: Path) -> None:
    from exgrpo.data.prompts import build_prompt

    script = CuttingCoT(ScriptedTeacher(gsm8k_questions), build_prompt(gsm8k_questions[0]),
                        build_prompt(gsm8k_questions[1]))
    with LoopbackChatServer(script) as server:
        config = ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path,
                             max_tokens=512, probe_max_tokens=512, max_tokens_cap=2048)
        stats = run_probe(config)
        asked = server.request_count()
        rerun = run_probe(config)
        assert server.request_count() == asked  # the cut-off replies are in the cache too: nothing is paid twice
    assert sorted(script.budgets).count(2048) == 2 and sorted(script.budgets).count(1024) == 2  # 512 -> 1024 -> 2048
    assert stats["datasets"]["gsm8k"]["teacher_truncated"] == 1 and stats["datasets"]["gsm8k"]["teacher_wrong"] == 2
    assert stats["datasets"]["gsm8k"]["kept"] == 7  # the question answered at 2048 tokens is kept
    assert stats["teachers"]["teacher"]["longer"] == 4 and stats["teachers"]["teacher"]["truncated"] == 1
    assert stats["unanswered"] == [{"question_id": gsm8k_questions[1].id, "status": "teacher_truncated",
                                    "reason": "the reply was cut off at max_tokens_cap"}]
    assert rerun["datasets"] == stats["datasets"] and rerun["teachers"]["teacher"]["truncated"] == 1
    assert "| gsm8k | 10 | 0 | 1 | 2 |" in (tmp_path / "stats.md").read_text()


def test_replies_without_an_answer_are_asked_again_and_the_run_completes(gsm8k_questions: list[Example],
                                                                          tmp_path: Path) -> None:
    inner, seen = ScriptedTeacher(gsm8k_questions), set()

    def flaky(body: dict[str, Any]) -> Reply:  # the first time each request comes: 200 with an unusable body
        key = body_key(body)
        if key not in seen:
            seen.add(key)
            return Reply(raw_body=["not json", '{"choices": []}', "{}"][len(seen) % 3])
        return inner(body)

    with LoopbackChatServer(flaky) as server:
        stats = run_probe(ProbeConfig(datasets=["gsm8k"], limit=10, output_dir=tmp_path,
                                      teacher=openai_teacher(server, max_retries=1)))
    assert stats["datasets"]["gsm8k"]["probes_kept"] == 56 and stats["teachers"]["teacher"]["errors"] == 0


def test_an_authentication_error_stops_the_stage_after_the_requests_in_flight(tmp_path: Path) -> None:
    from exgrpo.teachers.base import TeacherUnavailable

    require_dataset_files("gsm8k")
    with LoopbackChatServer(lambda body: Reply("invalid api key", status=401, delay=0.05)) as server:
        config = ProbeConfig(datasets=["gsm8k"], limit=40, teacher=openai_teacher(server), output_dir=tmp_path)
        with pytest.raises(TeacherUnavailable, match=rf"{server.base_url} \(model scripted-teacher\).*HTTP 401"):
            run_probe(config)
        assert server.request_count() <= 8  # concurrency 8: those in flight when the first 401 came back


def test_nothing_listening_stops_the_stage_at_once_naming_the_url(tmp_path: Path) -> None:
    import socket

    from exgrpo.teachers.base import TeacherUnavailable

    require_dataset_files("gsm8k")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    teacher = {"kind": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": None}
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable, match=rf"http://127.0.0.1:{port}/v1"):
        run_probe(ProbeConfig(datasets=["gsm8k"], limit=10, teacher=teacher, output_dir=tmp_path))
    # Not the client's 5 retries with backoff (about 15 s); the margin is for a loaded machine (2 s failed once
    # beside a study and another test run).
    assert time.monotonic() - started < 8.0


def test_a_request_the_server_refuses_is_recorded_with_its_question_and_the_run_goes_on(
        gsm8k_questions: list[Example], tmp_path: Path) -> None:
    from exgrpo.data.prompts import build_prompt

    inner, too_long = ScriptedTeacher(gsm8k_questions), build_prompt(gsm8k_questions[2])

    def script(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["content"] == too_long:
            return Reply("This model's maximum context length is 8 tokens", status=400)
        return inner(body)

    with LoopbackChatServer(script) as server:
        stats = run_probe(ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path))
    assert stats["datasets"]["gsm8k"]["teacher_failed"] == 1 and stats["datasets"]["gsm8k"]["kept"] == 7
    [failed] = stats["unanswered"]
    assert failed["question_id"] == gsm8k_questions[2].id and "maximum context length" in failed["reason"]


def test_an_empty_dataset_is_an_error_not_an_empty_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text("")
    monkeypatch.setenv("EXGRPO_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no questions to probe: datasets gsm8k, split 'train'"):
        run_probe(ProbeConfig(datasets=["gsm8k"], teacher={"kind": "openai", "model": "m", "api_key_env": None},
                              output_dir=tmp_path / "out"))


def test_a_failed_rerun_leaves_no_earlier_outputs_looking_current(gsm8k_questions: list[Example], tmp_path: Path) -> None:
    with LoopbackChatServer(ScriptedTeacher(gsm8k_questions)) as server:
        run_probe(ProbeConfig(datasets=["gsm8k"], limit=10, teacher=openai_teacher(server), output_dir=tmp_path))
    assert (tmp_path / "ei.jsonl").exists() and (tmp_path / "stats.json").exists()
    # Another configuration (more questions), and the teacher fails.
    with LoopbackChatServer(lambda body: Reply("overloaded", status=500)) as server, pytest.raises(TeacherCallsFailed):
        run_probe(ProbeConfig(datasets=["gsm8k"], limit=12, teacher=openai_teacher(server), output_dir=tmp_path))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["teacher_cache.jsonl", "teacher_cache.jsonl.calls.json"], left
