"""The study's projected cost from its first run (study/projection.py), on a run folder written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exgrpo.runner.estimate.student_tokens import StudentLoad
from exgrpo.runner.stage_configs import sft_config, train_config
from lab.study import projection
from lab.study.spec import Study

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path: Path) -> Study:
    spec = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    spec.pop("record_root", None)  # never the repository's record
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0, 1])
    spec.pop("tuning")
    spec["methods"] = {name: spec["methods"][name] for name in ("ei_exgrpo", "skd")}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return Study(path)


def fake_loads(config: Any) -> Any:
    """Token counts as the estimate would give them: SFT 1000, RL 400, 3000 per evaluated model."""
    loads = [StudentLoad("sft", 10, 1000.0, 0.0, "sft_tokens_per_s")] if sft_config(config) is not None else []
    if train_config(config) is not None:
        loads.append(StudentLoad("train (ExGRPO)", 4, 400.0, 400.0, "exgrpo_tokens_per_s"))
    loads += [StudentLoad(f"eval: {model}", None, 3000.0, 3000.0, "generate_tokens_per_s")
              for model in config.evaluated_models()]
    throughput = config.estimate.throughput
    for load in loads:
        rate = getattr(throughput, load.throughput)
        load.seconds = load.tokens / rate if rate else None
    return type("Estimate", (), {"loads": loads})()


def test_the_first_runs_times_give_the_rates_and_every_method_is_projected(study: Study,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection, "estimate_run", fake_loads)
    assert projection.measured_throughput(study) is None  # nothing has run
    run_dir = study.run_dir(0, "ei_exgrpo")
    for stage, seconds in (("sft", 100.0), ("train", 40.0)):
        (run_dir / stage).mkdir(parents=True)
        (run_dir / stage / "manifest.json").write_text(json.dumps({"seconds": seconds}))
    assert projection.measured_throughput(study) is None  # no evaluation yet
    (run_dir / "eval" / "base").mkdir(parents=True)
    (run_dir / "eval" / "base" / "report.json").write_text(json.dumps({"seconds": 300.0}))
    throughput, seconds = projection.measured_throughput(study)
    # One evaluated model times evaluation: its tokens only (3000 over 300 s), not the three models'.
    assert (throughput.sft_tokens_per_s, throughput.exgrpo_tokens_per_s, throughput.generate_tokens_per_s) == \
        (10.0, 10.0, 10.0)
    assert seconds == {"sft": 100.0, "train": 40.0, "eval": 300.0}
    costs = {cost.method: cost for cost in projection.project(study, throughput, base_eval_seconds=300.0)}
    assert costs["ei_exgrpo"].hours_per_seed == pytest.approx((100 + 40 + 2 * 300) / 3600)
    assert costs["skd"].hours_per_seed == pytest.approx((100 + 300) / 3600)
    # Two seeds, no tuning: both trained; the base student evaluated once.
    assert costs["ei_exgrpo"].hours == pytest.approx((2 * (100 + 40 + 600) + 300) / 3600)
    lines = projection.projection_lines(study)
    assert any(line.startswith("| **all** |") and f"{(2 * (740 + 400) + 300) / 3600:.1f}" in line for line in lines)
    assert "about 12 hours; this projection is 0.7 hours, within it, after the cut above." in "".join(lines)
    study.report["budget_hours"] = 0.5
    assert "0.7 hours, 0.2 hours over it" in "".join(projection.projection_lines(study))
    study.report.pop("budget_hours")
    assert "Time budget" not in "".join(projection.projection_lines(study))
    # Once a trained model is evaluated, evaluation is timed on it (the base talks to the token limit).
    (run_dir / "eval" / "sft").mkdir(parents=True)
    (run_dir / "eval" / "sft" / "report.json").write_text(json.dumps({"seconds": 100.0}))
    assert projection.measured_throughput(study)[0].generate_tokens_per_s == 30.0


def test_the_tuning_seed_trains_nothing_again_and_per_method_seeds_count(study: Study,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection, "estimate_run", fake_loads)
    study.tuning = {"seed": 0, "datasets": ["world_val"], "learning_rates": {"sft": [1e-4, 2e-4], "train": [1e-5]}}
    study.methods["skd"]["seeds"] = [1]  # not the tuning seed: trained on its one seed
    throughput = projection.StudentThroughput(sft_tokens_per_s=10.0, exgrpo_tokens_per_s=10.0,
                                              generate_tokens_per_s=10.0)
    costs = {cost.method: cost for cost in projection.project(study, throughput, base_eval_seconds=0.0)}
    ours, skd = costs["ei_exgrpo"], costs["skd"]
    assert (ours.seeds, ours.trained_seeds, skd.seeds, skd.trained_seeds) == (2, 1, 1, 1)
    # Tuning: 2 SFT candidates (SFT + its eval) and 1 RL candidate (RL + its eval), each 100 / 40 / 300 s.
    assert ours.tuning_hours == pytest.approx((2 * (100 + 300) + (40 + 300)) / 3600)
    assert ours.hours == pytest.approx((140 + 2 * 600 + 2 * 400 + 340) / 3600)
    # RL not tuned (its rate chosen elsewhere): the tuning seed's run adopts the SFT candidate and trains RL.
    study.tuning["learning_rates"] = {"sft": [1e-4, 2e-4]}
    ours = {cost.method: cost for cost in projection.project(study, throughput, base_eval_seconds=0.0)}["ei_exgrpo"]
    assert (ours.trained_seeds, ours.untuned_hours) == (1, pytest.approx(40 / 3600))
    assert ours.hours == pytest.approx((140 + 40 + 2 * 600 + 2 * 400) / 3600)
    study.tuning["learning_rates"]["train"] = [1e-5]
    # Compute-matched SKD: its SFT steps are set at run time to take ei_exgrpo's training time, and so is its cost.
    spec = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    study.methods["skd_compute_matched"] = spec["methods"]["skd_compute_matched"]
    matched = {c.method: c for c in projection.project(study, throughput, base_eval_seconds=0.0)}["skd_compute_matched"]
    assert matched.training_hours == pytest.approx(ours.training_hours) and matched.tuning_hours == 0.0


def test_the_time_spent_counts_every_finished_stage_once(study: Study) -> None:
    from lab.study.reuse import kept_base_evaluation

    def manifest(folder: Path, **fields: Any) -> None:
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(fields))

    fast = {"cpu": "Xeon", "cores": 2, "native_bf16": True}
    manifest(study.run_dir(0, "ei_exgrpo") / "sft", stage="sft", seconds=100.0, cpu_seconds=190.0, machine=fast)
    manifest(study.run_dir(0, "skd") / "sft", stage="sft", seconds=50.0)  # written before CPU time was recorded
    manifest(study.run_dir(1, "ei_exgrpo") / "sft", stage="sft", seconds=100.0, cpu_seconds=190.0,
             adopted_from="elsewhere")  # the same work as its source
    manifest(study.run_root / "seed0" / "ei_exgrpo" / "eval" / "base", seconds=9.0)  # not a stage's manifest
    kept = kept_base_evaluation(study.run_root)
    kept.mkdir(parents=True)
    (kept / "report.json").write_text(json.dumps({"seconds": 30.0}))
    assert projection.spent_seconds(study) == (180.0, 190.0, 2)
    assert "CPU time was not measured" in projection.spent_lines(study)[0]
    # A base evaluation made outside any stage keeps what it cost, CPU included.
    (kept / "cost.json").write_text(json.dumps({"seconds": 30.0, "cpu_seconds": 55.0}))
    assert projection.spent_seconds(study) == (180.0, 245.0, 2)
    assert "not measured" not in projection.spent_lines(study)[0]
    assert projection.machine_lines(projection.finished_stages(study)) == [
        "Machines that measured them: Xeon, 2 cores, native bf16: 1 stage; not recorded (finished before manifests "
        "named their machine): 1 stage.", ""]


def test_the_page_says_how_far_the_study_is_until_every_run_is_evaluated(study: Study) -> None:
    from lab.study.standing import progress_lines
    from lab.study.tuning import tuning_dir

    study.tuning = {"seed": 0, "datasets": ["world_val"], "learning_rates": {"sft": [1e-4]}}
    assert progress_lines(study)[0].startswith("**In progress**: 0 of 4 runs evaluated; learning rates chosen for "
                                               "0 of 2 tuned methods.")
    for seed in (0, 1):
        for method in ("ei_exgrpo", "skd"):
            (study.run_dir(seed, method) / "eval").mkdir(parents=True)
            (study.run_dir(seed, method) / "eval" / "manifest.json").write_text("{}")
    assert "4 of 4 runs evaluated" in progress_lines(study)[0]
    for method in ("ei_exgrpo", "skd"):
        tuning_dir(study, method).mkdir(parents=True)
        (tuning_dir(study, method) / "chosen.json").write_text(json.dumps({"learning_rates": {"sft": 1e-4}}))
    assert progress_lines(study) == []


def test_a_cleared_eval_folder_is_timed_on_the_kept_base_evaluation(study: Study,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection, "estimate_run", fake_loads)
    run_dir = study.run_dir(0, "ei_exgrpo")
    for stage, seconds in (("sft", 100.0), ("train", 40.0)):
        (run_dir / stage).mkdir(parents=True)
        (run_dir / stage / "manifest.json").write_text(json.dumps({"stage": stage, "seconds": seconds, "cpu_seconds": seconds}))
    assert projection.measured_throughput(study) is None
    assert any(line.startswith("Spent so far") for line in projection.projection_lines(study))  # even unprojected
    kept = study.run_root / "base-eval"  # what a changed eval stage leaves: its folder cleared, the base kept
    kept.mkdir(parents=True)
    (kept / "report.json").write_text(json.dumps({"seconds": 300.0}))
    throughput, seconds = projection.measured_throughput(study)
    assert seconds["eval"] == 300.0 and throughput.generate_tokens_per_s == 10.0


def test_before_the_first_run_finishes_its_tuning_candidates_time_the_projection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.study.tuning import candidate_dir

    monkeypatch.setattr(projection, "estimate_run", fake_loads)
    spec = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    spec.pop("record_root", None)
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0])
    spec["methods"] = {name: spec["methods"][name] for name in ("ei_exgrpo", "skd")}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = Study(path)

    def finished_candidate(stage: str, model: str, learning_rate: float, seconds: float) -> None:
        folder = candidate_dir(study, "ei_exgrpo", stage, learning_rate)
        (folder / stage).mkdir(parents=True)
        (folder / stage / "manifest.json").write_text(json.dumps({"stage": stage, "seconds": seconds}))
        (folder / "eval" / model).mkdir(parents=True)
        (folder / "eval" / model / "report.json").write_text(json.dumps({"seconds": 300.0}))

    finished_candidate("sft", "sft", 5e-5, 100.0)
    finished_candidate("sft", "sft", 1e-4, 300.0)
    assert projection.candidate_throughput(study) is None  # no RL candidate yet
    assert projection.projection_lines(study)[0].startswith("Not projected yet")
    finished_candidate("train", "exgrpo", 5e-5, 40.0)
    throughput, seconds, candidates = projection.candidate_throughput(study)
    # Pooled: SFT 2 x 1000 tokens over 400 s, RL 400 over 40 s, evaluation 3 x 3000 over 900 s.
    assert (throughput.sft_tokens_per_s, throughput.exgrpo_tokens_per_s, throughput.generate_tokens_per_s) == \
        (5.0, 10.0, 10.0)
    assert seconds == {"sft": 400.0, "eval": 900.0, "train": 40.0} and candidates == 3
    assert projection.projection_lines(study)[0].startswith("Measured on ei_exgrpo's 3 finished tuning candidates")
    # The first seed's run, once evaluated, times the projection itself.
    run_dir = study.run_dir(0, "ei_exgrpo")
    for stage, value in (("sft", 100.0), ("train", 40.0)):
        (run_dir / stage).mkdir(parents=True)
        (run_dir / stage / "manifest.json").write_text(json.dumps({"seconds": value}))
    (run_dir / "eval" / "sft").mkdir(parents=True)
    (run_dir / "eval" / "sft" / "report.json").write_text(json.dumps({"seconds": 100.0}))
    assert projection.projection_lines(study)[0].startswith("Measured on ei_exgrpo, seed 0 (")


def test_an_outside_check_cut_to_one_seed_is_paid_on_that_seed_only(study: Study,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def per_dataset(config: Any) -> Any:  # evaluation tokens in proportion to the datasets evaluated
        estimate = fake_loads(config)
        for load in estimate.loads:
            if load.stage.startswith("eval"):
                load.seconds = 100.0 * len(config.eval.datasets)
        return estimate

    monkeypatch.setattr(projection, "estimate_run", per_dataset)
    throughput = projection.StudentThroughput(sft_tokens_per_s=10.0, exgrpo_tokens_per_s=10.0,
                                              generate_tokens_per_s=10.0)
    every_seed = projection.project(study, throughput)[1]
    outside = len(study.report["outside"])
    study.outside_seeds = [0]
    cut = projection.project(study, throughput)[1]
    assert cut.method == "skd" and cut.seeds == 2
    # Two seeds, one without the outside check: half its cost saved, the mean per seed stated.
    assert (every_seed.eval_hours - cut.eval_hours) * 3600 == pytest.approx(100.0 * outside / 2)
    assert (every_seed.hours - cut.hours) * 3600 == pytest.approx(100.0 * outside)


@pytest.mark.parametrize(("stages", "seconds"), [(None, 100.0 + 40.0), (["sft"], 100.0)])
def test_a_compute_matched_method_is_projected_at_its_targets_matched_stages(
        study: Study, monkeypatch: pytest.MonkeyPatch, stages: list[str] | None, seconds: float) -> None:
    monkeypatch.setattr(projection, "estimate_run", fake_loads)
    study.methods["skd_matched"] = {"sft": {"include_probes": False}, "train": None, "compute_match": "ei_exgrpo",
                                    "compute_match_on": "cpu_seconds", "compute_match_rate_from": "skd",
                                    **({"compute_match_stages": stages} if stages else {})}
    throughput = projection.StudentThroughput(sft_tokens_per_s=10.0, exgrpo_tokens_per_s=10.0,
                                              generate_tokens_per_s=10.0)
    matched = {cost.method: cost for cost in projection.project(study, throughput)}["skd_matched"]
    assert matched.training_hours * 3600 == pytest.approx(seconds)  # EI-SFT 100 s and RL 40 s (fake_loads)
