"""The scale-model study: EI + ExGRPO against the baselines on the synthetic world (lab/configs/*.yaml; the
smollm2 study writes docs/results.md, the first one with tiny students docs/results-tiny.md).

    python lab/scale_model.py [--spec SPEC] run --seed 0 [--seed 1 ...] [--method skd ...]
    python lab/scale_model.py [--spec SPEC] base
    python lab/scale_model.py [--spec SPEC] tune [--method skd ...]
    python lab/scale_model.py [--spec SPEC] project
    python lab/scale_model.py [--spec SPEC] report [--page PAGE] [--readme README.md]

Every command first restores the spec's record (lab/study/record.py: the small files of the finished work, committed
under record_root) into the run root where files are missing, so a study goes on, and its page is written, on a
machine whose run folders are gone; `record` copies the finished work into the record (run and tune do it after each
run). `base` evaluates the base student first, on its own, once for the study (a sitting that starts with it needs
no model made again, and the result is kept on any later machine). `tune` chooses every method's learning rates on
the validation split (the spec's `tuning` section); `project` prints the whole study's projected hours once the
first method's first seed has finished (until then, its finished tuning candidates; their stages give the rates); `run` trains and evaluates every method of
the spec (default lab/configs/study.yaml) for the given seeds (resumable: a rerun skips finished stages); `report`
reads whatever runs have finished and writes the results page (the spec's report.page) and its plots.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# The lab is not installed: run as a script, it imports `lab` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.study.spec import Study, run_seed  # noqa: E402

SPEC = Path(__file__).resolve().parent / "configs" / "study.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=SPEC, help="the study spec (default: lab/configs/study.yaml)")
    parser.add_argument("--run-root", type=Path, default=None, help="where the runs go (default: the spec's)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train and evaluate every method for the given seeds")
    run.add_argument("--seed", type=int, action="append", help="a seed of the spec (repeatable; default: all)")
    run.add_argument("--method", action="append", help="only these methods (repeatable; default: all, in order)")
    commands.add_parser("base", help="evaluate the base student first, on its own (once for the whole study)")
    commands.add_parser("project", help="the whole study's projected hours, timed on the first finished run")
    commands.add_parser("record", help="copy the finished work's small files into the spec's record_root")
    tune = commands.add_parser("tune", help="choose each method's learning rates on validation (spec: tuning)")
    tune.add_argument("--method", action="append", help="only these methods (repeatable; default: all, in order)")
    report = commands.add_parser("report", help="write the results page from the finished runs")
    report.add_argument("--page", type=Path, default=None,
                        help="the page to write (default: the spec's report.page, else docs/results.md)")
    report.add_argument("--readme", type=Path, default=None,
                        help="rewrite this file's study summary (between the summary markers) from the page's verdicts; "
                             "only when asked, so that a page written elsewhere (a partial look) leaves the README alone")
    arguments = parser.parse_args()

    study = Study(arguments.spec, arguments.run_root)
    from lab.study.record import record, restore

    restored = restore(study)
    if restored:
        print(f"restored {restored} files of the record {study.record_root} into {study.run_root}", flush=True)
    if arguments.command == "record":
        print(f"{record(study)} files recorded in {study.record_root}")
        return 0
    if arguments.command in ("run", "tune", "base"):
        from exgrpo.errors import ConfigError

        try:
            study.check_machine()
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    log = lambda line: print(time.strftime("%H:%M:%S"), line, flush=True)  # noqa: E731
    if arguments.command == "base":
        from lab.study.spec import evaluate_base_first

        if not evaluate_base_first(study, study.run_config(study.first, study.seeds[0]), log):
            print("the base student's evaluation is kept already (or no run evaluates it)")
        return 0
    if arguments.command == "run":
        for seed in arguments.seed or study.seeds:
            started = time.time()
            run_seed(study, seed, arguments.method, log=log)
            print(f"seed {seed} done in {time.time() - started:.0f} s", flush=True)
        return 0
    if arguments.command == "tune":
        from lab.study.tuning import tune_method, tuned_methods

        for method in arguments.method or tuned_methods(study):
            tune_method(study, method, log=log)
        return 0
    if arguments.command == "project":
        from lab.study.projection import projection_lines

        print("\n".join(projection_lines(study)))
        from lab.study.goals import pilot_power_lines

        print("\n".join(pilot_power_lines(study)))
        return 0
    from exgrpo.files import replace_marked_section
    from lab.study.page import SUMMARY_BEGIN, SUMMARY_END, write_results_page
    from lab.study.spec import make_models

    # No `record` first: run, tune and base record their work as they finish it, and what `report` makes again for
    # the page (the first run's world and probe data) is no work of the study's; recorded, it would change the record
    # at every regeneration.
    # The page reads the world's questions, and the projection counts the first run's probe data (seconds, with
    # the exact teacher; a study's record holds neither).
    make_models(study.run_config(study.first, study.seeds[0]), "probe")
    arguments.page = arguments.page or Path(study.report.get("page", "docs/results.md"))
    summary = write_results_page(study, arguments.page,
                                 " ".join(["python", "lab/scale_model.py", *sys.argv[1:]]))
    print(f"wrote {arguments.page}")
    if arguments.readme and arguments.readme.exists() and SUMMARY_BEGIN in arguments.readme.read_text():
        replace_marked_section(arguments.readme, SUMMARY_BEGIN, SUMMARY_END, "\n".join(summary))
        print(f"wrote the study summary of {arguments.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
