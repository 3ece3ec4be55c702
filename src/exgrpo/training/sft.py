"""`exgrpo sft`: the SFT warm-up on EI data with TRL's SFTTrainer (loss on assistant tokens only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.config import SFTStageConfig
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import torch_dtype
from exgrpo.training.common import (
    fast_cpu_losses,
    last_checkpoint,
    peft_config,
    save_final_model,
    trainer_arguments,
)
from exgrpo.training.sft_data import sft_examples


def build_sft_dataset(config: SFTStageConfig) -> Any:
    import datasets

    return datasets.Dataset.from_list(sft_examples(config))


def run_sft(config: SFTStageConfig, callbacks: list[Any] | None = None) -> Path:
    """Train, resume from the newest checkpoint when there is one, and save output_dir/final."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from exgrpo.training.wall_time import budget_callbacks, use_budgeted_progress

    fast_cpu_losses()
    dataset = build_sft_dataset(config)
    model_path = resolve_model(config.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Trained weights in fp32: with bf16 on, the Trainer computes under autocast and keeps fp32 master weights.
    # Under LoRA the base weights are frozen and need no master copy: they load in the compute dtype (a 7B base
    # is 15 GB in bf16, 30 GB in fp32), and PEFT keeps the adapters in fp32.
    dtype = torch.float32 if config.lora is None else torch_dtype(config.dtype, model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    arguments = SFTConfig(
        **trainer_arguments(config), num_train_epochs=config.epochs, max_length=config.max_length,
        assistant_only_loss=True,  # needs {% generation %} markers in the chat template
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    trainer = SFTTrainer(model=model, args=arguments, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config(config.lora),
                         callbacks=budget_callbacks(config, callbacks))
    use_budgeted_progress(trainer, config.stop_at_step)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_final_model(trainer, config.output_dir, config.merge_adapter)
