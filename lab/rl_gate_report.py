"""The RL gate's page (issue 36 item 9), written from the gate's run folders: verdicts, curves, diagnostics.

    python lab/rl_gate_report.py [page|record|restore] [--runs runs/rl-gate] [--page docs/rl.md]

Reads each arm's evaluation and training diagnostics (lab/rl_gate.sh makes them) and its start's evaluation, and
writes every number on the page from them. An arm is met when:
- held-in validation (world_val) rises over its SFT start: the paired 95 % CI of the difference excludes 0;
- its outcome reward rises: last fifth of the steps minus the first fifth, bootstrap CI over steps excluding 0;
- unseen-format held-out (more steps, new surface: a format no arm trains on) does not fall: the paired CI's
  upper end is not below 0.
Arms of one start share their question order, so their reward series are also compared with each other (a rise
that every arm shares step for step is the order of the questions, not learning).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `lab` as a package

from exgrpo.files import atomic_write_text  # noqa: E402
from exgrpo.rl.diagnostics import DIAGNOSTICS_FILE  # noqa: E402
from exgrpo.runner.layout import RunLayout  # noqa: E402
from exgrpo.runner.report import paired_difference  # noqa: E402
from exgrpo.runner.results import RunResults  # noqa: E402
from exgrpo.runner.speeds import mean_of  # noqa: E402
from lab.study.record import record_tree, restore_tree  # noqa: E402
from lab.study.rl_signal import changed_answers, outcome_series, reward_rise, shown  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs" / "rl_gate"
HELD_IN = ["world_val"]
UNSEEN = ["world_ood_steps", "world_ood_surface"]


@dataclass(frozen=True)
class Arm:
    name: str
    title: str
    start: str  # the run folder (under --runs) whose SFT model it starts from
    start_title: str


# A start's model does not outlive the machine of its sitting, and a retrained one differs (another CPU: without
# native bf16 the stages train and evaluate in fp32). So the arms run in a later sitting start from their start
# retrained there (`ei`, `skd`, evaluated there), and the first sitting's starts are kept as `<start>_first`: each arm
# is read against the start it actually trained from.
ARMS = [
    Arm("grpo", "outcome-only GRPO", "ei", "EI-SFT (retrained)"),
    Arm("exgrpo", "full ExGRPO", "ei_first", "EI-SFT (first sitting)"),
    Arm("skd_grpo", "SKD + GRPO", "skd", "SKD (retrained)"),
]
# Every start's folder and title: the accuracy table shows each, and the retraining section compares each pair.
STARTS = {"ei_first": "EI-SFT (first sitting)", "ei": "EI-SFT (retrained)", "skd_first": "SKD (first sitting)",
          "skd": "SKD (retrained)"}
RETRAINED = [("ei", "ei_first"), ("skd", "skd_first")]


def paired(arm: RunResults, start: RunResults, datasets: list[str], model: str = "exgrpo",
           baseline: str = "sft") -> dict[str, Any] | None:
    """`arm`'s model minus `start`'s baseline (percentage points; by default an arm's final model minus its SFT
    start) on the same questions, with a paired bootstrap CI and the number of questions."""
    return paired_difference(arm, model, baseline, datasets, baseline_run=start)


# What each start trained on: EI-SFT (and ExGRPO's probe turns) the questions with their probes, SKD (and the GRPO
# rollouts) the questions alone.
TRAINING_DATA = {"ei": ("EI data: questions and their probes", True), "skd": ("the questions alone (SKD, GRPO)", False)}
OVERLAP_FILE = "overlap.json"
DIALOGUE_START_FILE = "dialogue_start.json"  # written by lab/dialogue_start.py


def format_overlaps(runs: Path) -> dict[str, dict[str, Any]]:
    """How much of each evaluated split's question format each start's training data shows (the product's
    format-overlap check): what backs calling world_ood_steps and world_ood_surface unseen-format."""
    from exgrpo.evaluation.format_overlap import format_overlap, training_texts
    from exgrpo.runner.registry import registry_with_worlds, world_datasets_file
    from exgrpo.world.generate import FILLER_WORDS

    table: dict[str, dict[str, Any]] = {}
    for start, (label, probes) in TRAINING_DATA.items():
        data = RunLayout(runs / start).ei_data
        if not data.exists():
            continue
        texts = training_texts(data, probes)
        registry = registry_with_worlds([world_datasets_file(runs / start)])
        table[label] = {name: format_overlap(texts, [e.question for e in registry.load(name)], FILLER_WORDS).line()
                        for name in HELD_IN + UNSEEN}
    return table


def overlap_section(record: Path) -> list[str]:
    path = record / OVERLAP_FILE
    if not path.exists():
        return []
    table = json.loads(path.read_text())
    lines = ["## Which formats the training data shows", "",
             "Measured by `exgrpo overlap` (names, numbers and the world's filler words masked): the share of each "
             "split's sentences, and of its whole questions, found among the training texts. Unseen-format means "
             "whole questions near 0 %.", "", "| training data | " + " | ".join(HELD_IN + UNSEEN) + " |",
             "|---|" + "---|" * len(HELD_IN + UNSEEN)]
    lines += [f"| {label} | " + " | ".join(row.get(name, "n/a") for name in HELD_IN + UNSEEN) + " |"
              for label, row in table.items()]
    return [*lines, ""]


def train_setting(arm: str, key: str) -> Any:
    """`train.<key>` of the arm's gate config (None when the config or the key is absent)."""
    path = CONFIGS / f"{arm}.yaml"
    if not path.exists():
        return None
    config = yaml.safe_load(path.read_text())
    return (config.get("train") or {}).get(key)


