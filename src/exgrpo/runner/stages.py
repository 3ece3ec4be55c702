"""The stages of `exgrpo run`, each a function of the run config: it reads the earlier stages' files, writes its own
into its folder (runner/layout.py) and returns the counts its manifest keeps. Each stage imports its machinery (torch,
transformers, TRL) when it runs: a plan or a `--dry-run` loads none of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exgrpo.config import DistillStageConfig
from exgrpo.config.run import RunConfig
from exgrpo.evaluation.evaluate import evaluate
from exgrpo.inversion.pipeline import run_probe
from exgrpo.rl.train import run_train
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.registry import RUN_TEACHERS, run_registry
from exgrpo.runner.report import write_run_report
from exgrpo.runner.stage_configs import eval_config, model_paths, probe_config, sft_config, train_config
from exgrpo.training.distill import run_distill
from exgrpo.training.sft import run_sft
from exgrpo.world.datasets import write_world
from exgrpo.world.generate import generate_split
from exgrpo.world.student import build_base_student

# A stage's progress: (task, done, total), e.g. ("eval sft: world_test", 12, 40); the CLI draws it.
StageProgress = Callable[[str, int, int], None]
Stage = Callable[[RunConfig, StageProgress | None], dict[str, Any]]


def stage_world(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    if config.world is None:
        return {"skipped": "no synthetic world in this config"}
    world = config.world
    return write_world(RunLayout(config.run_dir).world_dir, world.seed, world.train_size, world.test_size,
                       world.ood_size, world.val_size)


def stage_base(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    if config.student is None:
        return {"model": config.base_model}

    assert config.world is not None, "a tiny student is built from the synthetic world"
    student = config.student
    train = generate_split("train", config.world.train_size, config.world.seed)
    path = build_base_student(RunLayout(config.run_dir).base_dir, train, student.hidden_size, student.num_layers,
                              student.num_heads, student.vocab_size, student.pretrain_epochs, student.learning_rate,
                              student.batch_size, student.seed)
    return {"model": str(path), "pretraining_examples": len(train)}


def stage_probe(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    registry = run_registry(config)
    stats = run_probe(probe_config(config, registry), registry=registry, extra_teachers=RUN_TEACHERS)
    return {"datasets": stats["datasets"], "teachers": stats["teachers"]}


def stage_sft(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    sft = sft_config(config)
    if sft is None:
        return {"skipped": "no sft section", "model": model_paths(config)["sft"]}
    return {"model": str(run_sft(sft))}


def stage_train(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    train = train_config(config)
    if train is None:
        return {"skipped": "no train section"}
    if isinstance(train, DistillStageConfig):
        return {"model": str(run_distill(train))}

    return {"model": str(run_train(train))}


def stage_eval(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    """Every evaluated model in turn; its progress per dataset, named `eval MODEL: DATASET`."""
    summary, registry = {}, run_registry(config)
    for model in config.evaluated_models():
        def per_model(name: str, done: int, total: int, model: str = model) -> None:
            if on_progress is not None:
                on_progress(f"eval {model}: {name}", done, total)

        report = evaluate(eval_config(config, model, registry), on_progress=per_model, registry=registry)
        summary[model] = {row["name"]: row["accuracy"]["value"] for row in report["datasets"]}
    return summary


def stage_report(config: RunConfig, on_progress: StageProgress | None = None) -> dict[str, Any]:
    return write_run_report(config)


STAGE_FUNCTIONS: dict[str, Stage] = {
    "world": stage_world, "base": stage_base, "probe": stage_probe, "sft": stage_sft, "train": stage_train,
    "eval": stage_eval, "report": stage_report}
