"""Probe dialogues: the conversations SFT trains on and ExGRPO rolls out, and their token masks.

A probe dialogue is: user probe_1 -> assistant answer -> ... -> user probe_k -> assistant answer ->
user Q -> assistant answer. User turns are the same prompts the teacher answered (`build_prompt`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exgrpo.data.prompts import build_prompt
from exgrpo.data.schema import AnswerType, Example
from exgrpo.errors import DataError
from exgrpo.files import iter_jsonl

Message = dict[str, str]


@dataclass(frozen=True)
class EIQuestion:
    """A question of the EI dataset with its kept probes, each with the teacher's response."""

    example: Example
    teacher_response: str
    probes: tuple[tuple[Example, str], ...]  # (probe, the teacher's response to it)
    extra_responses: tuple[str, ...] = ()  # other correct teacher rationales (the Answer-Aug baseline)

    @property
    def prompt(self) -> str:
        return build_prompt(self.example)


def load_ei_questions(path: str | Path) -> list[EIQuestion]:
    """Read ei.jsonl written by `exgrpo probe`; a malformed record names its line and field."""
    questions = []
    for line, record in iter_jsonl(path):
        try:
            example = Example.from_dict(record)
            probes = tuple(
                (Example(id=p["id"], question=p["question"], answer=p["answer"], answer_type=AnswerType(p["answer_type"]),
                         source=example.source, choices=tuple(p["choices"]) or None), p["teacher_response"])
                for p in record.get("probes", []))
            questions.append(EIQuestion(example, record["teacher_response"], probes,
                                        tuple(record.get("extra_responses", ()))))
        except (KeyError, ValueError, TypeError) as error:
            raise DataError(f"not an EI record ({type(error).__name__}: {error})", path, line) from None
    if not questions:
        raise DataError("the EI dataset is empty: no question survived the filters", path)
    return questions


