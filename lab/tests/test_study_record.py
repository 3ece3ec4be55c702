"""The study's record (lab/study/record.py): compact (a gzip'd JSON per run folder), it restores the files the page
and the runner read, never over one, and is enough to go on, and to write the page, on a machine whose run folders
are gone. The slow tests: real runs of a micro world with a tiny student; the training functions are counted."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from test_study_reuse import counted_trainings, micro_spec, written_study

from exgrpo.runner.plan import plan
from lab.study.page import write_results_page
from lab.study.record import record, record_tree, restore, restore_tree
from lab.study.spec import Study, finished, run_seed

RECORD = Path(__file__).resolve().parents[1] / "records" / "study-smollm2"


def prediction(question_id: str, correct: bool) -> dict:
    return {"id": question_id, "fingerprint": "f1", "prompt": "What is 2 + 2?", "output": "It is 4. The answer is 4.",
            "num_tokens": 9, "gold": "4", "answer_type": "number", "extracted": "4" if correct else None,
            "correct": correct}


def write_run_root(root: Path) -> dict[str, str]:
    """A run root with one finished run, an unfinished stage, a tuning choice and a kept base evaluation; returns
    the files the record keeps, with what each holds once restored."""
    lines = [prediction("test-arith-1", True), prediction("test-date-2", False)]
    files = {"seed0/skd/config.yaml": "sft: {max_steps: 3}\n", "seed0/skd/sft/manifest.json": '{"seconds": 5.0}\n',
             "seed0/skd/sft/log_history.json": '[{"step": 1, "loss": 2.5}]', "seed0/skd/eval/manifest.json": "{}",
             "seed0/skd/eval/sft/report.json": '{"datasets": []}',
             "seed0/skd/diagnostics/checkpoint-1/report.json": '{"datasets": []}',
             "tuning/skd/chosen.json": '{"learning_rates": {"sft": 0.0001}}',
             "base-eval/report.json": '{"datasets": []}', "base-eval/world.json": '{"world": {}}'}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "seed0/skd/train").mkdir(parents=True)  # a stage without a manifest: not finished, not recorded
    (root / "seed0/skd/train/log_history.json").write_text("[]")
    answers = [{k: p[k] for k in ("id", "gold", "extracted", "correct")} for p in lines]
    every_field = [{k: v for k, v in p.items() if k not in ("prompt", "output")} for p in lines]
    for name, kept in (("seed0/skd/eval/sft/predictions/world_test.jsonl", answers),
                       ("seed0/skd/diagnostics/checkpoint-1/predictions/world_test.jsonl", answers),
                       ("base-eval/predictions/world_test.jsonl", every_field)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(json.dumps(p) + "\n" for p in lines))
        files[name] = "".join(json.dumps(p) + "\n" for p in kept)
    return files


def files_of(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_record_restores_what_the_page_reads_and_no_texts(tmp_path: Path) -> None:
    expected = write_run_root(tmp_path / "runs")
    assert record_tree(tmp_path / "runs", tmp_path / "record") == len(expected)
    assert sorted(path.relative_to(tmp_path / "record").as_posix() for path in (tmp_path / "record").rglob("*.*")) == [
        "base-eval.json.gz", "seed0/skd.json.gz", "tuning/skd/chosen.json"]
    assert restore_tree(tmp_path / "record", tmp_path / "new") == len(expected)
    assert files_of(tmp_path / "new") == expected  # the run's answers without texts; the base's every other field
    assert record_tree(tmp_path / "new", tmp_path / "record") == 0  # nothing new


def test_the_same_content_writes_the_same_bytes(tmp_path: Path) -> None:
    write_run_root(tmp_path / "runs")
    record_tree(tmp_path / "runs", tmp_path / "first")
    record_tree(tmp_path / "runs", tmp_path / "second")
    first, second = (tmp_path / name / "seed0" / "skd.json.gz" for name in ("first", "second"))
    assert first.read_bytes() == second.read_bytes()
    (tmp_path / "runs/seed0/skd/sft/manifest.json").write_text('{"seconds": 6.0}\n')
    assert record_tree(tmp_path / "runs", tmp_path / "first") == 1
    assert first.read_bytes() != second.read_bytes()


def test_restore_never_writes_over_a_file(tmp_path: Path) -> None:
    expected = write_run_root(tmp_path / "runs")
    record_tree(tmp_path / "runs", tmp_path / "record")
    kept = {"seed0/skd/sft/manifest.json": '{"seconds": 7.0}', "seed0/skd/eval/sft/predictions/world_test.jsonl": "",
            "tuning/skd/chosen.json": "{}"}
    for name, text in kept.items():
        (tmp_path / "new" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "new" / name).write_text(text)
    assert restore_tree(tmp_path / "record", tmp_path / "new") == len(expected) - len(kept)
    assert files_of(tmp_path / "new") == expected | kept


def test_recording_keeps_what_the_record_held_of_files_the_run_root_lacks(tmp_path: Path) -> None:
    expected = write_run_root(tmp_path / "runs")
    record_tree(tmp_path / "runs", tmp_path / "record")
    shutil.rmtree(tmp_path / "runs/seed0/skd/eval")
    (tmp_path / "runs/seed0/skd/teacher_tokens.json").write_text('{"teacher_tokens": 12}')
    assert record_tree(tmp_path / "runs", tmp_path / "record") == 1
    restore_tree(tmp_path / "record", tmp_path / "new")
    assert files_of(tmp_path / "new") == expected | {"seed0/skd/teacher_tokens.json": '{"teacher_tokens": 12}'}


def test_the_smollm2_studys_record_is_compact_and_holds_no_texts() -> None:
    files = [path for path in RECORD.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 3_000_000
    unit = json.loads(gzip.decompress((RECORD / "seed0" / "ei_exgrpo.json.gz").read_bytes()))
    table = unit["predictions"]["eval/exgrpo/predictions/world_test.jsonl"]
    assert table["columns"] == ["id", "gold", "extracted", "correct"] and len(table["rows"]) == 500
    stage_files = {"config.yaml", "train/log_history.json", "train/manifest.json", "eval/exgrpo/report.json"}
    assert stage_files <= set(unit["files"])


def recorded_names(record_root: Path, tmp_path: Path) -> set[str]:
    """The run-folder files a record holds (restored into a scratch folder)."""
    scratch = tmp_path / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    restore_tree(record_root, scratch)
    return set(files_of(scratch))


def recorded_json(record_root: Path, unit: str, name: str) -> dict:
    return json.loads(json.loads(gzip.decompress((record_root / unit).read_bytes()))["files"][name])


def recorded_micro_study(tmp_path: Path, base_model: Path) -> Study:
    spec = micro_spec(base_model)
    methods = spec["methods"]
    spec.update(run_root=str(tmp_path / "runs"), record_root=str(tmp_path / "record"), seeds=[0], tuning={},
                methods={name: methods[name] for name in ("ei_exgrpo", "skd", "skd_grpo")},
                goals={"primary": {"better": "ei_exgrpo", "worse": "skd", "splits": "held_out"},
                       "secondary": [{"better": "skd_grpo", "worse": "skd", "splits": "held_in"}]})
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
    # The primary verdict opens the page; the goals section gives it again among the Holm-corrected others.
    opening = written.split("## Primary verdict")[1].split("\n## ")[0]
    primary = [line for line in opening.splitlines() if line.startswith("- **")]
    goals = written.split("## Goals")[1].split("## Main table")[0]
    assert len(primary) == 1 and "(primary goal" in primary[0] and primary[0] in goals
    assert written.index("## Primary verdict") < written.index("## Does the student learn?")
    assert written.index("## Compute") < written.index("## Degenerate outputs")

    # What the record holds: small files only, predictions without their texts, no model, no data.
    kept = recorded_names(study.record_root, tmp_path)
    assert "seed0/ei_exgrpo/eval/sft/predictions/world_test.jsonl" in kept
    assert "seed0/ei_exgrpo/diagnostics/checkpoint-1/report.json" in kept
    assert {"seed0/skd/sft/manifest.json", "seed0/skd/sft/log_history.json", "seed0/skd/teacher_tokens.json",
            "seed0/skd/config.yaml", "base-eval/report.json", "base-eval/cost.json"} <= kept
    assert not [name for name in kept if "/final/" in name or "/world/" in name and "manifest" not in name
                or name.endswith((".safetensors", "ei.jsonl"))]
    prediction = json.loads((tmp_path / "scratch/seed0/ei_exgrpo/eval/sft/predictions/world_test.jsonl")
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
    shutil.rmtree(study.run_root / "seed0" / "skd_grpo" / "eval")
    (study.record_root / "seed0" / "skd_grpo.json.gz").unlink()
    run_seed(study, 0, log=lines.append)
    assert trained_methods(trained) == ["run_sft skd", "run_train skd_grpo"]
    skd = study.run_config("skd", 0)
    assert all(done for _, _, done in plan(skd))  # its recorded evaluation still counts as done
    # The remade SFT stage keeps what it cost the first time (the page's totals count the work once); the remake
    # is listed apart, with its machine.
    recorded = recorded_json(study.record_root, "seed0/skd.json.gz", "sft/manifest.json")
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
