"""The estimate `exgrpo run --dry-run` prints: what each stage will cost in teacher calls, tokens and money,
and in student tokens and hours. Nothing is sent, no model is loaded and nothing is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from exgrpo.config import StudentThroughput, TokenPrice
from exgrpo.errors import ConfigError, ExgrpoError
from exgrpo.runner.estimate.student_tokens import (
    StudentLoad,
    difficulty_load,
    eval_load,
    sft_load,
    time_loads,
    train_load,
)
from exgrpo.runner.estimate.teacher_calls import PURPOSES, ProbeForecast, forecast_probe_stage
from exgrpo.runner.estimate.tokens import TokenCounter
from exgrpo.runner.stage_configs import eval_config, probe_config, sft_config, train_config

if TYPE_CHECKING:
    from exgrpo.config.run import RunConfig

PURPOSE_TITLES = {"cot": "rationales", "sample": "extra rationales", "probe": "probes", "repair": "probe repairs",
                  "probe_answer": "probe answers", "consistency": "EI-consistency"}


@dataclass
class RunEstimate:
    forecast: ProbeForecast | None
    loads: list[StudentLoad]
    prices: dict[str, TokenPrice]
    throughput: StudentThroughput
    not_estimated: list[str] = field(default_factory=list)  # parts that could not be estimated, and why

    def cost(self, model: str, prompt_tokens: float, completion_tokens: float) -> float | None:
        price = self.prices.get(model)
        if price is None:
            return None
        return (prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million) / 1e6


def estimate_run(config: RunConfig) -> RunEstimate:
    """The estimate; a synthetic world not written yet is generated into a scratch folder for it (it is
    deterministic, and takes seconds), so that a fresh run's plan has its questions too."""
    if config.world is None or (config.run_dir / "world" / "train.jsonl").exists():
        return _estimate(config)
    import tempfile

    from exgrpo.world.datasets import register_world, write_world

    world = config.world
    with tempfile.TemporaryDirectory(prefix="exgrpo-dry-world-") as scratch:
        write_world(Path(scratch), world.seed, world.train_size, world.test_size, world.ood_size, world.val_size)
        register_world(Path(scratch))
        try:
            return _estimate(config)
        finally:
            register_world(config.run_dir / "world")


def _estimate(config: RunConfig) -> RunEstimate:
    settings = config.estimate
    throughput = resolved_throughput(settings.throughput, settings.gpu_check)
    estimate = RunEstimate(None, [], settings.prices, throughput)
    probe = probe_config(config)
    try:
        estimate.forecast = forecast_probe_stage(probe, settings)
    except ExgrpoError as error:  # e.g. the synthetic world's questions exist only after its stage runs
        estimate.not_estimated.append(f"probe stage: {error}")
    forecast = estimate.forecast
    if forecast is not None:
        if probe.difficulty.enabled:
            estimate.loads.append(difficulty_load(forecast, probe.difficulty.max_new_tokens))
        sft, train = sft_config(config), train_config(config)
        if sft is not None:
            estimate.loads.append(sft_load(sft, forecast, TokenCounter(settings.tokenizer)))
        if train is not None:
            estimate.loads.append(train_load(train, forecast))
    from exgrpo.evaluation.evaluate import load_eval_datasets

    for model in config.evaluated_models():
        evaluation = eval_config(config, model)
        try:
            datasets = load_eval_datasets(evaluation)
        except ExgrpoError as error:
            estimate.not_estimated.append(f"eval ({model}): {error}")
            break
        estimate.loads.append(eval_load(model, datasets, evaluation.max_new_tokens, forecast))
    time_loads(estimate.loads, throughput)
    return estimate


def resolved_throughput(given: StudentThroughput, gpu_check: object) -> StudentThroughput:
    """The throughputs given, the missing ones from a `make gpu-check` JSON file."""
    if gpu_check is None:
        return given
    path = Path(str(gpu_check))
    try:
        measured = json.loads(path.read_text())["throughput"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"estimate.gpu_check: {path} is not a gpu-check result ({type(error).__name__}: {error})") \
            from None
    return StudentThroughput(**{name: getattr(given, name) or measured.get(name)
                                for name in StudentThroughput.model_fields})