def learning_rate(arm: str) -> float | None:
    return train_setting(arm, "learning_rate")


def step_matching(arms: list[Arm]) -> list[str]:
    """The sentence saying which arms stop at a set step (stop_at_step) rather than at their wall-time budget."""
    stops = {arm.title: train_setting(arm.name, "stop_at_step") for arm in arms}
    matched = [f"{title} (step {step})" for title, step in stops.items() if step is not None]
    if not matched:
        return []
    return [f"Matched on steps: {', '.join(matched)} stop at the step count full ExGRPO reached in its 2 hours, on "
            "the same learning-rate schedule (`stop_at_step`: the first steps of the longer run): the same number of "
            "updates and questions as full ExGRPO, with less compute per step (see the training minutes below).", ""]


def diagnostics(run_dir: Path) -> dict[str, Any] | None:
    path = RunLayout(run_dir).stage_dir("train") / DIAGNOSTICS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _pp(estimate: dict[str, float] | None) -> str:
    if estimate is None:
        return "n/a"
    return f"{estimate['value']:+.1f} [{estimate['low']:+.1f}, {estimate['high']:+.1f}]"


def _acc(evaluation: Any, datasets: list[str]) -> str:
    if evaluation is None:
        return "n/a"
    rows = [evaluation.accuracy(name) for name in datasets]
    if any(row is None for row in rows):
        return "n/a"
    return " / ".join(f"{row['value']:.1f}" for row in rows)


# Full ExGRPO at each learning rate tried, all else equal: the gate's rate is the one with the higher held-in
# validation accuracy (never the held-out splits); every arm then trains at it.
LR_CHECK = ["exgrpo", "exgrpo_lr3e-5"]


def learning_rate_check(runs: Path) -> tuple[str, list[str]]:
    """The chosen full-ExGRPO run folder and the page's lines on the choice (world_val per rate tried)."""
    rows, best = [], ("exgrpo", -1.0)
    for name in LR_CHECK:
        evaluation = RunResults.of(runs / name).evaluation("exgrpo")
        accuracy = evaluation.accuracy(HELD_IN[0]) if evaluation is not None else None
        document = diagnostics(runs / name)
        records = document["steps"] if document else []
        kl = [r["kl"] for r in records[-5:] if r.get("kl") is not None]
        rise = reward_rise(outcome_series(records))
        reward = "n/a" if rise is None else f"{rise['first']:.2f} -> {rise['last']:.2f}"
        rows.append(f"| {shown(learning_rate(name), 'g')} | {name} | "
                    f"{'not finished' if accuracy is None else format(accuracy['value'], '.1f')} | {len(records)} | "
                    f"{shown(float(np.mean(kl)) if kl else None, '.4f')} | {reward} |")
        if accuracy is not None and accuracy["value"] > best[1]:
            best = (name, accuracy["value"])
    lines = ["## Learning rate, chosen on validation", "",
             f"Full ExGRPO at each rate tried (all else as in `exgrpo.yaml`); the gate's arms use the rate with the "
             f"higher world_val accuracy: **{learning_rate(best[0]):g}** ({best[0]}). The held-out splits are not read "
             "to choose it. The held-in verdicts above are read on the split the rate was chosen on; the "
             "unseen-format held-out ones are not.", "",
             "| learning rate | run | world_val accuracy (%) | steps | KL (last 5 steps) | outcome reward: first -> last "
             "fifth |", "|---|---|---|---|---|---|", *rows, ""]
    return best[0], lines


