"""Exact Explanatory Inversion probes for world problems: the ten rules of rules.yaml, computed, never written.

`make_probe(problem, rule_id)` turns a world problem into at most one probe of the rule, with its exact answer
and an exact step-by-step rationale, so the world's teacher needs no model. Every choice a rule makes (which
step, new numbers, option order) comes from a hash of (problem id, rule id), never from global random state.
Probes are modified world problems rendered by `question_text`/`rationale` wherever possible, so they read
like the world's questions. Where a number is asked, choice and budget problems are asked in their arith form.

The rules as done here (the choices each rule makes):
- R1 counterfactual: the start value changes (numbers by 1-3, keeping every value non-negative and every
  doubled value at most 12; dates by 1-5 days; booleans flip), the same question is asked; a choice problem
  gets fresh options. A reversed problem changes its hidden start, so its given final value changes and stays
  exactly reachable (even before an undone doubling).
- R2 explanatory challenge: an intermediate value. Forward: the problem cut after step i, asking the value
  then (the cut after the last step would repeat the question, so not that one, except for budget, whose count
  is not its answer). Reversed: the given final value and the steps from i on, asking the value before step i,
  which is what the backward solution establishes (the forward prefix would state the original's answer).
  A step other than the one R3 asks about when there is one (for two-step problems R2 and R3 coincide).
- R3 decomposition: the first intermediate value the solution finds: after the first step (forward), before
  the last step (reversed). R2 and R3 give None where there is no intermediate value: one-step problems (except
  budget), and reversed logic problems (never generated; their sentences are chained to the start).
- R4 reverse reasoning: forward <-> reversed.
- R5 principle: which operation turns the value before a step into the value after it, restating both; 3-4
  options (logic: keep, flip, and the constant that does not fit), every other option maps elsewhere.
- R6 analogy: the same family and operations with a new name, item, labels and numbers.
- R7 contrast: "Is V the correct answer?", with V the right answer (yes) or a plausible wrong one (no), half each,
  so that "no" is no shortcut. Wrong answers: skipping the last step, doing it the other way, off by one (day),
  forgetting to undo the first step (reversed), a wrong option (choice), the negation (yes/no answers).
- R8 premise relevance: up to three facts of the problem and one fact about a name (an event, for dates) it
  never mentions; which is not needed -> the latter.
- R9 error detection: the solution's lines numbered (the start or given value is step 1, a budget's comparison
  is the last); one value line has a wrong result (a misread start counts), later lines continue correctly
  from the wrong value; the answer is that line's number.
- R10 causal: numbers: one step removed (a reversed problem keeps its given final value); dates and logic: one
  step negated (later <-> earlier, same <-> flip), since removing it would leave the asked event or property
  undefined. "Would the answer then be V?", with V the original answer or the changed problem's, half each
  (removing a step almost always changes the answer). A repeated step sentence is named by which time it is
  said; a change that would make a count negative (or a reversed start not whole) is never asked, and None
  is returned only when every change would (never in generated worlds).
- RP rephrase (not an EI rule: the Rephrase-Question baseline's augmentation): the same problem told of
  another name, item and event/property words; same numbers and operations, same answer.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.schema import OPTION_LETTERS, AnswerType
from exgrpo.world.generate import HELD_OUT_NAMES, ITEMS, PROPERTIES, TRAIN_NAMES, _rng
from exgrpo.world.program import (
    TEMPLATES,
    Problem,
    Step,
    Value,
    apply,
    question_text,
    rationale,
    render_value,
    step_line,
    step_sentence,
    undo,
    undo_line,
)

MAX_DOUBLED = 12  # the generator only doubles values up to 12, so that numbers stay small
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
OPPOSITE_OP = {"add": "sub", "sub": "add", "later": "earlier", "earlier": "later", "same": "flip", "flip": "same"}


@dataclass(frozen=True)
class ProbeSpec:
    question: str  # self-contained: restates every fact it needs
    answer_type: AnswerType
    answer: str  # canonical: a number, a letter, "yes"/"no", MM/DD/YYYY
    rationale: str  # the exact solution, ending with final_answer_sentence(answer, answer_type)
    choices: tuple[str, ...] | None = None  # the options, for letter answers only


def make_probe(problem: Problem, rule_id: str) -> ProbeSpec | None:
    """The rule's probe of the problem, or None where the rule cannot apply (see the module docstring)."""
    if rule_id not in RULE_PROBES:
        raise ValueError(f"unknown rule {rule_id!r}; expected one of {', '.join(RULE_PROBES)}")
    return RULE_PROBES[rule_id](problem, _rng(0, "probe", problem.id, rule_id))


