"""bf16 against fp32 on this CPU: SFT loss curves on the same data, and the speed of training and generation.

    python benchmarks/precision.py [--model smollm2-135m-instruct] [--steps 12] [--batch-size 4]

Runs `exgrpo sft` twice on the same EI examples (the synthetic world's, exact teacher), same seed and
order: dtype float32, then bfloat16 (fp32 master weights, the forward and backward under CPU autocast).
Prints both loss curves, their largest gap against the step-to-step noise of the fp32 curve, training
tokens/s of each, and `generate` tokens/s at batch 32 with fp32 and bf16 weights. Whether bf16 pays depends
on the CPU: with avx512_bf16 or AMX it runs natively; without (AVX2 only) it is emulated and slower, which
is why `dtype: auto` picks fp32 there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from exgrpo.config import SFTStageConfig
from exgrpo.models.named import resolve_model
from exgrpo.models.precision import cpu_has_native_bf16


def world_ei(folder: Path) -> Path:
    """EI data of a small synthetic world, from the exact teacher (no model involved)."""
    from exgrpo.config import ProbeConfig, build_config, registry_context
    from exgrpo.data.registry import DatasetRegistry
    from exgrpo.inversion.pipeline import run_probe
    from exgrpo.world.datasets import world_entries, write_world
    from exgrpo.world.teacher import WORLD_TEACHERS

    world = {"seed": 0, "train_size": 8, "test_size": 1, "ood_size": 1}
    write_world(folder / "world", **world)
    registry = DatasetRegistry(world_entries(folder / "world"))
    config = build_config(ProbeConfig, {"datasets": ["world_train"], "output_dir": folder / "probe",
                                        "teacher": {"kind": "exact", "world": world}}, "world EI",
                          registry_context(registry))
    run_probe(config, registry=registry, extra_teachers=WORLD_TEACHERS)
    return folder / "probe" / "ei.jsonl"


def sft_run(model: str, ei: Path, out: Path, dtype: str, steps: int, batch_size: int,
            stop_after: int | None = None) -> tuple[list[float], float]:
    """(loss per step, trained tokens/s) of one SFT run of `steps` steps, stopped after `stop_after`."""
    from transformers import TrainerCallback

    from exgrpo.training.sft import run_sft

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            # Only ever set it: writing False here would undo the Trainer's own stop at max_steps.
            if stop_after is not None and state.global_step >= stop_after:
                control.should_training_stop = True

    config = SFTStageConfig(model=model, ei_data=ei, output_dir=out, max_steps=steps, per_device_batch_size=batch_size,
                            learning_rate=5e-5, max_length=512, dtype=dtype, report_to=["none"], logging_steps=1,
                            save_steps=10_000, seed=0)
    started = time.perf_counter()
    run_sft(config, callbacks=[StopAfter()])
    seconds = time.perf_counter() - started
    history = json.loads((out / "log_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    tokens = next((entry["num_tokens"] for entry in reversed(history) if "num_tokens" in entry), None)
    return losses, (tokens or 0) / seconds


def generate_rate(model_path: str, dtype: torch.dtype, batch: int = 32, new_tokens: int = 48) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).eval()
    inputs = tokenizer(["Explain why the sky is blue."] * batch, return_tensors="pt")
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id)
    return batch * new_tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--bf16-steps", type=int, help="steps of the bf16 run (default: --steps where the CPU has "
                        "native bf16, else 2: emulated bf16 trained ~13x slower than fp32 on an AVX2 EPYC)")
    args = parser.parse_args()
    bf16_steps = args.bf16_steps or (args.steps if cpu_has_native_bf16() else min(2, args.steps))
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        ei = world_ei(Path(scratch))
        fp32, fp32_rate = sft_run(model, ei, Path(scratch) / "fp32", "float32", args.steps, args.batch_size)
        # The same schedule as the fp32 run (max_steps sets the learning-rate decay), stopped after bf16_steps.
        bf16, bf16_rate = sft_run(model, ei, Path(scratch) / "bf16", "bfloat16", args.steps, args.batch_size,
                                  stop_after=bf16_steps)
    generate_fp32, generate_bf16 = generate_rate(model, torch.float32), generate_rate(model, torch.bfloat16)

    print(f"model {args.model}; CPU native bf16 (avx512_bf16/AMX): {'yes' if cpu_has_native_bf16() else 'no'}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"SFT, {args.steps} steps x batch {args.batch_size} (bf16: the first {bf16_steps}), same data, order and seed:")
    print("step  fp32 loss  bf16 loss")
    for step, (a, b) in enumerate(zip(fp32, bf16, strict=False), start=1):
        print(f"{step:4d}  {a:9.4f}  {b:9.4f}")
    gap = max(abs(a - b) for a, b in zip(fp32, bf16, strict=False))
    noise = statistics.pstdev([b - a for a, b in zip(fp32, fp32[1:], strict=False)]) if len(fp32) > 2 else float("nan")
    print(f"largest |fp32 - bf16| loss gap: {gap:.4f}; step-to-step noise of the fp32 curve (std of changes): "
          f"{noise:.4f}; agree within noise: {'yes' if gap <= noise else 'no'}")
    print(f"training tokens/s: fp32 {fp32_rate:.1f}, bf16 autocast {bf16_rate:.1f} (speedup {bf16_rate / fp32_rate:.2f}x)")
    print(f"generate tok/s, batch 32: fp32 {generate_fp32:.1f}, bf16 weights {generate_bf16:.1f} "
          f"(speedup {generate_bf16 / generate_fp32:.2f}x)")


if __name__ == "__main__":
    main()
