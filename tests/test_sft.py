"""The SFT warm-up: assistant-only labels, a falling loss, the saved model, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from toy_ei import write_toy_ei
from transformers import AutoModelForCausalLM, AutoTokenizer

from exgrpo.config import SFTStageConfig
from exgrpo.models.tiny import END_OF_TURN
from exgrpo.training.common import last_checkpoint
from exgrpo.training.sft import build_sft_dataset, run_sft


def sft_config(model: Path, ei: Path, output_dir: Path, **overrides) -> SFTStageConfig:
    values = {"model": str(model), "ei_data": ei, "output_dir": output_dir, "epochs": 2, "learning_rate": 3e-3,
              "report_to": ["none"], "per_device_batch_size": 8, "logging_steps": 1, "save_steps": 5, **overrides}
    return SFTStageConfig(**values)


def test_labels_cover_only_the_assistant_turns(tiny_model_path: Path, tmp_path: Path) -> None:
    from trl import SFTConfig, SFTTrainer

    config = sft_config(tiny_model_path, write_toy_ei(tmp_path / "ei.jsonl"), tmp_path / "out")
    dataset = build_sft_dataset(config)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), processing_class=tokenizer,
                         train_dataset=dataset, args=SFTConfig(output_dir=str(tmp_path / "t"), assistant_only_loss=True,
                                                               use_cpu=True, bf16=False, report_to=[]))
    for row, conversation in zip(trainer.train_dataset, dataset, strict=True):
        trained = tokenizer.decode([t for t in row["labels"] if t != -100])
        expected = "".join(m["content"] + END_OF_TURN for m in conversation["messages"] if m["role"] == "assistant")
        assert trained == expected


def test_sft_lowers_the_loss_saves_a_plain_model_and_resumes(tiny_model_path: Path, tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")
    final = run_sft(sft_config(tiny_model_path, ei, tmp_path / "out", max_steps=5))
    history = json.loads((tmp_path / "out" / "checkpoint-5" / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert AutoModelForCausalLM.from_pretrained(final).config.model_type == "llama"
    # A process killed while saving checkpoint-7 left its weights but not its trainer state (written last): the
    # rerun resumes from the newest complete checkpoint, 5, rather than failing on 7.
    shutil.copytree(tmp_path / "out" / "checkpoint-5", tmp_path / "out" / "checkpoint-7")
    (tmp_path / "out" / "checkpoint-7" / "trainer_state.json").unlink()
    assert last_checkpoint(tmp_path / "out") == str(tmp_path / "out" / "checkpoint-5")
    run_sft(sft_config(tiny_model_path, ei, tmp_path / "out", max_steps=10))  # continues from checkpoint-5
    history = json.loads((tmp_path / "out" / "checkpoint-10" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == list(range(1, 11))


def test_lora_sft_merges_the_adapter_into_a_plain_model(tiny_model_path: Path, tmp_path: Path) -> None:
    ei = write_toy_ei(tmp_path / "ei.jsonl")
    final = run_sft(sft_config(tiny_model_path, ei, tmp_path / "lora", max_steps=2, lora={"r": 4, "alpha": 8}))
    assert not (final / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    changed = [name for (name, p), (_, q) in zip(merged.named_parameters(), base.named_parameters(), strict=True)
               if not (p == q).all()]
    assert changed and all("proj" in name for name in changed)  # LoRA touched the linear layers only


def test_lora_sft_in_bf16_keeps_the_frozen_base_in_bf16_and_trains_fp32_adapters(tiny_model_path: Path,
                                                                                   tmp_path: Path) -> None:
    """No fp32 master copy of frozen weights: half the memory of a 7B base under LoRA."""
    import torch
    from transformers import TrainerCallback

    seen: dict[str, set] = {"frozen": set(), "trained": set()}

    class Dtypes(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            for parameter in model.parameters():
                seen["trained" if parameter.requires_grad else "frozen"].add(parameter.dtype)

    ei = write_toy_ei(tmp_path / "ei.jsonl")
    run_sft(sft_config(tiny_model_path, ei, tmp_path / "lora", max_steps=2, lora={"r": 4, "alpha": 8},
                       dtype="bfloat16"), callbacks=[Dtypes()])
    assert seen == {"frozen": {torch.bfloat16}, "trained": {torch.float32}}
    history = json.loads((tmp_path / "lora" / "log_history.json").read_text())
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in history if "loss" in entry)


def test_scoring_only_labelled_positions_keeps_loss_and_gradients(tiny_model_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import trl.trainer.utils as trl_utils

    from exgrpo.training.common import score_labelled_positions_only

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
        trl_utils.add_fused_lm_head(model)
        ids = torch.randint(0, model.config.vocab_size, (3, 20))
        labels = ids.clone()
        labels[:, :12] = -100  # a prompt
        labels[0, 17:] = -100  # padding
        outputs = model(input_ids=ids, labels=labels, fused_lm_head=True)
        loss = -outputs.log_probs.sum() / (labels[:, 1:] != -100).sum()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    from trl.kernels import chunked_logprob

    # TRL's own choice (an earlier test in this process may have patched it already); restored afterwards.
    monkeypatch.setattr(trl_utils, "_use_triton", chunked_logprob._use_triton)
    every_position, every_grads = loss_and_grads()
    assert not trl_utils._use_triton(torch.device("cpu"))  # TRL scores every position on a CPU
    score_labelled_positions_only()
    assert trl_utils._use_triton(torch.device("cpu"))
    labelled_only, labelled_grads = loss_and_grads()
    assert torch.allclose(every_position, labelled_only, atol=1e-6)
    assert len(every_grads) == len(labelled_grads) > 0
    for full, compact in zip(every_grads, labelled_grads, strict=True):
        assert torch.allclose(full, compact, atol=1e-6)
