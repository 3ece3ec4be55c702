"""Attention for sampling on a CPU: one-token decoding steps by two matmuls and a softmax, everything else
(prompts, injected turns, training) by transformers' SDPA.

Why: torch's CPU SDPA kernel is slow at one query token in bf16. Measured on 2 cores with avx512_bf16, 16 rows
x 9 heads x 180 cached tokens: 1.00 ms against 0.17 ms for the matmuls (in fp32: 0.15 against 0.14 ms);
that was a third of a SmolLM2-135M decoding step. At 40 query tokens SDPA is the faster (2.2 against
4.0 ms), hence the split. Registered under NAME with transformers' AttentionInterface (and its mask
interface, with SDPA's boolean masks), so any model that dispatches attention through it can use it:
`model.set_attn_implementation(cpu_decode_attention())`.
"""

from __future__ import annotations

import functools
from typing import Any

NAME = "exgrpo_cpu_decode"


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
               scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    special = any(kwargs.get(name) is not None for name in ("softcap", "s_aux", "sliding_window", "position_bias"))
    if query.shape[2] != 1 or special or (module.training and dropout):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    # Query head h reads key/value head h // groups (transformers' repeat_kv): group the query heads instead
    # of repeating the cache.
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    weights = torch.matmul(grouped, key.transpose(2, 3)) * (scaling if scaling is not None else dim ** -0.5)
    if attention_mask is not None:  # [batch, 1, 1, cached]: True (or 0.0) where attended
        mask = attention_mask[..., : key.shape[2]]
        weights = (weights.masked_fill(~mask, torch.finfo(weights.dtype).min) if mask.dtype == torch.bool
                   else weights + mask)
    probabilities = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(probabilities, value)  # [batch, kv_heads, groups, dim]
    return output.reshape(batch, 1, heads, dim), None


@functools.cache
def cpu_decode_attention() -> str:
    """Register the attention (once) and return its name for `set_attn_implementation`."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
