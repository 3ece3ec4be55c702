"""Continuous batching for `generate` on a CPU: a finished row leaves the batch and a waiting prompt takes
its place, so a batch never waits for its longest answer.

Why by hand: `model.generate` keeps every row until the longest one ends (eval outputs run from 5 to 512
tokens), and transformers' own continuous batching (`generate_batch`, paged attention) ran at 47 tok/s
here against 196 tok/s for plain `generate` at batch 32 (SmolLM2-135M, fp32, 2 cores; see
benchmarks/eval_throughput.py). This loop keeps transformers' model and `DynamicCache`: rows of the cache
are dropped when they finish, and new prompts are prefilled as a left-padded batch and joined to it.
Models whose cache is not a plain `DynamicCache` (sliding-window layers) are not supported here:
`supports_continuous` tells, and the caller then uses `generate`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any


def supports_continuous(model: Any) -> bool:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # an architecture whose cache cannot be built from its config
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def select_cache_rows(cache: Any, index: Any) -> None:
    """Keep only the batch rows `index` (a long tensor) of every layer of a DynamicCache, in place."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[index], layer.values[index]


def leading_padding(mask: Any) -> int:
    """How many leading columns of an attention mask are padding in every row."""
    return int((mask.sum(0) == 0).long().cumprod(0).sum())


def drop_cache_columns(cache: Any, count: int) -> None:
    """Drop the first `count` positions of every layer of a DynamicCache, in place."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, count:], layer.values[:, :, count:]


class _Batch:
    """The rows being decoded: their KV cache, attention mask, next positions and tokens so far."""

    def __init__(self) -> None:
        self.rows: list[int] = []  # prompt index of each row
        self.generated: list[list[int]] = []
        self.cache: Any = None
        self.mask: Any = None  # [rows, cached length] 1 = real token, 0 = left padding
        self.next_tokens: Any = None  # [rows] the token to feed at the next step

    def keep(self, keep: list[int]) -> None:
        import torch

        if not keep:
            self.__init__()  # type: ignore[misc]
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.generated = [self.generated[i] for i in keep]
        self.mask = self.mask[index]
        self.next_tokens = self.next_tokens[index]
        select_cache_rows(self.cache, index)
        # Columns that are padding in every remaining row cost attention time for nothing.
        unused = leading_padding(self.mask)
        if unused:
            self.mask = self.mask[:, unused:]
            drop_cache_columns(self.cache, unused)

    def join(self, other: _Batch) -> None:
        """Append `other`'s rows, left-padding the shorter cache to the longer one's length."""
        import torch
        import torch.nn.functional as F

        if self.cache is None:
            self.__dict__.update(other.__dict__)
            return
        width = max(self.mask.shape[1], other.mask.shape[1])

        def pad(tensor: Any, dim_from_end: int) -> Any:
            missing = width - tensor.shape[-dim_from_end]
            if missing == 0:
                return tensor
            return F.pad(tensor, [0, 0] * (dim_from_end - 1) + [missing, 0])

        self.mask = torch.cat([pad(self.mask, 1), pad(other.mask, 1)])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([pad(mine.keys, 2), pad(theirs.keys, 2)])
            mine.values = torch.cat([pad(mine.values, 2), pad(theirs.values, 2)])
        self.next_tokens = torch.cat([self.next_tokens, other.next_tokens])
        self.rows += other.rows
        self.generated += other.generated


def decode_continuously(model: Any, prompts: Sequence[list[int]], max_new_tokens: int, batch_size: int,
                        stop_ids: Sequence[int], pad_id: int, temperature: float = 0.0,
                        on_finished: Callable[[int, list[int]], None] | None = None) -> list[list[int]]:
    """Generated tokens for each prompt (stop token included when produced), greedy or sampled at
    `temperature`. Prompts are taken in the order given; at most `batch_size` rows decode at once.
    `on_finished(prompt index, tokens)` is called as each prompt's generation ends."""
    import torch

    stop = set(stop_ids)
    waiting = deque(range(len(prompts)))
    outputs: list[list[int] | None] = [None] * len(prompts)
    batch = _Batch()
    device = model.device

    def choose(logits: Any) -> Any:
        if temperature <= 0:
            return logits.argmax(-1)
        return torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1).squeeze(-1)

    def prefill(indices: list[int]) -> _Batch:
        width = max(len(prompts[i]) for i in indices)
        ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in indices], device=device)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in indices], device=device)
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        output = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
        new = _Batch()
        new.rows, new.generated, new.cache, new.mask = list(indices), [[] for _ in indices], cache, mask
        new.next_tokens = choose(output.logits[:, -1])
        return new

    with torch.inference_mode():
        while waiting or batch.rows:
            # Refill once a quarter of the rows are free: joining copies the cache, so not for every row.
            free = batch_size - len(batch.rows)
            if waiting and (not batch.rows or free >= max(1, batch_size // 4)):
                batch.join(prefill([waiting.popleft() for _ in range(min(free, len(waiting)))]))
            tokens = batch.next_tokens.tolist()
            finished = []
            for row, token in enumerate(tokens):
                batch.generated[row].append(token)
                if token in stop or len(batch.generated[row]) >= max_new_tokens:
                    finished.append(row)
            for row in finished:
                outputs[batch.rows[row]] = batch.generated[row]
                if on_finished is not None:
                    on_finished(batch.rows[row], batch.generated[row])
            if finished:
                finished_rows = set(finished)
                batch.keep([row for row in range(len(tokens)) if row not in finished_rows])
                if not batch.rows:
                    continue
            positions = batch.mask.sum(-1, keepdim=True)  # the next token's position in its own row
            batch.mask = torch.cat([batch.mask, torch.ones_like(positions)], dim=-1)
            output = model(input_ids=batch.next_tokens[:, None], attention_mask=batch.mask, position_ids=positions,
                           past_key_values=batch.cache, use_cache=True)
            batch.next_tokens = choose(output.logits[:, -1])
    return [tokens or [] for tokens in outputs]
