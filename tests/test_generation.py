"""The generation helper returns what plain `model.generate` returns, in the caller's order."""

from __future__ import annotations

from pathlib import Path

import torch

from exgrpo.generation.generators import (
    Generation,
    TransformersGenerator,
    load_model_and_tokenizer,
    make_generator,
    vllm_usable,
)

CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 plus 30?"}],
    [{"role": "user", "content": "Is the sky blue? Answer yes or no, then explain at length why it is so."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
]


def test_batched_sorted_generation_equals_one_by_one_generate(tiny_model_path: Path) -> None:
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_path), device="cpu")
    generator = TransformersGenerator(model, tokenizer, batch_size=2)
    streamed: dict[int, Generation] = {}
    generations = generator.generate(CONVERSATIONS, max_new_tokens=12, on_result=streamed.__setitem__)
    assert streamed == dict(enumerate(generations))
    for conversation, generation in zip(CONVERSATIONS, generations, strict=True):
        ids = torch.tensor([generator.encode(conversation)])
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                 eos_token_id=generator.stop_token_ids(), pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        assert generation.num_tokens == len(new) or new[generation.num_tokens - 1] in generator.stop_token_ids()
        assert generation.text == tokenizer.decode(new[: generation.num_tokens], skip_special_tokens=True).strip()


def test_auto_backend_is_vllm_only_where_usable(tiny_model_path: Path) -> None:
    assert make_generator(str(tiny_model_path), "auto").name == ("vllm" if vllm_usable() else "transformers")
    assert make_generator(str(tiny_model_path), "transformers").name == "transformers"
