"""`exgrpo eval` and a run's eval stage agree: the same model, data and settings give the same answers (one default
per setting: a run's eval section takes `exgrpo eval`'s)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark_files import require_dataset_files
from typer.testing import CliRunner

from exgrpo.cli import app
from exgrpo.config import build_config
from exgrpo.config.run import RunConfig
from exgrpo.runner.pipeline import STAGE_FUNCTIONS

DATASETS = ["boolq", "strategyqa"]  # yes/no questions: the toy student answers them, some right


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["datasets"]


def test_exgrpo_eval_and_the_runs_eval_stage_give_the_same_answers(tmp_path: Path,
                                                                   toy_sft_model: tuple[Path, Path]) -> None:
    require_dataset_files(*DATASETS)
    model = str(toy_sft_model[0])
    # Every decoding setting left at its default on both sides: the defaults are what must agree.
    run_config = build_config(RunConfig, {
        "run_dir": str(tmp_path / "run"), "base_model": model, "sft": None, "train": None,
        "probe": {"datasets": DATASETS, "teacher": {"kind": "openai", "model": "unused"}},
        "eval": {"datasets": DATASETS, "limit": 6}}, "run config")
    STAGE_FUNCTIONS["eval"](run_config)
    result = CliRunner().invoke(app, ["eval", "--model", model, "--datasets", ",".join(DATASETS), "--limit", "6",
                                      "--output-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output

    in_run = json.loads((tmp_path / "run" / "eval" / "base" / "report.json").read_text())
    alone = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert {**in_run["config"], "output_dir": None} == {**alone["config"], "output_dir": None}
    assert _rows(in_run) == _rows(alone) and in_run["averages"] == alone["averages"]
    assert sum(row["num_correct"] for row in _rows(alone)) > 0  # answers worth comparing, not two blank reports
    for name in DATASETS:
        run_predictions = (tmp_path / "run" / "eval" / "base" / "predictions" / f"{name}.jsonl").read_text()
        assert run_predictions == (tmp_path / "cli" / "predictions" / f"{name}.jsonl").read_text()
