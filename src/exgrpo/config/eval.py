"""Evaluation settings: `exgrpo eval`'s config, and the knobs a run's eval section shares with it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from exgrpo.config.base import BackendSetting, Dtype, ModelName, StrictModel
from exgrpo.config.datasets import DatasetSelection


class EvalSettings(StrictModel):
    """How a model is evaluated, wherever: `exgrpo eval` and a run's eval stage read these, with one default
    each, so the two give the same answers for the same model and data."""

    dtype: Dtype
    split: str | None = Field(None, description="split to evaluate; default: each dataset's eval split")
    limit: int | None = Field(None, gt=0, description="first N examples of each dataset")
    limits: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict,
                                                           description="per-dataset limits, over `limit`")
    source: Literal["local", "hub"] = "local"
    backend: BackendSetting
    batch_size: int = Field(16, gt=0)
    deterministic: bool = Field(False, description="answers that depend on nothing else in the run: each dataset "
                                "in batches of batch_size fixed by its order (the last one filled up), every row kept "
                                "until its batch ends (transformers backend). About 3-4x the generation time of the "
                                "default continuous batching, where a question's batch neighbours follow from the "
                                "other answers' lengths and re-evaluating a model can change a few % of its answers")
    max_new_tokens: int = Field(512, gt=0)
    system_prompt: str | None = None
    bootstrap_resamples: int = Field(1000, ge=100)
    seed: int = 0

    @model_validator(mode="after")
    def _fixed_batches_need_transformers(self) -> EvalSettings:
        # Refused here, before any model loads: vLLM schedules its own batches, so no fixed batch reaches it.
        if self.deterministic and self.backend == "vllm":
            raise ValueError("deterministic evaluation needs the transformers backend (vLLM schedules its own "
                             "batches): set backend: transformers or auto, or deterministic: false")
        return self

    @property
    def generation_backend(self) -> Literal["auto", "transformers", "vllm"]:
        """The backend generation uses: `auto` is transformers when the batches must be fixed."""
        return "transformers" if self.deterministic else self.backend


class EvalConfig(EvalSettings, DatasetSelection):
    """`exgrpo eval`: greedy single-pass accuracy of a model on registered datasets."""

    model: ModelName = Field(description="a Hugging Face model id, a local folder, smollm2-135m-instruct or gguf:PATH")
    output_dir: Path = Path("runs/eval")
