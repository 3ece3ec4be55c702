"""Each stage's own configuration, built from a run config's section and the run folder's paths: where each
stage reads and writes is the runner's business, not the run schema's. Dataset names are checked against the
run's registry (runner/registry.py: the built-ins and the run's world), or the one handed in."""

from __future__ import annotations

from typing import Any

from exgrpo.config.base import build_config
from exgrpo.config.datasets import registry_context
from exgrpo.config.eval import EvalConfig, EvalSettings
from exgrpo.config.probe import ProbeConfig
from exgrpo.config.run import RunConfig
from exgrpo.config.training import DistillSettings, DistillStageConfig, SFTStageConfig, TrainConfig
from exgrpo.data.registry import DatasetRegistry
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.registry import run_registry

# A builder passes on what a section sets (the stage config's defaults are the section's own) and adds the files.


def base_path(config: RunConfig) -> str:
    return str(RunLayout(config.run_dir).base_model) if config.student is not None else str(config.base_model)


def model_paths(config: RunConfig) -> dict[str, str]:
    layout = RunLayout(config.run_dir)
    sft = config.sft_model or (str(layout.final_model("sft")) if config.sft is not None else base_path(config))
    return {"base": base_path(config), "sft": sft, "exgrpo": str(layout.final_model("train"))}


def probe_config(config: RunConfig, registry: DatasetRegistry | None = None) -> ProbeConfig:
    layout = RunLayout(config.run_dir)
    values = config.probe.model_dump(exclude_unset=True)
    if config.world is not None and config.probe.teacher.kind == "exact":
        values["teacher"]["world"] = config.world.model_dump()
    difficulty = values.get("difficulty")  # absent: off (ProbeConfig's default); a section: on unless it says not
    if difficulty is not None and difficulty.get("enabled", True):
        difficulty.setdefault("student", base_path(config))
    # The teacher cache lives outside the stage folder: redoing the stage must never lose a paid call.
    values.setdefault("cache_path", layout.teacher_cache)
    return build_config(ProbeConfig, {**values, "output_dir": layout.probe_dir}, "probe section",
                        registry_context(registry or run_registry(config)))


def sft_config(config: RunConfig) -> SFTStageConfig | None:
    if config.sft is None:
        return None
    layout = RunLayout(config.run_dir)
    return build_config(SFTStageConfig, {**config.sft.model_dump(exclude_unset=True), "model": base_path(config),
                                         "output_dir": layout.stage_dir("sft"), "ei_data": layout.ei_data},
                        "sft section")


def train_config(config: RunConfig) -> TrainConfig | DistillStageConfig | None:
    """The RL stage (ExGRPO, or a baseline's vanilla GRPO or on-policy distillation), from the SFT model
    (or from the base where there is no SFT: RL without warm-up)."""
    if config.train is None:
        return None
    layout = RunLayout(config.run_dir)
    stage = DistillStageConfig if isinstance(config.train, DistillSettings) else TrainConfig
    values = config.train.model_dump(exclude_unset=True)
    if stage is TrainConfig and config.train.max_answer_tokens is None:
        # The reward judges final answers under the evaluation's cut, not a probe turn's.
        values["max_answer_tokens"] = config.eval.max_new_tokens
    return build_config(stage, {**values, "model": model_paths(config)["sft"], "output_dir": layout.stage_dir("train"),
                                "ei_data": layout.ei_data}, "train section")


def eval_config(config: RunConfig, model: str, registry: DatasetRegistry | None = None) -> EvalConfig:
    section = config.eval
    datasets = section.datasets + ([section.ei_test] if section.ei_test else [])
    return build_config(EvalConfig, {
        **section.model_dump(include=set(EvalSettings.model_fields), exclude_unset=True),
        "model": model_paths(config)[model], "datasets": datasets,
        "limits": {**section.limits, **({section.ei_test: section.ei_test_limit}
                                        if section.ei_test and section.ei_test_limit else {})},
        "output_dir": RunLayout(config.run_dir).evaluation(model).path}, "eval section",
        registry_context(registry or run_registry(config)))


def stage_configs(config: RunConfig) -> dict[str, Any]:
    """Every stage's resolved configuration: building them is the validation."""
    registry = run_registry(config)
    return {"world": config.world, "base": config.student or config.base_model,
            "probe": probe_config(config, registry), "sft": sft_config(config) or {"model": model_paths(config)["sft"]},
            "train": train_config(config),
            "eval": {model: eval_config(config, model, registry) for model in config.evaluated_models()},
            "report": config.eval}
