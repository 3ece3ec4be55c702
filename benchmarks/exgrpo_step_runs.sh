#!/usr/bin/env bash
# Run benchmarks/exgrpo_step.py N times (its rollout ratio varies from run to run on a shared 2-core machine)
# and write OUT: the first run's output, every run's ratios, and their medians.
#   bash benchmarks/exgrpo_step_runs.sh OUT N [exgrpo_step.py options]
# With LOGS="a.txt b.txt ..." it summarises those earlier outputs instead of running.
set -euo pipefail
out=$1; runs=$2; shift 2
python=${PYTHON:-.venv/bin/python}
if [ -z "${LOGS:-}" ]; then
  scratch=$(mktemp -d)
  LOGS=""
  for i in $(seq 1 "$runs"); do
    "$python" benchmarks/exgrpo_step.py "$@" > "$scratch/run$i.txt" 2>&1
    LOGS="$LOGS $scratch/run$i.txt"
  done
fi
# shellcheck disable=SC2086
set -- $LOGS
{
  echo "# python benchmarks/exgrpo_step.py ${BENCH_ARGS:-}  ($(date +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; Trainer log lines left out)"
  grep -v "train_runtime\|^{'\|Loading\|Building labels\|it/s\]\|s/it\]\|warn\|^\s*$" "$1"
  echo
  echo "# the same benchmark, $# runs of this code:"
  "$python" - "$@" <<'PY'
import re, statistics, sys
def ratio(text, pattern):
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None
rows = []
for path in sys.argv[1:]:
    text = open(path).read()
    rows.append((ratio(text, r"multi-turn rollout ratio \(goal >= 0.85\): ([0-9.]+)"),
                 ratio(text, r"like-for-like ratio ([0-9.]+)"),
                 ratio(text, r"step ratio, aux off, same sequence length \(goal <= 1.15\): ([0-9.]+)"),
                 ratio(text, r"full step per generated token ratio \(goal <= 3\): ([0-9.]+)"),
                 ratio(text, r"update vs SFT tokens/s ratio \(goal >= 0.65\): ([0-9.]+)")))
for rollout, like, step, full, update in rows:
    print(f"run: rollout {rollout:.2f}" + (f", like-for-like {like:.2f}" if like else "") + f", step {step:.2f}, full {full:.2f}"
          + (f", update vs SFT {update:.2f}" if update else ""))
rollouts, steps, fulls = [r[0] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
updates = [r[4] for r in rows if r[4] is not None]
print(f"median rollout ratio {statistics.median(rollouts):.2f} (goal >= 0.85; range {min(rollouts):.2f}-{max(rollouts):.2f}); "
      f"median step ratio {statistics.median(steps):.2f} (goal <= 1.15; range {min(steps):.2f}-{max(steps):.2f}); "
      f"median full step per generated token ratio {statistics.median(fulls):.2f} (goal <= 3; range {min(fulls):.2f}-{max(fulls):.2f})"
      + (f"; median update vs SFT tokens/s ratio {statistics.median(updates):.2f} (goal >= 0.65; range "
         f"{min(updates):.2f}-{max(updates):.2f})" if updates else ""))
PY
} > "$out"
