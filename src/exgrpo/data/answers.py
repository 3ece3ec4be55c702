"""Answer extraction and checking: the one checker used by evaluation, rewards and filters.

A model's output is read in two steps. First the *answer span* is located, most explicit first:
the last ``\\boxed{...}``, the text after the last ``####``, the text after the last "the answer is" /
"answer:"; failing those, the whole output. Then the span is parsed for the expected answer type
(number, option letter, yes/no, NLI label, date, LaTeX via math-verify, free text). Inside an explicit
span the first match counts ("The answer is 18, because 9 * 2 = 18"); in the whole-output fallback the
last one does. An output with nothing parsable gives ``Verdict(correct=False, extracted=None)``:
counted as "unparsed", never an exception.
"""

from __future__ import annotations

import re
import string
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from exgrpo.data.schema import NLI_LABELS, OPTION_LETTERS, AnswerType, Example


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None  # the normalised answer read from the output; None when nothing parsed

    @property
    def parsed(self) -> bool:
        return self.extracted is not None


# ---------------------------------------------------------------- locating the answer span

# A lookahead, so that matches overlap: "the answer is 5, no, the answer is 6" has its last marker before 6.
_ANSWER_IS = re.compile(
    r"(?=(?:final answer|the answer|answer)\s*(?:is|:|=|would be|will be)\s*:?\s*(.+))", re.IGNORECASE
)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for position in range(brace, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : position]
    return None


def answer_spans(text: str) -> list[str]:
    """Candidate answer spans, most explicit first; the whole output is always last."""
    spans = []
    boxed = last_boxed(text)
    if boxed is not None:
        spans.append(boxed)
    if "####" in text:
        spans.append(text.rsplit("####", 1)[1].strip().split("\n")[0])
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        spans.append(matches[-1].group(1).split("\n")[0])
    spans.append(text)
    return spans


# ---------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"(?<![\w.])-?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?%?|(?<![\w.])-?\.\d+%?"
)
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\{\s*(-?[\d.,]+)\s*\}\{\s*(-?[\d.,]+)\s*\}")


def parse_number(text: str) -> Fraction | None:
    """Parse a single number: '1,234', '-3.5', '3/4', '50%', '$12' -> exact Fraction (percent sign dropped)."""
    text = text.strip().replace("\u2212", "-").replace("$", "").replace(" ", "")
    text = text.rstrip("%").replace(",", "")
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            return Fraction(numerator) / Fraction(denominator)
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def find_numbers(text: str) -> list[Fraction]:
    text = _LATEX_FRACTION.sub(r"\1/\2", text.replace("\u2212", "-")).replace("$", " ")
    numbers = (parse_number(match.group(0)) for match in _NUMBER.finditer(text))
    return [number for number in numbers if number is not None]


def evaluate_arithmetic(expression: str) -> Fraction | None:
    """The exact value of '( 84.0 / 2.0 ) + 3', or None: numbers, + - * / and parentheses only (never eval)."""
    import ast

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            return left * right if isinstance(node.op, ast.Mult) else left / right
        raise ValueError("not arithmetic")

    try:
        return value(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    if (value * 10**6).denominator == 1:  # a short decimal in full: '12345.67', not '12345.7' or '1.23457e+06'
        return f"{Decimal(value.numerator) / value.denominator:f}"
    return str(value)


def numbers_equal(predicted: Fraction, gold: Fraction) -> bool:
    # Relative tolerance so that 0.333333 matches 1/3 and 33.33 matches 33.333..., capped at half a cent
    # so that it never grows to whole units for large answers (224001 is not 224000).
    tolerance = min(Fraction(1, 10**4) * max(1, abs(gold)), Fraction(1, 200))
    return predicted == gold or abs(predicted - gold) <= tolerance


# ---------------------------------------------------------------- option letters

_LETTER_IN_PARENS = re.compile(r"\(\s*([A-Z])\s*\)")
_LETTER_MARKED = re.compile(r"(?:option|choice)\s+\(?([A-Z])\b|\b([A-Z])(?=[).:,}]|\s*$)", re.IGNORECASE)


def _normalise_text(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def find_letter(span: str, choices: tuple[str, ...] | None, last: bool) -> str | None:
    allowed = OPTION_LETTERS[: len(choices)] if choices else OPTION_LETTERS[:10]
    candidates = [m.group(1) for m in _LETTER_IN_PARENS.finditer(span)]
    if not candidates and not last:  # '(c)' as PaLM writes it; in the whole output '(a)' is too often a list item
        candidates = [m.group(1).upper() for m in re.finditer(r"\(\s*([a-z])\s*\)", span)]
    if not candidates and not last:  # 'B.', 'option C', a bare 'D' end the explicit span only
        candidates = [(m.group(1) or m.group(2)).upper() for m in _LETTER_MARKED.finditer(span)]
        candidates = [c for c in candidates if not (c == "A" and re.search(r"\bA\s+[a-z]", span))]
    candidates = [c for c in candidates if c in allowed]
    if candidates:
        return candidates[-1] if last else candidates[0]
    normalised_span = _normalise_text(span)
    if choices and not last and normalised_span:  # the option's text instead of its letter
        hits = [i for i, choice in enumerate(choices) if _normalise_text(choice) == normalised_span]
        if not hits:  # whole words: 'nonlinear' names the option 'nonlinear', not 'linear'
            hits = [i for i, c in enumerate(choices)
                    if _normalise_text(c) and f" {_normalise_text(c)} " in f" {normalised_span} "]
        if len(hits) == 1:
            return OPTION_LETTERS[hits[0]]
    return None


# ---------------------------------------------------------------- yes/no and NLI labels

_YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_NLI = re.compile(r"\b(entail\w*|neutral|neither|undetermined|contradict\w*)\b", re.IGNORECASE)


def find_yes_no(span: str, last: bool) -> str | None:
    words = [m.group(1).lower() for m in _YES_NO.finditer(span)]
    if not words:
        return None
    word = words[-1] if last else words[0]
    return "yes" if word in ("yes", "true") else "no"


def find_nli_label(span: str, last: bool) -> str | None:
    words = [m.group(1).lower() for m in _NLI.finditer(span)]
    if not words:
        return None
    word = words[-1] if last else words[0]
    if word.startswith("entail"):
        return "entailment"
    if word.startswith("contradict"):
        return "contradiction"
    return "neutral"


# ---------------------------------------------------------------- dates

_MONTHS = {name: index for index, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
_MONTH_NAME = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), ("month", "day", "year")),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), ("year", "month", "day")),
    (re.compile(_MONTH_NAME + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})", re.IGNORECASE), ("name", "day", "year")),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_NAME + r",?\s+(\d{4})", re.IGNORECASE),
     ("day", "name", "year")),
]


