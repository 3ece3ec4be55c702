"""The study's tables: the bootstrap pooled over seeds and questions, families from question ids, the compute table's
note on seeds measured on different CPU models."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lab.study.spec import Study
from lab.study.tables import Page, Row, family, formats_seen, pooled_bootstrap


def test_pooled_bootstrap_of_all_correct_is_one_without_spread() -> None:
    estimate = pooled_bootstrap([np.ones((3, 5)), np.ones((3, 8))])
    assert (estimate.value, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


def test_pooled_value_is_the_mean_of_group_means() -> None:
    rng = np.random.default_rng(0)
    groups = [(rng.random((3, 4)) < 0.9).astype(float), (rng.random((3, 30)) < 0.2).astype(float)]
    estimate = pooled_bootstrap(groups)
    assert estimate.value == pytest.approx(np.mean([g.mean() for g in groups]))
    assert estimate.value != pytest.approx(np.concatenate(groups, axis=1).mean())  # not pooled by question
    assert estimate.low <= estimate.value <= estimate.high


def test_pooled_ci_widens_when_seeds_disagree() -> None:
    half = np.tile([1.0, 0.0], 20)
    agree = pooled_bootstrap([np.stack([half, half])])
    disagree = pooled_bootstrap([np.stack([np.ones(40), np.zeros(40)])])
    assert agree.value == disagree.value == 0.5
    for estimate in (agree, disagree):
        assert estimate.low <= estimate.value <= estimate.high
    assert disagree.high - disagree.low > agree.high - agree.low


def test_pooled_bootstrap_of_nothing_is_none() -> None:
    assert pooled_bootstrap([]) is None
    assert pooled_bootstrap([np.zeros((2, 0))]) is None


def test_family_is_read_from_question_and_probe_ids() -> None:
    assert family("test-arith-0#R1") == "arith"
    assert family("ood_steps-date-3") == "date"
    assert family("cc74340c8a8111eeb582aed9ebe82ba1") == "" and family("svamp-0") == ""  # real benchmarks' ids




def compute_page(tmp_path: Path, machines: list[dict | None]) -> Page:
    """A Page over one SFT-only method whose seed i's stage ran on machines[i] (None: not recorded)."""
    for seed, machine in enumerate(machines):
        run_dir = tmp_path / f"seed{seed}" / "skd"
        (run_dir / "sft").mkdir(parents=True)
        manifest = {"stage": "sft", "seconds": 100.0 * (seed + 1), "cpu_seconds": 150.0 * (seed + 1)}
        (run_dir / "sft" / "manifest.json").write_text(json.dumps(manifest | ({"machine": machine} if machine else {})))
        (run_dir / "teacher_tokens.json").write_text(json.dumps({"teacher_tokens": 1000}))
        if seed != 1:  # a seed that logged its passes (seed 1 did not: not in the mean)
            history = [{"loss": 1.0, "epoch": 0.5 * (seed + 1), "step": 1}, {"epoch": 0.5 * (seed + 2), "step": 2}]
            (run_dir / "sft" / "log_history.json").write_text(json.dumps(history))
    page = Page.__new__(Page)  # only what compute_row reads: the study's folders and the seeds with results
    page.study = SimpleNamespace(methods={"skd": {}}, sft_source=lambda method: Study.sft_source(page.study, method),
                                 run_dir=lambda seed, method: tmp_path / f"seed{seed}" / method,
                                 run_config=lambda method, seed: SimpleNamespace(run_dir=tmp_path / f"seed{seed}" / method))
    page.results = SimpleNamespace(seeds=lambda row: list(range(len(machines))))
    return page


AMD = {"cpu": "AMD EPYC", "cores": 2, "native_bf16": True}
INTEL = {"cpu": "Intel Xeon", "cores": 2, "native_bf16": True}


def test_compute_table_notes_seeds_measured_on_two_cpu_models(tmp_path: Path) -> None:
    lines = compute_page(tmp_path, [AMD, None, INTEL]).compute_table([Row("SKD", "skd", "sft")])
    assert lines[2] == "| SKD | 1.50 | 1 | 1,000 | 0 | 200 † | 300 † |"  # means over seeds, marked
    footnote = [line for line in lines if line.startswith("- † SKD")]
    assert footnote == ["- † SKD, CPU seconds per seed: seed 0 150 (AMD EPYC, 2 cores, native bf16); "
                        "seed 1 300 (machine not recorded); seed 2 450 (Intel Xeon, 2 cores, native bf16)."]


