"""What the probe stage writes: the EI dataset (JSONL + Hugging Face dataset), every probe with its fate,
and the statistics report (JSON + Markdown). All files are written atomically."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exgrpo.config import ProbeConfig
from exgrpo.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from exgrpo.inversion.rules import Rule

if TYPE_CHECKING:
    from exgrpo.inversion.pipeline import ProbeOutcome, QuestionState

EI_SCHEMA_VERSION = 1
QUESTION_STATUSES = ["teacher_wrong", "no_consistent_probes", "too_easy", "above_max_solved", "kept"]
PROBE_STATUSES = ["invalid", "mismatched", "inconsistent", "consistent"]


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


def statistics(config: ProbeConfig, questions: list[QuestionState], rules: list[Rule],
               teacher_stats: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    from exgrpo.inversion.pipeline import rejection_reasons

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
    return {"schema_version": EI_SCHEMA_VERSION, "split": config.split, "rules": per_rule, "datasets": per_dataset,
            "rejection_reasons": dict(rejection_reasons(outcomes).most_common(20)), "teachers": teacher_stats,
            "seconds": round(seconds, 2)}


def markdown_report(stats: dict[str, Any]) -> str:
    lines = ["# Explanatory Inversion: probe statistics", "", f"Split `{stats['split']}`, {stats['seconds']:.0f} s.", "",
             "## Per rule", "",
             "| rule | name | generated | invalid | repaired | mismatched | inconsistent | consistent | kept |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for rule_id, row in stats["rules"].items():
        lines.append(f"| {rule_id} | {row['name']} | {row['generated']} | {row['invalid']} | {row['repaired']} | "
                     f"{row['mismatched']} | {row['inconsistent']} | {row['consistent']} | {row['kept']} |")
    lines += ["", "`invalid`: no valid JSON probe after the repair rounds; `mismatched`: the teacher's answer to its "
              "own probe disagrees with the probe's answer; `inconsistent`: after the probe dialogue the teacher "
              "answered the original question wrongly (Eq. 1); `kept`: consistent probes of questions that pass "
              "the difficulty filter (Eq. 2).", "", "## Per dataset", "",
              "| dataset | questions | teacher wrong | no consistent probe | too easy | above max_solved | kept | probes kept |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in stats["datasets"].items():
        lines.append(f"| {name} | {row['questions']} | {row['teacher_wrong']} | {row['no_consistent_probes']} | "
                     f"{row['too_easy']} | {row['above_max_solved']} | {row['kept']} | {row['probes_kept']} |")
    lines += ["", "## Model calls", "",
              "| role | model | calls made | cached | failed | prompt tokens | completion tokens |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for role, row in stats["teachers"].items():
        lines.append(f"| {role} | {row['model']} | {row['calls']} | {row['cached']} | {row['errors']} | "
                     f"{row['prompt_tokens']} | {row['completion_tokens']} |")
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
                  teacher_stats: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    output_dir = Path(config.output_dir)
    records = [ei_record(q) for q in questions if q.status == "kept"]
    atomic_write_jsonl(output_dir / "ei.jsonl", records)
    if records:
        write_hf_dataset(records, output_dir / "ei_dataset")
    atomic_write_jsonl(output_dir / "probes.jsonl", [probe_log_record(o) for q in questions for o in q.outcomes])
    stats = statistics(config, questions, rules, teacher_stats, seconds)
    atomic_write_json(output_dir / "stats.json", stats)
    atomic_write_text(output_dir / "stats.md", markdown_report(stats))
    return stats
