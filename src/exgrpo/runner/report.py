"""The run report: a table (base student, SFT on EI data, EI + ExGRPO) and a PNG of it and of training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exgrpo.config.run import RunConfig
from exgrpo.errors import ExgrpoError
from exgrpo.evaluation.metrics import bootstrap_mean_of_means
from exgrpo.files import atomic_write_json, atomic_write_text
from exgrpo.models.precision import cpu_has_native_bf16
from exgrpo.runner.layout import STAGES, RunLayout
from exgrpo.runner.results import RunResults
from exgrpo.runner.speeds import rl_stage_summary, speeds_line


def _cell(estimate: dict[str, float] | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{estimate['value']:.1f} [{estimate['low']:.1f}, {estimate['high']:.1f}]"


def paired_difference(run: RunResults, model: str, baseline: str, datasets: list[str],
                      baseline_run: RunResults | None = None) -> dict[str, Any] | None:
    """`model` minus `baseline` on the same questions (percentage points): the mean over `datasets` of each
    dataset's mean difference, with a paired bootstrap CI (each dataset's questions resampled on their own);
    "above" / "below" when the CI excludes 0, else "not resolved". `baseline_run` reads the baseline from another
    run folder evaluated on the same questions (an RL run against the SFT run it started from); default `run`."""
    groups = []
    for name in datasets:
        ours, theirs = run.verdicts(model, name), (baseline_run or run).verdicts(baseline, name)
        if ours is None or theirs is None:
            return None
        shared = sorted(ours.keys() & theirs.keys())
        if not shared:
            return None
        groups.append([float(ours[i]) - float(theirs[i]) for i in shared])
    if not groups:
        return None
    estimate = bootstrap_mean_of_means(groups).as_percent()
    verdict = "above" if estimate["low"] > 0 else "below" if estimate["high"] < 0 else "not resolved"
    return {**estimate, "verdict": verdict, "questions": sum(len(g) for g in groups)}


def comparisons(config: RunConfig, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every evaluated model against the one before it in the pipeline (and ExGRPO also against the base),
    per split, paired over the same questions."""
    run = RunResults.of(config.run_dir)
    base = run.evaluation("base") if "base" in results else None
    models = [m for m in ("base", "sft", "exgrpo") if m in results]
    pairs = [(model, baseline) for i, model in enumerate(models) for baseline in models[:i]]
    splits = {key: base.group_datasets(key) if base else [] for key in ("held_in", "held_out")}
    if config.eval.ei_test:
        splits["ei_test"] = [config.eval.ei_test]
    return [{"model": model, "baseline": baseline,
             **{key: paired_difference(run, model, baseline, names) if names else None
                for key, names in splits.items()}} for model, baseline in pairs]


