"""Which datasets a stage reads: registered names, aliases and users' own files.

Validation mutates nothing: a name is known when the registry handed in through pydantic's validation context
(`registry_context`; default: the built-in benchmarks) or the config's own `custom_datasets` hold it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from exgrpo.config.base import StrictModel
from exgrpo.data.registry import DatasetEntry, DatasetRegistry, Group, builtin_entries, custom_entry
from exgrpo.data.schema import AnswerType

# The key of pydantic's validation context that carries the registry dataset names are checked against.
REGISTRY_CONTEXT_KEY = "dataset_registry"


def registry_context(registry: DatasetRegistry | None) -> dict[str, Any] | None:
    """The validation context that makes `registry`'s datasets known to a config (None: the built-ins)."""
    return None if registry is None else {REGISTRY_CONTEXT_KEY: registry}


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

    def entry(self) -> DatasetEntry:
        return custom_entry(self.name, self.path, self.answer_type, question=self.question_column,
                            answer=self.answer_column, choices=self.choices_column, id=self.id_column,
                            group=self.group, prompt=self.prompt)


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
    """Which datasets a stage reads: names of the registry it is validated against, or of its own files."""

    # Before `datasets`: fields validate in order, and the custom names are known to the check of `datasets`.
    custom_datasets: list[CustomDataset] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=lambda: ["held_in", "held_out"], min_length=1, validate_default=True)

    @field_validator("datasets", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        registry = (info.context or {}).get(REGISTRY_CONTEXT_KEY) or DatasetRegistry()
        custom = [dataset.name for dataset in info.data.get("custom_datasets", [])]
        return check_dataset_names(value, [*registry.names(), *custom])

    def dataset_registry(self, registry: DatasetRegistry | None = None) -> DatasetRegistry:
        """The datasets this config reads from: `registry` (default: the built-ins) with its own files added."""
        return (registry or DatasetRegistry()).with_entries(custom.entry() for custom in self.custom_datasets)


def check_dataset_names(names: list[str], known: list[str] | None = None) -> list[str]:
    """Expand aliases and refuse names not in `known` (default: the built-ins), listing the known ones."""
    names = expand_dataset_names(names)
    known = DatasetRegistry().names() if known is None else known
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(sorted(set(known)))}")
    return names