def arm_summary(runs: Path, arm: Arm) -> dict[str, Any]:
    results, start = RunResults.of(runs / arm.name), RunResults.of(runs / arm.start)
    document = diagnostics(runs / arm.name)
    records = document["steps"] if document else []
    series = outcome_series(records)
    held_in, unseen = paired(results, start, HELD_IN), paired(results, start, UNSEEN)
    rise = reward_rise(series)
    verdicts = {
        "held-in validation rises": None if held_in is None else held_in["low"] > 0,
        "reward rises": None if rise is None else rise["low"] > 0,
        "unseen-format held-out does not fall": None if unseen is None else unseen["high"] >= 0,
    }
    finished = all(v is not None for v in verdicts.values())
    return {"arm": arm, "held_in": held_in, "unseen": unseen, "rise": rise, "series": series, "records": records,
            "verdicts": verdicts, "met": finished and all(verdicts.values()), "finished": finished,
            "changed": changed_answers(results, start, HELD_IN), "learning_rate": learning_rate(arm.name),
            "selection": document.get("question_selection") if document else None,
            "train_seconds": sum(r["step_seconds"] for r in records if r.get("step_seconds") is not None),
            "evaluation": results.evaluation("exgrpo"), "start_evaluation": start.evaluation("sft"),
            "stage_seconds": results.stage_seconds()}


def lockstep(summaries: list[dict[str, Any]]) -> list[str]:
    """Correlation of the per-step outcome rewards of every two arms: arms that share a start share a question
    order, and arms from different starts draw from overlapping questions (the pass-rate filter keeps each start's
    own), so a high correlation says the curves follow the questions drawn rather than learning."""
    lines = []
    for i, one in enumerate(summaries):
        for other in summaries[i + 1 :]:
            length = min(len(one["series"]), len(other["series"]))
            a, b = np.asarray(one["series"][:length]), np.asarray(other["series"][:length])
            if length < 5 or a.std() == 0 or b.std() == 0:  # a flat series has no correlation to speak of
                continue
            r = float(np.corrcoef(a, b)[0, 1])
            shared = (f"both from {one['arm'].start_title}, the same question order"
                      if one["arm"].start == other["arm"].start
                      else f"from {one['arm'].start_title} and {other['arm'].start_title}: each start's own questions")
            lines.append(f"- {one['arm'].title} and {other['arm'].title} ({shared}): correlation of their per-step "
                         f"outcome rewards over {length} steps r = {r:.2f}"
                         f"{' (moving in lockstep: the rise may be question order)' if r > 0.8 else ''}")
    return lines


def why_not(summary: dict[str, Any]) -> str:
    """What the diagnostics say about an arm that did not meet its gate."""
    records = summary["records"]
    if not records:
        return "no training steps recorded"
    facts = [f"{len(records)} steps in {summary['train_seconds'] / 60:.0f} min"]
    for field, label, form in (("zero_spread", "groups without reward spread", ".0%"),
                               ("cut_turns", "turns cut by the budget", ".0%"), ("kl", "KL to the start", ".4f"),
                               ("entropy", "entropy", ".3f")):
        value = mean_of(records, field)
        if value is not None:
            facts.append(f"{label} {format(value, form)} on average")
    return "; ".join(facts)


