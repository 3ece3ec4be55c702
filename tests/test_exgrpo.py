"""The ExGRPO trainer: equivalence to vanilla GRPO in the degenerate case, the DSU column, the masks in
TRL's batch, a real learning signal, and resuming from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from toy_ei import write_all_yes_ei
from transformers import AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from exgrpo.config import TrainConfig
from exgrpo.data.answers import check_answer
from exgrpo.rl.rewards import FULL, PARTIAL
from exgrpo.rl.rollout import TransformersSampler
from exgrpo.rl.train import build_trainer, run_train
from exgrpo.rl.trainer import Generation, questions_dataset
from exgrpo.training.dialogues import load_ei_questions


def train_config(model: Path, ei: Path, output_dir: Path, **overrides: Any) -> TrainConfig:
    values = {"model": str(model), "ei_data": ei, "output_dir": output_dir, "max_steps": 2, "learning_rate": 3e-3,
              "report_to": ["none"], "logging_steps": 1, "max_new_tokens": 8, "questions_per_step": 2, "seed": 0,
              "save_steps": 10_000, "exgrpo": {"k": 1, "rollouts_full": 2, "rollouts_partial": 2}, **overrides}
    return TrainConfig(**values)


def batch_of(trainer: Any, questions: int) -> list[dict[str, Any]]:
    """The first `questions` rows of the trainer's dataset, each repeated once per rollout (as TRL's sampler does)."""
    rows = [trainer.train_dataset[i] for i in range(questions)]
    return [dict(row) for row in rows for _ in range(trainer.num_generations)]  # distinct dicts, as TRL's loader


def outcome_on_text(prompts, completions, answer, answer_type, **_: Any) -> list[float]:
    """Vanilla GRPO's reward: the same checker, on the single-turn completion."""
    return [float(check_answer(c[0]["content"], a, t).correct) for c, a, t in zip(completions, answer, answer_type, strict=True)]


def _sampled(trainer: Any, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)  # the same seed gives the same sampled completions
    return trainer._generate_and_score_completions(batch_of(trainer, 2))


