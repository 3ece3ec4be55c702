"""A teacher behind any OpenAI-compatible chat API: OpenAI, Gemini's compatible endpoint, vLLM serve,
Ollama, llama.cpp server.

Built on the official `openai` client, which already retries 408/409/429/5xx, timeouts and dropped
connections with exponential backoff and jitter, and honours Retry-After; here we add bounded
concurrency (an asyncio semaphore) and turn what still fails after the retries into error responses.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import httpx2
import openai

from exgrpo.errors import ConfigError
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback


class OpenAITeacher:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 concurrency: int = 32, timeout: float = 120.0, max_retries: int = 5,
                 extra_body: dict[str, Any] | None = None) -> None:
        self.model = model
        self.base_url = base_url
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = extra_body or {}
        self._api_key = self._read_api_key(api_key_env)

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

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        asyncio.run(self._complete_all(requests, on_result, on_start))

    async def _complete_all(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                            on_start: StartCallback | None) -> None:
        # One connection per concurrent request: the default pool would queue requests behind each other.
        limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout,
                                    max_retries=self.max_retries,
                                    http_client=openai.DefaultAsyncHttpxClient(limits=limits))
        semaphore = asyncio.Semaphore(self.concurrency)

        async def complete_one(index: int, request: ChatRequest) -> None:
            async with semaphore:
                if on_start is not None:
                    on_start(index)
                response = await self._call(client, request)
            on_result(index, response)

        async with client:
            await asyncio.gather(*(complete_one(i, request) for i, request in enumerate(requests)))

    async def _call(self, client: Any, request: ChatRequest) -> ChatResponse:
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
            return ChatResponse(None, error=f"HTTP {error.status_code}: {_short(error.message)}")
        except openai.APITimeoutError:
            return ChatResponse(None, error=f"timed out after {self.timeout:g} s ({self.max_retries} retries)")
        except openai.APIConnectionError as error:
            return ChatResponse(None, error=f"connection failed ({self.max_retries} retries): {_short(str(error))}")
        except (openai.OpenAIError, ValueError) as error:  # a body that is not a chat completion
            return ChatResponse(None, error=f"invalid response: {_short(str(error))}")
        try:  # the client does not validate the body: JSON of another shape ([], null, "x") gets here
            content = completion.choices[0].message.content if completion.choices else None
            usage = completion.usage
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion_tokens = usage.completion_tokens if usage else 0
        except (AttributeError, TypeError, IndexError, KeyError):
            return ChatResponse(None, error="invalid response: the body is not a chat completion")
        if content is None:
            return ChatResponse(None, error="the server returned no message content")
        if not isinstance(content, str):
            return ChatResponse(None, error=f"invalid response: message content is a {type(content).__name__}")
        return ChatResponse(text=content, prompt_tokens=prompt_tokens or 0, completion_tokens=completion_tokens or 0)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
