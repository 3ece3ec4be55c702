"""`exgrpo run`: validation before work, the plan, stage skipping, --from, a change redoing what follows,
resuming after a failed stage, and the paper recipes' dry runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exgrpo.config import (
    DistillStageConfig,
    EvalConfig,
    SFTStageConfig,
    TrainConfig,
    build_config,
    load_config,
)
from exgrpo.config.run import RunConfig
from exgrpo.data.registry import DATASETS_FILE
from exgrpo.errors import ConfigError
from exgrpo.runner.layout import STAGES, RunLayout
from exgrpo.runner.plan import plan
from exgrpo.runner.registry import run_registry
from exgrpo.runner.report import write_docs_page
from exgrpo.runner.run import run
from exgrpo.runner.stage_configs import (
    base_path,
    eval_config,
    model_paths,
    probe_config,
    sft_config,
    stage_configs,
    train_config,
)

REPO = Path(__file__).parents[1]


def micro_recipe(run_dir: Path) -> dict[str, Any]:
    """The quickstart recipe shrunk to seconds: a handful of problems, a 1-layer student, 2 steps each."""
    recipe = yaml.safe_load((REPO / "configs" / "quickstart_tiny.yaml").read_text())
    recipe.update(run_dir=str(run_dir), world={"seed": 0, "train_size": 6, "test_size": 2, "ood_size": 2},
                  student={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 400,
                           "pretrain_epochs": 1})
    recipe["probe"]["difficulty"]["max_new_tokens"] = 8
    recipe["sft"].update(epochs=1, max_length=512, report_to=["none"])
    recipe["train"].update(max_steps=2, max_new_tokens=8, report_to=["none"], logging_steps=1)
    recipe["eval"].update(max_new_tokens=8)
    return recipe


def statuses(config: RunConfig, from_stage: str | None = None, on_progress: Any = None) -> dict[str, str]:
    seen: dict[str, str] = {}
    run(config, from_stage, on_stage=lambda stage, status: seen.__setitem__(stage, status), on_progress=on_progress)
    return seen


def assert_written_where_the_layout_says(config: RunConfig) -> None:
    layout = RunLayout(config.run_dir)
    manifests = {stage: json.loads(layout.manifest(stage).read_text()) for stage in STAGES}
    expected = [layout.teacher_cache, layout.base_model, layout.ei_data, layout.report_markdown, layout.results_json,
                layout.results_png, *(layout.world_split(name) for name in manifests["world"]["outputs"]),
                *(layout.final_model(stage) for stage in ("sft", "train")),
                *(layout.log_history(stage) for stage in ("sft", "train"))]
    for model in config.evaluated_models():
        evaluation = layout.evaluation(model)
        expected += [evaluation.report, *(evaluation.predictions(name) for name in manifests["eval"]["outputs"][model])]
    assert [path for path in expected if not path.exists()] == []
    # Nothing of a run lies outside its stage folders and the teacher cache (with its call log).
    assert {path.name for path in config.run_dir.iterdir()} <= {*STAGES, layout.teacher_cache.name,
                                                               f"{layout.teacher_cache.name}.calls.json"}


@pytest.mark.slow
def test_stages_run_once_skip_on_rerun_and_redo_from_a_stage(tmp_path: Path) -> None:
    config = build_config(RunConfig, micro_recipe(tmp_path / "run"), "test")
    progress: dict[str, tuple[int, int]] = {}
    first = statuses(config, on_progress=lambda task, done, total: progress.__setitem__(task, (done, total)))
    assert list(first) == STAGES and all(status.startswith("done") for status in first.values())
    # The eval stage reports each model's progress per dataset, to the last question.
    assert {"eval base: world_test", "eval sft: world_ood_steps", "eval exgrpo: world_ei_test"} <= set(progress)
    assert all(done == total > 0 for done, total in progress.values())
    assert_written_where_the_layout_says(config)
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "| EI + ExGRPO |" in report and (tmp_path / "run" / "report" / "results.png").stat().st_size > 1000
    manifest = json.loads((tmp_path / "run" / "probe" / "manifest.json").read_text())
    assert manifest["outputs"]["datasets"]["world_train"]["questions"] == 24
    sft = json.loads((tmp_path / "run" / "sft" / "manifest.json").read_text())
    assert 0 < sft["cpu_seconds"] <= sft["seconds"] * (os.cpu_count() or 1) + 1  # CPU time of every thread
    assert sft["machine"]["cores"] == os.cpu_count() and isinstance(sft["machine"]["native_bf16"], bool)
    assert set(statuses(config).values()) == {"skipped (done)"}
    # The quickstart page gives the stages' own times, so a page rewritten after a rerun that skipped all says
    # what the run cost, not the seconds the rerun took.
    page = tmp_path / "page.md"
    write_docs_page(config.run_dir, page, recipe="configs/quickstart_tiny.yaml", student="a tiny student")
    assert f"sft {sft['seconds']:.0f} s" in page.read_text() and (tmp_path / "page.png").exists()
    redo = statuses(config, from_stage="train")
    assert [redo[s] for s in ("world", "base", "probe", "sft")] == ["skipped (done)"] * 4
    assert all(redo[s].startswith("done") for s in ("train", "eval", "report"))
    changed = micro_recipe(tmp_path / "run")
    changed["train"]["learning_rate"] = 1e-4  # a new train config redoes train and what follows
    after = statuses(build_config(RunConfig, changed, "test"))
    assert after["sft"] == "skipped (done)" and after["train"].startswith("done")
    # ... from scratch: the old configuration's checkpoints are not resumed
    history = json.loads((tmp_path / "run" / "train" / "log_history.json").read_text())
    assert [round(e["learning_rate"], 8) for e in history if "learning_rate" in e][0] == 1e-4
    assert (tmp_path / "run" / "teacher_cache.jsonl").exists()  # paid teacher calls outlive any stage


@pytest.mark.slow
def test_a_run_that_dies_in_a_stage_resumes_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exgrpo.runner.stages as stages

    config = build_config(RunConfig, micro_recipe(tmp_path / "run"), "test")

    def dies(_: RunConfig, on_progress: Any) -> dict[str, Any]:
        (config.run_dir / "eval" / "kept.jsonl").write_text("{}\n")  # work a resumed evaluation keeps
        raise RuntimeError("killed")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "eval", dies)
    with pytest.raises(RuntimeError, match="killed"):
        run(config)
    assert [stage for stage, _, done in plan(config) if done] == ["world", "base", "probe", "sft", "train"]
    monkeypatch.undo()
    # The killed sitting: started 100 s ago, last wrote 40 s ago; its 60 s of kept work count in the manifest.
    # It ran on another machine: the resumed stage says so, and its manifest names it.
    started = config.run_dir / "eval" / "started.json"
    now = json.loads(started.read_text())["started_at"]
    elsewhere = {"cpu": "Some Other CPU", "cores": 64, "native_bf16": False}
    started.write_text(json.dumps({**json.loads(started.read_text()), "started_at": now - 100, "machine": elsewhere}))
    os.utime(config.run_dir / "eval" / "kept.jsonl", (now - 40, now - 40))
    seen: list[tuple[str, str]] = []
    run(config, on_stage=lambda stage, status: seen.append((stage, status)))
    resumed = dict(seen)
    assert resumed["train"] == "skipped (done)" and resumed["eval"].startswith("done")
    assert ("eval", "running (resuming work begun on another machine: Some Other CPU, 64 cores, no native bf16; the "
            "result mixes both machines' arithmetic, and `dtype: auto` may mean another precision here: use --from "
            "to redo the stage on this one alone)") in seen
    manifest = json.loads((config.run_dir / "eval" / "manifest.json").read_text())
    assert (manifest["sittings"], manifest["earlier_seconds"]) == (2, 60.0) and manifest["seconds"] >= 60.0
    assert manifest["other_machines"] == [elsewhere]
    assert ("report", "running") in seen  # a stage begun here says nothing of other machines
    assert "sittings" not in json.loads((config.run_dir / "train" / "manifest.json").read_text())  # one sitting


def test_each_run_registers_its_own_world_explicitly(tmp_path: Path) -> None:
    first = build_config(RunConfig, micro_recipe(tmp_path / "one"), "test")
    registry = run_registry(first)
    build_config(RunConfig, micro_recipe(tmp_path / "two"), "test")  # building a config registers nothing
    assert registry.get("world_test").base_dir == str(tmp_path / "one" / "world")
    assert run_registry(build_config(RunConfig, micro_recipe(tmp_path / "two"), "test")).get(
        "world_test").base_dir == str(tmp_path / "two" / "world")
    assert "world_test" not in run_registry(build_config(RunConfig, run_values(tmp_path), "x"))  # no world


def test_the_world_stage_leaves_its_datasets_file_and_writes_a_missing_one_again(tmp_path: Path) -> None:
    config = build_config(RunConfig, micro_recipe(tmp_path / "run"), "test")
    run(config, until="world")
    datasets_file = tmp_path / "run" / "world" / DATASETS_FILE
    assert datasets_file.exists()
    datasets_file.unlink()  # a world written by an exgrpo without datasets files
    assert not plan(config)[0][2]
    assert statuses_until(config, "world") == {"world": "running"} and datasets_file.exists()
    assert plan(config)[0][2]


def statuses_until(config: RunConfig, until: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    run(config, until=until, on_stage=lambda stage, status: seen.setdefault(stage, status))
    return seen


def test_an_invalid_section_stops_the_run_before_any_stage(tmp_path: Path) -> None:
    config = build_config(RunConfig, micro_recipe(tmp_path / "run"), "test")
    config.eval.batch_size = 0  # only the eval stage's own config would notice (eval.max_new_tokens: train's too)
    with pytest.raises(ConfigError, match="eval section"):
        run(config)
    assert not (tmp_path / "run").exists()


def test_config_errors_name_the_section_and_field(tmp_path: Path) -> None:
    recipe = micro_recipe(tmp_path / "run")
    recipe["train"]["exgrpo"]["k_partial"] = 5
    with pytest.raises(ConfigError, match=r"(?s)test: invalid.*train\.exgrpo: .*k_partial"):
        build_config(RunConfig, recipe, "test")  # when the file loads; the message spans lines
    recipe = micro_recipe(tmp_path / "run")
    recipe["base_model"] = "some/model"
    with pytest.raises(ConfigError, match="exactly one of `student`"):
        build_config(RunConfig, recipe, "test")


@pytest.mark.parametrize(("section", "key", "reported"), [
    ("sft", "learnig_rate", "sft.learnig_rate"), ("train", "questons_per_step", "train.questons_per_step"),
    ("probe", "max_token", "probe.max_token"), ("probe.difficulty", "max_new_token", "probe.difficulty.max_new_token"),
    ("probe.teacher", "worl", "probe.teacher.exact.worl"), ("eval", "max_new_token", "eval.max_new_token")])
def test_a_misspelt_key_is_reported_with_its_path_when_the_file_loads(tmp_path: Path, section: str, key: str,
                                                                     reported: str) -> None:
    recipe = micro_recipe(tmp_path / "run")
    where = recipe
    for part in section.split("."):
        where = where[part]
    where[key] = 1
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=rf"{path}: invalid configuration\n  {reported}: Extra inputs"):
        load_config(RunConfig, path)


def test_a_distillation_section_is_checked_as_one(tmp_path: Path) -> None:
    recipe = micro_recipe(tmp_path / "run")
    recipe["train"] = {"method": "distill", "teacher_model": "t", "exgrpo": {"k": 2}}  # an ExGRPO setting
    with pytest.raises(ConfigError, match=r"train\.exgrpo: Extra inputs"):
        build_config(RunConfig, recipe, "test")
    recipe["train"] = {"method": "ppo"}
    with pytest.raises(ConfigError, match="train: .*'ppo' is not one of exgrpo, distill"):
        build_config(RunConfig, recipe, "test")


def test_the_exact_teachers_world_is_the_runs(tmp_path: Path) -> None:
    recipe = micro_recipe(tmp_path / "run")
    config = build_config(RunConfig, recipe, "test")
    assert probe_config(config).teacher.world == config.world  # type: ignore[union-attr]
    recipe["probe"]["teacher"]["world"] = {"seed": 5}  # would be ignored: refused
    with pytest.raises(ConfigError, match="probe.teacher.world: the exact teacher's world is the run's `world`"):
        build_config(RunConfig, recipe, "test")


def test_a_section_left_out_takes_the_stage_configs_defaults(tmp_path: Path) -> None:
    """One default per setting: the stage configs a run builds from bare sections are the stage schemas' own."""
    config = build_config(RunConfig, run_values(tmp_path), "x")
    eval_stage = eval_config(config, "base")
    assert eval_stage == EvalConfig(model="base/model", datasets=["gsm8k"], output_dir=eval_stage.output_dir)
    assert (eval_stage.max_new_tokens, eval_stage.batch_size) == (512, 16)  # `exgrpo eval`'s
    sft = sft_config(config)
    assert sft == SFTStageConfig(model="base/model", ei_data=sft.ei_data, output_dir=sft.output_dir)  # type: ignore[union-attr]
    train = train_config(config)
    # ... but one: the final answer's budget is the evaluation's (the reward judges answers under its cut).
    assert train == TrainConfig(model=train.model, ei_data=train.ei_data, output_dir=train.output_dir,  # type: ignore[union-attr]
                                max_answer_tokens=512)