def _number(value: float) -> str:
    """Compact counts: 826,863 / 138.4M."""
    return f"{value / 1e6:,.1f}M" if value >= 1e7 else f"{value:,.0f}"


def _money(value: float | None) -> str:
    return "no price" if value is None else f"{value:,.2f}"


def teacher_tables(estimate: RunEstimate) -> list[Table]:
    """One table per teacher model: each kind of request, what the cache answers, what is left to pay."""
    forecast = estimate.forecast
    if forecast is None:
        return []
    tables = []
    for model, rows in forecast.rows.items():
        table = Table(title=f"Probe stage, teacher {model}: {forecast.questions:,} questions x {len(forecast.rules)} "
                            "rules (expected counts; cached answers subtracted)")
        for column in ("requests", "total", "cached", "to pay", "prompt tokens", "completion tokens", "cost"):
            table.add_column(column, justify="left" if column == "requests" else "right")
        for kind in PURPOSES:
            row = rows[kind]
            if row.requests:
                table.add_row(PURPOSE_TITLES[kind], _number(row.requests), _number(row.cached), _number(row.to_pay),
                              _number(row.prompt_tokens), _number(row.completion_tokens),
                              _money(estimate.cost(model, row.prompt_tokens, row.completion_tokens)))
        total = [sum(getattr(rows[k], name) for k in PURPOSES)
                 for name in ("requests", "cached", "to_pay", "prompt_tokens", "completion_tokens")]
        table.add_section()
        table.add_row("[bold]all[/]", *(_number(v) for v in total), _money(estimate.cost(model, total[3], total[4])))
        tables.append(table)
    return tables


def student_table(estimate: RunEstimate) -> Table:
    table = Table(title="Student side (one process)")
    for column in ("stage", "steps", "tokens", "throughput", "hours"):
        table.add_column(column, justify="right" if column in ("steps", "tokens", "hours") else "left")
    for load in estimate.loads:
        rate = getattr(estimate.throughput, load.throughput)
        table.add_row(load.stage, "" if load.steps is None else _number(load.steps), _number(load.tokens),
                      f"{rate:,.0f} tok/s" if rate else "not given",
                      "" if load.seconds is None else f"{load.seconds / 3600:,.2f}")
    return table


def estimate_notes(estimate: RunEstimate) -> list[str]:
    notes = list(estimate.not_estimated)
    notes += [f"{load.stage}: {'; '.join(load.notes)}" for load in estimate.loads if load.notes]
    forecast = estimate.forecast
    if forecast is not None:
        notes.append(f"kept questions expected: {forecast.kept_questions:,.0f} of {forecast.questions:,}, with "
                     f"{forecast.consistent_probes:,.0f} consistent probes (before the difficulty filter)")
        notes.append(f"prompt tokens counted with {forecast.counter}"
                     + (f", x{forecast.calibration:.2f} to match the teacher's own counts on its cached answers"
                        if forecast.calibration != 1.0 else ""))
        notes += forecast.notes
        if any(note.startswith("assumed") for note in forecast.notes):
            notes.append("a pilot run (probe.limit: 50, then the full config) replaces the assumptions by "
                         "measurements: its answers are cached and not paid again")
    missing = sorted({load.throughput for load in estimate.loads if load.seconds is None})
    if missing:
        notes.append(f"hours need estimate.throughput ({', '.join(missing)}) or estimate.gpu_check: a `make "
                     "gpu-check` result")
    seconds = [load.seconds for load in estimate.loads]
    if estimate.loads and all(s is not None for s in seconds):
        notes.append(f"student total: {sum(seconds) / 3600:,.1f} hours on one process")  # type: ignore[arg-type]
    return notes
