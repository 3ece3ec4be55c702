"""What every logging step of `exgrpo train` says about the RL signal: a JSON file, a plot, warnings, one line.

TRL logs some forty numbers per step; a user needs a dozen of them, read together: is there a reward spread
to learn from, are turns cut by the budget, is the policy drifting (KL), how fast are rollouts and updates.
`TrainingDiagnostics` (a transformers callback) keeps one record per logging step in
output_dir/diagnostics.json (rewritten atomically at every log), draws output_dir/diagnostics.png when
training ends or stops, and warns while training when, over a window of recent steps, the budget cuts
more than 5 % of turns or more than half of the groups carry no signal. `use_compact_console` replaces
TRL's printed dictionaries by one line per step; the logs themselves (log_history, tensorboard) stay whole.
The pure functions below (records, warnings, lines) are what the tests call directly.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from exgrpo.errors import DataError
from exgrpo.files import atomic_write_bytes, atomic_write_json
from exgrpo.training.wall_time import BudgetedProgress, use_budgeted_progress

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DIAGNOSTICS_FILE = "diagnostics.json"
PLOT_FILE = "diagnostics.png"
CUT_TURNS_LIMIT = 0.05  # above it, answers are cut before they end: the reward judges truncated text
ZERO_SPREAD_LIMIT = 0.5  # above it, most groups give every rollout the same advantage: no gradient
WINDOW = 5

# A record's field <- the key TRL (or ExGRPOTrainer, "exgrpo/...") logs it under.
LOGGED_FIELDS: dict[str, str] = {
    "reward": "reward",  # total reward: outcome + DSU bonus (+ format), mean over rollouts
    "reward_std": "reward_std",
    "reward_full": "exgrpo/accuracy_full",  # outcome reward of scenario A (all probes shown)
    "reward_partial": "exgrpo/accuracy_partial",  # outcome reward of scenario B (a subset of probes)
    "zero_spread": "frac_reward_zero_std",  # share of groups whose rollouts all got the same reward
    "cut_turns": "exgrpo/truncated_turns",  # share of assistant turns cut by the per-turn budget
    "kl": "kl",
    "entropy": "entropy",
    "dsu_fired": "exgrpo/dsu_fired",
    "clip_low": "clip_ratio/low_mean",
    "clip_high": "clip_ratio/high_mean",
    "clip_region": "clip_ratio/region_mean",
    "step_seconds": "step_time",  # one optimizer step: rollouts + update
    "rollout_seconds": "exgrpo/rollout_seconds",
    "generated_tokens": "exgrpo/generated_tokens",
    "sequence_tokens": "exgrpo/sequence_tokens",
    "loss": "loss",
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def is_training_step(logs: Mapping[str, Any]) -> bool:
    """A training step's log (not an evaluation's, not the closing summary with train_runtime)."""
    return "reward" in logs and "train_runtime" not in logs


def step_record(logs: Mapping[str, Any], step: int) -> dict[str, Any]:
    """One logging step's diagnostics from the trainer's logs; a field the run did not log is None.

    Speeds, from what is measured: rollout tokens/s = tokens the student generated / seconds spent in the
    rollouts; update tokens/s = sequence tokens (prompt + whole dialogue) / (step seconds - rollout seconds),
    the update being everything else in the step: scoring, reference forward, loss, backward, optimizer.
    Both assume one generation per optimizer step (TRL's default; num_iterations > 1 reuses a generation).
    """
    record: dict[str, Any] = {"step": step} | {field: _number(logs.get(key)) for field, key in LOGGED_FIELDS.items()}
    generated, rollout = record["generated_tokens"], record["rollout_seconds"]
    record["rollout_tokens_per_s"] = generated / rollout if generated is not None and rollout else None
    sequence, seconds = record["sequence_tokens"], record["step_seconds"]
    update = seconds - rollout if seconds is not None and rollout is not None else None
    record["update_tokens_per_s"] = sequence / update if sequence is not None and update and update > 0 else None
    return record


def _window_mean(records: Sequence[Mapping[str, Any]], field: str) -> float | None:
    values = [r[field] for r in records if r.get(field) is not None]
    return sum(values) / len(values) if values else None


def signal_warnings(records: Sequence[Mapping[str, Any]], window: int = WINDOW, max_new_tokens: int | None = None,
                    max_answer_tokens: int | None = None) -> list[dict[str, Any]]:
    """The warnings the last `window` records call for (fewer records at the start of training), each with
    its kind, the measured share and what to change (the budgets now: a probe turn's, the final answer's)."""
    recent = records[-window:]
    if not recent:
        return []
    step, span = recent[-1]["step"], f"over the last {len(recent)} logging steps"
    found = []
    cut = _window_mean(recent, "cut_turns")
    if cut is not None and cut > CUT_TURNS_LIMIT:
        turn = f" (now {max_new_tokens})" if max_new_tokens is not None else ""
        answer = f" (now {max_answer_tokens})" if max_answer_tokens is not None else ""
        found.append({"step": step, "kind": "cut_turns", "share": cut, "message": (
            f"{cut:.0%} of assistant turns were cut by their budget {span} (more than {CUT_TURNS_LIMIT:.0%}): the "
            f"reward then judges unfinished answers; raise max_new_tokens{turn}, the probe turns' budget (or set it "
            f"to auto), or max_answer_tokens{answer}, the final answer's")})
    zero = _window_mean(recent, "zero_spread")
    if zero is not None and zero > ZERO_SPREAD_LIMIT:
        found.append({"step": step, "kind": "zero_spread", "share": zero, "message": (
            f"{zero:.0%} of groups had no reward spread {span} (more than {ZERO_SPREAD_LIMIT:.0%}): they carry no "
            "learning signal; use more rollouts per question (exgrpo.rollouts_full / rollouts_partial), filter out "
            "questions the policy always or never solves, or raise the temperature")})
    return found


def _shown(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def console_line(logs: Mapping[str, Any], step: int) -> str:
    """The one line a logging step prints: step, reward, spread, groups with signal, cut turns, KL, s/step."""
    if not is_training_step(logs):  # evaluation or the closing summary: a few numbers, still one line
        return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in logs.items() if key != "total_flos")
    r = step_record(logs, step)
    signal = None if r["zero_spread"] is None else 1 - r["zero_spread"]
    return (f"step {step:>5} | reward {_shown(r['reward'], '.3f')} | spread {_shown(r['reward_std'], '.3f')} | "
            f"groups with signal {_shown(signal, '.0%')} | cut turns {_shown(r['cut_turns'], '.1%')} | "
            f"KL {_shown(r['kl'], '.4f')} | {_shown(r['step_seconds'], '.1f')} s/step")


def diagnostics_document(records: Sequence[Mapping[str, Any]], warnings: Sequence[Mapping[str, Any]],
                         question_selection: Mapping[str, Any] | None = None) -> dict:
    """`question_selection` (added in schema 1, absent in older files): how the RL questions were chosen, e.g. the
    pass-rate filter's counts (rl/pass_rate.py); null when the run trained on all its questions."""
    return {"schema_version": SCHEMA_VERSION, "steps": list(records), "warnings": list(warnings),
            "question_selection": None if question_selection is None else dict(question_selection)}


def read_diagnostics(path: Path) -> dict[str, Any]:
    """A diagnostics file, checked: its schema version must be the one this code writes."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read the diagnostics ({error})") from error
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: field 'schema_version' must be {SCHEMA_VERSION}; the file was written by another "
                        "version of exgrpo")
    return document


# (panel title, [(record field, label)], y-axis as a share in [0, 1])
PANELS: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("reward", [("reward", "total"), ("reward_full", "A (all probes)"), ("reward_partial", "B (some probes)")], False),
    ("groups with zero reward spread", [("zero_spread", "share")], True),
    ("turns cut by the budget", [("cut_turns", "share")], True),
    ("KL to the reference", [("kl", "KL")], False),
    ("entropy", [("entropy", "entropy")], False),
    ("DSU bonus firing rate", [("dsu_fired", "share of groups")], True),
    ("clip fractions", [("clip_low", "low"), ("clip_high", "high"), ("clip_region", "region")], False),
    ("tokens/s", [("rollout_tokens_per_s", "rollout (generated)"), ("update_tokens_per_s", "update (sequence)")],
     False),
    ("seconds per step", [("step_seconds", "step"), ("rollout_seconds", "rollouts")], False),
]


def plot_diagnostics(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One panel per diagnostic against the step, written atomically as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(3, 3, figsize=(13, 10), constrained_layout=True)
    for axis, (title, series, is_share) in zip(axes.flat, PANELS, strict=True):
        for field, label in series:
            points = [(r["step"], r[field]) for r in records if r.get(field) is not None]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
        if is_share:
            axis.set_ylim(-0.02, 1.02)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axis.has_data() and len(series) > 1:
            axis.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


class TrainingDiagnostics(TrainerCallback):
    """Keeps output_dir/diagnostics.json current at every log, warns on a window of steps, plots at the end."""

    def __init__(self, output_dir: Path, window: int = WINDOW, max_new_tokens: int | None = None,
                 max_answer_tokens: int | None = None, question_selection: Mapping[str, Any] | None = None) -> None:
        self.path = Path(output_dir) / DIAGNOSTICS_FILE
        self.plot_path = Path(output_dir) / PLOT_FILE
        self.window = window
        self.max_new_tokens, self.max_answer_tokens = max_new_tokens, max_answer_tokens
        self.question_selection = question_selection
        self.records: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self._resumed = False
        self._plotted = 0  # records in the last plot

    def _resume(self, step: int) -> None:
        """A resumed run keeps the records of the steps its checkpoint had done; a fresh run starts empty."""
        self._resumed = True
        if self.path.exists():
            document = read_diagnostics(self.path)
            self.records = [r for r in document["steps"] if r["step"] < step]
            self.warnings = [w for w in document["warnings"] if w["step"] < step]

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not is_training_step(logs) or not state.is_world_process_zero:
            return
        if not self._resumed:
            self._resume(state.global_step)
        self.records.append(step_record(logs, state.global_step))
        for warning in signal_warnings(self.records, self.window, self.max_new_tokens, self.max_answer_tokens):
            # Said once per window: a persistent problem repeats every `window` steps, not at every log.
            if not any(w["kind"] == warning["kind"] and warning["step"] - w["step"] < self.window
                       for w in self.warnings):
                logger.warning("step %d: %s", warning["step"], warning["message"])
                self.warnings.append(warning)
        atomic_write_json(self.path, diagnostics_document(self.records, self.warnings, self.question_selection))

    def write_plot(self) -> None:
        """Draws the plot if there are records it does not show yet (training ended, or stopped)."""
        if self.records and self._plotted != len(self.records):
            plot_diagnostics(self.records, self.plot_path)
            self._plotted = len(self.records)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.write_plot()


class CompactProgress(BudgetedProgress):
    """The training bar (counting to the step the run stops at), printing one line per logging step instead of the
    whole dictionary of logs."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(console_line(logs, state.global_step))


class CompactPrinter(TrainerCallback):
    """The same line where the progress bar is off (disable_tqdm), in place of transformers' PrinterCallback."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_local_process_zero and logs:
            print(console_line(logs, state.global_step), flush=True)


def use_compact_console(trainer: Any, stop_at_step: int | None = None) -> None:
    """Replace the trainer's printing of raw logs by one line per step; what is logged stays the same."""
    use_budgeted_progress(trainer, stop_at_step, bar=CompactProgress)
    if trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(CompactPrinter)
