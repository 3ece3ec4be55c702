"""ExGRPOConfig, the trainer's one config: it carries the method's knobs and the turn budgets, and every
sampler (the continuous dialogue loop, `generate` per turn, vLLM) cuts a probe turn at the per-turn budget and
the final answer at the answer budget."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from trl import GRPOConfig

from exgrpo.config import ExGRPOSettings, TrainConfig
from exgrpo.rl.budgets import TurnBudgets
from exgrpo.rl.config import ExGRPOConfig
from exgrpo.rl.rollout import Rollout, TransformersSampler, VLLMSampler, plan_rollouts, roll_out
from exgrpo.rl.train import build_trainer, grpo_arguments
from exgrpo.rl.trainer import ExGRPOTrainer
from exgrpo.training.dialogues import load_ei_questions

KNOBS = {"k": 3, "k_partial": 1, "rollouts_full": 3, "rollouts_partial": 2, "dsu_delta": 0.25, "dsu_nu": 1.5,
         "aux_weight": 0.3, "format_reward": 0.2, "per_scenario_advantages": True}


def train_config(toy_sft_model: tuple[Path, Path], tmp_path: Path, turn_tokens: int, answer_tokens: int | None = None,
                 **exgrpo: Any) -> TrainConfig:
    model, ei = toy_sft_model
    return TrainConfig(model=str(model), ei_data=ei, output_dir=tmp_path, max_steps=1, learning_rate=1e-3,
                       report_to=["none"], max_new_tokens=turn_tokens, max_answer_tokens=answer_tokens,
                       exgrpo=exgrpo or {"k": 3, "k_partial": 1, "rollouts_full": 2, "rollouts_partial": 2})


def final_and_probe_turns(rollouts: list[Rollout]) -> tuple[list[list[int]], list[list[int]]]:
    """Every rollout's last student turn (its answer to Q), and all its turns before (answers to probes)."""
    turns = [student_turns(r) for r in rollouts]
    assert [len(t) for t in turns] == [len(r.answers) for r in rollouts]
    return [t[-1] for t in turns], [turn for t in turns for turn in t[:-1]]


def student_turns(rollout: Rollout) -> list[list[int]]:
    """The student's tokens in each of its turns (runs of trained tokens)."""
    turns, turn = [], []
    for token, trained in zip(rollout.completion_ids, rollout.env_mask, strict=True):
        if trained:
            turn.append(token)
        elif turn:
            turns.append(turn)
            turn = []
    return [*turns, turn] if turn else turns


def test_the_config_carries_the_methods_knobs_and_both_budgets(toy_sft_model, tmp_path: Path) -> None:
    args = grpo_arguments(train_config(toy_sft_model, tmp_path, turn_tokens=24, **KNOBS))
    assert isinstance(args, ExGRPOConfig) and isinstance(args, GRPOConfig)
    assert {name: getattr(args, name) for name in KNOBS} == KNOBS
    assert args.num_generations == 5 and args.partial_probes() == 1
    assert args.max_turn_tokens == 24 and args.max_answer_tokens == 24  # no answer budget: the turn budget
    assert args.max_completion_length == (3 + 1) * 24  # a whole dialogue: k + 1 turns
    longer = grpo_arguments(train_config(toy_sft_model, tmp_path, turn_tokens=24, answer_tokens=100, **KNOBS))
    assert (longer.max_turn_tokens, longer.max_answer_tokens) == (24, 100)
    assert longer.max_completion_length == 3 * 24 + 100  # k probe turns and the answer
    # Defaults a YAML leaves out arrive too (k_partial None = k // 2).
    default = grpo_arguments(train_config(toy_sft_model, tmp_path, turn_tokens=8, k=4, rollouts_full=2,
                                          rollouts_partial=1))
    assert default.method_settings() == ExGRPOSettings(k=4, rollouts_full=2, rollouts_partial=1).model_dump()
    assert default.partial_probes() == 2 and default.max_completion_length == 5 * 8


