"""Shared fixtures: a tiny model built in code, a tiny SFT model on toy EI data, the real student."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised Llama student with a locally trained tokenizer, built once per session."""
    from exgrpo.models.tiny import build_tiny_model

    corpus = ["What is 12 plus 30? The answer is 42.", "Is the sky blue? The answer is yes."] * 20
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "student", texts=corpus, hidden_size=64,
                            num_layers=2, num_heads=2, vocab_size=400)


@pytest.fixture(scope="session")
def toy_sft_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(SFT'd tiny student, its EI file): a tiny model trained 10 epochs on the toy EI data (a few seconds)."""
    from toy_ei import write_toy_ei

    from exgrpo.config import SFTStageConfig
    from exgrpo.models.tiny import build_tiny_model
    from exgrpo.training.dialogues import load_ei_questions
    from exgrpo.training.sft import run_sft

    root = tmp_path_factory.mktemp("toy")
    ei = write_toy_ei(root / "ei.jsonl")
    corpus = [q.prompt for q in load_ei_questions(ei)] + ["The answer is yes.", "The answer is no."]
    base = build_tiny_model(root / "base", texts=corpus * 5, hidden_size=64, num_layers=2, num_heads=2, vocab_size=400)
    final = run_sft(SFTStageConfig(model=str(base), ei_data=ei, output_dir=root / "sft", epochs=10, learning_rate=3e-3,
                                   report_to=["none"], per_device_batch_size=8, save_steps=10_000, logging_steps=50))
    return final, ei


@pytest.fixture(scope="session")
def smollm2_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real student, SmolLM2-135M-Instruct, converted from its wheel once per session into a fresh cache
    (EXGRPO_CACHE points there for the whole session, so every test resolves the name to this folder)."""
    from exgrpo.models.named import resolve_model

    cache = tmp_path_factory.mktemp("exgrpo-cache")
    previous = os.environ.get("EXGRPO_CACHE")
    os.environ["EXGRPO_CACHE"] = str(cache)
    try:
        yield Path(resolve_model("smollm2-135m-instruct"))
    finally:
        if previous is None:
            os.environ.pop("EXGRPO_CACHE", None)
        else:
            os.environ["EXGRPO_CACHE"] = previous
