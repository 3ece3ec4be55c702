"""What every teacher backend takes and returns.

A backend answers a batch of chat requests and reports each result as it arrives (`on_result`), so the
cache can store it at once: a killed run loses at most the calls in flight, never one already paid for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exgrpo.errors import ExgrpoError

Message = dict[str, str]


class TeacherUnavailable(ExgrpoError):
    """The teacher cannot answer any request (wrong key, unknown model, nothing listening, every call
    failing): the stage stops at once, after keeping every answer already received."""


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 0.0
    json_mode: bool = False  # ask for a JSON object (OpenAI `response_format`)
    seed: int | None = None  # a sampled request's number (OpenAI `seed`): samples of one prompt are distinct calls
    # Why the request is made (purpose, example id, rule...): lets replay and exact teachers answer it,
    # and is not part of the cache key: the same question asked for another reason is the same call.
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def payload(self) -> dict[str, Any]:
        # float(): temperature 0 and 0.0 are the same request, and must be the same cache key.
        payload = {"messages": list(self.messages), "max_tokens": self.max_tokens,
                   "temperature": float(self.temperature), "json_mode": self.json_mode}
        return payload if self.seed is None else {**payload, "seed": self.seed}  # unseeded keys stay as they were


def request_key(model: str, request: ChatRequest) -> str:
    """The cache key: the model and everything sent to it, canonically serialised."""
    canonical = json.dumps({"model": model, **request.payload()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChatResponse:
    text: str | None  # None when the call failed
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    cached: bool = False
    finish_reason: str | None = None  # the server's: "stop", "length" (cut at max_tokens)...; None when not told
    # True for a request the server refused as such (HTTP 400/413/422: too long, malformed): asking again
    # cannot help, so the stage goes on without it (the item is recorded as failed, with the reason).
    rejected: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    @property
    def truncated(self) -> bool:
        """Cut off at the token budget: not a final answer."""
        return self.finish_reason == "length"


ResultCallback = Callable[[int, ChatResponse], None]
StartCallback = Callable[[int], None]


class TeacherBackend(Protocol):
    model: str  # the identity that goes into cache keys

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        """Answer every request, calling on_start(i) when request i is sent and on_result(i, response) when done.

        A failed request is reported as a response with `error` set. Only a failure that dooms every request
        raises, `TeacherUnavailable`, once the requests in flight are answered and reported.
        """
        ...
