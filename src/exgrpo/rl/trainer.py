"""The ExGRPO trainer: TRL's GRPOTrainer with probe-dialogue rollouts, the DSU bonus and an auxiliary SFT loss.

One optimizer step, top to bottom (TRL calls each part as an override; a `Generation` carries what passes):
1. `_prepare_inputs`, once per step: TRL's `_generate_and_score_completions` on the step's questions, which calls
   a. `_rollout` (TRL's `rollout_func`): scenario A and B probe dialogues (rollout.py), all rows together;
      starts the step's `Generation` with the teacher-forced probe dialogues of the aux loss;
   b. `_calculate_rewards`: the outcome reward, then the DSU bonus on the gathered groups (rewards.dsu_column,
      a pure function), into the `Generation`;
   c. TRL: group-normalised advantages over all G_A + G_B rollouts of a question (or, as an option, per
      scenario: `_generate_and_score_completions`), and the reference model's log-probabilities;
   then cuts the step's rollouts into length-sorted micro-batches (micro_batches.py).
2. `compute_loss`, once per micro-batch: TRL's clipped surrogate over the student's own tokens (`env_mask` keeps
   injected probe turns out) and the KL to the reference (the starting SFT model), + lambda_aux x the NLL of the
   teacher's probe responses (this micro-batch's share of the Generation's aux examples); the micro-batches'
   gradients add up to the step's.
What TRL does unchanged: the surrogate, KL, advantages, logging, checkpoints, accelerate/DeepSpeed, vLLM.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOTrainer

from exgrpo.errors import DataError
from exgrpo.rl.config import ExGRPOConfig
from exgrpo.rl.micro_batches import micro_batches
from exgrpo.rl.rewards import (
    FULL,
    PARTIAL,
    GroupDSU,
    dsu_bonus_reward,
    dsu_column,
    format_reward,
    outcome_reward,
    per_scenario_advantages,
)
from exgrpo.rl.rollout import Rollout, TransformersSampler, VLLMSampler, plan_rollouts, roll_out
from exgrpo.training.dialogues import ChatTokens, EIQuestion, dialogue_messages

logger = logging.getLogger(__name__)
# rollout_func is how TRL means multi-turn rollouts to be built; its "experimental" notice is noise to users.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def questions_dataset(questions: list[EIQuestion]) -> Any:
    """One row per question: TRL's conversational `prompt` plus the columns the reward functions read."""
    import datasets

    return datasets.Dataset.from_list([{
        "prompt": [{"role": "user", "content": q.prompt}], "question_id": q.example.id, "answer": q.example.answer,
        "answer_type": str(q.example.answer_type), "choices": list(q.example.choices) if q.example.choices else None,
    } for q in questions])


def questions_by_prompt(questions: list[EIQuestion]) -> dict[str, EIQuestion]:
    """TRL hands rollouts the prompt text alone, so it must name one question: two questions with the same
    prompt (and perhaps different answers or probes) are refused rather than silently merged."""
    by_prompt: dict[str, EIQuestion] = {}
    for question in questions:
        other = by_prompt.setdefault(question.prompt, question)
        if other is not question:
            raise DataError(f"questions {other.example.id!r} and {question.example.id!r} have the same prompt text; "
                            "ExGRPO identifies a question by its prompt: remove or reword one of them")
    return by_prompt


class DSUWatch:
    """Warns when the DSU bonus fires more and more while scenario-A accuracy does not rise: the signature
    of a policy that games the comparison (e.g. by failing B on purpose) instead of reasoning better."""

    def __init__(self, window: int = 20, rise: float = 0.15) -> None:
        self.history: deque[tuple[float, float]] = deque(maxlen=window)
        self.rise = rise

    def update(self, fired_rate: float, accuracy_full: float) -> bool:
        self.history.append((fired_rate, accuracy_full))
        if len(self.history) < self.history.maxlen:
            return False
        half = len(self.history) // 2
        early, late = list(self.history)[:half], list(self.history)[half:]
        mean = lambda rows, i: sum(row[i] for row in rows) / len(rows)  # noqa: E731
        return mean(late, 0) - mean(early, 0) >= self.rise and mean(late, 1) <= mean(early, 1)


