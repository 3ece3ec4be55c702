"""The update's micro-batches: every rollout once, grouped by length, padding stripped, the loss unchanged."""

from __future__ import annotations

import pytest
import torch

from exgrpo.rl.micro_batches import micro_batches


def scored_batch(prompt_lengths: list[int], completion_lengths: list[int]) -> dict:
    """A batch shaped like TRL's: prompts left-padded, completions right-padded, token ids that name their row."""
    rows = len(prompt_lengths)
    prompt_width, completion_width = max(prompt_lengths) + 2, max(completion_lengths) + 3  # extra all-pad columns
    prompt_mask = torch.zeros(rows, prompt_width, dtype=torch.long)
    completion_mask = torch.zeros(rows, completion_width, dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompt_lengths, completion_lengths, strict=True)):
        prompt_mask[row, prompt_width - p :] = 1
        completion_mask[row, :c] = 1
    ids = torch.arange(rows).unsqueeze(1) * 1000
    return {
        "prompt_ids": (ids + torch.arange(prompt_width)) * prompt_mask,
        "prompt_mask": prompt_mask,
        "completion_ids": (ids + 500 + torch.arange(completion_width)) * completion_mask,
        "completion_mask": completion_mask,
        "ref_per_token_logps": torch.randn(rows, completion_width) * completion_mask,
        "tool_mask": completion_mask.clone(),
        "advantages": torch.randn(rows),
        "num_items_in_batch": torch.tensor(int(completion_mask.sum())),
    }


def row_tokens(batch: dict, row: int) -> tuple[list[int], list[int]]:
    prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()].tolist()
    completion = batch["completion_ids"][row][batch["completion_mask"][row].bool()].tolist()
    return prompt, completion


def per_rollout_mean_loss(batch: dict) -> torch.Tensor:
    """GRPO's normalisation: each rollout's mean over its own tokens, then the mean over rollouts."""
    mask = batch["completion_mask"] * batch["tool_mask"]
    per_token = batch["ref_per_token_logps"] * batch["advantages"].unsqueeze(1)
    return ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()


def test_every_rollout_lands_once_with_its_tokens_and_values() -> None:
    batch = scored_batch([5, 3, 7, 4, 6, 2], [9, 2, 4, 12, 3, 7])
    parts = micro_batches(batch, 3)
    seen = {}
    for part in parts:
        assert part["prompt_ids"].shape[0] == 2
        for row in range(2):
            tokens = row_tokens(part, row)
            seen[tokens[0][0] // 1000 if tokens[0] else None] = (tokens, part["advantages"][row].item())
        assert torch.equal(part["num_items_in_batch"], batch["num_items_in_batch"])  # per-batch values kept
    assert sorted(seen) == list(range(6))
    for original in range(6):
        assert seen[original] == (row_tokens(batch, original), batch["advantages"][original].item())


def test_rows_of_similar_length_go_together_and_padding_is_stripped() -> None:
    batch = scored_batch([5, 3, 7, 4, 6, 2], [9, 2, 4, 12, 3, 7])  # totals 14, 5, 11, 16, 9, 9
    parts = micro_batches(batch, 3)
    totals = [sorted((p["prompt_mask"].sum(1) + p["completion_mask"].sum(1)).tolist()) for p in parts]
    assert totals == [[14, 16], [9, 11], [5, 9]]
    for part in parts:
        # The widest row of each micro-batch has no padding column left on its side.
        assert part["prompt_mask"][:, 0].any() and part["completion_mask"][:, -1].any()
        assert part["ref_per_token_logps"].shape == part["completion_mask"].shape == part["tool_mask"].shape
    assert sum(p["completion_mask"].numel() for p in parts) < batch["completion_mask"].numel()


def test_the_mean_of_micro_batch_losses_is_the_whole_batch_loss() -> None:
    batch = scored_batch([5, 3, 7, 4, 6, 2, 8, 1], [9, 2, 4, 12, 3, 7, 1, 5])
    whole = per_rollout_mean_loss(batch)
    parts = micro_batches(batch, 4)
    assert torch.stack([per_rollout_mean_loss(p) for p in parts]).mean() == pytest.approx(whole.item(), rel=1e-6)


def test_a_batch_that_does_not_split_evenly_is_refused() -> None:
    with pytest.raises(ValueError, match="5 rollouts do not split into 2"):
        micro_batches(scored_batch([1] * 5, [1] * 5), 2)
