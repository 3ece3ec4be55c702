"""The synthetic reasoning world's problems: a start value transformed by a few steps, in words.

Every family is the same skeleton with another kind of value:
- arith (number): "Ann has 5 apples. She buys 3 more. She gives 2 to a friend. How many apples ...?"
- date (date): "Today is 03/14/2021. A party is 5 days later. ... What is the date of the ...?"
- logic (bool): "Tim is a wug. A thing is blue exactly when it is a wug. ... Is Tim heavy?"
- choice (letter): an arith problem with four numeric options.
- budget (yes/no, held-out only): an arith problem, then "Can Ann pay for a kite that costs 7 apples?"
A problem can also be *reversed* (the GSM8K-Reversal analogue): the final value is given, the start asked.
Solutions and rationales are computed, never written by hand, so the teacher is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.schema import OPTION_LETTERS, AnswerType

Value = int | date | bool
KIND_OF_FAMILY = {"arith": "number", "choice": "number", "budget": "number", "date": "date", "logic": "bool"}
OPS_OF_KIND = {"number": ("add", "sub", "mul"), "date": ("later", "earlier"), "bool": ("same", "flip")}


@dataclass(frozen=True)
class Step:
    op: str  # add | sub | mul (numbers), later | earlier (dates), same | flip (booleans)
    amount: int = 0  # how much for add/sub/later/earlier; the factor for mul
    label: str = ""  # the word a step introduces: the event (dates) or the property (logic)


@dataclass(frozen=True)
class Style:
    """The surface of a problem: names and sentence templates (held-out problems use unseen ones)."""

    name: str
    item: str  # apples (arith), an event word (date), a noun (logic)
    variant: int = 0  # 0 = the templates seen in training, 1 = unseen templates


@dataclass(frozen=True)
class Problem:
    id: str
    family: str
    start: Value
    steps: tuple[Step, ...]
    style: Style
    reversed: bool = False
    options: tuple[int, ...] = ()  # choice: the numeric options, in display order
    price: int = 0  # budget: what the thing costs

    @property
    def kind(self) -> str:
        return KIND_OF_FAMILY[self.family]

    def values(self) -> list[Value]:
        """The value before any step, then after each step."""
        values = [self.start]
        for step in self.steps:
            values.append(apply(values[-1], step))
        return values

    @property
    def answer_type(self) -> AnswerType:
        if self.family == "choice":
            return AnswerType.letter
        if self.family == "budget" or self.kind == "bool":
            return AnswerType.yes_no
        return AnswerType.date if self.kind == "date" else AnswerType.number

    @property
    def answer(self) -> str:
        if self.family == "choice":
            return OPTION_LETTERS[self.options.index(self.values()[-1])]
        if self.family == "budget":
            return "yes" if self.values()[-1] >= self.price else "no"
        return render_value(self.start if self.reversed else self.values()[-1])

    def with_changes(self, **changes: object) -> Problem:
        return replace(self, **changes)


def apply(value: Value, step: Step) -> Value:
    if step.op == "add":
        return value + step.amount  # type: ignore[operator]
    if step.op == "sub":
        return value - step.amount  # type: ignore[operator]
    if step.op == "mul":
        return value * step.amount  # type: ignore[operator]
    if step.op == "later":
        return value + timedelta(days=step.amount)  # type: ignore[operator]
    if step.op == "earlier":
        return value - timedelta(days=step.amount)  # type: ignore[operator]
    if step.op == "same":
        return value
    if step.op == "flip":
        return not value
    raise ValueError(f"unknown step {step.op}")


def undo(value: Value, step: Step) -> Value:
    inverse = {"add": "sub", "sub": "add", "later": "earlier", "earlier": "later", "same": "same", "flip": "flip"}
    if step.op == "mul":
        return value // step.amount  # type: ignore[operator]
    return apply(value, Step(inverse[step.op], step.amount, step.label))


def render_value(value: Value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.strftime("%m/%d/%Y")
    return str(value)


# ---------------------------------------------------------------- words

PRONOUN = {"Ann": "She", "Bea": "She", "Cid": "He", "Dan": "He", "Eve": "She", "Finn": "He", "Gus": "He",
           "Hal": "He", "Ivy": "She", "Jo": "She", "Kai": "He", "Lou": "She", "Mia": "She", "Ned": "He",
           "Ola": "She", "Pip": "He", "Quin": "He", "Rae": "She", "Sol": "He", "Tess": "She"}

# Per kind and variant: the start sentence, one sentence per op, the question, the reversed question.
TEMPLATES = {
    ("number", 0): {
        "start": "{name} has {value} {item}.", "add": "{pronoun} buys {amount} more.",
        "sub": "{pronoun} gives {amount} to a friend.", "mul": "{pronoun} doubles them.",
        "ask": "How many {item} does {name} have now?", "unknown": "{name} has some {item}.",
        "given": "Now {name} has {value} {item}.", "ask_start": "How many {item} did {name} have at first?",
        "budget": "Can {name} pay for a kite that costs {price} {item}?"},
    ("number", 1): {
        "start": "{name} owns {value} {item}.", "add": "Then {name} receives {amount} extra {item}.",
        "sub": "Later {name} loses {amount} {item}.", "mul": "After that the {item} of {name} double.",
        "ask": "How many {item} are left with {name} in the end?", "unknown": "{name} owns a number of {item}.",
        "given": "In the end {name} owns {value} {item}.", "ask_start": "How many {item} did {name} own to begin with?",
        "budget": "Does {name} have enough {item} for a ticket priced at {price}?"},
    ("date", 0): {
        "start": "Today is {value}.", "later": "The {label} is {amount} days later.",
        "earlier": "The {label} is {amount} days earlier.", "ask": "What is the date of the {last}?",
        "unknown": "Today is a day of the year.", "given": "The {last} is on {value}.",
        "ask_start": "What is the date today?"},
    ("date", 1): {
        "start": "The calendar shows {value} today.", "later": "{amount} days after that comes the {label}.",
        "earlier": "{amount} days before that comes the {label}.", "ask": "On which date does the {last} fall?",
        "unknown": "The calendar shows some date today.", "given": "The {last} falls on {value}.",
        "ask_start": "Which date does the calendar show today?"},
    ("bool", 0): {
        "start_true": "{name} is a {item}.", "start_false": "{name} is not a {item}.",
        "same": "A thing is {label} exactly when it is {previous}.",
        "flip": "A thing is {label} exactly when it is not {previous}.", "ask": "Is {name} {last}?",
        "unknown": "Nobody told us whether {name} is a {item}.", "given_true": "{name} is {last}.",
        "given_false": "{name} is not {last}.", "ask_start": "Is {name} a {item}?"},
    ("bool", 1): {
        "start_true": "We know that {name} counts as a {item}.", "start_false": "We know that {name} is no {item}.",
        "same": "Being {label} always goes with being {previous}.",
        "flip": "Being {label} always goes with not being {previous}.", "ask": "Would you call {name} {last}?",
        "unknown": "It is unknown whether {name} counts as a {item}.", "given_true": "It turns out {name} is {last}.",
        "given_false": "It turns out {name} is not {last}.", "ask_start": "Does {name} count as a {item}?"},
}


def _previous_label(problem: Problem, index: int) -> str:
    return "a " + problem.style.item if index == 0 else problem.steps[index - 1].label


def step_sentence(problem: Problem, index: int) -> str:
    step = problem.steps[index]
    words = TEMPLATES[(problem.kind, problem.style.variant)]
    previous = _previous_label(problem, index)
    return words[step.op].format(pronoun=PRONOUN.get(problem.style.name, "They"), amount=step.amount,
                                 label=step.label, previous=previous, name=problem.style.name, item=problem.style.item)


def question_text(problem: Problem) -> str:
    """The problem as the student sees it (options, for choice problems, are in Example.choices)."""
    words = TEMPLATES[(problem.kind, problem.style.variant)]
    fields = {"name": problem.style.name, "item": problem.style.item, "price": problem.price,
              "last": problem.steps[-1].label if problem.steps else problem.style.item}
    steps = [step_sentence(problem, i) for i in range(len(problem.steps))]
    final = problem.values()[-1]
    if problem.reversed:
        opening = words["unknown"].format(**fields)
        if problem.kind == "bool":
            given = words["given_true" if final else "given_false"].format(**fields)
        else:
            given = words["given"].format(value=render_value(final), **fields)
        return " ".join([opening, *steps, given, words["ask_start"].format(**fields)])
    if problem.kind == "bool":
        opening = words["start_true" if problem.start else "start_false"].format(**fields)
    else:
        opening = words["start"].format(value=render_value(problem.start), **fields)
    ask = words["budget"] if problem.family == "budget" else words["ask"]
    return " ".join([opening, *steps, ask.format(**fields)])


def step_line(before: Value, step: Step) -> str:
    """One line of a rationale: the computation a step does."""
    after = apply(before, step)
    if isinstance(before, bool):
        return f"{step.label}: {render_value(after)}."
    symbol = {"add": "+", "sub": "-", "mul": "*", "later": "+", "earlier": "-"}[step.op]
    unit = " days" if isinstance(before, date) else ""
    return f"{render_value(before)} {symbol} {step.amount}{unit} = {render_value(after)}."


def undo_line(after: Value, step: Step) -> str:
    before = undo(after, step)
    if isinstance(after, bool):
        return f"before {step.label}: {render_value(before)}."
    symbol = {"add": "-", "sub": "+", "mul": "/", "later": "-", "earlier": "+"}[step.op]
    unit = " days" if isinstance(after, date) else ""
    return f"{render_value(after)} {symbol} {step.amount}{unit} = {render_value(before)}."


_WORDED_STEP = {"add": "Adding {a} gives {v}.", "sub": "Taking away {a} leaves {v}.", "mul": "Doubling gives {v}.",
                "later": "{a} days later is {v}.", "earlier": "{a} days earlier is {v}.", "same": "After {l}: {v}.",
                "flip": "After {l}: {v}."}
_WORDED_UNDO = {"add": "Removing {a} gives {v}.", "sub": "Adding back {a} gives {v}.", "mul": "Halving gives {v}.",
                "later": "{a} days earlier is {v}.", "earlier": "{a} days later is {v}.", "same": "Before {l}: {v}.",
                "flip": "Before {l}: {v}."}


def worded_rationale(problem: Problem) -> str:
    """The same exact solution in words instead of equations: another reasoning path's wording (Answer-Aug)."""
    values = problem.values()
    if problem.reversed:
        lines, value = [f"Undo the steps from {render_value(values[-1])}."], values[-1]
        for step in reversed(problem.steps):
            value = undo(value, step)
            lines.append(_WORDED_UNDO[step.op].format(a=step.amount, v=render_value(value), l=step.label))
    else:
        lines = [f"We begin with {render_value(problem.start)}."]
        lines += [_WORDED_STEP[step.op].format(a=step.amount, v=render_value(values[i + 1]), l=step.label)
                  for i, step in enumerate(problem.steps)]
        if problem.family == "budget":
            relation = "is at least" if values[-1] >= problem.price else "is less than"
            lines.append(f"{values[-1]} {relation} {problem.price}.")
    return " ".join([*lines, final_answer_sentence(problem.answer, problem.answer_type)])


def rationale(problem: Problem, variant: int = 0) -> str:
    """The exact step-by-step solution, ending with the sentence the checker reads first. Variants (the exact
    teacher's sampled rationales, for the Answer-Aug baseline): 1 in words, 2 with numbered steps."""
    if variant == 1:
        return worded_rationale(problem)
    if variant == 2:
        lines = rationale(problem).split(". ")
        return ". ".join([lines[0], *(f"Step {i}: {line}" for i, line in enumerate(lines[1:-1], 1)), lines[-1]])
    values = problem.values()
    if problem.reversed:
        lines = [f"Work back from {render_value(values[-1])}."]
        value = values[-1]
        for step in reversed(problem.steps):
            lines.append(undo_line(value, step))
            value = undo(value, step)
    else:
        lines = [f"Start: {render_value(problem.start)}."]
        lines += [step_line(values[i], step) for i, step in enumerate(problem.steps)]
        if problem.family == "budget":
            relation = ">=" if values[-1] >= problem.price else "<"
            lines.append(f"{values[-1]} {relation} {problem.price}.")
    return " ".join([*lines, final_answer_sentence(problem.answer, problem.answer_type)])