def test_compute_table_has_no_note_when_one_cpu_model_measured_every_seed(tmp_path: Path) -> None:
    lines = compute_page(tmp_path, [AMD, None, AMD]).compute_table([Row("SKD", "skd", "sft")])
    assert lines[2] == "| SKD | 1.50 | 1 | 1,000 | 0 | 200 | 300 |" and len(lines) == 3


def test_the_page_says_whether_teacher_tokens_are_matched(tmp_path: Path) -> None:
    page = compute_page(tmp_path, [AMD])
    for method, tokens in (("ei", 8_000), ("skd_rationales", 2_000)):
        (tmp_path / "seed0" / method).mkdir(parents=True)
        (tmp_path / "seed0" / method / "teacher_tokens.json").write_text(json.dumps({"teacher_tokens": tokens}))
    page.study.methods.update(ei={}, skd_rationales={}, ablation={"sft_model_from": "ei"})
    ours, skd, rationales = Row("EI", "ei", "exgrpo"), Row("SKD", "skd", "sft"), Row("SKD x3", "skd_rationales", "sft")
    assert page.teacher_token_line(ours, [skd, rationales]) == [
        "Teacher-written tokens are **not matched**: EI trained on 8,000, 4.0 times the most any other arm trained on "
        "(SKD x3: 2,000).", ""]
    # An arm whose SFT model is another method's holds that method's tokens: matched within 10 %.
    assert page.teacher_token_line(ours, [Row("Ablation", "ablation", "exgrpo")])[0].startswith(
        "Teacher-written tokens are matched: EI trained on 8,000, Ablation on 8,000.")
    assert page.teacher_token_line(Row("Base", "ei", "base"), [skd]) == []  # nothing to say without our tokens


def test_a_skipped_stage_names_no_machine(tmp_path: Path) -> None:
    from lab.study.tables import stage_machine, stage_seconds

    (tmp_path / "sft").mkdir()
    manifest = {"stage": "sft", "seconds": 5.0, "machine": INTEL, "outputs": {"skipped": "adopted"}}
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps(manifest))
    assert stage_machine(tmp_path, "sft") is None and stage_seconds(tmp_path, "sft") == 0.0
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps(manifest | {"outputs": {}}))
    assert stage_machine(tmp_path, "sft") == "Intel Xeon, 2 cores, native bf16" and stage_seconds(tmp_path, "sft") == 5.0


def held_out_page(tmp_path: Path) -> Page:
    """A Page over two methods of one seed: EI + ExGRPO beats SKD on a split in its own training format
    (ood_reversed) and loses on the split no method trained the format of (ood_steps)."""
    from lab.study.tables import Results

    correct = {("ei_exgrpo", "world_ood_steps"): [1, 0, 0, 0], ("skd", "world_ood_steps"): [1, 1, 1, 0],
               ("ei_exgrpo", "world_ood_reversed"): [1, 1, 1, 1], ("skd", "world_ood_reversed"): [0, 0, 0, 0]}
    models = {"ei_exgrpo": ["base", "sft", "exgrpo"], "skd": ["sft"]}
    for (method, dataset), answers in correct.items():
        for model in models[method]:
            folder = tmp_path / "seed0" / method / "eval" / model
            (folder / "predictions").mkdir(parents=True, exist_ok=True)
            (folder / "report.json").write_text("{}")
            (folder / "predictions" / f"{dataset}.jsonl").write_text("".join(
                json.dumps({"id": f"{dataset.removeprefix('world_')}-arith-{i}", "correct": bool(value)}) + "\n"
                for i, value in enumerate(answers)))
    methods = {"ei_exgrpo": {"title": "EI + ExGRPO (ours)"},
               "skd": {"title": "SKD (SFT on teacher rationales)", "train": None}}
    study = SimpleNamespace(methods=methods, common={}, seeds=[0], spec_path=Path("spec.yaml"), goals_spec=None,
                            run_dir=lambda seed, method: tmp_path / f"seed{seed}" / method,
                            title=lambda method: methods[method]["title"],
                            report={"format_seen_by": {"world_ood_reversed": {"format": "EI rule R4",
                                                                              "methods": ["ei_exgrpo"]}}})
    page = Page.__new__(Page)
    page.study, page.results, page.world, page.excluded = study, Results(study), True, set()
    page.format_seen = formats_seen(study, ["world_ood_steps", "world_ood_reversed"])
    page.names, page.held_in, page.ei_test, page.outside = ["world_ood_steps", "world_ood_reversed"], [], [], []
    page.held_out, page.held_out_seen = ["world_ood_steps"], ["world_ood_reversed"]
    page._examples = {dataset: [SimpleNamespace(id=f"{dataset.removeprefix('world_')}-arith-{i}") for i in range(4)]
                      for dataset in page.names}  # the evaluated questions (Page.examples)
    return page


