"""Teacher-call throughput against a loopback OpenAI-compatible server with added latency.

    python benchmarks/teacher_throughput.py [--requests 500] [--latency 0.1] [--concurrency 32]

Sends --requests distinct chat requests through exgrpo's cached OpenAI teacher (the real `openai`
client) to a loopback server (in its own process) that answers each after --latency seconds, and prints the measured time against the
ideal bound requests x latency / concurrency (goal: ratio <= 1.5). Then sends the same requests again
and prints how many reached the server (goal: 0, all from the cache).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from exgrpo.teachers.base import ChatRequest
from exgrpo.teachers.cache import CachedTeacher, TeacherCache
from exgrpo.teachers.loopback_server import LoopbackChatServer, Reply, last_user_message
from exgrpo.teachers.openai_api import OpenAITeacher


def serve(latency: float, ports: multiprocessing.Queue, stop: multiprocessing.Event, served: Any) -> None:
    """The server in its own process, as a real API server is: it does not compete with the client for the GIL."""

    def script(body: dict) -> Reply:
        with served.get_lock():
            served.value += 1
        return Reply(f"Echo: {last_user_message(body)}. The answer is 1.", delay=latency)

    with LoopbackChatServer(script) as server:
        ports.put(server.port)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    requests = [ChatRequest(messages=({"role": "user", "content": f"Question number {i}?"},), max_tokens=64)
                for i in range(args.requests)]
    ports: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    served = multiprocessing.Value("i", 0)  # requests the server received
    server_process = multiprocessing.Process(target=serve, args=(args.latency, ports, stop, served), daemon=True)
    server_process.start()
    base_url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
    with tempfile.TemporaryDirectory() as scratch:
        backend = OpenAITeacher("loopback", base_url=base_url, api_key_env=None,
                                concurrency=args.concurrency, timeout=30, max_retries=2)
        teacher = CachedTeacher(backend, TeacherCache(Path(scratch) / "cache.jsonl"))
        start = time.perf_counter()
        responses = teacher.complete(requests)
        elapsed = time.perf_counter() - start
        assert all(response.ok for response in responses), "some calls failed"
        first_run = served.value

        rerun_teacher = CachedTeacher(backend, TeacherCache(Path(scratch) / "cache.jsonl"))  # a new process's view
        rerun_teacher.complete(requests)
        rerun_calls = served.value - first_run
    stop.set()
    server_process.join(timeout=10)

    ideal = args.requests * args.latency / args.concurrency
    print(f"{args.requests} requests, {args.latency * 1000:.0f} ms latency, concurrency {args.concurrency}")
    print(f"measured time          : {elapsed:6.2f} s")
    print(f"ideal bound            : {ideal:6.2f} s  (requests x latency / concurrency)")
    print(f"ratio (goal <= 1.5)    : {elapsed / ideal:6.2f}")
    print(f"server calls on rerun  : {rerun_calls:6d}  (goal 0)")


if __name__ == "__main__":
    main()