def completion_logprobs(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Log-probabilities of the batch's completion tokens under `model` (teacher-forced)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, batch["prompt_ids"].shape[1] - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)


def test_degenerate_exgrpo_is_vanilla_grpo(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    """k = 0, no B rollouts, delta = 0, lambda_aux = 0: the same batch, the same gradient of every parameter,
    and after one optimizer step the same model (log-probabilities of the sampled tokens), as TRL's GRPO."""
    model, ei = toy_sft_model
    config = train_config(model, ei, tmp_path / "exgrpo", beta=0.04, exgrpo={
        "k": 0, "rollouts_full": 4, "rollouts_partial": 0, "dsu_delta": 0.0, "aux_weight": 0.0})
    exgrpo = build_trainer(config)
    # TRL samples with one `generate` call; so must we here, for the same draws (the continuous dialogue decoder
    # drops finished rows, so its random draws differ once rows end: tested on its own in test_training_dialogues).
    exgrpo.make_sampler = lambda: TransformersSampler(exgrpo, decoding="turns")
    vanilla_args = GRPOConfig(output_dir=str(tmp_path / "vanilla"), learning_rate=3e-3, per_device_train_batch_size=8,
                              num_generations=4, max_completion_length=8, beta=0.04, use_cpu=True, bf16=False,
                              activation_checkpointing=False, report_to=[], seed=0, remove_unused_columns=False,
                              loss_type=config.loss_type)
    vanilla = GRPOTrainer(model=str(model), reward_funcs=[outcome_on_text], args=vanilla_args,
                          train_dataset=questions_dataset(load_ei_questions(ei)),
                          processing_class=AutoTokenizer.from_pretrained(model))
    trainers = {"exgrpo": exgrpo, "vanilla": vanilla}
    for trainer in trainers.values():
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test skips
    # A seed whose batch has different rewards within a group, so that advantages are not all zero.
    seed = next(s for s in range(20) if _sampled(exgrpo, s)["advantages"].abs().sum() > 0)
    batches = {name: _sampled(trainer, seed) for name, trainer in trainers.items()}
    ours, theirs = batches["exgrpo"], batches["vanilla"]
    assert torch.equal(ours["prompt_ids"], theirs["prompt_ids"])
    assert ours["advantages"].abs().sum() > 0, "the batch must carry a learning signal for the check to mean much"
    assert torch.allclose(ours["advantages"], theirs["advantages"], atol=1e-6)
    width = theirs["completion_ids"].shape[1]
    trained = (ours["completion_mask"] * ours["tool_mask"])[:, :width].bool()
    assert torch.equal(ours["completion_ids"][:, :width][trained], theirs["completion_ids"][trained])

    gradients, after = {}, {}
    for name, trainer in trainers.items():
        optimizer = torch.optim.SGD(trainer.model.parameters(), lr=1.0)  # a large step: differences would show
        optimizer.zero_grad()
        trainer.compute_loss(trainer.model, batches[name]).backward()
        gradients[name] = {key: p.grad.clone() for key, p in trainer.model.named_parameters() if p.grad is not None}
        optimizer.step()
        after[name] = completion_logprobs(trainer.model, theirs)
    assert gradients["exgrpo"].keys() == gradients["vanilla"].keys() and gradients["vanilla"]
    assert any(g.abs().sum() > 0 for g in gradients["vanilla"].values())
    for key, gradient in gradients["vanilla"].items():
        assert torch.allclose(gradients["exgrpo"][key], gradient, atol=1e-6, rtol=1e-4), key
    mask = theirs["completion_mask"].bool()
    assert torch.allclose(after["exgrpo"][mask], after["vanilla"][mask], atol=1e-5)


def test_dsu_bonus_column_is_filled_per_group(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, exgrpo={"k": 1, "rollouts_full": 2, "rollouts_partial": 2,
                                                                      "dsu_delta": 0.5}))
    trainer.model.train()
    rows = batch_of(trainer, 2)
    answers = ["yes", "yes", "no", "no", "yes", "no", "yes", "no"]  # group 1: A right, B wrong; group 2: mixed
    for row, said, scenario in zip(rows, answers, [FULL, FULL, PARTIAL, PARTIAL] * 2, strict=True):
        row.update(final_answer=f"The answer is {said}.", scenario=scenario, num_probes=int(scenario == FULL))
    gold = [row["answer"] for row in rows]
    completions = [[{"role": "assistant", "content": row["final_answer"]}] for row in rows]
    rewards = trainer._calculate_rewards(rows, [row["prompt"] for row in rows], completions, [[0]] * len(rows))
    outcome = [float(said == g) for said, g in zip(answers, gold, strict=True)]
    assert rewards[:, 0].tolist() == outcome
    expected = []
    for start in (0, 4):
        full, partial = outcome[start : start + 2], outcome[start + 2 : start + 4]
        fires = sum(full) / 2 > sum(partial) / 2
        expected += [0.5 if fires and o else 0.0 for o in full] + [0.0, 0.0]
    assert rewards[:, 1].tolist() == expected
    assert trainer._metrics["train"]["exgrpo/dsu_fired"] == [sum(any(expected[g : g + 4]) for g in (0, 4)) / 2]


def test_trl_batch_trains_only_the_students_turns(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path))
    trainer.model.train()
    batch = trainer._generate_and_score_completions(batch_of(trainer, 2))
    trained = (batch["completion_mask"] * batch["tool_mask"]).sum(dim=1)
    in_context = batch["completion_mask"].sum(dim=1)
    scenario_a = torch.tensor([True, True, False, False] * 2)
    assert (trained[scenario_a] < in_context[scenario_a]).all()  # A: a probe answer, then injected Q turn
    assert (trained > 0).all()
    examples = trainer.generation.aux_examples
    assert examples and all(any(label != -100 for label in labels) for _, labels in examples)


class RewardLog(TrainerCallback):
    def __init__(self) -> None:
        self.rewards: list[float] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "rewards/outcome_reward/mean" in logs:
            self.rewards.append(logs["rewards/outcome_reward/mean"])


