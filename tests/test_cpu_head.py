"""The CPU LM head gives TRL's chunked head's log-probabilities, entropies and gradients."""

from __future__ import annotations

import pytest
import torch
from trl.kernels import ChunkedLogProbFunction

from exgrpo.training import cpu_head
from exgrpo.training.cpu_head import CPULogProbs


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize(("temperature", "softcap", "scale"), [(1.0, None, 1.0), (0.7, 30.0, 0.5)])
def test_values_and_gradients_match_trls_head(monkeypatch: pytest.MonkeyPatch, autocast: bool, temperature: float,
                                              softcap: float | None, scale: float) -> None:
    monkeypatch.setattr(cpu_head, "ROWS_PER_CHUNK", 7)  # several chunks, the last one short
    torch.manual_seed(0)
    hidden = torch.randn(30, 16)
    weight = torch.randn(50, 16) * 0.5
    bias = torch.randn(50) * 0.1
    targets = torch.randint(0, 50, (30,))
    results = []
    for function in (ChunkedLogProbFunction, CPULogProbs):
        h, w, b = (x.clone().requires_grad_() for x in (hidden, weight, bias))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logprobs, entropy, *rest = function.apply(h, w, b, targets, temperature, 32, softcap, scale,
                                                      ("log_probs", "entropy"))
        (logprobs * torch.linspace(-1, 1, 30)).sum().add(0.3 * entropy.sum()).backward()
        results.append((logprobs.detach(), entropy.detach(), h.grad, w.grad, b.grad))
    tolerance = 3e-2 if autocast else 1e-4
    for ours, trls in zip(results[1], results[0], strict=True):
        assert torch.allclose(ours, trls, atol=tolerance, rtol=tolerance), (ours - trls).abs().max()
    assert results[1][0].dtype == torch.float32


def test_trls_head_is_replaced_once_and_other_outputs_fall_back() -> None:
    import trl.trainer.utils as trl_utils

    cpu_head.use_cpu_logprobs()
    cpu_head.use_cpu_logprobs()
    assert trl_utils._ChunkedLogProbFunction is CPULogProbs and CPULogProbs.trl_function is ChunkedLogProbFunction
    hidden, weight, targets = torch.randn(4, 8), torch.randn(10, 8), torch.randint(0, 10, (4,))
    outputs = CPULogProbs.apply(hidden, weight, None, targets, 1.0, 32, None, 1.0, ("log_probs", "is_top1"))
    assert outputs[4] is not None  # TRL's function computed what ours does not