def test_a_split_in_a_format_some_method_trained_on_is_reported_apart_and_labelled(tmp_path: Path) -> None:
    from lab.study.page import OURS, ZERO_SHOT, method_row, seen_format_lines

    page = held_out_page(tmp_path)
    skd = method_row(page.study, "skd")
    assert page.estimate(OURS, page.held_out, minus=skd).value == pytest.approx(-0.5)  # the goals read this only
    assert page.trained_format(OURS, "world_ood_reversed") and not page.trained_format(skd, "world_ood_reversed")
    assert not page.trained_format(ZERO_SHOT, "world_ood_reversed")  # the base student trained on nothing
    lines = seen_format_lines(page, page.study, [ZERO_SHOT, skd, OURS])
    assert ("world_ood_reversed is in the format of EI rule R4, which these methods trained on: EI + ExGRPO (ours) "
            "(`ei_exgrpo`). It is in no held-out average and no goal.") in lines
    assert "| EI + ExGRPO (ours) | 100.0 [100.0, 100.0] (yes) |" in lines
    assert "| SKD (SFT on teacher rationales) | 0.0 [0.0, 0.0] (no) |" in lines
    differences = {line.split(" | ")[0]: line.split(" | ")[2] for line in lines if line.startswith("| world_ood")}
    assert differences["| world_ood_reversed"].startswith("100.0")
    assert differences["| world_ood_steps"].startswith("-50.0")
    assert "| world_ood_reversed | no: EI rule R4 |" in "\n".join(lines)


def test_format_seen_by_names_the_field_it_cannot_read(tmp_path: Path) -> None:
    from exgrpo.errors import ConfigError

    study = held_out_page(tmp_path).study
    study.report["format_seen_by"]["world_ood_reversed"]["methods"] = ["ei_exgrpo", "revthink"]
    with pytest.raises(ConfigError, match=r"report.format_seen_by.world_ood_reversed.methods: no method 'revthink'"):
        formats_seen(study, ["world_ood_steps", "world_ood_reversed"])
    with pytest.raises(ConfigError, match=r"report.format_seen_by.world_ood_reversed: not one of the evaluated"):
        formats_seen(study, ["world_ood_steps"])


def test_an_estimate_reads_only_the_seeds_evaluated_on_its_datasets() -> None:
    from lab.study.tables import Results

    # Seed 0 evaluated the outside check, seed 1 did not (the spec's report.outside_seeds); both the world's split.
    verdicts = {0: {"world_test": {"a": True, "b": False}, "gsm8k": {"g": True}},
                1: {"world_test": {"a": True, "b": True}}}
    results = Results(SimpleNamespace(seeds=[0, 1]))
    row = Row("SKD", "skd", "sft")
    results.cache = {("skd", "sft", seed): found for seed, found in verdicts.items()}
    assert results.seeds(row) == [0, 1] and results.seeds(row, datasets=["world_test"]) == [0, 1]
    assert results.seeds(row, datasets=["gsm8k"]) == [0]
    page = Page.__new__(Page)
    page.results, page.excluded, page.world = results, set(), False
    assert page.estimate(row, ["gsm8k"]).value == 1.0 and page.estimate(row, ["world_test"]).value == 0.75


def test_full_exgrpo_is_the_dsu_step_only_where_the_ladder_ran() -> None:
    from lab.study.page import ablation_note, ablation_rows

    ladder = SimpleNamespace(methods={"ei_exgrpo": {}, "ei_rl_outcome": {}, "ei_rl_aux": {}}, title=str)
    assert ablation_rows(ladder)[-1].title == "+ DSU bonus = full ExGRPO" and ablation_note(ladder) == []
    alone = SimpleNamespace(methods={"ei_exgrpo": {}, "skd": {}}, title=str)
    assert [row.title for row in ablation_rows(alone)][1:] == ["SFT only (EI data)", "+ full ExGRPO (every part at once)"]
    assert "No RL ablation ladder" in ablation_note(alone)[0]


def test_a_spec_without_data_fraction_arms_says_so_instead_of_a_table() -> None:
    from lab.study.page import data_efficiency_lines, fractions_run

    full = [(1.0, Row("SKD", "skd", "sft"))]
    cut = SimpleNamespace(study=SimpleNamespace(report={"cut": "(2) the data-efficiency arms dropped"}))
    assert not fractions_run({"SKD": full, "EI + ExGRPO": full})
    lines = data_efficiency_lines(cut, {"SKD": full})
    assert lines[0].startswith("No data-fraction arm in this spec (the spec's cut") and "|" not in "".join(lines)
    assert fractions_run({"SKD": [(0.5, Row("SKD", "skd_f0.5", "sft")), *full]})


