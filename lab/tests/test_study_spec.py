"""The study spec: common settings merged with each method's, shared stages, every method a valid run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from exgrpo.config import DistillStageConfig
from exgrpo.errors import ConfigError
from exgrpo.runner.stage_configs import probe_config, stage_configs, train_config
from lab.study.spec import Study, deep_merge

SPEC = Path(__file__).parent.parent / "configs" / "study.yaml"


def test_deep_merge_merges_nested_sections_without_touching_its_inputs() -> None:
    base = {"a": {"x": 1, "y": {"z": 2}}, "b": {"c": 1}, "d": [1]}
    override = {"a": {"y": {"w": 3}}, "b": None, "e": {"f": 4}}
    before = copy.deepcopy((base, override))
    merged = deep_merge(base, override)
    assert merged == {"a": {"x": 1, "y": {"z": 2, "w": 3}}, "b": None, "d": [1], "e": {"f": 4}}
    merged["a"]["y"]["z"] = 0
    merged["d"].append(2)
    merged["e"]["f"] = 0
    assert (base, override) == before


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return Study(SPEC, run_root=tmp_path)


def test_the_first_method_builds_its_student_with_the_seed(study: Study, tmp_path: Path) -> None:
    assert study.first == "ei_exgrpo"
    values = study.run_values("ei_exgrpo", 2)
    assert values["student"]["seed"] == 2 and "base_model" not in values
    assert values["run_dir"] == str(tmp_path / "seed2" / "ei_exgrpo")
    assert values["sft"]["seed"] == values["train"]["seed"] == 2
    assert values["probe"]["cache_path"] == str(tmp_path / "teacher_cache.jsonl")  # one for the whole study
    assert "student" in study.common and "seed" not in study.common["student"]


def test_later_methods_reuse_the_first_methods_base_and_teacher_cache(study: Study, tmp_path: Path) -> None:
    values = study.run_values("skd", 1)
    first = tmp_path / "seed1" / "ei_exgrpo"
    assert "student" not in values
    assert values["base_model"] == str(first / "base" / "final")
    assert values["probe"]["cache_path"] == str(tmp_path / "teacher_cache.jsonl")
    assert values["train"] is None and values["eval"]["models"] == ["sft"]
    assert values["sft"]["include_probes"] is False
    assert values["sft"]["epochs"] == study.common["sft"]["epochs"]  # common settings merged in


def test_own_base_methods_build_their_own_student(study: Study) -> None:
    values = study.run_values("teacher_model", 1)
    assert "base_model" not in values
    assert values["student"]["seed"] == 1
    assert values["student"]["hidden_size"] == study.methods["teacher_model"]["student"]["hidden_size"]


def test_sft_model_from_reuses_another_methods_sft_model(study: Study, tmp_path: Path) -> None:
    values = study.run_values("ei_rl_outcome", 0)
    assert values["sft"] is None
    assert values["sft_model"] == str(tmp_path / "seed0" / "ei_exgrpo" / "sft" / "final")
    assert "sft_model_from" not in values and "title" not in values
    exgrpo = values["train"]["exgrpo"]
    assert exgrpo["dsu_delta"] == exgrpo["aux_weight"] == 0.0
    assert exgrpo["k"] == study.common["train"]["exgrpo"]["k"]


def test_data_fraction_lands_on_both_training_stages(study: Study) -> None:
    fraction = study.methods["ei_exgrpo_f0.25"]["data_fraction"]
    values = study.run_values("ei_exgrpo_f0.25", 0)
    assert values["sft"]["data_fraction"] == values["train"]["data_fraction"] == fraction
    assert "data_fraction" not in values
    assert "data_fraction" not in study.run_values("ei_exgrpo", 0)["sft"]


def test_gkd_replaces_the_exgrpo_train_section_and_takes_its_teacher(study: Study, tmp_path: Path) -> None:
    values = study.run_values("gkd", 1)
    train = values["train"]
    assert train["method"] == "distill"
    assert "exgrpo" not in train and "questions_per_step" not in train and "teacher_model_from" not in train
    assert train["teacher_model"] == str(tmp_path / "seed1" / "teacher_model" / "sft" / "final")
    assert values["sft_model"] == str(tmp_path / "seed1" / "skd" / "sft" / "final")
    assert study.run_values("gkd", 1) == values  # resolving does not consume the spec
    assert isinstance(train_config(study.run_config("gkd", 1)), DistillStageConfig)


def test_every_method_of_the_spec_is_a_valid_run(study: Study) -> None:
    for method in study.methods:
        config = study.run_config(method, 0)
        assert config.name == study.title(method)
        stages = stage_configs(config)  # building every stage's config is the validation
        assert set(stages["eval"]) == set(config.evaluated_models()) and stages["eval"]


def test_the_paper_study_builds_every_method_without_a_world(tmp_path: Path) -> None:
    study = Study(SPEC.parent / "paper_qwen2.5-7b.yaml", run_root=tmp_path)
    for method in study.methods:
        config = study.run_config(method, 1)
        assert config.base_model == "Qwen/Qwen2.5-7B-Instruct" and config.world is None  # no tiny student to share
        assert probe_config(config).cache_path == tmp_path / "teacher_cache.jsonl"
        stage_configs(config)  # every stage validates
    assert train_config(study.run_config("gkd", 0)).teacher_model == "Qwen/Qwen2.5-32B-Instruct"


def test_a_report_dataset_the_runs_do_not_evaluate_is_an_error(tmp_path: Path) -> None:
    spec = yaml.safe_load((SPEC.parent / "smollm2.yaml").read_text())
    Study(SPEC.parent / "smollm2.yaml", run_root=tmp_path)  # the real spec passes
    spec["report"]["outside"] = ["svamp", "gsm8k"]  # svamp_full is the one evaluated
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"report.outside: 'svamp' is not one of common.eval.datasets"):
        Study(path, run_root=tmp_path)


def test_student_tokens_add_up_the_sittings_of_a_resumed_training(tmp_path: Path) -> None:
    from lab.study.spec import student_tokens

    (tmp_path / "sft").mkdir()
    # Killed after step 3; resumed from checkpoint-2, whose log it restores; TRL's SFT counter starts from 0 again.
    history = [{"step": 1, "num_tokens": 100.0}, {"step": 2, "num_tokens": 200.0}, {"step": 2, "eval_loss": 1.0},
               {"step": 3, "num_tokens": 100.0}, {"step": 4, "num_tokens": 200.0}]
    (tmp_path / "sft" / "log_history.json").write_text(json.dumps(history))
    assert student_tokens(tmp_path) == {"sft": 400.0}
    (tmp_path / "sft" / "log_history.json").write_text(json.dumps(history[:3]))
    assert student_tokens(tmp_path) == {"sft": 200.0}


@pytest.mark.parametrize("native_bf16", [True, False])
def test_a_study_refuses_a_machine_that_would_compute_in_another_precision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_bf16: bool) -> None:
    import exgrpo.models.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    spec = yaml.safe_load(SPEC.read_text())  # tiny students: `auto` follows the CPU alone
    Study(SPEC, run_root=tmp_path).check_machine()  # no `machine` section: any machine
    for wanted in ("bfloat16", "float32"):
        spec["machine"] = {"precision": wanted}
        path = tmp_path / f"{wanted}.yaml"
        path.write_text(yaml.safe_dump(spec))
        study = Study(path, run_root=tmp_path)
        if (wanted == "bfloat16") == native_bf16:
            study.check_machine()
        else:
            with pytest.raises(ConfigError, match=rf"machine.precision: this study computes in {wanted}.*native bf16: "
                                                  rf"{native_bf16}.*would compute in (bfloat16|float32)"):
                study.check_machine()
    spec["machine"] = {"precision": "fp8"}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="machine: only `device: cpu | cuda` and `precision: bfloat16 | float32`"):
        Study(path, run_root=tmp_path)


def test_a_cpu_study_refuses_a_gpu_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    spec = yaml.safe_load(SPEC.read_text())
    spec["machine"] = {"device": "cpu"}
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = Study(path, run_root=tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    study.check_machine()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "H200")
    with pytest.raises(ConfigError, match=r"machine.device: this study computes on cpu .*this machine on cuda"):
        study.check_machine()


def test_the_held_out_curve_averages_the_pages_splits_and_takes_the_last_step_from_the_eval_stage(
        tmp_path: Path) -> None:
    from lab.study.spec import held_out_curve

    def report(folder: Path, accuracies: dict[str, float]) -> None:
        folder.mkdir(parents=True)
        rows = [{"name": name, "group": "held_out", "accuracy": {"value": value}} for name, value in accuracies.items()]
        mean = sum(accuracies.values()) / len(accuracies)  # the report's own average counts every held-out dataset
        (folder / "report.json").write_text(json.dumps({"datasets": rows,
                                                        "averages": {"held_out": {"accuracy": {"value": mean}}}}))

    run_dir = tmp_path / "run"
    report(run_dir / "eval" / "sft", {"ood_a": 40.0, "ood_b": 20.0, "gsm8k_reversal": 0.0})
    report(run_dir / "diagnostics" / "checkpoint-10", {"ood_a": 50.0, "ood_b": 30.0})
    report(run_dir / "eval" / "exgrpo", {"ood_a": 60.0, "ood_b": 40.0, "gsm8k_reversal": 2.0})
    (run_dir / "train").mkdir()
    (run_dir / "train" / "log_history.json").write_text(json.dumps([{"loss": 1.0, "step": 10}, {"step": 20}]))
    # GSM8K-Reversal is a held-out benchmark but not one of the page's held-out splits: no step counts it.
    assert held_out_curve(run_dir, ["ood_a", "ood_b"]) == {0: 30.0, 10: 40.0, 20: 50.0}
    # A report without one of the splits gives no point, rather than the mean of the others.
    assert held_out_curve(run_dir, ["ood_a", "ood_c"]) == {}


def test_the_held_out_curve_leaves_out_the_pages_floor_families_like_its_tables(tmp_path: Path) -> None:
    from lab.study.spec import held_out_curve

    def evaluation(folder: Path, correct: dict[str, list[bool]]) -> None:
        (folder / "predictions").mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps({"datasets": []}))  # the curve reads the predictions
        for name, answers in correct.items():
            ids = [f"ood-arith-{i}" for i in range(2)] + [f"ood-budget-{i}" for i in range(2)]
            (folder / "predictions" / f"{name}.jsonl").write_text(
                "".join(json.dumps({"id": i, "correct": c}) + "\n" for i, c in zip(ids, answers, strict=True)))

    run_dir = tmp_path / "run"
    evaluation(run_dir / "eval" / "sft", {"ood_a": [True, False, True, True], "ood_b": [False, False, True, True]})
    evaluation(run_dir / "eval" / "exgrpo", {"ood_a": [True, True, True, True], "ood_b": [True, False, False, False]})
    (run_dir / "train").mkdir()
    (run_dir / "train" / "log_history.json").write_text(json.dumps([{"step": 40}]))
    without_budget = lambda question_id: "-budget-" not in question_id  # noqa: E731
    # arith only: sft (50 + 0) / 2, trained (100 + 50) / 2; with budget it would be 62.5 and 62.5.
    assert held_out_curve(run_dir, ["ood_a", "ood_b"], without_budget) == {0: 25.0, 40: 75.0}
    assert held_out_curve(run_dir, ["ood_a", "ood_b"], lambda question_id: True) == {0: 62.5, 40: 62.5}
    # A split of the left-out family only (the world's budget split) counts in no mean, as in the tables.
    for folder in ("sft", "exgrpo"):
        (run_dir / "eval" / folder / "predictions" / "ood_budget.jsonl").write_text(
            json.dumps({"id": "ood_budget-budget-0", "correct": True}) + "\n")
    assert held_out_curve(run_dir, ["ood_a", "ood_b", "ood_budget"], without_budget) == {0: 25.0, 40: 75.0}
    # A split missing from an evaluation, or no split keeping a question, gives no point.
    assert held_out_curve(run_dir, ["ood_a", "ood_c"], without_budget) == {}
    assert held_out_curve(run_dir, ["ood_a"], lambda question_id: False) == {}


def test_the_fair_study_builds_every_method_and_computes_fp32_on_any_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The third study (issue 37) runs in fp32 on CPUs with and without native bf16: every stage that runs the
    student says float32, so a sitting on either kind of machine computes alike; a stage left on `auto` would follow
    a bf16 CPU, and the check names it."""
    import exgrpo.models.precision as precision
    from lab.study.goals import spec_goals

    path = SPEC.parent / "smollm2_fair.yaml"
    study = Study(path, run_root=tmp_path)
    for method in study.methods:
        for seed in study.method_seeds(method):
            config = study.run_config(method, seed)
            assert set(stage_configs(config)["eval"]) == set(config.evaluated_models())
    assert [goal.name for goal in spec_goals(study)][0] == "primary"
    for native_bf16 in (True, False):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native_bf16: native)
        study.check_machine()
    spec = yaml.safe_load(path.read_text())  # on a bf16 CPU (the last one patched has none)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    spec["common"]["train"].pop("dtype")
    changed = tmp_path / "auto_train.yaml"
    changed.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"would compute in bfloat16 \(train\).*common.train.dtype: float32"):
        Study(changed, run_root=tmp_path).check_machine()


