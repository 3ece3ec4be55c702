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

import functools
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


@functools.cache
def _growing_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer that writes new keys and values into spare room instead of concatenating.

        Why: DynamicLayer.update concatenates at every decoding step, copying the whole cache each time
        (quadratic in the length); on the tiny model that was 17 % of a multi-turn rollout's time. Here the
        cache is a view of a larger buffer that grows by half when full. Code that replaces `keys`/`values`
        (rows selected, columns dropped, batches joined: see DecodeBatch) simply starts a new buffer.
        SmolLM2-135M in bf16 (grouped key/value heads, exgrpo.generation.cpu_attention) ran as fast either way."""

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            length = self.keys.shape[-2] if self.keys.numel() else 0
            new = key_states.shape[-2]
            buffers = getattr(self, "grow_buffers", None)
            if (buffers is None or buffers[0].shape[0] != key_states.shape[0] or length + new > buffers[0].shape[-2]
                    or (length and buffers[0].data_ptr() != self.keys.data_ptr())):
                capacity = length + new + max(32, (length + new) // 2)
                buffers = tuple(states.new_empty((*states.shape[:2], capacity, states.shape[-1]))
                                for states in (key_states, value_states))
                if length:
                    buffers[0][:, :, :length], buffers[1][:, :, :length] = self.keys, self.values
                self.grow_buffers = buffers
            buffers[0][:, :, length : length + new] = key_states
            buffers[1][:, :, length : length + new] = value_states
            self.keys, self.values = buffers[0][:, :, : length + new], buffers[1][:, :, : length + new]
            return self.keys, self.values

    return GrowingLayer


def new_cache(model: Any) -> Any:
    """An empty DynamicCache for `model` (`supports_continuous` models); on a CPU its layers grow in place.

    Only on a CPU, where it was measured: the views it hands to attention are strided, and what GPU kernels
    do with those was not."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    if model.device.type == "cpu":
        for layer in cache.layers:
            layer.__class__ = _growing_layer()
    return cache


def select_cache_rows(cache: Any, index: Any) -> None:
    """Keep only the batch rows `index` (a long tensor) of every layer of a DynamicCache, in place."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[index], layer.values[index]
        layer.__dict__.pop("grow_buffers", None)  # a GrowingLayer starts a new buffer: free the old one now


def leading_padding(mask: Any) -> int:
    """How many leading columns of an attention mask are padding in every row."""
    return int((mask.sum(0) == 0).long().cumprod(0).sum())


def drop_cache_columns(cache: Any, count: int) -> None:
    """Drop the first `count` positions of every layer of a DynamicCache, in place."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, count:], layer.values[:, :, count:]
        layer.__dict__.pop("grow_buffers", None)


class DecodeBatch:
    """Rows being decoded together: their KV cache, attention mask, the token each feeds next, and what each
    has generated so far (with the sampling log-probabilities, when kept). Shared by eval's continuous
    batching and ExGRPO's multi-turn rollouts (`exgrpo.generation.dialogue_decoding`)."""

    def __init__(self) -> None:
        self.rows: list[Any] = []  # what each row is (a prompt index, a rollout)
        self.generated: list[list[int]] = []
        self.logprobs: list[list[float]] = []
        self.cache: Any = None
        self.mask: Any = None  # [rows, cached length] 1 = real token, 0 = padding
        self.next_tokens: Any = None  # [rows] the token to feed at the next step
        self.next_logprobs: list[float] = []

    def feed(self, model: Any, chunks: Sequence[list[int]], pad_id: int) -> Any:
        """Run `chunks` (one list of new tokens per row, any lengths) through the model after what each row has
        seen, left-padded to the longest: the holes are masked, and positions count real tokens only.
        A batch without a cache starts one (a prefill). Returns the logits of each row's last token."""
        import torch

        device = model.device
        width = max(len(chunk) for chunk in chunks)
        ids = torch.tensor([[pad_id] * (width - len(c)) + list(c) for c in chunks], device=device)
        new_mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunks], device=device)
        if self.cache is None:
            self.cache, self.mask = new_cache(model), new_mask
        else:
            self.mask = torch.cat([self.mask, new_mask], dim=-1)
        positions = (self.mask.cumsum(-1)[:, -width:] - 1).clamp(min=0)
        output = model(input_ids=ids, attention_mask=self.mask, position_ids=positions, past_key_values=self.cache,
                       use_cache=True, logits_to_keep=1)
        return output.logits[:, -1]

    def step(self, model: Any) -> Any:
        """Feed every row's next token (one decoding step); the logits of the token after it."""
        import torch

        positions = self.mask.sum(-1, keepdim=True)  # the next token's position in its own row
        self.mask = torch.cat([self.mask, torch.ones_like(positions)], dim=-1)
        output = model(input_ids=self.next_tokens[:, None], attention_mask=self.mask, position_ids=positions,
                       past_key_values=self.cache, use_cache=True)
        return output.logits[:, -1]

    def take(self, rows: list[int]) -> DecodeBatch:
        """A new batch holding a copy of the rows `rows` (their cache, mask and state)."""
        import copy

        import torch

        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        taken = DecodeBatch()
        taken.rows = [self.rows[i] for i in rows]
        taken.generated = [self.generated[i] for i in rows]
        taken.logprobs = [self.logprobs[i] for i in rows]
        taken.next_logprobs = [self.next_logprobs[i] for i in rows] if self.next_logprobs else []
        taken.mask, taken.next_tokens = self.mask[index], self.next_tokens[index]
        taken.cache = copy.copy(self.cache)
        taken.cache.layers = [copy.copy(layer) for layer in self.cache.layers]
        select_cache_rows(taken.cache, index)  # new tensors: the copies share no buffer with this batch
        taken._drop_unused_columns()
        return taken

    def keep(self, keep: list[int]) -> None:
        import torch

        if not keep:
            self.__init__()  # type: ignore[misc]
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.generated = [self.generated[i] for i in keep]
        self.logprobs = [self.logprobs[i] for i in keep]
        if self.next_logprobs:
            self.next_logprobs = [self.next_logprobs[i] for i in keep]
        self.mask = self.mask[index]
        self.next_tokens = self.next_tokens[index]
        select_cache_rows(self.cache, index)
        self._drop_unused_columns()

    def _drop_unused_columns(self) -> None:
        # Columns that are padding in every remaining row cost attention time for nothing.
        unused = leading_padding(self.mask)
        if unused:
            self.mask = self.mask[:, unused:]
            drop_cache_columns(self.cache, unused)

    def join(self, other: DecodeBatch) -> None:
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
            mine.__dict__.pop("grow_buffers", None)
        self.next_tokens = torch.cat([self.next_tokens, other.next_tokens])
        self.next_logprobs = self.next_logprobs + other.next_logprobs
        self.rows += other.rows
        self.generated += other.generated
        self.logprobs += other.logprobs


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
    batch = DecodeBatch()

    def choose(logits: Any) -> Any:
        if temperature <= 0:
            return logits.argmax(-1)
        return torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1).squeeze(-1)

    def prefill(indices: list[int]) -> DecodeBatch:
        new = DecodeBatch()
        new.rows, new.generated, new.logprobs = list(indices), [[] for _ in indices], [[] for _ in indices]
        new.next_tokens = choose(new.feed(model, [prompts[i] for i in indices], pad_id))
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
            batch.next_tokens = choose(batch.step(model))
    return [tokens or [] for tokens in outputs]
