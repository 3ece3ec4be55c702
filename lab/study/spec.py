"""The scale-model study: a spec (lab/configs/study.yaml) of methods, each an `exgrpo run` configuration,
run for several seeds into <run_root>/seed<S>/<method>/, sharing what methods have in common: one teacher
cache (<run_root>/teacher_cache.jsonl: no call is paid twice across methods and seeds), and per seed the
first method's tiny base student.

The spec's `common` section is deep-merged with each method's overrides (null removes a stage). Keys the
study reads itself and removes before the run config is built:
- title: the method's name in the report;
- data_fraction: set on both training stages (the data-efficiency runs);
- sft_model_from: M: no SFT stage, RL starts from method M's SFT model (ablations share one EI-SFT);
- own_base: build this run's own base student (otherwise the seed's first method's base is reused);
- compute_match: M: SFT epochs chosen so that the student trains on as many tokens as method M did;
  with compute_match_on: cpu_seconds, SFT steps chosen so that its training takes as much CPU time as M's (SFT
  and RL, sampling and reference passes included), at the CPU time per step of method compute_match_rate_from's
  run of the same seed (the same training, fewer steps); compute_match_stages: [sft] matches M's SFT stage only
  (a cut budget's: without its RL stage's seconds);
- tuning_from: M: use method M's tuned learning rates (a data-efficiency run is not tuned on its own);
- seeds: [S, ...]: run this method for these of the study's seeds only (a cut budget's fewer seeds);
- train.teacher_model_from: M: the distillation teacher is method M's SFT model (a train section of another
  method than exgrpo replaces the common one instead of being merged into it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from exgrpo.config import load_yaml
from exgrpo.errors import ConfigError
from exgrpo.files import atomic_write_text
from exgrpo.models.named import resolve_model
from exgrpo.runner.layout import EvalFolder, RunLayout
from exgrpo.runner.results import RunResults, mean_accuracy, question_verdicts, read_evaluation
from exgrpo.runner.stage_configs import base_path, eval_config, sft_config

STUDY_KEYS = ("title", "data_fraction", "sft_model_from", "own_base", "compute_match", "compute_match_on",
              "compute_match_rate_from", "compute_match_stages", "tuning_from", "seeds")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Study:
    def __init__(self, spec_path: str | Path, run_root: str | Path | None = None) -> None:
        self.spec_path = Path(spec_path)
        spec = load_yaml(self.spec_path)
        for key in ("common", "methods", "seeds"):
            if key not in spec:
                raise ConfigError(f"{self.spec_path}: the study spec needs a `{key}` section")
        self.common: dict[str, Any] = spec["common"]
        self.methods: dict[str, dict[str, Any]] = spec["methods"]
        self.seeds: list[int] = list(spec["seeds"])
        self.run_root = Path(run_root or spec.get("run_root", "runs/study"))
        # The committed copy of the small files the page reads (lab/study/record.py); none: the run root itself.
        self.record_root = Path(spec["record_root"]) if spec.get("record_root") and run_root is None else self.run_root
        self.notes: dict[str, str] = spec.get("notes", {})  # per page section: what the numbers cannot say
        # Datasets the page keeps out of the held-in / held-out averages: `validation` (read while developing,
        # never for results) and `outside` (real benchmarks, an outside check reported on their own).
        # Also rerun_policy, cut (the cuts in their order) and cut_applied (which of them, when): sentences the page
        # prints.
        self.report: dict[str, Any] = spec.get("report", {})
        self.tuning: dict[str, Any] = spec.get("tuning", {})  # learning rates chosen on validation (study/tuning.py)
        self.goals_spec: dict[str, Any] | None = spec.get("goals")  # primary and secondary goals (study/goals.py)
        self.first = next(iter(self.methods))
        # The device and precision its runs compute in (`machine`): checked before any training (check_machine).
        self.machine: dict[str, Any] = spec.get("machine") or {}
        if (self.machine.get("precision", "bfloat16") not in ("bfloat16", "float32")
                or self.machine.get("device", "cpu") not in ("cpu", "cuda") or set(self.machine) - {"precision", "device"}):
            raise ConfigError(f"{self.spec_path}: machine: only `device: cpu | cuda` and `precision: bfloat16 | float32` "
                              f"are understood, not {self.machine}")
        evaluated = set((self.common.get("eval") or {}).get("datasets") or [])
        for key in ("validation", "outside"):
            for name in self.report.get(key, []):
                if evaluated and name not in evaluated:  # else the page would drop it without a word
                    raise ConfigError(f"{self.spec_path}: report.{key}: {name!r} is not one of common.eval.datasets")
        # The seeds whose runs evaluate the outside check (a cut budget's: the others skip those datasets).
        self.outside_seeds: list[int] = list(self.report.get("outside_seeds", self.seeds))
        if set(self.outside_seeds) - set(self.seeds) or not self.report.get("outside") and "outside_seeds" in self.report:
            raise ConfigError(f"{self.spec_path}: report.outside_seeds: {self.outside_seeds} must be some of the "
                              f"study's seeds {self.seeds}, with report.outside naming the datasets")
        for name, method in self.methods.items():
            for key in ("sft_model_from", "compute_match", "compute_match_rate_from", "tuning_from"):
                if key in method and method[key] not in self.methods:
                    raise ConfigError(f"{self.spec_path}: methods.{name}.{key}: no method {method[key]!r}")
            stages = method.get("compute_match_stages", ["sft", "train"])
            if not stages or set(stages) - {"sft", "train"}:
                raise ConfigError(f"{self.spec_path}: methods.{name}.compute_match_stages: some of sft, train, "
                                  f"not {stages}")

    def check_machine(self) -> None:
        """Refuse to train or evaluate on a machine where the study's runs would compute otherwise than they did: on
        another device, or where `dtype: auto` means another precision. Its numbers would differ from theirs, and
        its CPU seconds (which compute matching and the cost columns compare) would not be comparable (SmolLM2 in
        fp32 on an AVX2-only CPU takes ~3-4x longer than in bf16 with avx512_bf16)."""
        import torch

        from exgrpo.models.precision import machine_description, use_bf16

        machine = machine_description()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        wanted_device = self.machine.get("device")
        if wanted_device is not None and device != wanted_device:
            raise ConfigError(f"{self.spec_path}: machine.device: this study computes on {wanted_device} (its CPU "
                              f"seconds are compared), this machine on {device} ({machine})")
        wanted = self.machine.get("precision")
        if wanted is None:
            return
        base = self.common.get("base_model")
        model = resolve_model(base) if base else None
        # Every stage that runs the student: one left on `auto` would follow the machine, whatever the others say.
        computed = {stage: "bfloat16" if use_bf16((self.common.get(stage) or {}).get("dtype", "auto"), model)
                    else "float32" for stage in ("sft", "train", "eval")}
        other = sorted(stage for stage, precision in computed.items() if precision != wanted)
        if other:
            here = computed[other[0]]
            where = ("a CPU with avx512_bf16 or AMX" if wanted == "bfloat16"
                     else f"a CPU without native bf16, or set common.{other[0]}.dtype: float32"
                     ) if device == "cpu" else "a GPU that computes in it"
            raise ConfigError(
                f"{self.spec_path}: machine.precision: this study computes in {wanted}, but on this machine "
                f"({machine['cpu']}, {machine['cores']} cores, native bf16: {machine['native_bf16']}) its student "
                f"would compute in {here} ({', '.join(other)}): other numbers and other CPU seconds than its runs'. "
                f"Run it on {where}; `report` and `record` still work here.")

    def run_dir(self, seed: int, method: str) -> Path:
        return self.run_root / f"seed{seed}" / method

    def sft_source(self, method: str) -> str:
        """The method whose SFT stage trained `method`'s SFT model: its sft_model_from, else itself."""
        return self.methods[method].get("sft_model_from", method)

    def method_seeds(self, method: str) -> list[int]:
        return [seed for seed in self.seeds if seed in self.methods[method].get("seeds", self.seeds)]

    def run_order(self) -> list[tuple[int, str]]:
        """Every (seed, method) run, in the order the study script runs them: those that fit in a sitting (SFT only,
        matched on nothing) first, then the long ones (an RL stage, or trained for another arm's CPU seconds). The
        run folders do not outlive a sitting's machine when it is lost, and a run in progress goes with them: short
        runs first bank in the record all that one sitting can finish. Within each group the primary goal's arms
        come first, every seed of them, then the others seed by seed, in the spec's order."""
        from lab.study.goals import spec_goals

        primary = {row.method for goal in spec_goals(self) if goal.primary for row in (goal.better, goal.worse)}
        runs = [(seed, method) for seed in self.seeds for method in self.methods if seed in self.method_seeds(method)]

        def long(method: str) -> bool:
            spec = self.methods[method]
            return "compute_match" in spec or deep_merge(self.common, spec).get("train") is not None

        # A stable sort: the spec's order within a seed.
        return sorted(runs, key=lambda run: (long(run[1]), run[1] not in primary, run[0]))

    def title(self, method: str) -> str:
        return self.methods[method].get("title", method)

    def run_values(self, method: str, seed: int, sft_overrides: dict[str, Any] | None = None,
                   apply_tuning: bool = True) -> dict[str, Any]:
        """The method's `exgrpo run` configuration for a seed, as a plain mapping (validated by RunConfig), with
        the learning rates its tuning chose on validation, once chosen."""
        spec = self.methods[method]
        values = deep_merge(self.common, {k: v for k, v in spec.items() if k not in STUDY_KEYS})
        if isinstance(spec.get("train"), dict) and spec["train"].get("method", "exgrpo") != "exgrpo":
            values["train"] = copy.deepcopy(spec["train"])  # another RL method shares none of ExGRPO's settings
        values["run_dir"] = str(self.run_dir(seed, method))
        values["name"] = self.title(method)
        first = self.run_dir(seed, self.first)
        if values.get("student") is not None:
            values["student"]["seed"] = seed
        # One teacher cache for the whole study: the teacher's calls do not depend on the method or the seed.
        values["probe"]["cache_path"] = str(self.run_root / "teacher_cache.jsonl")
        if method != self.first and not spec.get("own_base") and values.get("student") is not None:
            values.pop("student")  # a tiny student is built once per seed, by the first method
            values["base_model"] = str(RunLayout(first).base_model)
        for stage in ("sft", "train"):
            if values.get(stage) is not None:
                values[stage]["seed"] = seed
                if "data_fraction" in spec:
                    values[stage]["data_fraction"] = spec["data_fraction"]
        if "sft_model_from" in spec:
            values["sft_model"] = str(RunLayout(self.run_dir(seed, spec["sft_model_from"])).final_model("sft"))
        train = values.get("train")
        if train is not None and "teacher_model_from" in train:
            teacher_run = RunLayout(self.run_dir(seed, train.pop("teacher_model_from")))
            train["teacher_model"] = str(teacher_run.final_model("sft"))
        if sft_overrides:
            values["sft"].update(sft_overrides)
        if apply_tuning:
            from lab.study.tuning import read_choice

            for stage, learning_rate in read_choice(self, spec.get("tuning_from", method)).items():
                if values.get(stage) is not None:
                    values[stage]["learning_rate"] = learning_rate
        values["eval"].setdefault("models", ["exgrpo" if train is not None else "sft"])
        if seed not in self.outside_seeds:
            outside = set(self.report.get("outside", []))
            values["eval"]["datasets"] = [name for name in values["eval"]["datasets"] if name not in outside]
        return values

    def run_config(self, method: str, seed: int, sft_overrides: dict[str, Any] | None = None) -> Any:
        from exgrpo.config import build_config
        from exgrpo.config.run import RunConfig

        return build_config(RunConfig, self.run_values(method, seed, sft_overrides), f"{self.spec_path}: methods.{method}")


