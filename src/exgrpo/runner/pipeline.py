"""`exgrpo run CONFIG`: the whole method from one YAML file, stage by stage, into one run directory.

    world -> base -> probe -> sft -> train -> eval -> report

Each stage reads the previous stages' files and writes its own into run_dir/<stage>/, then a
manifest (the hash of its configuration and of the stages before it, counts, seconds). A rerun skips
every stage whose manifest matches; `--from STAGE` redoes from that stage; a killed run resumes in the
stage it was in (each stage resumes itself: the teacher cache, checkpoints, appended predictions).
The whole configuration is validated before the first stage starts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exgrpo.config import DistillStageConfig
from exgrpo.config.run import RunConfig
from exgrpo.errors import ConfigError
from exgrpo.files import atomic_write_json
from exgrpo.models.precision import machine_description, machine_name
from exgrpo.runner.layout import STAGES
from exgrpo.runner.stage_configs import (
    eval_config,
    model_paths,
    probe_config,
    sft_config,
    stage_configs,
    train_config,
)

# Where files go and how progress is reported change no result: moving the teacher cache must not redo a stage.
OPERATIONAL = {"cache_path", "report_to", "logging_steps"}


def _settings(value: Any) -> Any:
    # Only settings that differ from their defaults: an option added by a newer exgrpo (with a default that
    # keeps the old behaviour) must not make every finished run look changed and redo it.
    if not hasattr(value, "model_dump_json"):
        return value
    return json.loads(value.model_dump_json(exclude_defaults=True, exclude=OPERATIONAL & set(type(value).model_fields)))


def _hash(value: Any) -> str:
    value = {k: _settings(v) for k, v in value.items()} if isinstance(value, dict) else _settings(value)
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the stages


def stage_world(config: RunConfig) -> dict[str, Any]:
    from exgrpo.world.datasets import write_world

    if config.world is None:
        return {"skipped": "no synthetic world in this config"}
    world = config.world
    return write_world(config.run_dir / "world", world.seed, world.train_size, world.test_size, world.ood_size,
                       world.val_size)


def stage_base(config: RunConfig) -> dict[str, Any]:
    if config.student is None:
        return {"model": config.base_model}
    from exgrpo.world.generate import generate_split
    from exgrpo.world.student import build_base_student

    assert config.world is not None, "a tiny student is built from the synthetic world"
    student = config.student
    train = generate_split("train", config.world.train_size, config.world.seed)
    path = build_base_student(config.run_dir / "base", train, student.hidden_size, student.num_layers,
                              student.num_heads, student.vocab_size, student.pretrain_epochs, student.learning_rate,
                              student.batch_size, student.seed)
    return {"model": str(path), "pretraining_examples": len(train)}


def stage_probe(config: RunConfig) -> dict[str, Any]:
    from exgrpo.inversion.pipeline import run_probe

    stats = run_probe(probe_config(config))
    return {"datasets": stats["datasets"], "teachers": stats["teachers"]}


def stage_sft(config: RunConfig) -> dict[str, Any]:
    from exgrpo.training.sft import run_sft

    sft = sft_config(config)
    if sft is None:
        return {"skipped": "no sft section", "model": model_paths(config)["sft"]}
    return {"model": str(run_sft(sft))}


def stage_train(config: RunConfig) -> dict[str, Any]:
    train = train_config(config)
    if train is None:
        return {"skipped": "no train section"}
    if isinstance(train, DistillStageConfig):
        from exgrpo.training.distill import run_distill

        return {"model": str(run_distill(train))}
    from exgrpo.rl.train import run_train

    return {"model": str(run_train(train))}


def stage_eval(config: RunConfig) -> dict[str, Any]:
    from exgrpo.evaluation.evaluate import evaluate

    summary = {}
    for model in config.evaluated_models():
        report = evaluate(eval_config(config, model))
        summary[model] = {row["name"]: row["accuracy"]["value"] for row in report["datasets"]}
    return summary


def stage_report(config: RunConfig) -> dict[str, Any]:
    from exgrpo.runner.report import write_run_report

    return write_run_report(config)


STAGE_FUNCTIONS: dict[str, Callable[[RunConfig], dict[str, Any]]] = {
    "world": stage_world, "base": stage_base, "probe": stage_probe, "sft": stage_sft, "train": stage_train,
    "eval": stage_eval, "report": stage_report}


# ---------------------------------------------------------------- running


def _outputs_present(config: RunConfig, stage: str, manifest: dict[str, Any]) -> bool:
    """Whether what a finished stage made is still there: a study's record (lab/study/record.py) restores manifests
    without the models and data behind them, and a stage whose model was deleted must be made again, not read."""
    outputs = manifest.get("outputs", {})
    if stage == "world":
        return config.world is None or all((config.run_dir / "world" / f"{name.removeprefix('world_')}.jsonl").exists()
                                           for name in outputs)
    if stage == "probe":
        return (config.run_dir / "probe" / "ei.jsonl").exists()
    if stage in ("base", "sft", "train") and "skipped" not in outputs and "model" in outputs:
        return (stage == "base" and config.student is None) or Path(outputs["model"]).exists()
    return True


def plan(config: RunConfig) -> list[tuple[str, str, bool]]:
    """(stage, config hash, already done) for every stage; hashes chain, so a change redoes what follows. A stage
    is done when its manifest has its hash and its outputs are there (a stage made again keeps the same hash, so
    what follows it stays done)."""
    configs = stage_configs(config)
    rows, upstream = [], ""
    for stage in STAGES:
        digest = hashlib.sha256(f"{upstream}|{_hash(configs[stage])}".encode()).hexdigest()[:16]
        path = config.run_dir / stage / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else {}
        done = manifest.get("config_hash") == digest and _outputs_present(config, stage, manifest)
        rows.append((stage, digest, done))
        upstream = digest
    return rows


def _prepare_stage_dir(stage_dir: Path, digest: str, fresh: bool) -> dict[str, Any]:
    """Resume a stage only into work done with the same configuration (a killed run); otherwise start clean,
    so that checkpoints or predictions of another configuration are never taken for this one's. Returns what the
    earlier sittings of a resumed stage did: `earlier_seconds`, up to the last file they wrote (work after their
    last checkpoint is redone, and counted then), and `sittings`, this one included."""
    import shutil

    started = stage_dir / "started.json"
    recorded = json.loads(started.read_text()) if started.exists() else {}
    manifest = stage_dir / "manifest.json"
    finished = json.loads(manifest.read_text()).get("config_hash") if manifest.exists() else None
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


# What a stage cost when first made (an adopted one: where it was made). Not `finished`: it dates the outputs there
# now, and names a new training (study/reuse.py's origin).
FIRST_COST = ("seconds", "cpu_seconds", "machine", "earlier_seconds", "sittings", "adopted_from", "remade")


def _first_measurement(manifest_path: Path, digest: str, remade: bool) -> dict[str, Any] | None:
    """What a finished stage with this configuration cost when it was first made, when it is being made again only
    because its outputs are gone (a study's record restores manifests without models, on another machine): the
    stage's cost stays that, and the remakes are listed apart (`remade`), so the same work is not counted twice."""
    if not remade or not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("config_hash") != digest:
        return None
    return {key: manifest[key] for key in FIRST_COST if key in manifest}


def process_cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system): what a stage cost on a shared machine, where wall
    time also counts the neighbours."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured_cost(seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """What some work cost, as manifests and the study's record keep it: wall and CPU seconds, and the machine they
    were measured on (its CPU seconds compare only with the same machine's). Milliseconds: a micro student's stage
    can take under 0.05 s, which one decimal would record as no time."""
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3), "machine": machine_description()}


def run(config: RunConfig, from_stage: str | None = None,
        on_stage: Callable[[str, str], None] | None = None, until: str | None = None) -> dict[str, dict[str, Any]]:
    """Run the stages that are not done (or from `from_stage` on), up to `until` (included; default: all);
    returns each stage's manifest."""
    if from_stage is not None and from_stage not in STAGES:
        raise ConfigError(f"--from must be one of {', '.join(STAGES)}, not {from_stage!r}")
    if until is not None and until not in STAGES:
        raise ConfigError(f"until must be one of {', '.join(STAGES)}, not {until!r}")
    redo = set(STAGES[STAGES.index(from_stage):]) if from_stage else set()
    if config.world is not None:
        from exgrpo.world.datasets import register_world

        # The world's dataset names point at the last config built: another run's config may have been since.
        register_world(config.run_dir / "world")
    manifests = {}
    stages = plan(config)
    for stage, digest, done in stages[:STAGES.index(until) + 1] if until else stages:
        stage_dir = config.run_dir / stage
        manifest_path = stage_dir / "manifest.json"
        if done and stage not in redo:
            if on_stage:
                on_stage(stage, "skipped (done)")
            manifests[stage] = json.loads(manifest_path.read_text())
            continue
        first = _first_measurement(manifest_path, digest, remade=not done and stage not in redo)
        progress = _prepare_stage_dir(stage_dir, digest, fresh=stage in redo)
        if on_stage:
            on_stage(stage, "running" + _other_machines_warning(progress))
        started, cpu_started = time.time(), process_cpu_seconds()
        counts = STAGE_FUNCTIONS[stage](config)
        seconds, cpu = time.time() - started, process_cpu_seconds() - cpu_started
        earlier = progress["earlier_seconds"]  # a resumed stage: its killed sittings' kept work, at this one's CPU rate
        measured = {**measured_cost(seconds + earlier, cpu + earlier * cpu / max(seconds, 1e-9)),
                    **(progress if progress["sittings"] > 1 else {})}
        if first is not None:  # the same work made again: the stage's cost stays its first, the remakes are listed
            measured = {**first, "remade": [*first.get("remade", []), measured]}
        manifests[stage] = {"stage": stage, "config_hash": digest, **measured,
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": counts}
        atomic_write_json(manifest_path, manifests[stage])
        if on_stage:
            on_stage(stage, f"done in {manifests[stage]['seconds']:.0f} s")
    return manifests
