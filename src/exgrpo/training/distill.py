"""On-policy distillation (the GKD baseline) with TRL's DistillationTrainer, resumable like the other stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.config import DistillStageConfig
from exgrpo.errors import ConfigError
from exgrpo.models.named import resolve_model
from exgrpo.training.common import last_checkpoint, peft_config, save_final_model, trainer_arguments
from exgrpo.training.sft_data import training_questions


def run_distill(config: DistillStageConfig, callbacks: list[Any] | None = None) -> Path:
    import datasets
    from transformers import AutoTokenizer
    from trl import DistillationConfig, DistillationTrainer

    from exgrpo.training.wall_time import budget_callbacks, use_budgeted_progress

    model_path, teacher_path = resolve_model(config.model), resolve_model(config.teacher_model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        # TRL compares vocabulary sizes only; same-size vocabularies that differ would distil noise.
        raise ConfigError(f"teacher_model {config.teacher_model}: its tokenizer is not the student's "
                          f"({config.model}); on-policy distillation needs a shared vocabulary")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    questions = training_questions(config)
    if len(questions) < config.per_device_batch_size:
        # TRL's generation batches would be empty: training would "finish" after 0 steps without a word.
        raise ConfigError(f"{config.ei_path()}: {len(questions)} questions, fewer than per_device_batch_size "
                          f"({config.per_device_batch_size}); lower the batch size")
    prompts = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": q.prompt}]} for q in questions])
    arguments = DistillationConfig(**trainer_arguments(config), beta=config.beta, temperature=config.temperature,
                                   max_completion_length=config.max_new_tokens)
    trainer = DistillationTrainer(model=model_path, teacher_model=teacher_path, args=arguments,
                                  train_dataset=prompts, processing_class=tokenizer,
                                  peft_config=peft_config(config.lora),
                                  callbacks=budget_callbacks(config, callbacks))
    use_budgeted_progress(trainer, config.stop_at_step)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_final_model(trainer, config.output_dir, config.merge_adapter)
