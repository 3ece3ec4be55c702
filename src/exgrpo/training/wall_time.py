"""A training stage's wall-time budget: the stage stops after the step that spends it, saves a checkpoint and
then its final model as after any run (a budgeted run is a normal run that ends early, not a killed one)."""

from __future__ import annotations

import logging
import time
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class WallTimeBudget(TrainerCallback):
    """Stops training once `seconds` have passed since this invocation's training began (a resumed run gets
    the whole budget again: it counts the time of this process, which is what a scheduler limits)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.started is None or control.should_training_stop:
            return control
        spent = time.monotonic() - self.started
        if spent >= self.seconds:
            logger.warning("wall-time budget of %.0f s spent (%.0f s) after step %d of %d: stopping, saving a "
                           "checkpoint and the final model", self.seconds, spent, state.global_step, state.max_steps)
            control.should_training_stop = True
            control.should_save = True  # the checkpoint a later run resumes from
            self.stopped_at_step = state.global_step
        return control


def budget_callbacks(max_seconds: float | None, callbacks: list[Any] | None) -> list[Any]:
    """A stage's callbacks, with the wall-time budget first when the config sets one."""
    return ([WallTimeBudget(max_seconds)] if max_seconds is not None else []) + list(callbacks or [])
