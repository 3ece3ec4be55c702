"""What the whole study will cost, from one measured run: the first method's first seed gives this machine's
throughputs (its stages' wall seconds against the tokens `--dry-run`'s estimate counts for them), and every
other method's estimate is timed with them. Written before the rest runs, so that the plan can be cut first; until
that run has finished, the first method's finished tuning candidates time it (the same stages)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from exgrpo.config import StudentThroughput
from exgrpo.models.precision import machine_name
from exgrpo.runner.estimate.run import estimate_run
from exgrpo.runner.layout import EvalFolder, RunLayout
from exgrpo.runner.results import RunResults, read_evaluation
from lab.study.spec import Study, compute_match_stages

STAGE_RATES = {"sft": "sft_tokens_per_s", "train": "exgrpo_tokens_per_s", "eval": "generate_tokens_per_s"}


@dataclass
class MethodCost:
    method: str
    seeds: int
    training_hours: float  # per seed: SFT and RL (the exact teacher's probe stage takes seconds)
    eval_hours: float  # per seed (the mean over its seeds): its trained models' evaluations
    trained_seeds: int  # seeds it trains on (the tuning seed's run is its chosen candidate's: nothing trained)
    base_eval_hours: float = 0.0  # the base student's evaluation, done once for the whole study
    tuning_hours: float = 0.0  # every learning-rate candidate of every stage it tunes, on the tuning seed
    # On the tuning seed, the stages it trains without tuning them (e.g. RL at the spec's rate): its run adopts the
    # tuned stages from their chosen candidates and trains these.
    untuned_hours: float = 0.0

    @property
    def hours_per_seed(self) -> float:
        return self.training_hours + self.eval_hours

    @property
    def hours(self) -> float:
        return (self.training_hours * self.trained_seeds + self.untuned_hours + self.eval_hours * self.seeds
                + self.base_eval_hours + self.tuning_hours)


def _stage(load_name: str) -> str:
    return load_name.split(" ")[0].split(":")[0]  # "train (ExGRPO)" -> train, "eval: sft" -> eval


def _report_seconds(run_dir: Any, model: str) -> float | None:
    evaluation = RunResults.of(run_dir).evaluation(model)
    return evaluation.seconds if evaluation else None


def _kept_base_cost(study: Study) -> dict[str, Any] | None:
    """What the base student's kept evaluation cost, which no stage manifest counts (it ran outside one): its
    cost.json (wall and CPU seconds, machine) where it was measured, else its report's wall seconds alone; None
    when there is no kept evaluation."""
    from lab.study.reuse import BASE_COST, kept_base_evaluation

    cost = kept_base_evaluation(study.run_root) / BASE_COST
    if cost.exists():
        return json.loads(cost.read_text())
    seconds = _kept_base_seconds(study)
    return None if seconds is None else {"seconds": seconds}


def _kept_base_seconds(study: Study) -> float | None:
    """The base student's first evaluation time, kept with its predictions (study/reuse.py), not a copy's."""
    from lab.study.reuse import kept_base_evaluation

    kept = read_evaluation(EvalFolder(kept_base_evaluation(study.run_root)))
    return kept.seconds if kept else None


def measured_throughput(study: Study) -> tuple[StudentThroughput, dict[str, float]] | None:
    """Tokens per second of each kind on this machine, from the first method's first seed (None until its SFT and
    RL stages and at least one model's evaluation have finished), and the wall seconds they took. Evaluation is
    timed on the trained models once one is evaluated (they stop early; the base student talks to the limit)."""
    seed = study.seeds[0]
    config = study.run_config(study.first, seed)
    seconds = {}
    for stage in ("sft", "train"):
        manifest = RunLayout(config.run_dir).manifest(stage)
        if not manifest.exists():
            return None
        seconds[stage] = float(json.loads(manifest.read_text())["seconds"])
    # The base student falls back to its kept first evaluation: a changed eval stage clears the run's folder.
    found = {model: _report_seconds(config.run_dir, model) or (_kept_base_seconds(study) if model == "base" else None)
             for model in config.evaluated_models()}
    evaluated = {model: value for model, value in found.items() if value is not None}
    trained = [model for model in evaluated if model != "base"]
    timed = trained or list(evaluated)
    if not timed:
        return None
    seconds["eval"] = sum(evaluated[model] for model in timed)
    tokens = _tokens(config, timed)
    rates = {STAGE_RATES[stage]: tokens[stage] / seconds[stage] for stage in STAGE_RATES
             if tokens.get(stage) and seconds[stage] > 0}
    return StudentThroughput(**rates), seconds


def _tokens(config: Any, evaluated: list[str]) -> dict[str, float]:
    """The tokens `--dry-run`'s estimate counts for a run's stages, its evaluation of `evaluated` models only."""
    tokens: dict[str, float] = {}
    for load in estimate_run(config).loads:
        if load.stage.startswith("eval: ") and load.stage.removeprefix("eval: ") not in evaluated:
            continue
        tokens[_stage(load.stage)] = tokens.get(_stage(load.stage), 0.0) + load.tokens
    return tokens


def candidate_throughput(study: Study) -> tuple[StudentThroughput, dict[str, float], int] | None:
    """Tokens per second of each kind, from the first method's finished tuning candidates, while its first seed's run
    has not finished (a machine that took the runs can leave the candidates in the study's record): every finished
    candidate's trained stage and validation evaluation, pooled (tokens over seconds). None until an SFT and an RL
    candidate have finished (never, where the RL stage is not tuned: the first seed's run times it then). Also
    their wall seconds, and how many candidates."""
    from exgrpo.config import build_config
    from exgrpo.config.run import RunConfig
    from lab.study.tuning import candidate_values, tuned_stages

    if not study.tuning:
        return None
    tokens: dict[str, float] = {}
    seconds: dict[str, float] = {}
    candidates = 0
    for stage in tuned_stages(study, study.first):
        for learning_rate in study.tuning["learning_rates"][stage]:
            values = candidate_values(study, study.first, stage, learning_rate, {}, planning=True)
            config = build_config(RunConfig, values, f"tuning {study.first}")
            model = config.evaluated_models()[0]
            manifest = RunLayout(config.run_dir).manifest(stage)
            evaluation = RunResults.of(config.run_dir).evaluation(model)
            if not manifest.exists() or evaluation is None:
                continue
            candidates += 1
            counted = _tokens(config, [model])
            for kind, value in ((stage, json.loads(manifest.read_text())["seconds"]), ("eval", evaluation.seconds)):
                seconds[kind] = seconds.get(kind, 0.0) + float(value)
                tokens[kind] = tokens.get(kind, 0.0) + counted.get(kind, 0.0)
    if not {"sft", "train", "eval"} <= set(seconds):
        return None
    rates = {STAGE_RATES[kind]: tokens[kind] / seconds[kind] for kind in STAGE_RATES
             if tokens.get(kind) and seconds[kind] > 0}
    return StudentThroughput(**rates), seconds, candidates


def _hours(config: Any, throughput: StudentThroughput) -> dict[str, float]:
    """Hours per kind of work: training, eval of trained models, eval of the base."""
    config = config.model_copy()
    config.estimate = config.estimate.model_copy(update={"throughput": throughput})
    hours = {"training": 0.0, "eval": 0.0, "base": 0.0}
    for load in estimate_run(config).loads:
        kind = "base" if load.stage == "eval: base" else "eval" if load.stage.startswith("eval") else "training"
        hours[kind] += (load.seconds or 0.0) / 3600
        if kind == "training":  # and per trained stage (sft, train)
            hours[_stage(load.stage)] = hours.get(_stage(load.stage), 0.0) + (load.seconds or 0.0) / 3600
    return hours


def project(study: Study, throughput: StudentThroughput, methods: list[str] | None = None,
            base_eval_seconds: float | None = None) -> list[MethodCost]:
    """Every method's cost. `base_eval_seconds`: the base student's evaluation as measured (else estimated)."""
    from exgrpo.config import build_config
    from exgrpo.config.run import RunConfig
    from lab.study.tuning import candidate_values, tuned_stages

    tuning_seed = study.tuning.get("seed") if study.tuning else None
    costs = []
    for method in methods or list(study.methods):
        seeds = study.method_seeds(method)
        hours = _hours(study.run_config(method, seeds[0]), throughput)
        if study.outside_seeds != study.seeds:  # seeds evaluate different datasets: the mean over its seeds
            hours["eval"] = sum(_hours(study.run_config(method, seed), throughput)["eval"] for seed in seeds) / len(seeds)
        matched = study.methods[method].get("compute_match")
        if matched:  # its SFT steps are chosen at run time to take as long as the matched method's training
            target = _hours(study.run_config(matched, seeds[0]), throughput)
            hours["training"] = sum(target.get(stage, 0.0) for stage in compute_match_stages(study, method))
        tuned = tuned_stages(study, method) if study.tuning and "tuning_from" not in study.methods[method] else []
        adopts = bool(tuned) and tuning_seed in seeds  # the tuning seed's run takes its tuned stages as chosen
        base = (base_eval_seconds / 3600 if base_eval_seconds is not None else hours["base"]) if hours["base"] else 0.0
        cost = MethodCost(method, len(seeds), hours["training"], hours["eval"], len(seeds) - adopts, base)
        if adopts:
            cost.untuned_hours = hours["training"] - sum(hours.get(stage, 0.0) for stage in tuned)
        if tuned:
            for stage in tuned:
                for learning_rate in study.tuning["learning_rates"][stage]:
                    values = candidate_values(study, method, stage, learning_rate, {}, planning=True)
                    candidate = _hours(build_config(RunConfig, values, f"tuning {method}"), throughput)
                    cost.tuning_hours += candidate["training"] + candidate["eval"]
        costs.append(cost)
    return costs


def projection_lines(study: Study) -> list[str]:
    """The page's cost section (or what it is waiting for)."""
    measured = measured_throughput(study)
    source = f"{study.first}, seed {study.seeds[0]}"
    if measured is None:
        candidates = candidate_throughput(study)
        if candidates is None:
            return [f"Not projected yet: the first run ({source}) has not finished.", "", *spent_lines(study)]
        measured = candidates[:2]
        source = (f"{study.first}'s {candidates[2]} finished tuning candidates, pooled (its seed {study.seeds[0]} "
                  "run has not finished; evaluation timed on the validation split)")
    throughput, seconds = measured
    kept = _kept_base_seconds(study)
    base_seconds = kept if kept is not None else _report_seconds(study.run_dir(study.seeds[0], study.first), "base")
    costs = project(study, throughput, base_eval_seconds=base_seconds)
    total = sum(c.hours for c in costs)
    lines = [f"Measured on {source} (wall seconds: "
             + ", ".join(f"{stage} {value:.0f}" for stage, value in seconds.items())
             + (f", base student's evaluation {base_seconds:.0f}" if base_seconds is not None else "") + "): "
             + ", ".join(f"{name.removesuffix('_tokens_per_s')} {getattr(throughput, name):,.0f} tok/s"
                         for name in STAGE_RATES.values() if getattr(throughput, name)) + ". "
             "The tuning seed's runs are their chosen candidates (nothing trained twice); the base student is "
             "evaluated once for every seed.", "",
             "| method | seeds | seeds trained | training hours per seed | evaluation hours per seed | "
             "tuning hours (all candidates) | hours |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {study.title(c.method)} ({c.method}) | {c.seeds} | {c.trained_seeds} | {c.training_hours:.2f} | "
              f"{c.eval_hours:.2f} | {c.tuning_hours:.2f} | {c.hours - c.base_eval_hours:.2f} |" for c in costs]
    base_hours = sum(c.base_eval_hours for c in costs)
    if base_hours:
        lines.append(f"| the base student's evaluation (once, for every seed) | | | | | | {base_hours:.2f} |")
    lines += [f"| **all** | | | | | | **{total:.1f}** |", ""]
    budget = study.report.get("budget_hours")
    if budget is not None:
        verdict = "within it" if total <= budget else f"{total - budget:.1f} hours over it"
        lines += [f"Time budget (the spec's report.budget_hours): about {budget:g} hours; this projection is {total:.1f} "
                  f"hours, {verdict}" + (", after the cut above." if study.report.get("cut") else "."), ""]
    return lines + spent_lines(study)


def spent_lines(study: Study) -> list[str]:
    finished, base = finished_stages(study), _kept_base_cost(study)  # read once for the lines below
    wall, cpu, stages = spent_seconds(study, finished, base)
    if not stages:
        return []
    # Models trained again because an earlier sitting's machine took them (the data stages' remakes take seconds).
    remakes = [remake for manifest in finished if manifest["stage"] in ("sft", "train")
               for remake in manifest.get("remade", [])]
    remade = (f" Besides, {len(remakes)} training{'s were' if len(remakes) != 1 else ' was'} made again because "
              "their models were lost with an earlier "
              f"sitting's machine: {sum(r['seconds'] for r in remakes) / 3600:.1f} hours wall, "
              f"{sum(r['cpu_seconds'] for r in remakes) / 3600:.1f} hours CPU, not in the totals above (the same work). "
              "A model made again is not bit-identical to its first making (floating-point sums differ across "
              "machines and thread schedules), so an evaluation kept from the first making (a tuning choice's "
              "validation score, a finished run's test scores) describes that model, and what was trained or "
              "evaluated after the remake, the remake."
              if remakes else "")
    unmeasured = (" The base student's evaluation is in the wall time only: its CPU time was not measured."
                  if base is not None and "cpu_seconds" not in base else "")
    counted = f"{stages} finished stages" + (" and the base student's evaluation" if base is not None else "")
    return [f"Spent so far, measured: {wall / 3600:.1f} hours wall, {cpu / 3600:.1f} hours CPU (all threads) in "
            f"{counted} (tuning included; an adopted stage counted once; a stage resumed after an interruption counts "
            f"its killed sittings up to the last file they wrote).{unmeasured}{remade}", "",
            *machine_lines(finished)]


def finished_stages(study: Study) -> list[dict[str, Any]]:
    """The manifest of every finished stage under the run root, but adopted ones (the same work, counted once)."""
    manifests = [json.loads(path.read_text()) for path in sorted(study.run_root.rglob("manifest.json"))]
    return [m for m in manifests if "stage" in m and "seconds" in m and "adopted_from" not in m]


def spent_seconds(study: Study, stages: list[dict[str, Any]] | None = None,
                  base: dict[str, Any] | None = None) -> tuple[float, float, int]:
    """Wall and CPU seconds of every finished stage under the run root (adopted stages are the same work: skipped),
    plus the base student's kept evaluation, which no stage counts (it ran outside one, or inside a stage that was
    cleared; its CPU seconds where they were measured). `stages` and `base`: finished_stages and _kept_base_cost,
    when already read."""
    stages = finished_stages(study) if stages is None else stages
    base = (_kept_base_cost(study) if base is None else base) or {"seconds": 0.0}
    wall = sum(float(manifest["seconds"]) for manifest in stages)
    cpu = sum(float(manifest.get("cpu_seconds", 0.0)) for manifest in stages)
    return wall + float(base["seconds"]), cpu + float(base.get("cpu_seconds", 0.0)), len(stages)


def machine_lines(stages: list[dict[str, Any]]) -> list[str]:
    """Which machines measured the finished stages' seconds (a study spans sittings on several machines), from
    their manifests (finished_stages); stages finished before manifests named their machine are counted apart."""
    counts = Counter(
        "not recorded (finished before manifests named their machine)" if machine is None else machine_name(machine)
        for machine in (manifest.get("machine") for manifest in stages))
    if not counts:
        return []
    return ["Machines that measured them: " + "; ".join(f"{name}: {count} stage{'s' * (count != 1)}"
                                                        for name, count in counts.items()) + ".", ""]
