"""A local teacher served by `transformers serve` (transformers' OpenAI-compatible server), as a context
manager: for tests that talk to a real model server, and for `benchmarks/probe_served.py`.

    with TransformersServe("path/to/checkpoint") as server:
        teacher = {"kind": "openai", "model": server.model, "base_url": server.base_url, "api_key_env": None}

It needs the `serving` extra of transformers (FastAPI, uvicorn: `pip install "transformers[serving]"`),
runs offline on 127.0.0.1, and is stopped (terminate, then kill) when the block ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from exgrpo.errors import ExgrpoError


def transformers_cli() -> str:
    """The `transformers` command of this Python environment."""
    beside = Path(sys.executable).with_name("transformers")
    found = str(beside) if beside.exists() else shutil.which("transformers")
    if found is None:
        raise ExgrpoError("the `transformers` command is not installed in this environment")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TransformersServe:
    def __init__(self, model: str | Path, port: int | None = None, startup_timeout: float = 180.0,
                 log: IO[str] | None = None, extra_args: list[str] | None = None) -> None:
        self.model = str(model)  # the name requests carry: the folder served
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.log = log
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> TransformersServe:
        command = [transformers_cli(), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                   "--device", "cpu", *self.extra_args]
        self.process = subprocess.Popen(command, stdout=self.log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        text=True, env=_offline_env())
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ExgrpoError(f"`transformers serve` exited with code {self.process.returncode} before it answered "
                                  f"(command: {' '.join(command)})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.__exit__()
        raise ExgrpoError(f"`transformers serve` did not answer on {self.base_url} within {self.startup_timeout:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
