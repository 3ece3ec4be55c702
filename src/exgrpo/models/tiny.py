"""A tiny student built offline: a small Llama/Qwen2 config and a byte-level BPE tokenizer trained here.

Saved in Hugging Face format, so every stage loads it exactly as it loads a 7B model from the hub.
The chat template is ChatML with `{% generation %}` around assistant content (TRL's
`assistant_only_loss` needs it) and `<|im_end|>` as EOS, so generation stops at the end of each turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from exgrpo.data.prompts import INSTRUCTIONS
from exgrpo.models.chat_templates import chatml_template

END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|bos|>", "<|im_start|>", END_OF_TURN]
# Qwen2Tokenizer rebuilds any tokenizer saved beside a Qwen2 config with this pre-tokenizer (and NFC),
# so a tiny Qwen2 student is trained with the same, and loads back unchanged.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHAT_TEMPLATE = chatml_template()


def builtin_corpus() -> Iterator[str]:
    """Enough text to give the tokenizer every byte, digits, option markers and the prompt wording."""
    yield from INSTRUCTIONS.values()
    yield "The answer is (A). (B) (C) (D) (E) The answer is yes. The answer is no. 0123456789 + - * / = , . % $"
    yield "Premise: Hypothesis: entailment neutral contradiction Options: Question: Passage: \\boxed{\\frac{1}{2}}"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, qwen2_style: bool = False):
    """A byte-level BPE tokenizer (any text is encodable) wrapped as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    if qwen2_style:
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|bos|>", eos_token=END_OF_TURN,
                                        pad_token="<|pad|>", unk_token="<|endoftext|>", padding_side="left")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(out_dir: str | Path, texts: Iterable[str] | None = None, arch: Literal["llama", "qwen2"] = "llama",
                     vocab_size: int = 512, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                     max_positions: int = 2048, seed: int = 0) -> Path:
    """Train a tokenizer on `texts` (default: a small built-in corpus), initialise a model, save both."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    out_dir = Path(out_dir)
    corpus = list(texts) if texts is not None else []
    tokenizer = train_tokenizer([*builtin_corpus(), *corpus], vocab_size=vocab_size, qwen2_style=arch == "qwen2")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config_class = LlamaConfig if arch == "llama" else Qwen2Config
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 4 // 3 * 2,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        bos_token_id=ids["<|bos|>"], eos_token_id=ids[END_OF_TURN], pad_token_id=ids["<|pad|>"],
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|bos|>"], eos_token_id=ids[END_OF_TURN],
                                               pad_token_id=ids["<|pad|>"])
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir

