"""The run schema (`exgrpo run CONFIG`): one YAML file for the whole method, each stage's section
validated into that stage's own config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from exgrpo.config.base import DTYPE_HELP, StrictModel, build_config
from exgrpo.config.base import ModelName as ConfigModelName
from exgrpo.config.datasets import registry_context
from exgrpo.config.estimate import EstimateConfig
from exgrpo.config.eval import EvalConfig
from exgrpo.config.probe import ProbeConfig, WorldConfig
from exgrpo.config.training import DistillStageConfig, RLStageConfig, SFTStageConfig, TrainConfig
from exgrpo.data.registry import DatasetRegistry
from exgrpo.errors import ConfigError
from exgrpo.models.precision import DtypeSetting

MODELS = {"base": "the base student", "sft": "SFT on EI data", "exgrpo": "EI + ExGRPO"}
ModelName = Literal["base", "sft", "exgrpo"]


class StudentConfig(StrictModel):
    """A tiny student built here (the synthetic world's): architecture and (ours) short-answer pretraining."""

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    vocab_size: int = 1024
    pretrain_epochs: float = Field(1.0, ge=0)
    learning_rate: float = 1e-3
    batch_size: int = 16
    seed: int = 0


class EvalSection(StrictModel):
    datasets: list[str] = Field(min_length=1)
    ei_test: str | None = Field(None, description="dataset of probes of the test questions (EI-Test)")
    limit: int | None = Field(None, gt=0, description="first N questions of each dataset")
    limits: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict,
                                                          description="per dataset: first N questions (over limit)")
    ei_test_limit: int | None = Field(None, gt=0, description="first N probes of EI-Test (default: limit)")
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(32, gt=0)
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    dtype: DtypeSetting = Field("auto", description=DTYPE_HELP)
    models: list[ModelName] | None = Field(None, description="which of base, sft, exgrpo to evaluate; "
                                            "default: the base and every model this run trains")


