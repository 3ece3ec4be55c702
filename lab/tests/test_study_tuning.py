"""Equal tuning on validation (study/tuning.py): the candidates' configurations and the choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exgrpo.errors import ConfigError
from lab.study import tuning
from lab.study.spec import Study

REPO = Path(__file__).resolve().parents[1]
RATES = {"sft": [5.0e-5, 1.0e-4, 2.0e-4], "train": [1.0e-5, 2.0e-5, 5.0e-5]}


@pytest.fixture
def study(tmp_path: Path) -> Study:
    spec = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    spec.pop("record_root", None)  # never the repository's record
    spec.update(run_root=str(tmp_path / "runs"), tuning={"seed": 0, "datasets": ["world_val"], "learning_rates": RATES})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return Study(path)


def test_a_candidate_trains_one_stage_with_its_rate_and_reads_validation_only(study: Study) -> None:
    values = tuning.candidate_values(study, "ei_exgrpo", "sft", 2.0e-4, {})
    assert values["sft"]["learning_rate"] == 2.0e-4 and values["train"] is None
    assert values["eval"]["datasets"] == ["world_val"] and values["eval"]["ei_test"] is None
    assert values["eval"]["models"] == ["sft"]
    assert values["run_dir"] == str(study.run_root / "tuning" / "ei_exgrpo" / "sft-lr0.0002")
    rl = tuning.candidate_values(study, "ei_exgrpo", "train", 1.0e-5, {"sft": 1.0e-4})
    assert rl["sft"] is None and rl["sft_model"] == str(study.run_root / "tuning" / "ei_exgrpo" / "sft-lr0.0001" / "sft"
                                                        / "final")
    assert rl["train"]["learning_rate"] == 1.0e-5 and rl["eval"]["models"] == ["exgrpo"]
    assert tuning.trained_stages(study, "ei_exgrpo") == ["sft", "train"]
    assert tuning.trained_stages(study, "skd") == ["sft"] and tuning.trained_stages(study, "skd_grpo") == ["train"]


def test_rl_from_another_methods_sft_waits_for_its_tuning(study: Study) -> None:
    with pytest.raises(ConfigError, match="tune skd first"):
        tuning.candidate_values(study, "skd_grpo", "train", 1.0e-5, {})
    choice = tuning.tuning_dir(study, "skd") / "chosen.json"
    choice.parent.mkdir(parents=True)
    choice.write_text(json.dumps({"learning_rates": {"sft": 5.0e-5}}))
    values = tuning.candidate_values(study, "skd_grpo", "train", 1.0e-5, {})
    assert values["sft_model"] == str(tuning.candidate_dir(study, "skd", "sft", 5.0e-5) / "sft" / "final")


def test_the_best_validation_accuracy_is_chosen_and_applied_to_every_seed(study: Study,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import exgrpo.runner.run

    accuracy = {("sft", 1.0e-4): 0.6, ("sft", 5.0e-5): 0.4, ("sft", 2.0e-4): 0.5,
                ("train", 1.0e-5): 0.61, ("train", 2.0e-5): 0.61, ("train", 5.0e-5): 0.3}
    ran: list[Any] = []
    made: list[str] = []

    def fake_run(config: Any, on_stage: Any = None, until: str | None = None) -> None:  # writes what an evaluation would
        if until is not None:  # the SFT model an RL candidate starts from (not on this machine: no manifest here)
            made.append(f"{config.run_dir.name} until {until}")
            return
        stage = "train" if config.train is not None else "sft"
        learning_rate = (config.train or config.sft).learning_rate
        model = "exgrpo" if stage == "train" else "sft"
        report = config.run_dir / "eval" / model / "report.json"
        report.parent.mkdir(parents=True)
        correct = round(100 * accuracy[(stage, learning_rate)])
        report.write_text(json.dumps({"datasets": [{"num_correct": correct, "num_examples": 100}]}))
        ran.append((stage, learning_rate, config.sft_model))

    monkeypatch.setattr(exgrpo.runner.run, "run", fake_run)
    chosen = tuning.tune_method(study, "ei_exgrpo", log=lambda line: None)
    assert chosen == {"sft": 1.0e-4, "train": 1.0e-5}  # a tie goes to the first candidate
    assert len(ran) == 6 and all(sft_model.endswith("sft-lr0.0001/sft/final") for stage, _, sft_model in ran
                                 if stage == "train")
    assert made == ["sft-lr0.0001 until sft"] * 3  # each RL candidate first makes sure its SFT model is there
    for seed in study.seeds:
        values = study.run_values("ei_exgrpo", seed)
        assert (values["sft"]["learning_rate"], values["train"]["learning_rate"]) == (1.0e-4, 1.0e-5)
    saved = json.loads((tuning.tuning_dir(study, "ei_exgrpo") / "chosen.json").read_text())
    assert saved["validation_accuracy"]["sft"] == {"5e-05": 0.4, "0.0001": 0.6, "0.0002": 0.5}


def test_a_stage_without_candidates_keeps_the_specs_rate(study: Study, monkeypatch: pytest.MonkeyPatch) -> None:
    """An RL rate chosen elsewhere (no `train` candidates): only SFT is tuned; RL runs at the spec's rate."""
    import exgrpo.runner.run

    study.tuning["learning_rates"] = {"sft": RATES["sft"]}
    spec_rate = study.run_values("ei_exgrpo", 0, apply_tuning=False)["train"]["learning_rate"]
    ran: list[tuple[str, float]] = []

    def fake_run(config: Any, on_stage: Any = None, until: str | None = None) -> None:
        report = config.run_dir / "eval" / "sft" / "report.json"
        report.parent.mkdir(parents=True)
        correct = {5.0e-5: 40, 1.0e-4: 30, 2.0e-4: 20}[config.sft.learning_rate]
        report.write_text(json.dumps({"datasets": [{"num_correct": correct, "num_examples": 100}]}))
        ran.append(("train" if config.train is not None else "sft", config.sft.learning_rate))

    monkeypatch.setattr(exgrpo.runner.run, "run", fake_run)
    assert tuning.tuned_stages(study, "ei_exgrpo") == ["sft"]
    assert tuning.tune_method(study, "ei_exgrpo", log=lambda line: None) == {"sft": 5.0e-5}
    assert ran == [("sft", 5.0e-5), ("sft", 1.0e-4), ("sft", 2.0e-4)]
    values = study.run_values("ei_exgrpo", 1)
    assert (values["sft"]["learning_rate"], values["train"]["learning_rate"]) == (5.0e-5, spec_rate)