def student_tokens(run_dir: Path) -> dict[str, float]:
    """Tokens the student trained on (TRL's num_tokens: every input token of every step), per stage, over all the
    sittings of a resumed training."""
    run = RunResults.of(run_dir)
    tokens = {stage: run.trained_tokens(stage) for stage in ("sft", "train")}
    return {stage: count for stage, count in tokens.items() if count is not None}


def _matched_epochs(study: Study, method: str, seed: int) -> float:
    """SFT epochs that give `method` as many student training tokens as its compute_match target used (its own
    SFT data's tokens per epoch measured by the tokenizer over TRL's chat template)."""
    from transformers import AutoTokenizer

    from exgrpo.training.sft_data import sft_examples

    target_method = study.methods[method]["compute_match"]
    target_dir = study.run_dir(seed, target_method)
    target = sum(student_tokens(target_dir).values())
    if target_method in {m for m, s in study.methods.items() if "sft_model_from" in s}:
        raise ConfigError("compute_match must name a method that trains its own SFT model")
    config = study.run_config(method, seed)
    # Its probe stage has not run yet; every method of a seed probes alike, so the first method's data is its.
    sft = sft_config(config).model_copy(update={"ei_data": RunLayout(study.run_dir(seed, study.first)).ei_data})
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_path(config)))
    per_epoch = sum(len(tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=False))
                    for example in sft_examples(sft))
    return round(max(target / per_epoch, 1.0), 2)