@pytest.mark.parametrize(("changes", "message"), [
    ({"k_partial": 3}, "k_partial"),
    ({"max_completion_length": 4 * 16 - 1}, "max_completion_length"),
    ({"num_generations": 6}, "num_generations"),
    ({"generation_kwargs": {"max_tokens": 9}}, "max_turn_tokens"),
    ({"max_turn_tokens": 0}, "max_turn_tokens"),
    ({"max_answer_tokens": 0}, "max_answer_tokens"),
    ({"max_answer_tokens": 40, "max_completion_length": 3 * 16 + 39}, "max_answer_tokens \\(40\\)"),
])
def test_a_config_built_in_code_is_checked_like_a_yaml(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    values = {"output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "k": 3, "k_partial": 1, "rollouts_full": 2,
              "rollouts_partial": 2, "num_generations": 4, "max_turn_tokens": 16, "report_to": []}
    assert ExGRPOConfig(**values).max_completion_length == 4 * 16
    assert ExGRPOConfig(**values | {"max_answer_tokens": 40}).max_completion_length == 3 * 16 + 40
    with pytest.raises(ValueError, match=message):
        ExGRPOConfig(**values | changes)


def test_a_yaml_cannot_set_a_second_turn_budget(toy_sft_model, tmp_path: Path) -> None:
    from pydantic import ValidationError

    model, ei = toy_sft_model
    with pytest.raises(ValidationError, match="generation_kwargs sets max_new_tokens: a turn's token budget"):
        TrainConfig(model=str(model), ei_data=ei, output_dir=tmp_path, generation_kwargs={"max_new_tokens": 9})


def test_the_trainer_reads_its_settings_from_args_only(toy_sft_model, tmp_path: Path) -> None:
    trainer = build_trainer(train_config(toy_sft_model, tmp_path, turn_tokens=6, **KNOBS))
    assert trainer.args.aux_weight == 0.3 and trainer.args.max_turn_tokens == 6
    assert trainer.reward_weights.tolist() == pytest.approx([1.0, 1.0, 0.2])  # format_reward, from args
    assert not hasattr(trainer, "exgrpo") and not hasattr(trainer, "max_new_tokens")
    assert trainer.make_sampler().budgets == TurnBudgets(probe=6, answer=6)
    plain = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], num_generations=4)
    with pytest.raises(TypeError, match="ExGRPOConfig"):
        ExGRPOTrainer(model=trainer.model, args=plain, questions=[], processing_class=trainer.processing_class)


@pytest.mark.parametrize("decoding", ["dialogues", "turns"])
def test_a_turn_budget_of_n_tokens_cuts_each_turn_at_n(toy_sft_model, tmp_path: Path, decoding: str) -> None:
    """A turn ends at a stop token within the budget, or is cut at exactly the budget: 3 tokens, then 5 (read
    from the trainer's args, not a constant), in the continuous dialogue loop and in `generate` per turn."""
    _, ei = toy_sft_model
    questions = load_ei_questions(ei)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(4)]
    for budget in (3, 5):
        trainer = build_trainer(train_config(toy_sft_model, tmp_path, turn_tokens=budget))
        plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, trainer.args, group_offset=0, step=0)
        sampler = TransformersSampler(trainer, decoding=decoding)
        with sampler.ready():
            assert sampler.decodes_dialogues == (decoding == "dialogues")
            rollouts = roll_out(plans, trainer.chat, sampler, max_turns=trainer.args.k + 1)
        turns = [turn for r in rollouts for turn in student_turns(r)]
        assert len(turns) == sum(len(r.answers) for r in rollouts)
        cut = [turn for turn in turns if turn[-1] not in sampler.eos_ids]
        assert len(cut) == sum(r.cut_turns for r in rollouts) > 0, "some answers must outrun the budget"
        assert {len(turn) for turn in cut} == {budget}
        assert max(len(turn) for turn in turns) == budget


@pytest.mark.parametrize("decoding", ["dialogues", "turns", "turns-cached"])
def test_probe_turns_are_cut_at_the_turn_budget_and_the_answer_at_its_own(toy_sft_model, tmp_path: Path,
                                                                          decoding: str) -> None:
    """3 tokens per probe turn, 7 for the final answer: in the continuous loop (each dialogue's budget changes
    at its last turn) and in `generate` per turn, with and without the KV cache kept (turn 2 holds A rows'
    probe turns beside B rows' answers: one call, each row cut at its own budget)."""
    _, ei = toy_sft_model
    questions = load_ei_questions(ei)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(4)]
    trainer = build_trainer(train_config(toy_sft_model, tmp_path, turn_tokens=3, answer_tokens=7))
    assert trainer.args.max_completion_length == 3 * 3 + 7
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, trainer.args, group_offset=0, step=0)
    sampler = TransformersSampler(trainer, decoding=decoding)
    with sampler.ready():
        assert sampler.decodes_dialogues == (decoding == "dialogues")
        rollouts = roll_out(plans, trainer.chat, sampler, max_turns=trainer.args.k + 1)
    assert {len(r.answers) for r in rollouts} == {2, 4}  # B answers Q at turn 2, A at turn 4
    finals, probes = final_and_probe_turns(rollouts)
    assert max(len(turn) for turn in probes) == 3
    assert {len(turn) for turn in probes if turn[-1] not in sampler.eos_ids} == {3}
    assert max(len(turn) for turn in finals) == 7, "final answers run past the probe budget, up to their own"
    assert {len(turn) for turn in finals if turn[-1] not in sampler.eos_ids} == {7}
    assert sum(r.cut_turns for r in rollouts) == sum(turn[-1] not in sampler.eos_ids for turn in finals + probes)


