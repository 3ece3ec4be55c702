"""Write a gpu-check result into docs/gpu.md (its results section), so that no number there is typed by hand.

    python benchmarks/gpu_doc.py runs/gpu-check/gpu_check.json [--doc docs/gpu.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from exgrpo.gpu_check import write_results_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="the JSON `exgrpo gpu-check` wrote")
    parser.add_argument("--doc", type=Path, default=Path("docs/gpu.md"))
    arguments = parser.parse_args()
    result = json.loads(arguments.result.read_text())
    if not result["device"] or "no CUDA" in result["device"]:
        raise SystemExit(f"{arguments.result} was measured without CUDA ({result['device']}): not a GPU result")
    write_results_section(arguments.doc, result)
    print(f"wrote the results of {result['device']} into {arguments.doc}")


if __name__ == "__main__":
    main()
