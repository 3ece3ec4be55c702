"""`exgrpo run CONFIG`: the whole method from one YAML file, stage by stage, into one run folder.

    world -> base -> probe -> sft -> train -> eval -> report

Each stage reads the previous stages' files and writes its own into run_dir/<stage>/, then a manifest (the hash
of its configuration and of the stages before it, counts, seconds). A rerun skips every stage whose manifest
matches; `--from STAGE` redoes from that stage; a killed run resumes in the stage it was in (each stage resumes
itself: the teacher cache, checkpoints, appended predictions), but only into work of the same configuration.
The whole configuration is validated before the first stage starts.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exgrpo.config.run import RunConfig
from exgrpo.errors import ConfigError
from exgrpo.files import atomic_write_json
from exgrpo.models.precision import machine_description, machine_name
from exgrpo.runner.layout import STAGES, RunLayout
from exgrpo.runner.plan import plan, read_manifest
from exgrpo.runner.stages import STAGE_FUNCTIONS, StageProgress


def _prepare_stage_dir(layout: RunLayout, stage: str, digest: str, fresh: bool) -> dict[str, Any]:
    """Resume a stage only into work done with the same configuration (a killed run); otherwise start clean,
    so that checkpoints or predictions of another configuration are never taken for this one's. Returns what the
    earlier sittings of a resumed stage did: `earlier_seconds`, up to the last file they wrote (work after their
    last checkpoint is redone, and counted then), and `sittings`, this one included."""
    stage_dir, started = layout.stage_dir(stage), layout.started(stage)
    recorded = read_manifest(started)
    finished = read_manifest(layout.manifest(stage)).get("config_hash")
    if fresh or (recorded.get("config_hash") not in (None, digest)) or (finished not in (None, digest)):
        shutil.rmtree(stage_dir, ignore_errors=True)
        recorded = {}
    earlier, sittings = float(recorded.get("earlier_seconds", 0.0)), int(recorded.get("sittings", 0))
    if "started_at" in recorded:  # a sitting that was killed: its work lasted until the last file it wrote
        written = [path.stat().st_mtime for path in stage_dir.rglob("*") if path.is_file() and path != started]
        earlier += max(0.0, max(written, default=0.0) - float(recorded["started_at"]))
    progress: dict[str, Any] = {"earlier_seconds": round(earlier, 1), "sittings": sittings + 1}
    # A killed stage resumed on another machine mixes two machines' arithmetic (and, under `dtype: auto`, maybe
    # two precisions): allowed, as a user moving a run expects, but named in the manifest and the status line.
    machine = machine_description()
    others = [m for m in [*recorded.get("other_machines", []), recorded.get("machine")] if m and m != machine]
    if others:
        progress["other_machines"] = [m for i, m in enumerate(others) if m not in others[:i]]
    atomic_write_json(started, {"config_hash": digest, "started_at": time.time(), "machine": machine, **progress})
    return progress


def _other_machines_warning(progress: dict[str, Any]) -> str:
    """What the status line says of a stage resumed from work begun on another machine (empty if none)."""
    others = progress.get("other_machines")
    if not others:
        return ""
    named = "; ".join(machine_name(m) for m in others)
    return (f" (resuming work begun on another machine: {named}; the result mixes both machines' arithmetic, and "
            "`dtype: auto` may mean another precision here: use --from to redo the stage on this one alone)")


def process_cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system): what a stage cost on a shared machine, where wall
    time also counts the neighbours."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured_cost(seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """What some work cost, as a manifest keeps it: wall and CPU seconds, and the machine they were measured on
    (its CPU seconds compare only with the same machine's). Milliseconds: a micro student's stage can take under
    0.05 s, which one decimal would record as no time."""
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3), "machine": machine_description()}


def run(config: RunConfig, from_stage: str | None = None, on_stage: Callable[[str, str], None] | None = None,
        until: str | None = None, on_progress: StageProgress | None = None) -> dict[str, dict[str, Any]]:
    """Run the stages that are not done (or from `from_stage` on), up to `until` (included; default: all);
    returns each stage's manifest. `on_stage` hears each stage's status, `on_progress` a stage's progress."""
    if from_stage is not None and from_stage not in STAGES:
        raise ConfigError(f"--from must be one of {', '.join(STAGES)}, not {from_stage!r}")
    if until is not None and until not in STAGES:
        raise ConfigError(f"until must be one of {', '.join(STAGES)}, not {until!r}")
    redo = set(STAGES[STAGES.index(from_stage):]) if from_stage else set()
    layout = RunLayout(config.run_dir)
    manifests = {}
    stages = plan(config)
    for stage, digest, done in stages[:STAGES.index(until) + 1] if until else stages:
        manifest_path: Path = layout.manifest(stage)
        if done and stage not in redo:
            if on_stage:
                on_stage(stage, "skipped (done)")
            manifests[stage] = json.loads(manifest_path.read_text())
            continue
        progress = _prepare_stage_dir(layout, stage, digest, fresh=stage in redo)
        if on_stage:
            on_stage(stage, "running" + _other_machines_warning(progress))
        started, cpu_started = time.time(), process_cpu_seconds()
        counts = STAGE_FUNCTIONS[stage](config, on_progress)
        seconds, cpu = time.time() - started, process_cpu_seconds() - cpu_started
        earlier = progress["earlier_seconds"]  # a resumed stage: its killed sittings' kept work, at this one's CPU rate
        measured = {**measured_cost(seconds + earlier, cpu + earlier * cpu / max(seconds, 1e-9)),
                    **(progress if progress["sittings"] > 1 else {})}
        manifests[stage] = {"stage": stage, "config_hash": digest, **measured,
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": counts}
        atomic_write_json(manifest_path, manifests[stage])
        if on_stage:
            on_stage(stage, f"done in {manifests[stage]['seconds']:.0f} s")
    return manifests
