"""`exgrpo eval`: single-pass greedy accuracy on registered benchmarks, resumable, with reports.

Flow: load and validate every dataset (cheap, fails fast) -> load the model -> generate each dataset's pending
answers in a stream of its own (continuous batching; a question's batch neighbours then come from its own dataset,
whatever else the run evaluates), or with `deterministic` in batches fixed by the dataset's order -> check each
answer with the one answer checker as it is made and append it to predictions/<dataset>.jsonl (fsync'd, so a
killed run resumes where it stopped) -> accuracy with a bootstrap CI per dataset and held-in / held-out averages
-> report.json and report.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exgrpo.config import EvalConfig
from exgrpo.data.answers import check_example
from exgrpo.data.prompts import build_messages
from exgrpo.data.registry import DatasetEntry, DatasetRegistry
from exgrpo.data.schema import Example
from exgrpo.errors import ConfigError
from exgrpo.evaluation.floors import guessing_floors
from exgrpo.evaluation.metrics import Estimate, accuracy, bootstrap_mean_of_means
from exgrpo.evaluation.report import write_reports
from exgrpo.files import append_jsonl, atomic_write_jsonl, read_appended_jsonl
from exgrpo.generation.generators import Conversation, Generation, Generator, make_generator
from exgrpo.models.named import CHECKPOINT_FORMAT, NAMED_MODELS, resolve_model
from exgrpo.models.precision import torch_dtype

PREDICTION_SCHEMA_VERSION = 1


@dataclass
class DatasetResult:
    name: str
    group: str
    split: str
    num_examples: int
    num_correct: int
    num_unparsed: int
    accuracy: Estimate
    generated_tokens: int
    correct: list[bool]
    floors: dict[str, float]  # guessing floors (random valid answer, majority answer), percent

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "split": self.split, "num_examples": self.num_examples,
                "num_correct": self.num_correct, "num_unparsed": self.num_unparsed,
                "accuracy": self.accuracy.as_percent(), "floors": self.floors,
                "generated_tokens": self.generated_tokens}


# Called with (dataset name, examples done, examples total); the CLI draws a progress bar from it.
ProgressCallback = Callable[[str, int, int], None]


def model_identity(model: str) -> str:
    """A local model folder is identified by its weight files' names, sizes and times (a model retrained into
    the same folder is another model); a hub id by itself; a named model by its pinned file and conversion (its
    cache folder is remade with new times on every machine, and holds the same weights)."""
    if model in NAMED_MODELS:
        named = NAMED_MODELS[model]
        return f"{named.name}:{named.sha256}:v{CHECKPOINT_FORMAT}"
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return model
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))
    return json.dumps([str(folder.resolve())] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights])


def precision_key(config: EvalConfig) -> str | None:
    """The float type the config's model computes in on this machine, for the fingerprint; None for fp32 (the
    key that predictions had before dtype settings existed, so they stay reusable)."""
    import torch

    dtype = torch_dtype(config.dtype, resolve_model(config.model))
    return None if dtype == torch.float32 else str(dtype)


def prediction_fingerprint(config: EvalConfig, entry: DatasetEntry, split: str,
                           precision: str | None | bool = True) -> str:
    """What makes a stored prediction reusable: same model, data, prompt, decoding and float type.
    `precision`: the float type's key (precision_key; True = work it out from the config)."""
    key = {"model": model_identity(config.model), "dataset": entry.name, "split": split, "source": config.source,
           "max_new_tokens": config.max_new_tokens, "system_prompt": config.system_prompt, "prompt": entry.prompt,
           "schema": PREDICTION_SCHEMA_VERSION}
    precision = precision_key(config) if precision is True else precision
    if precision is not None:
        key["dtype"] = precision
    if config.deterministic:  # a fixed batch's answers depend on its size (continuous ones keep the old key)
        key["fixed_batches"] = config.batch_size
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def load_eval_datasets(config: EvalConfig, registry: DatasetRegistry | None = None
                       ) -> dict[str, tuple[str, list[Example]]]:
    """Every dataset of the config, loaded before any model: a missing file fails in seconds, not hours.
    `registry`: the datasets the config's names refer to (default: the built-ins; the config's own files added)."""
    registry = config.dataset_registry(registry)
    loaded = {}
    for name in config.datasets:
        split = config.split or registry.get(name).eval_split
        limit = config.limits.get(name, config.limit)
        loaded[name] = (split, registry.load(name, split, limit=limit, source=config.source))
    return loaded


def evaluate(config: EvalConfig, generator: Generator | None = None, on_progress: ProgressCallback | None = None,
             registry: DatasetRegistry | None = None) -> dict[str, Any]:
    """Evaluate the config's model on its datasets, named in `registry` (default: the built-ins) or the config."""
    started = time.time()
    registry = config.dataset_registry(registry)
    loaded = load_eval_datasets(config, registry)  # before any model: a missing dataset file fails in seconds
    # A generator handed in knows its own float type; otherwise it follows from the config.
    precision = precision_key(config) if generator is None else getattr(generator, "precision", None)
    datasets = [DatasetPredictions(config, registry.get(name), split, examples, precision)
                for name, (split, examples) in loaded.items()]
    generator = generator or make_generator(config.model, config.generation_backend, config.batch_size, config.dtype)
    if config.deterministic and not hasattr(generator, "generate_fixed"):
        raise ConfigError(f"deterministic evaluation needs the transformers backend, not {generator.name}")
    for dataset in datasets:
        if on_progress is not None:
            on_progress(dataset.name, len(dataset.done), len(dataset.examples))
    for dataset in datasets:
        progress = None if on_progress is None else lambda d=dataset: on_progress(d.name, len(d.done), len(d.examples))
        if config.deterministic:
            generate_in_fixed_batches(generator, dataset, config, progress)
        else:
            generate_continuously(generator, dataset, config, progress)
    results = [dataset.result() for dataset in datasets]
    report = build_report(config, results, generator_name=generator.name, seconds=time.time() - started)
    write_reports(report, config.output_dir)
    return report


