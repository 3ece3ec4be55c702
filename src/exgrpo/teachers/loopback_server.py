"""A minimal OpenAI-compatible chat-completions server on 127.0.0.1, answering with a Python callable.

For tests and benchmarks (a real HTTP peer for the real `openai` client) and for offline demos. The
callable gets the request body and returns a `Reply`: a message, or an HTTP error, a delay, a hang.
Every request body (and its headers) is recorded, so tests can check what the teacher was really asked.

It runs on asyncio in a background thread: a delayed reply is a sleeping coroutine, not a blocked
thread, so hundreds of concurrent slow requests cost nothing (http.server's thread per connection
and its listen backlog of 5 made the server, not the client, the bottleneck of throughput benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass
class Reply:
    content: str | None = None  # the assistant message
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a hang is a delay longer than the client's timeout)
    raw_body: str | None = None  # send this body verbatim instead of a chat completion
    finish_reason: str = "stop"  # "length": the reply was cut off at max_tokens

    def body(self, model: str, messages: list[dict[str, Any]] | None = None) -> str:
        if self.raw_body is not None:
            return self.raw_body
        if self.status != 200:
            return json.dumps({"error": {"message": self.content or f"status {self.status}", "type": "server_error"}})
        words = max(1, len((self.content or "").split()))
        prompt = prompt_tokens(messages or [])
        return json.dumps({
            "id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": self.finish_reason,
                         "message": {"role": "assistant", "content": self.content}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words},
        })


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The server's token count of a prompt: one per word, and 3 per message for the chat template's markers
    (a real tokenizer's count differs from a client's estimate in the same way: the estimate calibrates on it)."""
    return sum(len(str(message.get("content") or "").split()) + 3 for message in messages)


Script = Callable[[dict[str, Any]], Reply]


class LoopbackChatServer:
    """`with LoopbackChatServer(script) as server:` serves http://127.0.0.1:<port>/v1 until the block ends.

    The script runs on the server's event loop: keep it quick, and never call `stop()` from it directly
    (start a thread for that).
    """

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []  # each request's headers, names lower-cased
        self.in_flight = 0  # requests received and not yet answered
        self.most_in_flight = 0
        self._requested_port = port
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> LoopbackChatServer:
        self._thread.start()
        listening = asyncio.start_server(self._serve_connection, "127.0.0.1", self._requested_port, backlog=512)
        self._server = asyncio.run_coroutine_threadsafe(listening, self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Die: stop listening (later connections are refused) and drop the open connections unanswered."""
        if self._stopped.is_set():
            return
        self._stopped.set()

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LoopbackChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._connections.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while not self._stopped.is_set():  # keep-alive: one request after another on this connection
                request = await _read_request(reader)
                if request is None:
                    break
                headers, body = request
                with self._lock:
                    self.requests.append(body)
                    self.request_headers.append(headers)
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:
                    reply = self.script(body)
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    if self._stopped.is_set():  # a dead server answers nothing
                        break
                    writer.write(_response_bytes(reply, body))
                    await writer.drain()
                finally:
                    with self._lock:
                        self.in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError):  # the client hung up (its timeout) first
            pass
        finally:
            self._writers.discard(writer)
            self._connections.discard(asyncio.current_task())  # type: ignore[arg-type]
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], dict[str, Any]] | None:
    """Headers and JSON body of the next HTTP/1.1 request, or None when the client closed the connection."""
    request_line = await reader.readline()
    if not request_line.strip():
        return None
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", 0)))
    return headers, json.loads(raw or b"{}")


def _response_bytes(reply: Reply, request: dict[str, Any]) -> bytes:
    payload = reply.body(request.get("model", ""), request.get("messages")).encode()
    reason = HTTPStatus(reply.status).phrase if reply.status in HTTPStatus._value2member_map_ else ""
    head = [f"HTTP/1.1 {reply.status} {reason}", "Content-Type: application/json", f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in reply.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


def last_user_message(body: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