def plot(summaries: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = [("outcome", "outcome reward (5-step mean)"), ("zero_spread", "groups without spread"),
              ("cut_turns", "turns cut by the budget"), ("kl", "KL to the start")]
    figure, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3.2))
    for axis, (field, title) in zip(axes, fields, strict=True):
        for summary in summaries:
            if field == "outcome":
                values = np.convolve(summary["series"], np.ones(5) / 5, mode="valid") if len(summary["series"]) >= 5 \
                    else np.asarray(summary["series"])
                axis.plot(np.arange(len(values)) + 1, values, label=summary["arm"].title)
            else:
                points = [(r["step"], r[field]) for r in summary["records"] if r.get(field) is not None]
                if points:
                    axis.plot(*zip(*points, strict=True), label=summary["arm"].title)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compute_of(run: Path) -> str | None:
    """How a run's SFT stage computed: 'bf16' on a CPU with native bf16, else 'fp32' (None without its manifest)."""
    path = RunLayout(run).manifest("sft")
    if not path.exists():
        return None
    machine = json.loads(path.read_text()).get("machine") or {}
    return None if "native_bf16" not in machine else "bf16" if machine["native_bf16"] else "fp32"


def retraining_section(runs: Path) -> list[str]:
    """Each start retrained from the same recipe in another sitting against its first training, on validation: how
    far two trainings of one recipe land apart, the yardstick beside any difference between arms of different
    starts."""
    lines = []
    for again, first in RETRAINED:
        estimate = paired(RunResults.of(runs / again), RunResults.of(runs / first), HELD_IN, model="sft")
        changed = changed_answers(RunResults.of(runs / again), RunResults.of(runs / first), HELD_IN, model="sft")
        if estimate is None or changed is None:
            continue
        lines.append(f"- {STARTS[again]} ({compute_of(runs / again)}) minus {STARTS[first]} "
                     f"({compute_of(runs / first)}), same recipe and data: {_pp(estimate)} pp on world_val; "
                     f"{changed['fixed']} answers wrong -> right and {changed['broken']} right -> wrong of "
                     f"{changed['questions']}.")
    if not lines:
        return []
    return ["## The same start, trained twice", "",
            "A start's model does not outlive its sitting's machine: the arms run in a later sitting start from the "
            "same recipe retrained there, and each arm is read against the start it trained from. How far two "
            "trainings of one recipe land apart (a difference between arms of different starts is no larger a "
            "finding than this):", "", *lines, ""]


def dialogue_section(runs: Path, record: Path | None = None) -> list[str]:
    """Issue 36 item 6: EI-SFT with probe dialogues in its data (the gate's start) against without, on validation;
    against the EI-SFT trained on the same kind of machine (the same precision) when there is one."""
    without = runs / "ei_nodialogue"
    start = next((name for name in ("ei", "ei_first") if compute_of(runs / name) == compute_of(without)), "ei_first")
    estimate = paired(RunResults.of(runs / start), RunResults.of(without), HELD_IN, model="sft")
    if estimate is None:
        return ["## Probe dialogues in the SFT data", "", "EI-SFT without probe dialogues (ei_nodialogue): not "
                "finished.", ""]
    keep = "keeps them" if estimate["low"] > 0 else "gains nothing resolved from them" if estimate["high"] >= 0 \
        else "loses with them"
    return ["## Probe dialogues in the SFT data", "",
            f"EI-SFT with one probe dialogue per question (the format the RL rolls out) minus EI-SFT without, on "
            f"held-in validation, same questions: {_pp(estimate)} pp ({estimate['questions']} questions): the warm-up "
            f"{keep} on validation. (Both one pass over their own data; with dialogues: {STARTS[start]}, "
            f"{compute_of(runs / start)}; without: {compute_of(without)}.)", "", *dialogue_format_lines(record)]


def dialogue_format_lines(record: Path | None) -> list[str]:
    """The other side (lab/dialogue_start.py): the same two models on the format the RL rolls out."""
    path = record / DIALOGUE_START_FILE if record is not None else None
    if path is None or not path.exists():
        return []
    measured = json.loads(path.read_text())
    rates = {name: {form: 100 * float(np.mean(values)) for form, values in forms.items()}
             for name, forms in measured["scores"].items()}
    on_format, single = (measured["with_minus_without"][form] for form in ("dialogue", "single_turn"))
    helps = on_format["low"] > 0
    return [f"On the format the RL rolls out (scenario A: {measured['probes']} of the question's probes, each answered "
            f"by the student, then the question; greedy, {measured['turn_tokens']}-token turns, "
            f"{measured['answer_tokens']}-token answers; the {measured['questions']} RL questions, which both models "
            f"trained on), the final answer is right {rates['ei']['dialogue']:.1f} % of the time with dialogues in the "
            f"SFT data and {rates['ei_nodialogue']['dialogue']:.1f} % without: {_pp(on_format)} pp; the same "
            f"questions single-turn: {rates['ei']['single_turn']:.1f} against {rates['ei_nodialogue']['single_turn']:.1f} "
            f"% ({_pp(single)} pp).",
            "",
            "So the recipes that feed RL keep the dialogues (the product's default, `dialogues_per_question: 1`): "
            "ExGRPO's rollouts are dialogues of this kind (k or k' probes, then the question), and a start without them fails "
            f"them {abs(on_format['value']):.0f} points more often, for the single-turn points above. A run that stops "
            "after SFT can set `dialogues_per_question: 0`. RL from a start without dialogues was not run." if helps else
            "So the dialogues are not needed on the RL format either: the recipes can drop them.", ""]


