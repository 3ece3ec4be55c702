"""Eval generation throughput: exgrpo's generation helper against plain `model.generate` on the same prompts.

    python benchmarks/eval_throughput.py [--model PATH] [--prompts 64] [--batch-size 16] [--max-new-tokens 64]

Without --model it builds the tiny Llama student (4 layers, hidden 256) offline. Both sides get the same
chat-templated GSM8K prompts (or built-in ones when the data is absent), the same batch size and the same
greedy decoding; the plain side batches the prompts in their given order with left padding. Prints
generated tokens/s for each and the ratio (goal: >= 0.9), median of --repeats runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from exgrpo.data.prompts import build_messages
from exgrpo.evaluation.generation import TransformersGenerator, load_model_and_tokenizer
from exgrpo.models.tiny import build_tiny_model


def benchmark_conversations(count: int) -> list[list[dict[str, str]]]:
    from exgrpo.data.registry import load_examples
    from exgrpo.errors import DataError

    try:
        return [build_messages(example) for example in load_examples("gsm8k", limit=count)]
    except DataError:
        return [[{"role": "user", "content": f"What is {i} plus {i * 7}? " * (1 + i % 4)}] for i in range(count)]


def plain_generate(model, tokenizer, conversations, batch_size: int, max_new_tokens: int, stop_ids: list[int]) -> int:
    """The baseline: chat template, pad a batch as given, model.generate; returns generated tokens."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    generated = 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                    pad_token_id=tokenizer.pad_token_id)
        for row in output[:, batch["input_ids"].shape[1] :].tolist():
            generated += next((i + 1 for i, token in enumerate(row) if token in stop_ids), len(row))
    return generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: build the tiny student)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or str(build_tiny_model(f"{scratch}/tiny", hidden_size=256, num_layers=4, num_heads=4))
        model, tokenizer = load_model_and_tokenizer(model_path)
        generator = TransformersGenerator(model, tokenizer, batch_size=args.batch_size)
        conversations = benchmark_conversations(args.prompts)
        stop_ids = generator.stop_token_ids()
        ours_rates, plain_rates = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = sum(g.num_tokens for g in generator.generate(conversations, args.max_new_tokens))
            ours_rates.append(tokens / (time.perf_counter() - start))
            start = time.perf_counter()
            tokens = plain_generate(model, tokenizer, conversations, args.batch_size, args.max_new_tokens, stop_ids)
            plain_rates.append(tokens / (time.perf_counter() - start))
    ours, plain = statistics.median(ours_rates), statistics.median(plain_rates)
    print(f"model: {args.model or 'tiny llama (4 layers, hidden 256)'}; {len(conversations)} prompts, "
          f"batch {args.batch_size}, {args.max_new_tokens} new tokens, median of {args.repeats}")
    print(f"exgrpo generation helper : {ours:8.1f} tokens/s")
    print(f"plain model.generate     : {plain:8.1f} tokens/s")
    print(f"ratio (goal >= 0.9)      : {ours / plain:8.2f}")


if __name__ == "__main__":
    main()
