"""Work the study does once (study/reuse.py): the tuning seed's runs are their chosen candidates, a candidate
takes what the seed's run trained alike, and the base student's evaluation is copied to every seed. Real runs of
a micro world with tiny students; the training functions are counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import exgrpo.runner.stages
from lab.study import tuning
from lab.study.reuse import kept_base_evaluation, origin
from lab.study.spec import Study, final_step, held_out_curve, held_out_datasets, run_seed

REPO = Path(__file__).parents[1]


def micro_spec(base_model: Path) -> dict[str, Any]:
    """The smollm2 study's spec at micro scale: a world of a few questions, a tiny student, steps of one."""
    spec: dict[str, Any] = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    common = spec["common"]
    common["base_model"] = str(base_model)  # one base for every seed (a built student would differ per seed)
    common["world"] = {"seed": 0, "train_size": 4, "test_size": 2, "ood_size": 2, "val_size": 2}
    common["sft"].update(max_steps=2, per_device_batch_size=2, max_length=512, logging_steps=1, save_steps=1)
    common["train"].update(max_steps=1, save_steps=1, max_new_tokens=8, logging_steps=1)
    # The first method's RL keeps a checkpoint before its last (the DSU diagnostics evaluate it; the last one holds
    # the trained model's weights, which the eval stage evaluates).
    spec["methods"]["ei_exgrpo"]["train"] = {"max_steps": 2, "save_total_limit": None}
    common["eval"].update(max_new_tokens=8, datasets=["world_val", "world_test", "world_ood_steps"], limits={}, ei_test=None)
    spec["report"]["outside"] = []  # the real benchmarks are not evaluated here
    spec["report"].pop("format_seen_by")  # nor the splits it names
    spec.pop("record_root")  # never the repository's record (a test that wants one sets its own)
    return spec


def micro_study(tmp_path: Path, base_model: Path) -> Study:
    spec = micro_spec(base_model)
    methods = spec["methods"]
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0, 1],
                methods={"ei_exgrpo": methods["ei_exgrpo"], "skd": methods["skd"], "skd_grpo": methods["skd_grpo"],
                         "skd_compute_matched": methods["skd_compute_matched"], "skd_f0.5": methods["skd_f0.5"]},
                tuning={"seed": 0, "datasets": ["world_val"],
                        "learning_rates": {"sft": [1.0e-4, 2.0e-4], "train": [2.0e-5, 5.0e-5]}})
    return written_study(tmp_path, spec)


def written_study(tmp_path: Path, spec: dict[str, Any]) -> Study:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return Study(path)


