"""The dataset registry: every benchmark is an entry of data (benchmarks.yaml), never a module.

An entry says where the files are, which raw fields make the question, the options and the answer
(Jinja templates/expressions, as in lm-evaluation-harness), and the answer type. A `DatasetRegistry` holds
the built-in entries and those added to it explicitly, and turns any of them into normalised `Example`s,
from the local copies (default) or from the Hugging Face Hub. A user's own JSONL/CSV is an entry too
(`custom_entry`, built from a column mapping); a datasets file carries entries between commands.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exgrpo.data.answers import (
    canonical_answer,
    evaluate_arithmetic,
    format_number,
    is_valid_gold,
    last_boxed,
)
from exgrpo.data.schema import OPTION_LETTERS, AnswerType, Example
from exgrpo.errors import ConfigError, DataError
from exgrpo.files import atomic_write_text, read_records, read_yaml

DATA_DIR_ENV = "EXGRPO_DATA_DIR"
Group = Literal["held_in", "held_out", "other"]


class Holdout(BaseModel):
    """A deterministic train/test partition of a single-file dataset."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["train", "test"]
    test_size: int = Field(gt=0)
    seed: int = 0


class SplitSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(min_length=1)
    holdout: Holdout | None = None
    exclude_split: str | None = None  # drop questions that also occur in this split


class Fields(BaseModel):
    """How raw records map onto the schema: Jinja over one record."""

    model_config = ConfigDict(extra="forbid")
    question: str | None = None  # template
    answer: str | None = None  # expression
    choices: str | None = None  # expression -> list of option texts
    id: str | None = None  # expression
    answer_type_expr: str | None = None  # expression -> an AnswerType name, for mixed datasets


class HubSource(Fields):
    """The same benchmark on the Hugging Face Hub; field expressions default to the entry's."""

    path: str  # a hub id, or a local directory laid out like one
    name: str | None = None
    split_map: dict[str, str] = Field(default_factory=dict)


class DatasetEntry(Fields):
    name: str
    group: Group = "other"
    answer_type: AnswerType
    description: str = ""
    paired_with: str | None = None  # the held-in dataset a held-out one tests transfer from
    required: list[str] = Field(default_factory=list)
    splits: dict[str, SplitSource]
    eval_split: str = "test"
    hub: HubSource | None = None
    prompt: str | None = None  # overrides the default prompt for the answer type
    base_dir: str | None = None  # resolve files here instead of the data directory (user datasets)

    @model_validator(mode="after")
    def _check(self) -> DatasetEntry:
        if self.question is None or self.answer is None:
            raise ValueError("an entry needs `question` (template) and `answer` (expression)")
        if self.eval_split not in self.splits:
            raise ValueError(f"eval_split '{self.eval_split}' is not one of the splits {sorted(self.splits)}")
        for field in ("question", "answer", "choices", "id", "answer_type_expr", "prompt"):
            source = getattr(self, field)
            if source is None:
                continue
            try:  # compile now, so a typo fails at config time and not mid-run
                if field in ("question", "prompt"):
                    _ENV.from_string(source)
                else:
                    _ENV.compile_expression(source)
            except TemplateError as error:
                raise ValueError(f"field '{field}': invalid Jinja: {error}") from None
        return self


# ---------------------------------------------------------------- Jinja environment and filters


def _letter(label: Any, labels: Any) -> str:
    """The option letter of `label` among `labels` (ARC's '1'..'4', TabMWP's option texts)."""
    labels = [str(item) for item in labels]
    if str(label) not in labels:
        raise ValueError(f"answer {label!r} is not among the options {labels}")
    return OPTION_LETTERS[labels.index(str(label))]


def _argmax(scores: dict[str, float]) -> str:
    return max(scores, key=lambda key: scores[key])


def _nli_label(label: Any) -> str:
    return canonical_answer(label, AnswerType.nli)


def _yes_no(value: Any) -> str:
    return canonical_answer(value, AnswerType.yes_no)


def _after(text: str, marker: str) -> str:
    if marker not in text:
        raise ValueError(f"marker {marker!r} not found")
    return text.rsplit(marker, 1)[1].strip()


def _strip_unit(text: Any) -> str:
    """'9 (apples)' -> '9', '$1,234' -> '1,234'."""
    return str(text).split("(")[0].replace("$", "").strip()


def _boxed(text: str) -> str:
    content = last_boxed(text)
    if content is None:
        raise ValueError("no \\boxed{...} answer in the solution")
    return content


def _arith(expression: str) -> str:
    value = evaluate_arithmetic(str(expression))
    if value is None:
        raise ValueError(f"{expression!r} is not an arithmetic expression")
    return format_number(value)


def _shuffled(items: Any, key: Any) -> list:
    """A permutation of `items` fixed by `key`: options stored with the answer first must not stay so."""
    items = list(items)
    seed = int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:8], "little")
    return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
_ENV.filters.update(letter=_letter, argmax=_argmax, nli_label=_nli_label, yes_no=_yes_no, after=_after,
                    strip_unit=_strip_unit, boxed=_boxed, shuffled=_shuffled, arith=_arith)
