"""What the probe stage writes: the EI dataset (JSONL + Hugging Face dataset), every probe with its fate,
and the statistics report (JSON + Markdown). All files are written atomically."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from exgrpo.config import ProbeConfig
from exgrpo.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from exgrpo.inversion.rules import Rule
from exgrpo.inversion.state import ProbeOutcome, QuestionState, rejection_reasons

EI_SCHEMA_VERSION = 1
QUESTION_STATUSES = ["teacher_failed", "teacher_truncated", "teacher_wrong", "no_consistent_probes", "too_easy",
                     "above_max_solved", "kept"]
PROBE_STATUSES = ["invalid", "truncated", "failed", "mismatched", "inconsistent", "consistent"]
OUTPUT_FILES = ["ei.jsonl", "ei_dataset", "probes.jsonl", "stats.json", "stats.md"]
# What the ledger adds up across runs; calls paid and their tokens are read from the cache instead.
LEDGER_COUNTS = ["cached", "errors", "longer", "truncated", "rejected"]


def ei_record(question: QuestionState) -> dict[str, Any]:
    """One EI example: Q with the teacher's response, and every kept probe with the teacher's response."""
    example = question.example
    consistent = question.consistent()
    return {
        "schema_version": EI_SCHEMA_VERSION, **example.to_dict(), "teacher_response": question.teacher_response,
        "extra_responses": question.extra_responses,
        "probes": [{"rule": o.rule.id, "rule_name": o.rule.name, **_probe_fields(o)} for o in consistent],
        "difficulty": {"consistent": len(consistent),
                       "solved": sum(bool(o.student_solved) for o in consistent) if consistent else 0},
    }


def _probe_fields(outcome: ProbeOutcome) -> dict[str, Any]:
    probe = outcome.probe
    return {"id": probe.id if probe else f"{outcome.question.id}#{outcome.rule.id}",
            "question": probe.question if probe else None, "choices": list(probe.choices or []) if probe else [],
            "answer": probe.answer if probe else None, "answer_type": str(probe.answer_type) if probe else None,
            "teacher_response": outcome.teacher_response, "student_solved": outcome.student_solved}


def probe_log_record(outcome: ProbeOutcome) -> dict[str, Any]:
    return {"question_id": outcome.question.id, "source": outcome.question.source, "rule": outcome.rule.id,
            "status": outcome.status, "reason": outcome.reason, "repairs": outcome.repairs, **_probe_fields(outcome)}


def remove_outputs(config: ProbeConfig) -> None:
    """Remove an earlier run's outputs before this run asks anything: if it fails, nothing of the earlier
    configuration is left to look like its result (the teacher cache stays: it is keyed by request)."""
    for name in OUTPUT_FILES:
        path = Path(config.output_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def calls_ledger_path(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".calls.json")


def record_calls(cache: Any, teachers: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Add this run's counts to the cache's ledger (per model, every run that used this cache and ended,
    failed ones included) and return the totals. Calls paid and their tokens come from the cache itself,
    which holds every paid answer, also those of a killed run."""
    ledger_path = calls_ledger_path(cache.path)
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {"schema_version": 1, "models": {}}
    for teacher in {id(t): t for t in teachers.values()}.values():
        totals = ledger["models"].setdefault(teacher.model, {})
        counts = teacher.stats.as_dict()
        totals["runs"] = totals.get("runs", 0) + 1
        for name in LEDGER_COUNTS:
            totals[name] = totals.get(name, 0) + counts[name]
    if ledger["models"]:
        atomic_write_json(ledger_path, ledger)
    return {model: {**totals, **cache.paid.get(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})}
            for model, totals in ledger["models"].items()}


