"""A run's results, read from its folder: one reader for the run report, the estimate and the lab.

An evaluation (`exgrpo eval`'s output folder, one per evaluated model of a run) holds a report.json (accuracy with a
95% CI and guessing floors per dataset, held-in / held-out averages, seconds) and a predictions file per dataset
(one line per question: id, extracted answer, gold answer, correct); a training stage keeps its log history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exgrpo.files import iter_jsonl
from exgrpo.runner.layout import STAGES, EvalFolder, RunLayout


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """A predictions file's records, in the order written (blank lines skipped; a malformed line is named)."""
    return [record for _, record in iter_jsonl(path)]


def question_verdicts(path: Path) -> dict[str, bool]:
    """A predictions file's correctness per question id (a later line for the same id wins, as in a resumed file)."""
    return {record["id"]: bool(record["correct"]) for record in read_predictions(path)}


def folder_verdicts(folder: EvalFolder) -> dict[str, dict[str, bool]]:
    """Every dataset's verdicts in one evaluation, by dataset name (sorted)."""
    return {path.stem: question_verdicts(path) for path in sorted(folder.predictions_dir.glob("*.jsonl"))}


def mean_accuracy(report: dict[str, Any], datasets: list[str]) -> float | None:
    """The mean of a report's accuracies (%) over `datasets` (a mean of the splits, not of their questions); None
    when the report lacks one of them."""
    values = {result["name"]: result["accuracy"]["value"] for result in report["datasets"]}
    if not datasets or any(name not in values for name in datasets):
        return None
    return sum(values[name] for name in datasets) / len(datasets)


def pooled_accuracy(report: dict[str, Any], datasets: list[str] | None = None) -> float:
    """The share of correct answers (0-1) over all the questions of a report's datasets (or of `datasets` of
    them): a large dataset weighs more."""
    rows = [row for row in report["datasets"] if datasets is None or row["name"] in datasets]
    return sum(row["num_correct"] for row in rows) / max(1, sum(row["num_examples"] for row in rows))


def sitting_tokens(history: list[dict[str, Any]]) -> list[float]:
    """The tokens each sitting of a training trained on, in order, from its log history (TRL's `num_tokens`). A
    resumed training restores its log up to the checkpoint, but TRL's SFT counter starts again from 0: each fall
    of the count ends a sitting, whose last value is what it trained on."""
    counted = [float(entry["num_tokens"]) for entry in history if "num_tokens" in entry]
    ends = [before for before, after in zip(counted, counted[1:], strict=False) if after < before]
    return ends + counted[-1:]


@dataclass(frozen=True)
class Evaluation:
    """One finished evaluation: its report, and its folder for the per-question verdicts."""

    folder: EvalFolder
    report: dict[str, Any]

    @property
    def seconds(self) -> float:
        return float(self.report["seconds"])

    def _row(self, dataset: str) -> dict[str, Any] | None:
        return next((row for row in self.report["datasets"] if row["name"] == dataset), None)

    def accuracies(self) -> dict[str, dict[str, float]]:
        """Accuracy (%, with its 95% CI) per dataset, in the report's order."""
        return {row["name"]: row["accuracy"] for row in self.report["datasets"]}

    def accuracy(self, dataset: str) -> dict[str, float] | None:
        row = self._row(dataset)
        return row["accuracy"] if row else None

    def floors(self, dataset: str) -> dict[str, float] | None:
        """The dataset's guessing floors (random and majority answer, %)."""
        row = self._row(dataset)
        return row.get("floors") if row else None

    def group_accuracy(self, group: str) -> dict[str, float] | None:
        """A group's average (held_in, held_out), with its CI."""
        return self.report["averages"].get(group, {}).get("accuracy")

    def group_floors(self, group: str) -> dict[str, float] | None:
        return self.report["averages"].get(group, {}).get("floors")

    def group_datasets(self, group: str) -> list[str]:
        return self.report.get("averages", {}).get(group, {}).get("datasets", [])

    def verdicts(self, dataset: str) -> dict[str, bool] | None:
        path = self.folder.predictions(dataset)
        return question_verdicts(path) if path.exists() else None


def read_evaluation(folder: EvalFolder) -> Evaluation | None:
    """The evaluation in `folder`, None until it has finished (its report written)."""
    return Evaluation(folder, json.loads(folder.report.read_text())) if folder.report.exists() else None


@dataclass(frozen=True)
class RunResults:
    """What one run folder holds of results: its models' evaluations, its training logs, its stages' seconds."""

    layout: RunLayout

    @classmethod
    def of(cls, run_dir: Path) -> RunResults:
        return cls(RunLayout(run_dir))

    def evaluation(self, model: str) -> Evaluation | None:
        return read_evaluation(self.layout.evaluation(model))

    def verdicts(self, model: str, dataset: str) -> dict[str, bool] | None:
        """One model's correctness per question of a dataset; None without its predictions."""
        path = self.layout.evaluation(model).predictions(dataset)
        return question_verdicts(path) if path.exists() else None

    def training_log(self, stage: str) -> list[dict[str, Any]] | None:
        """A training stage's log history (one entry per logged step); None when it has none."""
        path = self.layout.log_history(stage)
        return json.loads(path.read_text()) if path.exists() else None

    def trained_tokens(self, stage: str) -> float | None:
        """Tokens a training stage trained on (TRL's `num_tokens`: every input token of every step), over all its
        sittings; None when its log has none."""
        counted = sitting_tokens(self.training_log(stage) or [])
        return sum(counted) if counted else None

    def stage_seconds(self, stages: list[str] = STAGES) -> dict[str, float]:
        """Wall seconds of every finished stage of `stages` (from their manifests), in the stages' order."""
        seconds = {}
        for stage in stages:
            path = self.layout.manifest(stage)
            if path.exists():
                seconds[stage] = json.loads(path.read_text())["seconds"]
        return seconds