# Templates may test optional fields with `{% if unit %}`; expressions stay strict.
_LENIENT_ENV = ImmutableSandboxedEnvironment(undefined=Undefined)
_LENIENT_ENV.filters.update(_ENV.filters)




@cache
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


@cache
def _template(source: str) -> Any:
    return _LENIENT_ENV.from_string(source)


# ---------------------------------------------------------------- the registry


@cache
def builtin_entries() -> dict[str, DatasetEntry]:
    text = resources.files("exgrpo.data").joinpath("benchmarks.yaml").read_text(encoding="utf-8")
    return {entry["name"]: DatasetEntry.model_validate(entry) for entry in yaml.safe_load(text)}


class DatasetRegistry:
    """The datasets a command can read: the built-in benchmarks and the entries added to this object (a user's
    own files, a synthetic world's splits). The runner and the CLI fill one and hand it to whatever loads data;
    there is no process-wide table, so two runs in one process never see each other's datasets."""

    def __init__(self, entries: Iterable[DatasetEntry] = ()) -> None:
        self._entries: dict[str, DatasetEntry] = dict(builtin_entries())
        for entry in entries:
            self.add(entry)

    def add(self, entry: DatasetEntry) -> None:
        """Add an entry; a later entry of the same name replaces the earlier (a world written elsewhere)."""
        self._entries[entry.name] = entry

    def with_entries(self, entries: Iterable[DatasetEntry]) -> DatasetRegistry:
        """A copy with `entries` added: this registry stays as it was."""
        return DatasetRegistry([*self._entries.values(), *entries])

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> dict[str, DatasetEntry]:
        return dict(self._entries)

    def get(self, name: str) -> DatasetEntry:
        if name not in self._entries:
            raise ConfigError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def load(self, name: str, split: str | None = None, limit: int | None = None,
             source: Literal["local", "hub"] = "local") -> list[Example]:
        """One split of a dataset in the normalised schema; `limit` keeps the first N examples (after any
        holdout partition), as lm-evaluation-harness does."""
        entry = self.get(name)
        split = split or entry.eval_split
        if source == "hub":
            examples = _load_hub(entry, split)
        else:
            if split not in entry.splits:
                raise ConfigError(f"dataset '{name}' has no split '{split}'; splits: {', '.join(sorted(entry.splits))}")
            examples = _load_local(entry, split)
        return examples[:limit] if limit is not None else examples


def load_examples(name: str, split: str | None = None, limit: int | None = None,
                  source: Literal["local", "hub"] = "local", registry: DatasetRegistry | None = None) -> list[Example]:
    """Load one split of a dataset of `registry` (default: the built-in benchmarks alone)."""
    return (registry or DatasetRegistry()).load(name, split, limit, source)


# A datasets file: dataset entries in YAML, written beside data files (a synthetic world's splits) so that any
# command can read them. A relative `base_dir` is relative to the file's folder: the folder can move.
DATASETS_FILE = "datasets.yaml"
DATASETS_FILE_SCHEMA = 1


def write_datasets_file(path: str | Path, entries: Iterable[DatasetEntry]) -> None:
    documents = [{"name": entry.name, **entry.model_dump(mode="json", exclude_defaults=True)} for entry in entries]
    text = yaml.safe_dump({"schema_version": DATASETS_FILE_SCHEMA, "datasets": documents}, sort_keys=False,
                          allow_unicode=True)
    atomic_write_text(path, text)


def read_datasets_file(path: str | Path) -> list[DatasetEntry]:
    """The entries of a datasets file; an invalid one names the file and the entry."""
    path = Path(path)
    document = read_yaml(path, "datasets file")
    if not isinstance(document, dict) or not isinstance(document.get("datasets"), list):
        raise ConfigError(f"{path}: expected `schema_version` and a list of dataset entries under `datasets`")
    if document.get("schema_version") != DATASETS_FILE_SCHEMA:
        raise ConfigError(f"{path}: schema_version {document.get('schema_version')!r}; this exgrpo reads "
                          f"{DATASETS_FILE_SCHEMA} (rerun the world stage with this exgrpo to write it again)")
    entries = []
    for position, entry_document in enumerate(document["datasets"]):
        try:
            entry = DatasetEntry.model_validate(entry_document)
        except ValidationError as error:
            raise ConfigError(f"{path}: datasets entry {position + 1}: {error}") from None
        base = Path(entry.base_dir) if entry.base_dir is not None else Path(".")
        entries.append(entry.model_copy(update={"base_dir": str((path.parent / base).resolve())}))
    return entries


