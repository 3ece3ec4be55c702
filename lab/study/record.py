"""The study's record: what its results page and its paired statistics need, kept compact in a committed folder
(the spec's `record_root`), because the run folders do not outlive the machine: a study spans several sittings,
and a sitting may start on a fresh machine with an empty `run_root` (models, data, checkpoints: gigabytes).

`record` keeps one gzip'd JSON per run folder (`<record>/seed0/skd.json.gz`, `<record>/tuning/skd/sft-lr0.0001
.json.gz`, `<record>/base-eval.json.gz`): the texts of its small files (config.yaml, teacher_tokens.json, every
finished stage's manifest and training log, every finished evaluation's report, the lab's diagnostic evaluations:
the RL checkpoints' (the DSU diagnostics) and lab/study/noise.py's re-evaluation) and, per question of every
finished evaluation, its id, extracted answer and correctness, and its gold answer (the page's degeneration
check compares the answers' spread with the gold answers'). The kept base-student evaluation keeps every field but
the prompt and output texts: later runs copy it and reuse its answers (reuse.py adopt_base_evaluation), which
needs each answer's fingerprint and token count. The tuning choices (tuning/<method>/chosen.json) are copied as
they are. `restore` writes the run-folder files back where one is missing, never over one.

What a restored run folder holds is then enough for the page and for every decision the runner reads (tuning
choices, compute matching, which runs are finished): a run whose evaluation is restored is not trained again. A
restored stage's model is not there, and the pipeline makes a stage whose outputs are missing again
(runner/plan.py): the runner does so only where a run still to do starts from it (study/spec.py run_seed). A
restored prediction has no fingerprint (but the base student's), so an evaluation never takes it for its own.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exgrpo.files import atomic_write_bytes, atomic_write_jsonl, atomic_write_text
from exgrpo.runner.results import read_predictions
from lab.study.reuse import BASE_COST, kept_base_evaluation
from lab.study.spec import Study

SCHEMA = 1
SUFFIX = ".json.gz"  # one per run folder
TEXT_FIELDS = ("prompt", "output")  # never recorded: most of the bytes, and the page reads none of them
ANSWER_FIELDS = ("id", "gold", "extracted", "correct")  # what a run's recorded predictions keep
TRAINING_LOGS = ("log_history.json", "diagnostics.json", "budgets.json")  # what a training stage logged
RUN_FOLDERS = ("seed*/*", "tuning/*/*")  # the study's run folders under its run root
RUN_FILES = ("config.yaml", "teacher_tokens.json")

Unit = dict[str, Any]  # {"schema", "files": {path: text}, "predictions": {path: {"columns", "rows"}}}


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
    # The lab's own evaluations of the run (lab/study/spec.py DIAGNOSTICS): RL checkpoints, the re-evaluation.
    yield from _evaluation_files(run_dir / "diagnostics")


def _evaluation_files(folder: Path) -> Iterator[Path]:
    """Every finished evaluation under `folder` (one per model folder holding a report.json)."""
    for report in sorted(folder.glob("*/report.json")):
        yield report
        yield from sorted(report.parent.glob("predictions/*.jsonl"))


def _base_evaluation_files(base_eval: Path) -> Iterator[Path]:
    if (base_eval / "report.json").exists():
        names = ("report.json", "world.json", BASE_COST)
        yield from (base_eval / name for name in names if (base_eval / name).exists())
        yield from sorted(base_eval.glob("predictions/*.jsonl"))


def _units(root: Path, folders: tuple[str, ...] = RUN_FOLDERS) -> Iterator[tuple[Path, list[Path]]]:
    """The folders of a run root that the record keeps one file for, with their recorded files: the run folders
    (`folders`, glob patterns: the study's <root>/seed<S>/<method> and <root>/tuning/<method>/<candidate>) and
    the kept base-student evaluation."""
    run_dirs = [path for pattern in folders for path in sorted(root.glob(pattern)) if path.is_dir()]
    for folder in run_dirs:
        yield folder, list(_finished_stage_files(folder))
    base_eval = kept_base_evaluation(root)
    yield base_eval, list(_base_evaluation_files(base_eval))


def _copied_files(root: Path) -> list[Path]:
    """The files the record keeps as they are (small, and read by people: the tuning choices)."""
    return sorted(root.glob("tuning/*/chosen.json"))


def _prediction_columns(unit_dir: Path) -> tuple[str, ...] | None:
    """The fields a unit's predictions keep; None: every field but the texts (the kept base evaluation's)."""
    return None if unit_dir.name == kept_base_evaluation(Path()).name else ANSWER_FIELDS


def _predictions(path: Path, columns: tuple[str, ...] | None) -> dict[str, Any]:
    records = read_predictions(path)
    if columns is None:
        columns = tuple(dict.fromkeys(key for record in records for key in record if key not in TEXT_FIELDS))
    for number, record in enumerate(records, 1):
        missing = [column for column in columns if column not in record]
        if missing:
            raise ValueError(f"{path}: line {number} has no {', '.join(missing)}")
    return {"columns": list(columns), "rows": [[record.get(column) for column in columns] for record in records]}


def _read_unit(path: Path) -> Unit:
    unit = json.loads(gzip.decompress(path.read_bytes()))
    if unit.get("schema") != SCHEMA:
        raise ValueError(f"{path}: record schema {unit.get('schema')!r}, this code reads {SCHEMA}")
    return unit


def _write_unit(path: Path, unit: Unit) -> None:
    """Deterministic bytes: sorted keys, and no time in the gzip header (the same content, the same file)."""
    text = json.dumps(unit, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def record_tree(run_root: Path, record_root: Path, folders: tuple[str, ...] = RUN_FOLDERS) -> int:
    """Record the finished work of `run_root`'s run folders (`folders`, glob patterns) into `record_root`, keeping
    what the record held of files the run root lacks; returns how many run-folder files changed in the record."""
    changed = 0
    for unit_dir, files in _units(run_root, folders):
        if not files:
            continue
        target = record_root / (unit_dir.relative_to(run_root).as_posix() + SUFFIX)
        old = _read_unit(target) if target.exists() else {"schema": SCHEMA, "files": {}, "predictions": {}}
        unit = {"schema": SCHEMA, "files": dict(old["files"]), "predictions": dict(old["predictions"])}
        columns = _prediction_columns(unit_dir)
        for path in files:
            name = path.relative_to(unit_dir).as_posix()
            if path.parent.name == "predictions":
                unit["predictions"][name] = _predictions(path, columns)
            else:
                unit["files"][name] = path.read_text()
        changed += sum(unit[kind].get(name) != old[kind].get(name) for kind in ("files", "predictions")
                       for name in unit[kind])
        if unit != old:
            _write_unit(target, unit)
    for source in _copied_files(run_root):
        target = record_root / source.relative_to(run_root)
        if not target.exists() or target.read_text() != source.read_text():
            atomic_write_text(target, source.read_text())
            changed += 1
    return changed


def restore_tree(record_root: Path, run_root: Path) -> int:
    """Write every recorded file that `run_root` lacks into it (never over a file there); returns how many."""
    restored = 0
    for source in _copied_files(record_root):
        target = run_root / source.relative_to(record_root)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            restored += 1
    for source in sorted(record_root.rglob("*" + SUFFIX)):
        unit_dir = run_root / source.relative_to(record_root).as_posix().removesuffix(SUFFIX)
        unit = _read_unit(source)
        for name, text in unit["files"].items():
            if not (unit_dir / name).exists():
                atomic_write_text(unit_dir / name, text)
                restored += 1
        for name, table in unit["predictions"].items():
            if not (unit_dir / name).exists():
                atomic_write_jsonl(unit_dir / name, (dict(zip(table["columns"], row, strict=True))
                                                     for row in table["rows"]))
                restored += 1
    return restored


def record(study: Study) -> int:
    """Record the finished work of the study's run root into its record root; returns how many files changed."""
    if study.record_root.resolve() == study.run_root.resolve() or not study.run_root.exists():
        return 0
    return record_tree(study.run_root, study.record_root)


def restore(study: Study) -> int:
    """Restore the study's record into its run root where files are missing; returns how many were written."""
    if study.record_root.resolve() == study.run_root.resolve() or not study.record_root.exists():
        return 0
    return restore_tree(study.record_root, study.run_root)
