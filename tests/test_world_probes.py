"""The world's exact EI probes: every answer re-derived here, independently of probes.py and program.py.

The test reads each probe's *text* with its own small interpreter of the world's sentences (plain integer,
datetime and boolean arithmetic), so a wrong answer, a wrong restatement or an inconsistent rationale in
probes.py makes a test fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest

from exgrpo.data.answers import check_answer, final_answer_sentence
from exgrpo.data.schema import OPTION_LETTERS, AnswerType, Example
from exgrpo.inversion.rules import all_rules, parse_probe_reply
from exgrpo.world.generate import generate_world, to_example
from exgrpo.world.probes import ProbeSpec, make_probe, probe_reply_json
from exgrpo.world.program import Problem

RULES = [f"R{i}" for i in range(1, 11)] + ["RP"]  # RP: the Rephrase-Question baseline's augmentation
WORLD = generate_world(seed=0, train_size=30, test_size=10, ood_size=10)


def _problems() -> list[tuple[Problem, Example]]:
    cases = [(p, to_example(p, split)) for split, problems in WORLD.items() for p in problems]
    # Reversed dates and logic never occur in the world, but R4 makes them; probes of them must be exact too.
    extra = [p.with_changes(id=p.id + "-rev", reversed=True) for p in WORLD["test"] if p.family in ("date", "logic")]
    return cases + [(p, to_example(p, "extra")) for p in extra]


CASES = _problems()


# ---------------------------------------------------------------- an independent reader of world problems

DATE = r"(\d\d/\d\d/\d{4})"
NUMBER_STEPS = [(r"^\w+ buys (\d+) more\.$", "add"), (r"^Then \w+ receives (\d+) extra \w+\.$", "add"),
                (r"^\w+ gives (\d+) to a friend\.$", "sub"), (r"^Later \w+ loses (\d+) \w+\.$", "sub"),
                (r"^\w+ doubles them\.$", "mul"), (r"^After that the \w+ of \w+ double\.$", "mul")]


@dataclass
class Parsed:
    kind: str
    reversed: bool
    known: object  # the start (forward) or the given final value (reversed)
    steps: list[tuple[str, int]] = field(default_factory=list)  # (op, amount)
    labels: list[str] = field(default_factory=list)
    name: str = ""
    price: int | None = None


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.?]) ", text)


def parse_date(text: str) -> date:
    return datetime.strptime(text, "%m/%d/%Y").date()


def render(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.strftime("%m/%d/%Y")
    return str(value)


def parse_problem(text: str) -> Parsed:
    """The world problem a text states; fails on any sentence it cannot read."""
    parts = sentences(text)
    opening, middle, ask = parts[0], parts[1:-1], parts[-1]
    assert ask.endswith("?") and all(not s.endswith("?") for s in middle), text
    if re.search(DATE, text) or opening.startswith(("Today", "The calendar")):
        parsed = _parse_date(opening, middle)
    elif "exactly when" in text or "always goes with" in text:
        parsed = _parse_logic(opening, middle, ask)
    else:
        parsed = _parse_numbers(opening, middle)
    price = re.search(r"costs (\d+) \w+\?$|priced at (\d+)\?$", ask)
    if price:
        parsed.price = int(price.group(1) or price.group(2))
    return parsed


def _parse_numbers(opening: str, middle: list[str]) -> Parsed:
    start = re.match(r"^(\w+) (?:has|owns) (\d+) \w+\.$", opening)
    unknown = re.match(r"^(\w+) (?:has some|owns a number of) \w+\.$", opening)
    assert start or unknown, opening
    parsed = Parsed("number", unknown is not None, int(start.group(2)) if start else None,
                    name=(start or unknown).group(1))
    if parsed.reversed:
        given = re.match(r"^(?:Now|In the end) (\w+) (?:has|owns) (\d+) \w+\.$", middle[-1])
        assert given and given.group(1) == parsed.name, middle[-1]
        parsed.known, middle = int(given.group(2)), middle[:-1]
    for sentence in middle:
        matches = [(m, op) for pattern, op in NUMBER_STEPS if (m := re.match(pattern, sentence))]
        assert len(matches) == 1, sentence
        match, op = matches[0]
        parsed.steps.append((op, 2 if op == "mul" else int(match.group(1))))
    return parsed


def _parse_date(opening: str, middle: list[str]) -> Parsed:
    start = re.match(rf"^(?:Today is {DATE}|The calendar shows {DATE} today)\.$", opening)
    assert start or opening in ("Today is a day of the year.", "The calendar shows some date today."), opening
    parsed = Parsed("date", start is None, parse_date(start.group(1) or start.group(2)) if start else None)
    if parsed.reversed:
        given = re.match(rf"^The ([\w ]+) (?:is on|falls on) {DATE}\.$", middle[-1])
        assert given, middle[-1]
        parsed.known, middle = parse_date(given.group(2)), middle[:-1]
    for sentence in middle:
        first = re.match(r"^The ([\w ]+) is (\d+) days (later|earlier)\.$", sentence)
        second = re.match(r"^(\d+) days (after|before) that comes the ([\w ]+)\.$", sentence)
        assert first or second, sentence
        if first:
            label, amount, op = first.group(1), int(first.group(2)), first.group(3)
        else:
            label, amount, op = second.group(3), int(second.group(1)), "later" if second.group(2) == "after" else "earlier"
        parsed.steps.append((op, amount))
        parsed.labels.append(label)
    if parsed.reversed:
        assert given.group(1) == parsed.labels[-1]
    return parsed


def _parse_logic(opening: str, middle: list[str], ask: str) -> Parsed:
    patterns = [(r"^(\w+) is a (\w+)\.$", True), (r"^(\w+) is not a (\w+)\.$", False),
                (r"^We know that (\w+) counts as a (\w+)\.$", True), (r"^We know that (\w+) is no (\w+)\.$", False)]
    starts = [(m, value) for pattern, value in patterns if (m := re.match(pattern, opening))]
    unknown = re.match(r"^(?:Nobody told us whether|It is unknown whether) (\w+) (?:is|counts as) a (\w+)\.$", opening)
    assert len(starts) == 1 or unknown, opening
    match = starts[0][0] if starts else unknown
    parsed = Parsed("bool", unknown is not None, starts[0][1] if starts else None, name=match.group(1))
    previous = "a " + match.group(2)
    if parsed.reversed:
        given = re.match(r"^(?:It turns out )?(\w+) is (not )?([\w ]+)\.$", middle[-1])
        assert given and given.group(1) == parsed.name, middle[-1]
        parsed.known, middle = given.group(2) is None, middle[:-1]
    for sentence in middle:
        step = (re.match(r"^A thing is (\w+) exactly when it is (not )?(.+)\.$", sentence)
                or re.match(r"^Being (\w+) always goes with (not )?being (.+)\.$", sentence))
        assert step and step.group(3) == previous, (sentence, previous)  # each rule builds on the one before
        parsed.steps.append(("flip" if step.group(2) else "same", 0))
        parsed.labels.append(step.group(1))
        previous = step.group(1)
    if parsed.reversed:
        assert given.group(3) == previous
    else:
        asked = re.match(r"^(?:Is|Would you call) (\w+) ([\w ]+)\?$", ask)
        assert asked and asked.group(1) == parsed.name and asked.group(2) == previous, ask
    return parsed


def forward(value: object, op: str, amount: int) -> object:
    if op in ("add", "later"):
        return value + (timedelta(days=amount) if op == "later" else amount)
    if op in ("sub", "earlier"):
        return value - (timedelta(days=amount) if op == "earlier" else amount)
    return value * amount if op == "mul" else (not value if op == "flip" else value)


def backward(value: object, op: str, amount: int) -> object:
    if op == "mul":
        assert value % 2 == 0, f"cannot halve {value} exactly"
        return value // 2
    inverse = {"add": "sub", "sub": "add", "later": "earlier", "earlier": "later"}.get(op, op)
    return forward(value, inverse, amount)


def values_of(parsed: Parsed) -> list[object]:
    """The value before any step, then after each step; counts are never negative."""
    start = parsed.known
    if parsed.reversed:
        for op, amount in reversed(parsed.steps):
            start = backward(start, op, amount)
    values = [start]
    for op, amount in parsed.steps:
        values.append(forward(values[-1], op, amount))
    if parsed.kind == "number":
        assert min(values) >= 0, values
    return values


def solve(text: str) -> str:
    """The answer to a world problem's text (options aside), from the text alone."""
    parsed = parse_problem(text)
    values = values_of(parsed)
    if parsed.price is not None:
        return "yes" if values[-1] >= parsed.price else "no"
    return render(values[0] if parsed.reversed else values[-1])