def probe_reply_json(spec: ProbeSpec) -> str:
    """The JSON object a teacher replies to a probe-generation request (see inversion/rules.py)."""
    return json.dumps({"probe": spec.question, "answer_type": spec.answer_type.value,
                       "choices": list(spec.choices) if spec.choices else None, "answer": spec.answer})


# ---------------------------------------------------------------- shared pieces


def _as_arith(problem: Problem) -> Problem:
    """Choice and budget problems asked for their number (their question text is the arith one plus a twist)."""
    if problem.family in ("choice", "budget"):
        return problem.with_changes(family="arith", options=(), price=0)
    return problem


def _solved(problem: Problem) -> ProbeSpec:
    """A world problem as a probe: its text, its answer, its rationale."""
    choices = tuple(str(option) for option in problem.options) or None
    return ProbeSpec(question_text(problem), problem.answer_type, problem.answer, rationale(problem), choices)


def _work(problem: Problem) -> str:
    """The problem's rationale without its final answer sentence: the computation, to quote in another one."""
    ending = " " + final_answer_sentence(problem.answer, problem.answer_type)
    text = rationale(problem)
    assert text.endswith(ending), "rationale() must end with the final answer sentence"
    return text.removesuffix(ending)


def _asked(problem: Problem) -> Value:
    """The value the question is about: the start of a reversed problem, the final value otherwise."""
    return problem.start if problem.reversed else problem.values()[-1]


def _non_negative(problem: Problem) -> bool:
    return problem.kind != "number" or min(problem.values()) >= 0  # type: ignore[type-var]


def _numbers_valid(problem: Problem) -> bool:
    """Whether a problem keeps the generator's promises: no negative counts, doubling only small positive ones."""
    values = problem.values()
    doubled = [values[i] for i, step in enumerate(problem.steps) if step.op == "mul"]
    return _non_negative(problem) and all(1 <= value <= MAX_DOUBLED for value in doubled)  # type: ignore[operator]


def _with_same_final(problem: Problem, steps: tuple[Step, ...]) -> Problem | None:
    """A reversed problem with other steps and the same given final value, or None if no whole start reaches it."""
    start = problem.values()[-1]
    for step in reversed(steps):
        start = undo(start, step)
    changed = problem.with_changes(start=start, steps=steps)
    return changed if changed.values()[-1] == problem.values()[-1] else None


def _options_around(value: int, rng: random.Random) -> tuple[int, ...]:
    """Four numeric options, the right one among three near misses, as the generator makes them."""
    wrong = rng.sample([v for v in range(max(0, value - 6), value + 7) if v != value], 3)
    options = [value, *wrong]
    rng.shuffle(options)
    return tuple(options)


def _quoted(answer: str) -> str:
    return f'"{answer}"' if answer in ("yes", "no") else answer


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.?]) ", text)


def _facts(problem: Problem) -> list[str]:
    """The sentences that state something: the start (or given final value) and the steps, not the question."""
    sentences = _sentences(question_text(problem))[:-1]
    return sentences[1:] if problem.reversed else sentences


def _words(problem: Problem) -> dict[str, str]:
    return TEMPLATES[(problem.kind, problem.style.variant)]


def _uses_held_out_words(problem: Problem) -> bool:
    return problem.style.name in HELD_OUT_NAMES


def _other_name(problem: Problem, rng: random.Random) -> str:
    names = HELD_OUT_NAMES if _uses_held_out_words(problem) else TRAIN_NAMES
    return rng.choice([name for name in names if name != problem.style.name])


