"""Pydantic configs for every stage and for the whole run: YAML in, validated in full before any expensive
step starts. One declaration and one default per setting: the run schema's sections reuse the stage schemas."""

from exgrpo.config.base import (
    DTYPE_HELP,
    ConfigT,
    ModelName,
    StrictModel,
    build_config,
    format_validation_error,
    load_config,
    load_yaml,
)
from exgrpo.config.datasets import (
    DATASET_ALIASES,
    CustomDataset,
    DatasetSelection,
    check_dataset_names,
    expand_dataset_names,
    registry_context,
)
from exgrpo.config.estimate import ASSUMED_COMPLETION_TOKENS, EstimateConfig, StudentThroughput, TokenPrice
from exgrpo.config.eval import EvalConfig
from exgrpo.config.probe import (
    DifficultyFilterConfig,
    ExactTeacherConfig,
    LocalTeacherConfig,
    OpenAITeacherConfig,
    ProbeConfig,
    ReplayTeacherConfig,
    TeacherConfig,
    WorldConfig,
)
from exgrpo.config.training import (
    DistillStageConfig,
    ExGRPOSettings,
    LoraSettings,
    RLStageConfig,
    SFTStageConfig,
    TrainConfig,
    TrainingRun,
)

__all__ = [
    "ASSUMED_COMPLETION_TOKENS", "DATASET_ALIASES", "DTYPE_HELP", "ConfigT", "CustomDataset", "DatasetSelection",
    "DifficultyFilterConfig", "DistillStageConfig", "EstimateConfig", "EvalConfig", "ExGRPOSettings",
    "ExactTeacherConfig", "LocalTeacherConfig", "LoraSettings", "ModelName", "OpenAITeacherConfig", "ProbeConfig",
    "RLStageConfig", "ReplayTeacherConfig", "SFTStageConfig", "StrictModel", "StudentThroughput", "TeacherConfig",
    "TokenPrice", "TrainConfig", "TrainingRun", "WorldConfig", "build_config", "check_dataset_names",
    "expand_dataset_names", "format_validation_error", "load_config", "load_yaml",
    "registry_context",
]
