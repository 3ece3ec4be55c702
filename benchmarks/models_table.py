"""The base table: a model's accuracy on all 12 benchmarks, written as docs/models.md.

    python benchmarks/models_table.py --model smollm2-135m-instruct --limit 200 --page docs/models.md

Runs `exgrpo eval` (greedy, resumable: predictions go to --run-dir, so a killed run continues where it
stopped) on held-in and held-out, then writes the page from the report: the table with 95 % CIs and each
dataset's guessing floors, the command, the machine, and the wall time summed over every invocation that
contributed predictions. Every number on the page comes from this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from exgrpo.config import EvalConfig
from exgrpo.evaluation.evaluate import evaluate
from exgrpo.evaluation.report import markdown_table
from exgrpo.files import atomic_write_json, atomic_write_text
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import cpu_has_native_bf16, torch_dtype


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Timing:
    """Wall seconds of every invocation in run_dir/timing.json, saved every minute while evaluating, so the
    time of a killed invocation still counts once its predictions are reused."""

    def __init__(self, path: Path) -> None:
        self.path, self.started, self.saved = path, time.perf_counter(), 0.0
        self.runs = json.loads(path.read_text()) if path.exists() else []
        self.runs.append({"seconds": 0.0, "machine": {
            "cpu": "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name(),
            "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16()}})

    def save(self) -> None:
        self.saved = time.perf_counter()
        self.runs[-1]["seconds"] = round(self.saved - self.started, 1)
        atomic_write_json(self.path, self.runs)

    def progress(self, name: str, done: int, total: int) -> None:
        print(f"\r{name}: {done}/{total}   ", end="", file=sys.stderr, flush=True)
        if time.perf_counter() - self.saved > 60:
            self.save()


def write_page(page: Path, report: dict, timing: list[dict], command: str, dtype: str) -> None:
    seconds = sum(run["seconds"] for run in timing)
    tokens = sum(row["generated_tokens"] for row in report["datasets"])
    machine = timing[-1]["machine"]
    table = markdown_table(report).split("\n", 2)[2]  # without the generic title line
    text = f"""# Base models on the 12 benchmarks

Written by `benchmarks/models_table.py`; rerun it to refresh. Greedy single pass, the eval prompt of each
benchmark (`exgrpo eval`), up to {report['config']['max_new_tokens']} new tokens, answers checked by the one
answer checker (math-verify for math). "floor" is what guessing scores on the same questions: a random
valid answer / always the most common answer (exgrpo.evaluation.floors).

## `{report['model']}`

{table}
- Command: `{command}`
- Wall time: {seconds / 60:.1f} min over {len(timing)} invocation(s); {tokens} generated tokens
  ({tokens / max(seconds, 1e-9):.1f} tok/s including prefill and answer checking).
- Machine: {machine['cpu']}, {machine['threads']} torch threads, native bf16: {machine['native_bf16']};
  weights in {dtype}.
"""
    atomic_write_text(page, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--limit", type=int, default=200, help="the first N questions of each benchmark's eval split")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--run-dir", type=Path, help="predictions and reports (default runs/models/<model>)")
    parser.add_argument("--page", type=Path, default=Path("docs/models.md"))
    args = parser.parse_args()
    run_dir = args.run_dir or Path("runs/models") / Path(args.model).name.replace(":", "_")

    config = EvalConfig(model=args.model, datasets=["held_in", "held_out"], limit=args.limit,
                        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, dtype=args.dtype,
                        output_dir=run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    timing = Timing(run_dir / "timing.json")
    report = evaluate(config, on_progress=timing.progress)
    print(file=sys.stderr)
    timing.save()
    dtype = str(torch_dtype(args.dtype, resolve_model(args.model))).removeprefix("torch.")
    command = "python benchmarks/models_table.py " + shlex.join(sys.argv[1:])
    write_page(args.page, report, timing.runs, command, dtype)
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
