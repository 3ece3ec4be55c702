"""Pydantic configs for every stage: YAML in, validated in full before any expensive step starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from exgrpo.data.registry import Group, all_entries, builtin_entries, custom_entry, register
from exgrpo.data.schema import AnswerType
from exgrpo.errors import ConfigError
from exgrpo.models.named import check_model_name
from exgrpo.models.precision import DtypeSetting

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class StrictModel(BaseModel):
    # A misspelt key is an error, not a silently ignored option.
    model_config = ConfigDict(extra="forbid")


# A model named by id, folder, `smollm2-135m-instruct` or `gguf:PATH` (exgrpo.models.named); a named model's
# package or file must exist, checked before any work starts.
ModelName = Annotated[str, AfterValidator(check_model_name)]
DTYPE_HELP = "auto (bf16 on a GPU or a CPU with avx512_bf16/AMX, else fp32), bfloat16 or float32"


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


# ---------------------------------------------------------------- teachers and the probe stage


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
    dtype: DtypeSetting = Field("auto", description=DTYPE_HELP)
    batch_size: int = Field(16, gt=0)
    backend: Literal["auto", "transformers", "vllm"] = "auto"


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
    """The synthetic world's exact teacher: correct rationales and exact probes by construction."""

    kind: Literal["exact"]
    world: WorldConfig = Field(default_factory=WorldConfig)


TeacherConfig = Annotated[OpenAITeacherConfig | LocalTeacherConfig | ReplayTeacherConfig | ExactTeacherConfig,
                          Field(discriminator="kind")]


class DifficultyFilterConfig(StrictModel):
    """Paper Eq. 2: the base student answers the consistent probes of Q; with L of N solved, drop Q when
    N = 0 or L = N, and (ours, off by default) when L > max_solved."""

    enabled: bool = True
    student: ModelName | None = Field(None, description="the base student: model id, folder or name")
    dtype: DtypeSetting = Field("auto", description=DTYPE_HELP)
    max_solved: int | None = Field(None, ge=0)
    batch_size: int = Field(16, gt=0)
    max_new_tokens: int = Field(256, gt=0)

    @model_validator(mode="after")
    def _needs_student(self) -> DifficultyFilterConfig:
        if self.enabled and not self.student:
            raise ValueError("difficulty.student is required when the difficulty filter is enabled")
        return self


class ProbeConfig(DatasetSelection):
    """`exgrpo probe`: teacher rationales, EI probes (10 rules), both filters -> the EI dataset."""

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
    output_dir: Path = Path("runs/probe")
    cache_path: Path | None = Field(None, description="teacher call cache; default: output_dir/teacher_cache.jsonl")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        from exgrpo.inversion.rules import all_rules

        unknown = [rule for rule in value if rule not in all_rules()]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; rules are {', '.join(all_rules())}")
        return value

    @model_validator(mode="after")
    def _replay_needs_probe_teacher(self) -> ProbeConfig:
        if self.teacher.kind == "replay" and (self.probe_teacher is None or self.probe_teacher.kind == "replay"):
            raise ValueError("a replay teacher only has rationales for the original questions: "
                             "set probe_teacher (openai or local) to write and answer the probes")
        return self

    @model_validator(mode="after")
    def _cap_holds_the_budgets(self) -> ProbeConfig:
        if self.max_tokens_cap is not None and self.max_tokens_cap < max(self.max_tokens, self.probe_max_tokens):
            raise ValueError(f"max_tokens_cap ({self.max_tokens_cap}) is below max_tokens / probe_max_tokens "
                             f"({self.max_tokens} / {self.probe_max_tokens})")
        return self

    def resolved_cache_path(self) -> Path:
        return self.cache_path or self.output_dir / "teacher_cache.jsonl"

    def resolved_max_tokens_cap(self) -> int:
        return self.max_tokens_cap or 4 * max(self.max_tokens, self.probe_max_tokens)


# ---------------------------------------------------------------- cost estimates (`exgrpo run --dry-run`)


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


# ---------------------------------------------------------------- training: SFT warm-up and ExGRPO


