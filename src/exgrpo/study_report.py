"""The study's results page (docs/results.md): tables with CIs pooled over seeds, plots, compute, diagnostics.

Accuracy of a method = mean over its seeds and the questions of a dataset; a group (held-in, held-out) is the
mean of its datasets. CIs are percentile bootstraps that resample seeds and, within each dataset, questions
(the same questions for every seed: one world), so they carry both training-seed and question variance.
Differences between two methods resample both with the same draws, pairing seeds (a seed's methods share
its base student) and questions.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exgrpo.evaluation.metrics import Estimate
from exgrpo.files import atomic_write_text
from exgrpo.study import Study, student_tokens

RESAMPLES = 2000


@dataclass(frozen=True)
class Row:
    """A line of a table: a method's model (zero-shot and EI-SFT are models of the ei_exgrpo runs)."""

    title: str
    method: str
    model: str


def _predictions(path: Path) -> dict[str, bool]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {record["id"]: bool(record["correct"]) for record in records}


class Results:
    """Per-question correctness of every finished (method, model, seed)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.cache: dict[tuple[str, str, int], dict[str, dict[str, bool]] | None] = {}

    def load(self, row: Row, seed: int) -> dict[str, dict[str, bool]] | None:
        key = (row.method, row.model, seed)
        if key not in self.cache:
            folder = self.study.run_dir(seed, row.method) / "eval" / row.model
            report = folder / "report.json"
            self.cache[key] = None
            if report.exists():
                self.cache[key] = {p.stem: _predictions(p) for p in sorted((folder / "predictions").glob("*.jsonl"))}
        return self.cache[key]

    def seeds(self, *rows: Row) -> list[int]:
        return [s for s in self.study.seeds if all(self.load(row, s) is not None for row in rows)]

    def matrix(self, row: Row, seeds: list[int], dataset: str, keep: Any = None) -> np.ndarray:
        """[seed, question] correctness, questions in id order (optionally those whose id passes `keep`)."""
        runs = [self.load(row, s)[dataset] for s in seeds]  # type: ignore[index]
        ids = sorted(i for i in runs[0] if keep is None or keep(i))
        return np.array([[run[i] for i in ids] for run in runs], dtype=float)


def pooled_bootstrap(groups: list[np.ndarray], seed: int = 0) -> Estimate | None:
    """Mean over groups of each [seed, question] matrix's mean; seeds resampled jointly, questions per group."""
    groups = [g for g in groups if g.size]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    n_seeds = groups[0].shape[0]
    seed_picks = rng.integers(0, n_seeds, size=(RESAMPLES, n_seeds))
    totals = np.zeros(RESAMPLES)
    for group in groups:
        question_picks = rng.integers(0, group.shape[1], size=(RESAMPLES, group.shape[1]))
        question_means = group[:, question_picks].mean(axis=2)  # [seed, resample]
        totals += np.take_along_axis(question_means.T, seed_picks, axis=1).mean(axis=1)
    totals /= len(groups)
    low, high = np.percentile(totals, [2.5, 97.5])
    return Estimate(float(np.mean([g.mean() for g in groups])), float(low), float(high))


def family(question_id: str) -> str:
    return question_id.split("#")[0].split("-")[1]


