"""Shared fixtures: the benchmark files (skip outside CI when absent, fail in CI) and a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exgrpo.data.registry import data_dir, get_entry


def require_dataset_files(*names: str) -> None:
    """Skip (fail under CI=true) when a benchmark's local files are not in EXGRPO_DATA_DIR."""
    missing = [str(data_dir() / f) for name in names for split in get_entry(name).splits.values()
               for f in split.files if not (data_dir() / f).exists()]
    if missing:
        message = f"benchmark files not found (set EXGRPO_DATA_DIR): {', '.join(missing[:3])}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised Llama student with a locally trained tokenizer, built once per session."""
    from exgrpo.models.tiny import build_tiny_model

    corpus = ["What is 12 plus 30? The answer is 42.", "Is the sky blue? The answer is yes."] * 20
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "student", texts=corpus, hidden_size=64,
                            num_layers=2, num_heads=2, vocab_size=400)
