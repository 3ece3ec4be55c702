"""The cost estimate of `exgrpo run --dry-run`, checked against real runs of the probe stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from benchmark_files import require_dataset_files
from scripted_teacher import ScriptedTeacher

from exgrpo.config import (
    EstimateConfig,
    ExactTeacherConfig,
    OpenAITeacherConfig,
    ProbeConfig,
    ReplayTeacherConfig,
    SFTStageConfig,
    StudentThroughput,
)
from exgrpo.data.registry import load_examples
from exgrpo.errors import ConfigError
from exgrpo.inversion.pipeline import run_probe
from exgrpo.runner.estimate.run import resolved_throughput
from exgrpo.runner.estimate.student_tokens import sft_load
from exgrpo.runner.estimate.teacher_calls import ProbeForecast, forecast_probe_stage
from exgrpo.runner.estimate.tokens import TokenCounter
from exgrpo.teachers.factory import make_backend, teacher_identity
from exgrpo.teachers.loopback_server import LoopbackChatServer, last_user_message
from exgrpo.world.teacher import WORLD_TEACHERS

REPO = Path(__file__).resolve().parents[1]


def probe_config(server: LoopbackChatServer, output_dir: Path, limit: int, **extra: Any) -> ProbeConfig:
    teacher = {"kind": "openai", "model": "scripted-teacher", "base_url": server.base_url, "api_key_env": None,
               "concurrency": 8, "timeout": 10, "max_retries": 0}
    return ProbeConfig(datasets=["gsm8k"], limit=limit, teacher=teacher, output_dir=output_dir, max_tokens=256,
                       probe_max_tokens=256, **extra)


def totals(forecast: ProbeForecast) -> dict[str, float]:
    rows = [row for by_purpose in forecast.rows.values() for row in by_purpose.values()]
    return {"calls": sum(r.to_pay for r in rows), "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows)}


def within(estimated: float, actual: float, tolerance: float = 0.15) -> bool:
    return abs(estimated - actual) <= tolerance * actual


def test_estimate_after_a_pilot_is_within_15_percent_of_the_real_run(tmp_path: Path) -> None:
    """A 10-question pilot, then the 30-question run: the estimate (sending nothing) vs what the run paid."""
    require_dataset_files("gsm8k")
    with LoopbackChatServer(ScriptedTeacher(load_examples("gsm8k", "train", limit=30))) as server:
        cold = forecast_probe_stage(probe_config(server, tmp_path, 30), EstimateConfig())
        assert server.request_count() == 0  # a dry run sends nothing
        run_probe(probe_config(server, tmp_path, 10))
        pilot_requests = server.request_count()
        estimate = forecast_probe_stage(probe_config(server, tmp_path, 30), EstimateConfig())
        assert server.request_count() == pilot_requests
        stats = run_probe(probe_config(server, tmp_path, 30))
        after = forecast_probe_stage(probe_config(server, tmp_path, 30), EstimateConfig())
    paid = stats["teachers"]["teacher"]
    predicted = totals(estimate)
    assert paid["calls"] == server.request_count() - pilot_requests
    for name in ("calls", "prompt_tokens", "completion_tokens"):
        assert within(predicted[name], paid[name]), (name, predicted[name], paid[name])
    assert within(estimate.kept_questions, stats["datasets"]["gsm8k"]["kept"])
    assert within(estimate.consistent_probes, stats["datasets"]["gsm8k"]["probes_kept"])
    assert estimate.notes == []  # every rate and length was measured on the pilot
    rows = estimate.rows["scripted-teacher"]
    assert rows["cot"].cached == 10 and rows["cot"].to_pay == 20  # the rationales: known exactly
    repairs = sum(last_user_message(body).startswith("Your reply was rejected")
                  for body in server.requests[pilot_requests:])
    assert repairs > 0 and within(rows["repair"].to_pay, repairs)  # R7, R8: rates per rule and per attempt
    # Before any answer: the rationales are known, the rest assumes every reply passes (an upper bound on calls
    # here, with its assumptions said).
    assert totals(cold)["calls"] >= paid["calls"] + pilot_requests
    assert cold.rows["scripted-teacher"]["cot"].to_pay == 30
    assert any("assumed: the teacher is right" in note for note in cold.notes)
    # Everything cached: nothing left to pay.
    assert totals(after)["calls"] == 0 and after.kept_questions == stats["datasets"]["gsm8k"]["kept"]


def test_sft_tokens_from_the_forecast_match_the_ei_data_it_forecast(tmp_path: Path) -> None:
    require_dataset_files("gsm8k")
    with LoopbackChatServer(ScriptedTeacher(load_examples("gsm8k", "train", limit=30))) as server:
        run_probe(probe_config(server, tmp_path, 10))
        forecast = forecast_probe_stage(probe_config(server, tmp_path, 30), EstimateConfig())
        run_probe(probe_config(server, tmp_path, 30))
    for settings in ({}, {"format": "step_by_step"}, {"dialogues_per_question": 2, "dialogue_probes": 3}):
        counted = sft_load(SFTStageConfig(model="m", ei_data=tmp_path / "ei.jsonl", output_dir=tmp_path, **settings),
                           forecast, TokenCounter())
        expected = sft_load(SFTStageConfig(model="m", ei_data=tmp_path / "none.jsonl", output_dir=tmp_path,
                                           **settings), forecast, TokenCounter())
        assert "counted on" in counted.notes[0] and "expected EI data" in expected.notes[0]
        assert counted.steps == expected.steps, settings
        assert within(expected.tokens, counted.tokens), (settings, expected.tokens, counted.tokens)


def test_the_sft_estimate_counts_the_extra_rationales_of_answer_aug(tmp_path: Path) -> None:
    """probe.answer_samples + sft.extra_rationales (the Answer-Aug baseline): each kept question trains on every
    other correct rationale too, so the forecast must count them before the probe stage has run."""
    require_dataset_files("gsm8k")
    with LoopbackChatServer(ScriptedTeacher(load_examples("gsm8k", "train", limit=30))) as server:
        cold = forecast_probe_stage(probe_config(server, tmp_path, 30, answer_samples=2), EstimateConfig())
        run_probe(probe_config(server, tmp_path, 10, answer_samples=2))
        forecast = forecast_probe_stage(probe_config(server, tmp_path, 30, answer_samples=2), EstimateConfig())
        run_probe(probe_config(server, tmp_path, 30, answer_samples=2))
    assert any("extra rationales" in note for note in cold.notes) and cold.extra_rationales > 0
    assert forecast.extra_rationales == 2.0  # the pilot's samples: every one a new wording of a right answer

    def load(data: str, **settings: Any) -> Any:
        stage = SFTStageConfig(model="m", ei_data=tmp_path / data, output_dir=tmp_path, **settings)
        return sft_load(stage, forecast, TokenCounter())

    counted, expected = load("ei.jsonl", extra_rationales=True), load("none.jsonl", extra_rationales=True)
    assert "counted on" in counted.notes[0] and "2.0 extra rationales each" in expected.notes[0]
    assert counted.steps == expected.steps
    assert within(expected.tokens, counted.tokens), (expected.tokens, counted.tokens)
    skd = {"include_probes": False, "dialogues_per_question": 0}  # the question and its rationales only
    alone = load("none.jsonl", extra_rationales=True, **skd)
    assert within(alone.tokens, 3 * load("none.jsonl", **skd).tokens, 0.01)  # three rationales per question, not one


def test_the_identity_in_cache_keys_is_known_without_building_the_backend(tmp_path: Path) -> None:
    configs = [OpenAITeacherConfig(kind="openai", model="gpt-x", api_key_env=None),
               ReplayTeacherConfig(kind="replay", file=tmp_path / "none.jsonl", name="palm"),
               ExactTeacherConfig(kind="exact")]
    (tmp_path / "none.jsonl").write_text("")
    for config in configs:  # the exact teacher is the world's, handed in as the runner does
        assert teacher_identity(config, WORLD_TEACHERS) == make_backend(config, extra_teachers=WORLD_TEACHERS).model


def test_throughputs_come_from_a_gpu_check_file_unless_given(tmp_path: Path) -> None:
    result = tmp_path / "gpu_check.json"
    result.write_text(json.dumps({"throughput": {"sft_tokens_per_s": 900.0, "exgrpo_tokens_per_s": 50.0,
                                                 "generate_tokens_per_s": 400.0}}))
    merged = resolved_throughput(StudentThroughput(sft_tokens_per_s=1000.0), result)
    assert (merged.sft_tokens_per_s, merged.exgrpo_tokens_per_s, merged.generate_tokens_per_s) == (1000.0, 50.0, 400.0)
    result.write_text("{}")
    with pytest.raises(ConfigError, match="not a gpu-check result"):
        resolved_throughput(StudentThroughput(), result)


def test_dry_run_prints_calls_tokens_cost_and_hours_per_stage(tmp_path: Path) -> None:
    require_dataset_files("gsm8k", "svamp")
    recipe = {"run_dir": str(tmp_path / "run"), "base_model": str(tmp_path / "student"),
              "probe": {"datasets": ["gsm8k"], "limit": 40, "rules": ["R1", "R2"],
                        "teacher": {"kind": "openai", "model": "priced-model", "base_url": "http://127.0.0.1:9/v1",
                                    "api_key_env": None}},
              "sft": {"epochs": 1}, "train": {"max_steps": 3},
              "eval": {"datasets": ["svamp"], "limit": 25, "max_new_tokens": 64},
              "estimate": {"prices": {"priced-model": {"input_per_million": 2.0, "output_per_million": 8.0}},
                           "throughput": {"sft_tokens_per_s": 1000, "exgrpo_tokens_per_s": 100,
                                          "generate_tokens_per_s": 500}}}
    (tmp_path / "student").mkdir()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = subprocess.run([sys.executable, "-m", "exgrpo.cli", "run", str(path), "--dry-run"], capture_output=True,
                            text=True, timeout=120, cwd=REPO, env={"COLUMNS": "200", **_env()})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not (tmp_path / "run").exists()  # nothing written
    rationales = next(line for line in out.splitlines() if "│ rationales" in line).split("│")
    assert [cell.strip() for cell in rationales[2:5]] == ["40", "0", "40"]  # total, cached, to pay
    everything = next(line for line in out.splitlines() if "│ all " in line).split("│")
    prompt, completion, cost = (float(cell.replace(",", "")) for cell in everything[5:8])
    assert cost == pytest.approx((2.0 * prompt + 8.0 * completion) / 1e6, abs=0.006)
    student = out.split("Student side")[1]
    for stage in ("sft", "train (ExGRPO)", "eval: base", "eval: sft", "eval: exgrpo"):
        row = next(line for line in student.splitlines() if f"│ {stage} " in line).split("│")
        tokens, hours = float(row[3].replace(",", "")), float(row[5])
        rate = {"sft": 1000, "train (ExGRPO)": 100}.get(stage, 500)
        assert tokens > 0 and hours == pytest.approx(tokens / rate / 3600, abs=0.006), stage
    assert "25 questions in 1 datasets" in out


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_tokens_are_counted_with_the_tokenizer_given_or_approximated(tiny_model_path: Path) -> None:
    from transformers import AutoTokenizer

    text = "Natalia sold clips to 48 of her friends in April."
    counted = TokenCounter(str(tiny_model_path))
    assert counted.text(text) == len(AutoTokenizer.from_pretrained(tiny_model_path)(text, add_special_tokens=False)
                                     ["input_ids"])
    assert TokenCounter().text(text) == -(-len(text) // 4)  # about 4 characters a token, rounded up
    assert TokenCounter().messages([{"role": "user", "content": text}]) == TokenCounter().text(text) + 4
    with pytest.raises(ConfigError, match="estimate.tokenizer: cannot load"):
        TokenCounter(str(tiny_model_path / "missing"))


def test_the_rl_estimate_counts_probe_turns_and_final_answers_under_their_own_budgets(tmp_path: Path) -> None:
    from exgrpo.config import TrainConfig
    from exgrpo.runner.estimate.student_tokens import train_load

    # Teacher answers: 200-token rationales, 40-token probe answers, 2 kept probes a question.
    forecast = ProbeForecast(rows={}, questions=10, rules=["R1"], kept_questions=10, consistent_probes=20,
                             prompt_tokens={"cot": 50, "probe_answer": 30}, completion_tokens={"cot": 200, "probe_answer": 40},
                             calibration=1.0, counter="counted")

    def generated(**budgets: Any) -> float:
        config = TrainConfig(model="m", ei_data=tmp_path, output_dir=tmp_path, max_steps=1, questions_per_step=1,
                             exgrpo={"k": 2, "k_partial": 1, "rollouts_full": 1, "rollouts_partial": 1}, **budgets)
        return train_load(config, forecast).generated

    assert generated(max_new_tokens=32) == (2 * 32 + 32) + (32 + 32)  # A: 2 probes and Q, B: 1 probe and Q
    assert generated(max_new_tokens=32, max_answer_tokens=100) == (2 * 32 + 100) + (32 + 100)
    assert generated(max_new_tokens="auto") == (2 * 40 + 200) + (40 + 200)  # auto cuts no teacher-length answer