class StandInVLLM:
    """vLLM for TRL's generation, both ways TRL drives it: colocate (`LLM.generate` with SamplingParams) and
    server (`VLLMClient.generate` with keyword arguments). It answers each prompt with `max_tokens` copies of
    one token (vLLM stops a sequence at max_tokens) and records the sampling settings it is given."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.params: list[Any] = []
        self.prompts: list[int] = []  # the number of prompts of each call

    def _answer(self, max_tokens: int) -> tuple[list[int], list[Any]]:
        return [self.token] * max_tokens, [{self.token: SimpleNamespace(logprob=-0.5, rank=1)}] * max_tokens

    def generate(self, prompts: list[Any], sampling_params: Any = None, use_tqdm: bool = False,
                 **server_params: Any) -> Any:
        self.prompts.append(len(prompts))
        if sampling_params is None:  # the server client: prompts are token-id lists, settings keyword arguments
            self.params.append(SimpleNamespace(**server_params, **server_params["generation_kwargs"]))
            ids, _ = self._answer(server_params["max_tokens"])
            return {"prompt_ids": prompts, "completion_ids": [ids for _ in prompts],
                    "logprobs": [[[-0.5]] * len(ids) for _ in prompts]}
        self.params.append(sampling_params)
        ids, logprobs = self._answer(sampling_params.max_tokens)
        return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"],
                                outputs=[SimpleNamespace(token_ids=ids, logprobs=logprobs)]) for p in prompts]


def standin_vllm_generation(engine: StandInVLLM, mode: str, trainer: Any) -> Any:
    """TRL's own VLLMGeneration, its engine replaced (vLLM is not installed here)."""
    from trl.generation.vllm_generation import VLLMGeneration

    args = trainer.args
    generation = object.__new__(VLLMGeneration)  # its __init__ would start vLLM or connect to its server
    generation.__dict__.update(
        mode=mode, llm=engine, vllm_client=engine, model=trainer.model, accelerator=trainer.accelerator,
        tensor_parallel_size=1, enable_sleep_mode=False, _llm_weights_sleeping=False, structured_outputs_regex=None,
        logprobs=0, generation_kwargs={}, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        min_p=args.min_p, repetition_penalty=args.repetition_penalty, max_completion_length=args.max_completion_length)
    return generation


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_vllm_samples_each_turn_with_the_turn_budget(toy_sft_model, tmp_path: Path, monkeypatch, mode: str) -> None:
    import trl.generation.vllm_generation as trl_vllm

    # vLLM's SamplingParams, recorded as the keyword arguments TRL builds it from.
    monkeypatch.setattr(trl_vllm, "SamplingParams", lambda **kwargs: SimpleNamespace(**kwargs), raising=False)
    trainer = build_trainer(train_config(toy_sft_model, tmp_path, turn_tokens=7, answer_tokens=11))
    assert trainer.args.max_completion_length == 3 * 7 + 11  # what TRL alone would send as max_tokens
    word = trainer.processing_class("cat", add_special_tokens=False)["input_ids"][-1]
    engine = StandInVLLM(word)
    trainer.vllm_generation = standin_vllm_generation(engine, mode, trainer)
    sampler = VLLMSampler(trainer)
    _, ei = toy_sft_model
    questions = load_ei_questions(ei)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(4)]
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, trainer.args, group_offset=0, step=0)
    if mode == "server":  # collective: another process, say, has rows under both budgets at every turn
        import accelerate.utils

        monkeypatch.setattr(accelerate.utils, "gather_object", lambda needed: [*needed, 7, 11])
    with sampler.ready():
        rollouts = roll_out(plans, trainer.chat, sampler, max_turns=trainer.args.k + 1)
    # One vLLM call per turn and distinct budget: turn 2 asks A rows' probes and B rows' answers. Server
    # generation is collective: there every process makes a call for each budget any process needs.
    calls = [(params.max_tokens, asked) for params, asked in zip(engine.params, engine.prompts, strict=True)]
    a_rows, b_rows = 2 * len(questions), 2 * len(questions)
    asked_per_turn = [[(7, a_rows + b_rows)], [(7, a_rows), (11, b_rows)], [(7, a_rows)], [(11, a_rows)]]
    assert [call for call in calls if call[1]] == [call for turn in asked_per_turn for call in turn]
    if mode == "server":
        assert [budget for budget, _ in calls] == [7, 11] * (trainer.args.k + 1)
    else:  # a lone colocated vLLM asks nothing in vain
        assert all(asked for _, asked in calls)
    assert calls[-1] == (11, a_rows)  # the final call: A rows' answers to Q, under the answer budget
    assert all(params.stop_token_ids == sampler.eos_ids for params in engine.params)
    finals, probes = final_and_probe_turns(rollouts)
    assert {len(turn) for turn in probes} == {7} and {len(turn) for turn in finals} == {11}
    assert all(lp == -0.5 for r in rollouts for lp, m in zip(r.logprobs, r.env_mask, strict=True) if m)
    assert trainer.vllm_generation.max_completion_length == 3 * 7 + 11  # TRL's own setting is left as it was
