"""`exgrpo train`: ExGRPO from the SFT checkpoint, resumable, saving output_dir/final."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.config import TrainConfig
from exgrpo.models.named import resolve_model
from exgrpo.training.common import last_checkpoint, peft_config, save_final_model, trainer_arguments
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
    arguments = trainer_arguments(config) | {
        "per_device_train_batch_size": config.questions_per_step * group,  # whole groups of rollouts
    }
    return ExGRPOConfig(
        **arguments, **config.exgrpo.model_dump(), num_generations=group, max_turn_tokens=config.max_new_tokens,
        max_answer_tokens=config.max_answer_tokens,
        temperature=config.temperature, beta=config.beta, epsilon=config.epsilon, loss_type=config.loss_type,
        scale_rewards="group",
        use_vllm=config.use_vllm, vllm_mode=config.vllm_mode, remove_unused_columns=False, log_completions=False,
        generation_kwargs=config.generation_kwargs or None,
    )


def build_trainer(config: TrainConfig, callbacks: list[Any] | None = None) -> Any:
    from transformers import AutoTokenizer

    # The trainer subclasses TRL's GRPOTrainer: importing it loads torch, transformers and TRL (seconds), which
    # `exgrpo --help` and the configs that import this module must not pay for.
    from exgrpo.rl.trainer import ExGRPOTrainer

    model_path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The model is passed by name: TRL loads the policy and, with beta > 0, the reference from the same
    # checkpoint, so the KL anchors the policy to the SFT model it starts from.
    return ExGRPOTrainer(model=model_path, args=grpo_arguments(config), questions=training_questions(config),
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
    diagnostics = TrainingDiagnostics(config.output_dir, max_new_tokens=budgets.probe,
                                      max_answer_tokens=budgets.answer)
    trainer = build_trainer(config, budget_callbacks(config.max_seconds, [diagnostics, *(callbacks or [])]))
    use_compact_console(trainer)
    try:
        trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    finally:
        diagnostics.write_plot()  # a stopped run's plot too (a finished one was drawn at on_train_end)
    return save_final_model(trainer, config.output_dir, config.merge_adapter)
