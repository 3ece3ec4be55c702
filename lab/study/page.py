"""The study's results page (docs/results.md): which rows each table has, the goals, the page itself."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from exgrpo.files import atomic_write_text
from exgrpo.runner.results import RunResults
from lab.study.goals import RULE as SPEC_GOALS_RULE
from lab.study.goals import goal_datasets, goal_line, judge, spec_goals
from lab.study.noise import noise_line, reevaluation_points
from lab.study.plots import plot_dsu, plot_fractions, plot_main
from lab.study.projection import projection_lines
from lab.study.rl_signal import rl_run_lines
from lab.study.spec import Study, compute_match_stages
from lab.study.standing import progress_lines, tuning_lines
from lab.study.tables import Page, Row, cell, data_passes, every, mean_passes, method_row
from lab.study.verdicts import threshold_verdict, verdict

ZERO_SHOT = Row("Zero-shot (base student)", "ei_exgrpo", "base")
EI_SFT = Row("EI data, plain SFT (no RL)", "ei_exgrpo", "sft")
OURS = Row("EI + ExGRPO (ours)", "ei_exgrpo", "exgrpo")


def main_rows(study: Study) -> list[Row]:
    baselines = ["skd", "skd_rationales", "step_by_step", "rephrase", "question_aug", "answer_aug", "revthink", "skd_grpo",
                 "gkd"]
    rl_after_ei = [method_row(study, m) for m in ("ei_rl_outcome", "ei_rl_aux") if m in study.methods]
    return [ZERO_SHOT] + [method_row(study, m) for m in baselines if m in study.methods] + [EI_SFT, *rl_after_ei, OURS]


def ablation_rows(study: Study) -> list[Row]:
    steps = [m for m in ("rl_no_sft", "ei_rl_outcome", "ei_rl_aux") if m in study.methods]
    # Full ExGRPO is "+ DSU bonus" only where the step before it (outcome reward + aux SFT loss) ran.
    last = "+ DSU bonus = full ExGRPO" if "ei_rl_aux" in steps else "+ full ExGRPO (every part at once)"
    return [ZERO_SHOT, Row("SFT only (EI data)", "ei_exgrpo", "sft")] + [
        Row(study.title(method), method, "exgrpo") for method in steps] + [Row(last, "ei_exgrpo", "exgrpo")]


def ablation_note(study: Study) -> list[str]:
    """What the ablation table can say: without the ladder's steps it is EI-SFT against full ExGRPO only."""
    if any(m in study.methods for m in ("ei_rl_outcome", "ei_rl_aux")):
        return []
    return ["No RL ablation ladder in this spec (outcome reward only, then + aux SFT loss, then + DSU bonus): the "
            "table compares the EI-SFT start with full ExGRPO, so it cannot say which part of ExGRPO moved it.", ""]


def fraction_rows(study: Study, method: str) -> list[tuple[float, Row]]:
    rows = [(float(spec["data_fraction"]), method_row(study, name)) for name, spec in study.methods.items()
            if name.startswith(method + "_f") and "data_fraction" in spec]
    full = OURS if method == study.first else method_row(study, method)
    return sorted(rows, key=lambda pair: pair[0]) + [(1.0, full)]




