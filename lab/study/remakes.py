"""A stage made again only because its outputs are gone (the study's record restores manifests without the models
behind them, on another machine) keeps the cost of its first making, and lists the remakes apart (`remade`): the
page's totals count the same work once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exgrpo.files import atomic_write_json
from exgrpo.runner import run as runner
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.plan import plan, read_manifest

# What a stage cost when first made (an adopted one: where it was made). Not `finished`: it dates the outputs there
# now, and names a new training (reuse.origin).
FIRST_COST = ("seconds", "cpu_seconds", "machine", "earlier_seconds", "sittings", "adopted_from", "remade")
RUN_KEYS = ("stage", "config_hash", "finished", "outputs")  # what a manifest holds besides its cost


def run_stages(config: Any, on_stage: Callable[[str, str], None] | None = None,
               until: str | None = None) -> dict[str, dict[str, Any]]:
    """The runner's `run`, for the study: a finished stage it makes again (same configuration, outputs gone) keeps
    its first cost in its manifest, with this making listed under `remade`."""
    layout = RunLayout(config.run_dir)
    first = {}
    for stage, digest, done in plan(config):
        manifest = read_manifest(layout.manifest(stage))
        if not done and manifest.get("config_hash") == digest:
            first[stage] = manifest
    manifests: dict[str, dict[str, Any]] = {}
    try:
        manifests = runner.run(config, on_stage=on_stage, until=until)
    finally:  # also for the stages remade before a later one failed
        for stage, before in first.items():
            path = layout.manifest(stage)
            after = read_manifest(path)
            if after == before or after.get("config_hash") != before["config_hash"]:
                continue  # not made again in this sitting
            remake = {key: value for key, value in after.items() if key not in RUN_KEYS}
            merged = {"stage": stage, "config_hash": after["config_hash"],
                      **{key: before[key] for key in FIRST_COST if key in before},
                      "remade": [*before.get("remade", []), remake],
                      "finished": after["finished"], "outputs": after["outputs"]}
            atomic_write_json(path, merged)
            manifests[stage] = merged
    return manifests