@pytest.mark.slow
def test_a_short_cpu_run_raises_the_reward(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = toy_sft_model
    # The student was SFT'd on mixed yes/no facts; here every answer is "yes", a shift RL must learn.
    ei = write_all_yes_ei(tmp_path / "ei_yes.jsonl")
    log = RewardLog()
    run_train(train_config(model, ei, tmp_path / "run", max_steps=30, questions_per_step=4, beta=0.0,
                           exgrpo={"k": 1, "rollouts_full": 4, "rollouts_partial": 4}), callbacks=[log])
    first, last = sum(log.rewards[:5]) / 5, sum(log.rewards[-5:]) / 5
    assert len(log.rewards) == 30
    assert last >= first + 0.2, f"mean reward {first:.2f} -> {last:.2f}"


def test_training_resumes_from_its_checkpoint(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    run_train(train_config(model, ei, tmp_path, max_steps=2, save_steps=2))
    assert (tmp_path / "checkpoint-2").is_dir()
    log = RewardLog()
    final = run_train(train_config(model, ei, tmp_path, max_steps=4, save_steps=2), callbacks=[log])
    assert len(log.rewards) == 2  # steps 3 and 4 only: 1 and 2 came from the checkpoint
    state = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]
    assert (final / "model.safetensors").exists()


@pytest.mark.slow
def test_cli_sft_then_train_end_to_end(tiny_model_path: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml
    from toy_ei import write_toy_ei

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    common = {"ei_data": str(ei), "report_to": ["none"], "max_steps": 2, "save_steps": 100}
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({**common, "model": str(tiny_model_path),
                                                       "output_dir": str(tmp_path / "sft")}))
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({
        **common, "model": str(tmp_path / "sft" / "final"), "output_dir": str(tmp_path / "exgrpo"),
        "max_new_tokens": 8, "exgrpo": {"k": 1, "rollouts_full": 2, "rollouts_partial": 2},
        "lora": {"r": 4, "alpha": 8}}))  # PEFT's path too: it reads a property transformers deprecates
    for command in ("sft", "train"):
        result = subprocess.run([sys.executable, "-m", "exgrpo.cli", command, "--config", str(tmp_path / f"{command}.yaml")],
                                capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "exgrpo" / "final" / "model.safetensors").exists()
    assert "ExGRPO model saved to" in result.stdout
    assert "Warning" not in result.stderr, result.stderr[-2000:]  # no deprecation notice from our own calls


def test_per_scenario_advantages_reach_the_loss_batch(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, exgrpo={
        "k": 1, "rollouts_full": 2, "rollouts_partial": 2, "per_scenario_advantages": True}))
    trainer.model.train()
    batch = next(b for b in (_sampled(trainer, seed) for seed in range(20)) if b["advantages"].abs().sum() > 0)
    advantages = batch["advantages"].view(2, 2, 2)  # question, scenario, rollout
    assert torch.allclose(advantages.sum(dim=2), torch.zeros(2, 2), atol=1e-5)  # zero mean within each scenario


def test_aux_loss_is_lambda_times_the_teacher_nll_scaled_for_accumulation(toy_sft_model: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, update_batch_size=8, exgrpo={
        "k": 2, "k_partial": 1, "rollouts_full": 2, "rollouts_partial": 2, "aux_weight": 0.5}))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2
    batch = _sampled(trainer, 0)
    examples = list(trainer.generation.aux_examples)
    assert examples and trainer.args.steps_per_generation == 1  # one micro-step takes every aux example
    # The NLL by hand: labelled tokens only, each predicted from the tokens before it.
    nll, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in examples:
            logits = trainer.model(input_ids=torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            keep = targets != -100
            nll += torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            count += int(keep.sum())
        aux = trainer.aux_sft_loss(trainer.model, examples).item()
        policy = GRPOTrainer.compute_loss(trainer, trainer.model, batch).item()
        total = trainer.compute_loss(trainer.model, batch).item()
    assert aux == pytest.approx(nll / count, rel=1e-4)
    assert total == pytest.approx(policy + 0.5 * aux / 2, rel=1e-4, abs=1e-6)
    trainer.log({})
    assert trainer.state.log_history[-1]["exgrpo/aux_sft_loss"] == pytest.approx(aux, rel=1e-4)


def test_aux_batches_cycle_through_the_generations_examples(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, gradient_accumulation_steps=3, update_batch_size=8))
    assert trainer.args.steps_per_generation == 3
    generation = Generation(aux_examples=[([i], [i]) for i in range(7)])
    batches = [generation.aux_chunk(step, trainer.args.steps_per_generation) for step in range(4)]
    assert [len(b) for b in batches] == [3, 3, 1, 3]  # ceil(7 / 3) per micro-step, then around again
    assert [x for b in batches[:3] for x in b] == generation.aux_examples and batches[3] == generation.aux_examples[:3]
    # More micro-steps than examples: each example once per pass, the later micro-steps without any.
    few = Generation(aux_examples=[([i], [i]) for i in range(3)])
    assert [len(few.aux_chunk(step, 8)) for step in range(8)] == [1, 1, 1, 0, 0, 0, 0, 0]


