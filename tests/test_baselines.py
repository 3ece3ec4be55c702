"""The study's baselines: training data fractions and formats, pooled bootstrap CIs, run configs without a
stage or with on-policy distillation, and the study spec resolved into one run configuration per method."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from toy_ei import write_toy_ei

from exgrpo.config import DistillStageConfig, SFTStageConfig, build_config
from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.prompts import build_prompt
from exgrpo.errors import ConfigError
from exgrpo.pipeline import RunConfig
from exgrpo.study.spec import Study, deep_merge
from exgrpo.study.tables import family, pooled_bootstrap
from exgrpo.training.dialogues import load_ei_questions
from exgrpo.training.sft_data import (
    BACKWARD_QUESTION_TASK,
    RATIONALE_TASK,
    keep_probe_rules,
    revthink_examples,
    select_fraction,
    sft_examples,
    step_by_step_examples,
    training_questions,
)

SPEC = Path(__file__).parent.parent / "configs" / "study" / "study.yaml"
RULES = ("R1", "R4", "RP")


def _probe(qid: str, rule: str) -> dict[str, Any]:
    return {"id": f"{qid}#{rule}", "question": f"{rule} probe of {qid}?", "answer": "yes", "answer_type": "yes_no",
            "choices": [], "teacher_response": f"{rule} reasoning for {qid}. The answer is yes."}


def write_ei(path: Path, n: int = 20, rules: tuple[str, ...] = RULES) -> Path:
    """n math questions, each with one probe per rule (ids '<question id>#<rule>')."""
    records = [{"schema_version": 1, "id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i),
                "answer_type": "math", "source": "toy", "choices": None, "location": "",
                "teacher_response": f"Adding {i} and {i} gives {2 * i}.", "probes": [_probe(f"q{i}", r) for r in rules]}
               for i in range(n)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.fixture
def ei(tmp_path: Path) -> Path:
    return write_ei(tmp_path / "ei.jsonl")


def rules_of(question) -> set[str]:
    return {probe.id.split("#")[1] for probe, _ in question.probes}


# ---------------------------------------------------------------- sft_data


def test_fractions_are_fixed_nested_subsets_of_the_rounded_size(ei: Path) -> None:
    questions = load_ei_questions(ei)
    subsets = [{q.example.id for q in select_fraction(questions, f)} for f in (0.1, 0.25, 0.5, 1.0)]
    assert [len(s) for s in subsets] == [round(f * len(questions)) for f in (0.1, 0.25, 0.5, 1.0)]
    assert subsets[0] < subsets[1] < subsets[2] < subsets[3]
    assert {q.example.id for q in select_fraction(questions[::-1], 0.25)} == subsets[1]  # by id, not position
    assert len(select_fraction(questions, 0.001)) == 1


def test_probe_rules_default_to_the_ei_rules_without_augmentations(ei: Path) -> None:
    questions = load_ei_questions(ei)
    assert all(rules_of(q) == set(RULES) for q in questions)
    default = keep_probe_rules(questions, None)
    assert [q.example for q in default] == [q.example for q in questions]
    assert all(rules_of(q) == {"R1", "R4"} for q in default)  # RP (Rephrase-Question) only when named
    assert all(rules_of(q) == {"RP"} for q in keep_probe_rules(questions, ["RP"]))
    assert all(not q.probes for q in keep_probe_rules(questions, []))


def test_step_by_step_pairs_the_answer_alone_with_a_rationale_task(ei: Path) -> None:
    questions = load_ei_questions(ei)[:3]
    examples = step_by_step_examples(questions)
    assert len(examples) == 2 * len(questions)
    for question, label, rationale in zip(questions, examples[::2], examples[1::2], strict=True):
        answer = final_answer_sentence(question.example.answer, question.example.answer_type)
        assert label["messages"] == [{"role": "user", "content": question.prompt},
                                     {"role": "assistant", "content": answer}]
        assert rationale["messages"] == [{"role": "user", "content": RATIONALE_TASK + question.prompt},
                                         {"role": "assistant", "content": question.teacher_response}]


def test_revthink_adds_the_backward_question_and_its_answer(ei: Path) -> None:
    questions = keep_probe_rules(load_ei_questions(ei)[:2], ["R4"])
    examples = [e["messages"] for e in revthink_examples(questions)]
    assert len(examples) == 3 * len(questions)
    question, (probe, response) = questions[1], questions[1].probes[0]
    forward, ask_backward, backward = examples[3:6]
    assert forward == [{"role": "user", "content": question.prompt},
                       {"role": "assistant", "content": question.teacher_response}]
    assert ask_backward == [{"role": "user", "content": BACKWARD_QUESTION_TASK + question.prompt},
                            {"role": "assistant", "content": probe.question}]
    assert probe.id.endswith("#R4")
    assert backward == [{"role": "user", "content": build_prompt(probe)}, {"role": "assistant", "content": response}]
    assert len(revthink_examples(keep_probe_rules(questions, []))) == len(questions)  # no probe: forward only


def sft_config(ei: Path, **values: Any) -> SFTStageConfig:
    return SFTStageConfig(model="student", ei_data=ei, **values)


def test_sft_examples_follow_the_configured_format_and_fraction(ei: Path) -> None:
    n = len(load_ei_questions(ei))
    assert len(sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0))) == n
    assert len(sft_examples(sft_config(ei, dialogues_per_question=0))) == n * 3  # Q + the R1 and R4 probes
    assert len(sft_examples(sft_config(ei, format="step_by_step"))) == 2 * n
    assert len(sft_examples(sft_config(ei, format="step_by_step", data_fraction=0.5))) == 2 * round(n / 2)
    revthink = sft_examples(sft_config(ei, format="revthink", probe_rules=["R4"]))
    assert len(revthink) == 3 * n
    assert all(m["messages"][1]["content"].startswith("R4 probe") for m in revthink[1::3])


def test_revthink_without_backward_probes_is_a_config_error(tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")  # probes of R1, R2, R3 only
    with pytest.raises(ConfigError, match="R4"):
        sft_examples(sft_config(ei, format="revthink", probe_rules=["R4"]))


def test_answer_aug_trains_on_every_rationale_of_a_question(tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")
    records = [json.loads(line) for line in ei.read_text().splitlines()]
    for record in records:
        record["extra_responses"] = [f"Another way for {record['id']}. The answer is {record['answer']}."]
    ei.write_text("".join(json.dumps(record) + "\n" for record in records))
    plain = sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0))
    augmented = sft_examples(sft_config(ei, include_probes=False, dialogues_per_question=0, extra_rationales=True))
    assert len(augmented) == 2 * len(plain) == 2 * len(records)
    extra = [e["messages"] for e in augmented if e["messages"][1]["content"].startswith("Another way")]
    assert [m[0] for m in extra] == [m["messages"][0] for m in plain]  # the same question, another rationale


def test_revthink_takes_only_reverse_reasoning_probes_as_backward_questions(ei: Path, tmp_path: Path) -> None:
    examples = sft_examples(sft_config(ei, format="revthink"))  # default rules: R1 and R4 probes are kept
    backward = [e["messages"][1]["content"] for e in examples
                if e["messages"][0]["content"].startswith(BACKWARD_QUESTION_TASK)]
    assert backward and all(text.startswith("R4 probe") for text in backward)
    with pytest.raises(ConfigError, match="R4"):  # R1-R3 probes are no backward questions
        sft_examples(sft_config(write_toy_ei(tmp_path / "toy.jsonl"), format="revthink"))


def test_training_questions_take_the_fraction_then_the_rules(ei: Path) -> None:
    config = sft_config(ei, data_fraction=0.25, probe_rules=["RP"])
    questions = training_questions(config)
    expected = select_fraction(load_ei_questions(ei), 0.25)
    assert [q.example.id for q in questions] == [q.example.id for q in expected]
    assert all(rules_of(q) == {"RP"} for q in questions)


# ---------------------------------------------------------------- study_report


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


# ---------------------------------------------------------------- RunConfig


def run_values(tmp_path: Path, **values: Any) -> dict[str, Any]:
    return {"run_dir": str(tmp_path / "run"), "base_model": "base/model", "world": None, "probe": {},
            "eval": {"datasets": ["world_test"]}, **values}


def test_a_run_trains_or_reuses_its_sft_model_not_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at most one of `sft`"):
        build_config(RunConfig, run_values(tmp_path, sft={"epochs": 1}, sft_model="other/sft"), "x")
    config = build_config(RunConfig, run_values(tmp_path, sft=None, sft_model="other/sft"), "x")
    assert config.model_paths()["sft"] == "other/sft"
    assert config.trained_models() == ["base", "sft", "exgrpo"]
    assert config.train_config().model == "other/sft"


def test_eval_models_must_be_models_the_run_has(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no exgrpo model"):
        build_config(RunConfig, run_values(tmp_path, train=None, eval={"datasets": ["world_test"],
                                                                       "models": ["exgrpo"]}), "x")


def test_without_sft_rl_starts_from_the_base_model(tmp_path: Path) -> None:
    config = build_config(RunConfig, run_values(tmp_path, sft=None), "x")
    assert config.model_paths()["sft"] == config.base_path() == "base/model"
    assert config.trained_models() == ["base", "exgrpo"]
    assert config.sft_config() is None
    assert config.train_config().model == "base/model"


def test_distill_train_section_builds_a_distillation_stage(tmp_path: Path) -> None:
    config = build_config(RunConfig, run_values(tmp_path, train={"method": "distill", "teacher_model": "t"}), "x")
    stage = config.train_config()
    assert isinstance(stage, DistillStageConfig)
    assert stage.teacher_model == "t" and stage.model == config.model_paths()["sft"]
    exgrpo_only = run_values(tmp_path, train={"method": "distill", "teacher_model": "t", "questions_per_step": 2})
    with pytest.raises(ConfigError, match=r"(?s)train section.*questions_per_step"):
        build_config(RunConfig, exgrpo_only, "x").train_config()


# ---------------------------------------------------------------- the study spec


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
    assert isinstance(study.run_config("gkd", 1).train_config(), DistillStageConfig)


def test_every_method_of_the_spec_is_a_valid_run(study: Study) -> None:
    for method in study.methods:
        config = study.run_config(method, 0)
        assert config.name == study.title(method)
        stages = config.stage_configs()  # building every stage's config is the validation
        assert set(stages["eval"]) == set(config.evaluated_models()) and stages["eval"]


def test_the_paper_study_builds_every_method_without_a_world(tmp_path: Path) -> None:
    study = Study(SPEC.parent / "paper_qwen2.5-7b.yaml", run_root=tmp_path)
    for method in study.methods:
        config = study.run_config(method, 1)
        assert config.base_model == "Qwen/Qwen2.5-7B-Instruct" and config.world is None  # no tiny student to share
        assert config.probe_config().cache_path == tmp_path / "teacher_cache.jsonl"
        config.stage_configs()  # every stage validates
    assert study.run_config("gkd", 0).train_config().teacher_model == "Qwen/Qwen2.5-32B-Instruct"
