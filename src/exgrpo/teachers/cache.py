"""A durable cache of teacher calls, and the teacher that consults it before paying for a call.

The cache is an append-only JSONL file, fsync'd after every answer; a torn last line left by a killed
process is dropped on open. Only successful answers are stored: a failed call is asked again next run.
A reply cut off at its token budget (finish_reason "length") is stored as such, and is never a final
answer while the budget may grow: the same request is asked again with twice the budget, up to a cap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exgrpo.files import append_jsonl, read_appended_jsonl
from exgrpo.teachers.base import ChatRequest, ChatResponse, TeacherBackend, request_key

CACHE_SCHEMA_VERSION = 1


class TeacherCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, ChatResponse] = {}
        # Per model, what the stored answers cost: every entry is one paid call, whichever run (even a killed
        # one) made it.
        self.paid: dict[str, dict[str, int]] = {}
        for record in read_appended_jsonl(self.path):
            self._entries[record["key"]] = ChatResponse(
                text=record["text"], prompt_tokens=record.get("prompt_tokens", 0),
                completion_tokens=record.get("completion_tokens", 0), cached=True,
                finish_reason=record.get("finish_reason"))
            self._count_paid(str(record.get("model")), self._entries[record["key"]])

    def _count_paid(self, model: str, response: ChatResponse) -> None:
        paid = self.paid.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        paid["calls"] += 1
        paid["prompt_tokens"] += response.prompt_tokens
        paid["completion_tokens"] += response.completion_tokens

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> ChatResponse | None:
        return self._entries.get(key)

    def put(self, key: str, model: str, request: ChatRequest, response: ChatResponse) -> None:
        append_jsonl(self.path, [{
            "schema_version": CACHE_SCHEMA_VERSION, "key": key, "model": model, "request": request.payload(),
            "text": response.text, "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens, "finish_reason": response.finish_reason,
        }])
        self._entries[key] = dataclasses.replace(response, cached=True)
        self._count_paid(model, response)


@dataclass
class CallStats:
    """What the teacher cost: calls made and their tokens, answers served from the cache, failures.

    Every request sent to the cache is counted once, in `calls`, `cached` (no call paid for it, repeats in a
    batch included) or `errors`: their sum is the number of requests answered, which progress reports rely
    on. A request re-asked with a larger budget after a cut-off reply is a new request (`longer` counts them);
    `truncated` counts the answers still cut off at the cap, `rejected` the requests the server refused.
    """

    calls: int = 0
    cached: int = 0
    errors: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    longer: int = 0
    truncated: int = 0
    rejected: int = 0
    last_error: str | None = None
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "cached": self.cached, "errors": self.errors, "longer": self.longer,
                "truncated": self.truncated, "rejected": self.rejected,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class CachedTeacher:
    """A backend behind the cache: identical requests are asked once, ever.

    With `max_tokens_cap`, a reply cut off at its budget is asked again with twice the budget (at most the
    cap); what is still cut off at the cap comes back with `truncated` set, for the caller to record as such.
    """

    def __init__(self, backend: TeacherBackend, cache: TeacherCache,
                 on_change: Callable[[CallStats], None] | None = None, max_tokens_cap: int | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.stats = CallStats()
        self.on_change = on_change
        self.max_tokens_cap = max_tokens_cap

    @property
    def model(self) -> str:
        return self.backend.model

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        current = list(requests)
        final: list[ChatResponse | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            again = []
            for index, response in zip(pending, self._complete_once([current[i] for i in pending]), strict=True):
                cap = self.max_tokens_cap
                if response.ok and response.truncated and cap is not None and current[index].max_tokens < cap:
                    current[index] = dataclasses.replace(current[index], max_tokens=min(cap, 2 * current[index].max_tokens))
                    again.append(index)
                    continue
                final[index] = response
                self.stats.truncated += response.ok and response.truncated
                self.stats.rejected += response.rejected
            self.stats.longer += len(again)
            pending = again
        return [response if response is not None else ChatResponse(None, error="no answer") for response in final]

    def _complete_once(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        keys = [request_key(self.model, request) for request in requests]
        results: list[ChatResponse | None] = [self.cache.get(key) for key in keys]
        self.stats.cached += sum(result is not None for result in results)
        # Each distinct missing request is sent once, however often it occurs in the batch.
        missing: dict[str, list[int]] = {}
        for index, (key, result) in enumerate(zip(keys, results, strict=True)):
            if result is None:
                missing.setdefault(key, []).append(index)
        to_send = [(key, requests[positions[0]]) for key, positions in missing.items()]

        def on_start(_: int) -> None:
            self.stats.in_flight += 1
            self._changed()

        def on_result(position: int, response: ChatResponse) -> None:
            key, request = to_send[position]
            repeats = len(missing[key]) - 1  # the batch's other requests for this key, answered by this call
            self.stats.in_flight = max(0, self.stats.in_flight - 1)
            if response.ok:
                self.stats.calls += 1
                self.stats.cached += repeats
                self.stats.prompt_tokens += response.prompt_tokens
                self.stats.completion_tokens += response.completion_tokens
                self.cache.put(key, self.model, request, response)
            else:
                self.stats.errors += 1 + repeats
                self.stats.last_error = response.error
                if len(self.stats.error_samples) < 5:
                    self.stats.error_samples.append(str(response.error))
            for index in missing[key]:
                results[index] = response
            self._changed()

        if to_send:
            self.backend.complete([request for _, request in to_send], on_result=on_result, on_start=on_start)
        self._changed()
        return [result if result is not None else ChatResponse(None, error="no answer") for result in results]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.stats)
