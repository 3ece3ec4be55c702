"""(ours) The pass-rate pre-pass: which RL questions the starting model solves sometimes.

A group of rollouts that are all right or all wrong has no reward spread, so its advantages are zero and it
teaches nothing (in the study's runs 41-80 % of groups). Before training, the starting (SFT) model answers each
training question `samples` times on the single-turn question prompt, at the stage's temperature and answer
budget; each answer is checked with the one answer checker, and RL trains only on the questions whose pass rate
lies strictly between `min_rate` and `max_rate`. This is Stage 1's difficulty filter (METHOD.md, paper Eq. 2:
drop a question its student solves every time or never), applied to the RL questions under the SFT model.

The rates are appended to output_dir/pass_rates.jsonl as each question's samples are all checked (fsync'd),
after a header line saying what they were measured with; a rerun samples only the questions the file lacks,
and refuses a file measured under other settings rather than mixing rates of two models or budgets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exgrpo.config import PassRateSettings, TrainConfig
from exgrpo.data.answers import check_example
from exgrpo.errors import ConfigError, DataError
from exgrpo.files import append_jsonl, read_appended_jsonl
from exgrpo.generation.generators import Generation, Generator
from exgrpo.training.dialogues import EIQuestion
from exgrpo.training.sft_data import training_questions

SCHEMA_VERSION = 1
PASS_RATES_FILE = "pass_rates.jsonl"
HEADER_KIND = "pass_rate_header"
# Sampled answers per generate() call: many rows keep the batch full; a kill loses at most the questions whose
# samples were not all checked yet.
GENERATE_CHUNK = 1024


@dataclass(frozen=True)
class SamplingSetup:
    """What a pass rate depends on besides the question: the file's header, compared on every rerun."""

    model: str  # the starting model's identity (a folder's weight files, a named model's pinned file)
    samples: int
    temperature: float
    max_new_tokens: int
    dtype: str  # the float type the model samples in: bf16 and fp32 give other samples

    def header(self) -> dict[str, Any]:
        return {"kind": HEADER_KIND, "schema_version": SCHEMA_VERSION, **asdict(self)}


@dataclass(frozen=True)
class PassRate:
    id: str
    samples: int
    solved: int
    seconds: float  # sampling seconds spent on this question (its share of the generation time)

    @property
    def rate(self) -> float:
        return self.solved / self.samples

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "samples": self.samples, "solved": self.solved, "rate": self.rate,
                "seconds": round(self.seconds, 4)}


@dataclass(frozen=True)
class QuestionSelection:
    """The questions RL trains on, and how they were chosen (a summary for diagnostics.json and the console)."""

    kept: list[EIQuestion]
    rates: dict[str, PassRate]  # question id -> its pass rate, for every training question
    settings: PassRateSettings
    setup: SamplingSetup
    sampled_now: int  # questions sampled by this invocation; the others were read from the file

    def count(self, solved: int) -> int:
        return sum(rate.solved == solved for rate in self.rates.values())

    def summary(self) -> dict[str, Any]:
        samples = self.setup.samples
        return {
            "method": "pass_rate", "file": PASS_RATES_FILE, "questions": len(self.rates), "kept": len(self.kept),
            "always_solved": self.count(samples), "never_solved": self.count(0),
            # index = answers solved of `samples`: how hard the questions were for the starting model
            "questions_by_solved": [self.count(solved) for solved in range(samples + 1)],
            "min_rate": self.settings.min_rate, "max_rate": self.settings.max_rate, "samples": samples,
            "temperature": self.setup.temperature, "max_new_tokens": self.setup.max_new_tokens,
            "seconds": round(sum(rate.seconds for rate in self.rates.values()), 2), "sampled_now": self.sampled_now,
        }

    def line(self) -> str:
        s = self.summary()
        outside = s["questions"] - s["kept"] - s["always_solved"] - s["never_solved"]
        bounds = f", {outside} mixed but outside ({s['min_rate']}, {s['max_rate']})" if outside else ""
        reused = "" if self.sampled_now == s["questions"] else \
            f"; {s['questions'] - self.sampled_now} read from {PASS_RATES_FILE}"
        return (f"pass-rate filter: kept {s['kept']} of {s['questions']} questions ({s['always_solved']} always "
                f"solved, {s['never_solved']} never solved{bounds}; {s['samples']} samples each, {s['seconds']:.1f} s"
                f"{reused})")


def answer_budget(config: TrainConfig) -> int:
    """The final answer's token budget: `max_answer_tokens` where the config has one, else the per-turn budget
    (the question is the dialogue's last turn; here it is its only one)."""
    budget = getattr(config, "max_answer_tokens", None)
    return budget if isinstance(budget, int) else config.max_new_tokens


def sampling_setup(config: TrainConfig) -> SamplingSetup:
    from exgrpo.evaluation.evaluate import model_identity
    from exgrpo.models.named import resolve_model
    from exgrpo.models.precision import torch_dtype

    dtype = torch_dtype(config.dtype, resolve_model(config.model))
    return SamplingSetup(model=model_identity(config.model), samples=config.pass_rate.samples,
                         temperature=config.temperature, max_new_tokens=answer_budget(config),
                         dtype=str(dtype).removeprefix("torch."))


def _field(record: dict[str, Any], name: str, kinds: tuple[type, ...], path: Path, line: int) -> Any:
    value = record.get(name)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise DataError(f"expected {' or '.join(kind.__name__ for kind in kinds)}, got {value!r}", path, line, name)
    return value


