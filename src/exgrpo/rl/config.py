"""ExGRPOConfig: TRL's GRPOConfig plus the method's knobs and the per-turn token budget, so that the trainer
reads all its settings from one object (its `args`), as TRL's own trainers do.

Three budgets, because a rollout is a dialogue of up to k probe turns and the final answer:
- `max_turn_tokens`: tokens the student may generate in one probe turn (every sampler cuts a turn there);
- `max_answer_tokens`: tokens of the final answer, the turn the outcome reward judges (a run sets it to its
  evaluation's `max_new_tokens`, so that the reward judges answers under the evaluation's cut);
- `max_completion_length` (TRL's): the student tokens of a whole dialogue, k x `max_turn_tokens` +
  `max_answer_tokens` by default. The injected user turns between them are not counted. TRL reads it as
  Dr. GRPO's constant normaliser (`loss_type="dr_grpo"`); ExGRPO's samplers never use it as a generation limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from exgrpo.config import ExGRPOSettings
from exgrpo.config.training import TURN_LENGTH_KWARGS


@dataclass
class ExGRPOConfig(GRPOConfig):
    r"""
    Configuration class for [`exgrpo.rl.trainer.ExGRPOTrainer`]: [`~trl.GRPOConfig`] plus the parameters below
    (METHOD.md, Stage 3). `num_generations` must equal `rollouts_full + rollouts_partial`.

    Parameters:
        k (`int`, *optional*, defaults to `5`): probes in scenario A.
        k_partial (`int` or `None`, *optional*): probes in scenario B; `None` = `k // 2`.
        rollouts_full (`int`, *optional*, defaults to `4`): G_A, scenario-A rollouts per question.
        rollouts_partial (`int`, *optional*, defaults to `4`): G_B, scenario-B rollouts per question.
        dsu_delta (`float`, *optional*, defaults to `0.5`): DSU bonus added to correct A rollouts.
        dsu_nu (`float`, *optional*, defaults to `1.0`): the bonus fires when P_full > nu * P_partial.
        aux_weight (`float`, *optional*, defaults to `0.1`): lambda_aux, weight of the auxiliary SFT loss.
        format_reward (`float`, *optional*, defaults to `0.0`): reward for a parsable final answer.
        per_scenario_advantages (`bool`, *optional*, defaults to `False`): normalise A and B rollouts separately.
        max_turn_tokens (`int`, *optional*, defaults to `128`): student tokens per probe turn.
        max_answer_tokens (`int` or `None`, *optional*): student tokens of the final answer (the last turn);
            `None` = `max_turn_tokens`.
        max_completion_length (`int` or `None`, *optional*): student tokens per dialogue; `None` =
            `k * max_turn_tokens + max_answer_tokens`, and never less than that.
    """

    k: int = field(default=5, metadata={"help": "Probes in scenario A (capped at the question's kept probes)."})
    k_partial: int | None = field(
        default=None, metadata={"help": "Probes in scenario B; None = k // 2. Must be smaller than k."}
    )
    rollouts_full: int = field(default=4, metadata={"help": "G_A: scenario-A rollouts per question."})
    rollouts_partial: int = field(default=4, metadata={"help": "G_B: scenario-B rollouts per question."})
    dsu_delta: float = field(default=0.5, metadata={"help": "DSU bonus added to correct scenario-A rollouts."})
    dsu_nu: float = field(default=1.0, metadata={"help": "The DSU bonus fires when P_full > nu * P_partial."})
    aux_weight: float = field(default=0.1, metadata={"help": "lambda_aux: weight of the auxiliary SFT loss."})
    format_reward: float = field(default=0.0, metadata={"help": "Reward weight for a parsable final answer."})
    per_scenario_advantages: bool = field(
        default=False, metadata={"help": "Normalise the advantages of A and B rollouts separately."}
    )
    max_turn_tokens: int = field(
        default=128, metadata={"help": "Student tokens per probe turn: every sampler cuts such a turn there."}
    )
    max_answer_tokens: int | None = field(
        default=None, metadata={"help": "Student tokens of the final answer (the turn the outcome reward judges); "
                                "None = max_turn_tokens."}
    )
    max_completion_length: int | None = field(
        default=None,
        metadata={"help": "Student tokens of a whole dialogue (injected user turns not counted); None = "
                  "k * max_turn_tokens + max_answer_tokens. Dr. GRPO's normaliser; not a generation limit in ExGRPO."},
    )

    def __post_init__(self) -> None:
        # The same rules as a run's YAML (`train.exgrpo`), so a config built in code is checked alike.
        ExGRPOSettings(**self.method_settings())
        for name in ("max_turn_tokens", "max_answer_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive number of tokens, not {value!r}")
        if self.max_answer_tokens is None:
            self.max_answer_tokens = self.max_turn_tokens
        dialogue = self.k * self.max_turn_tokens + self.max_answer_tokens
        if self.max_completion_length is None:
            self.max_completion_length = dialogue
        elif self.max_completion_length < dialogue:
            raise ValueError(f"max_completion_length ({self.max_completion_length}) bounds a whole dialogue's student "
                             f"tokens: it must hold k = {self.k} probe turns of max_turn_tokens ({self.max_turn_tokens}) "
                             f"and the answer's max_answer_tokens ({self.max_answer_tokens}), at least {dialogue}")
        if self.num_generations is not None and self.num_generations != self.rollouts_full + self.rollouts_partial:
            raise ValueError(f"num_generations ({self.num_generations}) must equal rollouts_full + rollouts_partial "
                             f"({self.rollouts_full} + {self.rollouts_partial})")
        clashing = [name for name in TURN_LENGTH_KWARGS if name in (self.generation_kwargs or {})]
        if clashing:
            raise ValueError(f"generation_kwargs sets {', '.join(clashing)}: the per-turn budget is max_turn_tokens "
                             "(a run's train.max_new_tokens)")
        super().__post_init__()

    def method_settings(self) -> dict[str, object]:
        """The method's knobs, as `ExGRPOSettings` (a run's `train.exgrpo` section) names them."""
        return {name: getattr(self, name) for name in ExGRPOSettings.model_fields}

    def partial_probes(self) -> int:
        return self.k // 2 if self.k_partial is None else self.k_partial