def cell(estimate: Estimate | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{100 * estimate.value:.1f} [{100 * estimate.low:.1f}, {100 * estimate.high:.1f}]"


class Page:
    def __init__(self, study: Study, page: Path) -> None:
        from exgrpo.config import expand_dataset_names
        from exgrpo.data.registry import get_entry

        self.study = study
        self.results = Results(study)
        self.page = page
        self.images = page.parent / "results"
        config = study.run_config(study.first, study.seeds[0])  # (registers a synthetic world's datasets)
        names = expand_dataset_names(config.eval.datasets)
        self.held_in = [name for name in names if get_entry(name).group == "held_in"]
        self.held_out = [name for name in names if get_entry(name).group == "held_out"]
        self.ei_test = [config.eval.ei_test] if config.eval.ei_test else []
        self.world = config.world is not None  # question ids name their family

    def estimate(self, row: Row, datasets: list[str], keep: Any = None, seeds: list[int] | None = None,
                 minus: Row | None = None) -> Estimate | None:
        seeds = seeds if seeds is not None else self.results.seeds(row, *([minus] if minus else []))
        if not seeds:
            return None
        groups = []
        for dataset in datasets:
            matrix = self.results.matrix(row, seeds, dataset, keep)
            if minus is not None:
                matrix = matrix - self.results.matrix(minus, seeds, dataset, keep)
            groups.append(matrix)
        return pooled_bootstrap(groups)

    def accuracy_table(self, rows: list[Row]) -> list[str]:
        lines = ["| method | seeds | held-in | held-out | EI-Test |", "|---|---|---|---|---|"]
        for row in rows:
            seeds = self.results.seeds(row)
            lines.append(f"| {row.title} | {len(seeds)} | {cell(self.estimate(row, self.held_in))} | "
                         f"{cell(self.estimate(row, self.held_out))} | {cell(self.estimate(row, self.ei_test))} |")
        return lines

    def dataset_table(self, rows: list[Row]) -> list[str]:
        datasets = self.held_in + self.held_out
        lines = ["| method | " + " | ".join(d.removeprefix("world_") for d in datasets) + " |",
                 "|---|" + "---|" * len(datasets)]
        for row in rows:
            lines.append(f"| {row.title} | " + " | ".join(cell(self.estimate(row, [d])) for d in datasets) + " |")
        return lines

    def family_table(self, rows: list[Row]) -> list[str]:
        families = ["arith", "date", "logic", "choice", "budget"]
        lines = ["| method | " + " | ".join(families) + " |", "|---|" + "---|" * len(families)]
        for row in rows:
            cells = []
            for name in families:
                datasets = [d for d in self.held_in + self.held_out if self._has_family(row, d, name)]
                cells.append(cell(self.estimate(row, datasets, keep=lambda i, n=name: family(i) == n)) if datasets
                             else "n/a")
            lines.append(f"| {row.title} | " + " | ".join(cells) + " |")
        return lines

    def _has_family(self, row: Row, dataset: str, name: str) -> bool:
        seeds = self.results.seeds(row)
        return bool(seeds) and any(family(i) == name for i in self.results.load(row, seeds[0])[dataset])  # type: ignore[index]

    def difference(self, a: Row, b: Row, datasets: list[str]) -> str:
        estimate = self.estimate(a, datasets, minus=b)
        if estimate is None:
            return "n/a"
        verdict = "above" if estimate.low > 0 else "below" if estimate.high < 0 else "no difference resolved"
        return f"{cell(estimate)} ({verdict})"

    # ------------------------------------------------------------ compute

    def compute_row(self, row: Row) -> list[str] | None:
        """Teacher-written tokens trained on, student training tokens and training wall time (mean over seeds)."""
        seeds = self.results.seeds(row)
        if not seeds or row.model == "base":
            return None
        spec = self.study.methods[row.method]
        source = spec.get("sft_model_from", row.method)  # the method that trained its SFT model
        teacher, student, seconds = [], [], []
        for seed in seeds:
            own, shared = self.study.run_dir(seed, row.method), self.study.run_dir(seed, source)
            parts = [(shared, "sft")] + ([(own, "train")] if row.model == "exgrpo" else [])
            student.append(sum(student_tokens(folder).get(stage, 0) for folder, stage in parts))
            seconds.append(sum(_stage_seconds(folder, stage) for folder, stage in parts))
            teacher.append(teacher_tokens(self.study.run_config(source, seed)))
        return [f"{np.mean(teacher):,.0f}", f"{np.mean(student):,.0f}", f"{np.mean(seconds):.0f}"]

    def compute_table(self, rows: list[Row]) -> list[str]:
        lines = ["| method | teacher-written tokens trained on | student training tokens | training wall time (s) |",
                 "|---|---|---|---|"]
        for row in rows:
            values = self.compute_row(row)
            if values is not None:
                lines.append(f"| {row.title} | " + " | ".join(values) + " |")
        return lines


def _stage_seconds(run_dir: Path, stage: str) -> float:
    manifest = run_dir / stage / "manifest.json"
    if not manifest.exists():
        return 0.0
    manifest_data = json.loads(manifest.read_text())
    return 0.0 if "skipped" in manifest_data.get("outputs", {}) else float(manifest_data["seconds"])


def teacher_tokens(config: Any) -> int:
    """Tokens (student tokenizer) of the teacher-written text an SFT stage trains on: rationales, and the probes
    with their answers where its format uses them. What an API teacher would have been paid to write."""
    from transformers import AutoTokenizer

    from exgrpo.training.sft_data import training_questions

    sft = config.sft_config()
    if sft is None:
        return 0
    tokenizer = AutoTokenizer.from_pretrained(config.base_path())
    uses_probes = sft.format == "revthink" or (sft.format == "standard" and (
        sft.include_probes or sft.dialogues_per_question > 0))
    count = 0
    for question in training_questions(sft):
        count += len(tokenizer(question.teacher_response)["input_ids"])
        if sft.extra_rationales:
            count += sum(len(tokenizer(text)["input_ids"]) for text in question.extra_responses)
        if uses_probes:
            count += sum(len(tokenizer(p.question + " " + r)["input_ids"]) for p, r in question.probes)
    return count


# ---------------------------------------------------------------- the rows of each table

ZERO_SHOT = Row("Zero-shot (base student)", "ei_exgrpo", "base")
EI_SFT = Row("EI data, plain SFT (no RL)", "ei_exgrpo", "sft")
OURS = Row("EI + ExGRPO (ours)", "ei_exgrpo", "exgrpo")


def method_row(study: Study, method: str) -> Row:
    config_train = study.methods[method].get("train", study.common.get("train"))
    return Row(study.title(method), method, "exgrpo" if config_train is not None else "sft")


def main_rows(study: Study) -> list[Row]:
    baselines = ["skd", "step_by_step", "rephrase", "question_aug", "answer_aug", "revthink", "skd_grpo", "gkd"]
    return [ZERO_SHOT] + [method_row(study, m) for m in baselines if m in study.methods] + [EI_SFT, OURS]


def ablation_rows(study: Study) -> list[Row]:
    steps = [m for m in ("rl_no_sft", "ei_rl_outcome", "ei_rl_aux") if m in study.methods]
    return [ZERO_SHOT, Row("SFT only (EI data)", "ei_exgrpo", "sft")] + [
        Row(study.title(method), method, "exgrpo") for method in steps] + [
        Row("+ DSU bonus = full ExGRPO", "ei_exgrpo", "exgrpo")]


def fraction_rows(study: Study, method: str) -> list[tuple[float, Row]]:
    rows = [(float(spec["data_fraction"]), method_row(study, name)) for name, spec in study.methods.items()
            if name.startswith(method + "_f") and "data_fraction" in spec]
    full = OURS if method == study.first else method_row(study, method)
    return sorted(rows, key=lambda pair: pair[0]) + [(1.0, full)]


# ---------------------------------------------------------------- plots


def _plot_main(page: Page, rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("held-in", page.held_in), ("held-out", page.held_out), ("EI-Test", page.ei_test)]
    figure, axis = plt.subplots(figsize=(13, 4.8))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        estimates = [page.estimate(row, datasets) for _, datasets in groups]
        values = [100 * e.value if e else 0 for e in estimates]
        errors = [[100 * (e.value - e.low) if e else 0 for e in estimates], [100 * (e.high - e.value) if e else 0
                                                                             for e in estimates]]
        axis.bar([g + i * width for g in range(len(groups))], values, width, yerr=errors, capsize=2, label=row.title)
    axis.set_xticks([g + width * (len(rows) - 1) / 2 for g in range(len(groups))], [name for name, _ in groups])
    axis.set_ylabel("accuracy (%), 95% CI over seeds and questions")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_fractions(page: Page, curves: dict[str, list[tuple[float, Row]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, (group, datasets) in zip(axes, [("held-in", page.held_in), ("held-out", page.held_out)], strict=True):
        for name, points in curves.items():
            found = [(f, page.estimate(row, datasets)) for f, row in points]
            found = [(f, e) for f, e in found if e is not None]
            if not found:
                continue
            fractions = [f for f, _ in found]
            axis.plot(fractions, [100 * e.value for _, e in found], marker="o", label=name)
            axis.fill_between(fractions, [100 * e.low for _, e in found], [100 * e.high for _, e in found], alpha=0.2)
        axis.set_xscale("log")
        axis.set_xticks([0.1, 0.25, 0.5, 1.0], ["10%", "25%", "50%", "100%"])
        axis.set_xlabel("fraction of the training questions")
        axis.set_ylabel(f"{group} accuracy (%)")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def dsu_curves(page: Page) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Per step: the DSU bonus firing rate (logged) and the held-out accuracy of the checkpoints, per seed."""
    from exgrpo.study import evaluate_checkpoints

    study = page.study
    fired: dict[int, list[float]] = {}
    held_out: dict[int, list[float]] = {}
    for seed in study.seeds:
        run_dir = study.run_dir(seed, study.first)
        history = run_dir / "train" / "log_history.json"
        if not (run_dir / "eval" / "exgrpo" / "report.json").exists() or not history.exists():
            continue
        for entry in json.loads(history.read_text()):
            if "exgrpo/dsu_fired" in entry:
                fired.setdefault(entry["step"], []).append(entry["exgrpo/dsu_fired"])
        sft_report = json.loads((run_dir / "eval" / "sft" / "report.json").read_text())
        held_out.setdefault(0, []).append(sft_report["averages"]["held_out"]["accuracy"]["value"])
        for step, value in evaluate_checkpoints(study, seed, page.held_out).items():
            held_out.setdefault(step, []).append(value)
    return fired, held_out


def _plot_dsu(fired: dict[int, list[float]], held_out: dict[int, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = sorted(fired)
    axis.plot(steps, [np.mean(fired[s]) for s in steps], color="tab:red", label="DSU bonus firing rate")
    axis.set_xlabel("ExGRPO step")
    axis.set_ylabel("fraction of questions with the bonus")
    other = axis.twinx()
    points = sorted(held_out)
    other.plot(points, [np.mean(held_out[s]) for s in points], marker="o", color="tab:blue", label="held-out accuracy")
    other.set_ylabel("held-out accuracy (%), mean over seeds")
    figure.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------- the page


def _goal(met: bool | None, text: str) -> str:
    mark = "not measured yet" if met is None else "met" if met else "NOT met"
    return f"- **{mark}**: {text}"


def _separated(a: Estimate | None, b: Estimate | None) -> bool | None:
    return None if a is None or b is None else a.low > b.high


def goals(page: Page, study: Study) -> list[str]:
    lines = []
    for method in ("skd", "revthink"):
        if method not in study.methods:
            continue
        other = method_row(study, method)
        ours, theirs = page.estimate(OURS, page.held_out), page.estimate(other, page.held_out)
        lines.append(_goal(_separated(ours, theirs),
                           f"EI + ExGRPO beats {other.title} on the held-out average with non-overlapping 95% CIs: "
                           f"{cell(ours)} vs {cell(theirs)}; paired difference {page.difference(OURS, other, page.held_out)}."))
    ladder = [row for row in ablation_rows(study)[1:] if row.method != "rl_no_sft"]  # that one is off the ladder
    steps = []
    all_up: bool | None = True
    for before, after in zip(ladder, ladder[1:], strict=False):
        difference = page.estimate(after, page.held_out, minus=before)
        if difference is None:
            all_up = None
            continue
        if all_up is not None:
            all_up = all_up and difference.value > 0
        steps.append(f"{after.title}: {cell(difference)}")
    lines.append(_goal(all_up, "each ablation step adds held-out accuracy (paired differences, points): "
                       + "; ".join(steps)))
    quarter = next((row for f, row in fraction_rows(study, study.first) if f == 0.25), None)
    if quarter is not None and "skd" in study.methods:
        difference = page.estimate(quarter, page.held_out, minus=method_row(study, "skd"))
        met = None if difference is None else difference.value >= 0
        lines.append(_goal(met, f"EI + ExGRPO with 25% of the questions matches or beats SKD with 100% on the held-out "
                           f"average: difference {cell(difference)} (points; 'matches' read as a mean difference >= 0)."))
    return lines


def _scale(study: Study) -> list[str]:
    world, student = study.common.get("world"), study.common.get("student")
    if world is None or student is None:
        return [f"**Models.** Student `{study.common.get('base_model')}`; the teacher and data as configured."]
    return [f"**Scale.** The synthetic world ({world['train_size']} training questions per family, 4 families; "
            f"{world['test_size']} held-in test questions per family; {world['ood_size']} per family in each held-out",
            f"set), its exact teacher, and a {student['num_layers']}-layer, hidden-{student['hidden_size']} Llama "
            "student trained from scratch (see docs/world.md). This is a scale model of the paper's setting, not a",
            "reproduction of its numbers: `configs/study/paper_qwen2.5-7b.yaml` is the same study with a 7B student",
            "and a real teacher."]


def _note(study: Study, section: str) -> list[str]:
    return [study.notes[section].strip(), ""] if section in study.notes else []


def write_results_page(study: Study, page_path: Path, command: str) -> None:
    page = Page(study, page_path)
    page.images.mkdir(parents=True, exist_ok=True)
    main, ablation = main_rows(study), ablation_rows(study)
    curves = {"SKD": fraction_rows(study, "skd"), "EI + ExGRPO": fraction_rows(study, study.first)}
    fired, held_out = dsu_curves(page)
    _plot_main(page, main, page.images / "main.png")
    _plot_fractions(page, curves, page.images / "data_efficiency.png")
    if fired:
        _plot_dsu(fired, held_out, page.images / "dsu.png")
    teacher = Row(study.title("teacher_model"), "teacher_model", "sft") if "teacher_model" in study.methods else None
    compute_rows = [r for r in main if r.model != "base"] + [
        method_row(study, m) for m in ("skd_compute_matched",) if m in study.methods]
    lines = [
        "# Results: EI + ExGRPO against distillation baselines (the scale-model study)", "",
        f"Written by `{command}` from the runs of `{os.path.relpath(study.spec_path)}` (reproduce: "
        f"`python benchmarks/scale_model.py --spec {os.path.relpath(study.spec_path)} run`, then `... report`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU. Seeds: {study.seeds} (seeds change the",
        "student's initialisation and every training seed; the world, and so the test questions, is shared).", "",
        *_scale(study), "",
        "Accuracy (%) with 95% CIs from a bootstrap over seeds and questions. Held-in: new questions of the training",
        "families. Held-out: more steps, unseen names and templates, reversed arithmetic, the never-trained budget",
        "family. EI-Test: the ten rules' probes of the held-in test questions.", "",
        "## Goals (the paper's claims, scaled)", "", *goals(page, study), "",
        "## Main table", "", *page.accuracy_table(main), "", "![main](results/main.png)", "",
        "Per test set:", "", *page.dataset_table(main), "", "Per family (all test sets):", "",
        *(page.family_table(main) if page.world else ["(question ids carry no family here)"]), "",
    ]
    if teacher is not None:
        lines += [f"GKD's teacher model (a larger student SFT'd on the teacher's rationales): "
                  f"held-in {cell(page.estimate(teacher, page.held_in))}, held-out {cell(page.estimate(teacher, page.held_out))}.",
                  ""]
    lines += ["## Ablation", "", *page.accuracy_table(ablation), "",
              "## Data efficiency", "", "| method | fraction | held-in | held-out |", "|---|---|---|---|"]
    for name, points in curves.items():
        for fraction, row in points:
            lines.append(f"| {name} | {fraction:g} | {cell(page.estimate(row, page.held_in))} | "
                         f"{cell(page.estimate(row, page.held_out))} |")
    lines += ["", "![data efficiency](results/data_efficiency.png)", "",
              "## Compute", "",
              "Teacher-written tokens: the rationales, probes and probe answers a method's SFT data holds (student",
              "tokenizer; what an API teacher would have been paid to write; the exact teacher here is free).",
              "Student training tokens: TRL's `num_tokens` (every input token of every step, SFT + RL). GKD also",
              "runs its teacher model over every student token it trains on.", "",
              *page.compute_table(compute_rows), "", *_note(study, "compute")]
    if "skd_compute_matched" in study.methods:
        matched = method_row(study, "skd_compute_matched")
        lines += ["Compute-matched comparison (SKD trained for as many student tokens as EI + ExGRPO):", "",
                  *page.accuracy_table([method_row(study, "skd"), matched, OURS]), "",
                  f"EI + ExGRPO minus compute-matched SKD, held-out: {page.difference(OURS, matched, page.held_out)}; "
                  f"held-in: {page.difference(OURS, matched, page.held_in)}.", ""]
    if fired:
        lines += ["## DSU diagnostics", "",
                  "The fraction of questions whose correct full-dialogue rollouts got the DSU bonus, over training, and",
                  "the held-out accuracy of the checkpoints (step 0: the EI-SFT model), mean over seeds.", "",
                  "| step | " + " | ".join(str(s) for s in sorted(held_out)) + " |",
                  "|---|" + "---|" * len(held_out),
                  "| held-out accuracy | " + " | ".join(f"{np.mean(held_out[s]):.1f}" for s in sorted(held_out)) + " |",
                  "", "| step | " + " | ".join(str(s) for s in sorted(fired)) + " |", "|---|" + "---|" * len(fired),
                  "| DSU firing rate | " + " | ".join(f"{np.mean(fired[s]):.2f}" for s in sorted(fired)) + " |", "",
                  "![dsu](results/dsu.png)", ""]
    atomic_write_text(page_path, "\n".join(lines))
