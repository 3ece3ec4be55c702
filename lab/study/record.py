"""The study's record: the small files its results page reads, kept in a committed folder (the spec's
`record_root`), because the run folders do not outlive the machine: a study spans several sittings, and a sitting
may start on a fresh machine with an empty `run_root` (models, data, checkpoints: gigabytes, never committed).

`record` copies the finished work's small files from the run folders into the record: each run's config.yaml and
teacher_tokens.json; every finished stage's manifest and training log; every finished evaluation's reports and
predictions, without the prompt and output texts (the page reads ids, answers and correctness; the texts are most
of the bytes); the RL checkpoints' evaluations (the DSU diagnostics); the tuning choices; the kept base-student
evaluation. `restore` copies the record back into the run folders where a file is missing, never over one.

What a restored run folder holds is then enough for the page and for every decision the runner reads (tuning
choices, compute matching, which runs are finished): a run whose evaluation is restored is not trained again. A
restored stage's model is not there, and the pipeline makes a stage whose outputs are missing again
(runner/plan.py): the runner does so only where a run still to do starts from it (study/spec.py run_seed).
"""

from __future__ import annotations

import filecmp
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from exgrpo.files import atomic_write_jsonl, atomic_write_text
from lab.study.reuse import BASE_COST
from lab.study.spec import Study

TEXT_FIELDS = ("prompt", "output")  # dropped from recorded predictions
TRAINING_LOGS = ("log_history.json",)
RUN_FILES = ("config.yaml", "teacher_tokens.json")


def _finished_stage_files(run_dir: Path) -> Iterator[Path]:
    """The small files of a run folder's finished stages (a stage is finished once its manifest is written)."""
    for name in RUN_FILES:
        if (run_dir / name).exists():
            yield run_dir / name
    for manifest in sorted(run_dir.glob("*/manifest.json")):
        stage_dir = manifest.parent
        yield manifest
        for name in TRAINING_LOGS:
            if (stage_dir / name).exists():
                yield stage_dir / name
        if stage_dir.name == "eval":
            yield from _evaluation_files(stage_dir)
    for report in sorted(run_dir.glob("diagnostics/checkpoint-*/report.json")):
        yield from _evaluation_files(report.parent.parent)


def _evaluation_files(folder: Path) -> Iterator[Path]:
    """Every finished evaluation under `folder` (one per model folder holding a report.json)."""
    for report in sorted(folder.glob("*/report.json")):
        yield report
        yield from sorted(report.parent.glob("predictions/*.jsonl"))


def _run_dirs(root: Path) -> Iterator[Path]:
    """The run folders of a study: <root>/seed<S>/<method>, <root>/tuning/<method>/<candidate>."""
    yield from sorted(path for path in root.glob("seed*/*") if path.is_dir())
    yield from sorted(path for path in root.glob("tuning/*/*") if path.is_dir())


def recorded_files(root: Path) -> Iterator[Path]:
    """Every file of `root` (a run root) that the record keeps."""
    for run_dir in _run_dirs(root):
        yield from _finished_stage_files(run_dir)
    yield from sorted(root.glob("tuning/*/chosen.json"))
    base_eval = root / "base-eval"
    if (base_eval / "report.json").exists():
        yield from (base_eval / name for name in ("report.json", "world.json", BASE_COST) if (base_eval / name).exists())
        yield from sorted(base_eval.glob("predictions/*.jsonl"))


def _without_texts(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in record.items() if k not in TEXT_FIELDS} for record in records]


def record(study: Study) -> int:
    """Copy the finished work's small files from the run root into the record root; returns how many changed."""
    if study.record_root.resolve() == study.run_root.resolve() or not study.run_root.exists():
        return 0
    changed = 0
    for source in recorded_files(study.run_root):
        target = study.record_root / source.relative_to(study.run_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.parent.name == "predictions":
            records = _without_texts(source)
            if target.exists() and _without_texts(target) == records:
                continue
            atomic_write_jsonl(target, records)
        else:
            if target.exists() and filecmp.cmp(source, target, shallow=False):
                continue
            atomic_write_text(target, source.read_text())
        changed += 1
    return changed


def restore(study: Study) -> int:
    """Copy every recorded file that the run root lacks back into it (never over a file there); returns how many."""
    if study.record_root.resolve() == study.run_root.resolve() or not study.record_root.exists():
        return 0
    restored = 0
    for source in sorted(path for path in study.record_root.rglob("*") if path.is_file()):
        target = study.run_root / source.relative_to(study.record_root)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        restored += 1
    return restored
