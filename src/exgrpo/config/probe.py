"""Teachers, the synthetic world and the probe stage (`exgrpo probe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from exgrpo.config.base import BackendSetting, Dtype, ModelName, StrictModel
from exgrpo.config.datasets import DatasetSelection


class OpenAITeacherConfig(StrictModel):
    """Any OpenAI-compatible chat API (OpenAI, Gemini's compatible endpoint, vLLM serve, Ollama, llama.cpp)."""

    kind: Literal["openai"]
    model: str
    base_url: str | None = Field(None, description="e.g. http://localhost:8000/v1 for vLLM; None = OpenAI")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the key")
    concurrency: int = Field(32, gt=0)
    timeout: float = Field(120.0, gt=0, description="seconds per request attempt")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts and replies without an answer, "
                             "with backoff and Retry-After")
    max_consecutive_failures: int = Field(10, gt=0, description="this many failed calls in a row stop the stage "
                                          "(a dead server); 401/403/404 and a refused connection stop it at once")
    extra_body: dict[str, Any] = Field(default_factory=dict)


class LocalTeacherConfig(StrictModel):
    """A Hugging Face causal LM run here (transformers, or vLLM on a GPU)."""

    kind: Literal["local"]
    model: ModelName
    dtype: Dtype
    batch_size: int = Field(16, gt=0)
    backend: BackendSetting


class ReplayTeacherConfig(StrictModel):
    """Stored teacher rationales for the original questions: a JSONL file, or the DSS PaLM-540B release."""

    kind: Literal["replay"]
    file: Path | None = Field(None, description='JSONL of {"source", "id", "response"}')
    dss_rationales: Path | None = Field(None, description="dss_palm_rationales folder; default: in the data dir")
    name: str = "dss-palm-540b"


class WorldConfig(StrictModel):
    """The synthetic reasoning world (exgrpo.world): seeded, sizes per family."""

    seed: int = 0
    train_size: int = Field(150, gt=0, description="training problems per family (4 families)")
    test_size: int = Field(50, gt=0, description="held-in test problems per family")
    ood_size: int = Field(50, gt=0, description="problems per family of each held-out set")
    val_size: int = Field(0, ge=0, description="problems per family of a validation split (world_val) like the "
                          "held-in test, disjoint from train and test; 0: none")


class ExactTeacherConfig(StrictModel):
    """The synthetic world's exact teacher: correct rationales and exact probes by construction. In a run, its
    world is the run's `world`."""

    kind: Literal["exact"]
    world: WorldConfig = Field(default_factory=WorldConfig)


TeacherConfig = Annotated[OpenAITeacherConfig | LocalTeacherConfig | ReplayTeacherConfig | ExactTeacherConfig,
                          Field(discriminator="kind")]


class DifficultyFilterConfig(StrictModel):
    """Paper Eq. 2: the base student answers the consistent probes of Q; with L of N solved, drop Q when
    N = 0 or L = N, and (ours, off by default) when L > max_solved."""

    enabled: bool = True
    student: ModelName | None = Field(None, description="the base student: model id, folder or name (required when "
                                      "enabled; a run's default: its base student)")
    dtype: Dtype
    max_solved: int | None = Field(None, ge=0)
    batch_size: int = Field(16, gt=0)
    max_new_tokens: int = Field(256, gt=0)


class ProbeSettings(StrictModel):
    """The probe stage's settings: a run's probe section, and `exgrpo probe`'s config less where it writes. Dataset
    names are checked by the stage config (a run's world registers its datasets when the run starts)."""

    datasets: list[str] = Field(min_length=1)
    split: str = "train"
    limit: int | None = Field(None, gt=0, description="first N questions of each dataset")
    teacher: TeacherConfig
    probe_teacher: TeacherConfig | None = Field(None, description="writes and answers probes; default: teacher")
    rules: list[str] = Field(default_factory=lambda: [f"R{i}" for i in range(1, 11)], min_length=1,
                             description="EI rules R1-R10; RP (rephrase) is the Rephrase-Question baseline's")
    max_tokens: int = Field(1024, gt=0, description="teacher tokens per answer")
    probe_max_tokens: int = Field(1024, gt=0, description="teacher tokens per probe (JSON) reply")
    json_retries: int = Field(2, ge=0, description="repair requests after an invalid probe reply")
    max_tokens_cap: int | None = Field(None, gt=0, description="a teacher reply cut off at its budget is asked "
                                       "again with twice the budget, up to this; then it is recorded as truncated "
                                       "(default: 4 x the larger of max_tokens and probe_max_tokens)")
    consistency_filter: bool = True
    answer_samples: int = Field(0, ge=0, description="(the Answer-Aug baseline) extra sampled teacher rationales "
                                "per question; the correct ones are kept in the EI record's extra_responses")
    answer_temperature: float = Field(0.7, ge=0, description="sampling temperature of those extra rationales")
    difficulty: DifficultyFilterConfig = Field(default_factory=lambda: DifficultyFilterConfig(enabled=False))
    cache_path: Path | None = Field(None, description="teacher call cache; default: output_dir/teacher_cache.jsonl "
                                    "(a run's: run_dir/teacher_cache.jsonl, which redoing the stage keeps)")

    @model_validator(mode="after")
    def _replay_needs_probe_teacher(self) -> ProbeSettings:
        if self.teacher.kind == "replay" and (self.probe_teacher is None or self.probe_teacher.kind == "replay"):
            raise ValueError("a replay teacher only has rationales for the original questions: "
                             "set probe_teacher (openai or local) to write and answer the probes")
        return self

    @model_validator(mode="after")
    def _cap_holds_the_budgets(self) -> ProbeSettings:
        if self.max_tokens_cap is not None and self.max_tokens_cap < max(self.max_tokens, self.probe_max_tokens):
            raise ValueError(f"max_tokens_cap ({self.max_tokens_cap}) is below max_tokens / probe_max_tokens "
                             f"({self.max_tokens} / {self.probe_max_tokens})")
        return self

    def resolved_max_tokens_cap(self) -> int:
        return self.max_tokens_cap or 4 * max(self.max_tokens, self.probe_max_tokens)


class ProbeConfig(ProbeSettings, DatasetSelection):
    """`exgrpo probe`: teacher rationales, EI probes (10 rules), both filters -> the EI dataset."""

    output_dir: Path = Path("runs/probe")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        from exgrpo.inversion.rules import all_rules

        unknown = [rule for rule in value if rule not in all_rules()]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; rules are {', '.join(all_rules())}")
        return value

    @model_validator(mode="after")
    def _difficulty_has_a_student(self) -> ProbeConfig:
        if self.difficulty.enabled and not self.difficulty.student:
            raise ValueError("difficulty.student is required when the difficulty filter is enabled")
        return self

    def resolved_cache_path(self) -> Path:
        return self.cache_path or self.output_dir / "teacher_cache.jsonl"