def _matched_cpu_steps(study: Study, method: str, seed: int) -> int:
    """SFT steps that take as much CPU time as the target's training (its SFT, wherever that was trained, and RL),
    at the CPU seconds per step that compute_match_rate_from's run of this seed measured."""
    from lab.study.tables import optimizer_steps, stage_seconds

    spec = study.methods[method]
    target = spec["compute_match"]
    source = study.sft_source(target)
    stages = compute_match_stages(study, method)
    budget = ((stage_seconds(study.run_dir(seed, source), "sft", "cpu_seconds") if "sft" in stages else 0.0)
              + (stage_seconds(study.run_dir(seed, target), "train", "cpu_seconds") if "train" in stages else 0.0))
    rate_dir = study.run_dir(seed, spec.get("compute_match_rate_from", ""))
    steps = optimizer_steps(rate_dir, "sft")
    per_step = stage_seconds(rate_dir, "sft", "cpu_seconds") / steps if steps else 0.0
    if budget <= 0 or per_step <= 0:
        raise ConfigError(f"{study.spec_path}: methods.{method}: match on CPU seconds needs seed {seed}'s finished "
                          f"{target} and {spec.get('compute_match_rate_from')} runs (run them first)")
    return max(1, round(budget / per_step))


def compute_match_stages(study: Study, method: str) -> list[str]:
    """The stages of its compute_match target whose CPU seconds a method is matched on (both, unless cut)."""
    return list(study.methods[method].get("compute_match_stages", ["sft", "train"]))


