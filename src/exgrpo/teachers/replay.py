"""A teacher that serves stored rationales for the original questions: real teacher text, offline.

It answers only stage-0 requests (the teacher's chain of thought on a dataset question), looked up by
dataset and example id; probes need a generating teacher (`probe_teacher` in the probe config).
Stores: a JSONL file of {"source", "id", "response"} records, or the PaLM-540B rationales released
with Distilling step-by-step (CommonsenseQA, SVAMP) in `dss_palm_rationales/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from exgrpo.data.answers import evaluate_arithmetic, format_number
from exgrpo.data.registry import load_examples
from exgrpo.errors import DataError
from exgrpo.files import iter_jsonl
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback

StoredResponses = dict[tuple[str, str], str]  # (dataset, example id) -> teacher response


class ReplayTeacher:
    def __init__(self, responses: StoredResponses, name: str = "replay") -> None:
        self.responses = responses
        self.model = f"replay:{name}"

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        for index, request in enumerate(requests):
            key = (str(request.meta.get("source")), str(request.meta.get("example_id")))
            if request.meta.get("purpose") != "cot":
                on_result(index, ChatResponse(None, error="the replay teacher only answers the original questions; "
                                                          "set probe_teacher for probes"))
            elif key not in self.responses:
                on_result(index, ChatResponse(None, error=f"no stored response for {key[0]} example {key[1]}"))
            else:
                on_result(index, ChatResponse(text=self.responses[key]))


def load_replay_jsonl(path: str | Path) -> StoredResponses:
    responses = {}
    for line, record in iter_jsonl(path):
        for field in ("source", "id", "response"):
            if field not in record:
                raise DataError("missing field", path, line, field)
        responses[(str(record["source"]), str(record["id"]))] = record["response"]
    return responses


# ---------------------------------------------------------------- Distilling step-by-step's PaLM rationales

DSS_DATASETS = {"commonsenseqa": "cqa", "svamp": "svamp"}
_EXPRESSION_ANSWER = re.compile(r"The answer is \(?\s*([-\d.+*/() ]+?)\s*\)?\s*\.?\s*$")


def clean_palm_rationale(text: str) -> str:
    """Cut the few-shot continuation PaLM wrote after its answer ('\\n\\nQ: ...')."""
    return text.split("\n\nQ:")[0].strip()


def resolve_expression_answer(text: str) -> str:
    """'... The answer is (84 / 2).' -> '... 84 / 2 = 42. The answer is 42.' (SVAMP rationales end in equations)."""
    match = _EXPRESSION_ANSWER.search(text)
    value = evaluate_arithmetic(match.group(1)) if match else None
    if match is None or value is None:
        return text
    return f"{text[: match.start()]}{match.group(1).strip()} = {format_number(value)}. The answer is {format_number(value)}."


def load_dss_rationales(root: str | Path, dataset: str) -> StoredResponses:
    """PaLM rationales for `dataset`'s train and test splits, keyed by the registry's example ids."""
    if dataset not in DSS_DATASETS:
        raise DataError(f"no stored PaLM rationales for '{dataset}' (available: {', '.join(DSS_DATASETS)})")
    folder = Path(root) / DSS_DATASETS[dataset]
    responses: StoredResponses = {}
    for split in ("train", "test"):
        files = sorted(folder.glob(f"{split}_CoT_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        if not files:
            raise DataError(f"no {split}_CoT_*.json files", folder)
        rationales = [text for path in files for text in json.loads(path.read_text(encoding="utf-8"))]
        if dataset == "commonsenseqa":  # aligned with cqa_<split>.jsonl, whose ids are CommonsenseQA's
            ids = [record["id"] for _, record in iter_jsonl(folder / f"cqa_{split}.jsonl")]
        else:  # aligned by position with the registry's split
            ids = [example.id for example in load_examples(dataset, split)]
        if len(ids) != len(rationales):
            raise DataError(f"{len(rationales)} rationales for {len(ids)} {split} questions", folder)
        for example_id, text in zip(ids, rationales, strict=True):
            text = clean_palm_rationale(text)
            responses[(dataset, example_id)] = resolve_expression_answer(text) if dataset == "svamp" else text
    return responses
