"""What every config shares: strict models, named models, YAML loading and error messages that name the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from exgrpo.errors import ConfigError
from exgrpo.files import read_yaml
from exgrpo.models.named import check_model_name
from exgrpo.models.precision import DtypeSetting

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class StrictModel(BaseModel):
    # A misspelt key is an error, not a silently ignored option.
    model_config = ConfigDict(extra="forbid")


# A model named by id, folder, `smollm2-135m-instruct` or `gguf:PATH` (exgrpo.models.named); a named model's
# package or file must exist, checked before any work starts.
ModelName = Annotated[str, AfterValidator(check_model_name)]
DTYPE_HELP = ("auto (bf16 on a GPU or a CPU with avx512_bf16/AMX, else fp32), bfloat16 or float32; training in bf16 "
              "on a CPU runs under autocast")

# Settings that several configs share, each with its one default and description: a config declares `dtype: Dtype`.
Dtype = Annotated[DtypeSetting, Field("auto", description=DTYPE_HELP)]
Backend = Literal["auto", "transformers", "vllm"]
BackendSetting = Annotated[Backend, Field("auto", description="auto: vLLM when it is installed and a GPU is present, "
                                                              "else transformers")]


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {location}: {problem['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    document = read_yaml(path, "config file")
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return document


def build_config(cls: type[ConfigT], values: dict[str, Any], source: str,
                 context: dict[str, Any] | None = None) -> ConfigT:
    """Validate values into a config; errors name the source and every field at fault. `context` is pydantic's
    validation context (e.g. the dataset registry names are checked against: config.datasets.registry_context)."""
    try:
        return cls.model_validate(values, context=context)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_config(cls: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                context: dict[str, Any] | None = None) -> ConfigT:
    """A config from an optional YAML file, with command-line overrides (None values ignored) on top.

    Relative paths inside a YAML file are taken relative to that file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = load_yaml(path)
        _resolve_input_paths(values, Path(path).resolve().parent)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return build_config(cls, values, str(path) if path is not None else "command line", context)


# Input files named in a YAML file are relative to it; outputs (output_dir) stay relative to the working
# directory, as in transformers and TRL.
_INPUT_PATH_KEYS = {"custom_datasets": ["path"], "teacher": ["file", "dss_rationales"],
                    "probe_teacher": ["file", "dss_rationales"], "": ["ei_data"]}


def _resolve_input_paths(values: dict[str, Any], base: Path) -> None:
    for section, keys in _INPUT_PATH_KEYS.items():
        items = values.get(section) if section else values  # "" = keys at the top level
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict):
                continue
            for key in keys:
                if isinstance(item.get(key), str) and not Path(item[key]).expanduser().is_absolute():
                    item[key] = str(base / item[key])
