"""Training: the SFT warm-up, ExGRPO and on-policy distillation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from exgrpo.config.base import Dtype, ModelName, StrictModel


class LoraSettings(StrictModel):
    """LoRA (PEFT) for 7B-class students; rank 32 as in the paper / RevThink."""

    r: int = Field(32, gt=0)
    alpha: int = Field(64, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class TrainingSettings(StrictModel):
    """What every training stage's settings share: precision, the optimiser, logging, checkpoints, the data used.
    A stage's settings are a run's section for it; its config adds the files (TrainingRun)."""

    dtype: Dtype
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
    max_seconds: float | None = Field(None, gt=0, description="wall-time budget of the run's training, over all its "
                                      "sittings (a resumed run gets what its last checkpoint left): training stops "
                                      "after the step that spends it and saves a checkpoint and final/ as usual")
    stop_at_step: int | None = Field(None, gt=0, description="end the run after this optimizer step (checkpoint "
                                     "and final/ as usual) while the learning-rate schedule runs over max_steps: "
                                     "the first steps of the longer run, e.g. to match another run's steps")
    data_fraction: float = Field(1.0, gt=0, le=1, description="train on this fraction of the EI questions "
                                 "(a fixed, nested subset: the data-efficiency study)")
    probe_rules: list[str] | None = Field(None, description="train on probes of these rules only; default: the ten "
                                          "EI rules (an augmentation such as RP only when named)")


class TrainingRun(TrainingSettings):
    """A training stage's files, which a run's runner fills: the starting model, the EI data, the output folder."""

    model: ModelName = Field(description="starting model: id, folder or name (SFT: the base student; train: the "
                             "SFT checkpoint)")
    ei_data: Path = Field(description="ei.jsonl written by `exgrpo probe` (or its output folder)")
    output_dir: Path

    def ei_path(self) -> Path:
        return self.ei_data / "ei.jsonl" if self.ei_data.is_dir() else self.ei_data


class SFTSettings(TrainingSettings):
    """The SFT warm-up's settings (a run's `sft` section)."""

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


class SFTStageConfig(SFTSettings, TrainingRun):
    """`exgrpo sft`: supervised warm-up on the EI data (teacher responses; loss on assistant tokens only)."""

    output_dir: Path = Path("runs/sft")


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


class PassRateSettings(StrictModel):
    """(ours) The paper's difficulty filter (Eq. 2) applied to the RL questions: before training, the starting
    model answers each question `samples` times; RL trains only on questions whose pass rate lies strictly
    between min_rate and max_rate (defaults: solved at least once and missed at least once), the groups that
    carry a reward spread, hence a gradient."""

    enabled: bool = Field(False, description="measure pass rates under the starting model and keep the questions "
                          "it solves sometimes (output_dir/pass_rates.jsonl, resumable)")
    samples: int = Field(8, ge=2, description="sampled answers per question, at the stage's temperature and budget")
    min_rate: float = Field(0.0, ge=0, lt=1, description="keep questions with a pass rate above this (exclusive)")
    max_rate: float = Field(1.0, gt=0, le=1, description="keep questions with a pass rate below this (exclusive)")
    batch_size: int = Field(64, gt=0, description="rows decoded at once while sampling the answers")

    @model_validator(mode="after")
    def _rates_ordered(self) -> PassRateSettings:
        if self.min_rate >= self.max_rate:
            raise ValueError(f"min_rate ({self.min_rate}) must be below max_rate ({self.max_rate})")
        return self

    def keeps(self, rate: float) -> bool:
        return self.min_rate < rate < self.max_rate


class RLSettings(TrainingSettings):
    """What the RL stage's methods share: ExGRPO and on-policy distillation both sample the student's answers."""

    learning_rate: float = Field(1e-5, gt=0)
    max_steps: int = Field(100, gt=0)
    max_new_tokens: int = Field(128, gt=0, description="student tokens per turn (distillation: per sampled answer)")
    temperature: float = Field(1.0, gt=0)


# Sampling arguments that would set a second per-turn limit next to `max_new_tokens` (ExGRPOConfig.max_turn_tokens).
TURN_LENGTH_KWARGS = ("max_tokens", "max_new_tokens", "max_length")


class TrainSettings(RLSettings):
    """ExGRPO's settings (a run's `train` section; its default method)."""

    method: Literal["exgrpo"] = Field("exgrpo", description="exgrpo (also vanilla GRPO: k=0, no B rollouts) or distill")
    max_new_tokens: Annotated[int, Field(gt=0)] | Literal["auto"] = Field(
        128, description="student tokens per probe turn; auto: from the teacher's responses in the EI data, in the "
        "starting model's tokenizer (99th percentile + 25 %, a multiple of 16), resolved when training starts")
    max_answer_tokens: int | None = Field(
        None, gt=0, description="student tokens of the final answer (the turn the reward judges); null: the turn "
        "budget (`exgrpo train`), a run's eval.max_new_tokens (`exgrpo run`); with auto never below either")
    exgrpo: ExGRPOSettings = Field(default_factory=ExGRPOSettings)
    questions_per_step: int = Field(2, gt=0, description="questions per device per step (x G_A + G_B rollouts)")
    update_batch_size: int | None = Field(None, gt=0, description="rollouts per forward and backward of the update "
                                          "(a micro-batch; the step's peak memory grows with it); default: the "
                                          "largest divisor of a step's rollouts up to 4. A step's rollouts are "
                                          "still generated together")
    pass_rate: PassRateSettings = Field(default_factory=PassRateSettings, description="(ours) train only on "
                                        "questions the starting model solves sometimes (a pass-rate pre-pass)")
    beta: float = Field(0.04, ge=0, description="KL penalty to the reference (the starting SFT model)")
    epsilon: float = Field(0.2, gt=0, description="clipping of the GRPO surrogate")
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field(
        "grpo", description="TRL's normalisation of the token losses; grpo (METHOD): each rollout's mean over its "
        "own trained tokens, then the mean over rollouts, so a long A dialogue weighs as much as a short B one; "
        "dapo / bnpo: token-level (longer rollouts weigh more); dr_grpo: a constant")
    generation_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra sampling arguments (top_p...)")
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"

    def rollouts_per_question(self) -> int:
        return self.exgrpo.rollouts_full + self.exgrpo.rollouts_partial

    def update_rows(self) -> int:
        """Rollouts per micro-batch of the update. Why 4 by default: SmolLM2-135M's full ExGRPO step (4 questions
        x (4 + 4) rollouts, k = 2, 160-token turns, full fine-tuning) peaked at 9.6 GiB in micro-batches of 8 and
        7.0 GiB in micro-batches of 4, 10 % slower (benchmarks/exgrpo_memory.py)."""
        if self.update_batch_size is not None:
            return self.update_batch_size
        rows = self.questions_per_step * self.rollouts_per_question()
        return max(size for size in range(1, min(rows, 4) + 1) if rows % size == 0)

    @model_validator(mode="after")
    def _batch_from_questions(self) -> TrainSettings:
        if "per_device_batch_size" in self.model_fields_set:
            raise ValueError("per_device_batch_size is not read by `exgrpo train`: a batch is questions_per_step x "
                             "(rollouts_full + rollouts_partial) rollouts; set questions_per_step instead")
        rows = self.questions_per_step * self.rollouts_per_question()
        if self.update_batch_size is not None and rows % self.update_batch_size:
            raise ValueError(f"update_batch_size ({self.update_batch_size}) must divide a step's rollouts: "
                             f"questions_per_step x (rollouts_full + rollouts_partial) = {rows}")
        clashing = [name for name in TURN_LENGTH_KWARGS if name in self.generation_kwargs]
        if clashing:
            raise ValueError(f"generation_kwargs sets {', '.join(clashing)}: a turn's token budget is max_new_tokens "
                             "(student tokens per turn), which every sampler uses; set that instead")
        return self


class TrainConfig(TrainSettings, TrainingRun):
    """`exgrpo train`: ExGRPO on TRL's GRPOTrainer, starting from (and KL-anchored to) the SFT checkpoint."""

    output_dir: Path = Path("runs/exgrpo")


class DistillSettings(RLSettings):
    """On-policy distillation (GKD, Agarwal et al. 2024) with TRL's DistillationTrainer: the student samples
    answers to the EI questions and learns the teacher model's next-token distribution on them. A baseline;
    the teacher model must share the student's tokenizer."""

    method: Literal["distill"]
    teacher_model: ModelName = Field(description="teacher model (id or folder) with the student's vocabulary")
    beta: float = Field(0.5, ge=0, le=1, description="generalised JSD: 0 forward KL, 0.5 JSD, 1 reverse KL")


class DistillStageConfig(DistillSettings, TrainingRun):
    """The on-policy distillation stage (a run's `train` section with `method: distill`)."""

    output_dir: Path = Path("runs/distill")

