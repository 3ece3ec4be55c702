"""`exgrpo train`: ExGRPO from the SFT checkpoint, resumable, saving output_dir/final."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.config import TrainConfig
from exgrpo.models.named import resolve_model
from exgrpo.training.common import (
    fast_cpu_losses,
    last_checkpoint,
    peft_config,
    save_final_model,
    trainer_arguments,
)
from exgrpo.training.dialogues import EIQuestion
from exgrpo.training.sft_data import training_questions


def grpo_arguments(config: TrainConfig) -> Any:
    """The trainer's one config (an ExGRPOConfig): TRL's arguments, the method's knobs and the turn budgets.

    `max_new_tokens` (YAML: student tokens per probe turn) is `max_turn_tokens`, `max_answer_tokens` the final
    answer's; TRL's `max_completion_length` is left to ExGRPOConfig, which makes it a whole dialogue's turns.
    An `auto` turn budget must have been resolved (`resolve_turn_budgets`, as `run_train` does)."""
    # ExGRPOConfig subclasses TRL's GRPOConfig: importing it loads TRL (seconds), which `exgrpo --help` must not pay.
    from exgrpo.rl.config import ExGRPOConfig

    if config.max_new_tokens == "auto":
        raise ValueError("max_new_tokens: auto is measured from the EI data before training: resolve it first "
                         "(exgrpo.rl.budgets.resolve_turn_budgets, as `exgrpo train` does)")
    group = config.rollouts_per_question()
    rows = config.questions_per_step * group  # a step's rollouts on one device, whole groups
    micro_batch = config.update_rows()
    # All rows of an optimizer step are rolled out together (one generation: large decoding batches, whole groups
    # for the DSU bonus and the advantages), and the update runs over them in micro-batches of `update_batch_size`
    # accumulated into that one step: the memory of a forward and backward stays bounded by the micro-batch.
    accumulation = config.gradient_accumulation_steps * rows // micro_batch
    arguments = trainer_arguments(config) | {
        "per_device_train_batch_size": micro_batch, "gradient_accumulation_steps": accumulation,
        "steps_per_generation": accumulation,
    }
    return ExGRPOConfig(
        **arguments, **config.exgrpo.model_dump(), num_generations=group, max_turn_tokens=config.max_new_tokens,
        max_answer_tokens=config.max_answer_tokens,
        temperature=config.temperature, beta=config.beta, epsilon=config.epsilon, loss_type=config.loss_type,
        scale_rewards="group",
        use_vllm=config.use_vllm, vllm_mode=config.vllm_mode, remove_unused_columns=False, log_completions=False,
        generation_kwargs=config.generation_kwargs or None,
    )


def rl_questions(config: TrainConfig) -> tuple[list[EIQuestion], dict[str, Any] | None]:
    """(the questions RL trains on, how they were chosen: None = all the stage's questions). With
    `pass_rate.enabled`, those the starting model solves sometimes (rl/pass_rate.py), with one line said."""
    if not config.pass_rate.enabled:
        return training_questions(config), None
    from accelerate import PartialState

    from exgrpo.rl.pass_rate import select_by_pass_rate

    state = PartialState()
    # The main process samples and writes pass_rates.jsonl; the others then find every rate in it.
    with state.main_process_first():
        selection = select_by_pass_rate(config)
    if state.is_main_process:
        print(selection.line(), flush=True)
    return selection.kept, selection.summary()


def build_trainer(config: TrainConfig, callbacks: list[Any] | None = None,
                  questions: list[EIQuestion] | None = None) -> Any:
    """The trainer, on `questions` (default: rl_questions(config), after the pass-rate pre-pass if enabled)."""
    from transformers import AutoTokenizer

    # The trainer subclasses TRL's GRPOTrainer: importing it loads torch, transformers and TRL (seconds), which
    # `exgrpo --help` and the configs that import this module must not pay for.
    from exgrpo.rl.trainer import ExGRPOTrainer

    fast_cpu_losses()
    model_path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The model is passed by name: TRL loads the policy and, with beta > 0, the reference from the same
    # checkpoint, so the KL anchors the policy to the SFT model it starts from.
    return ExGRPOTrainer(model=model_path, args=grpo_arguments(config),
                         questions=rl_questions(config)[0] if questions is None else questions,
                         processing_class=tokenizer,
                         peft_config=peft_config(config.lora), callbacks=callbacks)


def run_train(config: TrainConfig, callbacks: list[Any] | None = None) -> Path:
    from exgrpo.rl.budgets import resolve_turn_budgets, write_turn_budgets
    from exgrpo.rl.diagnostics import TrainingDiagnostics, use_compact_console
    from exgrpo.training.wall_time import budget_callbacks

    budgets = resolve_turn_budgets(config)  # before anything loads: an auto budget is measured on the EI data
    for line in budgets.lines():
        print(line, flush=True)
    write_turn_budgets(config.output_dir, budgets)
    config = config.model_copy(update={"max_new_tokens": budgets.probe, "max_answer_tokens": budgets.answer})
    questions, selection = rl_questions(config)  # the pass-rate pre-pass samples at the resolved answer budget
    diagnostics = TrainingDiagnostics(config.output_dir, max_new_tokens=budgets.probe,
                                      max_answer_tokens=budgets.answer, question_selection=selection)
    trainer = build_trainer(config, budget_callbacks(config, [diagnostics, *(callbacks or [])]),
                            questions)
    use_compact_console(trainer, config.stop_at_step)
    try:
        trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    finally:
        diagnostics.write_plot()  # a stopped run's plot too (a finished one was drawn at on_train_end)
    return save_final_model(trainer, config.output_dir, config.merge_adapter)
