"""What the SFT and ExGRPO stages share: device settings, LoRA, checkpoints, saving the final model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.config import LoraSettings, TrainingRun
from exgrpo.files import atomic_write_json


def device_arguments() -> dict[str, Any]:
    """TRL defaults to bf16 and activation checkpointing even on a CPU, where both only slow training down."""
    import torch

    on_gpu = torch.cuda.is_available()
    return {"use_cpu": not on_gpu, "bf16": on_gpu and torch.cuda.is_bf16_supported(), "activation_checkpointing": False}


def trainer_arguments(config: TrainingRun) -> dict[str, Any]:
    """The transformers TrainingArguments every stage sets the same way."""
    report_to = [] if config.report_to == ["none"] else config.report_to
    return {
        "output_dir": str(config.output_dir), "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "max_steps": config.max_steps,
        "seed": config.seed, "logging_steps": config.logging_steps, "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit, "report_to": report_to,
        **device_arguments(),
    }


def peft_config(lora: LoraSettings | None) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint-N folder, for resume_from_checkpoint."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def save_final_model(trainer: Any, output_dir: Path, merge_adapter: bool) -> Path:
    """Save the trained model and tokenizer to output_dir/final (LoRA merged on request), loadable as a
    plain Hugging Face model by every later stage."""
    final = output_dir / "final"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if merge_adapter and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(final)
    trainer.processing_class.save_pretrained(final)
    # The curves of the whole run (checkpoints keep only theirs), for reports and plots.
    atomic_write_json(output_dir / "log_history.json", trainer.state.log_history)
    return final
