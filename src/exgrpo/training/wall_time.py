"""A training stage's budgets: wall time, or a step to stop at. The stage stops after the step that spends it, saves
a checkpoint and then its final model as after any run (a budgeted run is a normal run that ends early, not a killed
one)."""

from __future__ import annotations

import logging
import time
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState, ProgressCallback

logger = logging.getLogger(__name__)


class WallTimeBudget(TrainerCallback, ExportableState):
    """Stops training once the run has trained for `seconds` of wall time, counted over all its sittings: the
    seconds spent up to a checkpoint are saved in it (transformers' stateful callbacks, in trainer_state.json) and a
    run resumed from it gets only what is left. Why the run's and not the invocation's: a config then fixes how long
    its run trains, whatever killed and resumed it (a killed sitting's steps after its last checkpoint are lost and
    not counted)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.earlier = 0.0  # spent by earlier sittings, up to the checkpoint this one resumed from
        self.started: float | None = None
        self.stopped_at_step: int | None = None

    def spent(self) -> float:
        return self.earlier + (time.monotonic() - self.started if self.started is not None else 0.0)

    def state(self) -> dict[str, Any]:
        return {"args": {"seconds": self.seconds}, "attributes": {"spent": round(self.spent(), 3)}}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        stored = (state.stateful_callbacks or {}).get(name)
        self.earlier = float(stored.get("attributes", {}).get("spent", 0.0)) if isinstance(stored, dict) else 0.0
        if self.earlier:
            logger.warning("wall-time budget: %.0f s spent by earlier sittings up to step %d, %.0f s left",
                           self.earlier, state.global_step, max(self.seconds - self.earlier, 0.0))
        # A checkpoint from before this budget existed lacks the entry that transformers' save expects to update.
        state.stateful_callbacks = {**(state.stateful_callbacks or {}), name: self.state()}
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.started is None or control.should_training_stop:
            return control
        spent = self.spent()
        if spent >= self.seconds:
            logger.warning("wall-time budget of %.0f s spent (%.0f s) after step %d of %d: stopping, saving a "
                           "checkpoint and the final model", self.seconds, spent, state.global_step, state.max_steps)
            control.should_training_stop = True
            control.should_save = True  # the checkpoint a later run resumes from
            self.stopped_at_step = state.global_step
        return control


class StopAtStep(TrainerCallback):
    """Stops training after optimizer step `step` while the learning-rate schedule still runs over max_steps. Why
    not max_steps: lowering it squeezes the schedule's decay into fewer steps, so a run stopped this way takes the
    very steps (learning rates included) of the first `step` steps of the longer run: an arm matched on another's
    steps, or a long run trained in sittings."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step and not control.should_training_stop:
            logger.warning("stop_at_step %d reached (schedule over %d steps): stopping, saving a checkpoint and "
                           "the final model", self.step, state.max_steps)
            control.should_training_stop = True
            control.should_save = True
        return control


class BudgetedProgress(ProgressCallback):
    """transformers' training bar, counting to the step the run stops at and starting from the step it resumed
    from. Why: the stock bar counts to max_steps, which stop_at_step leaves at the schedule's length, and starts at 0
    on a resumed run, whose first update then jumps by every step already trained: a run stopped at step 52 of a
    300-step schedule, resumed at step 50, showed "51/300 [03:45<18:21]" a step before it ended."""

    def __init__(self, stop_at_step: int | None) -> None:
        super().__init__()
        self.stop_at_step = stop_at_step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        total = state.max_steps if self.stop_at_step is None else min(state.max_steps, self.stop_at_step)
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=total, initial=state.global_step, dynamic_ncols=True)
        self.current_step = state.global_step


def use_budgeted_progress(trainer: Any, stop_at_step: int | None,
                          bar: type[BudgetedProgress] = BudgetedProgress) -> None:
    """Replace `trainer`'s progress bar (when it shows one) by `bar`, counting to `stop_at_step`. One helper for
    every stage, so SFT, distillation and ExGRPO (whose bar also prints one line per logging step) swap it alike."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(bar(stop_at_step))


def budget_callbacks(settings: Any, callbacks: list[Any] | None) -> list[Any]:
    """A stage's callbacks, with the budgets its settings (TrainingSettings) set first."""
    budgets = [WallTimeBudget(settings.max_seconds)] if settings.max_seconds is not None else []
    if settings.stop_at_step is not None:
        budgets.append(StopAtStep(settings.stop_at_step))
    return budgets + list(callbacks or [])
