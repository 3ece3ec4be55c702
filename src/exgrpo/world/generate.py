"""Seeded generation of the world's splits: held-in train/test, and held-out sets that test generalisation.

- train, test (held-in): arith, date, logic, choice; 1-3 steps; the training names and templates.
- ood_steps: more reasoning steps (4-5) than training ever shows.
- ood_surface: unseen names, items and sentence templates.
- ood_reversed: reversed arithmetic (the start is asked, the result given): the GSM8K-Reversal analogue.
- ood_budget: a family never trained on (is the result at least a price?) that reuses the arithmetic skill.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta

from exgrpo.data.schema import Example
from exgrpo.world.program import PRONOUN, Problem, Step, Style, question_text

NAMES = list(PRONOUN)
TRAIN_NAMES, HELD_OUT_NAMES = NAMES[:12], NAMES[12:]
ITEMS = {  # per kind: (training words, held-out words)
    "number": (["apples", "pens", "coins", "shells", "cards"], ["stamps", "marbles", "beads"]),
    "date": (["party", "trip", "meeting", "game", "show", "lesson"], ["concert", "fair", "visit", "picnic"]),
    "bool": (["wug", "blicket", "dax", "fep"], ["zorp", "trell"]),
}
PROPERTIES = (["blue", "heavy", "round", "loud", "soft", "warm", "fast"], ["shiny", "tall", "sour", "quiet"])
# The words a world's templates vary besides names and numbers: what a format-overlap check masks
# (exgrpo.evaluation.format_overlap), so that a template with other items counts as the same format.
FILLER_WORDS = sorted({word for pair in (*ITEMS.values(), PROPERTIES) for side in pair for word in side})

SPLITS = {  # split -> (families, step range, surface variant, reversed, held_out_words, group)
    "train": (["arith", "date", "logic", "choice"], (1, 3), 0, False, False, "train"),
    "test": (["arith", "date", "logic", "choice"], (1, 3), 0, False, False, "held_in"),
    "ood_steps": (["arith", "date", "logic"], (4, 5), 0, False, False, "held_out"),
    "ood_surface": (["arith", "date", "logic"], (1, 3), 1, False, True, "held_out"),
    "ood_reversed": (["arith"], (1, 3), 0, True, False, "held_out"),
    "ood_budget": (["budget"], (1, 3), 0, False, False, "held_out"),
}


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def random_problem(rng: random.Random, family: str, steps: int, variant: int, held_out_words: bool,
                   reversed_: bool, problem_id: str) -> Problem:
    """One problem; numbers stay small and non-negative, so that a tiny model can learn the arithmetic."""
    kind = {"arith": "number", "choice": "number", "budget": "number", "date": "date", "logic": "bool"}[family]
    names = HELD_OUT_NAMES if held_out_words else TRAIN_NAMES
    style = Style(rng.choice(names), rng.choice(ITEMS[kind][held_out_words]), variant)
    if kind == "number":
        start = rng.randint(2, 20)
        value, chosen = start, []
        for _ in range(steps):
            op = rng.choice(["add"] + ["sub"] * (value >= 1) + ["mul"] * (1 <= value <= 12))
            amount = 2 if op == "mul" else rng.randint(1, min(9, value) if op == "sub" else 9)
            chosen.append(Step(op, amount))
            value = value * 2 if op == "mul" else value + amount if op == "add" else value - amount
        problem = Problem(problem_id, family, start, tuple(chosen), style, reversed_)
        if family == "choice":
            wrong = rng.sample([v for v in range(max(0, value - 6), value + 7) if v != value], 3)
            options = [value, *wrong]
            rng.shuffle(options)
            problem = problem.with_changes(options=tuple(options))
        if family == "budget":
            problem = problem.with_changes(price=max(1, value + rng.choice([-3, -2, -1, 0, 1, 2, 3])))
        return problem
    if kind == "date":
        start = date(2020, 1, 1) + timedelta(days=rng.randint(0, 4 * 365))
        labels = rng.sample(ITEMS["date"][held_out_words], steps) if steps <= len(ITEMS["date"][held_out_words]) \
            else [rng.choice(ITEMS["date"][held_out_words]) + f" {i + 1}" for i in range(steps)]
        chosen = [Step(rng.choice(["later", "earlier"]), rng.randint(1, 20), label) for label in labels]
        return Problem(problem_id, family, start, tuple(chosen), Style(style.name, "", variant), reversed_)
    properties = rng.sample(PROPERTIES[held_out_words], steps)
    chosen = [Step(rng.choice(["same", "flip"]), 0, label) for label in properties]
    return Problem(problem_id, family, rng.random() < 0.5, tuple(chosen), style, reversed_)


# A validation split (when asked for): the held-in test's distribution, disjoint from train and test, for every
# choice made while developing (budgets, learning rates), so that test is read only for the results.
VALIDATION = "val"


def generate_split(split: str, size: int, seed: int, exclude: set[str] | None = None) -> list[Problem]:
    """`size` problems per family of the split, seeded; questions in `exclude` (train's) are never repeated."""
    families, (low, high), variant, reversed_, held_out_words, _ = SPLITS["test" if split == VALIDATION else split]
    problems, seen = [], set(exclude or ())
    for family in families:
        rng = _rng(seed, split, family)
        count = attempts = 0
        while count < size:
            attempts += 1
            if attempts > size * 50:
                raise ValueError(f"cannot find {size} distinct {family} problems for {split}; lower the size")
            problem = random_problem(rng, family, rng.randint(low, high), variant, held_out_words, reversed_,
                                     f"{split}-{family}-{count}")
            text = question_text(problem)
            if text in seen:
                continue
            seen.add(text)
            problems.append(problem)
            count += 1
    return problems


def to_example(problem: Problem, split: str) -> Example:
    return Example(id=problem.id, question=question_text(problem), answer=problem.answer,
                   answer_type=problem.answer_type, source=f"world_{split}",
                   choices=tuple(str(o) for o in problem.options) or None)


def generate_world(seed: int, train_size: int, test_size: int, ood_size: int,
                   val_size: int = 0) -> dict[str, list[Problem]]:
    """Every split; train first, so the others can exclude its questions (validation last, excluding test's too:
    adding it changes no other split)."""
    world = {"train": generate_split("train", train_size, seed)}
    train_questions = {question_text(p) for p in world["train"]}
    for split in SPLITS:
        if split != "train":
            world[split] = generate_split(split, test_size if split == "test" else ood_size, seed, train_questions)
    if val_size:
        seen = train_questions | {question_text(p) for p in world["test"]}
        world[VALIDATION] = generate_split(VALIDATION, val_size, seed, seen)
    return world