def test_the_outside_check_cut_to_some_seeds_leaves_the_others_without_it(tmp_path: Path) -> None:
    spec = yaml.safe_load((SPEC.parent / "smollm2_fair.yaml").read_text())
    spec["report"]["outside_seeds"] = [0]  # the fair spec's first cut
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = Study(path, run_root=tmp_path)
    outside = set(spec["report"]["outside"])
    assert outside <= set(study.run_config("skd", 0).eval.datasets)
    later = study.run_config("skd", 1).eval.datasets
    assert not outside & set(later) and "world_ood_steps" in later  # the world's splits stay on every seed
    spec["report"]["outside_seeds"] = [0, 5]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"report.outside_seeds: \[0, 5\] must be some of the study's seeds"):
        Study(path, run_root=tmp_path)


@pytest.mark.parametrize(("stages", "steps"), [(None, 30), (["sft"], 20)])
def test_compute_matching_on_cpu_seconds_counts_the_stages_the_spec_names(
        tmp_path: Path, stages: list[str] | None, steps: int) -> None:
    from lab.study.spec import compute_matched_sft

    spec = yaml.safe_load((SPEC.parent / "smollm2_fair.yaml").read_text())
    if stages:
        spec["methods"]["skd_compute_matched"]["compute_match_stages"] = stages  # the fair spec's third cut
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = Study(path, run_root=tmp_path)
    # EI + ExGRPO: 200 CPU seconds of SFT and 100 of RL; SKD with three rationales: 10 steps in 100 CPU seconds.
    for method, stage, cpu_seconds, logged in (("ei_exgrpo", "sft", 200.0, 30), ("ei_exgrpo", "train", 100.0, 5),
                                               ("skd_rationales", "sft", 100.0, 10)):
        folder = study.run_dir(0, method) / stage
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"stage": stage, "seconds": cpu_seconds,
                                                          "cpu_seconds": cpu_seconds, "outputs": {}}))
        (folder / "log_history.json").write_text(json.dumps([{"step": step} for step in range(1, logged + 1)]))
    assert compute_matched_sft(study, "skd_compute_matched", 0) == {"max_steps": steps}
    spec["methods"]["skd_compute_matched"]["compute_match_stages"] = ["eval"]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="compute_match_stages: some of sft, train"):
        Study(path, run_root=tmp_path)


def test_runs_that_fit_in_a_sitting_come_first_then_the_long_ones_the_primary_arms_first(tmp_path: Path) -> None:
    """A lost machine takes the run in progress with it: the SFT-only runs of every seed are banked first; in each
    group every seed of the primary goal's arms comes before the others."""
    study = Study(SPEC.parent / "smollm2_fair.yaml", run_root=tmp_path)
    order = study.run_order()
    assert sorted(order) == sorted((seed, m) for m in study.methods for seed in study.method_seeds(m))
    assert order[:3] == [(0, "skd"), (1, "skd"), (2, "skd")]  # the primary goal's SFT-only arm
    assert order[3:9] == [(seed, m) for seed in study.seeds for m in ("skd_rationales", "revthink")]
    assert order[9:] == [(0, "ei_exgrpo"), (1, "ei_exgrpo"), (2, "ei_exgrpo"), (0, "skd_compute_matched")]
