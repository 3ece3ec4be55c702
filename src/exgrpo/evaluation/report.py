"""Evaluation reports: a JSON file for programs and a Markdown table for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exgrpo.files import atomic_write_json, atomic_write_text

GROUP_TITLES = {"held_in": "Held-in average", "held_out": "Held-out average"}


def _cell(accuracy: dict[str, float]) -> tuple[str, str]:
    return f"{accuracy['value']:.2f}", f"[{accuracy['low']:.2f}, {accuracy['high']:.2f}]"


def _floors(floors: dict[str, float] | None) -> str:
    return "" if floors is None else f"{floors['random']:.1f} / {floors['majority']:.1f}"


def markdown_table(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of `{report['model']}`",
        "",
        f"Greedy single-pass accuracy (%), 95% bootstrap CI; backend {report['backend']}, {report['seconds']:.0f} s.",
        "",
        "| dataset | group | split | n | accuracy | 95% CI | floor: random / majority | unparsed |",
        "|---|---|---|---:|---:|---|---|---:|",
    ]
    for row in report["datasets"]:
        value, interval = _cell(row["accuracy"])
        lines.append(f"| {row['name']} | {row['group']} | {row['split']} | {row['num_examples']} | {value} | "
                     f"{interval} | {_floors(row.get('floors'))} | {row['num_unparsed']} |")
    for group, average in report["averages"].items():
        value, interval = _cell(average["accuracy"])
        lines.append(f"| **{GROUP_TITLES[group]}** ({len(average['datasets'])} datasets) | | | | **{value}** | "
                     f"{interval} | {_floors(average.get('floors'))} | |")
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], output_dir: str | Path) -> None:
    output_dir = Path(output_dir)
    atomic_write_json(output_dir / "report.json", report)
    atomic_write_text(output_dir / "report.md", markdown_table(report))
