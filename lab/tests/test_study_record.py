"""The study's record (lab/study/record.py): its small files are enough to go on, and to write the page, on a machine
whose run folders are gone. Real runs of a micro world with a tiny student; the training functions are counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_study_reuse import counted_trainings, micro_spec, written_study

from exgrpo.runner.plan import plan
from lab.study.page import write_results_page
from lab.study.record import record, restore
from lab.study.spec import Study, finished, run_seed


def recorded_micro_study(tmp_path: Path, base_model: Path) -> Study:
    spec = micro_spec(base_model)
    methods = spec["methods"]
    spec.update(run_root=str(tmp_path / "runs"), record_root=str(tmp_path / "record"), seeds=[0], tuning={},
                methods={name: methods[name] for name in ("ei_exgrpo", "skd", "skd_grpo")})
    return written_study(tmp_path, spec)


def trained_methods(trained: list[str]) -> list[str]:
    """"run_sft skd", ... for each training counted (its output folder is <run>/<stage>)."""
    return sorted(f"{line.split()[0]} {Path(line.split()[1]).parent.name}" for line in trained)


@pytest.mark.slow
def test_a_study_goes_on_from_its_record_on_a_machine_without_its_runs(
        tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = recorded_micro_study(tmp_path, tiny_model_path)
    trained = counted_trainings(monkeypatch)
    lines: list[str] = []
    run_seed(study, 0, log=lines.append)
    assert trained_methods(trained) == ["run_sft ei_exgrpo", "run_sft skd", "run_train ei_exgrpo",
                                        "run_train skd_grpo"]
    assert any(line.endswith(f"files recorded in {study.record_root}") for line in lines)
    page = tmp_path / "docs" / "results.md"
    write_results_page(study, page, "report")
    written = page.read_text()
    assert f"read from the study's record, `{study.record_root.as_posix()}`" in written

    # What the record holds: small files only, predictions without their texts, no model, no data.
    kept = {path.relative_to(study.record_root).as_posix() for path in study.record_root.rglob("*") if path.is_file()}
    assert "seed0/ei_exgrpo/eval/sft/predictions/world_test.jsonl" in kept
    assert "seed0/ei_exgrpo/diagnostics/checkpoint-1/report.json" in kept
    assert {"seed0/skd/sft/manifest.json", "seed0/skd/sft/log_history.json", "seed0/skd/teacher_tokens.json",
            "seed0/skd/config.yaml", "base-eval/report.json", "base-eval/cost.json"} <= kept
    assert not [name for name in kept if "/final/" in name or "/world/" in name and "manifest" not in name
                or name.endswith((".safetensors", "ei.jsonl"))]
    prediction = json.loads((study.record_root / "seed0/ei_exgrpo/eval/sft/predictions/world_test.jsonl")
                            .read_text().splitlines()[0])
    assert "output" not in prediction and "prompt" not in prediction and "correct" in prediction
    assert record(study) == 0  # nothing changed since

    # A new machine: the run folders are gone. Restored, the finished runs are not run again, and the page is
    # the same page.
    shutil.rmtree(study.run_root)
    assert restore(study) == len(kept) and restore(study) == 0
    trained.clear()
    lines.clear()
    run_seed(study, 0, log=lines.append)
    assert trained == [] and f"seed 0 skd: finished ({study.run_dir(0, 'skd')}), not run again" in lines
    # The page reads the world's questions and the projection the first run's probe data: made again for it.
    from lab.study.spec import make_models

    assert not (study.run_dir(0, "ei_exgrpo") / "probe" / "ei.jsonl").exists()
    make_models(study.run_config("ei_exgrpo", 0), "probe")
    assert trained == []
    write_results_page(study, page, "report")
    assert page.read_text() == written

    # A run still to do whose SFT model is on no machine: that model is made again first (its evaluation stays).
    for folder in (study.run_root, study.record_root):
        shutil.rmtree(folder / "seed0" / "skd_grpo" / "eval")
    run_seed(study, 0, log=lines.append)
    assert trained_methods(trained) == ["run_sft skd", "run_train skd_grpo"]
    skd = study.run_config("skd", 0)
    assert all(done for _, _, done in plan(skd))  # its recorded evaluation still counts as done
    # The remade SFT stage keeps what it cost the first time (the page's totals count the work once); the remake
    # is listed apart, with its machine.
    recorded = json.loads((study.record_root / "seed0" / "skd" / "sft" / "manifest.json").read_text())
    remade = json.loads((skd.run_dir / "sft" / "manifest.json").read_text())  # made again for skd_grpo's RL
    assert remade["seconds"] == recorded["seconds"] and remade["cpu_seconds"] == recorded["cpu_seconds"]
    assert [set(r) >= {"seconds", "cpu_seconds", "machine"} for r in remade["remade"]] == [True]
    write_results_page(study, page, "report")
    assert "Besides, 2 trainings were made again because their models were lost" in page.read_text()  # skd, skd_grpo
    assert "not bit-identical to its first making" in page.read_text()


@pytest.mark.slow
def test_the_tuning_seeds_run_remakes_its_chosen_candidates_when_their_models_were_lost(
        tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.study import tuning

    spec = micro_spec(tiny_model_path)
    spec.update(run_root=str(tmp_path / "runs"), record_root=str(tmp_path / "record"), seeds=[0],
                methods={"ei_exgrpo": spec["methods"]["ei_exgrpo"]},
                tuning={"seed": 0, "datasets": ["world_val"],
                        "learning_rates": {"sft": [1.0e-4, 2.0e-4], "train": [2.0e-5, 5.0e-5]}})
    study = written_study(tmp_path, spec)
    monkeypatch.setattr(tuning, "validation_accuracy", lambda run_dir, model, datasets=None: float(
        run_dir.name in ("sft-lr0.0002", "train-lr2e-05")))
    tuning.tune_method(study, "ei_exgrpo", log=lambda line: None)
    sft, train = (tuning.candidate_dir(study, "ei_exgrpo", stage, rate) for stage, rate in (("sft", 2e-4),
                                                                                             ("train", 2e-5)))
    first_cost = json.loads((train / "train" / "manifest.json").read_text())["seconds"]
    # The sitting ends before the tuning seed's run: a new machine has the record only.
    shutil.rmtree(study.run_root)
    restore(study)
    trained = counted_trainings(monkeypatch)
    run_seed(study, 0, log=lambda line: None)
    # The chosen candidates are made again in their folders, and the run adopts them: nothing else trains.
    assert trained_methods(trained) == ["run_sft sft-lr0.0002", "run_train train-lr2e-05"]
    for stage, candidate in (("sft", sft), ("train", train)):
        manifest = json.loads((study.run_dir(0, "ei_exgrpo") / stage / "manifest.json").read_text())
        assert manifest["adopted_from"] == str(candidate / stage)
    remade = json.loads((train / "train" / "manifest.json").read_text())
    assert remade["seconds"] == first_cost and len(remade["remade"]) == 1
    assert finished(study.run_config("ei_exgrpo", 0))