def page(runs: Path, summaries: list[dict[str, Any]], image: str, record: Path | None = None,
         rate_lines: list[str] | None = None) -> str:
    lines = ["# The RL gate: does ExGRPO train on the real student?", "",
             "Written by `python lab/rl_gate_report.py` from the runs of `bash lab/rl_gate.sh` (configs in "
             "`lab/configs/rl_gate/`): the synthetic world with its exact teacher, SmolLM2-135M-Instruct on 2 CPU "
             "cores, each RL arm at most 2 hours of training from its SFT start. Every number below is read from "
             f"`{runs}` by code.", "",
             "An arm meets the gate when held-in validation (world_val) rises over its start (paired 95 % CI above "
             "0), its outcome reward rises (last fifth of the steps minus the first, CI above 0), and the unseen-format "
             "held-out splits (world_ood_steps, world_ood_surface: a question format no arm trained on) do not fall "
             "(the paired CI's upper end not below 0). One learning rate for every arm, chosen on validation (see "
             "below), never on the held-out splits.", "", *step_matching([s["arm"] for s in summaries]),
             "| arm | start | learning rate | gate | held-in validation: arm - start (pp) | validation answers "
             "changed: wrong -> right / right -> wrong | outcome reward: first -> last fifth | "
             "unseen-format held-out: arm - start (pp) |", "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        verdict = "**met**" if s["met"] else ("not finished" if not s["finished"] else "**not met**")
        rise = s["rise"]
        rise_text = "n/a" if rise is None else (f"{rise['first']:.2f} -> {rise['last']:.2f} ({_pp(rise)})")
        changed = s["changed"]
        changed_text = "n/a" if changed is None else f"{changed['fixed']} / {changed['broken']} of {changed['questions']}"
        lines.append(f"| {s['arm'].title} | {s['arm'].start_title} | {shown(s['learning_rate'], 'g')} | {verdict} | "
                     f"{_pp(s['held_in'])} | {changed_text} | {rise_text} | {_pp(s['unseen'])} |")
    lines += ["", "Accuracy (%), world_val / world_ood_steps / world_ood_surface, and each split's guessing floor:", "",
              "| model | accuracy | questions | computed in |", "|---|---|---|---|"]
    datasets = HELD_IN + UNSEEN
    starts = {name: RunResults.of(runs / name).evaluation("sft") for name in STARTS}
    for name, evaluation in starts.items():
        if evaluation is not None:
            counts = [row["num_examples"] for row in evaluation.report["datasets"] if row["name"] in datasets]
            lines.append(f"| start: {STARTS[name]} | {_acc(evaluation, datasets)} | {' / '.join(map(str, counts))} | "
                         f"{compute_of(runs / name) or 'n/a'} |")
    for s in summaries:
        lines.append(f"| {s['arm'].title} | {_acc(s['evaluation'], datasets)} | | "
                     f"{compute_of(runs / s['arm'].start) or 'n/a'} (its start's machine) |")
    floor_source = next((e for e in starts.values() if e is not None), None)
    if floor_source is not None:
        floors = [floor_source.floors(name) for name in datasets]
        if all(floors):
            lines.append("| *guessing floor: random / majority* | "
                         + " / ".join(f"{f['random']:.1f}:{f['majority']:.1f}" for f in floors) + " | | |")
    lines += ["", f"![curves]({image})", "", "## Diagnostics of each run", "",
              "| arm | steps | training min | questions (pass-rate filter) | groups without spread | cut turns | "
              "KL (last 5 steps) | entropy first -> last | DSU fired | rollout / update tok/s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        records = s["records"]
        selection = s["selection"]
        kept = (f"{selection.get('kept')} of {selection.get('questions')}" if isinstance(selection, dict) else "all")
        entropy = [r["entropy"] for r in records if r.get("entropy") is not None]
        lines.append(
            f"| {s['arm'].title} | {len(records)} | {s['train_seconds'] / 60:.0f} | {kept} | "
            f"{shown(mean_of(records, 'zero_spread'), '.0%')} | {shown(mean_of(records, 'cut_turns'), '.1%')} | "
            f"{shown(mean_of(records[-5:], 'kl'), '.4f')} | "
            f"{(f'{entropy[0]:.3f} -> {entropy[-1]:.3f}' if entropy else 'n/a')} | "
            f"{shown(mean_of(records, 'dsu_fired'), '.0%')} | {shown(mean_of(records, 'rollout_tokens_per_s'), '.0f')} / "
            f"{shown(mean_of(records, 'update_tokens_per_s'), '.0f')} |")
    lines += ["", *lockstep(summaries), ""]
    not_met = [s for s in summaries if s["finished"] and not s["met"]]
    if not_met:
        lines += ["## Where a gate was not met", ""]
        lines += [f"- {s['arm'].title}: " + ", ".join(k for k, v in s["verdicts"].items() if not v)
                  + f" not met; {why_not(s)}." for s in not_met]
        lines.append("")
    lines += rate_lines or []
    lines += overlap_section(record) if record is not None else []
    lines += retraining_section(runs)
    lines += dialogue_section(runs, record)
    stages = ("world", "probe", "sft", "train", "eval")
    lines += ["## Seconds per stage: wall / CPU", "",
              "CPU seconds count both cores (about 2x wall when the stage had the machine to itself); each run's CPU "
              "and precision are in its manifests.", "",
              "| run | " + " | ".join(stages) + " |", "|---|---|---|---|---|---|"]
    for name in sorted({s["arm"].start for s in summaries} | {s["arm"].name for s in summaries}
                       | ({"ei_nodialogue"} if (runs / "ei_nodialogue").exists() else set())):
        layout = RunLayout(runs / name)
        cells = []
        for stage in stages:
            manifest = json.loads(layout.manifest(stage).read_text()) if layout.manifest(stage).exists() else {}
            cells.append("n/a" if not manifest else "skipped" if "skipped" in manifest.get("outputs", {}) else
                         f"{shown(manifest.get('seconds'), '.0f')} / {shown(manifest.get('cpu_seconds'), '.0f')}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/rl-gate"))
    parser.add_argument("--page", type=Path, default=Path("docs/rl.md"))
    parser.add_argument("--record", type=Path, default=Path("lab/records/rl-gate"),
                        help="the gate's compact record (committed): what the page reads, one gzip'd JSON per run")
    parser.add_argument("action", nargs="?", default="page", choices=["page", "record", "restore"],
                        help="page: write the page (after restoring what the runs folder lacks from the record); "
                        "record: keep the runs' finished results in the record; restore: only that restoring")
    args = parser.parse_args()
    if args.action == "record":
        print(f"record: {record_tree(args.runs, args.record, folders=('*',))} files changed in {args.record}")
        if overlaps := format_overlaps(args.runs):  # a start whose data this sitting lacks keeps its entry
            path = args.record / OVERLAP_FILE
            kept = json.loads(path.read_text()) if path.exists() else {}
            atomic_write_text(path, json.dumps({**kept, **overlaps}, indent=1) + "\n")
        return
    print(f"restore: {restore_tree(args.record, args.runs) if args.record.exists() else 0} files written to {args.runs}")
    if args.action == "restore":
        return
    chosen, rate_lines = learning_rate_check(args.runs)
    arms = [dataclasses.replace(arm, name=chosen) if arm.name == "exgrpo" else arm for arm in ARMS]
    summaries = [arm_summary(args.runs, arm) for arm in arms]
    image = args.page.with_suffix(".png")
    plot(summaries, image)
    atomic_write_text(args.page, page(args.runs, summaries, image.name, args.record, rate_lines))
    print(f"wrote {args.page} and {image}")


if __name__ == "__main__":
    main()