def test_rl_final_answers_get_the_evaluations_budget_and_never_less(tmp_path: Path) -> None:
    config = build_config(RunConfig, run_values(tmp_path, train={"max_new_tokens": 64},
                                                eval={"datasets": ["gsm8k"], "max_new_tokens": 200}), "x")
    train = train_config(config)
    assert (train.max_new_tokens, train.max_answer_tokens) == (64, 200)  # type: ignore[union-attr]
    longer = run_values(tmp_path, train={"max_answer_tokens": 300}, eval={"datasets": ["gsm8k"], "max_new_tokens": 200})
    assert train_config(build_config(RunConfig, longer, "x")).max_answer_tokens == 300  # type: ignore[union-attr]
    tighter = run_values(tmp_path, train={"max_answer_tokens": 150}, eval={"datasets": ["gsm8k"], "max_new_tokens": 200})
    with pytest.raises(ConfigError, match=r"train.max_answer_tokens \(150\) is below eval.max_new_tokens \(200\).*"
                                          r"raise train.max_answer_tokens to at least 200"):
        build_config(RunConfig, tighter, "x")
    distill = run_values(tmp_path, train={"method": "distill", "teacher_model": "t", "max_new_tokens": 64})
    assert train_config(build_config(RunConfig, distill, "x")).max_new_tokens == 64  # type: ignore[union-attr]


