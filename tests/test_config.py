"""Configs: YAML in, flags on top, every error names the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from exgrpo.config import EvalConfig, ProbeConfig, build_config, load_config, registry_context
from exgrpo.data.registry import DatasetRegistry, custom_entry, load_examples
from exgrpo.errors import ConfigError


def test_aliases_expand_to_the_paper_groups_in_order() -> None:
    config = EvalConfig(model="m", datasets="held_out,gsm8k,boolq")
    assert config.datasets == ["boolq", "openbookqa", "esnli", "gsm8k_reversal", "gsm8k"]
    assert len(EvalConfig(model="m").datasets) == 12


def test_flags_override_yaml_and_none_flags_do_not(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("model: from-yaml\nlimit: 5\ndatasets: [gsm8k]\n")
    config = load_config(EvalConfig, path, {"limit": 2, "model": None})
    assert (config.model, config.limit, config.datasets) == ("from-yaml", 2, ["gsm8k"])


def test_custom_dataset_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.jsonl").write_text('{"problem": "1+1?", "value": "2"}\n')
    path = tmp_path / "eval.yaml"
    path.write_text("model: m\ndatasets: [mine]\ncustom_datasets:\n  - name: mine\n    path: data/mine.jsonl\n"
                    "    answer_type: number\n    question_column: problem\n    answer_column: value\n")
    monkeypatch.chdir(Path("/"))
    config = load_config(EvalConfig, path)
    assert config.datasets == ["mine"]
    (example,) = config.dataset_registry().load("mine")
    assert (example.question, example.answer) == ("1+1?", "2")


def test_validation_checks_names_against_the_registry_handed_in_and_mutates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    config = EvalConfig(model="m", datasets=["mine"],
                        custom_datasets=[{"name": "mine", "path": data, "answer_type": "number"}])
    assert config.datasets == ["mine"]
    assert "mine" not in DatasetRegistry()  # validating a config registered nothing anywhere
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_examples("mine")
    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) mine"):
        build_config(EvalConfig, {"model": "m", "datasets": ["mine"]}, "test")
    handed_in = DatasetRegistry([custom_entry("mine", data, "number")])
    assert build_config(EvalConfig, {"model": "m", "datasets": ["mine"]}, "test",
                        registry_context(handed_in)).datasets == ["mine"]


def test_the_probe_config_reads_the_rule_ids_as_data() -> None:
    from exgrpo.config.probe import rule_ids
    from exgrpo.inversion.rules import all_rules

    assert rule_ids() == list(all_rules())
    with pytest.raises(ValueError, match="unknown rule"):
        ProbeConfig(datasets=["gsm8k"], rules=["R11"], teacher={"kind": "openai", "model": "m"})


def test_invalid_values_name_every_field(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("model: m\nlimit: 0\nbackend: tpu\n")
    with pytest.raises(ConfigError) as error:
        load_config(EvalConfig, path)
    message = str(error.value)
    assert str(path) in message and "limit: Input should be greater than 0" in message and "backend:" in message


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(EvalConfig, tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(EvalConfig, tmp_path / "list.yaml")


def test_example_config_in_the_repo_is_valid() -> None:
    config = load_config(EvalConfig, Path(__file__).parents[1] / "configs" / "eval" / "example.yaml")
    assert len(config.datasets) == 12


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_validates(path: Path) -> None:
    from exgrpo.config import ProbeConfig, SFTStageConfig, TrainConfig

    kind = {"eval": EvalConfig, "probe": ProbeConfig, "sft": SFTStageConfig, "train": TrainConfig}.get(path.parent.name)
    if kind is None:  # accelerate configs are accelerate's; pipeline recipes are tested in test_pipeline.py
        pytest.skip("not a stage config")
    config = load_config(kind, path)
    if hasattr(config, "ei_data"):
        assert config.ei_data.is_absolute()  # input paths are resolved against the config file


def train_yaml(tmp_path: Path, extra: str, model: str = "m") -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(f"model: {model}\nei_data: ei.jsonl\noutput_dir: out\n{extra}")
    return path


def test_train_configs_refuse_settings_that_would_be_ignored_or_meaningless(tmp_path: Path) -> None:
    from exgrpo.config import TrainConfig

    with pytest.raises(ConfigError, match="per_device_batch_size is not read by `exgrpo train`.*questions_per_step"):
        load_config(TrainConfig, train_yaml(tmp_path, "per_device_batch_size: 4\n"))
    with pytest.raises(ConfigError, match="k = 0 makes scenario B the same dialogue as A"):
        load_config(TrainConfig, train_yaml(tmp_path, "exgrpo: {k: 0, rollouts_full: 4, rollouts_partial: 4}\n"))
    vanilla = load_config(TrainConfig, train_yaml(tmp_path, "exgrpo: {k: 0, rollouts_full: 8, rollouts_partial: 0}\n"))
    assert vanilla.rollouts_per_question() == 8


def test_train_loss_normalisation_is_methods_per_rollout_mean_and_reaches_trl(tmp_path: Path,
                                                                            tiny_model_path: Path) -> None:
    from exgrpo.config import TrainConfig
    from exgrpo.rl.train import grpo_arguments

    config = load_config(TrainConfig, train_yaml(tmp_path, "report_to: [none]\n", str(tiny_model_path)))
    assert config.loss_type == "grpo" and grpo_arguments(config).loss_type == "grpo"
    tokens = load_config(TrainConfig, train_yaml(tmp_path, "report_to: [none]\nloss_type: dapo\n", str(tiny_model_path)))
    assert grpo_arguments(tokens).loss_type == "dapo"