def assert_answers(spec: ProbeSpec, text: str) -> None:
    """The spec's answer is the solution of `text` (for options, the letter of that value)."""
    expected = solve(text)
    if spec.choices:
        assert spec.choices.count(expected) == 1, (spec.choices, expected)
        assert spec.answer == OPTION_LETTERS[spec.choices.index(expected)]
    else:
        assert spec.answer == expected, (text, spec.answer, expected)


# ---------------------------------------------------------------- the rules, checked one by one


def check_counterfactual(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert_answers(spec, spec.question)
    before, after = parse_problem(original.question), parse_problem(spec.question)
    assert (after.steps, after.labels, after.reversed, after.price) == (before.steps, before.labels,
                                                                       before.reversed, before.price)
    assert after.known != before.known  # exactly one premise changed: the start, or a reversed problem's final
    assert sentences(spec.question)[-1] == sentences(original.question)[-1]  # the same question
    assert (spec.choices is not None) == (problem.family == "choice")


def _intermediate(problem: Problem, original: Example, spec: ProbeSpec) -> int:
    """How many steps the sub-problem keeps; checks it is a prefix (forward) or suffix (reversed) of the problem."""
    assert_answers(spec, spec.question)
    whole, part = parse_problem(original.question), parse_problem(spec.question)
    count = len(part.steps)
    assert part.reversed == whole.reversed and part.price is None and count >= 1
    if whole.reversed:
        assert part.known == whole.known and part.steps == whole.steps[-count:] and count < len(whole.steps)
        assert spec.answer == render(values_of(whole)[len(whole.steps) - count])
    else:
        assert part.known == whole.known and part.steps == whole.steps[:count]
        assert count < len(whole.steps) or problem.family == "budget"
        assert spec.answer == render(values_of(whole)[count])
    return count


def check_explanatory_challenge(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    count = _intermediate(problem, original, spec)
    intermediates = len(problem.steps) - (0 if problem.family == "budget" and not problem.reversed else 1)
    if intermediates >= 2:
        assert count >= 2  # not the first sub-question, which R3 asks


def check_decomposition(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert _intermediate(problem, original, spec) == 1


def check_reverse_reasoning(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert_answers(spec, spec.question)
    before, after = parse_problem(original.question), parse_problem(spec.question)
    assert after.reversed != before.reversed and after.steps == before.steps and after.price is None
    assert spec.answer == render(before.known)  # what was given is now asked
    assert after.known == values_of(before)[0 if before.reversed else -1]  # and what was asked is given


OPTION_PATTERNS = [(r"^add (\d+)$", "add"), (r"^subtract (\d+)$", "sub"), (r"^multiply by (\d+)$", "mul"),
                   (r"^move forward (\d+) days?$", "later"), (r"^move back (\d+) days?$", "earlier")]
CONSTANT_OPTIONS = {"keep the value": ("same", 0), "flip the value": ("flip", 0), "make it yes": ("yes", 0),
                    "make it no": ("no", 0)}


def read_option(text: str) -> tuple[str, int]:
    if text in CONSTANT_OPTIONS:
        return CONSTANT_OPTIONS[text]
    matches = [(op, int(m.group(1))) for pattern, op in OPTION_PATTERNS if (m := re.match(pattern, text))]
    assert len(matches) == 1, text
    return matches[0]


def apply_option(value: object, op: str, amount: int) -> object:
    return op == "yes" if op in ("yes", "no") else forward(value, op, amount)


def check_principle(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert spec.choices and 3 <= len(spec.choices) <= 4
    turns = re.search(rf"turns (\d+|{DATE}|yes|no) into (\d+|{DATE}|yes|no)\?$", spec.question)
    read = {"number": int, "date": parse_date, "bool": lambda text: text == "yes"}[problem.kind]
    before, after = read(turns.group(1)), read(turns.group(3))
    options = [read_option(text) for text in spec.choices]
    fitting = [i for i, (op, amount) in enumerate(options) if apply_option(before, op, amount) == after]
    assert fitting == [OPTION_LETTERS.index(spec.answer)]  # exactly one option fits, and it is the answer
    whole = parse_problem(original.question)
    values = values_of(whole)
    steps_there = [whole.steps[i] for i in range(len(whole.steps)) if (values[i], values[i + 1]) == (before, after)]
    assert options[fitting[0]] in steps_there  # the operation is the problem's own step between those values


def check_analogy(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert_answers(spec, spec.question)
    before, after = parse_problem(original.question), parse_problem(spec.question)
    assert after.kind == before.kind and after.reversed == before.reversed
    assert [op for op, _ in after.steps] == [op for op, _ in before.steps]  # the same procedure
    assert (after.known, after.steps, after.labels) != (before.known, before.steps, before.labels)  # other values
    assert after.name != before.name or problem.kind == "date"  # about someone else
    assert (after.price is None) == (before.price is None)
    assert (spec.choices is not None) == (problem.family == "choice")


def check_rephrase(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert_answers(spec, spec.question)
    assert spec.answer == original.answer and spec.choices == original.choices  # the same problem...
    before, after = parse_problem(original.question), parse_problem(spec.question)
    assert (after.known, after.steps, after.reversed, after.price) == (before.known, before.steps, before.reversed,
                                                                        before.price)
    assert (after.name, after.labels) != (before.name, before.labels)  # ...told differently


def _restated(original: Example, spec: ProbeSpec) -> str:
    assert spec.question.startswith(original.question + " "), "the probe restates the question first"
    return spec.question[len(original.question) + 1:]


def check_contrast(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    candidate = re.fullmatch(r'Is "?(.+?)"? the correct answer to this question\?', _restated(original, spec))
    right = solve(original.question)
    assert spec.answer == ("yes" if candidate.group(1) == right else "no")
    if problem.family == "choice":
        assert candidate.group(1) in original.choices


def check_premise_relevance(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    assert _restated(original, spec) == "Which of these facts is not needed to answer the question?"
    facts = sentences(original.question)[:-1]
    for letter, option in zip(OPTION_LETTERS, spec.choices, strict=False):
        if letter == spec.answer:
            assert option not in original.question
        else:
            assert option in facts and not option.startswith(("Nobody", "It is unknown"))
            assert not re.search(r"has some|owns a number of|a day of the year|some date", option)
    assert 3 <= len(spec.choices) <= 4


def _line_value(text: str, kind: str) -> object:
    return {"number": int, "date": parse_date, "bool": lambda t: t == "yes"}[kind](text)


def check_error_detection(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    head, *lines, ask = spec.question.split("\n")
    assert head == original.question and lines[0] == "A solution, step by step:" and ask.endswith("?")
    whole = parse_problem(original.question)
    steps = list(reversed(whole.steps)) if whole.reversed else whole.steps
    numbered = [re.fullmatch(r"Step (\d+): (.+)", line) for line in lines[1:]]
    assert [int(m.group(1)) for m in numbered] == list(range(1, len(numbered) + 1))
    texts = [m.group(2) for m in numbered]
    opener = re.fullmatch(r"(?:Start:|Work back from) (.+)\.", texts[0])
    shown = [_line_value(opener.group(1), whole.kind)]
    wrong = [1] if shown[0] != whole.known else []
    for number, (text, (op, amount)) in enumerate(zip(texts[1:], steps, strict=False), start=2):
        if whole.kind == "bool":
            value = re.fullmatch(r"(?:before )?\w+: (yes|no)\.", text).group(1) == "yes"
            previous = shown[-1]
        else:
            line = re.fullmatch(rf"(\d+|{DATE}) ([-+*/]) (\d+)(?: days)? = (\d+|{DATE})\.", text)
            previous, value = _line_value(line.group(1), whole.kind), _line_value(line.group(5), whole.kind)
            assert previous == shown[-1] and int(line.group(4)) == amount  # each line goes on from the one before
        right = backward(previous, op, amount) if whole.reversed else forward(previous, op, amount)
        if value != right:
            wrong.append(number)
        shown.append(value)
    if whole.price is not None:  # the budget's comparison, from the last value shown
        relation = ">=" if shown[-1] >= whole.price else "<"
        assert texts[-1] == f"{shown[-1]} {relation} {whole.price}."
        assert len(texts) == len(steps) + 2
    else:
        assert len(texts) == len(steps) + 1
    assert wrong == [int(spec.answer)]  # exactly one wrong line, and the answer names it


def check_causal(problem: Problem, original: Example, spec: ProbeSpec) -> None:
    tail = _restated(original, spec)
    removed = re.fullmatch(r'Suppose "(.+?)"(?: \(the (\w+) time it is said\))? had not happened\. '
                           r'Would the answer then be "?(.+?)"?\?', tail)
    replaced = re.fullmatch(r'Suppose the problem said "(.+?)" instead of "(.+?)"(?: \(the (\w+) time it is said\))?\. '
                            r'Would the answer then be "?(.+?)"?\?', tail)
    assert removed or replaced, tail
    parts = sentences(original.question)
    if removed:
        sentence, ordinal, candidate, new = removed.group(1), removed.group(2), removed.group(3), None
        assert problem.kind == "number"
    else:
        new, sentence, ordinal, candidate = replaced.groups()
        assert problem.kind != "number" and new != sentence
    said = [i for i, part in enumerate(parts) if part == sentence]
    assert len(said) == 1 or ordinal, "a repeated sentence must say which time it means"
    index = said[["first", "second", "third", "fourth", "fifth"].index(ordinal) if ordinal else 0]
    changed = parts[:index] + ([new] if new else []) + parts[index + 1:]
    # solve() fails where the changed problem is invalid: a negative count, an odd count halved (reversed)
    assert spec.answer == ("yes" if solve(" ".join(changed)) == candidate else "no")


CHECKS = {"R1": check_counterfactual, "R2": check_explanatory_challenge, "R3": check_decomposition,
          "R4": check_reverse_reasoning, "R5": check_principle, "R6": check_analogy, "R7": check_contrast,
          "R8": check_premise_relevance, "R9": check_error_detection, "R10": check_causal,
          "RP": check_rephrase}


def probes(rule: str) -> list[tuple[Problem, Example, ProbeSpec | None]]:
    return [(problem, original, make_probe(problem, rule)) for problem, original in CASES]


def may_be_missing(problem: Problem, rule: str) -> bool:
    """Where the module says a rule cannot apply: R2/R3 without an intermediate value."""
    no_intermediate = len(problem.steps) == 1 and problem.family != "budget"
    return rule in ("R2", "R3") and (no_intermediate or (problem.reversed and problem.kind == "bool"))


# ---------------------------------------------------------------- the tests


def test_the_reader_solves_the_world_problems_themselves() -> None:
    for _, original in CASES:
        letter = original.answer
        expected = original.choices[OPTION_LETTERS.index(letter)] if original.choices else letter
        assert solve(original.question) == expected, original.question


@pytest.mark.parametrize("rule", RULES)
def test_probe_answers_are_exact(rule: str) -> None:
    made = 0
    for problem, original, spec in probes(rule):
        if spec is None:
            assert may_be_missing(problem, rule), (rule, problem.id)
            continue
        CHECKS[rule](problem, original, spec)
        made += 1
    assert made >= len(CASES) // 2


@pytest.mark.parametrize("rule", RULES)
def test_probe_types_and_the_teacher_reply(rule: str) -> None:
    allowed = all_rules()[rule].allowed_answer_types()
    for _, original, spec in probes(rule):
        if spec is None:
            continue
        assert spec.answer_type in allowed and spec.answer_type is not AnswerType.math
        assert (spec.answer_type is AnswerType.letter) == (spec.choices is not None)
        parsed = parse_probe_reply(probe_reply_json(spec), all_rules()[rule], original)
        assert isinstance(parsed, Example), parsed
        assert (parsed.answer, parsed.answer_type, parsed.choices) == (spec.answer, spec.answer_type, spec.choices)
        assert set(json.loads(probe_reply_json(spec))) == {"probe", "answer_type", "choices", "answer"}


@pytest.mark.parametrize("rule", RULES)
def test_rationales_check_and_probes_stand_alone(rule: str) -> None:
    for problem, original, spec in probes(rule):
        if spec is None:
            continue
        assert spec.rationale.endswith(final_answer_sentence(spec.answer, spec.answer_type))
        assert check_answer(spec.rationale, spec.answer, spec.answer_type, spec.choices).correct
        assert any(c.isdigit() for c in spec.rationale) or problem.kind == "bool"  # it shows the computation
        assert spec.question != original.question
        if problem.kind != "date" and rule not in ("R6", "R5", "RP"):
            assert problem.style.name in spec.question
        if problem.kind == "date" and rule not in ("R6", "RP"):
            assert any(step.label in spec.question for step in problem.steps)


def test_answers_of_yes_no_rules_are_balanced() -> None:
    for rule in ("R7", "R10"):
        answers = [spec.answer for _, _, spec in probes(rule) if spec is not None]
        assert 0.3 < answers.count("yes") / len(answers) < 0.7, rule


def test_probes_are_deterministic_and_analogies_differ() -> None:
    for problem, _ in CASES[::7]:
        for rule in RULES:
            assert make_probe(problem, rule) == make_probe(problem, rule)
    analogies = [make_probe(problem, "R6").question for problem, _ in CASES]
    assert len(set(analogies)) == len(analogies)


def test_a_wrong_answer_would_be_caught() -> None:
    problem, original = next(case for case in CASES if case[0].family == "arith" and len(case[0].steps) >= 2)
    spec = make_probe(problem, "R1")
    wrong = ProbeSpec(spec.question, spec.answer_type, str(int(spec.answer) + 1), spec.rationale)
    with pytest.raises(AssertionError):
        check_counterfactual(problem, original, wrong)


def test_unknown_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule 'R11'"):
        make_probe(CASES[0][0], "R11")
