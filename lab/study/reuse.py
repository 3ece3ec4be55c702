"""Work a study does once. A finished stage of one run folder is adopted by another run whose configuration of it
is the same but for where the folders are: its folder is hard-linked in (no copy of the weights) and its manifest
rewritten with the adopting run's stage hash, so the pipeline takes it as done there.

Two cases, both checked stage by stage (`equivalent`), never assumed:
- the tuning seed's run of a method *is* its chosen tuning candidate (same settings, same seed): its SFT and RL
  stages are adopted from the candidates, and a candidate adopts what the seed's run already trained;
- the base student's evaluation (greedy decoding, no training seed in it) is done once: the first finished one is
  kept at <run_root>/base-eval and its predictions copied into every run that evaluates the base student.

An adopted manifest keeps the seconds and CPU time of the training it copies (what that result cost) and names its
`origin`: the folder that trained it and when, so two runs hold the same model exactly when their origins agree (a
folder retrained in place has a new origin).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from exgrpo.files import atomic_write_json
from exgrpo.runner.stage_configs import model_paths, stage_configs

DATA_STAGES = ("world", "base", "probe")  # what the trained stages read: compared before any adoption


def _manifest(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def origin(stage_dir: Path) -> str | None:
    """Which training produced this stage folder's result (None: not finished)."""
    manifest = _manifest(stage_dir)
    if manifest is None:
        return None
    return manifest.get("origin") or f"{stage_dir.resolve()}@{manifest.get('finished')}"


def _normalised(config: Any, stage: str, renames: dict[str, str]) -> str:
    from exgrpo.runner.pipeline import _settings

    value = stage_configs(config)[stage]
    value = {k: _settings(v) for k, v in value.items()} if isinstance(value, dict) else _settings(value)
    text = json.dumps(value, sort_keys=True, default=str)
    for old, new in sorted(renames.items(), key=lambda item: -len(item[0])):  # longest first: no prefix clash
        text = text.replace(f'"{old}"', f'"{new}"').replace(f'"{old}/', f'"{new}/')
    return text


def _same_model(source_path: str, target_path: str) -> bool:
    """Two model paths name the same weights: equal, or SFT outputs of one origin."""
    if source_path == target_path:
        return True
    source, target = Path(source_path), Path(target_path)
    if source.name != "final" or target.name != "final":
        return False
    return origin(source.parent) is not None and origin(source.parent) == origin(target.parent)


def equivalent(source: Any, target: Any, stage: str) -> bool:
    """The stage, and the data stages before it, are configured alike in both runs, folders aside; the model an
    RL stage starts from is the same weights in both."""
    renames = {str(source.run_dir): str(target.run_dir)}
    if stage == "train":
        source_model, target_model = model_paths(source)["sft"], model_paths(target)["sft"]
        if not _same_model(source_model, target_model):
            return False
        renames[source_model] = target_model
    return all(_normalised(source, name, renames) == _normalised(target, name, renames)
               for name in (*DATA_STAGES, stage))


def stage_plan(config: Any, stage: str) -> tuple[str, bool]:
    """A run's stage: its configuration hash and whether it is done (pipeline.plan)."""
    from exgrpo.runner.pipeline import plan

    return next((digest, done) for name, digest, done in plan(config) if name == stage)


def adopt_stage(source: Any, target: Any, stage: str) -> bool:
    """Hard-link `source`'s finished `stage` into `target` when it is not done there and is the same work; True
    when adopted."""
    target_digest, target_done = stage_plan(target, stage)
    source_done = stage_plan(source, stage)[1]
    if target_done or not source_done or source.run_dir == target.run_dir or not equivalent(source, target, stage):
        return False
    source_dir, target_dir = source.run_dir / stage, target.run_dir / stage
    manifest = {**(_manifest(source_dir) or {}), "config_hash": target_digest, "origin": origin(source_dir),
                "adopted_from": str(source_dir)}
    shutil.rmtree(target_dir, ignore_errors=True)
    shutil.copytree(source_dir, target_dir, copy_function=os.link)
    atomic_write_json(target_dir / "started.json", {"config_hash": target_digest})
    atomic_write_json(target_dir / "manifest.json", manifest)
    return True


def kept_base_evaluation(run_root: Path) -> Path:
    return run_root / "base-eval"


# What the kept evaluation cost, where it ran outside any stage (study/spec.py evaluate_base_first): no stage
# manifest counts it.
BASE_COST = "cost.json"


def keep_base_evaluation(config: Any, run_root: Path, cost: dict[str, Any] | None = None) -> bool:
    """Keep a finished evaluation of the base student at <run_root>/base-eval (with the world it was read from, and
    `cost`: its wall and CPU seconds and machine, when it ran outside a stage), once: a later change of the run's
    eval stage clears its folder, and the base student's answers stay valid."""
    folder, kept = config.run_dir / "eval" / "base", kept_base_evaluation(run_root)
    if kept.exists() or "base" not in config.evaluated_models() or not (folder / "report.json").exists():
        return False
    partial = kept.with_name(kept.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial)
    atomic_write_json(partial / "world.json", {"world": _normalised(config, "world", {})})
    if cost is not None:
        atomic_write_json(partial / BASE_COST, cost)
    partial.replace(kept)
    return True


def adopt_base_evaluation(run_root: Path, target: Any) -> bool:
    """Copy the kept base-student predictions into a run's eval stage before it runs: the evaluation then finds
    them done (each prediction's fingerprint names the model, data and decoding; one that does not match is
    generated again). Only into a run of the same world (question ids name no world). Copied, not linked: an
    evaluation appends to its prediction files."""
    kept = kept_base_evaluation(run_root)
    stage_dir = target.run_dir / "eval"
    wanted = stage_dir / "base"
    if "base" not in target.evaluated_models() or not (kept / "world.json").exists():
        return False
    if json.loads((kept / "world.json").read_text())["world"] != _normalised(target, "world", {}):
        return False
    digest, done = stage_plan(target, "eval")
    if done:
        return False
    recorded = [json.loads(path.read_text()).get("config_hash")
                for path in (stage_dir / "started.json", stage_dir / "manifest.json") if path.exists()]
    if any(value != digest for value in recorded):
        shutil.rmtree(stage_dir)  # what the pipeline does to a stage folder of another configuration
    if wanted.exists():
        return False
    shutil.copytree(kept / "predictions", wanted / "predictions")
    atomic_write_json(stage_dir / "started.json", {"config_hash": digest})
    return True


def prune_sft_checkpoints(run_dir: Path) -> int:
    """Delete the checkpoints of a finished SFT stage (with full fine-tuning, weights and optimizer state: 1.6 GB
    each for a 135M student): they only serve to resume that stage, and a study holds dozens. Returns how many."""
    stage_dir = run_dir / "sft"
    if _manifest(stage_dir) is None:
        return 0
    checkpoints = sorted(stage_dir.glob("checkpoint-*"))
    for checkpoint in checkpoints:
        shutil.rmtree(checkpoint)
    return len(checkpoints)
