"""The tiny student: saved in Hugging Face format, reloads unchanged, marks assistant turns."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from exgrpo.models.tiny import END_OF_TURN, build_tiny_model

TEXT = "The answer is (B).\n  Solve 12,345 + 6 step by step. Héllo wörld \\boxed{\\frac{1}{2}}"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_reloads_with_the_tokenizer_it_was_trained_with(tmp_path: Path, arch: str) -> None:
    path = build_tiny_model(tmp_path / arch, texts=[TEXT] * 5, arch=arch, hidden_size=32, num_layers=1,
                            num_heads=2, vocab_size=320)
    tokenizer = AutoTokenizer.from_pretrained(path)
    trained = Tokenizer.from_file(str(path / "tokenizer.json"))
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ids == trained.encode(TEXT, add_special_tokens=False).ids
    assert tokenizer.decode(ids) == TEXT
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == arch
    assert model.config.vocab_size >= max(tokenizer.get_vocab().values()) + 1
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(END_OF_TURN)


def test_chat_template_masks_exactly_the_assistant_turns(tiny_model_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    messages = [{"role": "user", "content": "What is 12 plus 30?"}, {"role": "assistant", "content": "42."},
                {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Yes."}]
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    trained = tokenizer.decode([token for token, keep in zip(ids, mask, strict=True) if keep])
    assert trained == f"42.{END_OF_TURN}Yes.{END_OF_TURN}"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
