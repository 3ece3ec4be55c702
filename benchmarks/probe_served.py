"""`exgrpo probe` with a served local teacher: `transformers serve` running SmolLM2-135M-Instruct on 127.0.0.1.

    python benchmarks/probe_served.py [--limit 20] [--output-dir runs/probe-smollm2-served] [--page PATH]

A 135M model is a weak teacher; the point is how the stage accounts for real, messy output (rationales that
are wrong or cut off, invalid JSON, repairs). Prints the statistics and, with --page, writes them into a
docs page with the run's settings and timing. Resumable: a rerun answers from the run's teacher cache.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from exgrpo.config import ProbeConfig
from exgrpo.files import atomic_write_text
from exgrpo.inversion.output import markdown_report
from exgrpo.inversion.pipeline import run_probe
from exgrpo.models.named import resolve_model
from exgrpo.teachers.transformers_serve import TransformersServe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20, help="strategyqa training questions")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/probe-smollm2-served"))
    parser.add_argument("--page", type=Path, help="write the statistics page here")
    args = parser.parse_args()
    model = resolve_model("smollm2-135m-instruct")
    # Four rules of different answer types and one repair round keep the run near 15 minutes on 2 cores.
    settings = {"datasets": ["strategyqa"], "limit": args.limit, "rules": ["R1", "R3", "R7", "R9"], "max_tokens": 128,
                "probe_max_tokens": 128, "max_tokens_cap": 256, "json_retries": 1, "output_dir": args.output_dir}
    started = time.time()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with (args.output_dir / "serve.log").open("w") as log, TransformersServe(model, log=log) as server:
        teacher = {"kind": "openai", "model": server.model, "base_url": server.base_url, "api_key_env": None,
                   "concurrency": 2, "timeout": 600, "max_retries": 2}
        stats = run_probe(ProbeConfig(teacher=teacher, **settings))
    seconds = time.time() - started
    report = markdown_report(stats)
    print(report)
    if args.page:
        shown = ", ".join(f"{k}: {v}" for k, v in settings.items() if k != "output_dir")
        teacher_calls = stats["teachers"]["teacher"]
        header = (f"> Written by `make probe-served-doc` (benchmarks/probe_served.py) in {seconds:.0f} s on this machine's "
                  f"CPU ({teacher_calls['calls']} calls paid, {teacher_calls['cached']} answers from the run's cache). Teacher and probe teacher: SmolLM2-135M-Instruct served by `transformers serve` on 127.0.0.1 "
                  "(concurrency 2, greedy), reached through the OpenAI client like any API. Settings: "
                  f"{shown}. A 135M model is a weak teacher: this page shows how the stage accounts "
                  "for real, messy output, not a usable EI dataset.\n\n")
        atomic_write_text(args.page, header + report)


if __name__ == "__main__":
    main()