def _month_number(name: str) -> int:
    name = name.lower().rstrip(".")
    return next(number for full, number in _MONTHS.items() if full.startswith(name[:3]))


def find_dates(span: str) -> list[tuple[int, str]]:
    """(position, 'MM/DD/YYYY') for every valid date in the span, in order of position."""
    found = []
    for pattern, roles in _DATE_PATTERNS:
        for match in pattern.finditer(span):
            parts = dict(zip(roles, match.groups(), strict=True))
            month = _month_number(parts["name"]) if "name" in parts else int(parts["month"])
            try:
                value = date(int(parts["year"]), month, int(parts["day"]))
            except ValueError:
                continue
            found.append((match.start(), value.strftime("%m/%d/%Y")))
    return sorted(found)


def normalise_date(text: str) -> str | None:
    dates = find_dates(text)
    return dates[0][1] if dates else None


def find_date(span: str, choices: tuple[str, ...] | None, last: bool) -> str | None:
    dates = find_dates(span)
    if dates:
        return dates[-1][1] if last else dates[0][1]
    letter = find_letter(span, choices, last) if choices else None
    if letter is not None:
        return normalise_date(choices[OPTION_LETTERS.index(letter)])
    return None


# ---------------------------------------------------------------- math (math-verify)


# math-verify's timeouts are wall-clock alarms (its default is 5 s): on a CPU busy with training beside the
# evaluation, parsing a valid gold answer ('\left[ \frac{\pi^2}{8}, \frac{5 \pi^2}{4} \right]') took longer than
# 5 s and scored it wrong. The limit only guards against a pathological expression, so it can be generous.
MATH_VERIFY_TIMEOUT_S = 30


def _math_verify_timeout() -> int | None:
    # math-verify enforces its timeouts with SIGALRM, which only works in the main thread.
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def parse_math(text: str, is_latex: bool = False) -> list:
    from math_verify import parse

    return parse(f"${text}$" if is_latex else text, parsing_timeout=_math_verify_timeout())


def check_math(output: str, gold: str) -> Verdict:
    from math_verify import verify

    boxed = last_boxed(output)
    predicted = parse_math(boxed, is_latex=True) if boxed is not None else parse_math(output)
    if not predicted:
        return Verdict(False, None)
    gold_parsed = parse_math(gold, is_latex=True)
    correct = bool(gold_parsed) and verify(gold_parsed, predicted, timeout_seconds=_math_verify_timeout())
    # Textual answers (\text{Evelyn}) that math-verify leaves unparsed. Only for a \text{} gold: the comparison
    # drops punctuation, so on math it would take -5 for 5 and (-2,1] for (-2,1).
    if not correct and boxed is not None and re.fullmatch(r"\\text\{[^{}]*\}", gold.strip()):
        correct = _normalise_text(boxed.replace("\\text", "")) == _normalise_text(gold.replace("\\text", ""))
    return Verdict(correct, str(predicted[-1]))


# ---------------------------------------------------------------- the checker


