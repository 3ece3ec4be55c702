"""The update's micro-batches: a step's scored rollouts, grouped by length and stripped of padding.

TRL generates the rollouts of a whole optimizer step together (`steps_per_generation` micro-batches' worth),
then shuffles them and cuts the batch into micro-batches that keep the whole batch's width: every row padded
to the longest dialogue of the step. ExGRPO's rows differ a lot in length (scenario A has k + 1 turns,
B k' + 1), and on a CPU every padded position costs a full forward and backward. Here the rows are sorted by
length before the cut, and each micro-batch keeps only the columns some row of it uses. The gradient of the
step is the same: the micro-batches of one generation are accumulated into one optimizer step (TRL's order
within a step does not matter then), and the losses read only positions that the masks keep.
"""

from __future__ import annotations

from typing import Any

import torch

# Keys of TRL's scored batch whose second dimension is the prompt's (left-padded) or the completion's (right-padded).
PROMPT_KEYS = ("prompt_ids", "prompt_mask")


def micro_batches(batch: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Cut a scored generation batch (TRL's `_generate_and_score_completions` output) into `count` micro-batches
    of equal size, rows of similar total length together, each trimmed to the columns its rows use."""
    prompt_mask, completion_mask = batch["prompt_mask"], batch["completion_mask"]
    rows = prompt_mask.size(0)
    if rows % count:
        raise ValueError(f"{rows} rollouts do not split into {count} equal micro-batches")
    lengths = prompt_mask.sum(dim=1) + completion_mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    size = rows // count
    return [_trimmed(_rows(batch, order[start : start + size], rows)) for start in range(0, rows, size)]


def _rows(batch: dict[str, Any], index: torch.Tensor, rows: int) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == rows:
            picked[key] = value[index.to(value.device)]
        elif isinstance(value, list) and len(value) == rows:
            picked[key] = [value[i] for i in index.tolist()]
        else:
            picked[key] = value  # per-batch values (e.g. num_items_in_batch) stay as they are
    return picked


def _trimmed(batch: dict[str, Any]) -> dict[str, Any]:
    """Drop the prompt's leading and the completion's trailing columns that no row of this micro-batch uses."""
    prompt_width = batch["prompt_mask"].size(1)
    prompt_used = batch["prompt_mask"].any(dim=0).nonzero()
    first = int(prompt_used[0]) if prompt_used.numel() else prompt_width
    completion_width = batch["completion_mask"].size(1)
    completion_used = batch["completion_mask"].any(dim=0).nonzero()
    last = int(completion_used[-1]) + 1 if completion_used.numel() else 0
    trimmed = {}
    for key, value in batch.items():
        if key in PROMPT_KEYS:
            trimmed[key] = value[:, first:]
        elif isinstance(value, torch.Tensor) and value.dim() == 2 and value.size(1) == completion_width:
            trimmed[key] = value[:, :last]
        else:
            trimmed[key] = value
    return trimmed
