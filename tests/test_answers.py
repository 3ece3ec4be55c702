"""The answer checker (exgrpo.data.answers): realistic outputs, the 12 benchmarks' gold answers, edge cases."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache

import pytest
import sympy
from benchmark_files import require_dataset_files

from exgrpo.data.answers import (
    Verdict,
    answer_spans,
    check_answer,
    check_example,
    check_math,
    extract_answer,
    final_answer_sentence,
    find_numbers,
    format_number,
    is_valid_gold,
    last_boxed,
    parse_math,
    parse_number,
)
from exgrpo.data.registry import builtin_entries, load_examples
from exgrpo.data.schema import NLI_LABELS, OPTION_LETTERS, AnswerType, Example

CSQA = ("bank", "library", "department store", "mall", "new york")  # CommonsenseQA-style options
LINEAR = ("linear", "nonlinear")  # TabMWP options where one is a substring of the other
DATES = ("03/11/2021", "02/23/2021", "05/01/2021", "05/09/2021", "06/12/2021", "04/29/2021")


def case(output: str, answer_type: str, gold: str, correct: bool, extracted: str | None,
         choices: tuple[str, ...] | None = None, id: str | None = None):
    return pytest.param(output, AnswerType(answer_type), choices, gold, correct, extracted, id=id)


# ---------------------------------------------------------------- 1. realistic model outputs, per answer type

NUMBER_CASES = [
    case("#### 1,234", "number", "1234", True, "1234", id="hashes-thousands"),
    case("Natalia sold 48 + 24 = 72 clips.\n#### 72", "number", "72", True, "72", id="gsm8k-solution"),
    case("\\boxed{\\frac{1}{2}}", "number", "0.5", True, "0.5", id="boxed-frac"),
    case("So she pays $\\boxed{\\dfrac{3}{4}}$ of it.", "number", "3/4", True, "0.75", id="boxed-dfrac"),
    case("The answer is $1,234.50.", "number", "1234.5", True, "1234.5", id="dollars-cents"),
    case("The answer is 50%.", "number", "50", True, "50", id="percent"),
    case("The answer is 3/4.", "number", "0.75", True, "0.75", id="slash-fraction"),
    case("The answer is -7.", "number", "-7", True, "-7", id="negative"),
    case("The answer is .5 liters", "number", "0.5", True, "0.5", id="leading-dot"),
    case("The answer is 12 (apples).", "number", "12", True, "12", id="unit-in-parens"),
    case("The final answer is: 1,234,567", "number", "1234567", True, "1234567", id="final-answer-colon"),
    case("Answer: 12345.67", "number", "12345.67", True, "12345.67", id="long-decimal-kept-exact"),
    # inside an explicit span the first number counts
    case("The answer is 18 dollars, since 9 * 2 = 18", "number", "18", True, "18", id="span-first-number"),
    case("The answer is 18, because 9 * 3 = 27 would be too many.", "number", "18", True, "18",
         id="span-first-not-last"),
    # precedence: \boxed beats ####, which beats "the answer is"; the last "answer is" counts
    case("The answer is 12.\nChecking again: \\boxed{13}", "number", "13", True, "13", id="boxed-beats-answer-is"),
    case("The answer is 40.\n#### 42", "number", "42", True, "42", id="hashes-beat-answer-is"),
    case("At first the answer is 5, but on checking, the answer is 6.", "number", "6", True, "6",
         id="last-answer-is"),
    # whole-output fallback: the last mention counts
    case("She has 3 apples and buys 5 more, so she has 8 apples.", "number", "8", True, "8", id="fallback-last"),
    case("9 * 2 = 18. Then 18 + 4 = 22.", "number", "22", True, "22", id="fallback-last-equation"),
    case("She has 3 apples and buys 5 more, so she has 8 apples.", "number", "3", False, "8",
         id="fallback-not-first"),
    case("The answer is 18.", "number", "19", False, "18", id="wrong-number"),
]

LETTER_CASES = [
    case("The answer is (B).", "letter", "B", True, "B", CSQA, id="parens"),
    case("So the answer is (c) wooded area.", "letter", "C", True, "C", CSQA, id="lowercase-parens-palm"),
    case("Step (a) is fine.\nStep (b) too.", "letter", "A", False, None, CSQA, id="lowercase-list-items-not-an-answer"),
    case("Answer: C", "letter", "C", True, "C", CSQA, id="answer-colon"),
    case("The answer is option D.", "letter", "D", True, "D", CSQA, id="option-word"),
    case("Answer: option D", "letter", "D", True, "D", CSQA, id="answer-colon-option"),
    case("The answer is library.", "letter", "B", True, "B", CSQA, id="option-text"),
    case("The answer is the library.", "letter", "B", True, "B", CSQA, id="option-text-article"),
    case("The answer is b", "letter", "B", True, "B", CSQA, id="lowercase"),
    case("Final answer: (E)", "letter", "E", True, "E", CSQA, id="last-option"),
    case("\\boxed{C}", "letter", "C", True, "C", CSQA, id="boxed"),
    case("The answer is \\boxed{\\text{C}}.", "letter", "C", True, "C", CSQA, id="boxed-text"),
    case("The answer is B, because books are kept there.", "letter", "B", True, "B", CSQA, id="letter-comma"),
    case("The answer is (A) and not (B).", "letter", "A", True, "A", CSQA, id="span-first"),
    case("(A) is for money and (B) is for books, so (B).", "letter", "B", True, "B", CSQA, id="fallback-last"),
    case("The answer is (A).", "letter", "B", False, "A", CSQA, id="wrong-letter"),
    case("The answer is nonlinear, since the rate of change varies.", "letter", "B", True, "B", LINEAR,
         id="option-text-whole-words"),
    case("The answer is linear.", "letter", "A", True, "A", LINEAR, id="option-text-exact"),
    case("The answer is (B).", "letter", "B", True, "B", None, id="no-choices"),
]

YES_NO_CASES = [
    case("So the answer is yes.", "yes_no", "yes", True, "yes", id="yes"),
    case("The answer is no.", "yes_no", "no", True, "no", id="no"),
    case("The answer is True.", "yes_no", "yes", True, "yes", id="true"),
    case("The answer is False.", "yes_no", "no", True, "no", id="false"),
    case("False.", "yes_no", "no", True, "no", id="bare-false"),
    case("True", "yes_no", "no", False, "yes", id="bare-true-wrong"),
    case("\\boxed{\\text{Yes}}", "yes_no", "yes", True, "yes", id="boxed"),
    case("The answer is no, even though yes might seem right at first.", "yes_no", "no", True, "no",
         id="span-first"),
    case("Birds can fly, yes. But can penguins fly? No.", "yes_no", "no", True, "no", id="fallback-last"),
    case("Yes, penguins are birds, as far as I know.", "yes_no", "yes", True, "yes", id="know-is-not-no"),
    case("So the answer is yes.", "yes_no", "no", False, "yes", id="wrong"),
]

NLI_CASES = [
    case("The premise entails the hypothesis.", "nli", "entailment", True, "entailment", id="entails"),
    case("The hypothesis contradicts the premise.", "nli", "contradiction", True, "contradiction",
         id="contradicts"),
    case("It is neither: the premise says nothing about the weather.", "nli", "neutral", True, "neutral",
         id="neither"),
    case("The answer is entailment.", "nli", "entailment", True, "entailment", id="label-entailment"),
    case("The answer is Neutral.", "nli", "neutral", True, "neutral", id="label-neutral"),
    case("The answer is contradiction.", "nli", "contradiction", True, "contradiction", id="label-contradiction"),
    case("The answer is undetermined.", "nli", "neutral", True, "neutral", id="undetermined"),
    case("It may seem to contradict it, but the premise entails the hypothesis.", "nli", "entailment", True,
         "entailment", id="fallback-last"),
    case("The answer is contradiction.", "nli", "entailment", False, "contradiction", id="wrong"),
]

DATE_CASES = [
    case("The answer is May 1, 2021.", "date", "05/01/2021", True, "05/01/2021", DATES, id="month-name"),
    case("The answer is 2021-05-01.", "date", "05/01/2021", True, "05/01/2021", DATES, id="iso"),
    case("The answer is 05/01/2021.", "date", "05/01/2021", True, "05/01/2021", DATES, id="mm-dd-yyyy"),
    case("The answer is 5/1/2021", "date", "05/01/2021", True, "05/01/2021", DATES, id="m-d-yyyy"),
    case("The answer is 1st May 2021.", "date", "05/01/2021", True, "05/01/2021", DATES, id="day-month"),
    case("The answer is Dec. 31, 2020", "date", "12/31/2020", True, "12/31/2020", None, id="abbreviated-month"),
    case("The answer is (C).", "date", "05/01/2021", True, "05/01/2021", DATES, id="letter-picks-option"),
    case("The answer is C", "date", "05/01/2021", True, "05/01/2021", DATES, id="bare-letter-picks-option"),
    case("The answer is (B).", "date", "05/01/2021", False, "02/23/2021", DATES, id="letter-wrong-option"),
    case("Yesterday was 04/30/2021, so today is 05/01/2021.", "date", "05/01/2021", True, "05/01/2021", DATES,
         id="fallback-last"),
    case("Today is 05/01/2021, so tomorrow is 05/02/2021.", "date", "05/01/2021", False, "05/02/2021", DATES,
         id="fallback-not-first"),
]

MATH_CASES = [
    case("\\boxed{\\frac{1}{2}}", "math", "\\frac{1}{2}", True, "\\frac{1}{2}", id="boxed-frac"),
    case("\\boxed{\\frac{1}{2}}", "math", "0.5", True, "\\frac{1}{2}", id="frac-equals-decimal"),
    case("The answer is $\\boxed{\\dfrac{1}{2}}$.", "math", "\\frac12", True, "\\frac{1}{2}", id="dfrac"),
    case("so $x = \\boxed{3}$.", "math", "3", True, "3", id="inline"),
    case("\\boxed{2\\sqrt{2}}", "math", "\\sqrt{8}", True, "2\\sqrt{2}", id="equivalent-radical"),
    case("\\boxed{\\frac{\\sqrt{3}}{2}}", "math", "\\frac{\\sqrt3}{2}", True, "\\frac{\\sqrt{3}}{2}",
         id="nested-braces"),
    case("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "math", "\\left( 3, \\frac{\\pi}{2} \\right)", True,
         "( 3, \\frac{\\pi}{2} )", id="tuple"),
    case("\\boxed{(-2,1)}", "math", "(-2,1)", True, "(-2,1)", id="interval"),
    case("\\boxed{\\text{Evelyn}}", "math", "\\text{Evelyn}", True, "\\text{Evelyn}", id="text"),
    case("\\boxed{Evelyn}", "math", "\\text{Evelyn}", True, "Evelyn", id="text-without-text-macro"),
    case("First \\boxed{2}; correcting that, \\boxed{3}", "math", "3", True, "3", id="last-box"),
    case("The answer is $\\frac{3}{4}$.", "math", "\\frac34", True, "\\frac{3}{4}", id="no-box"),
    case("\\boxed{\\frac{1}{3}}", "math", "\\frac{1}{2}", False, "\\frac{1}{3}", id="wrong"),
    case("\\boxed{\\text{Navin}}", "math", "\\text{Evelyn}", False, "\\text{Navin}", id="wrong-text"),
    case("\\boxed{-5}", "math", "5", False, "-5", id="sign-matters"),
    case("\\boxed{x-1}", "math", "x+1", False, "x-1", id="operator-matters"),
    case("\\boxed{(-2,1]}", "math", "(-2,1)", False, "(-2,1]", id="bracket-matters"),
    case("\\boxed{1.5}", "math", "15", False, "1.5", id="decimal-point-matters"),
]

TEXT_CASES = [
    case("The answer is Paris.", "text", "Paris", True, "paris", id="word"),
    case("The answer is the Eiffel Tower.", "text", "Eiffel Tower", True, "eiffel tower", id="article-dropped"),
    case("The answer is Lyon.", "text", "Paris", False, "lyon", id="wrong"),
    case("Paris.", "text", "Paris", False, None, id="needs-explicit-span"),
]


@pytest.mark.parametrize(("output", "answer_type", "choices", "gold", "correct", "extracted"),
                         NUMBER_CASES + LETTER_CASES + YES_NO_CASES + NLI_CASES + DATE_CASES + MATH_CASES
                         + TEXT_CASES)
def test_realistic_outputs(output, answer_type, choices, gold, correct, extracted):
    assert check_answer(output, gold, answer_type, choices) == Verdict(correct, extracted)
    assert extract_answer(output, answer_type, choices) == extracted


UNPARSABLE = ["I don't know", "", "   ", "asdf qwerty !!", "???", "\\boxed{", "}}}{{{", "The answer is",
              "The answer is ???", "\\boxed{}", "#### ", "\\frac{", "$$", "x" * 5000]
GOLDS = {AnswerType.number: ("1", None), AnswerType.letter: ("A", CSQA), AnswerType.yes_no: ("yes", None),
         AnswerType.nli: ("neutral", None), AnswerType.date: ("05/01/2021", DATES),
         AnswerType.math: ("1", None), AnswerType.text: ("Paris", None)}


def test_golds_table_covers_every_answer_type():
    assert set(GOLDS) == set(AnswerType)


@pytest.mark.parametrize("answer_type", list(AnswerType))
@pytest.mark.parametrize("output", UNPARSABLE, ids=lambda output: repr(output[:20]))
def test_unparsable_outputs_are_wrong_and_unparsed(output, answer_type):
    gold, choices = GOLDS[answer_type]
    verdict = check_answer(output, gold, answer_type, choices)
    assert verdict == Verdict(False, None)
    assert not verdict.parsed
    assert extract_answer(output, answer_type, choices) is None


def test_option_text_with_articles_only_does_not_match_an_empty_span():
    # "a" normalises to "" (articles are dropped), as does an answer span of "???": no option is named
    choices = ("a", "some", "any")
    assert check_answer("The answer is ???", "A", AnswerType.letter, choices) == Verdict(False, None)


def test_math_checker_works_off_the_main_thread():
    # math-verify's timeouts use SIGALRM, which only the main thread may set; rewards run in worker threads
    results = []
    worker = threading.Thread(target=lambda: results.append(check_math("\\boxed{\\frac{1}{2}}", "0.5")))
    worker.start()
    worker.join()
    assert results == [Verdict(True, "\\frac{1}{2}")]


def test_check_example_uses_the_example_type_and_choices():
    example = Example(id="x", question="Where are books kept?", answer="B", answer_type=AnswerType.letter,
                      source="test", choices=CSQA)
    assert check_example("The answer is library.", example) == Verdict(True, "B")
    assert check_example("The answer is mall.", example) == Verdict(False, "D")


# ---------------------------------------------------------------- 2. every registered benchmark's gold answers


@cache
def _examples(name: str) -> list[Example]:
    return load_examples(name)


def _letters(example: Example) -> str:
    return OPTION_LETTERS[: len(example.choices)] if example.choices else OPTION_LETTERS[:10]


def _number(text: str) -> Fraction:
    return Fraction(text.rstrip("%"))


def _plus_one(gold: str) -> str:
    """gold + 1 written the way the gold is: '3/10' -> '13/10', '12.50' -> '13.50', '18' -> '19'."""
    if "/" in gold:
        value = _number(gold) + 1
        return f"{value.numerator}/{value.denominator}"
    return str(Decimal(gold.rstrip("%")) + 1)


def _bump_last_digit(latex: str) -> str:
    digits = list(re.finditer(r"\d", latex))
    assert digits, f"no digit to perturb in {latex!r}"
    last = digits[-1]
    return latex[: last.start()] + str((int(last.group()) + 1) % 10) + latex[last.end() :]


def _is_text(latex: str) -> bool:
    return re.fullmatch(r"\\text\{[^{}]*\}", latex) is not None


def _math_perturbations(example: Example, all_golds: list[str]) -> list[str]:
    """Wrong LaTeX answers close to the gold.

    A plain expression gets (gold)+1 and, unless it is 0, -(gold). Tuples, intervals, sets, matrices and
    equations (where "+1" makes no sense, and math-verify reads "(x=5)+1" as 5) and expressions with thousands
    separators or units get their last digit changed: (-2,1) -> (-2,2), x=5 -> x=6, 58,500 -> 58,501.
    A \\text{} answer gets the next different \\text{} gold of the benchmark (Evelyn -> Navin).
    """
    gold = example.answer
    if _is_text(gold):
        texts = sorted({answer for answer in all_golds if _is_text(answer)})
        return [texts[(texts.index(gold) + 1) % len(texts)]]
    parsed = parse_math(gold, is_latex=True)[0]
    if isinstance(parsed, sympy.Expr) and "," not in gold and "\\text" not in gold:
        return [f"({gold})+1"] + ([f"-({gold})"] if parsed.is_zero is not True else [])
    return [_bump_last_digit(gold)]


def _read_by_math_verify(latex: str) -> bool:
    """Parsed into a SymPy object, not only kept as a string (which would compare by text)."""
    parsed = parse_math(latex, is_latex=True)
    return bool(parsed) and isinstance(parsed[0], (sympy.Basic, sympy.MatrixBase))


def _perturbations(example: Example, all_golds: list[str]) -> list[tuple[str, str | None]]:
    """(wrong answer, what the checker must extract from its sentence; None: only that it parses)."""
    gold, answer_type = example.answer, example.answer_type
    if answer_type is AnswerType.number:
        wrong = _plus_one(gold)
        return [(wrong, format_number(_number(wrong)))]
    if answer_type is AnswerType.letter:
        letters = _letters(example)
        wrong = letters[(letters.index(gold) + 1) % len(letters)]
        return [(wrong, wrong)]
    if answer_type is AnswerType.yes_no:
        wrong = {"yes": "no", "no": "yes"}[gold]
        return [(wrong, wrong)]
    if answer_type is AnswerType.nli:
        wrong = NLI_LABELS[(NLI_LABELS.index(gold) + 1) % len(NLI_LABELS)]
        return [(wrong, wrong)]
    if answer_type is AnswerType.date:
        wrong = (datetime.strptime(gold, "%m/%d/%Y") + timedelta(days=1)).strftime("%m/%d/%Y")
        return [(wrong, wrong)]
    if answer_type is AnswerType.math:
        return [(wrong, None) for wrong in _math_perturbations(example, all_golds)]
    raise AssertionError(f"no perturbation for answer type {answer_type}")


DATASETS = sorted(builtin_entries())


def test_twelve_paper_benchmarks_are_registered():
    assert len([name for name, entry in builtin_entries().items() if entry.group != "other"]) == 12


@pytest.mark.parametrize("name", DATASETS)
def test_gold_answer_sentence_is_scored_correct(name):
    require_dataset_files(name)
    examples = _examples(name)
    assert examples
    failures = []
    for example in examples:
        verdict = check_example(final_answer_sentence(example.answer, example.answer_type), example)
        exact = True
        if example.answer_type is AnswerType.number:  # the extracted number is the gold exactly, not ~gold
            exact = verdict.parsed and parse_number(verdict.extracted) == _number(example.answer)
        elif example.answer_type is not AnswerType.math:
            exact = verdict.extracted == example.answer
        if not (verdict.correct and exact):
            failures.append((example.id, example.answer, verdict))
    assert failures == [], f"{len(failures)}/{len(examples)} gold answers not scored correct: {failures[:5]}"


@pytest.mark.parametrize("name", DATASETS)
def test_perturbed_answer_sentence_is_scored_wrong(name):
    require_dataset_files(name)
    examples = _examples(name)
    assert examples
    all_golds = [example.answer for example in examples]
    failures = []
    checked = 0
    for example in examples:
        for wrong, expected in _perturbations(example, all_golds):
            checked += 1
            verdict = check_example(final_answer_sentence(wrong, example.answer_type), example)
            # wrong *and parsed*: an answer that is merely unreadable would make this test vacuous
            if verdict.correct or not verdict.parsed or (expected is not None and verdict.extracted != expected):
                failures.append((example.id, example.answer, wrong, verdict))
            if example.answer_type is AnswerType.math and not _read_by_math_verify(wrong):
                failures.append((example.id, example.answer, wrong, "math-verify cannot read the perturbation"))
    assert checked >= len(examples)
    assert failures == [], f"{len(failures)}/{checked} perturbed answers not scored wrong: {failures[:5]}"


# ---------------------------------------------------------------- 3. edge cases


@pytest.mark.parametrize(("predicted", "gold", "correct"), [
    ("0.333333", "1/3", True),  # a rounded repeating decimal
    ("33.33", "100/3", True),
    ("333.33", "1000/3", True),
    ("1234.57", "1234.5678", True),  # rounded to cents
    ("0.5", "0.6", False),
    ("0.3", "1/3", False),
    ("224001", "224000", False),  # the relative tolerance must not grow to whole units
    ("1234568.5", "1234567.5", False),
    ("20000.5", "20000", False),
    ("1234.58", "1234.5678", False),
])
def test_number_tolerance(predicted, gold, correct):
    assert check_answer(f"The answer is {predicted}.", gold, AnswerType.number).correct is correct


@pytest.mark.parametrize(("value", "text"), [
    (Fraction(5), "5"), (Fraction(-5, 2), "-2.5"), (Fraction(3, 4), "0.75"), (Fraction(1, 3), "1/3"),
    (Fraction(1234567, 100), "12345.67"), (Fraction(2469135, 2), "1234567.5"), (Fraction(1, 10**6), "0.000001"),
])
def test_format_number_is_exact(value, text):
    assert format_number(value) == text
    assert parse_number(text) == value


@pytest.mark.parametrize(("text", "numbers"), [
    ("1,234", [1234]),
    ("1,234,567.5", [Fraction(2469135, 2)]),
    ("1, 2, 3", [1, 2, 3]),  # a list, not one thousands-separated number
    ("1,2,3", [1, 2, 3]),
    ("12,34", [12, 34]),  # not a thousands separator: groups of three only
    ("\u22127 and \u22123.5", [-7, Fraction(-7, 2)]),  # unicode minus
    ("x2 and v1.5", []),  # digits inside words are not numbers
])
def test_find_numbers(text, numbers):
    assert find_numbers(text) == numbers


@pytest.mark.parametrize(("output", "gold", "extracted"), [
    ("The answer is 1,234.", "1234", "1234"),
    ("The answer is 1, 2, 3.", "1", "1"),  # the first of a list, not 123
    ("The answer is \u22127.", "-7", "-7"),
    ("The answer is \u22121,234.5", "-1234.5", "-1234.5"),
])
def test_separators_and_unicode_minus(output, gold, extracted):
    assert check_answer(output, gold, AnswerType.number) == Verdict(True, extracted)


@pytest.mark.parametrize(("output", "choices", "extracted"), [
    ("The answer is (F).", CSQA, None),  # only five options
    ("The answer is F", CSQA, None),
    ("Answer: option F", CSQA, None),
    ("The answer is E.", CSQA[:4], None),  # only four options
    ("The answer is (D).", CSQA[:4], "D"),  # the last valid one is fine
    ("The answer is (K).", None, None),  # without options, A-J
])
def test_letters_beyond_the_options_are_rejected(output, choices, extracted):
    assert extract_answer(output, AnswerType.letter, choices) == extracted
    verdict = check_answer(output, "D", AnswerType.letter, choices)
    assert verdict == Verdict(extracted == "D", extracted)


@pytest.mark.parametrize(("output", "extracted"), [
    ("A cat is an animal.", None),
    ("The answer is A cat.", None),
    ("A library has books, so the answer is (B).", "B"),
    ("The answer is A.", "A"),
    ("The answer is A", "A"),
    ("The answer is (A) bank.", "A"),
])
def test_article_a_is_not_option_a(output, extracted):
    assert extract_answer(output, AnswerType.letter, CSQA) == extracted


@pytest.mark.parametrize(("output", "extracted"), [
    ("The answer is 04/31/2021.", None),  # no such day
    ("The answer is 13/01/2021.", None),  # no such month
    ("The answer is Feb 29, 2020.", "02/29/2020"),  # a leap day
    ("The answer is Feb 29, 2021.", None),
])
def test_impossible_dates_are_not_dates(output, extracted):
    assert extract_answer(output, AnswerType.date) == extracted


def test_answer_spans_most_explicit_first():
    output = "The answer is 5.\n#### 6\nso \\boxed{7}"
    assert answer_spans(output) == ["7", "6", "5.", output]
    assert answer_spans("no marker here") == ["no marker here"]


@pytest.mark.parametrize(("text", "content"), [
    ("\\boxed{\\frac{a}{b}}", "\\frac{a}{b}"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\fbox{3}", "3"),
    ("\\boxed{unbalanced", None),
    ("no box", None),
])
def test_last_boxed(text, content):
    assert last_boxed(text) == content


@pytest.mark.parametrize(("answer", "answer_type", "choices", "valid"), [
    ("1,234", AnswerType.number, None, True),
    ("3/4", AnswerType.number, None, True),
    ("many", AnswerType.number, None, False),
    ("B", AnswerType.letter, CSQA, True),
    ("F", AnswerType.letter, CSQA, False),
    ("yes", AnswerType.yes_no, None, True),
    ("True", AnswerType.yes_no, None, False),
    ("neutral", AnswerType.nli, None, True),
    ("neither", AnswerType.nli, None, False),
    ("05/01/2021", AnswerType.date, None, True),
    ("2021-05-01", AnswerType.date, None, False),  # gold dates are stored as MM/DD/YYYY
    ("\\frac{1}{2}", AnswerType.math, None, True),
    ("  ", AnswerType.text, None, False),
])
def test_is_valid_gold(answer, answer_type, choices, valid):
    assert is_valid_gold(answer, answer_type, choices) is valid
