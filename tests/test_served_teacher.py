"""`exgrpo probe` against a real model server: `transformers serve` with SmolLM2-135M-Instruct on 127.0.0.1.

A 135M model is a weak teacher: its rationales are often wrong, its JSON probes invalid, its replies cut off
at their budget. The test checks that the stage accounts for every reply it gets from a real server, and
that a rerun pays for nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from benchmark_files import require_dataset_files

from exgrpo.config import ProbeConfig
from exgrpo.inversion.output import PROBE_STATUSES, QUESTION_STATUSES
from exgrpo.inversion.pipeline import run_probe
from exgrpo.teachers.transformers_serve import TransformersServe


def served_probe_config(server: TransformersServe, output_dir: Path, limit: int) -> ProbeConfig:
    teacher = {"kind": "openai", "model": server.model, "base_url": server.base_url, "api_key_env": None,
               "concurrency": 2, "timeout": 300, "max_retries": 1}
    return ProbeConfig(datasets=["strategyqa"], limit=limit, teacher=teacher, rules=["R1", "R4"], max_tokens=48,
                       probe_max_tokens=64, max_tokens_cap=128, json_retries=1, output_dir=output_dir)


def test_every_reply_of_a_served_model_is_accounted_for_and_a_rerun_pays_nothing(smollm2_path: Path,
                                                                                 tmp_path: Path) -> None:
    require_dataset_files("strategyqa")
    with TransformersServe(smollm2_path, log=(tmp_path / "serve.log").open("w")) as server:
        config = served_probe_config(server, tmp_path / "probe", limit=4)
        stats = run_probe(config)
        rerun = run_probe(config)
    teacher = stats["teachers"]["teacher"]
    assert teacher["calls"] > 0 and teacher["errors"] == 0
    counts = stats["datasets"]["strategyqa"]
    assert counts["questions"] == 4 and sum(counts[s] for s in QUESTION_STATUSES) == 4
    log = [json.loads(line) for line in (config.output_dir / "probes.jsonl").read_text().splitlines()]
    answered = counts["questions"] - counts["teacher_wrong"] - counts["teacher_truncated"] - counts["teacher_failed"]
    assert len(log) == 2 * answered  # every rule of every question the teacher answered
    assert all(r["status"] in PROBE_STATUSES for r in log)
    assert all(r["reason"] for r in log if r["status"] in ("invalid", "truncated", "failed"))
    by_rule = {rule: Counter(r["status"] for r in log if r["rule"] == rule) for rule in ("R1", "R4")}
    for rule, statuses in by_rule.items():
        assert all(stats["rules"][rule][s] == statuses[s] for s in PROBE_STATUSES), rule
    # Real, messy output: some reply was cut off at its budget (and asked again longer), or some probe invalid.
    assert teacher["longer"] + sum(s["invalid"] for s in by_rule.values()) > 0
    # The rerun: the same accounting, every answer from the cache.
    assert rerun["teachers"]["teacher"]["calls"] == 0
    assert rerun["teachers"]["teacher"]["cached"] == teacher["calls"] + teacher["cached"]
    assert rerun["datasets"] == stats["datasets"] and rerun["rules"] == stats["rules"]