# Prompts per generate() call: large, so a batch rarely drains at a chunk's end; bounded, so a generator
# that returns only at the end of a call (vLLM) loses at most this many answers to a kill.
GENERATE_CHUNK = 1024


def generate_continuously(generator: Generator, dataset: DatasetPredictions, config: EvalConfig,
                          progress: Callable[[], None] | None) -> None:
    """The dataset's pending questions in one stream of their own: each answer is checked and appended to its file
    as soon as it is generated. Why not one stream over every dataset (a fuller batch at the boundaries): a
    question's neighbours would then depend on which other datasets the run evaluates."""
    pending = dataset.pending()
    for start in range(0, len(pending), GENERATE_CHUNK):
        chunk = pending[start : start + GENERATE_CHUNK]
        conversations = [dataset.conversation(example) for example in chunk]

        def store(index: int, generation: Generation, chunk: list = chunk, conversations: list = conversations) -> None:
            dataset.store(chunk[index], conversations[index], generation)
            if progress is not None:
                progress()

        generator.generate(conversations, config.max_new_tokens, on_result=store)


def generate_in_fixed_batches(generator: Any, dataset: DatasetPredictions, config: EvalConfig,
                              progress: Callable[[], None] | None) -> None:
    """`deterministic`: the dataset's questions in batches of batch_size in the dataset's order, the last batch
    filled up with copies of its last question, each batch generated whole (TransformersGenerator.generate_fixed)
    and only then stored. A batch with any answer missing is generated again whole: a resumed run, or one with
    other datasets beside it, gives every question the same batch and so the same answer."""
    size = config.batch_size
    for start in range(0, len(dataset.examples), size):
        batch = dataset.examples[start : start + size]
        if all(example.id in dataset.done for example in batch):
            continue
        conversations = [dataset.conversation(example) for example in batch]
        filled = conversations + [conversations[-1]] * (size - len(conversations))
        generations = generator.generate_fixed(filled, config.max_new_tokens)[: len(batch)]
        for example, conversation, generation in zip(batch, conversations, generations, strict=True):
            if example.id not in dataset.done:
                dataset.store(example, conversation, generation)
        if progress is not None:
            progress()


class DatasetPredictions:
    """One dataset's predictions file: what is stored (and reusable), what is pending, and its result."""

    def __init__(self, config: EvalConfig, entry: DatasetEntry, split: str, examples: list[Example],
                 precision: str | None) -> None:
        self.config, self.entry, self.split, self.examples = config, entry, split, examples
        self.name = entry.name
        self.stored_now = False
        self.path = Path(config.output_dir) / "predictions" / f"{self.name}.jsonl"
        self.fingerprint = prediction_fingerprint(config, entry, split, precision)
        wanted_ids = {example.id for example in examples}
        stored = read_appended_jsonl(self.path)
        self.done = {r["id"]: r for r in stored if r.get("fingerprint") == self.fingerprint and r.get("id") in wanted_ids}
        if len(self.done) != len(stored):  # predictions of another model or setting: start this file afresh
            atomic_write_jsonl(self.path, self.done.values())

    def pending(self) -> list[Example]:
        return [example for example in self.examples if example.id not in self.done]

    def conversation(self, example: Example) -> Conversation:
        return build_messages(example, self.entry.prompt, self.config.system_prompt)

    def store(self, example: Example, conversation: Conversation, generation: Generation) -> None:
        verdict = check_example(generation.text, example)
        record = {
            "id": example.id, "fingerprint": self.fingerprint, "prompt": conversation[-1]["content"],
            "output": generation.text, "num_tokens": generation.num_tokens, "gold": example.answer,
            "answer_type": str(example.answer_type), "extracted": verdict.extracted, "correct": verdict.correct,
        }
        append_jsonl(self.path, [record])
        self.done[example.id] = record
        self.stored_now = True

    def result(self) -> DatasetResult:
        ordered = [self.done[example.id] for example in self.examples]
        if self.stored_now:  # appended in the order answers finished: leave the file in the dataset's order
            atomic_write_jsonl(self.path, ordered)
        correct = [bool(record["correct"]) for record in ordered]
        config = self.config
        return DatasetResult(
            name=self.name, group=self.entry.group, split=self.split, num_examples=len(self.examples),
            num_correct=sum(correct), num_unparsed=sum(record["extracted"] is None for record in ordered),
            accuracy=accuracy(correct, resamples=config.bootstrap_resamples, seed=config.seed),
            generated_tokens=sum(record["num_tokens"] for record in ordered), correct=correct,
            floors=guessing_floors(self.examples),
        )


def build_report(config: EvalConfig, results: list[DatasetResult], generator_name: str, seconds: float) -> dict[str, Any]:
    averages = {}
    for group in ("held_in", "held_out"):
        members = [result for result in results if result.group == group]
        if members:
            estimate = bootstrap_mean_of_means([m.correct for m in members], config.bootstrap_resamples, config.seed)
            floors = {kind: round(sum(m.floors[kind] for m in members) / len(members), 2)
                      for kind in ("random", "majority")}
            averages[group] = {"datasets": [m.name for m in members], "accuracy": estimate.as_percent(),
                               "floors": floors}
    return {
        "model": config.model,
        "backend": generator_name,
        "config": json.loads(config.model_dump_json()),
        "datasets": [result.summary() for result in results],
        "averages": averages,
        "seconds": round(seconds, 2),
    }
