"""`exgrpo eval`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from exgrpo.config.base import DTYPE_HELP, ModelName
from exgrpo.config.datasets import DatasetSelection
from exgrpo.models.precision import DtypeSetting


class EvalConfig(DatasetSelection):
    """`exgrpo eval`: greedy single-pass accuracy of a model on registered datasets."""

    model: ModelName = Field(description="a Hugging Face model id, a local folder, smollm2-135m-instruct or gguf:PATH")
    dtype: DtypeSetting = Field("auto", description=DTYPE_HELP)
    split: str | None = Field(None, description="split to evaluate; default: each dataset's eval split")
    limit: int | None = Field(None, gt=0, description="first N examples of each dataset")
    limits: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict,
                                                           description="per-dataset limits, over `limit`")
    source: Literal["local", "hub"] = "local"
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    batch_size: int = Field(16, gt=0)
    max_new_tokens: int = Field(512, gt=0)
    system_prompt: str | None = None
    output_dir: Path = Path("runs/eval")
    bootstrap_resamples: int = Field(1000, ge=100)
    seed: int = 0

