"""The run folder's layout: where every stage of `exgrpo run` reads and writes, named in one place.

    run_dir/
      teacher_cache.jsonl         every paid teacher call (outside any stage: redoing a stage never loses one)
      <stage>/started.json        a stage begun: its config hash, when, on which machine
      <stage>/manifest.json       a stage finished: its config hash, outputs, seconds
      world/<split>.jsonl         the synthetic world's splits (world_train -> world/train.jsonl)
      base/final/                 the tiny student built here
      probe/ei.jsonl              the EI dataset (and the probe stage's other outputs)
      sft/final/, train/final/    the trained models; <stage>/log_history.json their curves
      eval/<model>/report.json    one evaluated model; eval/<model>/predictions/<dataset>.jsonl its answers
      report/report.md, results.json, results.png

The names inside a stage folder are the stage's own (`exgrpo probe`, `sft`, `train`, `eval` write them the
same way alone); tests/test_layout.py pins that a run writes where this says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The stages in the order they run, each with its folder of the same name.
STAGES = ["world", "base", "probe", "sft", "train", "eval", "report"]
WORLD_PREFIX = "world_"  # the world's dataset names: world_<split>


@dataclass(frozen=True)
class EvalFolder:
    """What one evaluation writes (`exgrpo eval`'s output_dir): its report and its answers per dataset."""

    path: Path

    @property
    def report(self) -> Path:
        return self.path / "report.json"

    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    def predictions(self, dataset: str) -> Path:
        return self.predictions_dir / f"{dataset}.jsonl"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder."""

    run_dir: Path

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def manifest(self, stage: str) -> Path:
        return self.stage_dir(stage) / "manifest.json"

    def started(self, stage: str) -> Path:
        return self.stage_dir(stage) / "started.json"

    @property
    def teacher_cache(self) -> Path:
        return self.run_dir / "teacher_cache.jsonl"

    # ---------------------------------------------------------------- world, base, probe

    @property
    def world_dir(self) -> Path:
        return self.stage_dir("world")

    def world_split(self, dataset: str) -> Path:
        """The file of a world dataset (world_train or train -> world/train.jsonl)."""
        return self.world_dir / f"{dataset.removeprefix(WORLD_PREFIX)}.jsonl"

    @property
    def base_dir(self) -> Path:
        return self.stage_dir("base")

    @property
    def base_model(self) -> Path:
        """The tiny student built here (a run from a named base model has none)."""
        return self.final_model("base")

    @property
    def probe_dir(self) -> Path:
        return self.stage_dir("probe")

    @property
    def ei_data(self) -> Path:
        return self.probe_dir / "ei.jsonl"

    # ---------------------------------------------------------------- training

    def final_model(self, stage: str) -> Path:
        """The model a training stage (base, sft, train) saved."""
        return self.stage_dir(stage) / "final"

    def log_history(self, stage: str) -> Path:
        """A training stage's curves (the trainer's log history)."""
        return self.stage_dir(stage) / "log_history.json"

    # ---------------------------------------------------------------- evaluation and report

    def evaluation(self, model: str) -> EvalFolder:
        """One evaluated model's folder (base, sft or exgrpo): the run's `exgrpo eval --output-dir`."""
        return EvalFolder(self.stage_dir("eval") / model)

    @property
    def report_dir(self) -> Path:
        return self.stage_dir("report")

    @property
    def report_markdown(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def results_json(self) -> Path:
        return self.report_dir / "results.json"

    @property
    def results_png(self) -> Path:
        return self.report_dir / "results.png"
