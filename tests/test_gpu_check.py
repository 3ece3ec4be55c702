"""`exgrpo gpu-check` on a CPU: the same code as on a GPU, on the tiny shape (its CI run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exgrpo import gpu_check
from exgrpo.config import StudentThroughput
from exgrpo.models.shapes import SHAPES, build_shaped_model
from exgrpo.runner.estimate.run import resolved_throughput

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_every_stage_and_writes_what_the_estimate_reads(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, "-m", "exgrpo.cli", "gpu-check", "--out", str(out), "--steps", "3"],
                            capture_output=True, text=True, timeout=600, cwd=REPO, env={"COLUMNS": "200", **_env()})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["passed"] and report["shape"] == "tiny" and report["dtype"] == "bfloat16"
    assert [stage["stage"] for stage in report["stages"]] == ["LoRA SFT", "ExGRPO", "eval generation"]
    for stage in report["stages"]:
        assert stage["passed"] and stage["tokens"] > 0 and stage["tokens_per_s"] > 0 and stage["peak_memory_gib"] > 0
        assert stage["tokens_per_s"] == pytest.approx(stage["tokens"] / stage["timed_seconds"])
    # ExGRPO: 2 timed steps x 2 questions x (4 rollouts x 3 turns + 4 x 2) x 16 tokens a turn (EOS suppressed)
    assert report["stages"][1]["tokens"] == 2 * 2 * 20 * 16
    assert any("vllm" in line for line in report["not_exercised"]) == (_missing("vllm"))
    assert "pass" in result.stdout and "not exercised" in result.stdout
    throughput = resolved_throughput(StudentThroughput(), out)
    assert throughput.exgrpo_tokens_per_s == report["stages"][1]["tokens_per_s"]


def test_a_failing_stage_is_reported_and_the_others_still_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(gpu_check, "check_sft", broken)
    report = gpu_check.run_gpu_check("tiny", tmp_path / "r.json", steps=2, log=lambda line: None)
    stages = {stage["stage"]: stage for stage in report["stages"]}
    assert not report["passed"] and not stages["LoRA SFT"]["passed"]
    assert "CUDA out of memory (simulated)" in stages["LoRA SFT"]["error"]
    assert stages["ExGRPO"]["passed"] and stages["eval generation"]["passed"]
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False
    doc = tmp_path / "gpu.md"
    doc.write_text(f"# GPU\n\n{gpu_check.RESULTS_BEGIN}\nnot yet run\n{gpu_check.RESULTS_END}\n\nAfter.\n")
    gpu_check.write_results_section(doc, report)
    text = doc.read_text()
    assert "not yet run" not in text and text.endswith("After.\n") and "| LoRA SFT | FAIL |" in text
    assert f"| ExGRPO | pass | {stages['ExGRPO']['tokens_per_s']:,.0f} |" in text


def test_a_tiny_shape_saves_a_loadable_model_with_the_full_vocabulary(tmp_path: Path) -> None:
    from transformers import AutoConfig

    folder, parameters = build_shaped_model("tiny", tmp_path / "m")
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.hidden_size, config.vocab_size) == ("qwen2", 64, 4096)
    assert parameters > 4096 * 64  # the embedding of the full vocabulary, and the layers


# The parameter counts the models' cards publish, from the shapes alone (meta device: no memory).
PUBLISHED = {"qwen2.5-1.5b": 1.54e9, "qwen2.5-7b": 7.62e9, "llama-3-8b": 8.03e9, "gemma-7b": 8.54e9,
             "smollm2-135m": 0.135e9}


@pytest.mark.parametrize("shape", sorted(PUBLISHED))
def test_shapes_have_the_published_sizes(shape: str) -> None:
    from transformers import AutoConfig

    settings = dict(SHAPES[shape])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    assert _parameters(config) == pytest.approx(PUBLISHED[shape], rel=0.01)


def _parameters(config: object) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _missing(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is None


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