class RunConfig(StrictModel):
    """One run of the method or of a baseline: a baseline is this pipeline with another configuration
    (`sft: null` skips SFT, `train: null` skips RL, `train.method: distill` is on-policy distillation)."""

    run_dir: Path
    name: str | None = Field(None, description="the method this run trains (a baseline's name), for reports")
    world: WorldConfig | None = Field(None, description="the synthetic world; null for real benchmarks")
    student: StudentConfig | None = Field(None, description="build a tiny student here")
    base_model: ConfigModelName | None = Field(None, description="or start from this model (hub id, folder, "
                                               "smollm2-135m-instruct or gguf:PATH)")
    probe: dict[str, Any]
    sft: dict[str, Any] | None = Field(default_factory=dict, description="null: no SFT stage")
    sft_model: str | None = Field(None, description="no SFT stage: train from this SFT model (another run's)")
    train: dict[str, Any] | None = Field(default_factory=dict, description="null: no RL stage")
    eval: EvalSection
    estimate: EstimateConfig = Field(default_factory=EstimateConfig, description="prices and throughputs for the "
                                     "cost estimate of `--dry-run`; in no stage's hash")

    @model_validator(mode="after")
    def _one_student(self) -> RunConfig:
        if (self.student is None) == (self.base_model is None):
            raise ValueError("give exactly one of `student` (build a tiny one) and `base_model`")
        if self.sft is not None and self.sft_model is not None:
            raise ValueError("give at most one of `sft` (train here) and `sft_model` (reuse one)")
        unavailable = set(self.eval.models or ()) - set(self.trained_models())
        if unavailable:
            raise ValueError(f"eval.models: this run has no {', '.join(sorted(unavailable))} model")
        return self

    # -------------------------------------------------------- where each stage reads and writes

    def base_path(self) -> str:
        return str(self.run_dir / "base" / "final") if self.student is not None else str(self.base_model)

    def trained_models(self) -> list[str]:
        """The models this run has: the base, its SFT model (trained or reused), its RL model."""
        has_sft = self.sft is not None or self.sft_model is not None
        return ["base"] + ["sft"] * has_sft + ["exgrpo"] * (self.train is not None)

    def evaluated_models(self) -> list[str]:
        return list(self.eval.models) if self.eval.models is not None else self.trained_models()

    def model_titles(self) -> dict[str, str]:
        """Report titles of the evaluated models."""
        titles = dict(MODELS) if self.name is None else {
            "base": MODELS["base"], "sft": f"{self.name}: after SFT", "exgrpo": f"{self.name}: after RL"}
        return {model: titles[model] for model in self.evaluated_models()}

    def model_paths(self) -> dict[str, str]:
        sft = self.sft_model or (str(self.run_dir / "sft" / "final") if self.sft is not None else self.base_path())
        return {"base": self.base_path(), "sft": sft, "exgrpo": str(self.run_dir / "train" / "final")}

    # The stage builders check dataset names against `registry`: the runner's, which holds the world's datasets
    # (runner.pipeline.run_registry); None: the built-in benchmarks alone.

    def probe_config(self, registry: DatasetRegistry | None = None) -> ProbeConfig:
        values = json.loads(json.dumps(self.probe))  # a copy
        if self.world is not None and values.get("teacher", {}).get("kind") == "exact":
            values["teacher"]["world"] = self.world.model_dump()
        difficulty = values.get("difficulty")  # absent: off (ProbeConfig's default); a section: on unless it says not
        if difficulty is not None and difficulty.get("enabled", True):
            difficulty.setdefault("student", self.base_path())
        # The teacher cache lives outside the stage folder: redoing the stage must never lose a paid call.
        values.setdefault("cache_path", self.run_dir / "teacher_cache.jsonl")
        return build_config(ProbeConfig, {**values, "output_dir": self.run_dir / "probe"}, "probe section",
                            registry_context(registry))

    def sft_config(self) -> SFTStageConfig | None:
        if self.sft is None:
            return None
        return build_config(SFTStageConfig, {**self.sft, "model": self.base_path(), "output_dir": self.run_dir / "sft",
                                             "ei_data": self.run_dir / "probe" / "ei.jsonl"}, "sft section")

    def train_config(self) -> TrainConfig | DistillStageConfig | None:
        """The RL stage (ExGRPO, or a baseline's vanilla GRPO or on-policy distillation), from the SFT model
        (or from the base where there is no SFT: RL without warm-up)."""
        if self.train is None:
            return None
        from pydantic import TypeAdapter, ValidationError

        from exgrpo.config import format_validation_error

        values = {"method": "exgrpo", **self.train, "model": self.model_paths()["sft"],
                  "output_dir": self.run_dir / "train", "ei_data": self.run_dir / "probe" / "ei.jsonl"}
        try:
            return TypeAdapter(RLStageConfig).validate_python(values)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, "train section")) from None

    def eval_config(self, model: str, registry: DatasetRegistry | None = None) -> EvalConfig:
        datasets = self.eval.datasets + ([self.eval.ei_test] if self.eval.ei_test else [])
        return build_config(EvalConfig, {
            "model": self.model_paths()[model], "datasets": datasets, "limit": self.eval.limit,
            "limits": {**self.eval.limits, **({self.eval.ei_test: self.eval.ei_test_limit}
                                              if self.eval.ei_test and self.eval.ei_test_limit else {})},
            "max_new_tokens": self.eval.max_new_tokens, "batch_size": self.eval.batch_size,
            "backend": self.eval.backend, "dtype": self.eval.dtype, "output_dir": self.run_dir / "eval" / model},
            "eval section", registry_context(registry))

    def stage_configs(self, registry: DatasetRegistry | None = None) -> dict[str, Any]:
        """Every stage's resolved configuration: building them is the validation."""
        return {"world": self.world, "base": self.student or self.base_model, "probe": self.probe_config(registry),
                "sft": self.sft_config() or {"model": self.model_paths()["sft"]}, "train": self.train_config(),
                "eval": {model: self.eval_config(model, registry) for model in self.evaluated_models()},
                "report": self.eval}


