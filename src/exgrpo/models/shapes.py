"""Real model shapes with random weights: speed and memory depend on the shape, not on the weights, so a GPU
check needs no download (the machines that lend a GPU have no network).

Each shape is the architecture part of the model's published config.json, written here; the tokenizer is
trained locally (models/tiny.py), its few hundred ids a corner of the real vocabulary, whose full size the
embedding and LM head keep. A random model never picks its end-of-turn token, so every generation runs to its
token budget: the worst case, which is what a throughput check should measure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.models.tiny import END_OF_TURN, SPECIAL_TOKENS, builtin_corpus, train_tokenizer

SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                     "tie_word_embeddings": True, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
                     "max_position_embeddings": 32768},
    "qwen2.5-7b": {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                   "tie_word_embeddings": False, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
                   "max_position_embeddings": 32768},
    "llama-3-8b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                   "tie_word_embeddings": False, "rope_theta": 5e5, "rms_norm_eps": 1e-5,
                   "max_position_embeddings": 8192},
    "gemma-7b": {"model_type": "gemma", "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
                 "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "vocab_size": 256000,
                 "tie_word_embeddings": True, "rope_theta": 1e4, "rms_norm_eps": 1e-6,
                 "max_position_embeddings": 8192},
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                     "tie_word_embeddings": True, "rope_theta": 1e5, "rms_norm_eps": 1e-5,
                     "max_position_embeddings": 8192},
    # For CPUs (the check's own test): the same code on a shape that runs in seconds.
    "tiny": {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "tie_word_embeddings": True,
             "max_position_embeddings": 4096},
}


def build_shaped_model(shape: str, out_dir: str | Path, device: str = "cpu", seed: int = 0) -> tuple[Path, int]:
    """Save a randomly initialised model of `shape` (bf16) with a locally trained tokenizer; returns (folder,
    parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    settings = dict(SHAPES[shape])
    model_type = settings.pop("model_type")
    tokenizer = train_tokenizer(builtin_corpus(), vocab_size=512, qwen2_style=model_type == "qwen2")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = AutoConfig.for_model(model_type, **settings, bos_token_id=ids["<|bos|>"], eos_token_id=ids[END_OF_TURN],
                                  pad_token_id=ids["<|pad|>"])
    torch.manual_seed(seed)
    with torch.device(device):  # a 7B shape initialises in seconds on a GPU, minutes on a CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|bos|>"], eos_token_id=ids[END_OF_TURN],
                                               pad_token_id=ids["<|pad|>"])
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir, sum(p.numel() for p in model.parameters())
