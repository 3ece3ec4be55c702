#!/usr/bin/env bash
# The whole smollm2 study (issue 15), resumable: rerun it after an interruption and it goes on where it stopped
# (finished stages and predictions are kept). Tuning on validation, then every seed, then the results page.
#
#   nohup bash benchmarks/study_smollm2.sh > runs/study-smollm2/logs/study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=configs/study/smollm2.yaml
python benchmarks/scale_model.py --spec "$SPEC" tune
python benchmarks/scale_model.py --spec "$SPEC" run
python benchmarks/scale_model.py --spec "$SPEC" report --page docs/results.md
