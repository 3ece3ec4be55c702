"""The study's tables: accuracy with CIs pooled over seeds and questions, and compute per method.

Accuracy of a method = mean over its seeds and the questions of a dataset; a group (held-in, held-out) is the
mean of its datasets. CIs are percentile bootstraps that resample seeds and, within each dataset, questions
(the same questions for every seed: one world), so they carry both training-seed and question variance.
Differences between two methods resample both with the same draws, pairing seeds (a seed's methods share
its base student) and questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exgrpo.evaluation.metrics import Estimate
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import machine_name
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.results import RunResults, folder_verdicts
from exgrpo.runner.stage_configs import base_path, eval_config, sft_config
from lab.study.spec import Study, student_tokens

RESAMPLES = 2000


@dataclass(frozen=True)
class Row:
    """A line of a table: a method's model (zero-shot and EI-SFT are models of the ei_exgrpo runs)."""

    title: str
    method: str
    model: str


class Results:
    """Per-question correctness of every finished (method, model, seed)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.cache: dict[tuple[str, str, int], dict[str, dict[str, bool]] | None] = {}

    def load(self, row: Row, seed: int) -> dict[str, dict[str, bool]] | None:
        key = (row.method, row.model, seed)
        if key not in self.cache:
            folder = RunLayout(self.study.run_dir(seed, row.method)).evaluation(row.model)
            self.cache[key] = folder_verdicts(folder) if folder.report.exists() else None
        return self.cache[key]

    def seeds(self, *rows: Row, datasets: list[str] | None = None) -> list[int]:
        """The seeds every row has finished, and with `datasets`, evaluated them all on (the outside check may
        run on some seeds only: the spec's report.outside_seeds)."""
        return [s for s in self.study.seeds
                if all((verdicts := self.load(row, s)) is not None and all(d in verdicts for d in datasets or [])
                       for row in rows)]

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


def method_row(study: Study, method: str) -> Row:
    """A method's own final model: its RL model where it has an RL stage, else its SFT model."""
    config_train = study.methods[method].get("train", study.common.get("train"))
    return Row(study.title(method), method, "exgrpo" if config_train is not None else "sft")


def every(question_id: str) -> bool:
    return True


def family(question_id: str) -> str:
    """A world question's family ("test-date-1", "test-date-1#R4" -> date); "" for an id without one."""
    parts = question_id.split("#")[0].split("-")
    return parts[1] if len(parts) > 2 else ""


def cell(estimate: Estimate | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{100 * estimate.value:.1f} [{100 * estimate.low:.1f}, {100 * estimate.high:.1f}]"


@dataclass(frozen=True)
class FormatSeen:
    """An evaluated split whose question format some methods trained on (the spec's report.format_seen_by)."""

    format: str
    methods: tuple[str, ...]


MEASURED_FORMAT = "its questions' whole patterns (measured: lab/study/overlap.py)"


def formats_seen(study: Study, evaluated: list[str]) -> dict[str, FormatSeen]:
    """The spec's report.format_seen_by: split -> the format and the methods that trained on it."""
    from exgrpo.errors import ConfigError

    seen = {}
    listed = study.report.get("format_seen_by") or {}
    if not isinstance(listed, dict):
        raise ConfigError(f"{study.spec_path}: report.format_seen_by: `measured`, or split -> format and methods")
    for split, entry in listed.items():
        where = f"{study.spec_path}: report.format_seen_by.{split}"
        if split not in evaluated:
            raise ConfigError(f"{where}: not one of the evaluated datasets ({', '.join(evaluated)})")
        if not isinstance(entry, dict) or set(entry) != {"format", "methods"}:
            raise ConfigError(f"{where}: needs `format` (words) and `methods` (the methods that trained on it)")
        unknown = [method for method in entry["methods"] if method not in study.methods]
        if unknown:
            raise ConfigError(f"{where}.methods: no method {', '.join(map(repr, unknown))}")
        seen[split] = FormatSeen(str(entry["format"]), tuple(entry["methods"]))
    return seen


class Page:
    def __init__(self, study: Study, page: Path) -> None:
        from exgrpo.config import expand_dataset_names
        from exgrpo.runner.registry import run_registry

        self.study = study
        self.results = Results(study)
        self.page = page
        self.images = page.parent / page.stem  # docs/results.md -> docs/results/*.png: one folder per page
        config = study.run_config(study.first, study.seeds[0])
        self.config, self.registry = config, run_registry(config)  # a synthetic world's datasets too
        set_apart = set(expand_dataset_names(study.report.get("outside", []) + study.report.get("validation", [])))
        self.names = names = [name for name in expand_dataset_names(config.eval.datasets) if name not in set_apart]
        self.ei_test = [config.eval.ei_test] if config.eval.ei_test else []
        self.held_in = [name for name in names if self.registry.get(name).group == "held_in"]
        held_out = [name for name in names if self.registry.get(name).group == "held_out"]
        # Which arms trained on which splits' formats: measured (lab/study/overlap.py) where the spec says
        # `format_seen_by: measured`, else as the spec lists them.
        self.overlaps: dict[str, dict[str, dict[str, Any]]] | None = None
        if study.report.get("format_seen_by") == "measured":
            from lab.study.overlap import measure, trained_formats

            self.overlaps = measure(study)
            self.format_seen = {split: FormatSeen(MEASURED_FORMAT, tuple(methods))
                                for split, methods in trained_formats(self.overlaps).items()
                                if split in held_out + self.ei_test}
        else:
            self.format_seen = formats_seen(study, expand_dataset_names(config.eval.datasets) + self.ei_test)
        # A held-out split in a format some method trained on measures that format, not transfer: every held-out
        # average, goal and plot reads the others only (held_out), and the page reports it apart (held_out_seen).
        self.held_out = [name for name in held_out if name not in self.format_seen]
        self.held_out_seen = [name for name in held_out if name in self.format_seen]
        evaluated = set(expand_dataset_names(config.eval.datasets))
        self.outside = [d for d in expand_dataset_names(study.report.get("outside", [])) if d in evaluated]
        self.validation = [d for d in expand_dataset_names(study.report.get("validation", [])) if d in evaluated]
        self.world = config.world is not None  # question ids name their family
        self.excluded: set[str] = set()  # families left out of the averages: at the floor for every method

    def estimate(self, row: Row, datasets: list[str], keep: Any = None, seeds: list[int] | None = None,
                 minus: Row | None = None, pooled: bool = False) -> Estimate | None:
        """The mean over `datasets` of their accuracies, or with `pooled` the accuracy over all their questions
        together (a large split then weighs more)."""
        seeds = seeds if seeds is not None else self.results.seeds(row, *([minus] if minus else []), datasets=datasets)
        if not seeds:
            return None
        keep = keep or self.averaged  # by default, without the families left out of the averages
        groups = []
        for dataset in datasets:
            matrix = self.results.matrix(row, seeds, dataset, keep)
            if minus is not None:
                matrix = matrix - self.results.matrix(minus, seeds, dataset, keep)
            groups.append(matrix)
        if pooled and groups:
            groups = [np.concatenate(groups, axis=1)]
        return pooled_bootstrap(groups)

    def examples(self, dataset: str) -> list[Any]:
        """The evaluated questions of a dataset (without the families left out of the averages)."""
        from exgrpo.evaluation.evaluate import load_eval_datasets

        if not hasattr(self, "_examples"):
            self._examples = {name: examples for name, (_, examples) in
                              load_eval_datasets(eval_config(self.config, "base", self.registry),
                                                 self.registry).items()}
        examples = self._examples.get(dataset, [])
        if not self.world or dataset in self.outside:  # the real benchmarks' questions have no family
            return examples
        return [e for e in examples if family(e.id) not in self.excluded]

    def trained_format(self, row: Row, dataset: str) -> bool:
        """Whether a row's model trained on the dataset's question format (the base student trained on nothing)."""
        seen = self.format_seen.get(dataset)
        return seen is not None and row.model != "base" and row.method in seen.methods

    def seen_by(self, dataset: str) -> str:
        """The format of a split some methods trained on, and those methods, in words."""
        seen = self.format_seen[dataset]
        if seen.format == MEASURED_FORMAT:
            from lab.study.overlap import SEEN

            return (f"in a format these methods' training texts show (at least {SEEN:.0%} of its whole-question "
                    "patterns found among them, measured by lab/study/overlap.py): "
                    + ", ".join(f"{self.study.title(method)} (`{method}`)" for method in seen.methods))
        return (f"in the format of {seen.format}, which these methods trained on: "
                + ", ".join(f"{self.study.title(method)} (`{method}`)" for method in seen.methods))

    def averaged(self, question_id: str) -> bool:
        """Whether a question counts in the averages (its family is not one left out at the floor)."""
        return not self.world or family(question_id) not in self.excluded

    def families(self) -> set[str]:
        return {family(e.id) for d in self.held_in + self.held_out for e in self.examples(d)} if self.world else set()

    def floor_families(self, rows: list[Row]) -> list[str]:
        """Families no method's CI lifts above their guessing floor (the larger of random and majority)."""
        from exgrpo.evaluation.floors import guessing_floors

        if not self.world:
            return []
        datasets = self.held_in + self.held_out
        kept, self.excluded = self.excluded, set()
        try:
            names = sorted(self.families())
            at_floor = []
            for name in names:
                examples = [e for d in datasets for e in self.examples(d) if family(e.id) == name]
                floors = guessing_floors(examples)
                floor = max(floors["random"], floors["majority"]) / 100
                where = [d for d in datasets if any(family(e.id) == name for e in self.examples(d))]
                measured = [e for e in (self.estimate(row, where, keep=lambda i, n=name: family(i) == n)
                                        for row in rows) if e is not None]
                if measured and all(e.low <= floor for e in measured):
                    at_floor.append(name)
            return at_floor
        finally:
            self.excluded = kept

    def exclude_floor_families(self, rows: list[Row]) -> bool:
        """Leave the families at the guessing floor for every row out of the averages (once a trained row has
        held-in results); True when that is every family: then none is left out."""
        trained = [row for row in rows if row.model != "base"]
        at_floor = set(self.floor_families(rows)) if any(self.estimate(r, self.held_in) for r in trained) else set()
        every_family = bool(at_floor) and at_floor == self.families()
        self.excluded = set() if every_family else at_floor
        return every_family

    def floor_values(self, datasets: list[str], pooled: bool = False) -> tuple[float, float] | None:
        """The guessing floors (random valid answer, majority answer; %) of the evaluated questions: the mean over
        the datasets, or over their questions pooled."""
        from exgrpo.evaluation.floors import guessing_floors

        present = [examples for examples in (self.examples(d) for d in datasets) if examples]
        if not present:
            return None
        if pooled:
            floors = [guessing_floors([e for examples in present for e in examples])]
        else:
            floors = [guessing_floors(examples) for examples in present]
        random, majority = (float(np.mean([f[kind] for f in floors])) for kind in ("random", "majority"))
        return random, majority

    def floors(self, datasets: list[str], pooled: bool = False) -> str:
        values = self.floor_values(datasets, pooled)
        return "n/a" if values is None else " / ".join(f"{value:.1f}" for value in values)

    def accuracy_table(self, rows: list[Row]) -> list[str]:
        """Held-out both ways: the mean over its splits, and pooled over their questions; the floors below."""
        lines = ["| method | seeds | held-in | held-out, format unseen (mean of splits) | held-out, format unseen (pooled) "
                 "| EI-Test |",
                 "|---|---|---|---|---|---|"]
        for row in rows:
            seeds = self.results.seeds(row)
            lines.append(f"| {row.title} | {len(seeds)} | {cell(self.estimate(row, self.held_in))} | "
                         f"{cell(self.estimate(row, self.held_out))} | "
                         f"{cell(self.estimate(row, self.held_out, pooled=True))} | "
                         f"{cell(self.estimate(row, self.ei_test))} |")
        lines.append(f"| *guessing floor: random / majority* | | {self.floors(self.held_in)} | "
                     f"{self.floors(self.held_out)} | {self.floors(self.held_out, pooled=True)} | "
                     f"{self.floors(self.ei_test)} |")
        return lines

    def degenerate_runs(self, rows: list[Row]) -> list[str]:
        """Every finished (row, seed) whose outputs degenerated on some dataset, with why (study/verdicts.py)."""
        from lab.study.verdicts import degenerations

        lines = []
        for row in rows:
            for seed in self.results.seeds(row):
                found = degenerations(RunLayout(self.study.run_dir(seed, row.method)).evaluation(row.model).path)
                # The run's id and its model too: a data-fraction run shares its full run's title (its table has
                # a fraction column; this list has none), and EI-SFT is the sft model of an ei_exgrpo run.
                lines += [f"- {row.title} (run {row.method}, its {row.model} model), seed {seed}, {dataset}: {reason}"
                          for dataset, reason in found.items()]
        return lines

    def seed_means(self, row: Row, datasets: list[str]) -> dict[int, float]:
        """Accuracy of each finished seed (mean over the datasets of their question means): shows which seed a
        wide CI comes from, e.g. a student that collapsed."""
        return {seed: float(np.mean([matrix.mean() for d in datasets
                                     if (matrix := self.results.matrix(row, [seed], d, self.averaged)).size]))
                for seed in self.results.seeds(row, datasets=datasets)}

    def seed_table(self, rows: list[Row], datasets: list[str]) -> list[str]:
        seeds = self.study.seeds
        lines = ["| method | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
        for row in rows:
            means = self.seed_means(row, datasets)
            lines.append(f"| {row.title} | " + " | ".join(f"{100 * means[s]:.1f}" if s in means else "n/a"
                                                         for s in seeds) + " |")
        return lines

    def dataset_table(self, rows: list[Row], datasets: list[str] | None = None) -> list[str]:
        """Accuracy per dataset (by default every held-in and held-out split, those in a format some method trained
        on marked *)."""
        datasets = datasets if datasets is not None else self.held_in + self.every_held_out()
        lines = ["| method | " + " | ".join(d.removeprefix("world_") + " *" * (d in self.format_seen)
                                            for d in datasets) + " |",
                 "|---|" + "---|" * len(datasets)]
        for row in rows:
            lines.append(f"| {row.title} | " + " | ".join(cell(self.estimate(row, [d], keep=every)) for d in datasets)
                         + " |")
        excluded, self.excluded = self.excluded, set()  # every question here, floors included
        lines.append("| *guessing floor: random / majority* | " + " | ".join(self.floors([d]) for d in datasets) + " |")
        self.excluded = excluded
        return lines

    def every_held_out(self) -> list[str]:
        """Every held-out split, in the evaluation's order (whatever format the methods trained on)."""
        return [name for name in self.names if name in self.held_out or name in self.held_out_seen]

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

    def compute_row(self, row: Row) -> tuple[list[str], str | None] | None:
        """Teacher-written tokens trained on, student training tokens and training wall time (mean over seeds), and a
        footnote with each seed's CPU seconds and machine when its seeds' stages ran on more than one CPU model (a
        study spans sittings, and the seconds of two CPU models are not directly comparable)."""
        seeds = self.results.seeds(row)
        if not seeds or row.model == "base":
            return None
        source = self.study.sft_source(row.method)  # the method that trained its SFT model
        student, seconds, cpu, steps, machines, passes = [], [], [], [], [], []
        for seed in seeds:
            own, shared = self.study.run_dir(seed, row.method), self.study.run_dir(seed, source)
            parts = [(shared, "sft")] + ([(own, "train")] if row.model == "exgrpo" else [])
            passes.append([data_passes(folder, stage) for folder, stage in parts])
            student.append(sum(student_tokens(folder).get(stage, 0) for folder, stage in parts))
            seconds.append(sum(stage_seconds(folder, stage) for folder, stage in parts))
            cpu.append(sum(stage_seconds(folder, stage, "cpu_seconds") for folder, stage in parts))
            steps.append(sum(optimizer_steps(folder, stage) for folder, stage in parts))
            machines.append({stage_machine(folder, stage) for folder, stage in parts} - {None})
        named = set().union(*machines)
        mixed = len(named) > 1
        values = [" / ".join(mean_passes([seed[i] for seed in passes]) for i in range(len(passes[0]))),
                  f"{np.mean(steps):,.0f}", f"{self.teacher_tokens(row):,.0f}", f"{np.mean(student):,.0f}",
                  f"{np.mean(seconds):.0f}" + " †" * mixed, (f"{np.mean(cpu):.0f}" if all(cpu) else "n/a") + " †" * mixed]
        footnote = None
        if mixed:
            footnote = f"† {row.title}, CPU seconds per seed: " + "; ".join(
                f"seed {seed} {value:.0f} ({', '.join(sorted(names)) or 'machine not recorded'})"
                for seed, value, names in zip(seeds, cpu, machines, strict=True)) + "."
        return values, footnote

    def teacher_tokens(self, row: Row) -> float | None:
        """The teacher-written tokens a row's SFT data holds, mean over its seeds with results (None: none yet)."""
        source = self.study.sft_source(row.method)
        seeds = self.results.seeds(row)
        return float(np.mean([recorded_teacher_tokens(self.study.run_config(source, seed)) for seed in seeds])
                     ) if seeds and row.model != "base" else None

    def teacher_token_line(self, ours: Row, others: list[Row]) -> list[str]:
        """Whether the arms are matched on teacher tokens: ours against the most any other arm trained on. Why a
        sentence: the table shows the numbers, the issue asks the page to say whether they are matched."""
        mine = self.teacher_tokens(ours)
        theirs = [(tokens, row) for row in others if (tokens := self.teacher_tokens(row)) is not None]
        if mine is None or not theirs:
            return []
        most, row = max(theirs, key=lambda pair: pair[0])
        if most >= mine / 1.1:  # within 10 %: matched
            return [f"Teacher-written tokens are matched: {ours.title} trained on {mine:,.0f}, {row.title} "
                    f"on {most:,.0f}.", ""]
        ratio = f"{mine / most:.1f} times" if most else "against none for"  # arms without teacher text: no ratio
        return [f"Teacher-written tokens are **not matched**: {ours.title} trained on {mine:,.0f}, "
                f"{ratio} the most any other arm trained on ({row.title}: {most:,.0f}).", ""]

    def compute_table(self, rows: list[Row]) -> list[str]:
        """The compute table; footnotes (compute_row) follow it for rows measured on more than one CPU model."""
        lines = ["| method | passes over its own data: SFT / RL | optimizer steps | teacher-written tokens trained on | "
                 "student training tokens | training wall time (s) | training CPU time (s) |",
                 "|---|---|---|---|---|---|---|"]
        footnotes = []
        for row in rows:
            computed = self.compute_row(row)
            if computed is not None:
                values, footnote = computed
                lines.append(f"| {row.title} | " + " | ".join(values) + " |")
                footnotes += [footnote] if footnote else []
        if footnotes:
            lines += ["", "† Mean over seeds measured on more than one CPU model, whose seconds are not directly "
                      "comparable:", *(f"- {footnote}" for footnote in footnotes)]
        return lines


def worked_manifest(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """A stage's manifest where the stage did its work (None where it has not run, or skipped it)."""
    manifest = RunLayout(run_dir).manifest(stage)
    data = json.loads(manifest.read_text()) if manifest.exists() else None
    return None if data is None or "skipped" in data.get("outputs", {}) else data


def stage_seconds(run_dir: Path, stage: str, kind: str = "seconds") -> float:
    """A stage's wall `seconds` or `cpu_seconds` (all threads; RL sampling and reference passes included)."""
    manifest = worked_manifest(run_dir, stage)
    return float(manifest.get(kind, 0.0)) if manifest else 0.0


def stage_machine(run_dir: Path, stage: str) -> str | None:
    """The machine that did a stage's work, in words (its manifest's `machine`); None where not recorded or not
    run, and for a skipped stage (its machine did nothing, and its seconds count 0)."""
    machine = (worked_manifest(run_dir, stage) or {}).get("machine")
    return machine_name(machine) if machine else None


def data_passes(run_dir: Path, stage: str) -> float | None:
    """Passes over the stage's own training data (the Trainer's last logged `epoch`: SFT examples, or the RL
    questions kept to train on); None before its first log."""
    epochs = [entry["epoch"] for entry in RunResults.of(run_dir).training_log(stage) or [] if "epoch" in entry]
    return epochs[-1] if epochs else None


def mean_passes(values: list[float | None]) -> str:
    known = [value for value in values if value is not None]
    return f"{np.mean(known):.2f}" if known else "n/a"


def optimizer_steps(run_dir: Path, stage: str) -> int:
    """The last optimizer step a run's training stage logged (0 before its first log)."""
    return max((entry.get("step", 0) for entry in RunResults.of(run_dir).training_log(stage) or []), default=0)


def recorded_teacher_tokens(config: Any) -> int:
    """teacher_tokens, as the run kept them (study/spec.py write_teacher_tokens), else counted from its probe data."""
    path = config.run_dir / "teacher_tokens.json"
    return int(json.loads(path.read_text())["teacher_tokens"]) if path.exists() else teacher_tokens(config)


def teacher_tokens(config: Any) -> int:
    """Tokens (student tokenizer) of the teacher-written text an SFT stage trains on: rationales, and the probes
    with their answers where its format uses them. What an API teacher would have been paid to write."""
    from transformers import AutoTokenizer

    from exgrpo.training.sft_data import training_questions

    sft = sft_config(config)
    if sft is None:
        return 0
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_path(config)))
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