def read_pass_rates(path: Path, setup: SamplingSetup) -> dict[str, PassRate]:
    """The rates a previous invocation stored (none when the file is absent); a file measured under another
    setup is refused, a malformed line names the file, line and field."""
    records = read_appended_jsonl(path)  # a torn last line (a killed run) is cut off: that question is resampled
    if not records:
        return {}
    header = records[0]
    if header.get("kind") != HEADER_KIND:
        raise DataError(f"line 1 must be the header ({{\"kind\": \"{HEADER_KIND}\", ...}}); delete the file to "
                        "measure the pass rates again", path, 1)
    wanted = setup.header()
    different = [f"{name}: {header.get(name)!r} there, {value!r} now" for name, value in wanted.items()
                 if header.get(name) != value]
    if different:
        raise ConfigError(f"{path}: its pass rates were measured under other settings ({'; '.join(different)}). "
                          "Restore those settings, or delete the file (or use another output_dir) to measure "
                          "them again: rates of two setups are never mixed")
    rates = {}
    # append_jsonl writes no blank lines, so record i sits on line i + 1
    for line, record in enumerate(records[1:], start=2):
        rate = PassRate(id=_field(record, "id", (str,), path, line),
                        samples=_field(record, "samples", (int,), path, line),
                        solved=_field(record, "solved", (int,), path, line),
                        seconds=float(_field(record, "seconds", (float, int), path, line)))
        if rate.samples != setup.samples or not 0 <= rate.solved <= rate.samples:
            raise DataError(f"solved {rate.solved} of {rate.samples} samples, the header says {setup.samples}",
                            path, line, "solved")
        rates[rate.id] = rate
    return rates


def question_conversation(question: EIQuestion) -> list[dict[str, str]]:
    """The single-turn prompt: the question as the first user turn of a rollout, with no probes before it."""
    return [{"role": "user", "content": question.prompt}]


def measure_pass_rates(questions: Sequence[EIQuestion], generator: Generator, setup: SamplingSetup,
                       path: Path) -> tuple[dict[str, PassRate], int]:
    """(each question's pass rate, how many were sampled now): questions missing from `path` are sampled
    `setup.samples` times and appended to it one by one, as soon as all their samples are checked."""
    rates = read_pass_rates(path, setup)
    if not path.exists() or path.stat().st_size == 0:
        append_jsonl(path, [setup.header()])
    missing = list({q.example.id: q for q in questions if q.example.id not in rates}.values())
    samples = setup.samples
    per_chunk = max(1, GENERATE_CHUNK // samples)
    last_done = time.perf_counter()
    for start in range(0, len(missing), per_chunk):
        chunk = missing[start : start + per_chunk]
        # Each question's samples are adjacent rows: generation i belongs to question i // samples.
        conversations = [question_conversation(q) for q in chunk for _ in range(samples)]
        checked, solved = [0] * len(chunk), [0] * len(chunk)

        def store(index: int, generation: Generation, chunk: list[EIQuestion] = chunk, checked: list[int] = checked,
                  solved: list[int] = solved) -> None:
            nonlocal last_done
            position = index // samples
            question = chunk[position]
            solved[position] += check_example(generation.text, question.example).correct
            checked[position] += 1
            if checked[position] == samples:
                now = time.perf_counter()
                rate = PassRate(question.example.id, samples, solved[position], now - last_done)
                last_done = now
                append_jsonl(path, [rate.record()])
                rates[rate.id] = rate

        generator.generate(conversations, setup.max_new_tokens, setup.temperature, on_result=store)
    return rates, len(missing)


def select_questions(questions: Sequence[EIQuestion], rates: dict[str, PassRate],
                     settings: PassRateSettings) -> list[EIQuestion]:
    """The questions whose pass rate lies strictly between the bounds, in their order."""
    return [q for q in questions if settings.keeps(rates[q.example.id].rate)]


def select_by_pass_rate(config: TrainConfig, generator: Generator | None = None) -> QuestionSelection:
    """The stage's training questions, filtered by their pass rates under the starting model (config.model),
    measured where output_dir/pass_rates.jsonl lacks them. `generator`: a stand-in; by default the model is
    loaded (only when something is missing) with the project's batched decoding, in the stage's dtype; sampling
    is at the stage's temperature alone (transformers' continuous decoding knows no top_p: `generation_kwargs`
    are not applied here)."""
    questions = training_questions(config)
    setup = sampling_setup(config)
    path = Path(config.output_dir) / PASS_RATES_FILE
    stored = read_pass_rates(path, setup)  # a mismatched file fails here, before any model is loaded
    if generator is None and any(q.example.id not in stored for q in questions):
        generator = _load_generator(config)
    rates, sampled = measure_pass_rates(questions, generator, setup, path) if generator else (stored, 0)
    rates = {q.example.id: rates[q.example.id] for q in questions}  # this stage's questions only
    selection = QuestionSelection(select_questions(questions, rates, config.pass_rate), rates, config.pass_rate,
                                  setup, sampled)
    if len(selection.kept) < config.questions_per_step:
        raise ConfigError(f"{selection.line()}: fewer than questions_per_step ({config.questions_per_step}) questions "
                          f"are left to train on ({path} has every rate). Widen train.pass_rate.min_rate / max_rate, "
                          "raise samples or the temperature, or start from a stronger SFT model")
    return selection


def _load_generator(config: TrainConfig) -> Generator:
    import torch

    from exgrpo.generation.generators import TransformersGenerator

    torch.manual_seed(config.seed)  # the same samples for the same seed, where a run measures from scratch
    return TransformersGenerator.from_pretrained(config.model, batch_size=config.pass_rate.batch_size,
                                                 dtype=config.dtype)
