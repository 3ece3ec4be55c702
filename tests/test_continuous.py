"""Continuous batching: rows that finish leave, waiting prompts join, and every answer is the one plain
`model.generate` gives for that prompt alone."""

from __future__ import annotations

from pathlib import Path

import torch

from exgrpo.generation.continuous import decode_continuously, supports_continuous
from exgrpo.generation.generators import load_model_and_tokenizer


def prompts_of_many_lengths(tokenizer) -> list[list[int]]:
    texts = [f"Question {i}: " + "is 12 plus 30 forty-two? " * (1 + i % 5) for i in range(11)]
    return [tokenizer(text)["input_ids"] for text in texts]


def alone(model, prompt: list[int], max_new_tokens: int, stop_ids: list[int]) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stop_ids, pad_token_id=0)
    new = out[0, len(prompt):].tolist()
    return new[: next((i + 1 for i, t in enumerate(new) if t in stop_ids), len(new))]


def lively_model(tiny_model_path: Path):
    """The tiny student with large random weights: its greedy answers depend on the prompt (at the usual init
    they repeat one token), so rows end at different steps."""
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_path), device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    return model, tokenizer


def test_greedy_answers_equal_generate_alone_while_rows_come_and_go(tiny_model_path: Path) -> None:
    model, tokenizer = lively_model(tiny_model_path)
    assert supports_continuous(model)
    prompts = prompts_of_many_lengths(tokenizer)
    # A random model rarely says EOS: stopping on a third of the vocabulary makes rows end early.
    stop_ids = list(range(0, len(tokenizer), 3))
    finished: dict[int, list[int]] = {}
    outputs = decode_continuously(model, prompts, max_new_tokens=12, batch_size=4, stop_ids=stop_ids,
                                  pad_id=tokenizer.pad_token_id, on_finished=finished.__setitem__)
    assert finished == dict(enumerate(outputs))
    lengths = {len(output) for output in outputs}
    assert len(lengths) > 2, "rows must finish at different steps for this test to mean anything"
    for prompt, output in zip(prompts, outputs, strict=True):
        assert output == alone(model, prompt, 12, stop_ids)


def test_sampling_stops_at_a_stop_token_or_the_budget(tiny_model_path: Path) -> None:
    model, tokenizer = lively_model(tiny_model_path)
    prompts = prompts_of_many_lengths(tokenizer)
    stop_ids = list(range(0, len(tokenizer), 5))
    torch.manual_seed(0)
    outputs = decode_continuously(model, prompts, max_new_tokens=10, batch_size=3, stop_ids=stop_ids,
                                  pad_id=tokenizer.pad_token_id, temperature=1.0)
    assert all(1 <= len(o) <= 10 for o in outputs)
    assert all(o[-1] in stop_ids or len(o) == 10 for o in outputs)
    assert all(t not in stop_ids for o in outputs for t in o[:-1])


def test_sliding_window_models_are_left_to_generate() -> None:
    from transformers import AutoModelForCausalLM, MistralConfig

    config = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, sliding_window=8)
    assert not supports_continuous(AutoModelForCausalLM.from_config(config))


def test_growing_cache_layers_write_in_place_and_hold_what_concatenation_would(tiny_model_path: Path) -> None:
    from transformers import DynamicCache

    from exgrpo.generation.continuous import new_cache, select_cache_rows

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_path), device="cpu")
    ids = torch.tensor([tokenizer("is 12 plus 30 forty-two?")["input_ids"]] * 3)
    grown, plain = new_cache(model), DynamicCache(config=model.config)
    with torch.inference_mode():
        for cache in (grown, plain):
            model(input_ids=ids, past_key_values=cache, use_cache=True)
        start = grown.layers[0].keys.data_ptr()
        for step in range(5):
            token = ids[:, step : step + 1]
            for cache in (grown, plain):
                model(input_ids=token, past_key_values=cache, use_cache=True)
        assert grown.layers[0].keys.data_ptr() == start, "decoding steps must write into the same buffer"
        for mine, theirs in zip(grown.layers, plain.layers, strict=True):
            assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)
        index = torch.tensor([2, 0])
        select_cache_rows(grown, index)
        select_cache_rows(plain, index)
        out_grown = model(input_ids=ids[index, :1], past_key_values=grown, use_cache=True).logits
        out_plain = model(input_ids=ids[index, :1], past_key_values=plain, use_cache=True).logits
    assert torch.equal(out_grown, out_plain)
