"""The page's rules in code: verdicts from paired CIs, degenerate outputs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from exgrpo.evaluation.metrics import Estimate
from lab.study.tables import Page, Row
from lab.study.verdicts import degeneration, degenerations, threshold_verdict, verdict


def test_a_goal_is_met_only_when_the_paired_ci_excludes_zero_in_its_favour() -> None:
    assert verdict(Estimate(0.05, 0.01, 0.09)) == "met"
    assert verdict(Estimate(-0.05, -0.09, -0.01)) == "failed"
    assert verdict(Estimate(0.05, -0.01, 0.11)) == "not resolved"  # a positive mean alone is not enough
    assert verdict(Estimate(0.0, 0.0, 0.0)) == "not resolved"
    assert verdict(None) == "not measured yet"


def records(extracted: list[str | None], gold: list[str]) -> list[dict]:
    return [{"id": str(i), "extracted": e, "gold": g} for i, (e, g) in enumerate(zip(extracted, gold, strict=True))]


def test_one_answer_everywhere_or_no_answer_is_degenerate() -> None:
    golds = [str(i % 7) for i in range(20)]
    assert "95% of answers are '3'" in degeneration(records(["3"] * 19 + ["1"], golds))
    assert "85% of outputs have no parseable answer" in degeneration(records([None] * 17 + ["1", "2", "3"], golds))
    assert degeneration(records([str(i % 5) for i in range(20)], golds)) is None  # varied answers, even if wrong
    assert degeneration(records(["3"] * 16 + ["1"] * 4, golds)) is None  # 80 % exactly: not above the threshold
    # Where the gold answers are that uniform themselves, answering the same is not a collapse.
    assert degeneration(records(["no"] * 18 + ["yes"] * 2, ["no"] * 19 + ["yes"])) is None
    assert degeneration([]) is None


def test_degenerate_datasets_of_an_evaluated_model_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "predictions"
    folder.mkdir()
    golds = [str(i) for i in range(10)]
    (folder / "world_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(["7"] * 10, golds)))
    (folder / "world_ood_steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(golds, golds)))
    assert list(degenerations(tmp_path)) == ["world_test"]


def test_the_degenerate_runs_list_tells_apart_runs_with_the_same_title(tmp_path: Path) -> None:
    golds = [str(i) for i in range(10)]
    for method in ("ei_exgrpo", "ei_exgrpo_f0.25"):
        folder = tmp_path / method / "eval" / "exgrpo" / "predictions"
        folder.mkdir(parents=True)
        (folder / "world_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(["7"] * 10, golds)))
    sft = tmp_path / "ei_exgrpo" / "eval" / "sft" / "predictions"  # EI-SFT: a second model of the same run
    sft.mkdir(parents=True)
    (sft / "world_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(["3"] * 10, golds)))
    page = Page.__new__(Page)  # only the record's folders matter here
    page.study = SimpleNamespace(run_dir=lambda seed, method: tmp_path / method)
    page.results = SimpleNamespace(seeds=lambda row: [0])
    lines = page.degenerate_runs([Row("EI + ExGRPO", "ei_exgrpo", "exgrpo"),
                                  Row("EI + ExGRPO", "ei_exgrpo_f0.25", "exgrpo"),
                                  Row("SFT only (EI data)", "ei_exgrpo", "sft")])
    assert lines == ["- EI + ExGRPO (run ei_exgrpo, its exgrpo model), seed 0, world_test: 100% of answers are '7' "
                     "(the most common gold answer: 10%)",
                     "- EI + ExGRPO (run ei_exgrpo_f0.25, its exgrpo model), seed 0, world_test: 100% of answers are "
                     "'7' (the most common gold answer: 10%)",
                     "- SFT only (EI data) (run ei_exgrpo, its sft model), seed 0, world_test: 100% of answers are "
                     "'3' (the most common gold answer: 10%)"]


def test_a_threshold_is_reached_only_when_the_whole_ci_is_at_or_above_it() -> None:
    assert threshold_verdict(Estimate(0.50, 0.44, 0.58), 0.4375) == "met"
    assert threshold_verdict(Estimate(0.45, 0.40, 0.50), 0.4375) == "not resolved"
    assert threshold_verdict(Estimate(0.30, 0.25, 0.35), 0.4375) == "failed"
    assert threshold_verdict(None, 0.4375) == "not measured yet"
