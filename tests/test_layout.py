"""The run folder's layout, spelled out (tests/test_pipeline.py checks that a run writes where it says)."""

from __future__ import annotations

from pathlib import Path

from exgrpo.runner.layout import RunLayout


def test_every_path_of_the_layout_spells_the_run_folder(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.manifest("sft") == tmp_path / "sft" / "manifest.json"
    assert layout.started("eval") == tmp_path / "eval" / "started.json"
    assert layout.teacher_cache == tmp_path / "teacher_cache.jsonl"
    assert layout.world_split("world_ood_steps") == layout.world_split("ood_steps") == tmp_path / "world" / "ood_steps.jsonl"
    assert layout.base_model == tmp_path / "base" / "final"
    assert layout.ei_data == tmp_path / "probe" / "ei.jsonl"
    assert layout.final_model("train") == tmp_path / "train" / "final"
    assert layout.log_history("sft") == tmp_path / "sft" / "log_history.json"
    evaluation = layout.evaluation("exgrpo")
    assert evaluation.report == tmp_path / "eval" / "exgrpo" / "report.json"
    assert evaluation.predictions("world_test") == tmp_path / "eval" / "exgrpo" / "predictions" / "world_test.jsonl"
    assert (layout.report_markdown, layout.results_json, layout.results_png) == (
        tmp_path / "report" / "report.md", tmp_path / "report" / "results.json", tmp_path / "report" / "results.png")