def statistics(config: ProbeConfig, questions: list[QuestionState], rules: list[Rule],
               teacher_stats: dict[str, dict[str, Any]], seconds: float,
               cumulative: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:

    outcomes = [o for q in questions for o in q.outcomes]
    kept_ids = {q.example.id for q in questions if q.status == "kept"}
    per_rule = {}
    for rule in rules:
        mine = [o for o in outcomes if o.rule.id == rule.id]
        counts = Counter(o.status for o in mine)
        per_rule[rule.id] = {"name": rule.name, "generated": len(mine), **{s: counts[s] for s in PROBE_STATUSES},
                             "repaired": sum(o.repairs > 0 and o.probe is not None for o in mine),
                             "kept": sum(o.status == "consistent" and o.question.id in kept_ids for o in mine)}
    per_dataset = {}
    for name in config.datasets:
        mine = [q for q in questions if q.example.source == name]
        counts = Counter(q.status for q in mine)
        per_dataset[name] = {"questions": len(mine), **{s: counts[s] for s in QUESTION_STATUSES},
                             "probes_kept": sum(len(q.consistent()) for q in mine if q.status == "kept")}
    unanswered = [{"question_id": q.example.id, "status": q.status, "reason": q.reason}
                  for q in questions if q.status in ("teacher_failed", "teacher_truncated")]
    unanswered += [{"question_id": o.question.id, "rule": o.rule.id, "status": o.status, "reason": o.reason}
                   for o in outcomes if o.status in ("failed", "truncated")]
    return {"schema_version": EI_SCHEMA_VERSION, "split": config.split, "rules": per_rule, "datasets": per_dataset,
            "rejection_reasons": dict(rejection_reasons(outcomes).most_common(20)), "teachers": teacher_stats,
            "unanswered": unanswered[:50], "cumulative_calls": cumulative or {}, "seconds": round(seconds, 2)}


def markdown_report(stats: dict[str, Any]) -> str:
    lines = ["# Explanatory Inversion: probe statistics", "", f"Split `{stats['split']}`, {stats['seconds']:.0f} s.", "",
             "## Per rule", "",
             "| rule | name | generated | invalid | repaired | truncated | failed | mismatched | inconsistent | "
             "consistent | kept |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rule_id, row in stats["rules"].items():
        lines.append(f"| {rule_id} | {row['name']} | {row['generated']} | {row['invalid']} | {row['repaired']} | "
                     f"{row['truncated']} | {row['failed']} | {row['mismatched']} | {row['inconsistent']} | "
                     f"{row['consistent']} | {row['kept']} |")
    lines += ["", "`invalid`: no valid JSON probe after the repair rounds; `truncated`: a teacher reply (probe, answer "
              "or re-answer) still cut off at max_tokens_cap; `failed`: the server refused the request; `mismatched`: "
              "the teacher's answer to its own probe disagrees with the probe's answer; `inconsistent`: after the probe "
              "dialogue the teacher answered the original question wrongly (Eq. 1); `kept`: consistent probes of "
              "questions that pass the difficulty filter (Eq. 2).", "", "## Per dataset", "",
              "| dataset | questions | teacher failed | teacher truncated | teacher wrong | no consistent probe | "
              "too easy | above max_solved | kept | probes kept |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in stats["datasets"].items():
        lines.append(f"| {name} | {row['questions']} | {row['teacher_failed']} | {row['teacher_truncated']} | "
                     f"{row['teacher_wrong']} | {row['no_consistent_probes']} | {row['too_easy']} | "
                     f"{row['above_max_solved']} | {row['kept']} | {row['probes_kept']} |")
    lines += ["", "## Model calls", "", "This run: `calls` paid, `cached` answered from the cache, `failed` after "
              "retries, `longer` re-asked with a larger budget after a cut-off reply, `truncated` still cut off at the "
              "cap, `refused` by the server.", "",
              "| role | model | calls | cached | failed | longer | truncated | refused | prompt tokens | completion tokens |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for role, row in stats["teachers"].items():
        lines.append(f"| {role} | {row['model']} | {row['calls']} | {row['cached']} | {row['errors']} | {row['longer']} | "
                     f"{row['truncated']} | {row['rejected']} | {row['prompt_tokens']} | {row['completion_tokens']} |")
    if stats.get("cumulative_calls"):
        lines += ["", "Every run with this cache so far, failed runs included (calls and tokens: every answer in the cache, "
                  "also from killed runs):", "",
                  "| model | runs | calls | cached | failed | longer | truncated | refused | prompt tokens | "
                  "completion tokens |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for model, row in stats["cumulative_calls"].items():
            lines.append(f"| {model} | {row['runs']} | {row['calls']} | {row['cached']} | {row['errors']} | "
                         f"{row['longer']} | {row['truncated']} | {row['rejected']} | {row['prompt_tokens']} | "
                         f"{row['completion_tokens']} |")
    if stats.get("unanswered"):
        lines += ["", "## Not judged (truncated or refused)", "", "| question | rule | status | reason |", "|---|---|---|---|"]
        lines += [f"| {row['question_id']} | {row.get('rule', '')} | {row['status']} | {row['reason']} |"
                  for row in stats["unanswered"]]
    if stats["rejection_reasons"]:
        lines += ["", "## Why probes were invalid", "", "| reason | probes |", "|---|---:|"]
        lines += [f"| {reason} | {count} |" for reason, count in stats["rejection_reasons"].items()]
    return "\n".join(lines) + "\n"


def write_hf_dataset(records: list[dict[str, Any]], path: Path) -> None:
    """Save with `datasets` into a temporary folder, then swap it in: readers never see half a dataset."""
    import datasets

    datasets.disable_progress_bars()  # the stage draws its own progress
    temporary = path.with_name(path.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    datasets.Dataset.from_list(records).save_to_disk(str(temporary))
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        temporary.rename(path)
        shutil.rmtree(old)
    else:
        temporary.rename(path)


def write_outputs(config: ProbeConfig, questions: list[QuestionState], rules: list[Rule],
                  teacher_stats: dict[str, dict[str, Any]], seconds: float,
                  cumulative: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    output_dir = Path(config.output_dir)
    records = [ei_record(q) for q in questions if q.status == "kept"]
    atomic_write_jsonl(output_dir / "ei.jsonl", records)
    if records:
        write_hf_dataset(records, output_dir / "ei_dataset")
    atomic_write_jsonl(output_dir / "probes.jsonl", [probe_log_record(o) for q in questions for o in q.outcomes])
    stats = statistics(config, questions, rules, teacher_stats, seconds, cumulative)
    atomic_write_json(output_dir / "stats.json", stats)
    atomic_write_text(output_dir / "stats.md", markdown_report(stats))
    return stats
