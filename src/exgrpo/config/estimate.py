"""Cost estimates (`exgrpo run --dry-run`): prices and throughputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from exgrpo.config.base import StrictModel

# Reply lengths (teacher tokens) assumed before any answer is cached: a guess, printed as one.
ASSUMED_COMPLETION_TOKENS = {"cot": 256, "probe": 128, "probe_answer": 128, "consistency": 256}


class TokenPrice(StrictModel):
    """What one model's tokens cost, as the user's price list says (exgrpo carries no prices of its own)."""

    input_per_million: float = Field(ge=0, description="price of a million prompt tokens")
    output_per_million: float = Field(ge=0, description="price of a million completion tokens")


class StudentThroughput(StrictModel):
    """Student-side tokens per second on the hardware the run will use (e.g. measured by `make gpu-check`)."""

    sft_tokens_per_s: float | None = Field(None, gt=0, description="SFT: training tokens (prompt + answer) per second")
    exgrpo_tokens_per_s: float | None = Field(None, gt=0, description="RL: generated tokens per second of whole "
                                              "optimizer steps (rollouts, scoring, reference, update)")
    generate_tokens_per_s: float | None = Field(None, gt=0, description="eval and the difficulty filter: generated "
                                                "tokens per second")


class EstimateConfig(StrictModel):
    """How `exgrpo run --dry-run` prices the run. None of it changes a result, so none of it is in a stage hash."""

    prices: dict[str, TokenPrice] = Field(default_factory=dict, description="by teacher model name")
    tokenizer: str | None = Field(None, description="the teacher's tokenizer (a folder, or a hub id in the local "
                                  "cache) to count prompt tokens; default: about 4 characters a token")
    throughput: StudentThroughput = Field(default_factory=StudentThroughput)
    gpu_check: Path | None = Field(None, description="JSON written by `make gpu-check`: its measured tokens/s "
                                   "fill the throughputs not given")
    assumed_completion_tokens: dict[Literal["cot", "probe", "probe_answer", "consistency"],
                                    Annotated[int, Field(gt=0)]] = Field(
        default_factory=dict, description="reply lengths assumed where no cached answer measures them (a pilot "
        f"run does); default {ASSUMED_COMPLETION_TOKENS}")

    def assumed_length(self, purpose: str) -> int:
        return {**ASSUMED_COMPLETION_TOKENS, **self.assumed_completion_tokens}[purpose]

