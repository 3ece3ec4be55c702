"""Equal tuning for every method, on validation only: each stage a method trains itself gets the same learning-rate
candidates, is trained once per candidate on the tuning seed, and keeps the one with the best validation accuracy.

Spec section (all keys required):

    tuning:
      seed: 0
      datasets: [world_val]                 # read for the choice; never a test split
      learning_rates: {sft: [5.0e-5, 1.0e-4, 2.0e-4], train: [1.0e-5, 2.0e-5, 5.0e-5]}

A stage without candidates in `learning_rates` (e.g. no `train`: an RL rate chosen elsewhere) is not tuned: it keeps
the learning rate its spec gives it.

A method with its own SFT and RL stages tunes SFT first (its SFT model evaluated), then RL from the chosen SFT
model. A method that starts RL from another's SFT model (`sft_model_from`) tunes its RL stage from that
method's chosen SFT run. Runs go to <run_root>/tuning/<method>/<stage>-lr<LR>/, the choice to
<run_root>/tuning/<method>/chosen.json, which `Study.run_values` then applies to every seed's real run.

The tuning seed's real run of a method is its chosen candidates' run: it adopts their trained stages
(study/reuse.py) and trains nothing again; a candidate adopts a stage the seed's run has already trained alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exgrpo.errors import ConfigError
from exgrpo.files import atomic_write_json
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.results import pooled_accuracy
from lab.study.record import record
from lab.study.reuse import adopt_stage, prune_sft_checkpoints, stage_plan
from lab.study.spec import Study, finished, make_models


def trained_stages(study: Study, method: str) -> list[str]:
    """The stages a method trains itself, in order."""
    values = study.run_values(method, study.seeds[0])
    return [stage for stage in ("sft", "train") if values.get(stage) is not None]


def tuned_stages(study: Study, method: str) -> list[str]:
    """The stages a method trains itself that have learning-rate candidates, in order."""
    grid = study.tuning.get("learning_rates", {})
    return [stage for stage in trained_stages(study, method) if stage in grid]


def tuning_dir(study: Study, method: str) -> Path:
    return study.run_root / "tuning" / method


def candidate_dir(study: Study, method: str, stage: str, learning_rate: float) -> Path:
    return tuning_dir(study, method) / f"{stage}-lr{learning_rate:g}"


def tuning_settings(study: Study) -> dict[str, Any]:
    settings = study.tuning
    missing = [key for key in ("seed", "datasets", "learning_rates") if key not in settings]
    if missing:
        raise ConfigError(f"{study.spec_path}: tuning needs {', '.join(missing)}")
    return settings


def candidate_values(study: Study, method: str, stage: str, learning_rate: float,
                     chosen: dict[str, float], planning: bool = False) -> dict[str, Any]:
    """The run configuration of one candidate: the method on the tuning seed with this stage's learning rate,
    stopped after this stage, evaluated on the tuning datasets only. `planning`: for a cost estimate, before the
    SFT model it starts from is chosen (the base model stands in for it)."""
    settings = tuning_settings(study)
    values = study.run_values(method, settings["seed"], apply_tuning=False)
    values["run_dir"] = str(candidate_dir(study, method, stage, learning_rate))
    values[stage]["learning_rate"] = learning_rate
    if stage == "sft":
        values["train"] = None  # the SFT model is what is chosen here
    else:
        if planning:
            values["sft"], values["sft_model"] = None, values.get("base_model") or values["sft_model"]
        elif values.get("sft") is not None:  # RL from this method's chosen SFT run
            values["sft"] = None
            values["sft_model"] = str(RunLayout(candidate_dir(study, method, "sft", chosen["sft"])).final_model("sft"))
        elif "sft_model_from" in study.methods[method]:
            parent = study.methods[method]["sft_model_from"]
            parent_choice = read_choice(study, parent)
            if "sft" not in parent_choice:
                raise ConfigError(f"tuning {method}: tune {parent} first (it trains the SFT model {method} starts from)")
            values["sft_model"] = str(RunLayout(candidate_dir(study, parent, "sft", parent_choice["sft"])).final_model("sft"))
    values["eval"] = {**values["eval"], "datasets": list(settings["datasets"]), "ei_test": None,
                      "models": ["sft" if stage == "sft" else "exgrpo"], "limits": {}}
    return values


def read_choice(study: Study, method: str) -> dict[str, float]:
    """The method's chosen learning rates; none while its choice was made on another grid than the spec's (the
    grid changed: the choice is stale until `tune` chooses again)."""
    path = tuning_dir(study, method) / "chosen.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    grid = study.tuning.get("learning_rates", {})
    for stage, scores in saved.get("validation_accuracy", {}).items():
        if stage in grid and set(scores) != {f"{lr:g}" for lr in grid[stage]}:
            return {}
    return saved["learning_rates"]


def validation_accuracy(run_dir: Path, model: str, datasets: list[str] | None = None) -> float:
    """A model's accuracy over its evaluation's datasets (a tuning candidate evaluates validation only), or over
    `datasets` of them (a run's evaluation also holds its test sets)."""
    report = json.loads(RunLayout(run_dir).evaluation(model).report.read_text())
    return pooled_accuracy(report, datasets)


def tune_method(study: Study, method: str, log: Any = print) -> dict[str, float]:
    """Train every candidate of every stage the method trains (finished ones are skipped), keep the best."""
    from exgrpo.config import build_config
    from exgrpo.config.run import RunConfig
    from lab.study.remakes import run_stages

    if "tuning_from" in study.methods[method]:
        raise ConfigError(f"{study.spec_path}: methods.{method} uses {study.methods[method]['tuning_from']}'s tuning")
    settings = tuning_settings(study)
    chosen: dict[str, float] = {}
    scores: dict[str, dict[str, float]] = {}
    for stage in tuned_stages(study, method):
        scores[stage] = {}
        for learning_rate in settings["learning_rates"][stage]:
            values = candidate_values(study, method, stage, learning_rate, chosen)
            config = build_config(RunConfig, values, f"tuning {method} {stage} lr {learning_rate:g}")
            log(f"tuning {method} {stage} lr {learning_rate:g}: {config.run_dir}")
            if finished(config):
                log("  finished, not run again")
            else:
                if adopt_stage(study.run_config(method, settings["seed"]), config, stage):
                    log(f"  {stage}: adopted from the seed's run (trained alike)")
                _make_starting_model(study, method, stage, chosen, log)
                run_stages(config, on_stage=lambda name, status: log(f"  {name}: {status}"))
                prune_sft_checkpoints(config.run_dir)
                log(f"  {record(study)} files recorded in {study.record_root}")
            scores[stage][f"{learning_rate:g}"] = validation_accuracy(config.run_dir, values["eval"]["models"][0])
        best = max(settings["learning_rates"][stage], key=lambda lr: scores[stage][f"{lr:g}"])  # ties: the first
        chosen[stage] = best
        log(f"tuning {method} {stage}: lr {best:g} (validation accuracy {scores[stage]})")
    atomic_write_json(tuning_dir(study, method) / "chosen.json",
                      {"learning_rates": chosen, "validation_accuracy": scores, "datasets": settings["datasets"],
                       "seed": settings["seed"]})
    record(study)
    return chosen


def _sft_candidate(study: Study, method: str, chosen: dict[str, float]) -> Any:
    """The run configuration of the SFT candidate a method's RL candidates start from (its own chosen one, or the
    one chosen for the method whose SFT model it takes); None when its RL starts from no tuned SFT model."""
    from exgrpo.config import build_config
    from exgrpo.config.run import RunConfig

    parent = study.sft_source(method)
    parent_chosen = chosen if parent == method else read_choice(study, parent)
    if "sft" not in parent_chosen:
        return None
    return build_config(RunConfig, candidate_values(study, parent, "sft", parent_chosen["sft"], parent_chosen),
                        f"tuning {parent} sft")


def _make_starting_model(study: Study, method: str, stage: str, chosen: dict[str, float], log: Any) -> None:
    """Before an RL candidate (stage "train") runs: make its SFT candidate's model again if it went with an earlier
    sitting's machine."""
    source = _sft_candidate(study, method, chosen) if stage == "train" else None
    if source is not None:
        make_models(source, "sft", log)


def tuned_methods(study: Study) -> list[str]:
    """The methods tuned on their own (a `tuning_from` method takes another's choice)."""
    return [method for method, spec in study.methods.items() if "tuning_from" not in spec]


def adopt_chosen(study: Study, method: str, seed: int, config: Any, log: Any = print) -> list[str]:
    """On the tuning seed, the stages `config` (the method's real run) takes from its chosen candidates. A chosen
    candidate whose model went with an earlier sitting's machine is made again first, in its own folder (the run
    is that candidate's: the same training, its validation result recorded), unless the run has the stage."""
    from exgrpo.config import build_config
    from exgrpo.config.run import RunConfig

    if not study.tuning or seed != tuning_settings(study)["seed"] or "tuning_from" in study.methods[method]:
        return []
    chosen = read_choice(study, method)
    adopted = []
    for stage in tuned_stages(study, method):
        if stage in chosen:
            candidate = build_config(RunConfig, candidate_values(study, method, stage, chosen[stage], chosen),
                                     f"tuning {method} {stage}")
            if not stage_plan(config, stage)[1] and RunLayout(candidate.run_dir).manifest(stage).exists():
                _make_starting_model(study, method, stage, chosen, log)
                make_models(candidate, stage, log)
            if adopt_stage(candidate, config, stage):
                adopted.append(stage)
    return adopted
