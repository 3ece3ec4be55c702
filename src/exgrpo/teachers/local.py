"""A local Hugging Face model as teacher (or as the student answering probes in the difficulty filter)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from exgrpo.generation.generators import make_generator
from exgrpo.teachers.base import ChatRequest, ChatResponse, ResultCallback, StartCallback


class LocalTeacher:
    def __init__(self, model_path: str, batch_size: int = 16, backend: str = "auto", dtype: str = "auto") -> None:
        self.model = model_path
        self.generator = make_generator(model_path, backend, batch_size, dtype)  # type: ignore[arg-type]

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback,
                 on_start: StartCallback | None = None) -> None:
        # One generate() per decoding setting; the generator batches and sorts within it.
        def setting(index: int) -> tuple[int, float]:
            return requests[index].max_tokens, requests[index].temperature

        for (max_tokens, temperature), group in groupby(sorted(range(len(requests)), key=setting), key=setting):
            indices = list(group)
            # Each reply is handed on (and cached) as soon as it is generated, not at the end of the group.
            self.generator.generate(
                [list(requests[i].messages) for i in indices], max_tokens, temperature=temperature,
                on_result=lambda position, generation, indices=indices: on_result(
                    indices[position], ChatResponse(text=generation.text, completion_tokens=generation.num_tokens)))
