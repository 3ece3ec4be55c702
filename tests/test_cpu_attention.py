"""The CPU decoding attention computes what SDPA computes: same logits at every step, with padding holes and
grouped key/value heads, in fp32 and bf16."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from exgrpo.generation.continuous import DecodeBatch
from exgrpo.generation.cpu_attention import cpu_decode_attention


def decode_logits(model, chunks_per_round: list[list[list[int]]], steps: int) -> list[torch.Tensor]:
    """Feed ragged chunks (left-padded, so rows get holes), then a few one-token steps, round after round."""
    batch, logits = DecodeBatch(), []
    batch.rows = list(range(len(chunks_per_round[0])))
    with torch.inference_mode():
        for chunks in chunks_per_round:
            logits.append(batch.feed(model, chunks, pad_id=0))
            for _ in range(steps):
                batch.next_tokens = logits[-1].argmax(-1)
                logits.append(batch.step(model))
    return logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoding_steps_match_sdpa_with_holes_and_grouped_heads(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
    sdpa = LlamaForCausalLM(config).to(dtype).eval()
    ours = copy.deepcopy(sdpa)
    ours.set_attn_implementation(cpu_decode_attention())
    assert ours.config._attn_implementation != sdpa.config._attn_implementation
    rounds = [[[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], [[20], [21, 22, 23, 24], [25, 26]]]
    expected, got = decode_logits(sdpa, rounds, steps=3), decode_logits(ours, rounds, steps=3)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert torch.allclose(want.float(), have.float(), atol=tolerance, rtol=tolerance), step
