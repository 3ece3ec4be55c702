"""Which float type to compute in: `dtype: auto | bfloat16 | float32` in every stage's config.

auto = bfloat16 on a GPU that supports it, and on CPUs with native bf16 arithmetic (avx512_bf16 or AMX)
for models of at least SMALL_MODEL_PARAMETERS; float32 elsewhere. On a CPU without those instructions bf16
is emulated and slower than fp32 (SmolLM2-135M `generate` at batch 32 on an AVX2-only EPYC: 51 tok/s in
bf16 against 168 tok/s in fp32; benchmarks/precision.py). (ours) Tiny students stay fp32 under auto: at a
few million parameters the casts cost more than they save, and fp32 keeps the fast tests exact.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from exgrpo.errors import ConfigError

DtypeSetting = Literal["auto", "bfloat16", "float32"]
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
SMALL_MODEL_PARAMETERS = 50_000_000


@functools.cache
def cpu_has_native_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell cheaply, assume not
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def machine_description() -> dict[str, Any]:
    """What this machine computes on, for a stage's manifest: a run that spans machines (a study over several
    sittings) must be able to tell which one measured its seconds, and whether `auto` meant bf16 there."""
    import os

    import torch

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    machine = {"cpu": names[0] if names else "unknown", "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16()}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return machine


def machine_name(machine: dict[str, Any]) -> str:
    """A machine_description in words, for a page or a status line."""
    return (f"{machine['cpu']}, {machine['cores']} cores, {'native' if machine['native_bf16'] else 'no native'} bf16"
            + (f", {machine['gpu']}" if machine.get("gpu") else ""))


def use_bf16(setting: DtypeSetting, model: str | None = None, on_gpu: bool | None = None) -> bool:
    """Whether `setting` means bfloat16 on this machine, for `model` (a loadable name or folder)."""
    import torch

    if setting != "auto":
        return setting == "bfloat16"
    on_gpu = torch.cuda.is_available() if on_gpu is None else on_gpu
    if on_gpu:
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16() and (model is None or parameter_count(model) >= SMALL_MODEL_PARAMETERS)


def torch_dtype(setting: DtypeSetting, model: str | None = None, on_gpu: bool | None = None) -> Any:
    import torch

    return torch.bfloat16 if use_bf16(setting, model, on_gpu) else torch.float32


@functools.cache
def parameter_count(model: str) -> int:
    """Parameters of a model, from its config alone (built on the meta device: no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:  # no such folder, or a hub id that cannot be reached
        raise ConfigError(f"model {model!r}: cannot read its config ({str(error).splitlines()[0]}); give a local "
                          "model folder, a reachable hub id, smollm2-135m-instruct or gguf:PATH") from None
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return sum(parameter.numel() for parameter in skeleton.parameters())