def test_a_long_per_step_series_is_shown_in_at_most_ten_columns_of_means() -> None:
    from lab.study.page import _binned_row

    # 52 steps, two seeds: each column is the mean over its consecutive steps and the seeds.
    series = {step: [step / 100, step / 100 + 0.02] for step in range(1, 53)}
    head, rule, row = _binned_row("rate", series)
    assert head.split(" | ")[1:3] == ["1-6", "7-12"] and head.endswith(" 48-52 |") and rule.count("---|") == 11
    assert row.split(" | ")[1] == f"{np.mean([s / 100 + d for s in range(1, 7) for d in (0, 0.02)]):.2f}"
    assert len(row.split(" | ")) == 11
    # A short series keeps one column per step.
    assert _binned_row("rate", {5: [0.5], 10: [0.25]}) == ["| steps | 5 | 10 |", "|---|---|---|",
                                                            "| rate | 0.50 | 0.25 |"]


def test_the_per_split_differences_follow_the_spec_goals_baselines(tmp_path: Path) -> None:
    from lab.study.page import seen_format_lines

    page = held_out_page(tmp_path)
    page.study.methods["skd_more"] = {"title": "SKD, more", "train": None}
    page.study.common = {"train": {}}  # ei_exgrpo has an RL stage: its own row is its RL model
    # Held-out goals against skd_more and skd (in that order), and ones the table leaves out: the RL step (the
    # same method's SFT model) and a held-in goal.
    page.study.goals_spec = {
        "primary": {"better": "ei_exgrpo", "worse": "skd_more", "splits": "held_out"},
        "secondary": [{"better": "ei_exgrpo", "worse": "skd", "splits": "held_out"},
                      {"better": "ei_exgrpo:exgrpo", "worse": "ei_exgrpo:sft", "splits": "held_out"},
                      {"better": "ei_exgrpo", "worse": "skd", "splits": "held_in"}]}
    lines = seen_format_lines(page, page.study, [])
    header = next(line for line in lines if line.startswith("| held-out split |"))
    assert header.split(" | ")[2:] == ["EI + ExGRPO minus SKD, more", "EI + ExGRPO minus SKD (SFT on teacher "
                                                                     "rationales) |"]
    steps = next(line for line in lines if line.startswith("| world_ood_steps |"))
    assert steps.split(" | ")[2:] == ["n/a", "-50.0 [-100.0, 0.0] |"]  # skd_more has no run yet


def test_the_page_says_what_a_seed_changes_for_a_pretrained_and_a_from_scratch_student() -> None:
    from lab.study.page import _seeds_change

    pretrained = _seeds_change(SimpleNamespace(common={"base_model": "smollm2-135m-instruct"}))
    scratch = _seeds_change(SimpleNamespace(common={"student": {"num_layers": 2}}))
    assert "initialisation" in scratch and "initialisation" not in pretrained
    assert "pretrained student's weights are every seed's start" in pretrained


def test_a_model_in_two_tables_keeps_the_main_tables_title() -> None:
    from lab.study.page import OURS, _all_rows, ablation_rows, main_rows

    study = SimpleNamespace(methods={"ei_exgrpo": {"train": {}}, "skd": {}}, common={}, title=lambda m: m.upper())
    rows = _all_rows(study, main_rows(study), ablation_rows(study))
    # The degenerate-runs list names full ExGRPO as the main table does, once, not by its ablation step's name.
    assert [row.title for row in rows if (row.method, row.model) == ("ei_exgrpo", "exgrpo")] == [OURS.title]
    assert ("skd", "sft") in {(row.method, row.model) for row in rows}


def test_every_other_arm_is_checked_against_the_guessing_floor_on_held_in(tmp_path: Path) -> None:
    from lab.study.page import OURS, learned_lines, method_row

    page = held_out_page(tmp_path)  # EI + ExGRPO right on 1 of 4 questions of ood_steps, SKD on 3 of 4
    page.held_in, skd = ["world_ood_steps"], method_row(page.study, "skd")
    page.floor_values = lambda datasets, pooled=False: (10.0, 20.0)
    lines = learned_lines(page, [skd, OURS])
    assert lines[0].startswith("Every other trained arm on the held-in test against the larger guessing floor, 20.0")
    assert lines[2].startswith("- SKD (SFT on teacher rationales): 75.0 [") and lines[2].endswith(", above it")
    assert lines[3].startswith("- EI + ExGRPO (ours): 25.0 [0.0, ") and lines[3].endswith("(its CI holds it)")
    page.floor_values = lambda datasets, pooled=False: (90.0, 95.0)
    assert learned_lines(page, [skd, OURS])[3].endswith(", below it")