def compute_matched_sft(study: Study, method: str, seed: int) -> dict[str, Any]:
    """The SFT settings that match the method's compute to its compute_match target's, on tokens (epochs) or
    on CPU seconds (steps)."""
    if study.methods[method].get("compute_match_on", "tokens") == "cpu_seconds":
        return {"max_steps": _matched_cpu_steps(study, method, seed)}
    return {"epochs": _matched_epochs(study, method, seed)}


def held_out_datasets(study: Study) -> list[str]:
    """The held-out splits the page averages (the validation split and the outside check set apart)."""
    from exgrpo.config import expand_dataset_names
    from exgrpo.runner.registry import run_registry

    config = study.run_config(study.first, study.seeds[0])
    registry = run_registry(config)  # a synthetic world's datasets too
    apart = set(expand_dataset_names(study.report.get("outside", []) + study.report.get("validation", [])))
    return [name for name in expand_dataset_names(config.eval.datasets)
            if name not in apart and registry.get(name).group == "held_out"]


def checkpoint_model(checkpoint: Path, folder: Path) -> str:
    """A loadable model of an RL checkpoint: the folder itself, or a LoRA checkpoint (an adapter only) merged
    into the model it was trained from, saved once under `folder`."""
    if not (checkpoint / "adapter_config.json").exists():
        return str(checkpoint)
    merged = folder / "merged"
    if not (merged / "config.json").exists():
        from peft import AutoPeftModelForCausalLM
        from transformers import AutoTokenizer

        model = AutoPeftModelForCausalLM.from_pretrained(str(checkpoint)).merge_and_unload()
        partial = folder / "merged.partial"
        model.save_pretrained(partial)
        AutoTokenizer.from_pretrained(str(checkpoint)).save_pretrained(partial)
        partial.replace(merged)
    return str(merged)