def extract_answer(output: str, answer_type: AnswerType, choices: tuple[str, ...] | None = None) -> str | None:
    """The normalised answer in a model output, or None when none can be read."""
    answer_type = AnswerType(answer_type)
    if answer_type is AnswerType.math:
        return check_math(output, "0").extracted
    spans = answer_spans(output)
    for index, span in enumerate(spans):
        last = index == len(spans) - 1  # in the whole-output fallback the last mention counts
        value = _parse_span(span, answer_type, choices, last)
        if value is not None:
            return value
    return None


def _parse_span(span: str, answer_type: AnswerType, choices: tuple[str, ...] | None, last: bool) -> str | None:
    if answer_type is AnswerType.number:
        numbers = find_numbers(span)
        return format_number(numbers[-1] if last else numbers[0]) if numbers else None
    if answer_type is AnswerType.letter:
        return find_letter(span, choices, last)
    if answer_type is AnswerType.yes_no:
        return find_yes_no(span, last)
    if answer_type is AnswerType.nli:
        return find_nli_label(span, last)
    if answer_type is AnswerType.date:
        return find_date(span, choices, last)
    if answer_type is AnswerType.text:
        if last:  # free text needs an explicit span: the whole output is never "the answer"
            return None
        return _normalise_text(span) or None
    raise ValueError(f"unknown answer type {answer_type!r}")


def answers_equal(predicted: str, gold: str, answer_type: AnswerType) -> bool:
    """Compare a normalised extracted answer with a gold answer of the same type."""
    answer_type = AnswerType(answer_type)
    if answer_type is AnswerType.number:
        predicted_number, gold_number = parse_number(predicted), parse_number(gold)
        return predicted_number is not None and gold_number is not None and numbers_equal(predicted_number, gold_number)
    if answer_type is AnswerType.date:
        return predicted == normalise_date(gold)
    if answer_type is AnswerType.text:
        return _normalise_text(predicted) == _normalise_text(gold)
    return predicted.strip().lower() == gold.strip().lower()


def check_answer(output: str, gold: str, answer_type: AnswerType, choices: tuple[str, ...] | None = None) -> Verdict:
    """Is the answer in `output` the gold answer? Unparsable outputs are incorrect with extracted=None."""
    answer_type = AnswerType(answer_type)
    if answer_type is AnswerType.math:
        return check_math(output, gold)
    extracted = extract_answer(output, answer_type, choices)
    if extracted is None:
        return Verdict(False, None)
    return Verdict(answers_equal(extracted, gold, answer_type), extracted)


def check_example(output: str, example: Example) -> Verdict:
    return check_answer(output, example.answer, example.answer_type, example.choices)


def final_answer_sentence(answer: str, answer_type: AnswerType) -> str:
    """How a response states its final answer; the prompts ask for exactly this form."""
    answer_type = AnswerType(answer_type)
    if answer_type is AnswerType.math:
        return f"The answer is $\\boxed{{{answer}}}$."
    if answer_type is AnswerType.letter:
        return f"The answer is ({answer})."
    return f"The answer is {answer}."


def canonical_answer(value: object, answer_type: AnswerType) -> str:
    """A gold answer in the form the checker compares against: 'yes'/'no', an NLI label, MM/DD/YYYY, '1234'.

    Raises ValueError for a value that cannot be an answer of the type (used on datasets and teacher replies).
    """
    answer_type = AnswerType(answer_type)
    text = str(value).strip()
    if answer_type is AnswerType.yes_no:
        word = text.lower().rstrip(".")
        if word in ("true", "yes", "1"):
            return "yes"
        if word in ("false", "no", "0"):
            return "no"
        raise ValueError(f"{value!r} is not a yes/no value")
    if answer_type is AnswerType.nli:
        if text.lower() in NLI_LABELS:
            return text.lower()
        if text in ("0", "1", "2"):
            return NLI_LABELS[int(text)]
        raise ValueError(f"{value!r} is not an NLI label ({', '.join(NLI_LABELS)})")
    if answer_type is AnswerType.date:
        return normalise_date(text) or text
    if answer_type is AnswerType.number:
        return text.replace(",", "").replace("$", "").strip()
    if answer_type is AnswerType.letter:
        return text.strip("() .").upper() if len(text.strip("() .")) == 1 else text
    return text


def is_valid_gold(answer: str, answer_type: AnswerType, choices: tuple[str, ...] | None = None) -> bool:
    """Whether a gold answer is well formed for its type (used when loading datasets)."""
    answer_type = AnswerType(answer_type)
    if answer_type is AnswerType.number:
        return parse_number(answer) is not None
    if answer_type is AnswerType.letter:
        allowed = OPTION_LETTERS[: len(choices)] if choices else OPTION_LETTERS
        return len(answer) == 1 and answer in allowed
    if answer_type is AnswerType.yes_no:
        return answer in ("yes", "no")
    if answer_type is AnswerType.nli:
        return answer in NLI_LABELS
    if answer_type is AnswerType.date:
        return normalise_date(answer) == answer
    return bool(answer.strip())
