"""The run schema (`exgrpo run CONFIG`): one YAML file for the whole method, each stage's section
validated into that stage's own config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from exgrpo.config.base import DTYPE_HELP, StrictModel
from exgrpo.config.base import ModelName as ConfigModelName
from exgrpo.config.estimate import EstimateConfig
from exgrpo.config.probe import WorldConfig
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

    # ------------------------------------------- which models the run has (their paths: runner/stage_configs.py)

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