class GradientCapture(TrainerCallback):
    def __init__(self) -> None:
        self.gradients: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        self.gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def test_a_step_in_micro_batches_has_the_same_gradient(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    """The rollouts of a step are generated together either way; the update in micro-batches of one question's
    group (length-sorted, padding stripped) accumulates the gradient of one batch of all rows."""
    model, ei = toy_sft_model
    gradients = {}
    for rows in (8, 4):
        capture = GradientCapture()
        trainer = build_trainer(train_config(model, ei, tmp_path / str(rows), max_steps=1, update_batch_size=rows,
                                             exgrpo={"k": 1, "rollouts_full": 2, "rollouts_partial": 2,
                                                     "aux_weight": 0.1}), callbacks=[capture])
        assert trainer.args.per_device_train_batch_size == rows and trainer.args.steps_per_generation == 8 // rows
        trainer.train()
        gradients[rows] = capture.gradients
    assert gradients[8].keys() == gradients[4].keys() and gradients[8]
    scale = max(g.abs().max().item() for g in gradients[8].values())
    assert scale > 0
    difference = max((gradients[8][name] - gradients[4][name]).abs().max().item() for name in gradients[8])
    assert difference < scale * 1e-4


def test_dsu_watch_warns_when_the_bonus_fires_more_without_better_answers() -> None:
    from exgrpo.rl.trainer import DSUWatch

    hacking, honest = DSUWatch(window=10, rise=0.15), DSUWatch(window=10, rise=0.15)
    flags = [hacking.update(fired_rate=0.1 + 0.05 * step, accuracy_full=0.4) for step in range(10)]
    assert flags == [False] * 9 + [True]
    assert not any(honest.update(fired_rate=0.1 + 0.05 * step, accuracy_full=0.3 + 0.04 * step) for step in range(10))


def test_turns_cut_by_the_budget_are_logged(toy_sft_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, max_new_tokens=1))
    trainer.model.train()
    _sampled(trainer, 0)
    assert trainer._metrics["train"]["exgrpo/truncated_turns"][-1] > 0.5  # one token: almost no turn ends in time


def test_scoring_without_gradients_by_length_gives_trls_values(toy_sft_model: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    """The reference model's log-probabilities, scored in chunks of rows of similar length cut to their own
    columns, equal TRL's (every chunk padded to the longest row) on every completion token."""
    model, ei = toy_sft_model
    trainer = build_trainer(train_config(model, ei, tmp_path, exgrpo={"k": 2, "k_partial": 1, "rollouts_full": 2,
                                                                       "rollouts_partial": 2}))
    trainer.model.train()
    batch = _sampled(trainer, 0)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    keep = batch["completion_ids"].size(1)
    lengths = mask.sum(dim=1)
    assert lengths.min() < lengths.max()  # rows of different lengths: there is padding to cut
    with torch.no_grad():
        ours, our_entropy, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep, batch_size=3,
                                                                          compute_entropy=True)
        trls, trl_entropy, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, keep,
                                                                               batch_size=3, compute_entropy=True)
    used = batch["completion_mask"].bool()
    assert ours.shape == trls.shape and torch.allclose(ours[used], trls[used], atol=1e-4)
    assert torch.allclose(our_entropy[used], trl_entropy[used], atol=1e-4)
