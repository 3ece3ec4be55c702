"""Teacher backends from their configs.

The teachers of this package are built here; a teacher defined above it (the synthetic world's exact teacher)
is handed in by whoever knows it (the runner, the CLI) as a `TeacherKind` in `extra_teachers`, keyed by its
config's `kind`: this layer never imports the world.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exgrpo.config import LocalTeacherConfig, OpenAITeacherConfig, ReplayTeacherConfig, TeacherConfig
from exgrpo.data.registry import data_dir
from exgrpo.errors import ConfigError
from exgrpo.teachers.base import TeacherBackend
from exgrpo.teachers.local import LocalTeacher
from exgrpo.teachers.replay import DSS_DATASETS, ReplayTeacher, load_dss_rationales, load_replay_jsonl


@dataclass(frozen=True)
class TeacherKind:
    """A teacher backend defined outside this package: how to build it from its config, and the `model` (cache-key
    identity) it will have, without building it."""

    build: Callable[[Any], TeacherBackend]
    identity: Callable[[Any], str]


ExtraTeachers = Mapping[str, TeacherKind]


def make_backend(config: TeacherConfig, datasets: list[str] | None = None,
                 extra_teachers: ExtraTeachers | None = None) -> TeacherBackend:
    """Build the backend a config describes; a replay teacher loads the stores of `datasets`."""
    if isinstance(config, OpenAITeacherConfig):
        # `openai` (and its HTTP stack) only when an OpenAI-compatible teacher is used.
        from exgrpo.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(config.model, base_url=config.base_url, api_key_env=config.api_key_env,
                             concurrency=config.concurrency, timeout=config.timeout, max_retries=config.max_retries,
                             extra_body=config.extra_body, max_consecutive_failures=config.max_consecutive_failures)
    if isinstance(config, LocalTeacherConfig):
        return LocalTeacher(config.model, batch_size=config.batch_size, backend=config.backend, dtype=config.dtype)
    if isinstance(config, ReplayTeacherConfig):
        responses = load_replay_jsonl(config.file) if config.file else {}
        root = config.dss_rationales or data_dir() / "dss_palm_rationales"
        for name in datasets or []:
            if name in DSS_DATASETS and config.file is None:
                responses.update(load_dss_rationales(root, name))
        return ReplayTeacher(responses, name=config.name)
    return _extra_kind(config, extra_teachers).build(config)


def teacher_identity(config: TeacherConfig, extra_teachers: ExtraTeachers | None = None) -> str:
    """The `model` (cache-key identity) of the backend `make_backend(config)` builds, without building it (a
    dry run loads no model and opens no connection)."""
    if isinstance(config, OpenAITeacherConfig | LocalTeacherConfig):
        return config.model
    if isinstance(config, ReplayTeacherConfig):
        return f"replay:{config.name}"
    return _extra_kind(config, extra_teachers).identity(config)


def _extra_kind(config: TeacherConfig, extra_teachers: ExtraTeachers | None) -> TeacherKind:
    kind = getattr(config, "kind", type(config).__name__)
    if extra_teachers is None or kind not in extra_teachers:
        given = ", ".join(sorted(extra_teachers or {})) or "none"
        raise ConfigError(f"teacher kind '{kind}' is not built by exgrpo.teachers and was not handed in (handed in: "
                          f"{given}); the exact teacher comes with the synthetic world: `exgrpo run` and "
                          "`exgrpo probe` provide it")
    return extra_teachers[kind]