def _binned_row(label: str, series: dict[int, list[float]], bins: int = 10) -> list[str]:
    """A per-step series as a table of at most `bins` columns, each the mean over its consecutive steps (and the
    seeds): one column per step grows as wide as the run is long; the plot beside it shows every step."""
    steps = sorted(series)
    groups = [list(chunk) for chunk in np.array_split(np.asarray(steps), min(bins, len(steps)))]
    heads = [str(g[0]) if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in groups]
    values = [np.mean([v for s in g for v in series[s]]) for g in groups]
    return ["| steps | " + " | ".join(heads) + " |", "|---|" + "---|" * len(groups),
            f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |"]


def _goal_baselines(study: Study) -> list[Row]:
    """The other methods EI + ExGRPO is compared with by the spec's held-out goals, in their order (without a spec's
    goals, the page's built-in baselines SKD and RevThink)."""
    declared = spec_goals(study)
    if not declared:
        return [method_row(study, method) for method in ("skd", "revthink") if method in study.methods]
    rows = [g.worse for g in declared if (g.better.method, g.better.model) == (OURS.method, OURS.model)
            and g.worse.method != OURS.method and g.splits == ("held_out",)]
    return list(dict.fromkeys(rows))


def dsu_curves(page: Page) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Per step: the DSU bonus firing rate (logged) and the held-out accuracy (the page's held-out splits, mean of
    the splits, without the families left out of the averages: the main table's) of the RL stage's checkpoints,
    per seed."""
    from lab.study.spec import held_out_curve

    study = page.study
    fired: dict[int, list[float]] = {}
    held_out: dict[int, list[float]] = {}
    for seed in study.seeds:
        run_dir = study.run_dir(seed, study.first)
        run = RunResults.of(run_dir)
        history = run.training_log("train")
        if run.evaluation("exgrpo") is None or history is None:
            continue
        for entry in history:
            if "exgrpo/dsu_fired" in entry:
                fired.setdefault(entry["step"], []).append(entry["exgrpo/dsu_fired"])
        for step, value in held_out_curve(run_dir, page.held_out, page.averaged).items():
            held_out.setdefault(step, []).append(value)
    return fired, held_out



# ---------------------------------------------------------------- the page


RULE = ("Every goal is judged in code (lab/study/verdicts.py) from the paired 95% CI of the difference (same "
        "seeds, same questions): **met** only when it excludes 0 in the goal's favour, **failed** when it excludes 0 "
        "against, else **not resolved**.")


def _goal(page: Page, better: Row, worse: Row, datasets: list[str], text: str, pooled: bool = False) -> str:
    difference = page.estimate(better, datasets, minus=worse, pooled=pooled)
    return f"- **{verdict(difference)}**: {text}: paired difference {cell(difference)} points."


def goals(page: Page, study: Study) -> list[str]:
    lines = []
    for method in ("skd", "revthink"):
        if method not in study.methods:
            continue
        other = method_row(study, method)
        lines.append(_goal(page, OURS, other, page.held_out, f"EI + ExGRPO beats {other.title} on the held-out "
                           "average (mean of the splits of a format no method trained on)"))
        lines.append(_goal(page, OURS, other, page.held_out, f"EI + ExGRPO beats {other.title} on the held-out "
                           "questions pooled (the splits of a format no method trained on)", pooled=True))
    ladder = [row for row in ablation_rows(study)[1:] if row.method != "rl_no_sft"]  # that one is off the ladder
    for before, after in zip(ladder, ladder[1:], strict=False):
        lines.append(_goal(page, after, before, page.held_out, f"the ablation step '{after.title}' adds held-out "
                           f"accuracy over '{before.title}'"))
    if page.ei_test:  # only EI-trained students saw the probe formats: the RL's own effect is against EI-SFT
        lines.append(_goal(page, OURS, EI_SFT, page.ei_test, "EI + ExGRPO beats EI-SFT on EI-Test (both trained on "
                           "the probe formats, so the difference is the RL's, not the format's)"))
    quarter = next((row for f, row in fraction_rows(study, study.first) if f == 0.25), None)
    if quarter is not None and "skd" in study.methods:
        lines.append(_goal(page, quarter, method_row(study, "skd"), page.held_out,
                           "EI + ExGRPO with 25% of the questions beats SKD with 100% on the held-out average"))
    return lines


def held_out_lines(page: Page) -> list[str]:
    """Which held-out splits the averages read, and which are reported apart, with the methods that trained on
    their format (the spec's report.format_seen_by)."""
    if not page.format_seen:
        return [f"Held-out: {', '.join(page.held_out)}.", ""]
    return [f"Held-out, format unseen (every held-out average, goal and plot): {', '.join(page.held_out)}, the "
            "held-out splits in a format no method trained on. A split in a format some methods trained on "
            "measures that format, not transfer; it is in no held-out average and is reported apart "
            "(the spec's `report.format_seen_by`):", "",
            *(f"- {name}: {page.seen_by(name)}." for name in page.held_out_seen + page.ei_test
              if name in page.format_seen), ""]


def seen_format_lines(page: Page, study: Study, rows: list[Row]) -> list[str]:
    """The held-out splits in a format some methods trained on, apart: each method's accuracy with whether it
    trained on the format, and EI + ExGRPO against each baseline of the goals, per held-out split (paired)."""
    if not page.held_out_seen:
        return []
    lines = ["## Held-out splits in a format some methods trained on (reported apart)", "",
             *(f"{name} is {page.seen_by(name)}. It is in no held-out average and no goal." for name in
               page.held_out_seen), "",
             "| method | " + " | ".join(f"{name.removeprefix('world_')} (trained on its format)"
                                        for name in page.held_out_seen) + " |",
             "|---|" + "---|" * len(page.held_out_seen)]
    for row in rows:
        lines.append(f"| {row.title} | " + " | ".join(
            f"{cell(page.estimate(row, [name]))} ({'yes' if page.trained_format(row, name) else 'no'})"
            for name in page.held_out_seen) + " |")
    baselines = _goal_baselines(study)
    if not baselines:
        return lines + [""]
    lines += ["", "EI + ExGRPO minus each baseline of the goals, per held-out split (paired, the questions of the "
              "families in the averages):", "",
              "| held-out split | in the held-out average | " + " | ".join(f"EI + ExGRPO minus {b.title}"
                                                                          for b in baselines) + " |",
              "|---|---|" + "---|" * len(baselines)]
    for name in page.every_held_out():
        counted = ("no: " + page.format_seen[name].format if name in page.format_seen
                   else "yes" if page.examples(name) else "no: its families are at the guessing floor")
        lines.append(f"| {name} | {counted} | " + " | ".join(cell(page.estimate(OURS, [name], minus=b))
                                                             for b in baselines) + " |")
    lines.append("| *mean of the splits in the average* | | " + " | ".join(
        cell(page.estimate(OURS, page.held_out, minus=b)) for b in baselines) + " |")
    return lines + [""]


def overlap_section(page: Page) -> list[str]:
    """The measured format overlap of every arm's training texts with every evaluated split (where the spec asks
    for it): what decides which held-out splits are unseen-format."""
    if page.overlaps is None:
        return []
    from lab.study.overlap import SEEN, overlap_lines

    splits = page.held_in + page.every_held_out() + page.ei_test + page.validation + page.outside
    titles = {method: f"{page.study.title(method)} (`{method}`)" for method in page.overlaps}
    return ["## Which formats each arm trained on (measured)", "",
            "Per arm and evaluated split: the share of the split's sentences / of its whole prompts whose pattern "
            "(numbers, names and the world's filler words masked) occurs among the arm's training prompts (SFT user "
            "turns, probes and dialogues included, and its RL prompts; lab/study/overlap.py, the product's "
            f"`exgrpo overlap` check). A held-out split of which some arm's texts hold at least {SEEN:.0%} of the whole "
            "prompts is in a format that arm trained on: it is in no held-out average and no goal.", "",
            *overlap_lines(page.overlaps, titles, splits), ""]


GATE_POINTS = 25.0  # EI-SFT must reach the guessing floor + this on held-in before methods are compared


@contextmanager
def _every_family(page: Page) -> Iterator[None]:
    """Average over every question while inside (the families at the guessing floor included)."""
    excluded, page.excluded = page.excluded, set()
    try:
        yield
    finally:
        page.excluded = excluded


def gate_lines(page: Page) -> list[str]:
    """Does the student learn? EI-SFT against the larger guessing floor + 25 points, on every question (families
    at the floor included), on the held-in test and on the validation split the development read."""
    lines = []
    with _every_family(page):
        for name, datasets in (("held-in test", page.held_in), ("validation", page.validation)):
            floors = page.floor_values(datasets) if datasets else None
            if floors is None:
                continue
            threshold = max(floors) + GATE_POINTS
            estimate = page.estimate(EI_SFT, datasets, keep=every)
            lines.append(f"- **{threshold_verdict(estimate, threshold / 100)}** on the {name} "
                         f"({', '.join(datasets)}): EI-SFT {cell(estimate)} against the larger floor "
                         f"{max(floors):.1f} + {GATE_POINTS:g} = {threshold:.1f}.")
    return lines


def learned_lines(page: Page, rows: list[Row]) -> list[str]:
    """Did each other trained arm learn? Its held-in accuracy (every question, as the gate) against the larger
    guessing floor: a comparison with an arm that learned nothing would say little about the method."""
    lines = []
    with _every_family(page):  # floors and accuracies over the same questions, as in the gate
        floors = page.floor_values(page.held_in) if page.held_in else None
        if floors is None:
            return []
        for row in rows:
            estimate = page.estimate(row, page.held_in, keep=every)
            if estimate is not None:
                above = {"met": "above it", "failed": "below it"}.get(threshold_verdict(estimate, max(floors) / 100),
                                                                       "not shown to be above it (its CI holds it)")
                lines.append(f"- {row.title}: {cell(estimate)}, {above}")
    return [f"Every other trained arm on the held-in test against the larger guessing floor, {max(floors):.1f} (above "
            "it: the whole CI is):", "", *lines] if lines else []


def _scale(study: Study) -> list[str]:
    world, student = study.common.get("world"), study.common.get("student")
    if world is not None and student is None:
        return [f"**Scale.** The synthetic world ({world['train_size']} training problems per family, 4 families; "
                f"{world['test_size']} held-in test problems per family; held-out splits of {world['ood_size']} per "
                f"family, evaluated up to the spec's limits; {world.get('val_size') or 0} validation problems per "
                f"family), its exact teacher, and the pretrained student `{study.common.get('base_model')}`. The base "
                "student is evaluated once (greedy decoding: no training seed in it) and that evaluation is every "
                "seed's zero-shot row."]
    if world is None or student is None:
        return [f"**Models.** Student `{study.common.get('base_model')}`; the teacher and data as configured."]
    return [f"**Scale.** The synthetic world ({world['train_size']} training questions per family, 4 families; "
            f"{world['test_size']} held-in test questions per family; {world['ood_size']} per family in each held-out",
            f"set), its exact teacher, and a {student['num_layers']}-layer, hidden-{student['hidden_size']} Llama "
            "student trained from scratch (see docs/world.md). This is a scale model of the paper's setting, not a",
            "reproduction of its numbers: `lab/configs/paper_qwen2.5-7b.yaml` is the same study with a 7B student",
            "and a real teacher."]


def _seeds_change(study: Study) -> str:
    """What a seed changes: a student trained from scratch starts from its own random weights; a pretrained one
    starts from the same weights for every seed."""
    shared = "the world, and so the test questions, is shared"
    if study.common.get("student") is not None:
        return f"seeds change the student's initialisation and every training seed; {shared}"
    return (f"seeds change every random choice of training: data order, sampled dialogues, RL rollouts; the "
            f"pretrained student's weights are every seed's start, and {shared}")


def _note(study: Study, section: str) -> list[str]:
    return [study.notes[section].strip(), ""] if section in study.notes else []


def _outside_seeds(study: Study) -> str:
    """Which seeds' runs were evaluated on the outside check, where the spec cut it to some (report.outside_seeds)."""
    if study.outside_seeds == study.seeds:
        return ""
    return (f" Evaluated on seed{'s' if len(study.outside_seeds) > 1 else ''} "
            f"{', '.join(map(str, study.outside_seeds))} only (the spec's cut): the CIs here carry no seed variance"
            + ("." if len(study.outside_seeds) == 1 else " beyond those seeds'."))


def _all_rows(study: Study, *tables: list[Row]) -> list[Row]:
    """Every distinct row of the tables, and every other method's own model. A model in two tables keeps its first
    table's title (the main table's "EI + ExGRPO (ours)", not the ablation's name for the same model)."""
    rows: dict[tuple[str, str], Row] = {}
    for row in [*(row for table in tables for row in table), *(method_row(study, m) for m in study.methods)]:
        rows.setdefault((row.method, row.model), row)
    return list(rows.values())


GOALS_HEADING = ("Goals (paired 95% CIs; met only when the CI excludes 0 in the goal's favour, and for goals fixed in "
                 "the spec its p-value, Holm-adjusted for a secondary goal, is below 0.05):")
SUMMARY_BEGIN = "<!-- study summary: written by lab/scale_model.py report -->"
SUMMARY_END = "<!-- end of study summary -->"


def summary_lines(study: Study, page_path: Path, gate: list[str], goal_lines: list[str], progress: list[str],
                  command: str, held_out: list[str]) -> list[str]:
    """What the README says of the study: the page's own verdict lines (and its progress line), and which
    held-out splits its goals read."""
    progress = progress[:1]
    return [f"From [{page_path.as_posix()}]({page_path.as_posix()}) (`{command}`, spec "
            f"`{os.path.relpath(study.spec_path)}`), its verdict lines as the page prints them. The EI-SFT gate:", "",
            *gate, "", GOALS_HEADING, "", *goal_lines,
            *(["", *held_out] if held_out else []), *(["", *progress] if progress else [])]


def fractions_run(curves: dict[str, list[tuple[float, Row]]]) -> bool:
    """Whether the spec has a data-fraction arm (a point besides each method's full data)."""
    return any(len(points) > 1 for points in curves.values())


def data_efficiency_lines(page: Page, curves: dict[str, list[tuple[float, Row]]]) -> list[str]:
    """Held-in and held-out accuracy at each fraction of the questions; a spec without data-fraction arms (a cut
    budget's) says so instead of a table of full-data rows only."""
    if not fractions_run(curves):
        cut = " (the spec's cut: see the top of the page)" if page.study.report.get("cut") else ""
        return [f"No data-fraction arm in this spec{cut}: the methods train on all their questions only.", ""]
    lines = ["| method | fraction | seeds | held-in | held-out, format unseen |", "|---|---|---|---|---|"]
    for name, points in curves.items():
        for fraction, row in points:
            lines.append(f"| {name} | {fraction:g} | {len(page.results.seeds(row))} | "
                         f"{cell(page.estimate(row, page.held_in))} | "
                         f"{cell(page.estimate(row, page.held_out))} |")
    return lines + [f"| *guessing floor: random / majority* | | | {page.floors(page.held_in)} | "
                    f"{page.floors(page.held_out)} |", "",
                    f"![data efficiency]({page.images.name}/data_efficiency.png)", ""]


def write_results_page(study: Study, page_path: Path, command: str) -> list[str]:
    """Write the page and its plots; returns the summary lines (gate and goals) for the README."""
    page = Page(study, page_path)
    page.images.mkdir(parents=True, exist_ok=True)
    main, ablation = main_rows(study), ablation_rows(study)
    every_family = page.exclude_floor_families(main)  # before any average is computed
    curves = {"SKD": fraction_rows(study, "skd"), "EI + ExGRPO": fraction_rows(study, study.first)}
    fired, held_out = dsu_curves(page)
    plot_main(page, main, page.images / "main.png")
    if fractions_run(curves):
        plot_fractions(page, curves, page.images / "data_efficiency.png")
    if fired:
        plot_dsu(fired, held_out, page.images / "dsu.png")
    teacher = Row(study.title("teacher_model"), "teacher_model", "sft") if "teacher_model" in study.methods else None
    compute_rows = [r for r in main if r.model != "base"] + [
        method_row(study, m) for m in ("skd_compute_matched",) if m in study.methods]
    declared = spec_goals(study)  # the spec's primary and secondary goals; else the page's built-in ones
    judged = judge(page, declared) if declared else []
    goal_lines = ([goal_line(result, reevaluation_points(study, goal_datasets(page, result.goal), page.averaged))
                   for result in judged] if declared else goals(page, study))
    # The primary verdict opens the page (issue 37 item 8); the goals section repeats it among the others.
    primary = [line for result, line in zip(judged, goal_lines, strict=True) if result.goal.primary] if declared else []
    noise = noise_line(study, page.held_out, page.averaged)
    gate, progress = gate_lines(page), progress_lines(study)
    learned = learned_lines(page, [row for row in compute_rows if row != EI_SFT])
    lines = [
        "# Results: EI + ExGRPO against distillation baselines (the scale-model study)", "",
        f"Written by `{command}` from the runs of `{os.path.relpath(study.spec_path)}` (reproduce: "
        f"`python lab/scale_model.py --spec {os.path.relpath(study.spec_path)} run`, then `... report`).",
        *([f"Every number is read from the study's record, `{study.record_root.as_posix()}` (committed: the small "
           "files of the finished runs, lab/study/record.py), so `report` writes this same page on a fresh clone."]
          if study.record_root != study.run_root else []),
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU. Seeds: {study.seeds} "
        f"({_seeds_change(study)}).", "",
        *(["## Primary verdict", "", *primary, *([noise] if noise else []), ""] if primary else []),
        *progress, *_scale(study), "",
        *([f"**Cut to the time budget** (fixed in the spec before the runs, from the projection in the compute "
           f"section): {study.report['cut']}" + (f" **Applied**: {study.report['cut_applied']}"
                                                  if study.report.get("cut_applied") else ""), ""]
          if study.report.get("cut") else []),
        "Accuracy (%) with 95% CIs from a bootstrap over seeds and questions. Held-in: new questions of the training",
        "families. EI-Test: the ten rules' probes of the held-in test questions; only the EI-trained students saw",
        "those formats in training, so EI-Test compares them with each other (its goal: EI + ExGRPO against EI-SFT),",
        "not with SKD.", "", *held_out_lines(page),
        *(["The held-out splits were divided so after the runs, from their record (nothing was trained again); the "
           "next study sets its held-out splits before it runs.", ""]
          if page.held_out_seen and study.report.get("held_out_divided_after_runs") else []),
        *(["Families at the guessing floor for every method (no method's CI above the larger floor), left out of "
           f"every average and reported in the family table only: {', '.join(sorted(page.excluded))}.", ""]
          if page.excluded else []),
        *(["**Every family is at the guessing floor for every method**: no method's CI rises above the larger floor "
           "anywhere, so the averages below are over all families and cannot tell the methods apart.", ""]
          if every_family else []),
        *overlap_section(page),
        "## Does the student learn? (the EI-SFT gate)", "", *gate, "",
        *learned, *([""] if learned else []),
        "## Goals (the paper's claims, scaled)", "", SPEC_GOALS_RULE if declared else RULE, "", *goal_lines, "",
        *([noise, ""] if noise else []),
        "## Main table", "", *page.accuracy_table(main), "", f"![main]({page.images.name}/main.png)", "",
        "Held-out accuracy (format unseen) of each seed (where a CI is wide, this shows which seed it comes from):",
        "",
        *page.seed_table(main, page.held_out), "", *_note(study, "main"),
        "Per test set:", "", *page.dataset_table(main),
        *(["", "\\* in a format some methods trained on (listed above): in no held-out average."]
          if page.held_out_seen else []), "",
        "Per family (held-in and the held-out splits of a format no method trained on):", "",
        *(page.family_table(main) if page.world else ["(question ids carry no family here)"]), "",
        *seen_format_lines(page, study, main),
        *rl_run_lines(page),
    ]
    lines += ["## Ablation", "", *ablation_note(study), *page.accuracy_table(ablation), "",
              "## Data efficiency", "", *data_efficiency_lines(page, curves),
              "## Tuning (equal for every method, on validation)", "", *tuning_lines(study), "",
              "## Compute", "",
              "Teacher-written tokens: the rationales, probes and probe answers a method's SFT data holds (student",
              "tokenizer; what an API teacher would have been paid to write; the exact teacher here is free).",
              "Student training tokens: TRL's `num_tokens` (every input token of every step, SFT + RL). GKD also",
              "runs its teacher model over every student token it trains on. Passes over its own data: the epochs",
              "the Trainer counted (SFT over the method's own examples; RL over the questions kept to train on).", "",
              *page.compute_table(compute_rows), "",
              *page.teacher_token_line(OURS, [row for row in compute_rows if row.method != OURS.method]),
              *_note(study, "compute"),
              "Projected cost of the whole spec at the measured rates (lab/study/projection.py: the first run's",
              "stage times, or its tuning candidates' until it has finished, against the tokens `exgrpo run --dry-run`",
              "counts for them, applied to every method; the machines that measured them are named below):", "",
              *projection_lines(study)]
    if "skd_compute_matched" in study.methods:
        matched = method_row(study, "skd_compute_matched")
        stages = compute_match_stages(study, "skd_compute_matched")
        matched_stages = "training" if len(stages) == 2 else {"sft": "EI-SFT", "train": "RL"}[stages[0]]
        # The arm it is the longer training of: the one whose CPU seconds per step set its steps, else SKD.
        unmatched = study.methods["skd_compute_matched"].get("compute_match_rate_from", "skd")
        basis = (f"as much {matched_stages} CPU time as EI + ExGRPO's (its SFT steps from the CPU seconds per step "
                 f"of {study.title(unmatched)})"
                 if study.methods["skd_compute_matched"].get("compute_match_on") == "cpu_seconds"
                 else "as many student tokens as EI + ExGRPO")
        # The issue asks the page to say how the extra compute was spent: here, passes over the same data.
        passes = mean_passes([data_passes(study.run_dir(seed, matched.method), "sft")
                               for seed in page.results.seeds(matched)])
        lines += [f"Compute-matched comparison (SKD trained for {basis}; the extra compute is spent as more passes "
                  f"over the same questions and rationales: {passes} passes over its data, mean over seeds):", "",
                  *page.accuracy_table([method_row(study, unmatched), matched, OURS]), "",
                  f"EI + ExGRPO minus compute-matched SKD, held-out (format unseen): "
                  f"{page.difference(OURS, matched, page.held_out)}; "
                  f"held-in: {page.difference(OURS, matched, page.held_in)}.", ""]
    if page.outside:
        lines += ["## Outside check: real benchmarks", "",
                  "Every trained student on real arithmetic benchmarks (not in any average): does training on the world",
                  "move them?" + _outside_seeds(study), "", *page.dataset_table(main, page.outside), ""]
    if teacher is not None:
        lines += [f"GKD's teacher model (a larger student SFT'd on the teacher's rationales): "
                  f"held-in {cell(page.estimate(teacher, page.held_in))}, held-out {cell(page.estimate(teacher, page.held_out))}.",
                  ""]
    lines += [
        "## Degenerate outputs", "",
        # The policy comes first: it speaks of the runs "flagged below".
        *([f"Rerun policy (fixed in the spec before the runs): {study.report['rerun_policy']}", ""]
          if study.report.get("rerun_policy") else []),
        "Runs whose outputs degenerated on a dataset (more than 80% of outputs without a parseable answer, or more than",
        "80% one answer where the gold answers are less uniform), found by code in every finished evaluation:", "",
        *(page.degenerate_runs(_all_rows(study, main, ablation)) or ["- none detected"]), "",
    ]
    if fired:
        lines += ["## DSU diagnostics", "",
                  "The fraction of questions whose correct full-dialogue rollouts got the DSU bonus, over training, and",
                  "the held-out accuracy (mean of the held-out splits of a format no method trained on, as in the main",
                  "table) of the checkpoints (step 0: the",
                  "EI-SFT model; the last step: the trained model), mean over seeds.", "",
                  *(["| step | " + " | ".join(str(s) for s in sorted(held_out)) + " |",
                     "|---|" + "---|" * len(held_out),
                     "| held-out accuracy | " + " | ".join(f"{np.mean(held_out[s]):.1f}" for s in sorted(held_out))
                     + " |"] if held_out else ["(no checkpoint's held-out accuracy is recorded yet)"]),
                  "", *_binned_row("DSU firing rate (mean over the steps)", fired), "",
                  f"![dsu]({page.images.name}/dsu.png)", ""]
    atomic_write_text(page_path, "\n".join(lines))
    return summary_lines(study, page_path, gate, goal_lines, progress, command, held_out_lines(page)[:-1])
