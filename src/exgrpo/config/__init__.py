"""Pydantic configs for every stage and for the whole run: YAML in, validated in full before any expensive
step starts. One declaration and one default per setting: the run schema's sections reuse the stage schemas."""

from exgrpo.config.base import (
    DTYPE_HELP,
    Backend,
    BackendSetting,
    ConfigT,
    Dtype,
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
from exgrpo.config.eval import EvalConfig, EvalSettings
from exgrpo.config.probe import (
    DifficultyFilterConfig,
    ExactTeacherConfig,
    LocalTeacherConfig,
    OpenAITeacherConfig,
    ProbeConfig,
    ProbeSettings,
    ReplayTeacherConfig,
    TeacherConfig,
    WorldConfig,
)
from exgrpo.config.training import (
    DistillSettings,
    DistillStageConfig,
    ExGRPOSettings,
    LoraSettings,
    PassRateSettings,
    RLSettings,
    SFTSettings,
    SFTStageConfig,
    TrainConfig,
    TrainingRun,
    TrainingSettings,
    TrainSettings,
)

__all__ = [
    "ASSUMED_COMPLETION_TOKENS", "DATASET_ALIASES", "DTYPE_HELP", "Backend", "BackendSetting", "ConfigT",
    "CustomDataset", "DatasetSelection", "DifficultyFilterConfig", "DistillSettings", "DistillStageConfig", "Dtype",
    "EstimateConfig", "EvalConfig", "EvalSettings", "ExGRPOSettings", "ExactTeacherConfig", "LocalTeacherConfig",
    "LoraSettings", "ModelName", "OpenAITeacherConfig", "PassRateSettings", "ProbeConfig", "ProbeSettings", "RLSettings",
    "ReplayTeacherConfig", "SFTSettings", "SFTStageConfig", "StrictModel", "StudentThroughput", "TeacherConfig",
    "TokenPrice", "TrainConfig", "TrainSettings", "TrainingRun", "TrainingSettings", "WorldConfig", "build_config",
    "check_dataset_names", "expand_dataset_names", "format_validation_error", "load_config", "load_yaml",
    "registry_context",
]
