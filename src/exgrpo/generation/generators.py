"""One generation helper for every stage: batched chat generation with transformers, or vLLM on a GPU.

Both backends take conversations (lists of {"role", "content"}) and return `Generation`s in the same
order, so evaluation, EI-Test and a local teacher never care which one runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exgrpo.config.base import Backend
from exgrpo.generation.continuous import decode_continuously, supports_continuous
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import DtypeSetting, torch_dtype

Conversation = list[dict[str, str]]


@dataclass(frozen=True)
class Generation:
    text: str
    num_tokens: int  # generated tokens, end-of-turn token included when produced


# Called with (index into the conversations, its generation) as soon as that generation is final, so a
# caller can store results while the rest are still being generated (a killed eval then loses little).
ResultCallback = Callable[[int, Generation], None]


class Generator(Protocol):
    name: str

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int, temperature: float = 0.0,
                 on_result: ResultCallback | None = None) -> list[Generation]: ...


def load_model_and_tokenizer(model_path: str, device: str | None = None,
                              dtype: DtypeSetting = "auto") -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a hub id, a local folder or a named model (exgrpo.models.named),
    in the dtype `dtype` means on this machine (exgrpo.models.precision)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_path = resolve_model(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch_dtype(dtype, model_path, on_gpu=device.startswith("cuda"))).to(device)
    model.eval()
    return model, tokenizer


class TransformersGenerator:
    """Batched generation with transformers, greedy by default: continuous batching (a finished row is
    replaced by a waiting prompt, generation/continuous.py) where the model's cache allows it, else
    `model.generate` on batches of similar prompt length with left padding."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, continuous: bool | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.continuous = supports_continuous(model) if continuous is None else continuous
        if tokenizer.pad_token_id is None:  # many chat models ship without one
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @property
    def precision(self) -> str | None:
        """The float type's key in prediction fingerprints (exgrpo.evaluation.evaluate.precision_key)."""
        import torch

        return None if self.model.dtype == torch.float32 else str(self.model.dtype)

    @classmethod
    def from_pretrained(cls, model_path: str, batch_size: int = 16, device: str | None = None,
                        dtype: DtypeSetting = "auto") -> TransformersGenerator:
        model, tokenizer = load_model_and_tokenizer(model_path, device, dtype)
        return cls(model, tokenizer, batch_size)

    def encode(self, conversation: Conversation) -> list[int]:
        # The chat template already writes BOS and role markers: no extra special tokens.
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def stop_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        return ids or [self.tokenizer.eos_token_id]

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int, temperature: float = 0.0,
                 on_result: ResultCallback | None = None) -> list[Generation]:
        import torch

        prompts = [self.encode(conversation) for conversation in conversations]
        # Longest first: similar lengths share a batch (less padding), and an out-of-memory shows up at once.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        stop_ids = self.stop_token_ids()
        results: list[Generation | None] = [None] * len(prompts)

        def store(index: int, tokens: list[int]) -> None:
            results[index] = generation = self._to_generation(tokens, stop_ids)
            if on_result is not None:
                on_result(index, generation)

        if self.continuous:
            decode_continuously(self.model, [prompts[i] for i in order], max_new_tokens, self.batch_size, stop_ids,
                                self.tokenizer.pad_token_id, temperature, lambda position, tokens: store(order[position], tokens))
            return [result for result in results if result is not None]
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [prompts[i] for i in indices]}, return_tensors="pt")
            batch = {key: value.to(self.model.device) for key, value in batch.items()}
            with torch.inference_mode():
                output = self.model.generate(**batch, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                             pad_token_id=self.tokenizer.pad_token_id, **sampling)
            for index, tokens in zip(indices, output[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
                store(index, tokens)
        return [result for result in results if result is not None]

    def generate_fixed(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[Generation]:
        """Greedy answers of one batch exactly as given: no reordering, left padding, every row kept until the
        batch ends. Why: then every matrix product has the same shape whatever the other rows say, and a row's
        answer depends only on its own prompt and the other prompts' lengths, not on the others' answers (which
        decide when continuous batching drops or adds rows)."""
        import torch

        stop_ids = self.stop_token_ids()
        batch = self.tokenizer.pad({"input_ids": [self.encode(c) for c in conversations]}, return_tensors="pt")
        batch = {key: value.to(self.model.device) for key, value in batch.items()}
        with torch.inference_mode():
            output = self.model.generate(**batch, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                         pad_token_id=self.tokenizer.pad_token_id, do_sample=False)
        return [self._to_generation(tokens, stop_ids) for tokens in output[:, batch["input_ids"].shape[1] :].tolist()]

    def _to_generation(self, tokens: list[int], stop_ids: list[int]) -> Generation:
        length = next((i + 1 for i, token in enumerate(tokens) if token in stop_ids), len(tokens))
        text = self.tokenizer.decode(tokens[:length], skip_special_tokens=True)
        return Generation(text=text.strip(), num_tokens=length)


class VLLMGenerator:
    """Generation with vLLM (GPU): the chat template is applied by vLLM, continuous batching does the rest."""

    name = "vllm"

    def __init__(self, model_path: str, **engine_kwargs: Any) -> None:
        from vllm import LLM

        self.llm = LLM(model=model_path, **engine_kwargs)

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int, temperature: float = 0.0,
                 on_result: ResultCallback | None = None) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, max_tokens=max_new_tokens)
        outputs = self.llm.chat(list(conversations), params, use_tqdm=on_result is None)
        generations = [Generation(text=o.outputs[0].text.strip(), num_tokens=len(o.outputs[0].token_ids)) for o in outputs]
        if on_result is not None:
            for index, generation in enumerate(generations):
                on_result(index, generation)
        return generations


def vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def make_generator(model_path: str, backend: Backend = "auto", batch_size: int = 16,
                   dtype: DtypeSetting = "auto") -> Generator:
    """vLLM when asked for, or on "auto" when it is installed and a GPU is present; transformers otherwise."""
    if backend == "vllm" or (backend == "auto" and vllm_usable()):
        return VLLMGenerator(resolve_model(model_path), **({} if dtype == "auto" else {"dtype": dtype}))
    return TransformersGenerator.from_pretrained(model_path, batch_size=batch_size, dtype=dtype)
