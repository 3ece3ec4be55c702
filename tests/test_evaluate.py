"""`exgrpo eval` end to end: real tiny model through the CLI, scored reports, resume after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from benchmark_files import require_dataset_files
from pydantic import ValidationError

from exgrpo.config import EvalConfig
from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.registry import DatasetRegistry, load_examples
from exgrpo.errors import ConfigError
from exgrpo.evaluation.evaluate import evaluate
from exgrpo.generation.generators import Conversation, Generation, ResultCallback


class ScriptedGenerator:
    """A real Generator that answers from a table of prompts (every other one right) and counts its calls."""

    name = "scripted"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prompts_seen: list[str] = []

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int, temperature: float = 0.0,
                 on_result: ResultCallback | None = None) -> list[Generation]:
        prompts = [conversation[-1]["content"] for conversation in conversations]
        self.prompts_seen.extend(prompts)
        generations = [Generation(self.answers.get(p, "I am not sure."), 5) for p in prompts]
        for index in reversed(range(len(generations))):  # out of order, as continuous batching finishes them
            if on_result is not None:
                on_result(index, generations[index])
        return generations


def _scripted_answers(names: list[str], limit: int) -> dict[str, str]:
    from exgrpo.data.prompts import build_prompt

    answers = {}
    for name in names:
        for index, example in enumerate(load_examples(name, limit=limit)):
            if index % 2 == 0:
                answers[build_prompt(example)] = "Let me think. " + final_answer_sentence(example.answer, example.answer_type)
    return answers


def test_scores_reports_and_averages_are_computed_from_the_checker(tmp_path: Path) -> None:
    require_dataset_files("gsm8k", "arc_challenge", "boolq")
    names = ["gsm8k", "arc_challenge", "boolq"]
    config = EvalConfig(model="scripted", datasets=names, limit=8, output_dir=tmp_path, batch_size=3)
    report = evaluate(config, generator=ScriptedGenerator(_scripted_answers(names, 8)))
    rows = {row["name"]: row for row in report["datasets"]}
    assert {name: rows[name]["accuracy"]["value"] for name in names} == {name: 50.0 for name in names}
    assert all(rows[name]["num_unparsed"] == 4 for name in names)
    assert report["averages"]["held_in"]["datasets"] == ["gsm8k", "arc_challenge"]
    assert report["averages"]["held_in"]["accuracy"]["value"] == 50.0
    assert report["averages"]["held_out"]["accuracy"]["low"] < 50.0 < report["averages"]["held_out"]["accuracy"]["high"]
    predictions = [json.loads(line) for line in (tmp_path / "predictions" / "gsm8k.jsonl").read_text().splitlines()]
    assert [p["correct"] for p in predictions] == [True, False] * 4
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "| **Held-in average** (2 datasets) | | | | **50.00** |" in (tmp_path / "report.md").read_text()


def test_rerun_after_a_kill_generates_only_what_is_missing(tmp_path: Path) -> None:
    require_dataset_files("gsm8k")
    config = EvalConfig(model="scripted", datasets=["gsm8k"], limit=10, output_dir=tmp_path, batch_size=2)
    answers = _scripted_answers(["gsm8k"], 10)
    first = evaluate(config, generator=ScriptedGenerator(answers))
    predictions = tmp_path / "predictions" / "gsm8k.jsonl"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])  # killed while writing line 7
    again = ScriptedGenerator(answers)
    second = evaluate(config, generator=again)
    assert len(again.prompts_seen) == 4
    assert second["datasets"] == first["datasets"]
    unchanged = ScriptedGenerator(answers)
    evaluate(config, generator=unchanged)
    assert unchanged.prompts_seen == []
    other_model = ScriptedGenerator(answers)
    evaluate(config.model_copy(update={"model": "another"}), generator=other_model)
    assert len(other_model.prompts_seen) == 10  # stored predictions of another model are not reused


def test_missing_dataset_file_fails_before_the_model_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXGRPO_DATA_DIR", str(tmp_path))
    config = EvalConfig(model=str(tmp_path / "no-such-model"), datasets=["gsm8k"], output_dir=tmp_path / "out")
    from exgrpo.errors import DataError

    with pytest.raises(DataError, match="gsm8k/test.jsonl"):
        evaluate(config)  # loading the non-existent model would raise a different error


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "exgrpo.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.slow
def test_cli_eval_runs_the_tiny_model_end_to_end(tiny_model_path: Path, tmp_path: Path) -> None:
    require_dataset_files("gsm8k", "arc_challenge", "strategyqa", "math")
    result = _cli("eval", "--model", str(tiny_model_path), "--datasets", "gsm8k,arc_challenge,strategyqa,math",
                  "--limit", "4", "--max-new-tokens", "8", "--batch-size", "4", "--output-dir", str(tmp_path / "ev"),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert [row["name"] for row in report["datasets"]] == ["gsm8k", "arc_challenge", "strategyqa", "math"]
    assert all(row["num_examples"] == 4 and 0 < row["generated_tokens"] <= 32 for row in report["datasets"])
    assert report["backend"] == "transformers"
    assert "Held-in average" in result.stdout
    for name in ("gsm8k", "arc_challenge", "strategyqa", "math"):
        lines = (tmp_path / "ev" / "predictions" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == 4


def test_cli_errors_are_one_clear_line_with_exit_code_2(tmp_path: Path) -> None:
    result = _cli("eval", "--model", "m", "--datasets", "gsm9k", cwd=tmp_path)
    assert result.returncode == 2
    assert "datasets: Value error, unknown dataset(s) gsm9k" in result.stderr
    assert "Traceback" not in result.stderr
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: m\nlimit: [\n")
    result = _cli("eval", "--config", str(bad_yaml), cwd=tmp_path)
    assert result.returncode == 2 and "bad.yaml:3: invalid YAML" in result.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("model: m\nmax_new_token: 5\n")
    result = _cli("eval", "--config", str(typo), cwd=tmp_path)
    assert result.returncode == 2 and "max_new_token: Extra inputs are not permitted" in result.stderr


def test_a_model_retrained_in_the_same_folder_is_evaluated_again(tiny_model_path: Path, tmp_path: Path) -> None:
    import os
    import shutil

    from exgrpo.evaluation.evaluate import prediction_fingerprint

    gsm8k = DatasetRegistry().get("gsm8k")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_path, model)
    config = EvalConfig(model=str(model), datasets=["gsm8k"], output_dir=tmp_path / "out")
    before = prediction_fingerprint(config, gsm8k, "test")
    assert prediction_fingerprint(config, gsm8k, "test") == before
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))  # rewritten
    assert prediction_fingerprint(config, gsm8k, "test") != before


def test_a_named_model_keeps_its_predictions_on_a_new_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its converted folder is rebuilt (new path, new times) wherever the cache is: the weights are the same.
    from exgrpo.evaluation.evaluate import model_identity
    from exgrpo.models.named import NAMED_MODELS

    monkeypatch.setenv("EXGRPO_CACHE", str(tmp_path / "one"))
    first = model_identity("smollm2-135m-instruct")
    monkeypatch.setenv("EXGRPO_CACHE", str(tmp_path / "two"))
    assert model_identity("smollm2-135m-instruct") == first
    assert NAMED_MODELS["smollm2-135m-instruct"].sha256 in first
    assert not (tmp_path / "one").exists()  # identified without converting anything


class FixedBatchGenerator(ScriptedGenerator):
    """A scripted generator with the fixed-batch method, recording each batch it is given (its prompts)."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__(answers)
        self.batches: list[list[str]] = []

    def generate_fixed(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[Generation]:
        prompts = [conversation[-1]["content"] for conversation in conversations]
        self.batches.append(prompts)
        return [Generation(self.answers.get(p, "I am not sure."), 5) for p in prompts]


def test_deterministic_eval_gives_each_question_the_same_batch_whatever_else_runs(tmp_path: Path) -> None:
    require_dataset_files("gsm8k", "boolq")
    answers = _scripted_answers(["gsm8k", "boolq"], 10)
    alone = EvalConfig(model="scripted", datasets=["gsm8k"], limit=10, output_dir=tmp_path / "alone", batch_size=4,
                       deterministic=True)
    first = FixedBatchGenerator(answers)
    report = evaluate(alone, generator=first)
    assert [len(batch) for batch in first.batches] == [4, 4, 4]  # the last batch (2 questions) filled up to 4
    assert first.batches[2][2:] == [first.batches[2][1]] * 2
    assert report["datasets"][0]["num_examples"] == 10 and report["datasets"][0]["accuracy"]["value"] == 50.0
    beside = FixedBatchGenerator(answers)  # another dataset in the run, before it
    evaluate(alone.model_copy(update={"datasets": ["boolq", "gsm8k"], "output_dir": tmp_path / "beside"}),
             generator=beside)
    assert beside.batches[3:] == first.batches
    predictions = tmp_path / "alone" / "predictions" / "gsm8k.jsonl"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(lines[:5]) + "\n")  # killed after 5 answers: batch 2 half done
    resumed = FixedBatchGenerator(answers)
    assert evaluate(alone, generator=resumed)["datasets"] == report["datasets"]
    assert resumed.batches == first.batches[1:]  # the half-done batch again whole, with the same neighbours
    continuous = ScriptedGenerator(answers)
    evaluate(alone.model_copy(update={"deterministic": False}), generator=continuous)
    assert len(continuous.prompts_seen) == 10  # fixed-batch answers are not reused as continuous ones
    with pytest.raises(ConfigError, match="deterministic evaluation needs the transformers backend"):
        evaluate(alone.model_copy(update={"output_dir": tmp_path / "other"}), generator=ScriptedGenerator(answers))


