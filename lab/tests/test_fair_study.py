"""The fair study's spec (lab/configs/smollm2_fair.yaml) end to end on a micro world with 1-layer students: every
command the study runs (tune, run, project, report) goes through its features (an SFT-only tuning grid, RevThink
data, three rationales per question, compute matching on CPU seconds, data fractions, the re-evaluation, measured
format overlap, declared goals), so that a sitting hours into the real study does not find a crash first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.study.goals import pilot_power_lines
from lab.study.page import write_results_page
from lab.study.projection import projection_lines
from lab.study.spec import Study, run_seed
from lab.study.tuning import read_choice, tune_method, tuned_methods

REPO = Path(__file__).parents[1]


def micro_fair_spec(tmp_path: Path, student: Path) -> Path:
    """The fair spec shrunk to seconds: a micro world, a tiny pretrained student instead of SmolLM2 (a folder, as
    SmolLM2's), a few steps a stage."""
    spec: dict[str, Any] = yaml.safe_load((REPO / "configs" / "smollm2_fair.yaml").read_text())
    spec.pop("record_root")  # never the repository's record
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0, 1])
    common = spec["common"]
    common["base_model"] = str(student)
    common["world"] = {"seed": 0, "train_size": 4, "test_size": 2, "ood_size": 2, "val_size": 2}
    common["probe"]["rules"] = ["R1", "R4"]  # R4: the reversed questions RevThink's data and the overlap read
    common["sft"].update(max_length=512, logging_steps=1, save_steps=1000, per_device_batch_size=32)
    common["train"].update(max_steps=4, stop_at_step=2, save_steps=1, questions_per_step=2, max_new_tokens=8,
                           pass_rate={"enabled": False})  # a tiny student solves nothing: all filtered
    common["eval"].update(max_new_tokens=8, limits={}, ei_test_limit=4,
                          datasets=[d for d in common["eval"]["datasets"] if d.startswith("world_")])
    spec["report"].pop("outside")
    spec["report"].pop("outside_seeds", None)  # nor the seeds that check them (the cut)
    spec["tuning"]["learning_rates"] = {"sft": [1.0e-4, 2.0e-4]}
    spec["report"]["reevaluation"]["batch_size"] = 3
    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
def test_every_command_of_the_fair_study_runs_on_a_micro_world(tmp_path: Path, tiny_model_path: Path) -> None:
    study = Study(micro_fair_spec(tmp_path, tiny_model_path))
    quiet = lambda line: None  # noqa: E731
    for method in tuned_methods(study):
        tune_method(study, method, log=quiet)
        assert set(read_choice(study, method)) == {"sft"}  # RL keeps the spec's rate (no `train` candidates)
    run_seed(study, 0, log=quiet)
    assert any(line.startswith("| **all** |") for line in projection_lines(study))
    assert any("minimum detectable" in line.lower() for line in pilot_power_lines(study))
    run_seed(study, 1, ["ei_exgrpo", "skd"], log=quiet)  # the primary goal's pair on a second seed
    for method in study.methods:
        for seed in study.method_seeds(method)[:1]:
            config = study.run_config(method, seed)
            for model in config.evaluated_models():
                assert (config.run_dir / "eval" / model / "report.json").exists(), (method, seed, model)
    ei = study.run_values("ei_exgrpo", 1)
    assert ei["train"]["learning_rate"] == 1.0e-5 and ei["sft"]["learning_rate"] in study.tuning["learning_rates"]["sft"]

    page = tmp_path / "docs" / "results.md"
    write_results_page(study, page, "python lab/scale_model.py report")
    text = page.read_text()
    assert text.index("## Primary verdict") < text.index("## Goals")
    assert "Holm" in text and "re-evaluation" in text.lower()
    assert "divided so after the runs" not in text  # this spec measures the formats before its runs
    assert "No RL ablation ladder" in text.split("## Ablation")[1]
    assert f"**Applied**: {study.report['cut_applied']}" in text  # which of the spec's cuts were made, and when
    assert "No data-fraction arm in this spec (the spec's cut" in text.split("## Data efficiency")[1]
    matched = text.split("Compute-matched comparison")[1].split("\n## ")[0]  # against its own unmatched arm
    assert f"| {study.title('skd_rationales')} |" in matched and f"| {study.title('skd')} |" not in matched
    assert re.search(r"the extra compute is spent as more passes over the same questions and rationales: "
                     r"\d+\.\d\d passes over its data", matched)  # read from its run, not written by hand
    assert study.title("revthink") in text and study.title("skd_compute_matched") in text
    rl = text.split("## Did RL move the policy?")[1].split("\n## ")[0]  # every RL run's diagnostics
    assert "| EI + ExGRPO (ours) | 0 |" in rl and "| EI + ExGRPO (ours) | 1 |" in rl  # the spec's one RL arm, each seed
