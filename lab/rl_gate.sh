#!/usr/bin/env bash
# The RL gate (issue 36 item 9): EI-SFT and SKD starts, then outcome-only GRPO, full ExGRPO and SKD + GRPO, each at
# most 2 hours of training, each evaluated on held-in validation and the unseen-format held-out splits.
# Every step is an `exgrpo run` (resumable stage by stage; training from its last checkpoint): rerun this script at
# the start of each sitting until it prints "gate: all runs done". Runs one after another (2 CPU cores). A sitting
# on a fresh machine first restores what the committed record holds: `python lab/rl_gate_report.py restore`. The
# page: `python lab/rl_gate_report.py` (docs/rl.md).
# The default runs stop at the learning-rate check (full ExGRPO at 1e-5 and 3e-5): the page names the rate with
# the higher world_val; set it as train.learning_rate in grpo.yaml and skd_grpo.yaml (a commit says so), then
#   bash lab/rl_gate.sh grpo skd_grpo ei_nodialogue
#   bash lab/rl_gate.sh [RUN ...]        (default: ei skd exgrpo exgrpo_lr3e-5; ei_nodialogue is item 6:
#   EI-SFT without probe dialogues, read on validation against ei)
set -euo pipefail
cd "$(dirname "$0")/.."
export EXGRPO_DATA_DIR="${EXGRPO_DATA_DIR:-../shared/datasets}"
EXGRPO="${EXGRPO:-.venv/bin/exgrpo}"
mkdir -p runs/rl-gate
for arm in "${@:-ei skd exgrpo exgrpo_lr3e-5}"; do
  for name in $arm; do
    echo "gate: $name started $(date -u +%FT%TZ)" | tee -a runs/rl-gate/progress.log
    "$EXGRPO" run "lab/configs/rl_gate/$name.yaml" > "runs/rl-gate/$name.log" 2>&1
    echo "gate: $name done $(date -u +%FT%TZ)" | tee -a runs/rl-gate/progress.log
    "${PYTHON:-.venv/bin/python}" lab/rl_gate_report.py record   # into lab/records/rl-gate (commit it)
  done
done
echo "gate: all runs done" | tee -a runs/rl-gate/progress.log
