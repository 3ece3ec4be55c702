"""What the SFT and ExGRPO stages share: device settings, LoRA, checkpoints, saving the final model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from exgrpo.config import LoraSettings, TrainingRun
from exgrpo.files import atomic_write_json
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import DtypeSetting, use_bf16

# TRL 1.16 and PEFT 0.21 read `model.is_gradient_checkpointing`, which transformers 5.23 deprecates: a FutureWarning
# at every `exgrpo sft` / `exgrpo train` that a user can do nothing about (those libraries work the same).
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def device_arguments(dtype: DtypeSetting = "float32", model: str | None = None) -> dict[str, Any]:
    """TRL defaults to bf16 and activation checkpointing even on a CPU; we decide bf16 by `dtype` (on a CPU
    with native bf16 it trains under autocast, ~3x faster for SmolLM2-135M; emulated, it is slower), and
    activation checkpointing only slows small models down."""
    import torch

    on_gpu = torch.cuda.is_available()
    return {"use_cpu": not on_gpu, "bf16": use_bf16(dtype, model, on_gpu), "activation_checkpointing": False}


def trainer_arguments(config: TrainingRun) -> dict[str, Any]:
    """The transformers TrainingArguments every stage sets the same way."""
    report_to = [] if config.report_to == ["none"] else config.report_to
    return {
        "output_dir": str(config.output_dir), "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "max_steps": config.max_steps,
        "seed": config.seed, "logging_steps": config.logging_steps, "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit, "report_to": report_to,
        **device_arguments(config.dtype, resolve_model(config.model)),
    }


def peft_config(lora: LoraSettings | None) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint-N folder, for resume_from_checkpoint.

    transformers' get_last_checkpoint takes the highest N whatever the folder holds, but the Trainer writes a
    checkpoint in place and its trainer_state.json last (older checkpoints are rotated away only after it): a
    process killed while saving leaves a newer folder without it, from which resuming fails. So only folders with
    that file count."""
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not output_dir.is_dir():
        return None
    steps = {}
    for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if step.isdigit() and (path / TRAINER_STATE_NAME).is_file():
            steps[int(step)] = path
    return str(steps[max(steps)]) if steps else None


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


def fast_cpu_losses() -> None:
    """TRL's fused LM head, faster on a CPU and with the same values: labelled positions only, and the
    log-probabilities in checkpointed row chunks (cpu_head.py). Both only change what runs on a CPU."""
    from exgrpo.training.cpu_head import use_cpu_logprobs

    score_labelled_positions_only()
    use_cpu_logprobs()


def score_labelled_positions_only() -> None:
    """Make TRL's fused LM head score only the positions that carry a label, on every device.

    TRL (1.16) computes the loss through a chunked LM head; it drops unlabelled positions (prompt, padding)
    before the vocabulary projection only on Triton devices, and on a CPU projects every position onto the
    whole vocabulary (49k for SmolLM2) forward and backward: about a third of an SFT step here, for
    positions whose loss is then masked to zero. The choice is the name `_use_triton` in
    `trl.trainer.utils` (the kernels keep their own reference, so Triton is still used only where it
    exists). Same loss and gradients (tests/test_sft.py); if TRL renames it, this does nothing.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "exgrpo_compact", False):
        return

    def compact_everywhere(device: Any) -> bool:
        return True

    compact_everywhere.exgrpo_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact_everywhere


def checkpoint_to_model(checkpoint: Path, output: Path, merge_adapter: bool = True) -> Path:
    """Turn a checkpoint-N folder (of a stopped or finished stage) into a model every later stage loads, as
    save_final_model does at the end of a run: LoRA merged on request, the tokenizer beside it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exgrpo.errors import DataError

    checkpoint = Path(checkpoint)
    has_adapter = (checkpoint / "adapter_config.json").exists()
    if not has_adapter and not (checkpoint / "config.json").exists():
        raise DataError(f"{checkpoint}: not a training checkpoint (no config.json or adapter_config.json)")
    if not (checkpoint / "tokenizer_config.json").exists():
        raise DataError(f"{checkpoint}: no tokenizer_config.json; the checkpoint was saved without its tokenizer")
    if has_adapter:
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(checkpoint)
        if merge_adapter:
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(checkpoint)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(output)
    return output