def data_dir() -> Path:
    """EXGRPO_DATA_DIR, else ../shared/datasets beside the working directory or beside this checkout."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    candidates = [Path.cwd().parent / "shared" / "datasets", Path(__file__).resolve().parents[4] / "shared" / "datasets"]
    return next((path for path in candidates if path.is_dir()), candidates[0])


def custom_entry(name: str, path: str | Path, answer_type: AnswerType | str, question: str = "question",
                 answer: str = "answer", choices: str | None = None, id: str | None = None,
                 group: Group = "other", prompt: str | None = None) -> DatasetEntry:
    """An entry for a user's own JSONL/JSON/CSV file from a column mapping (column names, not Jinja)."""
    path = Path(path).expanduser().resolve()
    return DatasetEntry(
        name=name, group=group, answer_type=AnswerType(answer_type), required=[question, answer],
        question="{{ " + _column(question) + " }}", answer=_column(answer),
        choices=_column(choices) if choices else None, id=_column(id) if id else None,
        splits={"test": SplitSource(files=[path.name])}, base_dir=str(path.parent), prompt=prompt,
    )


def _column(name: str) -> str:
    # Column names may hold spaces or dashes: address them by key, not as Jinja identifiers.
    return "_record[" + repr(name) + "]"


# ---------------------------------------------------------------- loading


def _files_dir(entry: DatasetEntry) -> Path:
    return Path(entry.base_dir) if entry.base_dir else data_dir()


def entry_files(entry: DatasetEntry) -> list[Path]:
    """Every local file an entry's splits read."""
    return [_files_dir(entry) / name for split in entry.splits.values() for name in split.files]


def _load_local(entry: DatasetEntry, split: str) -> list[Example]:
    spec = entry.splits[split]
    examples: list[Example] = []
    for file_name in spec.files:
        path = _files_dir(entry) / file_name
        if not path.exists():
            raise DataError(
                f"dataset '{entry.name}' split '{split}' is missing; set {DATA_DIR_ENV} to the folder that holds "
                f"'{file_name}' (now {_files_dir(entry)}); exgrpo eval can also read it from the hub (--source hub)", path)
        for position, record in read_records(path):
            examples.append(to_example(entry, entry, record, f"{path}:{position}", f"{entry.name}-{split}-{len(examples)}"))
    if spec.holdout is not None:
        examples = _partition(examples, spec.holdout)
    if spec.exclude_split is not None:
        seen = {example.question for example in _load_local(entry, spec.exclude_split)}
        examples = [example for example in examples if example.question not in seen]
    return examples


def _partition(examples: list[Example], holdout: Holdout) -> list[Example]:
    order = np.random.default_rng(holdout.seed).permutation(len(examples))
    test_positions = set(order[: holdout.test_size].tolist())
    keep_test = holdout.role == "test"
    return [example for index, example in enumerate(examples) if (index in test_positions) == keep_test]


def _load_hub(entry: DatasetEntry, split: str) -> list[Example]:
    if entry.hub is None:
        raise ConfigError(f"dataset '{entry.name}' has no hub source; use the local files")
    import datasets

    hub = entry.hub
    hub_split = hub.split_map.get(split, split)
    rows = datasets.load_dataset(hub.path, hub.name, split=hub_split)
    return [to_example(entry, hub, dict(row), f"{hub.path}[{hub_split}]#{index}", f"{entry.name}-{split}-{index}")
            for index, row in enumerate(rows)]


def to_example(entry: DatasetEntry, fields: Fields, record: dict[str, Any], location: str, default_id: str) -> Example:
    """Map one raw record onto the schema; any failure names the file, line and field."""
    path, _, line = location.rpartition(":")
    line_number = int(line) if line.isdigit() else None
    for required in entry.required if fields is entry else []:
        if _lookup(record, required) is None:
            raise DataError("required field is missing or null", path, line_number, required)

    def evaluate(field: str, template: bool = False) -> Any:
        source = getattr(fields, field) or getattr(entry, field)
        if source is None:
            return None
        context = {**record, "_record": record}
        try:
            if template:
                return _template(source).render(**context).strip()
            return _expression(source)(**context)
        except Exception as error:  # Jinja and filter errors alike: say which field of which record
            raise DataError(f"cannot compute `{source}`: {error}", path, line_number, field) from None

    question = evaluate("question", template=True)
    choices = evaluate("choices")
    if choices is not None and not isinstance(choices, (list, tuple)):
        raise DataError(f"choices must be a list, got {type(choices).__name__}", path, line_number, "choices")
    choices = tuple(str(choice) for choice in choices) if choices else None
    answer_type = AnswerType(evaluate("answer_type_expr") or entry.answer_type)
    raw_answer = evaluate("answer")
    if raw_answer is None or not str(raw_answer).strip():
        raise DataError("record has no answer", path, line_number, "answer")
    try:
        answer = canonical_answer(raw_answer, answer_type)
    except ValueError as error:
        raise DataError(str(error), path, line_number, "answer") from None
    if not question:
        raise DataError("record has an empty question", path, line_number, "question")
    if not is_valid_gold(answer, answer_type, choices):
        raise DataError(f"answer {answer!r} is not a valid {answer_type} answer", path, line_number, "answer")
    raw_id = evaluate("id")
    return Example(id=str(raw_id) if raw_id is not None else default_id, question=question, answer=answer,
                   answer_type=answer_type, source=entry.name, choices=choices, location=location)


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value