def _other_item(problem: Problem, rng: random.Random) -> str:
    items = ITEMS[problem.kind][_uses_held_out_words(problem)]
    return rng.choice([item for item in items if item != problem.style.item])


def _random_date(rng: random.Random) -> date:
    return date(2020, 1, 1) + timedelta(days=rng.randint(0, 4 * 365))


def _fresh_labels(problem: Problem, rng: random.Random) -> list[str]:
    """New event words (dates) or property words (logic) for the steps, drawn as the generator draws them."""
    pool = (ITEMS["date"] if problem.kind == "date" else PROPERTIES)[_uses_held_out_words(problem)]
    count = len(problem.steps)
    unused = [word for word in pool if word not in {step.label for step in problem.steps}]
    if count <= len(unused):
        return rng.sample(unused, count)
    if count <= len(pool):
        return rng.sample(pool, count)
    return [rng.choice(pool) + f" {i + 1}" for i in range(count)]


# ---------------------------------------------------------------- R1 counterfactual


def _changed_starts(problem: Problem) -> list[Value]:
    if problem.kind == "bool":
        return [not problem.start]
    if problem.kind == "date":
        return [problem.start + timedelta(days=d) for d in range(-5, 6) if d]  # type: ignore[operator]
    return [problem.start + d for d in range(-3, 4) if d and problem.start + d >= 1]  # type: ignore[operator]


