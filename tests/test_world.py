"""The synthetic world: determinism, split disjointness, what each held-out split changes, exact answers,
the exact teacher behind the probe stage, and the base student's weak prior."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from exgrpo.config import ProbeConfig, build_config, registry_context
from exgrpo.data.answers import check_example
from exgrpo.data.registry import DATASETS_FILE, DatasetRegistry, read_datasets_file
from exgrpo.errors import ConfigError
from exgrpo.inversion.pipeline import run_probe
from exgrpo.world.datasets import world_entries, world_problems, write_world
from exgrpo.world.generate import HELD_OUT_NAMES, SPLITS, TRAIN_NAMES, generate_world, to_example
from exgrpo.world.program import question_text, rationale
from exgrpo.world.teacher import WORLD_TEACHERS

WORLD = generate_world(seed=3, train_size=40, test_size=15, ood_size=15)


def independent_answer(problem) -> str:
    """Solve from the structure with plain Python, not with program.py's solver."""
    value = problem.start
    for step in problem.steps:
        if step.op in ("add", "sub"):
            value = value + step.amount if step.op == "add" else value - step.amount
        elif step.op == "mul":
            value = value * 2
        elif step.op in ("later", "earlier"):
            value = value + timedelta(days=step.amount if step.op == "later" else -step.amount)
        elif step.op == "flip":
            value = not value
    if problem.family == "choice":
        return "ABCD"[problem.options.index(value)]
    if problem.family == "budget":
        return "yes" if value >= problem.price else "no"
    shown = problem.start if problem.reversed else value
    if isinstance(shown, bool):
        return "yes" if shown else "no"
    return shown.strftime("%m/%d/%Y") if hasattr(shown, "strftime") else str(shown)


def test_generation_is_seeded_and_deterministic() -> None:
    again = generate_world(seed=3, train_size=40, test_size=15, ood_size=15)
    assert {s: [question_text(p) for p in ps] for s, ps in WORLD.items()} == \
        {s: [question_text(p) for p in ps] for s, ps in again.items()}
    other = generate_world(seed=4, train_size=40, test_size=15, ood_size=15)
    assert [question_text(p) for p in other["train"]] != [question_text(p) for p in WORLD["train"]]


def test_no_evaluation_question_occurs_in_training() -> None:
    train = {question_text(p) for p in WORLD["train"]}
    for split, problems in WORLD.items():
        texts = [question_text(p) for p in problems]
        assert len(set(texts)) == len(texts), f"{split} repeats a question"
        if split != "train":
            assert not train & set(texts), f"{split} shares questions with train"


def test_held_out_splits_change_what_they_say() -> None:
    assert {len(p.steps) for p in WORLD["train"]} == {1, 2, 3}
    assert {len(p.steps) for p in WORLD["ood_steps"]} == {4, 5}
    assert {p.style.name for p in WORLD["train"]} <= set(TRAIN_NAMES)
    assert {p.style.name for p in WORLD["ood_surface"]} <= set(HELD_OUT_NAMES)
    assert all(p.style.variant == 1 for p in WORLD["ood_surface"])
    assert all(p.reversed for p in WORLD["ood_reversed"])
    assert {p.family for p in WORLD["ood_budget"]} == {"budget"}
    assert not {p.family for p in WORLD["train"]} & {"budget"}  # a family seen only at test time
    assert set(SPLITS) == set(WORLD)


def test_answers_and_rationales_are_exact() -> None:
    for split, problems in WORLD.items():
        for problem in problems:
            example = to_example(problem, split)
            assert example.answer == independent_answer(problem)
            assert check_example(rationale(problem), example).correct


def test_world_files_load_through_the_registry(tmp_path: Path) -> None:
    counts = write_world(tmp_path, seed=3, train_size=10, test_size=5, ood_size=5, val_size=2)
    registry = DatasetRegistry(world_entries(tmp_path))
    assert set(counts) <= set(registry.names())
    assert counts["world_train"] == 40 and counts["world_ood_reversed"] == 5 and counts["world_val"] == 8
    assert counts["world_ei_test"] > 5 * 4 * 8  # the probes of the test questions, most rules apply
    for name in counts:
        examples = registry.load(name)
        assert len(examples) == counts[name]
        assert all(e.answer.strip() for e in examples)


def test_the_world_folder_names_its_datasets_for_any_command(tmp_path: Path) -> None:
    counts = write_world(tmp_path / "world", seed=3, train_size=4, test_size=2, ood_size=2)
    entries = read_datasets_file(tmp_path / "world" / DATASETS_FILE)
    assert [entry.name for entry in entries] == list(counts)  # no world_val: val_size 0 wrote none
    from_file = DatasetRegistry(entries)
    from_code = DatasetRegistry(world_entries(tmp_path / "world"))
    for name, count in counts.items():
        assert [e.id for e in from_file.load(name)] == [e.id for e in from_code.load(name)] and count
    assert "world_test" not in DatasetRegistry()  # writing a world registered nothing