# The quickstart recipes' stage hashes as exgrpo 0.x computed them (main at b94190b): a change of the run schema
# that changed one would redo every finished quickstart run from that stage on. Changed on purpose since: from the
# train stage on, when a run's final answers got the evaluation's budget (train.max_answer_tokens, issue 36); the
# quickstart from the world on, when its SFT made one whole pass over smaller EI data with probe dialogues and its
# RL stage became a real one (issue 36).
QUICKSTART_HASHES = {
    "quickstart.yaml": ["7512f36c1b7f3f7e", "95f7e15b78b9dc32", "a6db59af1bb66c9d", "3816c1f52a48d16f",
                        "78e2fedbb2ddc5ac", "5aa2a1e7927be2e4", "344a510c4eaea275"],
    "quickstart_tiny.yaml": ["b86ee07a6e5e7b7f", "881be4c702255a6f", "050d4a5c4795176e", "e3d842c7ad034ddf",
                             "adbde2ecd7fd0c6c", "f4ffe7680e00a709", "4c3c8879f78f0420"],
}


@pytest.mark.parametrize("name", sorted(QUICKSTART_HASHES))
def test_the_quickstart_recipes_keep_their_stage_hashes(name: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the recipe's run_dir is relative: no finished run of this checkout is read
    config = build_config(RunConfig, yaml.safe_load((REPO / "configs" / name).read_text()), name)
    assert [digest for _, digest, _ in plan(config)] == QUICKSTART_HASHES[name]


@pytest.mark.parametrize("recipe", sorted((REPO / "configs" / "paper").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_recipes_dry_run_without_loading_models(recipe: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "exgrpo.cli", "run", str(recipe), "--dry-run"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert all(stage in result.stdout for stage in STAGES)
    config = build_config(RunConfig, yaml.safe_load(recipe.read_text()), str(recipe))
    # The estimate: every held-in training question's rationale, priced where the recipe states a price.
    teacher = probe_config(config).teacher.model  # type: ignore[union-attr]
    assert f"Probe stage, teacher {teacher}" in result.stdout and "Student side" in result.stdout
    assert ("no price" in result.stdout) == (teacher not in config.estimate.prices)
    stages = stage_configs(config)
    assert stages["sft"].lora is not None and stages["sft"].lora.r == 32
    assert len(stages["eval"]["base"].datasets) == 12


def test_only_settings_that_differ_from_defaults_are_hashed(tmp_path: Path) -> None:
    """An option a newer exgrpo adds (default = the old behaviour) must not redo every finished run."""
    recipe = micro_recipe(tmp_path / "run")
    hashes = [digest for _, digest, _ in plan(build_config(RunConfig, recipe, "test"))]
    recipe["sft"]["extra_rationales"] = False  # spelled out, at its default
    assert [digest for _, digest, _ in plan(build_config(RunConfig, recipe, "test"))] == hashes
    recipe["sft"]["extra_rationales"] = True
    changed = [digest for _, digest, _ in plan(build_config(RunConfig, recipe, "test"))]
    assert changed[:3] == hashes[:3] and all(a != b for a, b in zip(changed[3:], hashes[3:], strict=True))


def test_where_the_teacher_cache_lives_changes_no_stage(tmp_path: Path) -> None:
    recipe = micro_recipe(tmp_path / "run")
    hashes = [digest for _, digest, _ in plan(build_config(RunConfig, recipe, "test"))]
    recipe["probe"]["cache_path"] = str(tmp_path / "elsewhere" / "cache.jsonl")
    recipe["sft"]["logging_steps"] = 7
    assert [digest for _, digest, _ in plan(build_config(RunConfig, recipe, "test"))] == hashes


# ---------------------------------------------------------------- baselines as run configurations


def run_values(tmp_path: Path, **values: Any) -> dict[str, Any]:
    # No world: the run's registry holds the built-in benchmarks alone.
    return {"run_dir": str(tmp_path / "run"), "base_model": "base/model", "world": None,
            "probe": {"datasets": ["gsm8k"], "teacher": {"kind": "exact"}}, "eval": {"datasets": ["gsm8k"]},
            **values}


def test_a_run_trains_or_reuses_its_sft_model_not_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at most one of `sft`"):
        build_config(RunConfig, run_values(tmp_path, sft={"epochs": 1}, sft_model="other/sft"), "x")
    config = build_config(RunConfig, run_values(tmp_path, sft=None, sft_model="other/sft"), "x")
    assert model_paths(config)["sft"] == "other/sft"
    assert config.trained_models() == ["base", "sft", "exgrpo"]
    assert train_config(config).model == "other/sft"


def test_eval_models_must_be_models_the_run_has(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no exgrpo model"):
        build_config(RunConfig, run_values(tmp_path, train=None, eval={"datasets": ["gsm8k"],
                                                                       "models": ["exgrpo"]}), "x")


def test_without_sft_rl_starts_from_the_base_model(tmp_path: Path) -> None:
    config = build_config(RunConfig, run_values(tmp_path, sft=None), "x")
    assert model_paths(config)["sft"] == base_path(config) == "base/model"
    assert config.trained_models() == ["base", "exgrpo"]
    assert sft_config(config) is None
    assert train_config(config).model == "base/model"


def test_distill_train_section_builds_a_distillation_stage(tmp_path: Path) -> None:
    config = build_config(RunConfig, run_values(tmp_path, train={"method": "distill", "teacher_model": "t"}), "x")
    stage = train_config(config)
    assert isinstance(stage, DistillStageConfig)
    assert stage.teacher_model == "t" and stage.model == model_paths(config)["sft"]
    exgrpo_only = run_values(tmp_path, train={"method": "distill", "teacher_model": "t", "questions_per_step": 2})
    with pytest.raises(ConfigError, match=r"train\.questions_per_step: Extra inputs"):
        build_config(RunConfig, exgrpo_only, "x")


@pytest.mark.parametrize("name", ["quickstart.yaml", "quickstart_tiny.yaml"])
def test_embedded_quickstart_recipes_are_valid_run_configs(name: str) -> None:
    from importlib import resources

    recipe = yaml.safe_load(resources.files("exgrpo.recipes").joinpath(name).read_text())
    config = build_config(RunConfig, recipe, name)
    stages = stage_configs(config)
    assert {"sft", "train", "eval"} <= set(stages)
    assert stages["sft"].max_steps > 0 or stages["sft"].epochs > 0