def sample_probes(question: EIQuestion, k: int, seed: object) -> list[tuple[Example, str]]:
    """k of the question's probes without replacement, fixed by (question, seed): every rollout of a group
    (and every process) draws the same ones."""
    digest = hashlib.sha256(f"{question.example.id}|{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "little"))
    return rng.sample(list(question.probes), min(k, len(question.probes)))


def dialogue_messages(probes: Sequence[tuple[Example, str]], question: EIQuestion,
                      with_answers: bool = True) -> list[Message]:
    """The teacher-forced probe dialogue (with_answers) or just its user turns, ending with Q."""
    messages: list[Message] = []
    for probe, response in probes:
        messages.append({"role": "user", "content": build_prompt(probe)})
        if with_answers:
            messages.append({"role": "assistant", "content": response})
    messages.append({"role": "user", "content": question.prompt})
    if with_answers:
        messages.append({"role": "assistant", "content": question.teacher_response})
    return messages


def sft_conversations(questions: Sequence[EIQuestion], include_probes: bool, dialogues_per_question: int,
                      dialogue_probes: int, seed: int = 0, extra_rationales: bool = False) -> list[dict[str, Any]]:
    """SFT examples (TRL conversational format): Q with the teacher's answer, every kept probe with the
    teacher's answer, and (ours) probe dialogues in exactly the format ExGRPO rolls out; with
    extra_rationales (Answer-Aug), Q with each other rationale of the teacher too."""
    examples = []
    for question in questions:
        examples.append({"messages": dialogue_messages([], question)})
        if extra_rationales:
            examples += [{"messages": dialogue_messages([], EIQuestion(question.example, response, ()))}
                         for response in question.extra_responses]
        if include_probes:
            examples += [{"messages": dialogue_messages([], _as_question(probe, response))}
                         for probe, response in question.probes]
        for index in range(dialogues_per_question if question.probes and dialogue_probes > 0 else 0):
            probes = sample_probes(question, dialogue_probes, f"sft-{seed}-{index}")
            examples.append({"messages": dialogue_messages(probes, question)})
    return examples


def _as_question(probe: Example, response: str) -> EIQuestion:
    return EIQuestion(probe, response, ())


class ChatTokens:
    """Token ids of dialogues through the tokenizer's own chat template, turn by turn.

    Generated tokens are never re-tokenised (BPE need not round-trip); only the text between turns is
    rendered by the template, found as the difference between two rendered conversations.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.turn_end_id = self._turn_end_id()
        # Rendered once: the ids a user turn adds depend only on its text, and every rollout of a group
        # (G copies of one prompt) and every step asks for the same few texts again.
        self._prompts: dict[str, list[int]] = {}
        self._next_turns: dict[str, list[int]] = {}
        self._turn_prefix: list[int] | None = None

    def _turn_end_id(self) -> int:
        """The token that closes an assistant turn in the chat template: the first special or added token
        after the turn's text (ChatML's <|im_end|>, Gemma's <end_of_turn>, Llama 3's <|eot_id|>), which need
        not be the tokenizer's eos (Gemma's is <eos>). Falls back to eos for templates that write none."""
        messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        header = self._ids(messages[:1], add_generation_prompt=True)
        full = self._ids(messages, add_generation_prompt=False)
        special = set(self.tokenizer.all_special_ids) | set(getattr(self.tokenizer, "added_tokens_decoder", {}))
        closing = [token for token in full[len(header) :] if token in special]
        return closing[0] if closing else self.tokenizer.eos_token_id

    def stop_ids(self, generation_eos: int | list[int] | None = None) -> list[int]:
        """The one stop set of every sampler: the turn end, the tokenizer's eos and the model's own eos ids."""
        extra = generation_eos if isinstance(generation_eos, list) else [generation_eos]
        return sorted({self.turn_end_id, self.tokenizer.eos_token_id, *(e for e in extra if e is not None)})

    def _ids(self, messages: list[Message], add_generation_prompt: bool) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                                 return_dict=False)
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """The conversation so far, ending with the header of the assistant's turn."""
        return self._ids(messages, add_generation_prompt=True)

    def first_turn_ids(self, user_text: str) -> list[int]:
        """`prompt_ids` of a conversation of one user turn, rendered once per text."""
        if user_text not in self._prompts:
            self._prompts[user_text] = self.prompt_ids([{"role": "user", "content": user_text}])
        return list(self._prompts[user_text])

    def next_turn_ids(self, user_text: str) -> list[int]:
        """What follows an assistant turn's end-of-turn token: the next user turn and the assistant header."""
        if user_text in self._next_turns:
            return list(self._next_turns[user_text])
        before = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        if self._turn_prefix is None:
            prefix = self._ids(before, add_generation_prompt=False)
            # Templates write "<end-of-turn>\n" after a turn: cut the prefix at its last end-of-turn token (as
            # TRL does), so that what follows it (the newline, the next header) is part of the next turn's ids.
            ends = [i for i, token in enumerate(prefix) if token == self.turn_end_id]
            self._turn_prefix = prefix[: ends[-1] + 1] if ends else prefix
        prefix = self._turn_prefix
        full = self._ids([*before, {"role": "user", "content": user_text}], add_generation_prompt=True)
        if full[: len(prefix)] != prefix:
            raise ValueError("the chat template does not render a conversation as a prefix of its continuation")
        self._next_turns[user_text] = full[len(prefix) :]
        return list(self._next_turns[user_text])

    def teacher_forced(self, messages: list[Message], train_turns: Sequence[int]) -> tuple[list[int], list[int]]:
        """Ids of a whole dialogue and labels (-100 except on the assistant turns numbered in train_turns)."""
        ids: list[int] = []
        labels: list[int] = []
        assistant_turn = 0
        for end in range(1, len(messages) + 1):
            if messages[end - 1]["role"] != "assistant":
                continue
            header = self._ids(messages[: end - 1], add_generation_prompt=True)
            full = self._ids(messages[:end], add_generation_prompt=False)
            if full[: len(ids)] != ids or header[: len(ids)] != ids:
                raise ValueError("the chat template does not render a conversation as a prefix of its continuation")
            ends = [i for i, token in enumerate(full) if token == self.turn_end_id and i >= len(header)]
            turn_end = ends[0] + 1 if ends else len(full)
            labels += [-100] * (len(header) - len(ids))
            turn = full[len(header) : turn_end]
            labels += turn if assistant_turn in train_turns else [-100] * len(turn)
            ids = full[:turn_end]
            assistant_turn += 1
        return ids, labels