def exact_probe_config(tmp_path: Path, registry: DatasetRegistry, **values) -> ProbeConfig:
    world = {"seed": 3, "train_size": values.pop("train_size", 5), "test_size": 2, "ood_size": 2}
    return build_config(ProbeConfig, {"datasets": ["world_train"], "output_dir": tmp_path / "probe",
                                      "teacher": {"kind": "exact", "world": world}, **values}, "test",
                        registry_context(registry))


def test_world_dataset_names_are_known_only_to_a_registry_that_holds_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) world_train"):
        exact_probe_config(tmp_path, DatasetRegistry())


def test_the_exact_teacher_is_handed_in_not_imported_by_the_teachers_layer(tmp_path: Path) -> None:
    write_world(tmp_path / "world", seed=3, train_size=5, test_size=2, ood_size=2)
    registry = DatasetRegistry(world_entries(tmp_path / "world"))
    with pytest.raises(ConfigError, match="teacher kind 'exact'"):
        run_probe(exact_probe_config(tmp_path, registry), registry=registry)


def test_the_exact_teacher_makes_every_probe_consistent(tmp_path: Path) -> None:
    write_world(tmp_path / "world", seed=3, train_size=5, test_size=2, ood_size=2)
    registry = DatasetRegistry(world_entries(tmp_path / "world"))
    config = exact_probe_config(tmp_path, registry)
    stats = run_probe(config, registry=registry, extra_teachers=WORLD_TEACHERS)
    rules = stats["rules"]
    assert stats["datasets"]["world_train"]["teacher_wrong"] == 0
    assert all(row["mismatched"] == 0 and row["inconsistent"] == 0 for row in rules.values())
    one_step = sum(len(p.steps) == 1 for p in world_problems(3, 5, 2, 2).values() if p.id.startswith("train-"))
    assert rules["R2"]["invalid"] == one_step  # R2 needs a step that is not the last
    assert all(rules[r]["invalid"] == 0 for r in ("R1", "R4", "R5", "R6", "R7", "R8", "R9", "R10"))


def test_answer_aug_samples_are_other_correct_rationales_paid_once(tmp_path: Path) -> None:
    from exgrpo.training.dialogues import load_ei_questions

    write_world(tmp_path / "world", seed=3, train_size=3, test_size=2, ood_size=2)
    registry = DatasetRegistry(world_entries(tmp_path / "world"))
    config = exact_probe_config(tmp_path, registry, train_size=3, rules=["R1"], answer_samples=2)
    first = run_probe(config, registry=registry, extra_teachers=WORLD_TEACHERS)
    questions = load_ei_questions(tmp_path / "probe" / "ei.jsonl")
    assert questions and all(len(q.extra_responses) == 2 for q in questions)
    for question in questions:
        assert question.teacher_response not in question.extra_responses
        assert all(check_example(text, question.example).correct for text in question.extra_responses)
    # Samples are distinct calls of the cache (seeded): a rerun pays for none of them again.
    assert first["teachers"]["teacher"]["calls"] >= 3 * len(questions)
    again = run_probe(config, registry=registry, extra_teachers=WORLD_TEACHERS)
    assert again["teachers"]["teacher"]["calls"] == 0


@pytest.mark.slow
def test_the_base_student_has_a_weak_prior(tmp_path: Path) -> None:
    from exgrpo.data.prompts import build_messages
    from exgrpo.generation.generators import TransformersGenerator, load_model_and_tokenizer
    from exgrpo.world.student import build_base_student

    train = generate_world(seed=0, train_size=40, test_size=20, ood_size=5)
    path = build_base_student(tmp_path, train["train"], hidden_size=128, num_layers=2, num_heads=2, vocab_size=600,
                              pretrain_epochs=6, learning_rate=2e-3, batch_size=16, seed=0)
    model, tokenizer = load_model_and_tokenizer(str(path))
    tests = [to_example(p, "test") for p in train["test"]]
    outputs = TransformersGenerator(model, tokenizer, batch_size=40).generate(
        [build_messages(e) for e in tests], max_new_tokens=16)
    parsed = sum(check_example(o.text, e).parsed for o, e in zip(outputs, tests, strict=True))
    correct = sum(check_example(o.text, e).correct for o, e in zip(outputs, tests, strict=True))
    assert parsed >= len(tests) // 2  # it learned the answer format
    assert 0 < correct < 0.6 * len(tests)  # low but not zero: not the reasoning


def test_a_validation_split_is_disjoint_from_train_and_test_and_changes_neither() -> None:
    with_val = generate_world(seed=3, train_size=40, test_size=15, ood_size=15, val_size=10)
    assert all(with_val[split] == WORLD[split] for split in WORLD)  # the other splits are unchanged
    val, seen = with_val["val"], {question_text(p) for split in ("train", "test") for p in WORLD[split]}
    assert len(val) == 4 * 10 and not {question_text(p) for p in val} & seen
    assert {p.family for p in val} == {p.family for p in WORLD["test"]}
    assert len({p.id for p in val} | {p.id for p in WORLD["test"]}) == len(val) + len(WORLD["test"])