def test_deterministic_eval_refuses_vllm_before_any_model_loads() -> None:
    """vLLM schedules its own batches: the config says so when it is read, not after a 7B model has loaded; on
    `auto` the fixed batches go to transformers even where vLLM is installed."""
    with pytest.raises(ValidationError, match="deterministic evaluation needs the transformers backend"):
        EvalConfig(model="m", datasets=["gsm8k"], backend="vllm", deterministic=True)
    assert EvalConfig(model="m", datasets=["gsm8k"], deterministic=True).generation_backend == "transformers"
    assert EvalConfig(model="m", datasets=["gsm8k"]).generation_backend == "auto"


def test_a_fixed_batch_row_does_not_depend_on_what_its_neighbours_say(tiny_model_path: Path) -> None:
    """The premise of deterministic evaluation: with the batch's shapes fixed, a row's logits are bit for bit the
    same whatever the other rows' tokens are (a continuous batch changes shapes as rows finish and join)."""
    import torch

    from exgrpo.generation.generators import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(tiny_model_path), device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(0)
    row = torch.randint(5, 300, (1, 24), generator=generator)
    neighbours = [torch.randint(5, 300, (7, 24), generator=generator) for _ in range(2)]
    with torch.inference_mode():
        logits = [model(torch.cat([row, others])).logits[0] for others in neighbours]
        alone = model(row).logits[0]
    assert torch.equal(logits[0], logits[1])
    assert torch.allclose(alone, logits[0], atol=1e-4)  # another shape: close, not necessarily the same bits
