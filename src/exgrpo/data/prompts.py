"""The prompt a student sees for a benchmark question: the question, its options, and how to answer.

The instruction asks for exactly the closing sentence that `answers.final_answer_sentence` writes and
the checker reads first, so models that follow it are scored without guesswork.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from exgrpo.data.schema import OPTION_LETTERS, AnswerType, Example

INSTRUCTIONS: dict[AnswerType, str] = {
    AnswerType.number: 'Solve the problem step by step. End with "The answer is N." where N is a number.',
    AnswerType.letter: 'Think step by step. End with "The answer is (X)." where X is the letter of the correct option.',
    AnswerType.yes_no: 'Think step by step. End with "The answer is yes." or "The answer is no."',
    AnswerType.nli: (
        "Does the premise entail the hypothesis, contradict it, or neither? Think step by step. "
        'End with "The answer is entailment.", "The answer is contradiction." or "The answer is neutral."'
    ),
    AnswerType.date: 'Think step by step. End with "The answer is MM/DD/YYYY." giving the date.',
    AnswerType.math: "Solve the problem step by step. Put the final answer within \\boxed{}.",
    AnswerType.text: 'Think step by step. End with "The answer is X." where X is a short answer.',
}

DEFAULT_TEMPLATE = "{{ question }}{% if options %}\n\nOptions:\n{{ options }}{% endif %}\n\n{{ instruction }}"

_ENV = ImmutableSandboxedEnvironment()


@lru_cache(maxsize=64)
def _compiled(template: str) -> Template:
    # Compiling a template costs ~0.1 ms, more than rendering it: a stage renders thousands of prompts.
    return _ENV.from_string(template)


def options_block(choices: tuple[str, ...] | None) -> str:
    return "\n".join(f"({OPTION_LETTERS[i]}) {choice}" for i, choice in enumerate(choices or ()))


def build_prompt(example: Example, template: str | None = None) -> str:
    """Render the user prompt; `template` (Jinja) may use question, options, choices and instruction."""
    return _compiled(template or DEFAULT_TEMPLATE).render(
        question=example.question,
        options=options_block(example.choices),
        choices=example.choices or (),
        instruction=INSTRUCTIONS[example.answer_type],
    ).strip()


def build_messages(example: Example, template: str | None = None, system: str | None = None) -> list[dict[str, str]]:
    """The conversation for a chat model: an optional system turn, then the prompt as the user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": build_prompt(example, template)}]
