"""What a run's stages measured of this machine's speed, and what its RL stage shows: for results pages, so that a
reader can tell a slow machine from a slow program, and a short RL stage from a result."""

from __future__ import annotations

import json
from typing import Any

from exgrpo.runner.layout import RunLayout
from exgrpo.runner.results import RunResults, sitting_tokens


def sft_tokens_per_s(run: RunResults) -> float | None:
    """Training tokens per second of the SFT stage: its last sitting's tokens (TRL's `num_tokens`) over that
    sitting's `train_runtime` (a resumed training's runtime counts its own sitting only)."""
    history = run.training_log("sft") or []
    tokens = (sitting_tokens(history) or [None])[-1]
    runtime = next((e["train_runtime"] for e in reversed(history) if "train_runtime" in e), None)
    return tokens / runtime if tokens and runtime else None


def eval_tokens_per_s(run: RunResults, model: str) -> float | None:
    """Generated tokens per second of one model's evaluation (all its datasets)."""
    evaluation = run.evaluation(model)
    if evaluation is None or not evaluation.seconds:
        return None
    generated = sum(row.get("generated_tokens", 0) for row in evaluation.report["datasets"])
    return generated / evaluation.seconds if generated else None


def rl_steps(layout: RunLayout) -> list[dict[str, Any]]:
    """The RL stage's diagnostics, one record per logged step (exgrpo.rl.diagnostics)."""
    # rl.diagnostics loads transformers (seconds), which `exgrpo --help` must not pay for.
    from exgrpo.rl.diagnostics import DIAGNOSTICS_FILE

    path = layout.stage_dir("train") / DIAGNOSTICS_FILE
    return json.loads(path.read_text())["steps"] if path.exists() else []


def mean_of(records: list[dict[str, Any]], field: str) -> float | None:
    """The mean of a field over the records that have it; None when none has."""
    values = [r[field] for r in records if r.get(field) is not None]
    return sum(values) / len(values) if values else None


def speeds_line(layout: RunLayout) -> str:
    """One sentence of measured speeds: SFT training, evaluation, RL rollouts and updates (tokens per second)."""
    run = RunResults(layout)
    steps = rl_steps(layout)
    parts = [("SFT training", sft_tokens_per_s(run), "tokens/s"),
             ("evaluation (SFT model)", eval_tokens_per_s(run, "sft"), "generated tokens/s"),
             ("RL rollouts", mean_of(steps, "rollout_tokens_per_s"), "generated tokens/s"),
             ("RL update", mean_of(steps, "update_tokens_per_s"), "sequence tokens/s")]
    shown = [f"{name} {value:.0f} {unit}" for name, value, unit in parts if value is not None]
    return ("Speeds measured in this run (compare them with another machine's before comparing wall times): "
            + "; ".join(shown) + ".") if shown else ""


def rl_stage_summary(layout: RunLayout) -> str:
    """What the RL stage did, from its diagnostics: steps, reward per step, and its signal (spread, cut, KL)."""
    steps = rl_steps(layout)
    if not steps:
        return ""
    rewards = ", ".join(f"{r['reward']:.2f}" for r in steps if r.get("reward") is not None)
    facts = [f"{len(steps)} steps", f"reward per step {rewards}"]
    for field, label, form in (("zero_spread", "groups without reward spread", ".0%"),
                               ("cut_turns", "turns cut by the budget", ".0%"), ("kl", "KL to the SFT model", ".4f")):
        value = mean_of(steps, field)
        if value is not None:
            facts.append(f"{label} {format(value, form)}")
    return "; ".join(facts)
