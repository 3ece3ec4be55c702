"""The world's splits as files and dataset entries, so that every stage reads them like any benchmark.

The world folder holds its datasets file (datasets.yaml) beside the split files: any command that takes
datasets reads the world from it (`--world RUN_DIR`), not only `exgrpo run`.
"""

from __future__ import annotations

import random
from pathlib import Path

from exgrpo.data.registry import DATASETS_FILE, DatasetEntry, SplitSource, write_datasets_file
from exgrpo.data.schema import AnswerType
from exgrpo.files import atomic_write_jsonl
from exgrpo.world.generate import SPLITS, VALIDATION, generate_world, to_example
from exgrpo.world.probes import make_probe
from exgrpo.world.program import Problem

EI_TEST = "ei_test"  # probes of the held-in test questions: does the student understand, or only answer?
RULES = [f"R{i}" for i in range(1, 11)]


def dataset_name(split: str) -> str:
    return f"world_{split}"


def world_problems(seed: int, train_size: int, test_size: int, ood_size: int, val_size: int = 0) -> dict[str, Problem]:
    """Every problem of the world by id (what the exact teacher needs)."""
    world = generate_world(seed, train_size, test_size, ood_size, val_size)
    return {problem.id: problem for problems in world.values() for problem in problems}


def write_world(out_dir: Path, seed: int, train_size: int, test_size: int, ood_size: int,
                val_size: int = 0) -> dict[str, int]:
    """Write each split (and EI-Test) as JSONL, and the datasets file that names them; returns the example count
    per dataset."""
    world = generate_world(seed, train_size, test_size, ood_size, val_size)
    counts = {}
    for split, problems in world.items():
        records = [{**to_example(p, split).to_dict(), "family": p.family} for p in problems]
        if split != "train":
            _shuffle(records, seed, split)
        atomic_write_jsonl(out_dir / f"{split}.jsonl", records)
        counts[dataset_name(split)] = len(records)
    ei_test = []
    for problem in world["test"]:
        for rule in RULES:
            spec = make_probe(problem, rule)
            if spec is not None:
                ei_test.append({"id": f"{problem.id}#{rule}", "question": spec.question, "answer": spec.answer,
                                "answer_type": str(spec.answer_type), "choices": list(spec.choices or []) or None,
                                "source": dataset_name(EI_TEST), "family": problem.family, "rule": rule})
    _shuffle(ei_test, seed, EI_TEST)
    atomic_write_jsonl(out_dir / f"{EI_TEST}.jsonl", ei_test)
    counts[dataset_name(EI_TEST)] = len(ei_test)
    # Last: a datasets file names only splits that are written. Relative: the run folder can move.
    write_datasets_file(out_dir / DATASETS_FILE, [entry for entry in world_entries(Path(".")) if entry.name in counts])
    return counts


def _shuffle(records: list, seed: int, split: str) -> None:
    # Evaluation files in a seeded random order: the first N (eval `limit`) are a sample of every family
    # and rule, not the first family's problems.
    random.Random(f"{seed}|order|{split}").shuffle(records)


def world_entries(out_dir: Path) -> list[DatasetEntry]:
    """The dataset entries of a world written to `out_dir`: world_train (split train), the others (split test).
    The runner adds them to its registry before the world stage writes the files."""
    entries = []
    groups = {split: spec[-1] for split, spec in SPLITS.items()} | {EI_TEST: "other", VALIDATION: "other"}
    for split, group in groups.items():
        split_name = "train" if split == "train" else "test"
        entries.append(DatasetEntry(
            name=dataset_name(split), group="other" if group == "train" else group, answer_type=AnswerType.number,
            description=f"synthetic world, split {split}", question="{{ question }}", answer="answer",
            choices="choices", id="id", answer_type_expr="answer_type", eval_split=split_name,
            splits={split_name: SplitSource(files=[f"{split}.jsonl"])}, base_dir=str(out_dir)))
    return entries
