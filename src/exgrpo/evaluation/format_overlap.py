"""Format overlap: how much of an evaluation split's question format some training data already shows.

A split is "held-out" for a student only if no training example showed it the split's format. Judging that by
eye failed once (a "held-out" split whose questions one EI rule wrote for every training problem), so this module
measures it. Every text is reduced to its *pattern*: lower-cased, numbers and dates replaced by `#`, names and
other filler words by `@` (the words the generator or the user says vary, plus every capitalised word seen
anywhere but at the start of a sentence), and cut into sentences. Two scores per split:

- sentences: the share of the split's sentences whose pattern occurs among the training sentences;
- questions: the share of the split's questions whose whole pattern (all its sentences, in order) occurs among
  the training texts: the same template with other names and numbers.

A split of new templates scores near 0 on both; one that chains the training sentences in longer questions (more
steps) scores high on sentences and low on questions; one whose questions the training data (probes included)
already asks scores high on both. `format_overlap` is the function; `exgrpo overlap` runs it on files and
datasets. No model, no network: plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exgrpo.errors import DataError
from exgrpo.files import read_records

NUMBER = re.compile(r"\d+(?:[/.:,]\d+)*")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
CLAUSE_START = set(".?!:;\"'([\n")


def proper_names(texts: Iterable[str]) -> set[str]:
    """Capitalised words that occur somewhere other than at a sentence's or clause's start: names, places, labels."""
    names: set[str] = set()
    for text in texts:
        for match in WORD.finditer(text):
            word, before = match.group(0), text[: match.start()].rstrip()
            # A clause's first word is capitalised anyway: after a sentence's end, a colon, a quote, a bracket.
            if word[0].isupper() and word[1:].islower() and before and before[-1] not in CLAUSE_START:
                names.add(word)
    return names


def sentence_patterns(text: str, fillers: set[str]) -> tuple[str, ...]:
    """The text's sentences with numbers as `#` and filler words (lower-case) as `@`."""
    patterns = []
    for sentence in SENTENCE_END.split(text.strip()):
        masked = NUMBER.sub("#", sentence)
        masked = WORD.sub(lambda m: "@" if m.group(0).lower() in fillers else m.group(0).lower(), masked)
        masked = " ".join(masked.split())
        if masked:
            patterns.append(masked)
    return tuple(patterns)


@dataclass(frozen=True)
class Overlap:
    """How much of one evaluation split's format the training texts show (shares in [0, 1])."""

    questions: int
    sentences: float  # share of the split's sentences whose pattern the training texts contain
    whole_questions: float  # share of the split's questions whose whole pattern the training texts contain
    sentence_patterns: tuple[int, int]  # distinct sentence patterns of the split: (seen in training, all)
    question_patterns: tuple[int, int]  # distinct whole-question patterns of the split: (seen in training, all)

    def line(self) -> str:
        return (f"sentences {self.sentences:.0%} ({self.sentence_patterns[0]} of {self.sentence_patterns[1]} "
                f"patterns), whole questions {self.whole_questions:.0%} ({self.question_patterns[0]} of "
                f"{self.question_patterns[1]} patterns), {self.questions} questions")


def fillers_of(train: Sequence[str], evaluation: Sequence[str], fillers: Iterable[str] = ()) -> set[str]:
    """The words masked as `@`: the given fillers and the proper names of both sides (lower-cased)."""
    return {word.lower() for word in fillers} | {name.lower() for name in proper_names([*train, *evaluation])}


def format_overlap(train: Sequence[str], evaluation: Sequence[str], fillers: Iterable[str] = ()) -> Overlap:
    """How much of `evaluation`'s question format the `train` texts show. `fillers`: words that vary between
    questions of one template (item names, labels) beyond numbers and capitalised names, which are always
    masked."""
    masked = fillers_of(train, evaluation, fillers)
    seen_questions = {sentence_patterns(text, masked) for text in train}
    seen_sentences = {sentence for pattern in seen_questions for sentence in pattern}
    asked = [sentence_patterns(text, masked) for text in evaluation]
    sentences = [sentence for pattern in asked for sentence in pattern]
    distinct_sentences, distinct_questions = set(sentences), set(asked)
    return Overlap(
        questions=len(asked),
        sentences=sum(s in seen_sentences for s in sentences) / len(sentences) if sentences else 0.0,
        whole_questions=sum(q in seen_questions for q in asked) / len(asked) if asked else 0.0,
        sentence_patterns=(len(distinct_sentences & seen_sentences), len(distinct_sentences)),
        question_patterns=(len(distinct_questions & seen_questions), len(distinct_questions)))


def training_texts(path: str | Path, probes: bool = True) -> list[str]:
    """The questions a training file shows its student: each record's `question` and, with `probes`, its EI probes'
    questions (an EI data file: an SKD arm trains on the questions alone), or the user turns of a chat record
    (`messages`), or a `prompt`. Any format `read_records` reads (JSON Lines, JSON, CSV); a record with none of
    these fields is an error naming its line."""
    texts = []
    for line, record in read_records(path):
        found = record_texts(record, probes)
        if not found:
            raise DataError("no question, probes, messages or prompt to read", path, line)
        texts.extend(found)
    return texts


def record_texts(record: dict[str, Any], probes: bool) -> list[str]:
    """One training record's questions: its `question` (and its probes' questions, with `probes`), the user turns
    of its `messages`, its `prompt`."""
    texts = [record["question"]] if isinstance(record.get("question"), str) else []
    texts += [probe["question"] for probe in (record.get("probes") or [] if probes else []) if isinstance(probe, dict)
              and isinstance(probe.get("question"), str)]
    texts += [turn["content"] for turn in record.get("messages") or [] if isinstance(turn, dict)
              and turn.get("role") == "user" and isinstance(turn.get("content"), str)]
    if isinstance(record.get("prompt"), str):
        texts.append(record["prompt"])
    return texts
