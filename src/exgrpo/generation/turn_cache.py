"""The KV cache of a rollout batch kept from one dialogue turn to the next.

Without it every turn is a fresh `generate` call that re-reads the whole dialogue so far (prompt, earlier
answers, probes): k + 1 prefills per rollout. With it, a turn only feeds what is new since the last one
(the injected user turn and the assistant header) and continues from `past_key_values`; rows whose
dialogue is over (scenario B after its k' + 1 turns) leave the cache.

How rows line up: every row lives in one rectangular tensor. A row that stopped early in a turn has
padding after its stop token (generate pads finished rows), and the new tokens of the next turn are
left-padded to the longest; those holes are masked (attention mask 0), and generate's position ids
(cumsum of the mask) count real tokens only, so each row sees exactly its own dialogue. Sampled output
is then the same as generating each dialogue from scratch (tested: the same sampled tokens under one seed,
and the same log-probabilities).

Only plain `DynamicCache` models (no sliding-window layers): `exgrpo.generation.continuous.supports_continuous`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from exgrpo.generation.continuous import drop_cache_columns, leading_padding, select_cache_rows


class TurnCache:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.reset()

    def reset(self) -> None:
        self.keys: list[Hashable] = []  # the rollout of each row
        self.known: list[list[int]] = []  # each row's real tokens so far: its next context must start with them
        self.ids: Any = None  # [rows, width] every position, padding included
        self.mask: Any = None  # [rows, width] 1 = real token
        self.cache: Any = None  # DynamicCache over ids[:, :-1]: generate never feeds its last token

    def _rows(self, contexts: Sequence[list[int]], keys: Sequence[Hashable]) -> list[int] | None:
        """The row holding each context's rollout, when every context continues what its row has seen."""
        if self.cache is None or len(set(keys)) != len(keys) or not set(keys) <= set(self.keys):
            return None
        row_of = {key: row for row, key in enumerate(self.keys)}
        rows = [row_of[key] for key in keys]
        continues = all(context[: len(self.known[row])] == self.known[row] for context, row in zip(
            contexts, rows, strict=True))
        return rows if continues else None

    def inputs(self, model: Any, contexts: Sequence[list[int]], keys: Sequence[Hashable]) -> dict[str, Any]:
        """`generate` keyword arguments for these contexts: the whole batch as ids and mask, and the cache of
        what was seen before (a new cache when the contexts do not continue the rows held)."""
        import torch
        from transformers import DynamicCache

        device = model.device
        rows = self._rows(contexts, keys)
        if rows is None:
            self.reset()
            pending = [list(context) for context in contexts]
            self.ids = torch.empty((len(contexts), 0), dtype=torch.long, device=device)
            self.mask = torch.empty((len(contexts), 0), dtype=torch.long, device=device)
            self.cache = DynamicCache(config=model.config)
        else:
            pending = [list(context[len(self.known[row]) :]) for context, row in zip(contexts, rows, strict=True)]
            self._keep(rows)
        width = max(len(tokens) for tokens in pending)
        new_ids = torch.tensor([[self.pad_id] * (width - len(t)) + t for t in pending], device=device)
        new_mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in pending], device=device)
        self.ids, self.mask = torch.cat([self.ids, new_ids], 1), torch.cat([self.mask, new_mask], 1)
        self.keys, self.known = list(keys), [list(context) for context in contexts]
        return {"input_ids": self.ids, "attention_mask": self.mask, "past_key_values": self.cache}

    def _keep(self, rows: list[int]) -> None:
        import torch

        index = torch.tensor(rows, dtype=torch.long, device=self.ids.device)
        self.ids, self.mask = self.ids[index], self.mask[index]
        select_cache_rows(self.cache, index)
        # Leading columns that are padding in every row left cost attention time for nothing.
        unused = min(leading_padding(self.mask), self.cache.get_seq_length())
        if unused:
            self.ids, self.mask = self.ids[:, unused:], self.mask[:, unused:]
            drop_cache_columns(self.cache, unused)

    def update(self, sequences: Any, lengths: Sequence[int]) -> None:
        """After generate: `sequences` (inputs + new tokens) and how many new tokens of each row are real
        (up to and including its stop token)."""
        import torch

        new = sequences.shape[1] - self.ids.shape[1]
        real = torch.arange(new, device=sequences.device)[None, :] < torch.tensor(lengths, device=sequences.device)[:, None]
        self.mask = torch.cat([self.mask, real.long()], 1)
        self.ids = sequences
        self.known = [known + sequences[row, sequences.shape[1] - new : sequences.shape[1] - new + length].tolist()
                      for row, (known, length) in enumerate(zip(self.known, lengths, strict=True))]
