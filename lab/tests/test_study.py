"""The study (lab/configs/study.yaml): every baseline and ablation config trains and evaluates (a smoke run
of the whole spec on a micro world), and the results page is written from the runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from exgrpo.runner.stage_configs import sft_config, train_config
from lab.study.page import main_rows, write_results_page
from lab.study.spec import Study, run_seed
from lab.study.tables import Page

REPO = Path(__file__).parents[1]


def micro_spec(tmp_path: Path) -> Path:
    """The real study spec shrunk to seconds: a micro world, 1-layer students, a few steps per stage."""
    spec: dict[str, Any] = yaml.safe_load((REPO / "configs" / "study.yaml").read_text())
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0])
    spec.setdefault("report", {})["rerun_policy"] = "No run is rerun; a degenerate run is flagged below."
    common = spec["common"]
    common["world"] = {"seed": 0, "train_size": 4, "test_size": 2, "ood_size": 2}
    common["student"] = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 400, "pretrain_epochs": 1}
    common["probe"]["difficulty"]["max_new_tokens"] = 8
    common["sft"].update(epochs=1, max_length=512, logging_steps=1)
    common["train"].update(max_steps=2, save_steps=1, questions_per_step=2, max_new_tokens=8, logging_steps=1)
    common["eval"]["max_new_tokens"] = 8
    methods = spec["methods"]
    methods["teacher_model"]["student"] = {"hidden_size": 48, "num_layers": 1, "num_heads": 2}
    methods["teacher_model"]["sft"]["epochs"] = 1
    methods["gkd"]["train"].update(max_steps=2, per_device_batch_size=4, max_new_tokens=8, logging_steps=1)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def trained_steps(stage_dir: Path) -> int:
    history = json.loads((stage_dir / "log_history.json").read_text())
    return sum(1 for entry in history if "loss" in entry)


@pytest.mark.slow
def test_every_method_of_the_study_trains_and_evaluates(tmp_path: Path) -> None:
    study = Study(micro_spec(tmp_path))
    run_seed(study, 0, log=lambda line: None)
    for method in study.methods:
        config = study.run_config(method, 0)
        run_dir = config.run_dir
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["run_dir"] == str(run_dir)
        for model in config.evaluated_models():
            report = json.loads((run_dir / "eval" / model / "report.json").read_text())
            assert {row["name"] for row in report["datasets"]} >= {"world_test", "world_ood_budget", "world_ei_test"}
        trained = {"sft": sft_config(config) is not None, "train": train_config(config) is not None}
        for stage, present in trained.items():
            assert (run_dir / stage / "final").is_dir() == present, (method, stage)
            if present:
                assert trained_steps(run_dir / stage) > 0, (method, stage)
    # The baselines read what they should from the shared probe output.
    matched = yaml.safe_load((study.run_dir(0, "skd_compute_matched") / "config.yaml").read_text())
    assert matched["sft"]["epochs"] > 1  # SKD's data is smaller than EI's: more epochs for as many tokens
    gkd = json.loads((study.run_dir(0, "gkd") / "train" / "log_history.json").read_text())
    assert any("loss" in entry for entry in gkd)
    # The diagnostics evaluated every checkpoint of the first method's RL stage but the last (the trained model's
    # weights, which the eval stage evaluated).
    checkpoints = sorted((study.run_dir(0, "ei_exgrpo") / "train").glob("checkpoint-*"),
                         key=lambda path: int(path.name.split("-")[1]))
    evaluated = [(study.run_dir(0, "ei_exgrpo") / "diagnostics" / c.name / "report.json").exists() for c in checkpoints]
    assert len(checkpoints) == 2 and evaluated == [True, False]

    page = tmp_path / "docs" / "results.md"
    write_results_page(study, page, "python lab/scale_model.py report")
    text = page.read_text()
    for section in ("## Goals", "## Degenerate outputs", "## Main table", "## Ablation", "## Data efficiency",
                    "## Compute", "## DSU"):
        assert section in text
    degenerate = text.split("## Degenerate outputs")[1].split("## DSU")[0]
    assert degenerate.index("Rerun policy") < degenerate.index("found by code")  # the policy's "below" is true
    assert "| **all** |" in text.split("Projected cost")[1]  # the projection from the first run, by code
    main_table = text.split("## Main table")[1].split("\n## ")[0]  # up to the next section
    assert "guessing floor: random / majority" in main_table
    # The main table: every RL variant after EI-SFT too (they are the ablation's steps as well).
    assert all(f"| {study.title(m)} |" in main_table for m in ("ei_rl_outcome", "ei_rl_aux", "skd_grpo"))
    gate = [line for line in text.split("## Does the student learn?")[1].split("## Goals")[0].splitlines()
            if line.startswith("- **")]
    assert gate and gate[0].split("**")[1] in ("met", "failed", "not resolved") and "held-in test" in gate[0]
    assert "No tuning section in the spec" in text.split("## Tuning")[1]
    verdicts = [line for line in text.split("## Goals")[1].split("## Main table")[0].splitlines() if line.startswith("- **")]
    assert verdicts and all(line.split("**")[1] in ("met", "failed", "not resolved") for line in verdicts)
    assert any("EI + ExGRPO beats EI-SFT on EI-Test" in line for line in verdicts)  # the RL's effect, format aside
    for method in study.methods:
        if method != "teacher_model":
            assert study.title(method) in text, method
    assert "n/a" not in main_table  # every main row has numbers
    assert all((page.parent / "results" / name).stat().st_size > 1000 for name in ("main.png", "data_efficiency.png"))
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) >= 2 and all((page.parent / link).exists() for link in links)  # every image the page shows
    # Per-seed accuracy: with one seed it is the pooled estimate's value, and the page shows it.
    tables = Page(study, page)
    for row in main_rows(study):
        assert tables.seed_means(row, tables.held_out)[0] == pytest.approx(tables.estimate(row, tables.held_out).value)
    assert "| method | seed 0 |" in text