def evaluate_checkpoints(study: Study, seed: int, datasets: list[str]) -> dict[int, float]:
    """Held-out accuracy (mean of `datasets`) of every saved checkpoint of the first method's RL stage (the DSU
    diagnostics), into its run's diagnostics/ folder (resumable like any evaluation); step -> accuracy. A checkpoint
    holding the trained model's weights (the last one) is not evaluated again: the eval stage has its accuracy
    (held_out_curve reads it there)."""
    from exgrpo.evaluation.evaluate import evaluate
    from exgrpo.runner.registry import run_registry

    config = study.run_config(study.first, seed)
    registry = run_registry(config)
    accuracy: dict[int, float] = {}
    if not datasets:
        return accuracy
    train = RunLayout(config.run_dir).stage_dir("train")
    last = final_step(config.run_dir)
    for checkpoint in sorted(train.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        if int(checkpoint.name.split("-")[1]) == last:
            continue
        folder = checkpoint_evaluation(config.run_dir, checkpoint.name).path
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint_eval = eval_config(config, "exgrpo", registry).model_copy(update={
            "model": checkpoint_model(checkpoint, folder), "datasets": datasets, "output_dir": folder})
        accuracy[int(checkpoint.name.split("-")[1])] = mean_accuracy(evaluate(checkpoint_eval, registry=registry),
                                                                      datasets)
    return accuracy


def final_step(run_dir: Path) -> int | None:
    """The step a run's RL stage ended at, from its log history (kept in the record): its final model holds that
    step's weights (merged, where it trained a LoRA adapter, so the files do not compare)."""
    history = RunResults.of(run_dir).training_log("train") or []
    return max((entry["step"] for entry in history if "step" in entry), default=None)


def finished(config: Any) -> bool:
    """A run whose evaluation and report are done (restored from the study's record or made here): nothing of it
    is run again, though its models may not be on this machine."""
    from exgrpo.runner.plan import plan

    done = {stage: is_done for stage, _, is_done in plan(config)}
    return done["eval"] and done["report"]


def make_models(config: Any, until: str, log: Any = print) -> None:
    """Make a run's stages up to `until` again where their outputs are missing (a run still to do starts from its
    model, and this machine has only the record of it)."""
    from exgrpo.runner.layout import STAGES
    from exgrpo.runner.plan import plan
    from lab.study.remakes import run_stages

    if all(is_done for _, _, is_done in plan(config)[:STAGES.index(until) + 1]):
        return
    log(f"  {config.run_dir}: its stages up to {until} made again (a later run starts from them)")
    run_stages(config, until=until, on_stage=lambda stage, status: log(f"  {config.run_dir} {stage}: {status}"))


def write_teacher_tokens(config: Any) -> None:
    """Keep the teacher-written tokens an SFT stage trained on beside the run (the page reads them from the record:
    counting them needs the probe data, which a later machine does not have)."""
    from lab.study.tables import teacher_tokens

    path = config.run_dir / "teacher_tokens.json"
    if sft_config(config) is not None and not path.exists() and RunLayout(config.run_dir).ei_data.exists():
        atomic_write_text(path, json.dumps({"teacher_tokens": teacher_tokens(config)}))


def _kept_accuracy(folder: EvalFolder, datasets: list[str], keep: Any) -> float | None:
    """The mean over `datasets` of the accuracy (%) of the questions whose id passes `keep`, from an evaluation's
    predictions; a split left with no question counts in no mean (a held-out split of one left-out family), as in
    the page's tables. None when one of them is missing, or none keeps a question."""
    values = []
    for name in datasets:
        path = folder.predictions(name)
        if not path.exists():
            return None
        kept = [correct for qid, correct in question_verdicts(path).items() if keep(qid)]
        if kept:
            values.append(100 * sum(kept) / len(kept))
    return sum(values) / len(values) if values else None


DIAGNOSTICS = "diagnostics"  # the lab's evaluations of a run's RL checkpoints, beside the runner's stage folders


def checkpoint_evaluation(run_dir: Path, checkpoint: str) -> EvalFolder:
    """Where evaluate_checkpoints evaluates one RL checkpoint (checkpoint-N) of a run."""
    return EvalFolder(run_dir / DIAGNOSTICS / checkpoint)


def checkpoint_evaluations(run_dir: Path) -> list[EvalFolder]:
    return [checkpoint_evaluation(run_dir, folder.name) for folder in sorted((run_dir / DIAGNOSTICS).glob("checkpoint-*"))]


def held_out_curve(run_dir: Path, datasets: list[str], keep: Any = None) -> dict[int, float]:
    """The held-out accuracy (mean of `datasets`) of a run's RL stage by step, from its reports (the checkpoints
    themselves are not kept): step 0 is the SFT model it started from, the last step the trained model (the eval
    stage's), and the steps between are the checkpoints that evaluate_checkpoints evaluated. With `keep` (a question
    id -> bool, the page's families left out of its averages), from the predictions, over the kept questions only:
    the same average as the page's tables."""
    layout = RunLayout(run_dir)
    folders = {0: layout.evaluation("sft")}
    for checkpoint in checkpoint_evaluations(run_dir):
        folders[int(checkpoint.path.name.split("-")[1])] = checkpoint
    last = final_step(run_dir)
    if last is not None:
        folders[last] = layout.evaluation("exgrpo")
    curve = {}
    for step, folder in sorted(folders.items()):
        evaluation = read_evaluation(folder)
        if evaluation is None:
            continue
        value = (mean_accuracy(evaluation.report, datasets) if keep is None
                 else _kept_accuracy(folder, datasets, keep))
        if value is not None:
            curve[step] = value
    return curve


def evaluate_base_first(study: Study, config: Any, log: Any = print) -> bool:
    """Evaluate the base student on its own, before the run's stages, when the study has no kept evaluation of it:
    kept and recorded at once (its predictions are named by the pinned model, good on any later machine), it never
    runs again, and the eval stage it would otherwise open (with the trained models after it) is shorter, less likely
    to be cut by the end of a sitting, which loses a whole unfinished stage. Outside any stage, its time is counted
    once, as the kept evaluation's."""
    import time

    from exgrpo.evaluation.evaluate import evaluate
    from exgrpo.runner.registry import run_registry
    from exgrpo.runner.run import measured_cost, process_cpu_seconds
    from lab.study.record import record
    from lab.study.remakes import run_stages
    from lab.study.reuse import keep_base_evaluation, kept_base_evaluation

    if "base" not in config.evaluated_models() or kept_base_evaluation(study.run_root).exists():
        return False
    # The world's questions (and a tiny student) first.
    run_stages(config, until="base", on_stage=lambda stage, status: log(f"  {config.run_dir} {stage}: {status}"))
    log(f"  {config.run_dir}: the base student evaluated first, on its own")
    started, cpu_started = time.time(), process_cpu_seconds()
    registry = run_registry(config)  # the world's datasets too
    evaluate(eval_config(config, "base", registry), registry=registry)
    cost = measured_cost(time.time() - started, process_cpu_seconds() - cpu_started)
    kept = keep_base_evaluation(config, study.run_root, cost)
    log(f"  {config.run_dir}: {record(study)} files recorded in {study.record_root}")
    return kept


def run_seed(study: Study, seed: int, methods: list[str] | None = None, log: Any = print) -> None:
    """Every method (or the named ones) for one seed, in the spec's order; finished stages are skipped, and a run
    that the record holds finished is not run again."""
    from lab.study.noise import reevaluate
    from lab.study.record import record
    from lab.study.remakes import run_stages
    from lab.study.reuse import adopt_base_evaluation, keep_base_evaluation, prune_sft_checkpoints
    from lab.study.tuning import adopt_chosen

    for method in methods or list(study.methods):
        if seed not in study.method_seeds(method):
            log(f"seed {seed} {method}: not run for this seed (methods.{method}.seeds)")
            continue
        overrides = compute_matched_sft(study, method, seed) if "compute_match" in study.methods[method] else None
        config = study.run_config(method, seed, overrides)
        if finished(config):
            log(f"seed {seed} {method}: finished ({config.run_dir}), not run again")
            if reevaluate(study, method, seed, log):  # a sitting that ended between the two evaluations
                log(f"  seed {seed} {method}: {record(study)} files recorded in {study.record_root}")
            continue
        config.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config.run_dir / "config.yaml",
                          yaml.safe_dump(study.run_values(method, seed, overrides), sort_keys=False))
        log(f"seed {seed} {method}: {config.run_dir}")
        source = study.methods[method].get("sft_model_from")
        if source is not None:  # its RL starts from that method's SFT model, which must be on this machine
            source_config = study.run_config(source, seed)
            adopt_chosen(study, source, seed, source_config, log)
            make_models(source_config, "sft", log)
        for stage in adopt_chosen(study, method, seed, config, log):
            log(f"  seed {seed} {method} {stage}: adopted from its chosen tuning candidate (the same run)")
        keep_base_evaluation(config, study.run_root)  # before a changed eval stage is cleared
        evaluate_base_first(study, config, log)
        if adopt_base_evaluation(study.run_root, config):
            log(f"  seed {seed} {method} eval: the base student's predictions copied from its kept evaluation")
        run_stages(config, on_stage=lambda stage, status, m=method: log(f"  seed {seed} {m} {stage}: {status}"))
        keep_base_evaluation(config, study.run_root)
        write_teacher_tokens(config)
        prune_sft_checkpoints(config.run_dir)
        if method == study.first:
            accuracy = evaluate_checkpoints(study, seed, held_out_datasets(study))
            log(f"  seed {seed} {method} checkpoints before the last, held-out accuracy: {accuracy}")
        reevaluate(study, method, seed, log)  # while its model is on this machine
        log(f"  seed {seed} {method}: {record(study)} files recorded in {study.record_root}")
