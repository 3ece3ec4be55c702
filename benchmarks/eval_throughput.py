"""Eval generation throughput: useful generated tokens/s of `exgrpo eval` against plain `model.generate`.

    python benchmarks/eval_throughput.py --model smollm2-135m-instruct [--per-dataset 16] [--dtype auto]

One process, one model (loaded in the dtype `--dtype` means on this machine). The ceiling: plain
`model.generate` at batch 32 and a fixed length (every row generates exactly --fixed-tokens tokens, so
every token is useful), after a warm-up call, the best of two runs. Then `exgrpo eval` itself (the eval driver, greedy, --max-new-tokens) on the first
--per-dataset questions of --datasets, with continuous batching and, for comparison, with `--deterministic`
(fixed batches in each dataset's order, plain `generate`: rows wait for the longest answer of their batch). Useful
tokens are those up to and including the end-of-turn token. Prints tokens/s for each, `useful tok/s ratio: X`
(goal: >= 0.7) and `deterministic eval time vs continuous: Y` (the price of answers that depend on nothing else
in the run).
Without --model it builds the tiny Llama student offline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from exgrpo.config import EvalConfig
from exgrpo.data.prompts import build_messages
from exgrpo.data.registry import builtin_entries, load_examples
from exgrpo.evaluation.evaluate import evaluate
from exgrpo.generation.generators import TransformersGenerator, load_model_and_tokenizer
from exgrpo.models.tiny import build_tiny_model

DEFAULT_DATASETS = "gsm8k,commonsenseqa,strategyqa,arc_challenge,anli,openbookqa"


def fixed_length_rate(generator: TransformersGenerator, conversations: list, batch_size: int, tokens: int,
                      repeats: int = 2) -> float:
    """Plain model.generate on one batch of eval prompts, every row forced to `tokens` new tokens (prefill
    included), after a warm-up call, best of `repeats`: the hardware's ceiling."""
    tokenizer, model = generator.tokenizer, generator.model
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    batch = tokenizer(texts[:batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    rates = []
    with torch.inference_mode():
        model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            output = model.generate(**batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
            generated = output.shape[0] * (output.shape[1] - batch["input_ids"].shape[1])
            rates.append(generated / (time.perf_counter() - start))
    return max(rates)  # the best of the repeats: the ceiling is not to be lowered by a noisy run


def eval_rate(generator: TransformersGenerator, model: str, dtype: str, datasets: list[str], per_dataset: int,
              max_new_tokens: int, batch_size: int, scratch: str, deterministic: bool = False) -> tuple[float, int]:
    """`exgrpo eval` (the driver, predictions written to a scratch folder): useful tokens/s and tokens.
    `model` and `dtype` name what `generator` holds (the predictions' fingerprint reads them)."""
    config = EvalConfig(model=model, dtype=dtype, datasets=datasets, limit=per_dataset, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, output_dir=Path(scratch), deterministic=deterministic)
    start = time.perf_counter()
    report = evaluate(config, generator=generator)
    seconds = time.perf_counter() - start
    tokens = sum(row["generated_tokens"] for row in report["datasets"])
    return tokens / seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model name, folder or hub id (default: build the tiny student)")
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--per-dataset", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--fixed-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--skip-deterministic", action="store_true", help="do not time deterministic eval")
    args = parser.parse_args()
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]

    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or str(build_tiny_model(f"{scratch}/tiny", hidden_size=256, num_layers=4, num_heads=4))
        model, tokenizer = load_model_and_tokenizer(model_path, dtype=args.dtype)
        generator = TransformersGenerator(model, tokenizer, batch_size=args.batch_size)
        conversations = [build_messages(example, builtin_entries()[name].prompt) for name in datasets
                         for example in load_examples(name, limit=max(1, args.batch_size // len(datasets) + 1))]
        ceiling = fixed_length_rate(generator, conversations, args.batch_size, args.fixed_tokens)
        ours, tokens = eval_rate(generator, model_path, args.dtype, datasets, args.per_dataset, args.max_new_tokens, args.batch_size,
                                 f"{scratch}/continuous")
        fixed = None
        if not args.skip_deterministic:
            fixed, fixed_tokens = eval_rate(generator, model_path, args.dtype, datasets, args.per_dataset, args.max_new_tokens,
                                 args.batch_size, f"{scratch}/fixed", deterministic=True)
    print(f"model: {args.model or 'tiny llama (4 layers, hidden 256)'}, dtype {model.dtype}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"eval set: {args.per_dataset} questions of each of {', '.join(datasets)}; batch {args.batch_size}, "
          f"up to {args.max_new_tokens} new tokens, greedy; {tokens} useful tokens generated")
    print(f"plain generate, batch {args.batch_size}, fixed {args.fixed_tokens} tokens : {ceiling:8.1f} tok/s")
    print(f"exgrpo eval, continuous batching            : {ours:8.1f} useful tok/s")
    if fixed is not None:
        print(f"exgrpo eval --deterministic (fixed batches) : {fixed:8.1f} useful tok/s (ratio {fixed / ceiling:.2f})")
    print(f"useful tok/s ratio: {ours / ceiling:.2f}  (goal >= 0.7)")
    if fixed is not None:
        print(f"deterministic eval time vs continuous: {(fixed_tokens / fixed) / (tokens / ours):.2f}x")


if __name__ == "__main__":
    main()
