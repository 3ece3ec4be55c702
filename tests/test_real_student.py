"""The real student (SmolLM2-135M-Instruct, a 49k vocabulary, its own ChatML template) through every stage:
a LoRA SFT step and an ExGRPO step in bf16, the difficulty filter, and `exgrpo eval` by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toy_ei import write_toy_ei

from exgrpo.config import LoraSettings, ProbeConfig, SFTStageConfig, TrainConfig

pytestmark = pytest.mark.slow
LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])


def test_lora_sft_step_in_bf16(smollm2_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from exgrpo.training.sft import run_sft

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    final = run_sft(SFTStageConfig(model="smollm2-135m-instruct", ei_data=ei, output_dir=tmp_path / "sft",
                                   max_steps=2, per_device_batch_size=2, max_length=256, lora=LORA,
                                   dtype="bfloat16", report_to=["none"], logging_steps=1, save_steps=100))
    history = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert losses and all(0 < loss < 20 for loss in losses)
    model = AutoModelForCausalLM.from_pretrained(final)  # a plain model: the adapter is merged
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_exgrpo_step_in_bf16(smollm2_path: Path, tmp_path: Path) -> None:
    from exgrpo.rl.train import run_train

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    config = TrainConfig(model="smollm2-135m-instruct", ei_data=ei, output_dir=tmp_path / "exgrpo", max_steps=1,
                         learning_rate=1e-5, questions_per_step=1, max_new_tokens=6, lora=LORA, dtype="bfloat16",
                         report_to=["none"], logging_steps=1, save_steps=100,
                         exgrpo={"k": 1, "k_partial": 0, "rollouts_full": 2, "rollouts_partial": 2})
    final = run_train(config)
    history = json.loads((tmp_path / "exgrpo" / "log_history.json").read_text())
    step = next(entry for entry in history if "loss" in entry)
    assert "exgrpo/dsu_fired" in step and step["completions/mean_length"] > 0
    assert (final / "model.safetensors").exists()


def test_difficulty_filter_with_the_real_student(smollm2_path: Path, tmp_path: Path) -> None:
    from exgrpo.inversion.pipeline import run_probe
    from exgrpo.world.datasets import register_world, write_world

    world = {"seed": 3, "train_size": 1, "test_size": 1, "ood_size": 1}
    write_world(tmp_path / "world", **world)
    register_world(tmp_path / "world")
    config = ProbeConfig(datasets=["world_train"], output_dir=tmp_path / "probe", rules=["R1", "R5", "R8"],
                         teacher={"kind": "exact", "world": world},
                         difficulty={"enabled": True, "student": "smollm2-135m-instruct", "max_new_tokens": 24,
                                     "batch_size": 16})
    stats = run_probe(config)
    dataset = stats["datasets"]["world_train"]
    answered = [json.loads(line) for line in (tmp_path / "probe" / "probes.jsonl").read_text().splitlines()]
    assert dataset["questions"] == 4
    consistent = [record for record in answered if record["status"] == "consistent"]
    assert consistent and all(record["student_solved"] in (True, False) for record in consistent)
    assert dataset["kept"] + dataset["too_easy"] + dataset["no_consistent_probes"] == 4
    assert stats["teachers"]["student"]["calls"] == len(consistent)


def test_eval_by_name_from_the_command_line(smollm2_path: Path, tmp_path: Path) -> None:
    from benchmark_files import require_dataset_files

    require_dataset_files("gsm8k")
    result = subprocess.run(
        [sys.executable, "-m", "exgrpo.cli", "eval", "--model", "smollm2-135m-instruct", "--datasets", "gsm8k",
         "--limit", "2", "--max-new-tokens", "16", "--output-dir", str(tmp_path / "eval")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "converting" not in result.stderr  # the session's conversion is reused
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["model"] == "smollm2-135m-instruct" and report["datasets"][0]["num_examples"] == 2
