"""A teacher behind any OpenAI-compatible chat API: OpenAI, Gemini's compatible endpoint, vLLM serve,
Ollama, llama.cpp server.

Built on the official `openai` client, which already retries 408/409/429/5xx, timeouts and dropped
connections with exponential backoff and jitter, and honours Retry-After. Here we add:
- bounded concurrency (an asyncio semaphore);
- retries of 200 replies the client accepts but that carry no answer (a body that is not JSON, no
  choices, no content), with the same bounded backoff: the client does not retry those;
- fail-fast: a refused connection is found by one TCP connect before any request (the client would spend
  ~14 s of retries on each request), and an authentication / permission / unknown-model answer or
  `max_consecutive_failures` failures in a row stop the batch: requests not yet sent are not sent, those in
  flight are answered and reported, then `TeacherUnavailable` names the URL and the model;
- a request the server refuses as such (400 / 413 / 422, e.g. too long) is a `rejected` response: asking
  again cannot help, the stage records that item as failed and goes on.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Sequence
from typing import Any

import httpx2
import openai

from exgrpo.errors import ConfigError
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback, TeacherUnavailable

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_FATAL_STATUS = {401: "authentication failed", 403: "permission denied", 404: "not found (is the model name right?)"}
_REJECTED_STATUS = {400, 413, 422}


class _Invalid(Exception):
    """A 200 reply without an answer: retried like a transport error."""


class OpenAITeacher:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 concurrency: int = 32, timeout: float = 120.0, max_retries: int = 5,
                 extra_body: dict[str, Any] | None = None, max_consecutive_failures: int = 10,
                 retry_delay: float = 0.5) -> None:
        self.model = model
        self.base_url = base_url
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = extra_body or {}
        self.max_consecutive_failures = max_consecutive_failures
        self.retry_delay = retry_delay  # the first backoff for an unusable 200 reply; doubled per retry, at most 8 s
        self._api_key = self._read_api_key(api_key_env)
        self._reachable = False

    @staticmethod
    def _read_api_key(api_key_env: str | None) -> str:
        if api_key_env is None:  # local servers (vLLM, Ollama) accept any key
            return "EMPTY"
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(f"teacher.api_key_env: environment variable {api_key_env} is not set "
                              "(set it, or use api_key_env: null for a server that needs no key)")
        return key

    def __repr__(self) -> str:  # never show the key
        return f"OpenAITeacher(model={self.model!r}, base_url={self.base_url!r}, concurrency={self.concurrency})"

    @property
    def url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        if requests:
            self._check_reachable()
        asyncio.run(self._complete_all(requests, on_result, on_start))

    def _check_reachable(self) -> None:
        """One TCP connect to the server before the first request: nothing listening is known in milliseconds."""
        if self._reachable:
            return
        import httpx2

        url = httpx2.URL(self.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.host, port), timeout=min(self.timeout, 10.0)).close()
        except OSError as error:
            raise TeacherUnavailable(f"cannot connect to the teacher at {self.url} (model {self.model}): {error}. "
                                     "Is the server running, and is base_url right? No request was sent.") from None
        self._reachable = True

    async def _complete_all(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                            on_start: StartCallback | None) -> None:
        # One connection per concurrent request: the default pool would queue requests behind each other.
        limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout,
                                    max_retries=self.max_retries,
                                    http_client=openai.DefaultAsyncHttpxClient(limits=limits))
        semaphore = asyncio.Semaphore(self.concurrency)
        state = {"fatal": None, "failures_in_a_row": 0, "sent": 0, "answered": 0}

        async def complete_one(index: int, request: ChatRequest) -> None:
            async with semaphore:
                if state["fatal"] is not None:
                    return  # not sent: the batch stops
                if on_start is not None:
                    on_start(index)
                state["sent"] += 1
                response, fatal = await self._call(client, request)
            state["failures_in_a_row"] = 0 if response.ok or response.rejected else state["failures_in_a_row"] + 1
            if fatal is None and state["failures_in_a_row"] >= self.max_consecutive_failures:
                fatal = f"{state['failures_in_a_row']} calls in a row failed (last: {response.error})"
            if fatal is not None and state["fatal"] is None:
                state["fatal"] = fatal
            state["answered"] += response.ok
            on_result(index, response)

        async with client:
            await asyncio.gather(*(complete_one(i, request) for i, request in enumerate(requests)))
        if state["fatal"] is not None:
            raise TeacherUnavailable(
                f"the teacher at {self.url} (model {self.model}) cannot answer: {state['fatal']}. Stopped after "
                f"{state['sent']} of {len(requests)} requests; the {state['answered']} answers received are kept, "
                "and a rerun sends only the rest.")

    async def _call(self, client: Any, request: ChatRequest) -> tuple[ChatResponse, str | None]:
        """The response, and why no request can succeed (a fatal answer) or None. A 200 reply without an
        answer is asked again, up to max_retries times, with exponential backoff."""
        for attempt in range(self.max_retries + 1):
            try:
                return await self._call_once(client, request)
            except _Invalid as invalid:
                if attempt == self.max_retries:
                    return ChatResponse(None, error=f"{invalid} (asked {attempt + 1} times)"), None
                await asyncio.sleep(min(8.0, self.retry_delay * 2 ** attempt) * random.uniform(1.0, 1.25))
        raise AssertionError("unreachable")

    async def _call_once(self, client: Any, request: ChatRequest) -> tuple[ChatResponse, str | None]:
        arguments: dict[str, Any] = {"model": self.model, "messages": list(request.messages),
                                     "max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.json_mode:
            arguments["response_format"] = {"type": "json_object"}
        if request.seed is not None:
            arguments["seed"] = request.seed
        if self.extra_body:
            arguments["extra_body"] = self.extra_body
        try:
            completion = await client.chat.completions.create(**arguments)
        except openai.APIStatusError as error:  # after the client's own retries
            message = f"HTTP {error.status_code}: {_short(error.message)}"
            if error.status_code in _FATAL_STATUS:
                return ChatResponse(None, error=message), f"HTTP {error.status_code}, {_FATAL_STATUS[error.status_code]}"
            return ChatResponse(None, error=message, rejected=error.status_code in _REJECTED_STATUS), None
        except openai.APITimeoutError:
            return ChatResponse(None, error=f"timed out after {self.timeout:g} s ({self.max_retries} retries)"), None
        except openai.APIConnectionError as error:
            return ChatResponse(None, error=f"connection failed ({self.max_retries} retries): {_short(str(error))}"), None
        except (openai.OpenAIError, ValueError) as error:  # a body that is not a chat completion
            raise _Invalid(f"invalid response: {_short(str(error))}") from None
        try:  # the client does not validate the body: JSON of another shape ([], null, "x") gets here
            choice = completion.choices[0] if completion.choices else None
            content = choice.message.content if choice is not None else None
            finish_reason = getattr(choice, "finish_reason", None)
            usage = completion.usage
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion_tokens = usage.completion_tokens if usage else 0
        except (AttributeError, TypeError, IndexError, KeyError):
            raise _Invalid("invalid response: the body is not a chat completion") from None
        if choice is None:
            raise _Invalid("invalid response: the reply has no choices")
        if content is None:
            raise _Invalid("the server returned no message content")
        if not isinstance(content, str):
            raise _Invalid(f"invalid response: message content is a {type(content).__name__}")
        return ChatResponse(text=content, prompt_tokens=prompt_tokens or 0, completion_tokens=completion_tokens or 0,
                            finish_reason=finish_reason if isinstance(finish_reason, str) else None), None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