def test_the_page_lists_candidates_run_outside_the_final_grid(study: Study) -> None:
    from lab.study.standing import off_grid_lines

    def candidate(stage: str, rate: float, correct: int, kl: float | None = None) -> None:
        folder = tuning.candidate_dir(study, "ei_exgrpo", stage, rate)
        model = "sft" if stage == "sft" else "exgrpo"
        (folder / "eval" / model).mkdir(parents=True)
        (folder / "eval" / model / "report.json").write_text(json.dumps(
            {"datasets": [{"name": "world_val", "num_correct": correct, "num_examples": 200}]}))
        if kl is not None:
            (folder / "train").mkdir()
            (folder / "train" / "log_history.json").write_text(json.dumps([{"kl": 0.5}, {"kl": kl}, {"loss": 1.0}]))

    candidate("train", 1.0e-5, 100, kl=2.5e-4)  # on the grid: not listed
    assert off_grid_lines(study) == []
    candidate("train", 3.0e-6, 111, kl=2.5e-4)
    candidate("sft", 1.0e-3, 50)
    tuning.candidate_dir(study, "ei_exgrpo", "train", 7.0e-6).mkdir(parents=True)  # killed before its evaluation
    rows = [line for line in off_grid_lines(study) if line.startswith("| EI")]
    assert rows == ["| EI + ExGRPO (ours) | sft | 0.001 | 25.0 | n/a |", "| EI + ExGRPO (ours) | train | 3e-06 | 55.5 | 0.00025 |"]


def test_a_choice_made_on_another_grid_is_stale(study: Study) -> None:
    choice = tuning.tuning_dir(study, "ei_exgrpo") / "chosen.json"
    choice.parent.mkdir(parents=True)
    saved = {"learning_rates": {"sft": 2.0e-4, "train": 1.0e-5},
             "validation_accuracy": {"sft": {"5e-05": 0.5, "0.0001": 0.5, "0.0002": 0.6},
                                     "train": {"1e-05": 0.6, "2e-05": 0.5, "5e-05": 0.5}}}
    choice.write_text(json.dumps(saved))
    values = study.run_values("ei_exgrpo", 1)
    assert (values["sft"]["learning_rate"], values["train"]["learning_rate"]) == (2.0e-4, 1.0e-5)
    study.tuning["learning_rates"] = {**RATES, "train": [5.0e-5, 2.0e-4, 5.0e-4]}  # the RL grid moved
    assert tuning.read_choice(study, "ei_exgrpo") == {}
    values = study.run_values("ei_exgrpo", 1)  # no seed's run takes the stale choice: the spec's rates until tuned
    assert (values["sft"]["learning_rate"], values["train"]["learning_rate"]) == (1.0e-4, 2.0e-5)


def test_the_tuning_table_reads_the_chosen_model_again_from_its_seed_run(study: Study) -> None:
    from lab.study.standing import tuning_lines

    choice = tuning.tuning_dir(study, "skd") / "chosen.json"
    choice.parent.mkdir(parents=True)
    choice.write_text(json.dumps({"learning_rates": {"sft": 2.0e-4},
                                  "validation_accuracy": {"sft": {"5e-05": 0.695, "0.0001": 0.67, "0.0002": 0.7}}}))

    def row() -> str:
        return next(line for line in tuning_lines(study) if line.startswith("| SKD (SFT"))

    grid = study.tuning["learning_rates"]["sft"]
    assert sorted(grid)[-1] == 2.0e-4 and len(grid) > 1  # the choice is the largest rate tried: the table says so
    assert row() == ("| SKD (SFT on teacher rationales) | sft | 5e-05: 69.5, 0.0001: 67.0, 0.0002: 70.0 | "
                     "0.0002 (largest tried) | n/a |")
    assert any(line.startswith("A choice at the edge of its grid (marked)") for line in tuning_lines(study))
    report = study.run_dir(0, "skd") / "eval" / "sft" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"datasets": [{"name": "world_val", "num_correct": 139, "num_examples": 200},
                                               {"name": "world_test", "num_correct": 500, "num_examples": 500}]}))
    assert row().endswith("| 0.0002 (largest tried) | 69.5 |")  # validation only: the run's test questions are not read


def test_a_choice_inside_its_grid_is_not_marked() -> None:
    from lab.study.standing import grid_edge

    assert grid_edge([5e-5, 1e-4, 2e-4], 1e-4) == "" and grid_edge([1e-5], 1e-5) == ""
    assert grid_edge([5e-5, 1e-4, 2e-4], 5e-5) == " (smallest tried)"
    assert grid_edge([5e-5, 1e-4, 2e-4], 2e-4) == " (largest tried)"