class LoraSettings(StrictModel):
    """LoRA (PEFT) for 7B-class students; rank 32 as in the paper / RevThink."""

    r: int = Field(32, gt=0)
    alpha: int = Field(64, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class TrainingRun(StrictModel):
    """What SFT and ExGRPO share: the model, the EI data, the optimiser, logging and checkpoints."""

    model: ModelName = Field(description="starting model: id, folder or name (SFT: the base student; train: the "
                             "SFT checkpoint)")
    dtype: DtypeSetting = Field("auto", description=DTYPE_HELP + "; bf16 on a CPU trains under autocast")
    ei_data: Path = Field(description="ei.jsonl written by `exgrpo probe` (or its output folder)")
    output_dir: Path
    learning_rate: float = Field(gt=0)
    per_device_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    lora: LoraSettings | None = Field(None, description="LoRA settings; null = full fine-tuning (tiny students)")
    merge_adapter: bool = Field(True, description="save the final model with the LoRA adapter merged in")
    seed: int = 0
    logging_steps: int = Field(5, gt=0)
    save_steps: int = Field(100, gt=0)
    save_total_limit: int | None = 2
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"], description="tensorboard, wandb, none")
    resume: bool = Field(True, description="continue from the newest checkpoint in output_dir if there is one")
    max_steps: int = Field(-1, description="optimizer steps; -1 = by epochs (SFT)")
    data_fraction: float = Field(1.0, gt=0, le=1, description="train on this fraction of the EI questions "
                                 "(a fixed, nested subset: the data-efficiency study)")
    probe_rules: list[str] | None = Field(None, description="train on probes of these rules only; default: the ten "
                                          "EI rules (an augmentation such as RP only when named)")

    def ei_path(self) -> Path:
        return self.ei_data / "ei.jsonl" if self.ei_data.is_dir() else self.ei_data


class SFTStageConfig(TrainingRun):
    """`exgrpo sft`: supervised warm-up on the EI data (teacher responses; loss on assistant tokens only)."""

    output_dir: Path = Path("runs/sft")
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(3.0, gt=0)
    max_length: int = Field(1024, gt=0)
    group_by_length: bool = Field(True, description="batch examples of similar length together (transformers' "
                                  "LengthGroupedSampler): less padding, ~2x faster on EI data of mixed lengths")
    include_probes: bool = Field(True, description="one example per kept probe with the teacher's response")
    extra_rationales: bool = Field(False, description="(the Answer-Aug baseline) one example per extra teacher "
                                   "rationale (probe with answer_samples)")
    dialogues_per_question: int = Field(1, ge=0, description="(ours) probe dialogues in the ExGRPO format")
    dialogue_probes: int = Field(5, ge=0, description="(ours) probes per SFT dialogue, like ExGRPO's k")
    format: Literal["standard", "step_by_step", "revthink"] = Field(
        "standard", description="standard (EI-SFT, SKD, Rephrase/Question-Aug), or a multi-task baseline's format")


class ExGRPOSettings(StrictModel):
    """The method's own knobs (METHOD.md, Stage 3)."""

    k: int = Field(5, ge=0, description="probes in scenario A (capped at the question's kept probes)")
    k_partial: int | None = Field(None, ge=0, description="(ours) probes in scenario B; default k // 2")
    rollouts_full: int = Field(4, ge=1, description="G_A: scenario-A rollouts per question")
    rollouts_partial: int = Field(4, ge=0, description="(ours) G_B: scenario-B rollouts per question")
    dsu_delta: float = Field(0.5, ge=0, description="(ours) DSU bonus added to correct A rollouts")
    dsu_nu: float = Field(1.0, gt=0, description="(ours) the bonus fires when P_full > nu * P_partial")
    aux_weight: float = Field(0.1, ge=0, description="(ours) lambda_aux: weight of the auxiliary SFT loss")
    format_reward: float = Field(0.0, ge=0, description="(ours) reward for a parsable final answer")
    per_scenario_advantages: bool = Field(False, description="(ours) normalise A and B rollouts separately")

    def partial_probes(self) -> int:
        return self.k // 2 if self.k_partial is None else self.k_partial

    @model_validator(mode="after")
    def _partial_shorter(self) -> ExGRPOSettings:
        if self.k > 0 and self.partial_probes() >= self.k:
            raise ValueError(f"k_partial ({self.partial_probes()}) must be smaller than k ({self.k})")
        if self.k == 0 and self.rollouts_partial > 0:
            raise ValueError(f"k = 0 makes scenario B the same dialogue as A: set rollouts_partial to 0 (vanilla GRPO "
                             f"is k = 0, rollouts_partial = 0), not {self.rollouts_partial}")
        return self


class TrainConfig(TrainingRun):
    """`exgrpo train`: ExGRPO on TRL's GRPOTrainer, starting from (and KL-anchored to) the SFT checkpoint."""

    method: Literal["exgrpo"] = Field("exgrpo", description="exgrpo (also vanilla GRPO: k=0, no B rollouts) or distill")
    output_dir: Path = Path("runs/exgrpo")
    learning_rate: float = Field(1e-5, gt=0)
    max_steps: int = Field(100, gt=0)
    exgrpo: ExGRPOSettings = Field(default_factory=ExGRPOSettings)
    questions_per_step: int = Field(2, gt=0, description="questions per device per step (x G_A + G_B rollouts)")
    beta: float = Field(0.04, ge=0, description="KL penalty to the reference (the starting SFT model)")
    epsilon: float = Field(0.2, gt=0, description="clipping of the GRPO surrogate")
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field(
        "grpo", description="TRL's normalisation of the token losses; grpo (METHOD): each rollout's mean over its "
        "own trained tokens, then the mean over rollouts, so a long A dialogue weighs as much as a short B one; "
        "dapo / bnpo: token-level (longer rollouts weigh more); dr_grpo: a constant")
    max_new_tokens: int = Field(128, gt=0, description="student tokens per turn")
    temperature: float = Field(1.0, gt=0)
    generation_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra sampling arguments (top_p...)")
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"

    def rollouts_per_question(self) -> int:
        return self.exgrpo.rollouts_full + self.exgrpo.rollouts_partial

    @model_validator(mode="after")
    def _batch_from_questions(self) -> TrainConfig:
        if "per_device_batch_size" in self.model_fields_set:
            raise ValueError("per_device_batch_size is not read by `exgrpo train`: a batch is questions_per_step x "
                             "(rollouts_full + rollouts_partial) rollouts; set questions_per_step instead")
        return self


class DistillStageConfig(TrainingRun):
    """On-policy distillation (GKD, Agarwal et al. 2024) with TRL's DistillationTrainer: the student samples
    answers to the EI questions and learns the teacher model's next-token distribution on them. A baseline;
    the teacher model must share the student's tokenizer."""

    method: Literal["distill"]
    teacher_model: ModelName = Field(description="teacher model (id or folder) with the student's vocabulary")
    output_dir: Path = Path("runs/distill")
    learning_rate: float = Field(1e-5, gt=0)
    max_steps: int = Field(100, gt=0)
    beta: float = Field(0.5, ge=0, le=1, description="generalised JSD: 0 forward KL, 0.5 JSD, 1 reverse KL")
    max_new_tokens: int = Field(128, gt=0, description="student tokens per sampled answer")
    temperature: float = Field(1.0, gt=0)


RLStageConfig = Annotated[TrainConfig | DistillStageConfig, Field(discriminator="method")]


def check_dataset_names(names: list[str]) -> list[str]:
    """Expand aliases and refuse unknown names, listing the known ones."""
    names = expand_dataset_names(names)
    known = all_entries()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return names


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {location}: {problem['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return document


def build_config(cls: type[ConfigT], values: dict[str, Any], source: str) -> ConfigT:
    """Validate values into a config; errors name the source and every field at fault."""
    try:
        return cls.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_config(cls: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ConfigT:
    """A config from an optional YAML file, with command-line overrides (None values ignored) on top.

    Relative paths inside a YAML file are taken relative to that file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = load_yaml(path)
        _resolve_input_paths(values, Path(path).resolve().parent)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return build_config(cls, values, str(path) if path is not None else "command line")


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
