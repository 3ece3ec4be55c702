"""Probe dialogues: SFT examples, rollout plans, and token masks that cover exactly the student's tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_rl_config import student_turns
from toy_ei import write_toy_ei
from transformers import AutoTokenizer

from exgrpo.config import ExGRPOSettings
from exgrpo.data.prompts import build_prompt
from exgrpo.errors import DataError
from exgrpo.models.tiny import END_OF_TURN
from exgrpo.rl.budgets import TurnBudgets
from exgrpo.rl.rewards import FULL, PARTIAL
from exgrpo.rl.rollout import RolloutPlan, plan_rollouts, roll_out
from exgrpo.training.dialogues import (
    ChatTokens,
    dialogue_messages,
    load_ei_questions,
    sample_probes,
    sft_conversations,
)


@pytest.fixture
def questions(tmp_path: Path):
    return load_ei_questions(write_toy_ei(tmp_path / "ei.jsonl"))


@pytest.fixture
def chat(tiny_model_path: Path) -> ChatTokens:
    return ChatTokens(AutoTokenizer.from_pretrained(tiny_model_path))


# Gemma's chat template: turns close with <end_of_turn> and a newline; the tokenizer's eos is <eos>.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


@pytest.fixture
def gemma_chat(tiny_model_path: Path) -> ChatTokens:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.add_tokens(["<start_of_turn>", "<end_of_turn>"], special_tokens=True)
    tokenizer.add_special_tokens({"eos_token": "<eos>"})
    tokenizer.chat_template = GEMMA_TEMPLATE
    return ChatTokens(tokenizer)


def test_sft_examples_cover_questions_probes_and_dialogues(questions) -> None:
    examples = sft_conversations(questions, include_probes=True, dialogues_per_question=2, dialogue_probes=2)
    assert len(examples) == 8 * (1 + 3 + 2)
    first = examples[0]["messages"]
    assert first == [{"role": "user", "content": questions[0].prompt},
                     {"role": "assistant", "content": "The answer is yes."}]
    dialogue = examples[4]["messages"]
    assert [m["role"] for m in dialogue] == ["user", "assistant"] * 3
    assert dialogue[-2]["content"] == questions[0].prompt
    assert len(sft_conversations(questions, include_probes=False, dialogues_per_question=0, dialogue_probes=2)) == 8


def test_probe_sampling_is_fixed_by_question_and_seed(questions) -> None:
    q = questions[0]
    assert sample_probes(q, 2, "s") == sample_probes(q, 2, "s")
    assert len(sample_probes(q, 5, "s")) == 3  # capped at the kept probes, without replacement
    assert len({p.id for p, _ in sample_probes(q, 3, "s")}) == 3
    draws = {tuple(p.id for p, _ in sample_probes(q, 2, seed)) for seed in range(20)}
    assert len(draws) > 1


def test_plans_split_each_group_into_a_and_b_with_b_a_prefix_of_a(questions) -> None:
    settings = ExGRPOSettings(k=3, k_partial=1, rollouts_full=2, rollouts_partial=2)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions[:2] for _ in range(4)]
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, settings, group_offset=0, step=7)
    assert [p.scenario for p in plans] == [FULL, FULL, PARTIAL, PARTIAL] * 2
    a, b = plans[0], plans[2]
    assert len(a.user_turns) == 4 and len(b.user_turns) == 2
    assert b.probes == a.probes[:1] and a.user_turns[-1] == b.user_turns[-1] == questions[0].prompt
    assert plans[0].probes == plans[1].probes  # one probe sample per question and step
    # A process whose slice starts mid-group (offset 2) continues the group's positions.
    shifted = plan_rollouts(prompts[:2], {q.prompt: q for q in questions}, settings, group_offset=2, step=7)
    assert [p.scenario for p in shifted] == [PARTIAL, PARTIAL]


def test_the_training_seed_changes_the_probe_schedule(questions) -> None:
    settings = ExGRPOSettings(k=2, k_partial=1, rollouts_full=1, rollouts_partial=1)
    by_prompt = {q.prompt: q for q in questions}
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(2)]

    def schedule(seed: int) -> list[list[str]]:
        return [[probe.id for probe, _ in plan.probes] for step in range(6)
                for plan in plan_rollouts(prompts, by_prompt, settings, group_offset=0, step=step, seed=seed)]

    assert schedule(0) == schedule(0)  # fixed by the seed: every process draws the same
    assert schedule(0) != schedule(1) != schedule(2)


class ScriptedSampler:
    """Answers every turn with fixed text, ending with the end-of-turn token (or cut short, without it)."""

    def __init__(self, tokenizer, texts: list[str], close: bool = True, stop_id: int | None = None) -> None:
        self.tokenizer, self.texts, self.close = tokenizer, texts, close
        self.eos_ids = [tokenizer.eos_token_id if stop_id is None else stop_id]
        self.budgets = TurnBudgets(probe=64, answer=64)  # never reached by the scripted texts
        self.turn = 0

    def sample(self, contexts, keys=None, budgets=None):
        text = self.texts[self.turn]
        self.turn += 1
        tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"] + ([self.eos_ids[0]] if self.close else [])
        return [(tokens, [-0.5] * len(tokens)) for _ in contexts]


def test_rollout_mask_covers_exactly_the_students_tokens(questions, chat: ChatTokens) -> None:
    question = questions[0]
    probes = sample_probes(question, 2, "x")
    plan = RolloutPlan(question, FULL, probes, [build_prompt(p) for p, _ in probes] + [question.prompt])
    answers = ["It is small.", "It does not fly.", "The answer is yes."]
    (rollout,) = roll_out([plan], chat, ScriptedSampler(chat.tokenizer, answers), max_turns=3)
    decode = chat.tokenizer.decode
    trained = [t for t, m in zip(rollout.completion_ids, rollout.env_mask, strict=True) if m == 1]
    assert decode(trained) == "".join(f"{a}{END_OF_TURN}" for a in answers)
    injected = [t for t, m in zip(rollout.completion_ids, rollout.env_mask, strict=True) if m == 0]
    assert decode(injected) == "".join(f"\n<|im_start|>user\n{turn}{END_OF_TURN}\n<|im_start|>assistant\n"
                                       for turn in plan.user_turns[1:])
    # prompt + completion is exactly the chat template of the whole dialogue
    messages = [m for turn, answer in zip(plan.user_turns, answers, strict=True)
                for m in ({"role": "user", "content": turn}, {"role": "assistant", "content": answer})]
    whole = chat.tokenizer.apply_chat_template(messages, tokenize=False)
    assert decode(rollout.prompt_ids + rollout.completion_ids) + "\n" == whole
    assert rollout.answers == answers
    assert [lp for lp, m in zip(rollout.logprobs, rollout.env_mask, strict=True) if m] == [-0.5] * len(trained)
    assert len(rollout.logprobs) == len(rollout.completion_ids)


def test_a_turn_cut_by_the_budget_is_closed_with_an_untrained_end_token(questions, chat: ChatTokens) -> None:
    question = questions[0]
    probes = sample_probes(question, 1, "x")
    plan = RolloutPlan(question, FULL, probes, [build_prompt(probes[0][0]), question.prompt])
    (rollout,) = roll_out([plan], chat, ScriptedSampler(chat.tokenizer, ["cut", "short"], close=False), max_turns=2)
    first_answer = len(chat.tokenizer("cut", add_special_tokens=False)["input_ids"])
    assert rollout.completion_ids[first_answer] == chat.turn_end_id and rollout.env_mask[first_answer] == 0
    assert rollout.cut_turns == 2


def test_teacher_forced_labels_are_the_probe_responses_only(questions, chat: ChatTokens) -> None:
    question = questions[0]
    probes = sample_probes(question, 2, "x")
    messages = dialogue_messages(probes, question)
    ids, labels = chat.teacher_forced(messages, train_turns=range(2))
    assert ids == chat.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)[:-1]  # no final "\n"
    learned = chat.tokenizer.decode([t for t in labels if t != -100])
    assert learned == "".join(f"{response}{END_OF_TURN}" for _, response in probes)


def test_malformed_ei_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ei.jsonl"
    path.write_text('{"id": "x", "question": "q"}\n')
    with pytest.raises(DataError, match="ei.jsonl:1: not an EI record"):
        load_ei_questions(path)
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_ei_questions(path)


def test_two_questions_with_one_prompt_are_refused(questions) -> None:
    import dataclasses

    from exgrpo.rl.trainer import questions_by_prompt

    assert len(questions_by_prompt(questions)) == len(questions)
    twin = dataclasses.replace(questions[0], example=dataclasses.replace(questions[0].example, id="twin", answer="no"))
    with pytest.raises(DataError, match=f"{questions[0].example.id!r} and 'twin' have the same prompt text"):
        questions_by_prompt([*questions, twin])


def test_turn_ends_come_from_the_chat_template_not_eos(chat: ChatTokens, gemma_chat: ChatTokens) -> None:
    assert chat.turn_end_id == chat.tokenizer.convert_tokens_to_ids(END_OF_TURN) == chat.tokenizer.eos_token_id
    tokenizer = gemma_chat.tokenizer
    assert gemma_chat.turn_end_id == tokenizer.convert_tokens_to_ids("<end_of_turn>") != tokenizer.eos_token_id
    assert set(gemma_chat.stop_ids()) == {gemma_chat.turn_end_id, tokenizer.eos_token_id}


@pytest.mark.parametrize("close", [True, False])
def test_gemma_style_rollouts_are_the_templates_own_dialogue(questions, gemma_chat: ChatTokens, close: bool) -> None:
    """With Gemma's template a rollout (closed by the model, or cut by the budget and closed for it) renders
    exactly as the template renders the same dialogue: <end_of_turn>, then the newline, then the next turn."""
    question = questions[0]
    probes = sample_probes(question, 2, "x")
    plan = RolloutPlan(question, FULL, probes, [build_prompt(p) for p, _ in probes] + [question.prompt])
    answers = ["It is small.", "It does not fly.", "The answer is yes."]
    sampler = ScriptedSampler(gemma_chat.tokenizer, answers, close=close, stop_id=gemma_chat.turn_end_id)
    (rollout,) = roll_out([plan], gemma_chat, sampler, max_turns=3)
    messages = [m for turn, answer in zip(plan.user_turns, answers, strict=True)
                for m in ({"role": "user", "content": turn}, {"role": "assistant", "content": answer})]
    whole = gemma_chat.tokenizer.apply_chat_template(messages, tokenize=False)
    assert gemma_chat.tokenizer.decode(rollout.prompt_ids + rollout.completion_ids) + "\n" == whole
    assert "<eos>" not in gemma_chat.tokenizer.decode(rollout.completion_ids)
    assert rollout.cut_turns == (0 if close else 3)
    ids, labels = gemma_chat.teacher_forced(messages, train_turns=range(3))
    trained = gemma_chat.tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
    assert trained == "".join(f"{answer}<end_of_turn>" for answer in answers)


def test_both_samplers_stop_on_the_same_set(gemma_chat: ChatTokens) -> None:
    from types import SimpleNamespace

    from exgrpo.rl.rollout import TransformersSampler, VLLMSampler

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[gemma_chat.tokenizer.eos_token_id, 3]))
    trainer = SimpleNamespace(chat=gemma_chat, processing_class=gemma_chat.tokenizer, model=model, args=SimpleNamespace(max_turn_tokens=8),
                              vllm_generation=SimpleNamespace(generation_kwargs={}))
    expected = sorted({gemma_chat.turn_end_id, gemma_chat.tokenizer.eos_token_id, 3})
    assert TransformersSampler(trainer).eos_ids == VLLMSampler(trainer).eos_ids == expected
    assert trainer.vllm_generation.generation_kwargs["stop_token_ids"] == expected  # vLLM's SamplingParams


def test_the_transformers_sampler_asks_for_scores_only_when_trl_reads_them(toy_sft_model, tmp_path: Path) -> None:
    from exgrpo.config import TrainConfig
    from exgrpo.rl.train import build_trainer

    model, ei = toy_sft_model
    trainer = build_trainer(TrainConfig(model=str(model), ei_data=ei, output_dir=tmp_path, max_steps=1, learning_rate=1e-3,
                                        report_to=["none"], max_new_tokens=4,
                                        exgrpo={"k": 1, "rollouts_full": 2, "rollouts_partial": 2}))
    contexts = [trainer.chat.prompt_ids([{"role": "user", "content": "Is a cat small?"}])] * 2
    plain = trainer.make_sampler()
    with plain.ready():
        assert all(set(logprobs) == {0.0} for _, logprobs in plain.sample(contexts))
    trainer.args.off_policy_mask_threshold = 0.5  # TRL's off-policy mask reads the sampling log-probs
    scored = trainer.make_sampler()
    with scored.ready():
        sampled = scored.sample(contexts)
        assert all(logprobs for _, logprobs in sampled) and any(lp < 0 for _, logprobs in sampled for lp in logprobs)
        assert all(lp <= 0 for _, logprobs in sampled for lp in logprobs)
    with pytest.raises(RuntimeError, match="outside"):
        scored.sample(contexts)


def test_rollouts_with_the_kv_cache_kept_between_turns_equal_fresh_generation(toy_sft_model, tmp_path: Path) -> None:
    import torch

    from exgrpo.config import TrainConfig
    from exgrpo.rl.rollout import TransformersSampler
    from exgrpo.rl.train import build_trainer

    model, ei = toy_sft_model
    settings = {"k": 3, "k_partial": 1, "rollouts_full": 2, "rollouts_partial": 2}
    trainer = build_trainer(TrainConfig(model=str(model), ei_data=ei, output_dir=tmp_path, max_steps=1, learning_rate=1e-3,
                                        report_to=["none"], max_new_tokens=8, exgrpo=settings))
    yes = trainer.processing_class("The answer is yes", add_special_tokens=False)["input_ids"][-1]
    trainer.args.off_policy_mask_threshold = 0.5  # the samplers return log-probs: compared below
    questions = load_ei_questions(ei)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(4)]
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, ExGRPOSettings(**settings), group_offset=0, step=0)
    results = {}
    for keep_cache in (False, True):
        # A longer final answer: B rows' answers share turn 2 with A rows' probe turns, each cut at its own budget.
        sampler = TransformersSampler(trainer, max_turn_tokens=5, max_answer_tokens=7,
                                      decoding="turns-cached" if keep_cache else "turns")
        # Every toy answer is "The answer is yes/no.": stopping at "yes" too makes rows end at different times.
        sampler.eos_ids = [*sampler.eos_ids, yes]
        torch.manual_seed(0)  # the same draws both ways: the cache changes what is computed, not what is sampled
        with sampler.ready():
            assert (sampler.turn_cache is not None) == keep_cache
            results[keep_cache] = roll_out(plans, trainer.chat, sampler, max_turns=4)
    assert any(r.cut_turns for r in results[True]) and len({len(r.completion_ids) for r in results[True]}) > 2, \
        "rows must end at different times"
    assert any(len(r.answers) == 2 for r in results[True])  # B rows leave the batch after their turns
    for fresh, cached in zip(results[False], results[True], strict=True):
        assert cached.completion_ids == fresh.completion_ids and cached.env_mask == fresh.env_mask
        # The same distributions, not only the same draws: each token's log-probability agrees.
        assert cached.logprobs == pytest.approx(fresh.logprobs, abs=1e-4)


def _toy_rollout_setup(toy_sft_model, tmp_path: Path, **args: Any):
    """A trainer on the toy student, plans for its questions, and a stop at "yes" as well (every toy answer is
    "The answer is yes/no."), so that rows end their turns at different steps."""
    from exgrpo.config import TrainConfig
    from exgrpo.rl.train import build_trainer

    model, ei = toy_sft_model
    settings = {"k": 3, "k_partial": 1, "rollouts_full": 2, "rollouts_partial": 2}
    trainer = build_trainer(TrainConfig(model=str(model), ei_data=ei, output_dir=tmp_path, max_steps=1, learning_rate=1e-3,
                                        report_to=["none"], max_new_tokens=8, exgrpo=settings))
    for name, value in args.items():
        setattr(trainer.args, name, value)
    yes = trainer.processing_class("The answer is yes", add_special_tokens=False)["input_ids"][-1]
    questions = load_ei_questions(ei)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions for _ in range(4)]
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, ExGRPOSettings(**settings), group_offset=0, step=0)
    return trainer, plans, yes


def _sampled_rollouts(trainer, plans, stop: int | list[int], decoding: str, max_turn_tokens: int = 5):
    import torch

    from exgrpo.rl.rollout import TransformersSampler

    sampler = TransformersSampler(trainer, max_turn_tokens=max_turn_tokens, decoding=decoding)
    sampler.eos_ids = sorted({*sampler.eos_ids, *(stop if isinstance(stop, list) else [stop])})
    torch.manual_seed(0)
    with sampler.ready():
        assert sampler.decodes_dialogues == (decoding == "dialogues")
        return roll_out(plans, trainer.chat, sampler, max_turns=4)


def test_continuous_dialogue_decoding_gives_the_rollouts_of_generate_turn_by_turn(toy_sft_model, tmp_path: Path) -> None:
    import torch

    # top_k = 1 makes sampling deterministic, so both ways must give the very same dialogues token for token.
    trainer, plans, _ = _toy_rollout_setup(toy_sft_model, tmp_path, top_k=1, off_policy_mask_threshold=0.5)
    torch.manual_seed(0)
    with torch.no_grad():  # large random weights: greedy answers then depend on the dialogue (the toy's do not)
        for parameter in trainer.model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    stop = list(range(0, len(trainer.processing_class), 4))  # and rows end their turns at different steps
    by_turn = _sampled_rollouts(trainer, plans, stop, "turns")
    continuous = _sampled_rollouts(trainer, plans, stop, "dialogues")
    assert any(r.cut_turns for r in continuous) and len({len(r.completion_ids) for r in continuous}) > 2, \
        "rows must end their turns at different steps"
    assert {len(r.answers) for r in continuous} == {2, 4}  # B rows end after k' + 1 turns, A rows after k + 1
    for fresh, ours in zip(by_turn, continuous, strict=True):
        assert ours.completion_ids == fresh.completion_ids and ours.env_mask == fresh.env_mask
        assert ours.answers == fresh.answers and ours.cut_turns == fresh.cut_turns
        assert ours.logprobs == pytest.approx(fresh.logprobs, abs=1e-5)


def test_continuous_dialogue_log_probs_are_those_of_the_whole_dialogue(toy_sft_model, tmp_path: Path) -> None:
    """Sampled at temperature 0.7: each trained token's returned log-probability equals the one a single forward
    pass over the finished dialogue gives (so the cache, the holes and the positions are right)."""
    import torch

    trainer, plans, yes = _toy_rollout_setup(toy_sft_model, tmp_path, temperature=0.7, off_policy_mask_threshold=0.5)
    rollouts = _sampled_rollouts(trainer, plans, yes, "dialogues")
    assert len({len(r.completion_ids) for r in rollouts}) > 2
    model = trainer.model
    for rollout in rollouts:
        ids = torch.tensor([rollout.prompt_ids + rollout.completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(rollout.prompt_ids) - 1 : -1].float() / 0.7
        expected = torch.log_softmax(logits, -1).gather(-1, ids[0, len(rollout.prompt_ids):, None]).squeeze(-1)
        trained = torch.tensor(rollout.env_mask, dtype=torch.bool)
        assert torch.allclose(torch.tensor(rollout.logprobs)[trained], expected[trained], atol=1e-4)
        assert all(lp == 0.0 for lp, m in zip(rollout.logprobs, rollout.env_mask, strict=True) if not m)


def test_continuous_dialogue_decoding_keeps_min_new_tokens_per_turn(toy_sft_model, tmp_path: Path) -> None:
    trainer, plans, yes = _toy_rollout_setup(toy_sft_model, tmp_path, generation_kwargs={"min_new_tokens": 6})
    for rollout in _sampled_rollouts(trainer, plans, yes, "dialogues", max_turn_tokens=8):
        turns = student_turns(rollout)
        assert len(turns) == len(rollout.answers) and all(len(t) >= 6 for t in turns)


def test_settings_only_generate_knows_fall_back_to_generate_per_turn(toy_sft_model, tmp_path: Path) -> None:
    from exgrpo.rl.rollout import TransformersSampler

    for args in ({"repetition_penalty": 1.1}, {"generation_kwargs": {"no_repeat_ngram_size": 2}}):
        trainer, _, _ = _toy_rollout_setup(toy_sft_model, tmp_path, **args)
        sampler = TransformersSampler(trainer, max_turn_tokens=4)
        with sampler.ready():
            assert not sampler.decodes_dialogues and sampler.turn_cache is not None, args
    trainer.model.generation_config.no_repeat_ngram_size = 3  # the model's own generation config counts too
    trainer.args.generation_kwargs = None
    sampler = TransformersSampler(trainer, max_turn_tokens=4)
    with sampler.ready():
        assert not sampler.decodes_dialogues


def test_turn_ids_are_rendered_once_per_text(questions, chat: ChatTokens) -> None:
    settings = ExGRPOSettings(k=2, k_partial=1, rollouts_full=2, rollouts_partial=2)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions[:2] for _ in range(4)]
    plans = plan_rollouts(prompts, {q.prompt: q for q in questions}, settings, group_offset=0, step=0)
    render, calls = chat.tokenizer.apply_chat_template, []
    chat.tokenizer.apply_chat_template = lambda *a, **k: calls.append(1) or render(*a, **k)
    first = roll_out(plans, chat, ScriptedSampler(chat.tokenizer, ["a", "b", "c"]), max_turns=3)
    distinct_texts = len({turn for plan in plans for turn in plan.user_turns})
    assert 0 < len(calls) <= 2 * distinct_texts + 1  # each text once (+ the shared turn prefix), not per rollout
    calls.clear()
    again = roll_out(plans, chat, ScriptedSampler(chat.tokenizer, ["a", "b", "c"]), max_turns=3)
    assert calls == [] and [r.completion_ids for r in again] == [r.completion_ids for r in first]


def test_bf16_rollout_copy_drops_the_autocast_wrapper_and_leaves_the_policy_alone(tiny_model_path: Path) -> None:
    import types

    import torch
    from transformers import AutoModelForCausalLM

    from exgrpo.rl.rollout import bf16_copy_for_cpu

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    calls = []

    def wrapped(self, *args, **kwargs):  # what accelerate's autocast wrapper looks like: an instance attribute
        calls.append(1)
        return type(self).forward(self, *args, **kwargs)

    policy.forward = types.MethodType(wrapped, policy)
    sampler_model = bf16_copy_for_cpu(policy)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        fast = sampler_model(input_ids=ids).logits.float()
        exact = policy(input_ids=ids).logits
    assert next(sampler_model.parameters()).dtype == torch.bfloat16 and "forward" not in sampler_model.__dict__
    assert next(policy.parameters()).dtype == torch.float32 and calls == [1]  # the policy keeps its wrapper
    assert torch.allclose(fast, exact, atol=0.1)
    assert bf16_copy_for_cpu(sampler_model) is sampler_model  # already bf16: nothing to copy


def test_the_shared_prompt_is_prefilled_once_and_every_rollout_gets_its_cache(tiny_model_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from exgrpo.generation.continuous import DecodeBatch
    from exgrpo.generation.dialogue_decoding import prefill_shared

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    contexts = [[5, 6, 7, 8], [5, 6, 7, 8], [9, 10], [5, 6, 7, 8]]
    fed: list[int] = []
    forward = model.forward
    model.forward = lambda *a, **k: fed.append(k["input_ids"].shape[0]) or forward(*a, **k)
    shared, plain = DecodeBatch(), DecodeBatch()
    with torch.inference_mode():
        shared_logits = prefill_shared(shared, model, contexts, pad_id=0)
        plain_logits = plain.feed(model, contexts, pad_id=0)
        assert fed == [2, 4]  # the shared prefill ran the two distinct prompts only
        assert torch.allclose(shared_logits, plain_logits, atol=1e-5) and torch.equal(shared.mask, plain.mask)
        for mine, theirs in zip(shared.cache.layers, plain.cache.layers, strict=True):
            assert torch.allclose(mine.keys, theirs.keys, atol=1e-5) and torch.allclose(mine.values, theirs.values, atol=1e-5)
        shared.next_tokens = plain.next_tokens = torch.tensor([1, 2, 3, 4])  # and decoding goes on alike
        assert torch.allclose(shared.step(model), plain.step(model), atol=1e-5)