def collect(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Held-in, held-out and EI-Test accuracy (with CIs) per model, from the eval reports."""
    run = RunResults.of(config.run_dir)
    results = {}
    for model in config.evaluated_models():
        evaluation = run.evaluation(model)
        if evaluation is None:
            raise ExgrpoError(f"{run.layout.evaluation(model).report}: missing; the eval stage has not evaluated "
                              f"{model} (redo it with --from eval)")
        ei_test = config.eval.ei_test
        accuracies = evaluation.accuracies()
        results[model] = {
            "held_in": evaluation.group_accuracy("held_in"),
            "held_out": evaluation.group_accuracy("held_out"),
            "ei_test": evaluation.accuracy(ei_test) if ei_test else None,
            "datasets": accuracies,
            # The same questions for every model, so the same floors; kept per model for simplicity.
            "floors": {"held_in": evaluation.group_floors("held_in"),
                       "held_out": evaluation.group_floors("held_out"),
                       "ei_test": evaluation.floors(ei_test) if ei_test else None,
                       **{name: evaluation.floors(name) for name in accuracies}},
        }
    return results


CURVES = (("sft", "loss", "SFT loss"), ("train", "rewards/outcome_reward/mean", "ExGRPO reward"),
          ("train", "exgrpo/dsu_fired", "DSU bonus fired"))  # (stage, log key, title)


GROUPS = (("held_in", "held-in"), ("held_out", "held-out"), ("ei_test", "EI-Test"))


def training_curves(config: RunConfig) -> dict[str, list[tuple[int, float]]]:
    run = RunResults.of(config.run_dir)
    curves = {}
    for stage, key, name in CURVES:
        history = run.training_log(stage)
        if history is not None:
            curves[name] = [(e["step"], e[key]) for e in history if key in e]
    return curves


def _floor(floors: dict[str, float] | None) -> str:
    return "n/a" if not floors else f"{floors['random']:.1f} / {floors['majority']:.1f}"


def _difference(estimate: dict[str, Any] | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{estimate['value']:+.1f} [{estimate['low']:+.1f}, {estimate['high']:+.1f}] {estimate['verdict']}"


def markdown(results: dict[str, dict[str, Any]], seconds: dict[str, float], titles: dict[str, str],
             pairs: list[dict[str, Any]] | None = None) -> str:
    # A group no model was evaluated on (e.g. a run without held-out splits) has no column.
    groups = [(key, title) for key, title in GROUPS if any(results[model][key] for model in titles)]
    lines = ["| model | " + " | ".join(title for _, title in groups) + " |", "|---|" + "---|" * len(groups)]
    for model, title in titles.items():
        row = results[model]
        lines.append(f"| {title} | " + " | ".join(_cell(row[key]) for key, _ in groups) + " |")
    floors = next(iter(results.values())).get("floors", {})
    lines.append("| *guessing floor: random / majority answer* | "
                 + " | ".join(_floor(floors.get(key)) for key, _ in groups) + " |")
    datasets = list(next(iter(results.values()))["datasets"])
    lines += ["", "| dataset | " + " | ".join(titles.values()) + " | floor: random / majority |",
              "|---|" + "---|" * (len(titles) + 1)]
    for name in datasets:
        lines.append(f"| {name} | " + " | ".join(_cell(results[m]["datasets"].get(name)) for m in titles)
                     + f" | {_floor(floors.get(name))} |")
    if pairs:
        lines += ["", "Paired differences (percentage points, the same questions; 95% paired bootstrap CI; "
                  "above / below: the CI excludes 0):", "",
                  "| comparison | " + " | ".join(title for _, title in groups) + " |", "|---|" + "---|" * len(groups)]
        lines += [f"| {titles[p['model']]} - {titles[p['baseline']]} | "
                  + " | ".join(_difference(p.get(key)) for key, _ in groups) + " |" for p in pairs]
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
    layout = RunLayout(config.run_dir)
    results = collect(config)
    seconds = RunResults(layout).stage_seconds(STAGES[:STAGES.index("report")])
    pairs = comparisons(config, results)
    atomic_write_json(layout.results_json, {"models": results, "comparisons": pairs})
    titles = config.model_titles()
    atomic_write_text(layout.report_markdown, markdown(results, seconds, titles, pairs))
    plot(results, training_curves(config), layout.results_png, titles)
    return {"models": {m: {k: r[k] for k in ("held_in", "held_out", "ei_test")} for m, r in results.items()}}


def goal_line(results: dict[str, Any]) -> str:
    """The quickstart's bar, judged from the numbers: SFT on EI data above the base student on held-in, with
    95% CIs that do not overlap and a paired CI that excludes 0."""
    models = results["models"]
    sft, base = (models.get(name, {}).get("held_in") for name in ("sft", "base"))
    pair = next((p.get("held_in") for p in results["comparisons"] if (p["model"], p["baseline"]) == ("sft", "base")),
                None)
    if not (sft and base and pair):
        return "**Goal** (SFT on EI data above the base student on held-in): not measured in this run."
    apart = sft["low"] > base["high"]
    met = apart and pair["verdict"] == "above"
    return (f"**Goal** (SFT on EI data above the base student on held-in, CIs apart): **{'met' if met else 'not met'}**"
            f" ({sft['value']:.1f} [{sft['low']:.1f}, {sft['high']:.1f}] vs {base['value']:.1f} "
            f"[{base['low']:.1f}, {base['high']:.1f}]: CIs {'apart' if apart else 'overlap'}; paired difference "
            f"{_difference(pair)}).")


def write_docs_page(run_dir: Path, page: Path, recipe: str, student: str) -> None:
    """The quickstart's results page: written by the command from the run's own report, never by hand. Its times
    are the stages' own (their manifests), so a page rewritten by a rerun that found every stage done still gives
    what the run cost."""
    import os
    import platform
    import shutil

    layout = RunLayout(run_dir)
    results = json.loads(layout.results_json.read_text())
    stage_seconds = RunResults.of(run_dir).stage_seconds()
    total = sum(stage_seconds.values())
    image = page.with_suffix(".png")
    shutil.copyfile(layout.results_png, image)
    text = "\n".join([
        "# Quickstart results", "",
        f"Written by `exgrpo quickstart --docs {page}` (the recipe: `{recipe}`):",
        f"the synthetic reasoning world, its exact teacher, {student}, on a CPU.",
        f"Machine: {platform.machine()} ({platform.processor() or 'cpu'}), {os.cpu_count()} CPU cores, native bf16: "
        f"{'yes' if cpu_has_native_bf16() else 'no (fp32)'}, Python {platform.python_version()}; "
        f"wall time of the run: {total:.0f} s ({total / 60:.1f} min; "
        + ", ".join(f"{stage} {value:.0f} s" for stage, value in stage_seconds.items()) + ").", "",
        "Accuracy (%) with 95% bootstrap CIs. Held-in: the training families (arith, date, logic, choice) on new",
        "problems." + (" Held-out: 4-5 steps, unseen names and templates, reversed arithmetic, and the budget family"
                       " never trained on." if any(m.get("held_out") for m in results["models"].values()) else
                       " No held-out split: at the few questions this run's time allows, their CIs would span tens"
                       " of points (docs/results.md has a powered study)."),
        "EI-Test: the probes of the held-in test questions (all ten rules).", "",
        goal_line(results), "", layout.report_markdown.read_text(), f"![results]({image.name})", "",
        speeds_line(layout), "", *rl_section(layout, page)])
    atomic_write_text(page, text)


def rl_section(layout: RunLayout, page: Path) -> list[str]:
    """The quickstart's RL stage on its page: what it did (from its diagnostics and their plot), and plainly what
    a stage this short can and cannot show."""
    import shutil

    from exgrpo.rl.diagnostics import PLOT_FILE  # loads transformers: not at `exgrpo --help`

    summary = rl_stage_summary(layout)
    if not summary:
        return []
    lines = ["## The RL stage", "", f"What it did: {summary}.", "",
             "What it can show in this budget: that the whole ExGRPO step runs on this student (probe dialogues "
             "rolled out, outcome reward, DSU bonus, aux loss, KL to the SFT model) and what its diagnostics look "
             "like. What it cannot show: learning. A few steps of a few questions move the policy by sampling noise, "
             "so the EI + ExGRPO row above is the SFT model plus that noise; on this student RL needs hours of "
             "steps on 2 cores. Whether it then learns, and how much, is measured in [rl.md](rl.md) (the RL gate).", ""]
    plot = layout.stage_dir("train") / PLOT_FILE
    if plot.exists():
        image = page.with_name(page.stem + "-rl.png")
        shutil.copyfile(plot, image)
        lines += [f"![RL diagnostics]({image.name})", ""]
    return lines
