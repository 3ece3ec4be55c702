"""Token log-probabilities on a CPU: the LM head in row chunks, each recomputed in the backward pass.

TRL (1.16) computes the log-probabilities of its SFT and GRPO losses through a chunked LM head
(`trl.kernels.ChunkedLogProbFunction`) that never holds the batch x length x vocabulary logits. Its tiles are
folded by a Triton kernel on a GPU and, elsewhere, by a sequence of separate torch operations over
4096 x 32768 fp32 tiles, which on a CPU are bound by memory traffic: for SmolLM2-135M (vocabulary 49,152), 3,120
labelled tokens took 2.1 s forward and 8.5 s backward there, against 1.8 s and 3.0 s here (benchmarks/
exgrpo_step.py measures whole steps). Here each chunk of rows is one bf16 matmul and one fused `log_softmax`,
under activation checkpointing, so that only one chunk's logits exist at a time, forward or backward.

The same values (log-probability of the target, and the entropy, at the temperature TRL passes); on other devices,
or when TRL asks for outputs this head does not compute, TRL's own function runs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

ROWS_PER_CHUNK = 1024  # 1024 x 49,152 fp32 logits: 200 MB at a time
OUTPUTS = ("log_probs", "entropy")


def _chunk(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
           dtype: torch.dtype, inv_temperature: float, logit_scale: float, softcap: float | None,
           with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    logits = hidden.to(dtype) @ weight.to(dtype).t()
    if bias is not None:
        logits = logits + bias.to(dtype)
    logits = logits.float() * logit_scale  # the order of TRL's transform: scale, soft cap, temperature
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logprobs = torch.log_softmax(logits * inv_temperature, dim=-1)
    target = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
    entropy = -(logprobs.exp() * logprobs).sum(-1) if with_entropy else target.new_zeros(())
    return target, entropy


class CPULogProbs:
    """A drop-in for `trl.kernels.ChunkedLogProbFunction` (the same `apply` arguments and outputs) on a CPU."""

    trl_function: Any = None  # TRL's own, for other devices and outputs

    @classmethod
    def apply(cls, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
              temperature: float, chunk_size: int, final_logit_softcapping: float | None = None,
              logit_scale: float = 1.0, outputs: tuple[str, ...] = ("log_probs",)) -> tuple[Any, ...]:
        if hidden.device.type != "cpu" or not set(outputs) <= set(OUTPUTS):
            return cls.trl_function.apply(hidden, weight, bias, targets, temperature, chunk_size,
                                          final_logit_softcapping, logit_scale, outputs)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
        with_entropy = "entropy" in outputs
        logprobs, entropies = [], []
        with torch.autocast("cpu", enabled=False):  # the chunk picks its own dtypes
            for start in range(0, hidden.size(0), ROWS_PER_CHUNK):
                rows = slice(start, start + ROWS_PER_CHUNK)
                target, entropy = checkpoint(_chunk, hidden[rows], weight, bias, targets[rows], dtype, 1 / temperature,
                                             logit_scale, final_logit_softcapping, with_entropy, use_reentrant=False)
                logprobs.append(target)
                entropies.append(entropy)
        empty = hidden.new_zeros(0, dtype=torch.float32)
        logprob = torch.cat(logprobs) if logprobs else empty
        entropy = (torch.cat(entropies) if entropies else empty) if with_entropy else None
        return logprob, entropy, None, None, None


def use_cpu_logprobs() -> None:
    """Make TRL's fused LM head (SFT and GRPO losses) compute its log-probabilities with CPULogProbs on a CPU.

    TRL's head calls the name `_ChunkedLogProbFunction` of `trl.trainer.utils` at each forward; that name is
    swapped here (idempotent). If TRL renames it, nothing changes and TRL's function keeps running."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if current is None or current is CPULogProbs:
        return
    CPULogProbs.trl_function = current
    trl_utils._ChunkedLogProbFunction = CPULogProbs