def counted_trainings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that every SFT and RL training run from now on adds "run_sft|run_train <output_dir>" to."""
    trained: list[str] = []
    for name in ("run_sft", "run_train"):  # the names the runner's stages call
        real = getattr(exgrpo.runner.stages, name)
        monkeypatch.setattr(exgrpo.runner.stages, name, lambda config, real=real, name=name: trained.append(
            f"{name} {config.output_dir}") or real(config))
    return trained


@pytest.mark.slow
def test_the_tuning_seed_trains_nothing_twice_and_the_base_is_evaluated_once(
        tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = micro_study(tmp_path, tiny_model_path)
    trained = counted_trainings(monkeypatch)
    # The choice: the higher rate of SFT, the lower of RL (whatever the micro models score on validation).
    monkeypatch.setattr(tuning, "validation_accuracy", lambda run_dir, model, datasets=None: float(
        run_dir.name in ("sft-lr0.0002", "train-lr2e-05")))
    log = lambda line: None  # noqa: E731

    first: list[str] = []
    run_seed(study, 0, ["ei_exgrpo"], log=first.append)  # the first run, before tuning, at the common rates
    assert len(trained) == 2
    # The base student was evaluated on its own before the run's stages, kept at once; its eval stage reused it.
    assert any(line.endswith("the base student evaluated first, on its own") for line in first)
    kept = json.loads((kept_base_evaluation(study.run_root) / "report.json").read_text())
    assert {row["name"] for row in kept["datasets"]} >= {"world_test", "world_val"}
    cost = json.loads((kept_base_evaluation(study.run_root) / "cost.json").read_text())  # no stage counts it
    assert cost["cpu_seconds"] > 0 and cost["seconds"] > 0 and "cpu" in cost["machine"]
    trained.clear()
    for method in tuning.tuned_methods(study):
        tuning.tune_method(study, method, log=log)
    # ei_exgrpo: its 1e-4 SFT is the seed run's (adopted), 2e-4 trains, then RL from 2e-4 at both rates;
    # skd: both rates; skd_grpo: both rates from skd's choice; skd_f0.5 takes skd's choice and is not tuned.
    assert sorted(line.split()[0] + " " + line.split("/tuning/")[1].split("/")[0] for line in trained) == [
        "run_sft ei_exgrpo", "run_sft skd", "run_sft skd", "run_train ei_exgrpo", "run_train ei_exgrpo",
        "run_train skd_grpo", "run_train skd_grpo"]
    ei_candidate = tuning.candidate_dir(study, "ei_exgrpo", "sft", 1.0e-4) / "sft"
    assert origin(ei_candidate) == origin(study.run_dir(0, "ei_exgrpo") / "sft")

    trained.clear()
    lines: list[str] = []
    run_seed(study, 0, log=lines.append)  # the tuning seed: every trained stage is its chosen candidate's
    # Its SFT model changed, so its eval stage was cleared: the base student's kept predictions came back.
    assert "  seed 0 ei_exgrpo eval: the base student's predictions copied from its kept evaluation" in lines
    # Only the one-seed runs train (their data or steps differ from every candidate's).
    assert sorted(Path(line.split()[1]).parent.name for line in trained) == ["skd_compute_matched", "skd_f0.5"]
    for method, stages in (("ei_exgrpo", ("sft", "train")), ("skd", ("sft",)), ("skd_grpo", ("train",))):
        for stage in stages:
            manifest = json.loads((study.run_dir(0, method) / stage / "manifest.json").read_text())
            chosen = tuning.read_choice(study, method)[stage]
            assert manifest["adopted_from"] == str(tuning.candidate_dir(study, method, stage, chosen) / stage)
            assert manifest["seconds"] > 0  # what the training cost is kept
    values = yaml.safe_load((study.run_dir(0, "ei_exgrpo") / "config.yaml").read_text())
    assert (values["sft"]["learning_rate"], values["train"]["learning_rate"]) == (2.0e-4, 2.0e-5)
    assert yaml.safe_load((study.run_dir(0, "skd_f0.5") / "config.yaml").read_text())[
        "sft"]["learning_rate"] == tuning.read_choice(study, "skd")["sft"]
    run_dir = study.run_dir(0, "ei_exgrpo")
    diagnostics = run_dir / "diagnostics" / "checkpoint-1"
    assert (diagnostics / "merged" / "config.json").exists()  # the LoRA checkpoint, merged to be evaluated
    assert json.loads((diagnostics / "report.json").read_text())["averages"]["held_out"]
    # The last checkpoint holds the trained model's weights: not evaluated again, its accuracy is the eval stage's.
    assert final_step(run_dir) == 2 and (run_dir / "train" / "checkpoint-2").is_dir()
    assert not (run_dir / "diagnostics" / "checkpoint-2").exists()
    held_out = held_out_datasets(study)
    curve = held_out_curve(run_dir, held_out)
    assert sorted(curve) == [0, 1, 2]
    for step, model in ((0, "sft"), (2, "exgrpo")):
        report = json.loads((run_dir / "eval" / model / "report.json").read_text())
        accuracy = [row["accuracy"]["value"] for row in report["datasets"] if row["name"] in held_out]
        assert len(accuracy) == len(held_out) and curve[step] == pytest.approx(sum(accuracy) / len(accuracy))
    for model in ("base", "sft", "exgrpo"):
        assert (study.run_dir(0, "ei_exgrpo") / "eval" / model / "report.json").exists()
    # Finished SFT stages keep their final model, not their checkpoints (RL checkpoints stay: the diagnostics).
    assert not list(study.run_root.glob("**/sft/checkpoint-*")) and list(study.run_root.glob("**/train/checkpoint-*"))
    assert all((path.parent / "final" / "config.json").exists() for path in study.run_root.glob("**/sft/manifest.json")
               if "skipped" not in json.loads(path.read_text())["outputs"])

    # Compute-matched SKD: as many SFT steps as EI + ExGRPO's CPU seconds buy at SKD's CPU seconds per step.
    def cpu(method: str, stage: str) -> float:
        return json.loads((study.run_dir(0, method) / stage / "manifest.json").read_text())["cpu_seconds"]

    skd_steps = json.loads((study.run_dir(0, "skd") / "sft" / "log_history.json").read_text())[-1]["step"]
    expected = round((cpu("ei_exgrpo", "sft") + cpu("ei_exgrpo", "train")) / (cpu("skd", "sft") / skd_steps))
    matched = yaml.safe_load((study.run_dir(0, "skd_compute_matched") / "config.yaml").read_text())
    assert matched["sft"]["max_steps"] == max(1, expected) and "compute_match" not in matched

    trained.clear()
    lines.clear()
    run_seed(study, 1, log=lines.append)  # another seed trains everything, evaluates the base student not again
    assert "  seed 1 ei_exgrpo eval: the base student's predictions copied from its kept evaluation" in lines
    assert len(trained) == 4 and not (study.run_dir(1, "skd_f0.5")).exists()
    base = [study.run_dir(seed, "ei_exgrpo") / "eval" / "base" / "predictions" / "world_test.jsonl" for seed in (0, 1)]
    assert base[0].read_text() == base[1].read_text()
    assert json.loads((study.run_dir(1, "ei_exgrpo") / "eval" / "manifest.json").read_text())["config_hash"]

    # The page of such a study: the gate, the tuning table, one seed for the data-efficiency rows.
    from exgrpo.files import replace_marked_section
    from lab.study.page import SUMMARY_BEGIN, SUMMARY_END, write_results_page

    page = tmp_path / "docs" / "results.md"
    summary = write_results_page(study, page, "python lab/scale_model.py report")
    text = page.read_text()
    assert "evaluated once (greedy decoding" in text
    assert "**Cut to the time budget** (fixed in the spec before the runs" in text  # the spec's report.cut
    # The README's summary is the page's own verdict lines, written between its markers.
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{SUMMARY_BEGIN}\nold\n{SUMMARY_END}\nkept\n")
    replace_marked_section(readme, SUMMARY_BEGIN, SUMMARY_END, "\n".join(summary))
    written = readme.read_text()
    assert "old" not in written and written.endswith("kept\n")
    verdict_lines = [line for line in summary if line.startswith("- **")]
    assert len(verdict_lines) >= 3 and all(line in text.splitlines() for line in verdict_lines)
    assert "| SKD (SFT on teacher rationales) | sft | 0.0001: 0.0, 0.0002: 100.0 | 0.0002 (largest tried) |" in text
    assert "skd_f0.5 (skd)" in text.split("## Tuning")[1]
    assert "| SKD | 0.5 | 1 |" in text and "| SKD | 1 | 2 |" in text
    gate = text.split("## Does the student learn?")[1].split("## Goals")[0]
    assert "on the held-in test (world_test)" in gate and "on the validation (world_val)" in gate


@pytest.mark.slow
def test_the_runners_base_command_evaluates_the_base_once_on_a_machine_that_fits(
        tmp_path: Path, tiny_model_path: Path) -> None:
    import subprocess
    import sys

    spec = micro_spec(tiny_model_path)
    spec.update(run_root=str(tmp_path / "runs"), seeds=[0], methods={"ei_exgrpo": spec["methods"]["ei_exgrpo"]},
                machine={"device": "cpu", "precision": "bfloat16"})  # a tiny student computes in fp32 anywhere
    study = written_study(tmp_path, spec)

    def base() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "scale_model.py"), "--spec",
                               str(study.spec_path), "base"], capture_output=True, text=True, timeout=600)

    refused = base()
    assert refused.returncode == 2 and "machine.precision: this study computes in bfloat16" in refused.stderr
    assert not kept_base_evaluation(study.run_root).exists()
    spec["machine"]["precision"] = "float32"
    study = written_study(tmp_path, spec)
    done = base()
    assert done.returncode == 0, done.stderr
    assert "the base student evaluated first, on its own" in done.stdout
    assert (kept_base_evaluation(study.run_root) / "report.json").exists()
    again = base()
    assert again.returncode == 0 and "kept already" in again.stdout
