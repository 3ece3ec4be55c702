"""The lab's tests share the product tests' fixtures (a tiny model built in code, the benchmark files)."""

from tests.conftest import smollm2_path, tiny_model_path, toy_sft_model  # noqa: F401
