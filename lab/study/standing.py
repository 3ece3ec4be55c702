"""Where a study stands, from its folders: how far its runs are, what tuning chose on validation, and the
candidates run outside the final learning-rate grid. Sections of the results page (study/page.py)."""

from __future__ import annotations

import json

from exgrpo.runner.layout import RunLayout
from exgrpo.runner.results import RunResults
from lab.study.spec import Study
from lab.study.tuning import read_choice, trained_stages, tuned_methods, tuning_dir, validation_accuracy


def tuning_lines(study: Study) -> list[str]:
    """Every tuned method's candidates, their validation accuracy and the choice (tuning/<method>/chosen.json)."""
    if not study.tuning:
        return ["No tuning section in the spec: every method at the spec's learning rates."]
    grid = study.tuning["learning_rates"]
    trained = {stage for method in tuned_methods(study) for stage in trained_stages(study, method)}
    untuned = [stage for stage in ("sft", "train") if stage in trained and stage not in grid]  # none where none trains
    lines = [f"Every tuned stage got the same candidates for every method (seed {study.tuning['seed']}, chosen by "
             f"accuracy on {', '.join(study.tuning['datasets'])} only; test never read): "
             + "; ".join(f"{stage} {', '.join(f'{lr:g}' for lr in rates)}" for stage, rates in grid.items())
             + "".join(f"; {stage} not tuned (the spec's learning rate)" for stage in untuned) + ". Runs that take another "
             "method's choice: " + (", ".join(f"{m} ({s['tuning_from']})" for m, s in study.methods.items()
                                              if "tuning_from" in s) or "none") + ".", "",
             "| method | stage | validation accuracy per learning rate | chosen | the chosen model in its seed "
             f"{study.tuning['seed']} run |", "|---|---|---|---|---|"]
    at_edge = False
    for method in tuned_methods(study):
        choice = read_choice(study, method)  # none yet, or made on an earlier grid
        if not choice:
            lines.append(f"| {study.title(method)} | | not tuned yet on this grid | | |")
            continue
        saved = json.loads((tuning_dir(study, method) / "chosen.json").read_text())
        for stage, learning_rate in choice.items():
            scores = ", ".join(f"{lr}: {100 * value:.1f}" for lr, value in saved["validation_accuracy"][stage].items())
            again = run_validation(study, method, "sft" if stage == "sft" else "exgrpo")
            edge = grid_edge(grid.get(stage, []), learning_rate)
            at_edge = at_edge or bool(edge)
            lines.append(f"| {study.title(method)} | {stage} | {scores} | {learning_rate:g}{edge} | "
                         f"{'n/a' if again is None else f'{100 * again:.1f}'} |")
    if at_edge:
        lines += ["", "A choice at the edge of its grid (marked) may fall short of the best rate for that arm: the "
                  "grid was fixed in the spec before the runs and is not widened for any arm."]
    return lines + ["", "The last column reads the same validation questions again, from the evaluation of the tuning "
                    "seed's run, whose model is the chosen candidate (adopted, or made again where an earlier "
                    "sitting's machine took it): where it differs from the chosen score, the difference is the "
                    "evaluation's own (the re-evaluation noise measures it) or the remake's."] + off_grid_lines(study)


def grid_edge(rates: list[float], chosen: float) -> str:
    """' (largest tried)' or ' (smallest tried)' where the choice is at an end of a grid of several rates."""
    if len(rates) < 2 or min(rates) < chosen < max(rates):
        return ""
    return " (largest tried)" if chosen == max(rates) else " (smallest tried)"


def run_validation(study: Study, method: str, model: str) -> float | None:
    """A model's accuracy on the tuning datasets in the evaluation of the method's tuning-seed run; None before it."""
    run_dir = study.run_dir(study.tuning["seed"], method)
    if not RunLayout(run_dir).evaluation(model).report.exists():
        return None
    return validation_accuracy(run_dir, model, study.tuning["datasets"])


def off_grid_lines(study: Study) -> list[str]:
    """Candidates found in the tuning folders whose learning rate is not on the spec's grid (an earlier grid):
    run and paid for, never part of a choice; with how far each RL candidate moved from its SFT model."""
    rows = []
    for method in tuned_methods(study):
        for folder in sorted(tuning_dir(study, method).glob("*-lr*")):
            stage, rate = folder.name.split("-lr", 1)
            if float(rate) in study.tuning["learning_rates"].get(stage, []):
                continue
            model = "sft" if stage == "sft" else "exgrpo"
            run = RunResults.of(folder)
            if run.evaluation(model) is None:
                continue
            kl = [e["kl"] for e in run.training_log("train") or [] if "kl" in e]
            rows.append(f"| {study.title(method)} | {stage} | {rate} | {100 * validation_accuracy(folder, model):.1f} | "
                        f"{f'{kl[-1]:.2g}' if kl else 'n/a'} |")
    if not rows:
        return []
    return ["", "Candidates run outside the final grid (an earlier grid, replaced before the methods it was not run "
            "for were tuned; never part of a choice), from their folders:", "",
            "| method | stage | learning rate | validation accuracy | KL to the SFT model, last logged step |",
            "|---|---|---|---|---|", *rows]


def progress_lines(study: Study) -> list[str]:
    """Where the study stands, counted from its folders: nothing when every run has been evaluated."""
    planned = [(seed, method) for method in study.methods for seed in study.method_seeds(method)]
    evaluated = sum(RunLayout(study.run_dir(seed, method)).manifest("eval").exists() for seed, method in planned)
    tuned = tuned_methods(study) if study.tuning else []
    chosen = sum(bool(read_choice(study, method)) for method in tuned)
    if evaluated == len(planned) and chosen == len(tuned):
        return []
    return [f"**In progress**: {evaluated} of {len(planned)} runs evaluated; learning rates chosen for {chosen} of "
            f"{len(tuned)} tuned methods. Every number below is from the finished runs only.", ""]
