"""A run folder's synthetic world is usable by every command that takes datasets, as a new user tries it after
the quickstart: `exgrpo eval --model RUN/sft/final --datasets world_test`, `exgrpo datasets --world RUN`,
`exgrpo probe --world RUN` with the exact teacher. The CLI through typer's CliRunner, a world written by
write_world at small sizes, a tiny model built in code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from exgrpo.cli import app
from exgrpo.world.datasets import write_world

WORLD = {"seed": 3, "train_size": 2, "test_size": 2, "ood_size": 1}
EVAL_FLAGS = ["--datasets", "world_test", "--limit", "2", "--max-new-tokens", "4", "--backend", "transformers",
              "--dtype", "float32", "--batch-size", "2"]


@pytest.fixture()
def run_dir(tmp_path: Path, tiny_model_path: Path) -> Path:
    """A run folder as `exgrpo run` leaves it, reduced to what eval needs: its world and an SFT model."""
    run = tmp_path / "runs" / "quickstart"
    write_world(run / "world", **WORLD)
    shutil.copytree(tiny_model_path, run / "sft" / "final")
    return run


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_eval_finds_the_world_of_the_run_folder_holding_the_model(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("eval", "--model", run_dir / "sft" / "final", *EVAL_FLAGS, "--output-dir", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert f"Using the synthetic world of the run folder holding the model: {(run_dir / 'world').resolve()}" \
        in " ".join(result.output.split())
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [(row["name"], row["num_examples"]) for row in report["datasets"]] == [("world_test", 2)]


def test_eval_of_a_model_outside_the_run_needs_world_and_says_so(run_dir: Path, tiny_model_path: Path,
                                                                 tmp_path: Path) -> None:
    refused = invoke("eval", "--model", tiny_model_path, *EVAL_FLAGS, "--output-dir", tmp_path / "refused")
    assert refused.exit_code == 2
    assert "unknown dataset(s) world_test" in refused.output and "--world RUN_DIR" in refused.output
    for world in (run_dir, run_dir / "world", run_dir / "world" / "datasets.yaml"):  # the run, its world, the file
        result = invoke("eval", "--model", tiny_model_path, *EVAL_FLAGS, "--world", world,
                        "--output-dir", tmp_path / world.name)
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / world.name / "report.json").read_text())["datasets"][0]["name"] == "world_test"


def test_world_names_a_folder_without_a_world(tmp_path: Path, tiny_model_path: Path) -> None:
    result = invoke("eval", "--model", tiny_model_path, *EVAL_FLAGS, "--world", tmp_path)
    assert result.exit_code == 2 and "no datasets.yaml" in result.output


def test_datasets_lists_a_given_worlds_datasets(run_dir: Path) -> None:
    plain = invoke("datasets")
    assert plain.exit_code == 0 and "gsm8k" in plain.output and "world_test" not in plain.output
    listed = invoke("datasets", "--world", run_dir, "--count")
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") > 2}
    assert {"world_train", "world_test", "world_ood_steps", "world_ei_test"} <= set(rows)
    assert "world_val" not in rows  # this world has no validation split
    assert "test 8" in rows["world_test"] and "present" in rows["world_test"]  # 4 families x 2


def test_probe_reads_a_world_and_uses_its_exact_teacher(run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump({"datasets": ["world_train"], "rules": ["R1"],
                                      "teacher": {"kind": "exact", "world": WORLD}}))
    result = invoke("probe", "--config", config, "--world", run_dir, "--output-dir", tmp_path / "probe")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "probe" / "ei.jsonl").read_text().splitlines()) == 8  # every question kept