def counterfactual(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    candidates = [problem.with_changes(start=start) for start in _changed_starts(problem)]
    candidates = [changed for changed in candidates if _numbers_valid(changed)]
    if not candidates:
        return None
    changed = rng.choice(candidates)
    if problem.family == "choice":
        changed = changed.with_changes(options=_options_around(changed.values()[-1], rng))
    return _solved(changed)


# ---------------------------------------------------------------- R2 explanatory challenge, R3 decomposition


def _intermediate_problems(problem: Problem) -> list[Problem]:
    """Sub-problems whose answers are the solution's intermediate values, in the order the solution finds them."""
    count = len(problem.steps)
    if problem.reversed:
        if problem.kind == "bool":
            return []
        values = problem.values()
        return [problem.with_changes(start=values[i], steps=problem.steps[i:]) for i in range(count - 1, 0, -1)]
    last = count if problem.family == "budget" else count - 1
    return [_as_arith(problem).with_changes(steps=problem.steps[:k]) for k in range(1, last + 1)]


def explanatory_challenge(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    candidates = _intermediate_problems(problem)
    if not candidates:
        return None
    return _solved(rng.choice(candidates[1:] or candidates))


def decomposition(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    candidates = _intermediate_problems(problem)
    return _solved(candidates[0]) if candidates else None


# ---------------------------------------------------------------- R4 reverse reasoning


def reverse_reasoning(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    return _solved(_as_arith(problem).with_changes(reversed=not problem.reversed))


# ---------------------------------------------------------------- R5 principle


def _operation_name(step: Step) -> str:
    days = "1 day" if step.amount == 1 else f"{step.amount} days"
    return {"add": f"add {step.amount}", "sub": f"subtract {step.amount}", "mul": f"multiply by {step.amount}",
            "later": f"move forward {days}", "earlier": f"move back {days}", "same": "keep the value",
            "flip": "flip the value", "set_yes": "make it yes", "set_no": "make it no"}[step.op]


def _operation_result(value: Value, step: Step) -> Value:
    if step.op in ("set_yes", "set_no"):  # constants exist only as wrong options for logic
        return step.op == "set_yes"
    return apply(value, step)


def _operation_work(value: Value, step: Step) -> str:
    if isinstance(value, bool):
        return f"{render_value(value)} becomes {render_value(_operation_result(value, step))}."
    return step_line(value, step)


def _other_operations(step: Step) -> list[Step]:
    """Operations of the step's kind that a student might confuse with it."""
    if step.op in ("same", "flip"):
        return [Step(op) for op in ("same", "flip", "set_yes", "set_no") if op != step.op]
    if step.op == "mul":
        return [Step("add", 2), Step("sub", 2), Step("add", 1), Step("add", 3), Step("sub", 1)]
    opposite, k = OPPOSITE_OP[step.op], step.amount
    doubling = [Step("mul", 2)] if step.op in ("add", "sub") else []  # the one number operation of another shape
    return [Step(opposite, k), Step(step.op, k + 1), Step(opposite, k + 1), Step(step.op, k - 1), *doubling]


def _wrong_operations(step: Step, before: Value, after: Value, rng: random.Random) -> list[Step]:
    wrong = []
    for candidate in _other_operations(step):
        if candidate.op not in ("same", "flip", "set_yes", "set_no") and candidate.amount < 1:
            continue
        result = _operation_result(before, candidate)
        negative = isinstance(result, int) and not isinstance(result, bool) and result < 0
        if result != after and not negative:
            wrong.append(candidate)
    return rng.sample(wrong, min(3, len(wrong)))


def _before_sentence(problem: Problem, index: int, value: Value) -> str:
    """A sentence stating the value just before step `index`."""
    words, name, item = _words(problem), problem.style.name, problem.style.item
    if problem.kind == "number":
        return words["start"].format(name=name, value=value, item=item)
    if index == 0 and problem.kind == "date":
        return words["start"].format(value=render_value(value))
    if index == 0:
        return words["start_true" if value else "start_false"].format(name=name, item=item)
    return _after_sentence(problem, index - 1, value)


def _after_sentence(problem: Problem, index: int, value: Value) -> str:
    """A sentence stating the value just after step `index`."""
    words, name, item, label = _words(problem), problem.style.name, problem.style.item, problem.steps[index].label
    if problem.kind == "bool":
        return words["given_true" if value else "given_false"].format(name=name, last=label)
    return words["given"].format(name=name, item=item, last=label, value=render_value(value))


def principle(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    index = rng.randrange(len(problem.steps))
    step, values = problem.steps[index], problem.values()
    before, after = values[index], values[index + 1]
    options = [step, *_wrong_operations(step, before, after, rng)]
    rng.shuffle(options)
    letter = OPTION_LETTERS[options.index(step)]
    turns = f"turns {render_value(before)} into {render_value(after)}"
    ask = f"Which operation on yes/no values {turns}?" if problem.kind == "bool" else f"Which operation {turns}?"
    question = " ".join([_before_sentence(problem, index, before), step_sentence(problem, index),
                         _after_sentence(problem, index, after), ask])
    checks = [f"({OPTION_LETTERS[i]}) {_operation_name(option)}: {_operation_work(before, option)}"
              for i, option in enumerate(options)]
    solution = " ".join([*checks, f"Only ({letter}) {turns}.", final_answer_sentence(letter, AnswerType.letter)])
    return ProbeSpec(question, AnswerType.letter, letter, solution, tuple(_operation_name(o) for o in options))


# ---------------------------------------------------------------- R6 analogy


def _fresh_numbers(problem: Problem, labels: list[str], rng: random.Random) -> tuple[Value, tuple[Step, ...]]:
    """A new start and step amounts for the same operations: near the old numbers, so that they stay valid."""
    if problem.kind == "bool":
        return rng.random() < 0.5, tuple(Step(s.op, 0, label) for s, label in zip(problem.steps, labels, strict=True))
    if problem.kind == "date":
        steps = tuple(Step(s.op, rng.randint(1, 20), label) for s, label in zip(problem.steps, labels, strict=True))
        return _random_date(rng), steps
    start = rng.randint(max(1, problem.start - 5), problem.start + 5)  # type: ignore[operator]
    steps = tuple(s if s.op == "mul" else Step(s.op, rng.randint(max(1, s.amount - 3), s.amount + 3))
                  for s in problem.steps)
    return start, steps


def analogy(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    item = _other_item(problem, rng) if problem.style.item else ""
    style = replace(problem.style, name=_other_name(problem, rng), item=item)
    labels = _fresh_labels(problem, rng) if problem.kind != "number" else [""] * len(problem.steps)
    for _ in range(200):  # rejection: a few draws near valid numbers always find valid ones in practice
        start, steps = _fresh_numbers(problem, labels, rng)
        analog = problem.with_changes(id=f"{problem.id}#analogy", start=start, steps=steps, style=style)
        if _numbers_valid(analog) and (start, steps) != (problem.start, problem.steps):
            break
    else:
        return None
    if problem.family == "choice":
        analog = analog.with_changes(options=_options_around(analog.values()[-1], rng))
    if problem.family == "budget":
        analog = analog.with_changes(price=max(1, analog.values()[-1] + rng.randint(-3, 3)))
    return _solved(analog)


# ---------------------------------------------------------------- R7 contrast


def _plausible_wrong_answers(problem: Problem) -> list[str]:
    """Answers a typical mistake gives (problem in its asked form: choice problems as arith)."""
    if problem.answer_type is AnswerType.yes_no:
        return ["no" if problem.answer == "yes" else "yes"]
    values, last = problem.values(), problem.steps[-1]
    one = timedelta(days=1) if problem.kind == "date" else 1
    right = _asked(problem)
    if problem.reversed:
        mistakes = [values[1], right + one, right - one]  # type: ignore[operator]
    else:
        mistakes = [values[-2], right + one, right - one]  # type: ignore[operator]
        if last.op in OPPOSITE_OP:
            mistakes.append(apply(values[-2], Step(OPPOSITE_OP[last.op], last.amount)))
    valid = [m for m in mistakes if m != right and not (isinstance(m, int) and m < 0)]
    return sorted({render_value(m) for m in valid})


def contrast(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    asked_form = _as_arith(problem) if problem.family == "choice" else problem
    right = asked_form.answer
    if problem.family == "choice":
        wrong = [str(o) for o in problem.options if str(o) != right]
    else:
        wrong = _plausible_wrong_answers(asked_form)
    candidate = right if rng.random() < 0.5 else rng.choice(wrong)
    answer = "yes" if candidate == right else "no"
    question = f"{question_text(asked_form)} Is {_quoted(candidate)} the correct answer to this question?"
    verdict = "correct" if answer == "yes" else "not correct"
    solution = (f"{_work(asked_form)} The solution gives {_quoted(right)}, so {_quoted(candidate)} is {verdict}. "
                + final_answer_sentence(answer, AnswerType.yes_no))
    return ProbeSpec(question, AnswerType.yes_no, answer, solution)


# ---------------------------------------------------------------- R8 premise relevance


def _unrelated_fact(problem: Problem, rng: random.Random) -> tuple[str, str]:
    """A fact about a name (or, for dates, an event) the problem never mentions, and what it is about."""
    words = _words(problem)
    if problem.kind == "date":
        labels = {step.label for step in problem.steps}
        pool = [label for label in ITEMS["date"][_uses_held_out_words(problem)] if label not in labels]
        label = rng.choice(pool or ["holiday"])
        return words["given"].format(last=label, value=render_value(_random_date(rng))), f"the {label}"
    name, item = _other_name(problem, rng), _other_item(problem, rng)
    if problem.kind == "bool":
        return words["start_true"].format(name=name, item=item), name
    return words["start"].format(name=name, value=rng.randint(2, 20), item=item), name


def premise_relevance(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    facts = list(dict.fromkeys(_facts(problem)))  # a repeated step sentence is one option
    distractor, subject = _unrelated_fact(problem, rng)
    options = [*rng.sample(facts, min(3, len(facts))), distractor]
    rng.shuffle(options)
    letter = OPTION_LETTERS[options.index(distractor)]
    question = f"{question_text(problem)} Which of these facts is not needed to answer the question?"
    solution = (f"The solution uses the facts of the problem: {_work(problem)} Option ({letter}), "
                f'"{distractor}", is about {subject}, and {subject} does not appear in the problem, so it is not '
                f"needed. " + final_answer_sentence(letter, AnswerType.letter))
    return ProbeSpec(question, AnswerType.letter, letter, solution, tuple(options))


# ---------------------------------------------------------------- R9 error detection


def _solution_values(problem: Problem) -> list[Value]:
    """The values in the order the solution writes them: forward, or back from the given final value."""
    values = problem.values()
    return values[::-1] if problem.reversed else values


def _solution_steps(problem: Problem) -> list[Step]:
    return list(problem.steps[::-1] if problem.reversed else problem.steps)


def _next_value(problem: Problem, value: Value, step: Step) -> Value:
    return undo(value, step) if problem.reversed else apply(value, step)


def _valid_next_value(problem: Problem, value: Value, step: Step) -> bool:
    """Whether a solution line from `value` is a whole, non-negative computation (halving an odd count is not)."""
    if problem.kind != "number":
        return True
    following = _next_value(problem, value, step)
    exact = not problem.reversed or apply(following, step) == value
    return exact and following >= 0  # type: ignore[operator]


def _continued(problem: Problem, index: int, wrong: Value) -> list[Value] | None:
    """The solution's values with line `index` wrong and every later line right from it, or None if invalid."""
    values = _solution_values(problem)[:index] + [wrong]
    for step in _solution_steps(problem)[index:]:
        if not _valid_next_value(problem, values[-1], step):
            return None
        values.append(_next_value(problem, values[-1], step))
    return values


def _wrong_values(value: Value, rng: random.Random) -> list[Value]:
    if isinstance(value, bool):
        return [not value]
    offsets = [1, -1, 2, -2, 3, -3]
    rng.shuffle(offsets)
    if isinstance(value, date):
        return [value + timedelta(days=offset) for offset in offsets]
    return [value + offset for offset in offsets if value + offset >= 0]


def _planted_error(problem: Problem, rng: random.Random) -> tuple[int, list[Value]] | None:
    lines = list(range(len(problem.steps) + 1))
    rng.shuffle(lines)
    for index in lines:  # the last line can always be wrong, so this finds one
        for wrong in _wrong_values(_solution_values(problem)[index], rng):
            values = _continued(problem, index, wrong)
            if values is not None:
                return index, values
    return None


def _solution_lines(problem: Problem, values: list[Value]) -> list[str]:
    """The rationale's lines for these values (one of them possibly wrong)."""
    first = f"Work back from {render_value(values[0])}." if problem.reversed else f"Start: {render_value(values[0])}."
    lines = [first]
    for before, step, after in zip(values[:-1], _solution_steps(problem), values[1:], strict=True):
        line = undo_line(before, step) if problem.reversed else step_line(before, step)
        right = _next_value(problem, before, step)
        lines.append(line.removesuffix(f"{render_value(right)}.") + f"{render_value(after)}.")
    if problem.family == "budget":
        lines.append(f"{values[-1]} {'>=' if values[-1] >= problem.price else '<'} {problem.price}.")
    return lines


def _explained_line(problem: Problem, before: Value, step: Step) -> str:
    """The right solution line from `before`; logic lines, which show only a result, get their reason."""
    line = undo_line(before, step) if problem.reversed else step_line(before, step)
    if problem.kind != "bool":
        return line
    relation = "the opposite of" if step.op == "flip" else "the same as"
    return f"{line.removesuffix('.')}, {relation} {render_value(before)}."


def _line_check(problem: Problem, index: int, shown: list[Value], wrong_index: int) -> str:
    """Why line `index` of the shown solution is right or wrong."""
    if index == 0:
        known = "given final value" if problem.reversed else "start"
        right = _solution_values(problem)[0]
        if index == wrong_index:
            return f"Step 1 is wrong: the {known} is {render_value(right)}, not {render_value(shown[0])}."
        return f"Step 1 is right: the {known} is {render_value(right)}."
    line = _explained_line(problem, shown[index - 1], _solution_steps(problem)[index - 1])
    if index == wrong_index:
        return f"Step {index + 1} is wrong: it should be {line.removesuffix('.')}, not {render_value(shown[index])}."
    return f"Step {index + 1} is right: {line}"


def error_detection(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    planted = _planted_error(problem, rng)
    if planted is None:
        return None
    wrong_index, shown = planted
    lines = _solution_lines(problem, shown)
    numbered = "\n".join(f"Step {i + 1}: {line}" for i, line in enumerate(lines))
    question = (f"{question_text(problem)}\nA solution, step by step:\n{numbered}\n"
                "Exactly one step of this solution is wrong. Which step number is it?")
    checks = [_line_check(problem, i, shown, wrong_index) for i in range(len(shown))]
    if problem.family == "budget":
        checks.append(f"Step {len(lines)} compares correctly: {lines[-1]}")
    answer = str(wrong_index + 1)
    solution = " ".join([*checks, final_answer_sentence(answer, AnswerType.number)])
    return ProbeSpec(question, AnswerType.number, answer, solution)


# ---------------------------------------------------------------- R10 causal


def _occurrence(problem: Problem, index: int) -> str:
    """How to point at step `index` unambiguously: its sentence, and which time it is said if it repeats."""
    sentence = step_sentence(problem, index)
    said = [i for i in range(len(problem.steps)) if step_sentence(problem, i) == sentence]
    if len(said) == 1:
        return f'"{sentence}"'
    return f'"{sentence}" (the {ORDINALS[said.index(index)]} time it is said)'


def _changed_by_step(problem: Problem, index: int) -> tuple[str, Problem] | None:
    """The supposition about step `index` (removed for numbers, negated otherwise) and the changed problem."""
    steps = problem.steps
    if problem.kind == "number":
        new_steps = steps[:index] + steps[index + 1:]
        supposition = f"Suppose {_occurrence(problem, index)} had not happened."
    else:
        step = steps[index]
        new_steps = steps[:index] + (Step(OPPOSITE_OP[step.op], step.amount, step.label),) + steps[index + 1:]
        negated = step_sentence(problem.with_changes(steps=new_steps), index)
        supposition = f'Suppose the problem said "{negated}" instead of {_occurrence(problem, index)}.'
    changed = _with_same_final(problem, new_steps) if problem.reversed else problem.with_changes(steps=new_steps)
    return (supposition, changed) if changed is not None and _non_negative(changed) else None


def causal(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    asked_form = _as_arith(problem) if problem.family == "choice" else problem
    changes = [_changed_by_step(asked_form, i) for i in range(len(problem.steps))]
    changes = [change for change in changes if change is not None]
    if not changes:
        return None
    supposition, changed = rng.choice(changes)
    original, new = asked_form.answer, changed.answer
    candidate = original if rng.random() < 0.5 else new
    answer = "yes" if candidate == new else "no"
    question = f"{question_text(asked_form)} {supposition} Would the answer then be {_quoted(candidate)}?"
    relation = "which is" if answer == "yes" else "which is not"
    solution = (f"With that change: {_work(changed)} The changed problem gives {_quoted(new)}, "
                f"{relation} {_quoted(candidate)}. " + final_answer_sentence(answer, AnswerType.yes_no))
    return ProbeSpec(question, AnswerType.yes_no, answer, solution)


# ---------------------------------------------------------------- RP rephrase (a baseline's augmentation)


def rephrase(problem: Problem, rng: random.Random) -> ProbeSpec | None:
    """The same problem (numbers, steps, answer) told of another name, item and event or property words."""
    item = _other_item(problem, rng) if problem.style.item else ""
    style = replace(problem.style, name=_other_name(problem, rng), item=item)
    steps = problem.steps
    if problem.kind != "number":
        steps = tuple(replace(step, label=label) for step, label in zip(steps, _fresh_labels(problem, rng), strict=True))
    return _solved(problem.with_changes(id=f"{problem.id}#rephrase", style=style, steps=steps))


RULE_PROBES: dict[str, Callable[[Problem, random.Random], ProbeSpec | None]] = {
    "R1": counterfactual, "R2": explanatory_challenge, "R3": decomposition, "R4": reverse_reasoning,
    "R5": principle, "R6": analogy, "R7": contrast, "R8": premise_relevance, "R9": error_detection, "R10": causal,
    "RP": rephrase,
}

