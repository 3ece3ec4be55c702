"""Tests that read a benchmark's local files skip without them (fail under CI). A module of its own, not
conftest.py: the lab's tests have a conftest too, and `from conftest import ...` would find either."""

from __future__ import annotations

import os

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
