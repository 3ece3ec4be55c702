"""Which splits' formats each arm trained on, measured on a small world with the exact teacher: the reversed split
is in the format of the EI arms' R4 probes and of the RevThink arm's backward questions, not SKD's; the longer and
the new-surface splits are in no arm's format; the held-in test split is in every arm's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.study.overlap import arm_texts, measure, overlap_lines, trained_formats
from lab.study.spec import Study
from lab.study.tables import Page, Row

SPEC = {
    "seeds": [0],
    "common": {
        "world": {"seed": 0, "train_size": 6, "test_size": 4, "ood_size": 4},
        "base_model": "smollm2-135m-instruct",  # not loaded: no stage here before the probe stage needs a model
        "probe": {"datasets": ["world_train"], "split": "train", "teacher": {"kind": "exact"},
                  "rules": ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10"], "max_tokens": 256,
                  "difficulty": {"enabled": False}},
        "sft": {"epochs": 1, "dialogues_per_question": 1},
        "train": {"max_steps": 1, "exgrpo": {"k": 2, "k_partial": 1, "rollouts_full": 4, "rollouts_partial": 4}},
        "eval": {"datasets": ["world_test", "world_ood_steps", "world_ood_surface", "world_ood_reversed"],
                 "ei_test": "world_ei_test"},
    },
    "methods": {
        "ei_exgrpo": {},
        "skd": {"sft": {"include_probes": False, "dialogues_per_question": 0}, "train": None},
        "skd_grpo": {"sft": None, "sft_model_from": "skd",
                     "train": {"exgrpo": {"k": 0, "rollouts_full": 8, "rollouts_partial": 0}}},
        "revthink": {"sft": {"format": "revthink", "probe_rules": ["R4"], "dialogues_per_question": 0}, "train": None},
    },
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    from exgrpo.runner.run import run

    root = tmp_path_factory.mktemp("overlap")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    study = Study(spec, run_root=root / "runs")
    run(study.run_config("ei_exgrpo", 0), until="probe")  # the world and the exact teacher's EI data: seconds
    return study


def test_each_arm_trains_on_its_own_formats_texts(study: Study) -> None:
    ei, skd, revthink = (arm_texts(study, method, 0) for method in ("ei_exgrpo", "skd", "revthink"))
    assert len(ei) > len(revthink) > len(skd) > 0  # questions + every probe; + backward questions; questions
    assert set(skd) <= set(ei)
    # The GRPO arm on SKD's model: SKD's SFT prompts, and the questions it rolls out (no probes: k = 0).
    assert set(arm_texts(study, "skd_grpo", 0)) == set(skd)


def test_the_reversed_split_is_measured_as_the_format_of_the_arms_that_trained_on_reversal(study: Study) -> None:
    table = measure(study)
    seen = trained_formats(table)
    assert sorted(seen["world_ood_reversed"]) == ["ei_exgrpo", "revthink"]
    assert sorted(seen["world_test"]) == ["ei_exgrpo", "revthink", "skd", "skd_grpo"]
    assert "world_ood_steps" not in seen and "world_ood_surface" not in seen
    assert table["skd"]["world_ood_steps"]["sentences"] > 0.5  # its sentences, chained in longer questions
    assert table["skd"]["world_ood_surface"]["sentences"] < 0.5  # new templates
    lines = overlap_lines(table, {"skd": "SKD"}, ["world_test", "world_ood_reversed"])
    assert lines[0] == "| arm | test | ood_reversed |" and lines[3].startswith("| SKD | 100% / ")


def test_the_page_reads_the_measured_formats_when_the_spec_asks(study: Study, tmp_path: Path) -> None:
    spec = dict(SPEC, report={"format_seen_by": "measured"})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    measured = Study(tmp_path / "spec.yaml", run_root=study.run_root)
    page = Page(measured, tmp_path / "results.md")
    assert page.held_out == ["world_ood_steps", "world_ood_surface"]
    assert page.held_out_seen == ["world_ood_reversed"]
    assert page.trained_format(Row("RevThink", "revthink", "sft"), "world_ood_reversed")
    assert not page.trained_format(Row("SKD", "skd", "sft"), "world_ood_reversed")
    assert "measured by lab/study/overlap.py" in page.seen_by("world_ood_reversed")
    assert set(page.format_seen) == {"world_ood_reversed", "world_ei_test"}  # held-in splits are not listed
