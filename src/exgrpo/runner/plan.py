"""Which stages of a run are done: each stage's configuration hash (chained, so a change redoes what follows) against
its manifest, and whether what a finished stage made is still there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

from exgrpo.config.run import RunConfig
from exgrpo.runner.layout import STAGES, RunLayout
from exgrpo.runner.stage_configs import stage_configs

# Where files go and how progress is reported change no result: moving the teacher cache must not redo a stage.
OPERATIONAL = {"cache_path", "report_to", "logging_steps"}


class PlannedStage(NamedTuple):
    stage: str
    config_hash: str
    done: bool


def hashed_settings(value: Any) -> Any:
    """What of a stage's configuration its hash covers: only settings that differ from their defaults, as an option
    added by a newer exgrpo (with a default that keeps the old behaviour) must not make every finished run look
    changed and redo it; and no operational setting."""
    if not hasattr(value, "model_dump_json"):
        return value
    return json.loads(value.model_dump_json(exclude_defaults=True, exclude=OPERATIONAL & set(type(value).model_fields)))


def settings_hash(value: Any) -> str:
    value = {k: hashed_settings(v) for k, v in value.items()} if isinstance(value, dict) else hashed_settings(value)
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_manifest(path: Path) -> dict[str, Any]:
    """A stage's manifest ({} when the stage has not finished)."""
    return json.loads(path.read_text()) if path.exists() else {}


def outputs_present(config: RunConfig, stage: str, manifest: dict[str, Any]) -> bool:
    """Whether what a finished stage made is still there: a manifest can outlive the models and data behind it
    (copied without them to another machine, or a model deleted), and such a stage must be made again, not read."""
    layout = RunLayout(config.run_dir)
    outputs = manifest.get("outputs", {})
    if stage == "world":  # its datasets file too: a world written by an older exgrpo is written again, with one
        return config.world is None or layout.world_datasets.exists() and all(
            layout.world_split(name).exists() for name in outputs)
    if stage == "probe":
        return layout.ei_data.exists()
    if stage in ("base", "sft", "train") and "skipped" not in outputs and "model" in outputs:
        return (stage == "base" and config.student is None) or Path(outputs["model"]).exists()
    return True


def plan(config: RunConfig) -> list[PlannedStage]:
    """(stage, config hash, already done) for every stage; hashes chain, so a change redoes what follows. A stage
    is done when its manifest has its hash and its outputs are there (a stage made again keeps the same hash, so
    what follows it stays done)."""
    layout = RunLayout(config.run_dir)
    configs = stage_configs(config)
    rows, upstream = [], ""
    for stage in STAGES:
        digest = hashlib.sha256(f"{upstream}|{settings_hash(configs[stage])}".encode()).hexdigest()[:16]
        manifest = read_manifest(layout.manifest(stage))
        done = manifest.get("config_hash") == digest and outputs_present(config, stage, manifest)
        rows.append(PlannedStage(stage, digest, done))
        upstream = digest
    return rows
