#!/usr/bin/env bash
# The whole smollm2 study (issue 15), resumable: rerun it after an interruption and it goes on where it stopped
# (finished stages and predictions are kept; a killed training resumes from its last checkpoint). Tuning on
# validation (each method's tuning-seed run right after its tuning), then every seed, then the results page. One process per method and seed: a long process that
# trains one model after another holds on to memory it no longer needs.
#
#   nohup bash lab/study_smollm2.sh > runs/study-smollm2/logs/study.log 2>&1 &
#   SPEC=lab/configs/smollm2_fair.yaml PILOT_ONLY=1 nohup bash lab/study_smollm2.sh > runs/study-smollm2-fair/study.log 2>&1 &
#
# PILOT_ONLY=1 stops after the first method's tuning and its tuning-seed run (the pilot), with the projection of the
# whole study written to $RECORD/projection.md: the spec's cuts are decided on it before the rest runs. Without it,
# the projection is written again after every tuned method's tuning-seed run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then source .venv/bin/activate; fi  # the repo's venv
SPEC=${SPEC:-lab/configs/smollm2.yaml}
# The record (lab/study/record.py: what the page needs of the finished work; the run folders do not outlive the
# machine) is committed, alone, when a step finishes (the base student's evaluation, a method's tuning, a run) and
# when the runner stops: each commit holds finished work, and a sitting that ends without warning loses at most the
# step in progress (rerun this script: finished steps are skipped). A commit that fails (another git command at
# that moment) is taken up by the next. Where the study stands is one file, overwritten at each step and committed
# with the record's next change: $RECORD/progress.md.
RECORD=$(python -c "import sys; from lab.study.spec import Study; print(Study(sys.argv[1]).record_root)" "$SPEC")
progress() {
  mkdir -p "$RECORD"
  { printf '# Progress of the study %s\n\n%s: %s\n\n' "$SPEC" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$1"
    python -c "import sys; from lab.study.spec import Study; from lab.study.standing import progress_lines
print(*(progress_lines(Study(sys.argv[1])) or ['Every run evaluated.']), sep='\n')" "$SPEC" || true
  } > "$RECORD/progress.md.partial" && mv "$RECORD/progress.md.partial" "$RECORD/progress.md"
}
commit_record() {  # only where finished work changed the record: progress.md alone makes no commit
  [ -d "$RECORD" ] && git add -A -- "$RECORD" || return 0
  if git diff --cached --quiet -- "$RECORD" ":(exclude)$RECORD/progress.md"; then return 0; fi
  git commit -q -m "Study record: $1" -- "$RECORD" >/dev/null 2>&1 || true
}
trap 'progress "the runner stopped"; commit_record "the runner stopped at $(date -u +%H:%M) UTC"' EXIT
study() { python lab/scale_model.py --spec "$SPEC" "$@"; }
step() {  # one step of the study: where it stands before, the record committed after
  progress "running \`$*\`"
  study "$@"
  progress "finished \`$*\`"
  commit_record "$* finished"
}
tuned() { python -c "import sys; from lab.study.spec import Study; from lab.study.tuning import tuned_methods
print(*tuned_methods(Study(sys.argv[1])))" "$SPEC"; }
runs() { python -c "import sys; from lab.study.spec import Study
print(*(f'{seed}:{method}' for seed, method in Study(sys.argv[1]).run_order()))" "$SPEC"; }
# The base student's evaluation first (once for the study, kept in the record): it needs no trained model, and a
# sitting on a machine that cannot run the study stops here, at the machine check.
step base
TUNING_SEED=$(python -c "import sys; from lab.study.spec import Study; print(Study(sys.argv[1]).tuning.get('seed', ''))" "$SPEC")
for method in $(tuned); do
  step tune --method "$method"
  # The tuning seed's run of a method is its chosen candidates' run: evaluated now, while their models are on this
  # machine (a later sitting may be on another, where the record alone would have them trained again).
  if [ -n "$TUNING_SEED" ]; then step run --seed "$TUNING_SEED" --method "$method"; fi
  # The projection again after each tuning-seed run: its power table measures each goal once both of its arms have
  # a finished run (the pilot has only the first method's, so the primary goal's MDD comes with its other arm's).
  study project > "$RECORD/projection.md.partial" && mv "$RECORD/projection.md.partial" "$RECORD/projection.md"
  commit_record "the projection after $method's tuning-seed run"
  if [ -n "${PILOT_ONLY:-}" ]; then exit 0; fi
done
# Every seed's runs, those that fit in a sitting first (Study.run_order: a lost machine takes the run in progress).
for run in $(runs); do step run --seed "${run%%:*}" --method "${run#*:}"; done
study report --page docs/results.md --readme README.md
