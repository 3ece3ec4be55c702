"""The run report: a table (base student, SFT on EI data, EI + ExGRPO) and a PNG of it and of training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exgrpo.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from exgrpo.pipeline import RunConfig


def _cell(estimate: dict[str, float] | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{estimate['value']:.1f} [{estimate['low']:.1f}, {estimate['high']:.1f}]"


def collect(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Held-in, held-out and EI-Test accuracy (with CIs) per model, from the eval reports."""
    results = {}
    for model in config.evaluated_models():
        report = json.loads((config.run_dir / "eval" / model / "report.json").read_text())
        ei_test = next((row for row in report["datasets"] if row["name"] == config.eval.ei_test), None)
        results[model] = {
            "held_in": report["averages"].get("held_in", {}).get("accuracy"),
            "held_out": report["averages"].get("held_out", {}).get("accuracy"),
            "ei_test": ei_test["accuracy"] if ei_test else None,
            "datasets": {row["name"]: row["accuracy"] for row in report["datasets"]},
            # The same questions for every model, so the same floors; kept per model for simplicity.
            "floors": {"held_in": report["averages"].get("held_in", {}).get("floors"),
                       "held_out": report["averages"].get("held_out", {}).get("floors"),
                       "ei_test": ei_test.get("floors") if ei_test else None,
                       **{row["name"]: row.get("floors") for row in report["datasets"]}},
        }
    return results


def training_curves(config: RunConfig) -> dict[str, list[tuple[int, float]]]:
    curves = {}
    for stage, key, name in (("sft", "loss", "SFT loss"), ("train", "rewards/outcome_reward/mean", "ExGRPO reward"),
                             ("train", "exgrpo/dsu_fired", "DSU bonus fired")):
        path = config.run_dir / stage / "log_history.json"
        if path.exists():
            curves[name] = [(e["step"], e[key]) for e in json.loads(path.read_text()) if key in e]
    return curves


def _floor(floors: dict[str, float] | None) -> str:
    return "n/a" if not floors else f"{floors['random']:.1f} / {floors['majority']:.1f}"


def markdown(results: dict[str, dict[str, Any]], seconds: dict[str, float], titles: dict[str, str]) -> str:
    lines = ["| model | held-in | held-out | EI-Test |", "|---|---|---|---|"]
    for model, title in titles.items():
        row = results[model]
        lines.append(f"| {title} | {_cell(row['held_in'])} | {_cell(row['held_out'])} | {_cell(row['ei_test'])} |")
    floors = next(iter(results.values())).get("floors", {})
    lines.append("| *guessing floor: random / majority answer* | "
                 + " | ".join(_floor(floors.get(key)) for key in ("held_in", "held_out", "ei_test")) + " |")
    datasets = list(next(iter(results.values()))["datasets"])
    lines += ["", "| dataset | " + " | ".join(titles.values()) + " | floor: random / majority |",
              "|---|" + "---|" * (len(titles) + 1)]
    for name in datasets:
        lines.append(f"| {name} | " + " | ".join(_cell(results[m]["datasets"].get(name)) for m in titles)
                     + f" | {_floor(floors.get(name))} |")
    total = sum(seconds.values())
    lines += ["", "Wall time per stage: " + ", ".join(f"{stage} {s:.0f} s" for stage, s in seconds.items())
              + f"; total {total:.0f} s ({total / 60:.1f} min)."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], curves: dict[str, list[tuple[int, float]]], path: Path,
         titles: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (bars, lines) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = [("held_in", "held-in"), ("held_out", "held-out"), ("ei_test", "EI-Test")]
    width = 0.8 / len(titles)
    for i, (model, title) in enumerate(titles.items()):
        values = [results[model][key] for key, _ in groups]
        heights = [v["value"] if v else 0 for v in values]
        errors = [[v["value"] - v["low"] if v else 0 for v in values], [v["high"] - v["value"] if v else 0 for v in values]]
        bars.bar([g + i * width for g in range(len(groups))], heights, width, yerr=errors, capsize=3, label=title)
    bars.set_xticks([g + width * (len(titles) - 1) / 2 for g in range(len(groups))], [t for _, t in groups])
    bars.set_ylabel("accuracy (%), 95% CI")
    bars.set_ylim(0, 100)
    bars.legend()
    bars.set_title("Accuracy")
    for name, points in curves.items():
        if points:
            steps, values = zip(*points, strict=True)
            lines.plot(steps, values, label=name)
    lines.set_xlabel("step")
    lines.set_title("Training")
    lines.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_run_report(config: RunConfig) -> dict[str, Any]:
    from exgrpo.pipeline import STAGES

    results = collect(config)
    seconds = {}
    for stage in STAGES[:-1]:
        manifest = config.run_dir / stage / "manifest.json"
        if manifest.exists():
            seconds[stage] = json.loads(manifest.read_text())["seconds"]
    atomic_write_json(config.run_dir / "report" / "results.json", results)
    titles = config.model_titles()
    atomic_write_text(config.run_dir / "report" / "report.md", markdown(results, seconds, titles))
    plot(results, training_curves(config), config.run_dir / "report" / "results.png", titles)
    return {"models": {m: {k: r[k] for k in ("held_in", "held_out", "ei_test")} for m, r in results.items()}}


def write_docs_page(run_dir: Path, page: Path, seconds: float, recipe: str, student: str) -> None:
    """The quickstart's results page: written by the command from the run's own report, never by hand."""
    import os
    import platform
    import shutil

    from exgrpo.models.precision import cpu_has_native_bf16

    image = page.with_suffix(".png")
    shutil.copyfile(run_dir / "report" / "results.png", image)
    text = "\n".join([
        "# Quickstart results", "",
        f"Written by `exgrpo quickstart --docs {page}` (the recipe: `{recipe}`):",
        f"the synthetic reasoning world, its exact teacher, {student}, on a CPU.",
        f"Machine: {platform.machine()} ({platform.processor() or 'cpu'}), {os.cpu_count()} CPU cores, native bf16: "
        f"{'yes' if cpu_has_native_bf16() else 'no (fp32)'}, Python {platform.python_version()}; "
        f"wall time of this command: {seconds:.0f} s ({seconds / 60:.1f} min).", "",
        "Accuracy (%) with 95% bootstrap CIs. Held-in: the training families (arith, date, logic, choice) on new",
        "problems. Held-out: 4-5 steps, unseen names and templates, reversed arithmetic, and the budget family",
        "never trained on. EI-Test: the probes of the held-in test questions (all ten rules).", "",
        (run_dir / "report" / "report.md").read_text(), f"![results]({image.name})", ""])
    atomic_write_text(page, text)
