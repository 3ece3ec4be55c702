"""Which datasets a stage reads: registered names, aliases and users' own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from exgrpo.config.base import StrictModel
from exgrpo.data.registry import Group, all_entries, builtin_entries, custom_entry, register
from exgrpo.data.schema import AnswerType


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


class DatasetSelection(StrictModel):
    """Which registered datasets a stage reads; users' own files are registered first."""

    # Before `datasets`: fields validate in order, and custom names must be registered first.
    custom_datasets: list[CustomDataset] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=lambda: ["held_in", "held_out"], min_length=1, validate_default=True)

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