AuxExample = tuple[list[int], list[int]]  # token ids, labels (-100 but on the teacher's probe responses)


@dataclass
class Generation:
    """What one generation (a step's rollouts) hands from the rollout to the rewards, the advantages and the
    loss, which TRL calls as separate overrides."""

    aux_examples: list[AuxExample] = field(default_factory=list)  # set by the rollout
    rewards: torch.Tensor | None = None  # the gathered reward table, DSU column filled (set with the rewards)
    scenarios: list[str] = field(default_factory=list)
    groups: list[GroupDSU] = field(default_factory=list)

    def aux_chunk(self, micro_step: int, micro_steps: int) -> list[AuxExample]:
        """Micro-step `micro_step`'s share of the aux examples: ceil(n / micro_steps) of them, in order; a later
        micro-step may get none. Each pass over the generation's micro-steps (num_iterations > 1 reuses a
        generation) sees every example once."""
        per_step = -(-len(self.aux_examples) // max(micro_steps, 1))
        index = micro_step % max(micro_steps, 1)
        return self.aux_examples[index * per_step : (index + 1) * per_step]


class ExGRPOTrainer(GRPOTrainer):
    """All settings come from `args` (an ExGRPOConfig): TRL's, the method's knobs and the per-turn budget."""

    args: ExGRPOConfig

    def __init__(self, model: Any, args: ExGRPOConfig, questions: list[EIQuestion], processing_class: Any = None,
                 peft_config: Any = None, callbacks: list[Any] | None = None) -> None:
        if not isinstance(args, ExGRPOConfig):
            raise TypeError(f"ExGRPOTrainer needs an ExGRPOConfig (exgrpo.rl.config), not {type(args).__name__}: "
                            "it carries the method's knobs and the per-turn budget")
        self.questions_by_prompt = questions_by_prompt(questions)
        reward_funcs: list[Any] = [outcome_reward, dsu_bonus_reward]
        weights = [1.0, 1.0]
        if args.format_reward > 0:
            reward_funcs.append(format_reward)
            weights.append(args.format_reward)
        args.reward_weights = weights
        self.generation = Generation()
        self._aux_losses: list[torch.Tensor] = []
        self.dsu_watch = DSUWatch()
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=questions_dataset(questions),
                         processing_class=processing_class, peft_config=peft_config, callbacks=callbacks,
                         rollout_func=self._rollout)
        self.chat = ChatTokens(self.processing_class)

    # ------------------------------------------------------------ rollouts (TRL's rollout_func)

    def _rollout(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        offset = self.accelerator.process_index * len(prompts)
        plans = plan_rollouts(prompts, self.questions_by_prompt, self.args, offset, self.state.global_step,
                              seed=self.args.seed)
        sampler = self.make_sampler()
        started = time.perf_counter()
        with sampler.ready():
            rollouts = roll_out(plans, self.chat, sampler, max_turns=self.args.k + 1)
        self._log_rollout_speed(rollouts, time.perf_counter() - started)
        self.generation = Generation(aux_examples=self.aux_examples(rollouts))
        self._log_turn_lengths(rollouts)
        return {
            "prompt_ids": [r.prompt_ids for r in rollouts], "completion_ids": [r.completion_ids for r in rollouts],
            "logprobs": [r.logprobs for r in rollouts], "env_mask": [r.env_mask for r in rollouts],
            "final_answer": [r.answers[-1] for r in rollouts], "scenario": [r.plan.scenario for r in rollouts],
            "num_probes": [len(r.plan.probes) for r in rollouts],
        }

    def make_sampler(self) -> Any:
        """How assistant turns are sampled: vLLM when TRL runs it, else `model.generate`."""
        return VLLMSampler(self) if self.use_vllm else TransformersSampler(self)

    def _log_turn_lengths(self, rollouts: list[Rollout]) -> None:
        turns = max(sum(len(r.answers) for r in rollouts), 1)
        metrics = self._metrics["train"]
        metrics["exgrpo/tokens_per_turn"].append(sum(sum(r.env_mask) for r in rollouts) / turns)
        # TRL's completions/clipped_ratio cannot see these: a cut turn is closed by an injected turn end.
        metrics["exgrpo/truncated_turns"].append(sum(r.cut_turns for r in rollouts) / turns)

    def _log_rollout_speed(self, rollouts: list[Rollout], seconds: float) -> None:
        """What diagnostics.py turns into rollout and update tokens/s (this process's share of the step)."""
        metrics = self._metrics["train"]
        metrics["exgrpo/rollout_seconds"].append(seconds)
        metrics["exgrpo/generated_tokens"].append(float(sum(sum(r.env_mask) for r in rollouts)))
        metrics["exgrpo/sequence_tokens"].append(float(sum(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)))

    # ------------------------------------------------------------ rewards: the DSU bonus on gathered groups

    def _calculate_rewards(self, inputs: list[dict[str, Any]], prompts: list[Any], completions: list[Any],
                           completion_ids_list: list[Any]) -> torch.Tensor:
        from accelerate.utils import gather_object

        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        scenarios = gather_object([x["scenario"] for x in inputs])
        probes = gather_object([x["num_probes"] for x in inputs])
        outcome = self.reward_func_names.index(outcome_reward.__name__)
        bonus, groups = dsu_column(rewards[:, outcome].nan_to_num(0.0).tolist(), scenarios, probes,
                                   self.num_generations, self.args.dsu_delta, self.args.dsu_nu)
        rewards[:, self.reward_func_names.index(dsu_bonus_reward.__name__)] = torch.tensor(bonus, dtype=rewards.dtype)
        self._log_dsu(groups, rewards[:, outcome], scenarios)
        self.generation.rewards, self.generation.scenarios, self.generation.groups = rewards.clone(), scenarios, groups
        return rewards

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        """TRL's buffering of a generation (rolled out and scored once per `steps_per_generation` micro-steps),
        with the micro-batches cut by length and stripped of padding (micro_batches.py) instead of shuffled."""
        if not self.model.training:
            return super()._prepare_inputs(generation_batch)
        every = self.args.steps_per_generation * self.num_iterations
        if self._step % every == 0 or self._buffered_inputs is None:
            scored = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = micro_batches(scored, self.args.steps_per_generation)
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, batch_size: int | None = None,
                                           compute_entropy: bool = False, compute_aux_loss: bool = False,
                                           **multimodal: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """TRL's scoring; a whole generation scored without gradients (the reference model's log-probabilities)
        goes by chunks of rows of similar length, each cut to the columns its rows use (TRL pads every chunk to
        the generation's longest dialogue). The same values, at the same positions."""
        if torch.is_grad_enabled() or compute_aux_loss or any(v is not None for v in multimodal.values()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        rows, width = input_ids.shape
        logps = torch.zeros(rows, logits_to_keep, device=input_ids.device)
        entropies = torch.zeros(rows, logits_to_keep, device=input_ids.device) if compute_entropy else None
        order = torch.argsort(attention_mask.sum(dim=1), descending=True, stable=True)
        for chunk in order.split(batch_size or rows):
            used = attention_mask[chunk].any(dim=0).nonzero()
            first = min(int(used[0]), width - logits_to_keep)  # prompts are left-padded, completions right-padded
            last = max(int(used[-1]) + 1, width - logits_to_keep + 1)
            keep = logits_to_keep - (width - last)
            chunk_logps, chunk_entropies, _ = super()._get_per_token_logps_and_entropies(
                model, input_ids[chunk, first:last], attention_mask[chunk, first:last], keep,
                compute_entropy=compute_entropy)
            logps[chunk, :keep] = chunk_logps.float()
            if entropies is not None:
                entropies[chunk, :keep] = chunk_entropies.float()
        return logps, entropies, None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.args.per_scenario_advantages:
            rewards, scenarios = self.generation.rewards, self.generation.scenarios
            total = (rewards * self.reward_weights.to(rewards.device).unsqueeze(0)).nansum(dim=1).tolist()
            advantages = per_scenario_advantages(total, scenarios, self.num_generations)
            start = self.accelerator.process_index * len(inputs)
            output["advantages"] = torch.tensor(advantages[start : start + len(inputs)],
                                                dtype=output["advantages"].dtype, device=output["advantages"].device)
        return output

    def _log_dsu(self, groups: list[Any], outcomes: torch.Tensor, scenarios: list[str]) -> None:
        metrics = self._metrics["train" if self.model.training else "eval"]
        for name, scenario in (("accuracy_full", FULL), ("accuracy_partial", PARTIAL)):
            values = [o for o, s in zip(outcomes.tolist(), scenarios, strict=True) if s == scenario]
            if values:
                metrics[f"exgrpo/{name}"].append(sum(values) / len(values))
        fired = sum(g.fired for g in groups) / len(groups)
        metrics["exgrpo/p_full"].append(sum(g.p_full for g in groups) / len(groups))
        metrics["exgrpo/p_partial"].append(sum(g.p_partial for g in groups) / len(groups))
        metrics["exgrpo/dsu_fired"].append(fired)
        accuracy_full = sum(g.p_full for g in groups) / len(groups)
        if self.args.dsu_delta > 0 and self.dsu_watch.update(fired, accuracy_full):
            logger.warning("DSU bonus fires more often (%.2f now) while scenario-A accuracy is not rising: "
                           "possible reward hacking; check held-out accuracy (lower dsu_delta or raise dsu_nu)", fired)
            metrics["exgrpo/dsu_hacking_warning"].append(1.0)

    # ------------------------------------------------------------ the auxiliary SFT loss

    def aux_examples(self, rollouts: list[Rollout]) -> list[AuxExample]:
        """Teacher-forced dialogues of this generation's questions (their A probes), labels on the teacher's
        probe responses only; consumed in chunks by the micro-steps that train on this generation."""
        if self.args.aux_weight <= 0:
            return []
        seen, examples = set(), []
        for rollout in rollouts:
            plan = rollout.plan
            if plan.scenario != FULL or not plan.probes or plan.question.example.id in seen:
                continue
            seen.add(plan.question.example.id)
            # The probe turns only: the question turn that follows has no labels, and in a causal model it
            # cannot change the loss of the turns before it; forwarding it would only cost time.
            messages = dialogue_messages(plan.probes, plan.question)[: 2 * len(plan.probes)]
            examples.append(self.chat.teacher_forced(messages, train_turns=range(len(plan.probes))))
        return examples

    def aux_sft_loss(self, model: Any, examples: list[AuxExample]) -> torch.Tensor:
        """Mean NLL of the teacher's probe responses (token-level, over the batch of dialogues)."""
        width = max(len(ids) for ids, _ in examples)
        pad = self.processing_class.pad_token_id
        device = self.accelerator.device
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in examples], device=device)
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples], device=device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples], device=device)
        if self.temperature == 1.0:
            # TRL's chunked LM head (its logits are divided by the sampling temperature, hence only at 1): the
            # labelled positions' log-probabilities without the batch x length x vocabulary logits.
            return model(input_ids=input_ids, attention_mask=attention, labels=labels, fused_lm_head=True).loss
        return model(input_ids=input_ids, attention_mask=attention, labels=labels).loss

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.args.aux_weight > 0 and model.training:
            micro_steps = self.args.steps_per_generation
            examples = self.generation.aux_chunk(self._step, micro_steps)
            if examples:
                aux = self.aux_sft_loss(model, examples)
                # Weighted so that an optimizer step adds lambda_aux x the mean of its generations' chunk losses,
                # each chunk by its share of the generation's examples, however they fall into micro-steps (TRL
                # scales the policy loss for accumulation the same way: a step is the sum of its micro-steps).
                share = len(examples) / len(self.generation.aux_examples)
                loss = loss + self.args.aux_weight * aux * share * micro_steps / self.current_gradient_accumulation_steps
                # Kept on the device, detached: an .item() per micro-step would wait for the GPU every time.
                self._aux_losses.append(aux.detach())
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._aux_losses:
            self._metrics["train"]["exgrpo/aux_sft_loss"].append(torch.stack(self._aux_losses).mean().item())
            self._aux_losses = []
        super().log(logs, start_time)
