"""Pydantic configs for every stage: YAML in, validated in full before any expensive step starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exgrpo.data.registry import Group, all_entries, builtin_entries, custom_entry, register
from exgrpo.data.schema import AnswerType
from exgrpo.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class StrictModel(BaseModel):
    # A misspelt key is an error, not a silently ignored option.
    model_config = ConfigDict(extra="forbid")


class CustomDataset(StrictModel):
    """A user's own JSONL/JSON/CSV file: which columns hold the question, answer and (optional) options."""

    name: str
    path: Path
    answer_type: AnswerType
    question_column: str = "question"
    answer_column: str = "answer"
    choices_column: str | None = None
    id_column: str | None = None
    group: Group = "other"
    prompt: str | None = None

    def register(self) -> None:
        register(custom_entry(self.name, self.path, self.answer_type, question=self.question_column,
                              answer=self.answer_column, choices=self.choices_column, id=self.id_column,
                              group=self.group, prompt=self.prompt))


DATASET_ALIASES = {
    "held_in": lambda: [n for n, e in builtin_entries().items() if e.group == "held_in"],
    "held_out": lambda: [n for n, e in builtin_entries().items() if e.group == "held_out"],
    "all": lambda: list(builtin_entries()),
}


def expand_dataset_names(names: list[str]) -> list[str]:
    """Expand the aliases held_in / held_out / all; keep order, drop repeats."""
    expanded: list[str] = []
    for name in names:
        for item in DATASET_ALIASES[name]() if name in DATASET_ALIASES else [name]:
            if item not in expanded:
                expanded.append(item)
    return expanded


class EvalConfig(StrictModel):
    """`exgrpo eval`: greedy single-pass accuracy of a model on registered datasets."""

    model: str = Field(description="a Hugging Face model id or a local model folder")
    # Before `datasets`: fields validate in order, and custom names must be registered first.
    custom_datasets: list[CustomDataset] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=lambda: ["held_in", "held_out"], min_length=1, validate_default=True)
    split: str | None = Field(None, description="split to evaluate; default: each dataset's eval split")
    limit: int | None = Field(None, gt=0, description="first N examples of each dataset")
    source: Literal["local", "hub"] = "local"
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    batch_size: int = Field(16, gt=0)
    max_new_tokens: int = Field(512, gt=0)
    system_prompt: str | None = None
    output_dir: Path = Path("runs/eval")
    bootstrap_resamples: int = Field(1000, ge=100)
    seed: int = 0

    @field_validator("custom_datasets")
    @classmethod
    def _register_custom(cls, value: list[CustomDataset]) -> list[CustomDataset]:
        for custom in value:
            custom.register()
        return value

    @field_validator("datasets", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        return check_dataset_names(value)


def check_dataset_names(names: list[str]) -> list[str]:
    """Expand aliases and refuse unknown names, listing the known ones."""
    names = expand_dataset_names(names)
    known = all_entries()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return names


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {location}: {problem['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return document


def build_config(cls: type[ConfigT], values: dict[str, Any], source: str) -> ConfigT:
    """Validate values into a config; errors name the source and every field at fault."""
    try:
        return cls.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_config(cls: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ConfigT:
    """A config from an optional YAML file, with command-line overrides (None values ignored) on top.

    Relative paths inside a YAML file are taken relative to that file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = load_yaml(path)
        base = Path(path).resolve().parent
        for custom in values.get("custom_datasets", []) or []:
            if isinstance(custom, dict) and "path" in custom and not Path(custom["path"]).is_absolute():
                custom["path"] = str(base / custom["path"])
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return build_config(cls, values, str(path) if path is not None else "command line")
