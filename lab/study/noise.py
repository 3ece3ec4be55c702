"""Re-evaluation noise: one of the study's models evaluated a second time with other batch neighbours, so that the
page can print, beside every difference, how far the evaluation alone moves a score.

The study evaluates with continuous batching (2.4x cheaper than `deterministic`), where a question's batch
neighbours follow from the other questions' answer lengths: the same model evaluated with another batch size can
answer a few questions otherwise (padding changes the shapes of every matrix product). The spec names the model
and the other batch size:

    report:
      reevaluation: {method: ei_exgrpo, model: sft, seed: 0, batch_size: 48}

`reevaluate` runs that evaluation into the run's diagnostics folder (recorded like the checkpoint evaluations)
right after the method's run, while its model is on the machine; `noise` reads both evaluations: per dataset the
share of answers that changed, and on a goal's datasets the accuracy difference (mean of the dataset means, the
goal's own average).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exgrpo.runner.layout import EvalFolder, RunLayout
from exgrpo.runner.results import question_verdicts
from lab.study.spec import DIAGNOSTICS, Study


@dataclass(frozen=True)
class Reevaluation:
    method: str
    model: str  # base, sft or exgrpo
    seed: int
    batch_size: int


@dataclass(frozen=True)
class Noise:
    points: float  # |accuracy of the second evaluation - of the first|, mean over the datasets, in points
    changed: float  # share of answers (0-1) whose correctness changed, over every question of those datasets
    questions: int


def reevaluation(study: Study) -> Reevaluation | None:
    """The spec's report.reevaluation, checked against its methods and seeds."""
    from exgrpo.errors import ConfigError

    entry = study.report.get("reevaluation")
    if entry is None:
        return None
    where = f"{study.spec_path}: report.reevaluation"
    if not isinstance(entry, dict) or set(entry) != {"method", "model", "seed", "batch_size"}:
        raise ConfigError(f"{where}: expected {{method, model, seed, batch_size}}, not {entry!r}")
    chosen = Reevaluation(str(entry["method"]), str(entry["model"]), int(entry["seed"]), int(entry["batch_size"]))
    if chosen.method not in study.methods or chosen.seed not in study.method_seeds(chosen.method):
        raise ConfigError(f"{where}: no run of method {chosen.method!r} for seed {chosen.seed}")
    config = study.run_config(chosen.method, chosen.seed)
    if chosen.model not in config.evaluated_models():
        raise ConfigError(f"{where}: {chosen.method} evaluates {config.evaluated_models()}, not {chosen.model!r}")
    if chosen.batch_size == config.eval.batch_size:
        raise ConfigError(f"{where}: batch_size {chosen.batch_size} is the runs' own: the neighbours would not change")
    return chosen


def reevaluation_folder(run_dir: Path, model: str) -> EvalFolder:
    return EvalFolder(run_dir / DIAGNOSTICS / f"reevaluation-{model}")


def reevaluate(study: Study, method: str, seed: int, log: Any = print) -> bool:
    """Evaluate the spec's re-evaluated model again, with its other batch size, when `method`'s run of `seed` is
    the one named, its first evaluation has finished and its model is on this machine (right after the run, or in
    a later sitting on the same machine). Resumable like any evaluation; False when there is nothing to do."""
    from exgrpo.evaluation.evaluate import evaluate
    from exgrpo.runner.registry import run_registry
    from exgrpo.runner.stage_configs import eval_config, model_paths

    chosen = reevaluation(study)
    if chosen is None or (chosen.method, chosen.seed) != (method, seed):
        return False
    config = study.run_config(method, seed)
    first = RunLayout(config.run_dir).evaluation(chosen.model)
    folder = reevaluation_folder(config.run_dir, chosen.model)
    if not first.report.exists() or folder.report.exists():
        return False
    registry = run_registry(config)
    model = model_paths(config)[chosen.model]
    if chosen.model != "base" and not Path(model).exists():  # a later machine has the record, not the model
        log(f"  seed {seed} {method}: no re-evaluation of {chosen.model}: its model is not on this machine")
        return False
    settings = eval_config(config, chosen.model, registry).model_copy(
        update={"batch_size": chosen.batch_size, "output_dir": folder.path})
    log(f"  seed {seed} {method}: {chosen.model} evaluated again at batch size {chosen.batch_size} (re-evaluation noise)")
    evaluate(settings, registry=registry)
    return True


def noise(study: Study, datasets: list[str], keep: Callable[[str], bool] = lambda question: True) -> Noise | None:
    """How far evaluating the same model again moved it on `datasets`, over the questions `keep` admits (the
    page's averages leave out the families at the guessing floor); None until both evaluations hold them."""
    chosen = reevaluation(study)
    if chosen is None or not datasets:
        return None
    run_dir = study.run_dir(chosen.seed, chosen.method)
    first, second = RunLayout(run_dir).evaluation(chosen.model), reevaluation_folder(run_dir, chosen.model)
    differences, changed, questions = [], 0, 0
    for dataset in datasets:
        if not (first.predictions(dataset).exists() and second.predictions(dataset).exists()):
            return None
        before, after = question_verdicts(first.predictions(dataset)), question_verdicts(second.predictions(dataset))
        shared = [question for question in set(before) & set(after) if keep(question)]
        if not shared:  # a split whose families are all left out of the averages (at the floor): not in them
            continue
        differences.append(100 * sum(after[q] - before[q] for q in shared) / len(shared))
        changed += sum(after[q] != before[q] for q in shared)
        questions += len(shared)
    return Noise(abs(sum(differences) / len(differences)), changed / questions, questions) if questions else None


def reevaluation_points(study: Study, datasets: list[str], keep: Callable[[str], bool]) -> float | None:
    """The noise in points on `datasets` (a goal's), for the goal's line; None before it is measured."""
    measured = noise(study, datasets, keep)
    return None if measured is None else measured.points


def noise_line(study: Study, datasets: list[str], keep: Callable[[str], bool]) -> str | None:
    """The page's sentence on the re-evaluation noise of `datasets`, or None before it is measured."""
    chosen, measured = reevaluation(study), noise(study, datasets, keep)
    if chosen is None or measured is None:
        return None
    own = study.run_config(chosen.method, chosen.seed).eval.batch_size
    return (f"Re-evaluation noise: {study.title(chosen.method)}'s {chosen.model} model (seed {chosen.seed}), evaluated "
            f"again with batch size {chosen.batch_size} instead of the runs' own {own}, turned "
            f"{100 * measured.changed:.1f} % of its answers from right to wrong or back ({measured.questions} "
            f"unseen-format held-out questions of the families in the averages) and moved its accuracy by {measured.points:.1f} points: a difference "
            "below that is within what the evaluation alone can move.")
