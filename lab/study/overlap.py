"""Which evaluated splits each arm of the study trained the question format of, measured rather than judged: the
product's format-overlap check (exgrpo.evaluation.format_overlap) between an arm's own training texts and every
evaluated split.

An arm's training texts: the user turns of its SFT examples as its SFT stage builds them (questions, probes, probe
dialogues, backward questions: whatever its format trains on; an arm whose RL starts from another arm's SFT model
has that arm's), and the prompts its RL stage rolls out, with their probes' where its dialogues ask them; the
splits' texts are their prompts as the evaluation renders them, so that whole prompts compare. A split
is in a format the arm trained on when at least SEEN of its whole questions have a pattern found among those
texts (numbers, names and the world's filler words masked). Measured when the page is written, on the first seed
(every seed trains on the same questions), from the first run's EI data, which `report` makes again (the exact
teacher's, in seconds) where a fresh machine lacks it.
"""

from __future__ import annotations

from typing import Any

from exgrpo.evaluation.format_overlap import format_overlap, record_texts
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.stage_configs import sft_config, train_config
from lab.study.spec import Study

SEEN = 0.05  # share of a split's whole questions whose pattern an arm's training texts hold


def _sft_texts(study: Study, method: str, seed: int) -> list[str]:
    from exgrpo.training.sft_data import sft_examples

    source = study.sft_source(method)
    config = study.run_config(source, seed)
    sft = sft_config(config)
    if sft is None:
        return []
    # Every method of a seed probes alike: the first method's EI data is every arm's (its own may not be made yet).
    sft = sft.model_copy(update={"ei_data": RunLayout(study.run_dir(seed, study.first)).ei_data})
    return [text for example in sft_examples(sft) for text in record_texts(example, probes=False)]


def _rl_texts(study: Study, method: str, seed: int) -> list[str]:
    from exgrpo.data.prompts import build_prompt
    from exgrpo.training.sft_data import training_questions

    train = train_config(study.run_config(method, seed))
    if train is None or not hasattr(train, "exgrpo"):
        return []
    train = train.model_copy(update={"ei_data": RunLayout(study.run_dir(seed, study.first)).ei_data})
    with_probes = train.exgrpo.k > 0  # a dialogue asks k probes before the question
    return [text for question in training_questions(train)
            for text in [question.prompt, *([build_prompt(probe) for probe, _ in question.probes] if with_probes else [])]]


def arm_texts(study: Study, method: str, seed: int) -> list[str]:
    """The questions an arm's student was shown in training (SFT user turns and RL prompts)."""
    return _sft_texts(study, method, seed) + _rl_texts(study, method, seed)


def evaluated_texts(study: Study, seed: int) -> dict[str, list[str]]:
    """Every evaluated split's prompts (EI-Test included) as the student reads them at evaluation: rendered like
    the training prompts, so that whole prompts compare."""
    from exgrpo.data.prompts import build_messages
    from exgrpo.evaluation.evaluate import load_eval_datasets
    from exgrpo.runner.registry import run_registry
    from exgrpo.runner.stage_configs import eval_config

    config = study.run_config(study.first, seed)
    registry = run_registry(config)
    evaluation = eval_config(config, "base", registry)
    return {name: [build_messages(example, registry.get(name).prompt)[-1]["content"] for example in examples]
            for name, (_, examples) in load_eval_datasets(evaluation, registry).items()}


def measure(study: Study, seed: int | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> split -> the overlap's numbers (shares and pattern counts)."""
    from exgrpo.world.generate import FILLER_WORDS

    seed = study.seeds[0] if seed is None else seed
    splits = evaluated_texts(study, seed)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    measured: dict[int, dict[str, dict[str, Any]]] = {}  # arms that train on the same texts are measured once
    for method in study.methods:
        texts = arm_texts(study, method, seed)
        if not texts:
            continue
        key = hash(tuple(sorted(set(texts))))
        if key in measured:
            table[method] = measured[key]
            continue
        table[method] = measured[key] = {}
        for name, questions in splits.items():
            overlap = format_overlap(texts, questions, FILLER_WORDS)
            table[method][name] = {"sentences": round(overlap.sentences, 4),
                                   "whole_questions": round(overlap.whole_questions, 4),
                                   "sentence_patterns": list(overlap.sentence_patterns),
                                   "question_patterns": list(overlap.question_patterns),
                                   "questions": overlap.questions, "line": overlap.line()}
    return table


def trained_formats(table: dict[str, dict[str, dict[str, Any]]], threshold: float = SEEN) -> dict[str, list[str]]:
    """split -> the arms whose training texts hold at least `threshold` of its whole questions' patterns."""
    seen: dict[str, list[str]] = {}
    for method, splits in table.items():
        for name, overlap in splits.items():
            if overlap["whole_questions"] >= threshold:
                seen.setdefault(name, []).append(method)
    return seen


def overlap_lines(table: dict[str, dict[str, dict[str, Any]]], titles: dict[str, str], splits: list[str]) -> list[str]:
    """The page's table: per arm and split, the share of sentences / whole questions whose pattern the arm's
    training texts hold."""
    lines = ["| arm | " + " | ".join(name.removeprefix("world_") for name in splits) + " |",
             "|---|" + "---|" * len(splits)]
    for method, row in table.items():
        cells = [f"{row[name]['sentences']:.0%} / {row[name]['whole_questions']:.0%}" if name in row else "n/a"
                 for name in splits]
        lines.append(f"| {titles.get(method, method)} | " + " | ".join(cells) + " |")
    return lines
