"""What the whole study will cost, from one measured run: the first method's first seed gives this machine's
throughputs (its stages' wall seconds against the tokens `--dry-run`'s estimate counts for them), and every
other method's estimate is timed with them. Written before the rest runs, so that the plan can be cut first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exgrpo.config import StudentThroughput
from exgrpo.estimate.run import estimate_run
from exgrpo.study.spec import Study

STAGE_RATES = {"sft": "sft_tokens_per_s", "train": "exgrpo_tokens_per_s", "eval": "generate_tokens_per_s"}


@dataclass
class MethodCost:
    method: str
    seeds: int
    hours_per_seed: float  # student-side stages: SFT, RL, eval (the exact teacher's probe stage takes seconds)
    tuning_hours: float = 0.0  # every learning-rate candidate of every stage it trains, on the tuning seed

    @property
    def hours(self) -> float:
        return self.hours_per_seed * self.seeds + self.tuning_hours


def _stage(load_name: str) -> str:
    return load_name.split(" ")[0].split(":")[0]  # "train (ExGRPO)" -> train, "eval: sft" -> eval


def measured_throughput(study: Study) -> tuple[StudentThroughput, dict[str, float]] | None:
    """Tokens per second of each kind on this machine, from the first method's first seed (None until its SFT and
    RL stages and at least one model's evaluation have finished), and the wall seconds they took."""
    seed = study.seeds[0]
    config = study.run_config(study.first, seed)
    seconds = {}
    for stage in ("sft", "train"):
        manifest = config.run_dir / stage / "manifest.json"
        if not manifest.exists():
            return None
        seconds[stage] = float(json.loads(manifest.read_text())["seconds"])
    # Evaluation is timed per model (each report has its seconds): one evaluated model is enough to time it.
    evaluated = [model for model in config.evaluated_models()
                 if (config.run_dir / "eval" / model / "report.json").exists()]
    if not evaluated:
        return None
    seconds["eval"] = sum(json.loads((config.run_dir / "eval" / model / "report.json").read_text())["seconds"]
                          for model in evaluated)
    tokens: dict[str, float] = {}
    for load in estimate_run(config).loads:
        if load.stage.startswith("eval: ") and load.stage.removeprefix("eval: ") not in evaluated:
            continue
        tokens[_stage(load.stage)] = tokens.get(_stage(load.stage), 0.0) + load.tokens
    rates = {STAGE_RATES[stage]: tokens[stage] / seconds[stage] for stage in STAGE_RATES
             if tokens.get(stage) and seconds[stage] > 0}
    return StudentThroughput(**rates), seconds


def _hours(config: Any, throughput: StudentThroughput) -> float:
    config = config.model_copy()
    config.estimate = config.estimate.model_copy(update={"throughput": throughput})
    return sum((load.seconds or 0.0) for load in estimate_run(config).loads) / 3600


def project(study: Study, throughput: StudentThroughput, methods: list[str] | None = None) -> list[MethodCost]:
    from exgrpo.config import build_config
    from exgrpo.pipeline import RunConfig
    from exgrpo.study.tuning import candidate_values, trained_stages

    costs = []
    for method in methods or list(study.methods):
        cost = MethodCost(method, len(study.seeds), _hours(study.run_config(method, study.seeds[0]), throughput))
        if study.tuning:
            for stage in trained_stages(study, method):
                for learning_rate in study.tuning["learning_rates"][stage]:
                    values = candidate_values(study, method, stage, learning_rate, {}, planning=True)
                    cost.tuning_hours += _hours(build_config(RunConfig, values, f"tuning {method}"), throughput)
        costs.append(cost)
    return costs


def projection_lines(study: Study) -> list[str]:
    """The page's cost section (or what it is waiting for)."""
    measured = measured_throughput(study)
    if measured is None:
        return [f"Not projected yet: the first run ({study.first}, seed {study.seeds[0]}) has not finished."]
    throughput, seconds = measured
    costs = project(study, throughput)
    total = sum(c.hours for c in costs)
    lines = [f"Measured on {study.first}, seed {study.seeds[0]} (wall seconds: "
             + ", ".join(f"{stage} {value:.0f}" for stage, value in seconds.items()) + "): "
             + ", ".join(f"{name.removesuffix('_tokens_per_s')} {getattr(throughput, name):,.0f} tok/s"
                         for name in STAGE_RATES.values() if getattr(throughput, name)) + ".", "",
             "| method | seeds | hours per seed | tuning hours (all candidates) | hours |", "|---|---|---|---|---|"]
    lines += [f"| {study.title(c.method)} ({c.method}) | {c.seeds} | {c.hours_per_seed:.2f} | {c.tuning_hours:.2f} | "
              f"{c.hours:.2f} |" for c in costs]
    lines += [f"| **all** | | | | **{total:.1f}** |", ""]
    return lines
