"""A minimal OpenAI-compatible chat-completions server on 127.0.0.1, answering with a Python callable.

For tests and benchmarks (a real HTTP peer for the real `openai` client) and for offline demos. The
callable gets the request body and returns a `Reply`: a message, or an HTTP error, a delay, a hang.
Every request body is recorded, so tests can check what the teacher was really asked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = None  # the assistant message
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a hang is a delay longer than the client's timeout)
    raw_body: str | None = None  # send this body verbatim instead of a chat completion

    def body(self, model: str) -> str:
        if self.raw_body is not None:
            return self.raw_body
        if self.status != 200:
            return json.dumps({"error": {"message": self.content or f"status {self.status}", "type": "server_error"}})
        return json.dumps({
            "id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len((self.content or "").split())),
                      "total_tokens": 10 + max(1, len((self.content or "").split()))},
        })


Script = Callable[[dict[str, Any]], Reply]


class LoopbackChatServer:
    """`with LoopbackChatServer(script) as server:` serves http://127.0.0.1:<port>/v1 until the block ends."""

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                reply = server.script(body)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body(body.get("model", "")).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
                    pass

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> LoopbackChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the socket: later connections are refused, as when a server dies."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def last_user_message(body: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
