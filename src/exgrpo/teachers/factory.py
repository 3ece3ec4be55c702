"""Teacher backends from their configs."""

from __future__ import annotations

from exgrpo.config import (
    ExactTeacherConfig,
    LocalTeacherConfig,
    OpenAITeacherConfig,
    ReplayTeacherConfig,
    TeacherConfig,
)
from exgrpo.teachers.base import TeacherBackend


def make_backend(config: TeacherConfig, datasets: list[str] | None = None) -> TeacherBackend:
    """Build the backend a config describes; a replay teacher loads the stores of `datasets`."""
    if isinstance(config, OpenAITeacherConfig):
        from exgrpo.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(config.model, base_url=config.base_url, api_key_env=config.api_key_env,
                             concurrency=config.concurrency, timeout=config.timeout, max_retries=config.max_retries,
                             extra_body=config.extra_body, max_consecutive_failures=config.max_consecutive_failures)
    if isinstance(config, LocalTeacherConfig):
        from exgrpo.teachers.local import LocalTeacher

        return LocalTeacher(config.model, batch_size=config.batch_size, backend=config.backend, dtype=config.dtype)
    if isinstance(config, ReplayTeacherConfig):
        from exgrpo.data.registry import data_dir
        from exgrpo.teachers.replay import DSS_DATASETS, ReplayTeacher, load_dss_rationales, load_replay_jsonl

        responses = load_replay_jsonl(config.file) if config.file else {}
        root = config.dss_rationales or data_dir() / "dss_palm_rationales"
        for name in datasets or []:
            if name in DSS_DATASETS and config.file is None:
                responses.update(load_dss_rationales(root, name))
        return ReplayTeacher(responses, name=config.name)
    if isinstance(config, ExactTeacherConfig):
        from exgrpo.world.datasets import world_problems
        from exgrpo.world.teacher import ExactTeacher

        world = config.world
        return ExactTeacher(world_problems(world.seed, world.train_size, world.test_size, world.ood_size,
                                           world.val_size))
    raise TypeError(f"unknown teacher config {type(config).__name__}")


def teacher_identity(config: TeacherConfig) -> str:
    """The `model` (cache-key identity) of the backend `make_backend(config)` builds, without building it (a
    dry run loads no model and opens no connection)."""
    if isinstance(config, OpenAITeacherConfig | LocalTeacherConfig):
        return config.model
    if isinstance(config, ReplayTeacherConfig):
        return f"replay:{config.name}"
    if isinstance(config, ExactTeacherConfig):
        from exgrpo.world.teacher import EXACT_TEACHER_NAME

        return EXACT_TEACHER_NAME
    raise TypeError(f"unknown teacher config {type(config).__name__}")
