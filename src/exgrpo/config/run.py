"""The run schema (`exgrpo run CONFIG`): one YAML file for the whole method. Each stage's section is that stage's
settings (the stage schema's own, with its defaults), typed when the file loads, so a misspelt key is reported with
its path (`sft.learnig_rate`); the runner adds the files (models, data, output folders) to make each stage's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidatorFunctionWrapHandler, field_validator, model_validator

from exgrpo.config.base import ModelName as ConfigModelName
from exgrpo.config.base import StrictModel
from exgrpo.config.estimate import EstimateConfig
from exgrpo.config.eval import EvalSettings
from exgrpo.config.probe import ProbeSettings, WorldConfig
from exgrpo.config.training import DistillSettings, SFTSettings, TrainSettings

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


class EvalSection(EvalSettings):
    """The eval stage: `exgrpo eval`'s settings (the same defaults), and what this run evaluates."""

    datasets: list[str] = Field(min_length=1, description="names or aliases, checked when the run starts")
    ei_test: str | None = Field(None, description="dataset of probes of the test questions (EI-Test)")
    ei_test_limit: int | None = Field(None, gt=0, description="first N probes of EI-Test (default: limit)")
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
    probe: ProbeSettings
    sft: SFTSettings | None = Field(default_factory=SFTSettings, description="null: no SFT stage")
    sft_model: str | None = Field(None, description="no SFT stage: train from this SFT model (another run's)")
    train: TrainSettings | DistillSettings | None = Field(
        default_factory=TrainSettings, description="null: no RL stage; `method: distill`: on-policy distillation")
    eval: EvalSection
    estimate: EstimateConfig = Field(default_factory=EstimateConfig, description="prices and throughputs for the "
                                     "cost estimate of `--dry-run`; in no stage's hash")

    @field_validator("train", mode="wrap")
    @classmethod
    def _train_by_method(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # The section's `method` (exgrpo when absent) picks its schema, so that an error names the section's own
        # path (`train.learnig_rate`), not a union member's.
        if not isinstance(value, dict):
            return handler(value)
        schemas: dict[Any, type[TrainSettings | DistillSettings]] = {"exgrpo": TrainSettings,
                                                                     "distill": DistillSettings}
        method = value.get("method", "exgrpo")
        if method not in schemas:
            raise ValueError(f"method: {method!r} is not one of exgrpo, distill")
        return schemas[method].model_validate(value)

    @model_validator(mode="after")
    def _one_student(self) -> RunConfig:
        if (self.student is None) == (self.base_model is None):
            raise ValueError("give exactly one of `student` (build a tiny one) and `base_model`")
        if self.sft is not None and self.sft_model is not None:
            raise ValueError("give at most one of `sft` (train here) and `sft_model` (reuse one)")
        teacher = self.probe.teacher
        if self.world is not None and teacher.kind == "exact" and "world" in teacher.model_fields_set:
            raise ValueError("probe.teacher.world: the exact teacher's world is the run's `world` section")
        unavailable = set(self.eval.models or ()) - set(self.trained_models())
        if unavailable:
            raise ValueError(f"eval.models: this run has no {', '.join(sorted(unavailable))} model")
        answer = self.train.max_answer_tokens if isinstance(self.train, TrainSettings) else None
        if answer is not None and answer < self.eval.max_new_tokens:
            # The reward would judge answers cut more tightly than evaluation cuts them: a different task.
            raise ValueError(f"train.max_answer_tokens ({answer}) is below eval.max_new_tokens "
                             f"({self.eval.max_new_tokens}): RL would cut final answers that evaluation lets finish; "
                             f"raise train.max_answer_tokens to at least {self.eval.max_new_tokens} or leave it out "
                             "(it then follows eval.max_new_tokens)")
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
