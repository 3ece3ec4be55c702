"""One full ExGRPO step on a real student: its peak resident memory, and where its seconds go.

    python benchmarks/exgrpo_memory.py [--model smollm2-135m-instruct] [--update-batch-size 8] [--lora]

4 questions x (4 + 4) rollouts, k = 2, k' = 1, every turn forced to --tokens (160) new tokens (EOS suppressed),
beta 0.04 (a reference model), the aux loss on: the issue's worst case for memory. Prints the peak resident set
size of the process (the goal: under 8 GB) and the seconds of each part of the step: the rollouts, the
reference model's forward, the policy's forward and backward per micro-batch, the aux loss's forward.
Run it alone: the seconds of a step shared with other work mean little (the memory does not depend on it).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from exgrpo_step import write_ei  # noqa: E402

from exgrpo.config import TrainConfig  # noqa: E402
from exgrpo.models.named import resolve_model  # noqa: E402
from exgrpo.rl.train import build_trainer  # noqa: E402


def timed(owner: Any, name: str, seconds: dict[str, list[float]], label: str | None = None) -> None:
    """Wrap owner.name so that each call's seconds are appended to seconds[label or name]."""
    function = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[label or name].append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=160, help="new tokens per assistant turn (forced)")
    parser.add_argument("--update-batch-size", type=int, default=None, help="rollouts per forward and backward")
    parser.add_argument("--lora", action="store_true", help="LoRA r16 instead of full fine-tuning")
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = TrainConfig(
            model=str(resolve_model(args.model)), ei_data=write_ei(root / "ei.jsonl", 16), output_dir=root / "out",
            max_steps=args.steps, questions_per_step=4, update_batch_size=args.update_batch_size, beta=0.04,
            max_new_tokens=args.tokens, generation_kwargs={"min_new_tokens": args.tokens}, report_to=["none"],
            logging_steps=1, save_steps=10_000, lora={"r": 16, "alpha": 32, "dropout": 0.0} if args.lora else None,
            exgrpo={"k": 2, "k_partial": 1, "rollouts_full": 4, "rollouts_partial": 4, "aux_weight": 0.1})
        trainer = build_trainer(config)
        seconds: dict[str, list[float]] = defaultdict(list)
        timed(trainer, "_rollout", seconds, "rollouts")
        trainer.rollout_func = trainer._rollout
        timed(trainer, "_generate_and_score_completions", seconds, "rollouts + rewards + reference forward")
        timed(trainer, "aux_sft_loss", seconds, "aux loss forward")
        timed(trainer, "training_step", seconds, "micro-step")
        timed(trainer.accelerator, "backward", seconds, "backward")
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
        rows = trainer.args.per_device_train_batch_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"{args.model}, {'LoRA r16' if args.lora else 'full fine-tuning'}, 4 questions x (4 + 4) rollouts, k = 2, "
          f"{args.tokens}-token turns, update in micro-batches of {rows}, beta 0.04, aux on, {args.steps} step(s)")
    print(f"peak resident memory of a full ExGRPO step (goal < 8 GB): {peak:.2f} GiB")
    rollouts = sum(seconds["rollouts"])
    scoring = sum(seconds["rollouts + rewards + reference forward"]) - rollouts
    micro = sum(seconds["micro-step"]) - rollouts - scoring
    backward = sum(seconds["backward"])
    aux = sum(seconds["aux loss forward"])
    print(f"where the {total:.0f} s went: rollouts {rollouts:.0f} s; rewards and reference forward {scoring:.0f} s; "
          f"policy forward (loss, KL, entropy) {micro - backward - aux:.0f} s; aux loss forward {aux:.0f} s; "
          f"backward {backward:.0f} s; other {total - rollouts - scoring - micro:.0f} s")
    print("micro-steps (s): " + ", ".join(f"{s:.1f}" for s in seconds["micro-step"]))


if __name__ == "__main__":
    main()
