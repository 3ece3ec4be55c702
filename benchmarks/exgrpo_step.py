"""ExGRPO against TRL's vanilla GRPO: rollout speed, step overhead, and the full step per generated token.

    python benchmarks/exgrpo_step.py [--steps 6] [--tokens 32] [--questions 4] [--k 2] [--model NAME]

One process, the same student (default: the tiny Llama, 4 layers, hidden 256, untrained; --model for a real
one, e.g. smollm2-135m-instruct, in the dtype `auto` means here), the same questions, EOS
suppressed with min_new_tokens: ExGRPO rolls out k probes then the question (scenario A: k + 1 turns of
--tokens) or k' probes then the question (B). --decoding picks how ExGRPO's rollouts are decoded (default: whole dialogues continuously). Prints three `ratio` lines (issue 12's goals):
- multi-turn rollout: generated tokens/s of ExGRPO's rollouts against plain `model.generate` producing
  the same number of new tokens at the same batch size on the single-turn prompts (goal >= 0.85);
- ExGRPO with the aux loss off against vanilla GRPO on sequences of the same total length (vanilla
  generates as many tokens as an ExGRPO completion holds, injected probe turns included): step time
  (goal <= 1.15), which isolates our overhead from the method's extra tokens;
- the full ExGRPO step (aux on) per generated token against vanilla GRPO's whose completions are as long
  as ExGRPO's generated tokens per rollout, with the breakdown of the ExGRPO step (report only).
The first step of each run is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from exgrpo.config import TrainConfig  # noqa: E402
from exgrpo.generation.generators import load_model_and_tokenizer  # noqa: E402
from exgrpo.gpu_check import step_timer  # noqa: E402
from exgrpo.models.named import resolve_model  # noqa: E402
from exgrpo.models.tiny import build_tiny_model  # noqa: E402
from exgrpo.rl.rollout import TransformersSampler  # noqa: E402
from exgrpo.rl.train import build_trainer, grpo_arguments  # noqa: E402


def write_ei(path: Path, questions: int) -> Path:
    records = []
    for i in range(questions):
        probes = [{"rule": f"R{j}", "rule_name": "x", "id": f"q{i}#R{j}", "question": f"Is {i} plus {j} even?",
                   "choices": [], "answer": "yes", "answer_type": "yes_no", "teacher_response": "The answer is yes.",
                   "student_solved": None} for j in range(1, 6)]
        records.append({"schema_version": 1, "id": f"q{i}", "question": f"Is {i} times 2 even?", "answer": "yes",
                        "answer_type": "yes_no", "source": "bench", "choices": None, "location": "",
                        "teacher_response": "The answer is yes.", "probes": probes, "difficulty": {}})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class RecordingSampler:
    """Wraps the trainer's sampler: times the rollouts, and keeps each turn's contexts for the plain-generate
    replay (whether the sampler decodes whole dialogues or turn by turn)."""

    def __init__(self, inner: Any, record: Recording) -> None:
        self.inner, self.record, self.eos_ids, self.budgets = inner, record, inner.eos_ids, inner.budgets

    @property
    def decodes_dialogues(self) -> bool:
        return getattr(self.inner, "decodes_dialogues", False)

    @contextmanager
    def ready(self) -> Iterator[RecordingSampler]:
        with self.inner.ready():
            self.record.dtype = self.inner.model.dtype  # the plain-generate replay runs in the same precision
            self.record.attention = self.inner.model.config._attn_implementation
            yield self

    def sample(self, contexts: list[list[int]], keys: list[int] | None = None,
               budgets: list[int] | None = None) -> list[tuple[list[int], list[float]]]:
        start = time.perf_counter()
        result = self.inner.sample(contexts, keys=keys, budgets=budgets)
        self.record.add(time.perf_counter() - start, sum(len(tokens) for tokens, _ in result))
        self.record.turns.append(contexts)
        return result

    def sample_dialogues(self, contexts: list[list[int]], end_turn: Any, turn_budget: Any = None) -> None:
        so_far = [list(c) for c in contexts]
        turn_of = [0] * len(contexts)
        generated = 0
        first = len(self.record.turns)

        def recording_end_turn(row: int, tokens: list[int], logprobs: list[float]) -> list[int] | None:
            nonlocal generated
            if len(self.record.turns) <= first + turn_of[row]:
                self.record.turns.append([])
            self.record.turns[first + turn_of[row]].append(list(so_far[row]))
            turn_of[row] += 1
            generated += len(tokens)
            injected = end_turn(row, tokens, logprobs)
            so_far[row] += tokens + (injected or [])
            return injected

        start = time.perf_counter()
        self.inner.sample_dialogues(contexts, recording_end_turn, turn_budget)
        self.record.add(time.perf_counter() - start, generated)


class Recording:
    def __init__(self) -> None:
        self.turns: list[list[list[int]]] = []  # the contexts of each turn, rollout batch after rollout batch
        self.batches: list[tuple[float, int]] = []  # seconds and generated tokens of each sampler call
        self.dtype: Any = None  # what the rollouts were sampled in
        self.attention = "sdpa"  # and with which attention

    def add(self, seconds: float, generated: int) -> None:
        self.batches.append((seconds, generated))


def trained_tokens_per_step(trainer: Any, batch: int) -> float:
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    return statistics.mean(lengths[1:]) * batch


def run_vanilla(config: TrainConfig, batch: int) -> tuple[float, float]:
    from trl import GRPOTrainer

    from exgrpo.rl.trainer import questions_dataset
    from exgrpo.training.dialogues import load_ei_questions

    timer = step_timer()
    trainer = GRPOTrainer(model=config.model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                          args=grpo_arguments(config), train_dataset=questions_dataset(load_ei_questions(config.ei_path())),
                          processing_class=AutoTokenizer.from_pretrained(config.model), callbacks=[timer])
    trainer.train()
    return statistics.mean(timer.times[1:]), trained_tokens_per_step(trainer, batch)


def sft_tokens_per_s(config: TrainConfig, sequences: list[tuple[list[int], list[int]]], batch: int, steps: int,
                     output_dir: Path) -> float:
    """TRL's SFT trainer, set up as `exgrpo sft` sets it (precision, the CPU loss paths), on the rollouts' own
    sequences (prompt + whole dialogue, loss on the dialogue), in micro-batches of the update's size: sequence
    tokens per second of its steps, the first left out."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from exgrpo.training.common import fast_cpu_losses, trainer_arguments

    fast_cpu_losses()
    rows = [{"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)}
            for prompt, completion in sequences[: batch * steps]]
    arguments = trainer_arguments(config.model_copy(update={"output_dir": output_dir})) | {
        "per_device_train_batch_size": batch, "gradient_accumulation_steps": 1, "max_steps": steps}
    timer = step_timer()
    trainer = SFTTrainer(model=config.model, args=SFTConfig(**arguments, max_length=None, completion_only_loss=True,
                                                            train_sampling_strategy="group_by_length"),
                         train_dataset=datasets.Dataset.from_list(rows), callbacks=[timer],
                         processing_class=AutoTokenizer.from_pretrained(config.model))
    trainer.train()
    tokens = [sum(len(r["input_ids"]) for r in rows[i * batch : (i + 1) * batch]) for i in range(steps)]
    # group_by_length reorders rows, so a step's tokens are not known one by one: the mean over the timed steps.
    return statistics.mean(tokens) / statistics.mean(timer.times[1:])


def plain_generate_seconds(model: Any, tokenizer: Any, contexts: list[list[int]], tokens: int) -> float:
    width = max(len(c) for c in contexts)
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(c)) + c for c in contexts])
    attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts])
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, max_new_tokens=tokens,
                       min_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=32, help="generated tokens per assistant turn")
    parser.add_argument("--questions", type=int, default=4, help="questions per step")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--model", help="model name, folder or hub id (default: build the tiny Llama)")
    parser.add_argument("--decoding", default="dialogues", choices=["dialogues", "turns-cached", "turns"],
                        help="how ExGRPO's sampler decodes the dialogues (TransformersSampler)")
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = args.questions * 8
    k_partial = args.k // 2
    mean_turns = ((args.k + 1) + (k_partial + 1)) / 2  # 4 A and 4 B rollouts per question
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model_path = (resolve_model(args.model) if args.model
                      else build_tiny_model(root / "tiny", hidden_size=256, num_layers=4, num_heads=4))
        common = {"model": str(model_path), "ei_data": write_ei(root / "ei.jsonl", args.questions * 2),
                  "max_steps": args.steps, "questions_per_step": args.questions, "report_to": ["none"],
                  "logging_steps": 1, "save_steps": 10_000, "beta": 0.04}
        method = {"k": args.k, "k_partial": k_partial, "rollouts_full": 4, "rollouts_partial": 4}

        update_rows: dict[str, int] = {}
        sequences: list[tuple[list[int], list[int]]] = []  # the full run's rollouts: prompt, whole dialogue
        aux_tokens: list[int] = []  # tokens of the aux loss's teacher-forced dialogues, per step

        def exgrpo_run(name: str, aux: float) -> tuple[float, float, list, list[dict]]:
            config = TrainConfig(**common, output_dir=root / name, max_new_tokens=args.tokens,
                                 generation_kwargs={"min_new_tokens": args.tokens}, exgrpo={**method, "aux_weight": aux})
            timer, record, lengths = step_timer(), Recording(), []
            trainer = build_trainer(config, callbacks=[timer])
            rollout = trainer._rollout
            trainer.make_sampler = lambda: RecordingSampler(
                TransformersSampler(trainer, decoding=args.decoding), record)

            def recording_rollout(prompts: Any, owner: Any) -> dict:
                output = rollout(prompts, owner)
                lengths.extend(len(ids) for ids in output["completion_ids"])  # generated + injected tokens
                if aux > 0:
                    sequences.extend(zip(output["prompt_ids"], output["completion_ids"], strict=True))
                    aux_tokens.append(sum(len(ids) for ids, _ in trainer.generation.aux_examples))
                return output

            trainer.rollout_func = recording_rollout
            trainer.train()
            update_rows[name] = trainer.args.per_device_train_batch_size
            return statistics.mean(timer.times[1:]), trained_tokens_per_step(trainer, batch), record, lengths

        def vanilla_run(name: str, tokens: int) -> tuple[float, float]:
            return run_vanilla(TrainConfig(**common, output_dir=root / name, max_new_tokens=tokens,
                                           generation_kwargs={"min_new_tokens": tokens},
                                           exgrpo={"k": 0, "rollouts_full": 8, "rollouts_partial": 0}), batch)

        full_step, full_tokens, record, _ = exgrpo_run("exgrpo", aux=0.1)
        calls = len(record.batches) // args.steps
        update_seconds = [full_step - sum(s for s, _ in record.batches[i * calls : (i + 1) * calls])
                          for i in range(1, args.steps)]  # step minus its rollouts, the warm-up step left out
        step_sequences = [sequences[i * batch : (i + 1) * batch] for i in range(1, args.steps)]
        update_tokens = statistics.mean(sum(len(p) + len(c) for p, c in rows) + aux
                                        for rows, aux in zip(step_sequences, aux_tokens[1:], strict=True))
        update_rate = update_tokens / statistics.mean(update_seconds)
        sft_rate = sft_tokens_per_s(TrainConfig(**common, output_dir=root / "sft", max_new_tokens=args.tokens),
                                    sequences, update_rows["exgrpo"], min(args.steps, len(sequences) // update_rows["exgrpo"]),
                                    root / "sft")
        lean_step, _, _, lean_lengths = exgrpo_run("exgrpo-aux-off", aux=0.0)
        same_length = round(statistics.mean(lean_lengths))  # generated + injected tokens per completion
        vanilla_same_length = vanilla_run("vanilla-same-length", same_length)
        generated = int(args.tokens * mean_turns)
        vanilla_generated = vanilla_run("vanilla-same-generated", generated)
        model, tokenizer = load_model_and_tokenizer(str(model_path))
        model = model.to(record.dtype)  # in the dtype the training sampled in
        calls_per_step = len(record.batches) // args.steps
        timed = record.batches[calls_per_step:]  # skip the warm-up step
        rollout_seconds = sum(seconds for seconds, _ in timed)
        rollout_rate = statistics.median(n / seconds for seconds, n in timed) if len(timed) == args.steps - 1 \
            else sum(n for _, n in timed) / rollout_seconds  # per step when one call per step, else overall
        turns = record.turns[args.k + 1 :]  # the warm-up step's k + 1 turns left out
        generated_in_turns = sum(n for _, n in timed)
        same_contexts = generated_in_turns / sum(plain_generate_seconds(model, tokenizer, c, args.tokens) for c in turns)
        single = [tokenizer.apply_chat_template([{"role": "user", "content": f"Is {i} times 2 even?"}],
                                                add_generation_prompt=True, return_dict=False) for i in range(batch)]
        # The same number of new tokens per row as a whole rollout generates, in one call.
        plain_generate_seconds(model, tokenizer, single, 4)  # warm-up

        def median_seconds(contexts: list[list[int]], tokens: int) -> float:
            return statistics.median(plain_generate_seconds(model, tokenizer, contexts, tokens) for _ in range(3))

        single_rate = batch * generated / median_seconds(single, generated)
        # The dialogues' own shape, without their injected turns: all rows decode k' + 1 turns, then the A rows
        # (half the batch) k - k' more. Its speed against single_rate bounds what any multi-turn decoding gets here.
        shape_rate = batch * generated / (median_seconds(single, (k_partial + 1) * args.tokens)
                                          + median_seconds(single[: batch // 2], (args.k - k_partial) * args.tokens))
        like_rate = None
        if record.attention != model.config._attn_implementation:  # the rollouts' attention, in plain generate too
            model.set_attn_implementation(record.attention)
            like_rate = batch * generated / median_seconds(single, generated)
    print(f"{args.model or 'tiny llama (4 x 256)'}, generate in {model.dtype}, decoding {args.decoding}, {args.questions} questions x 8 rollouts per step, k = {args.k}, k' = {k_partial}, "
          f"{args.tokens} tokens per turn ({generated} per rollout on average), {args.steps - 1} timed steps")
    print(f"multi-turn rollout {rollout_rate:.0f} generated tok/s; plain model.generate, single turn, batch {batch}, "
          f"{generated} new tokens: {single_rate:.0f} tok/s; on the rollouts' own contexts turn by turn: "
          f"{same_contexts:.0f} tok/s")
    print(f"multi-turn rollout ratio (goal >= 0.85): {rollout_rate / single_rate:.2f}")
    if like_rate is not None:
        print(f"the rollouts sample with attention '{record.attention}' (exgrpo.generation.cpu_attention); plain generate "
              f"with it too: {like_rate:.0f} tok/s, like-for-like ratio {rollout_rate / like_rate:.2f}")
    print(f"bound from the dialogue shape alone (plain generate, {k_partial + 1} turns of every row then "
          f"{args.k - k_partial} of the A rows, no injected turns): {shape_rate:.0f} tok/s, ratio {shape_rate / single_rate:.2f}; "
          f"rollouts against it: {rollout_rate / shape_rate:.2f}")
    print(f"ExGRPO aux off {lean_step:.2f} s/step vs vanilla GRPO {vanilla_same_length[0]:.2f} s/step, both "
          f"{same_length} tokens per completion (ExGRPO: {generated} generated + the injected turns)")
    print(f"step ratio, aux off, same sequence length (goal <= 1.15): {lean_step / vanilla_same_length[0]:.2f}")
    v_step, v_tokens = vanilla_generated
    print(f"full ExGRPO {full_step:.2f} s/step for {full_tokens:.0f} generated tokens ({full_step / full_tokens * 1e3:.2f} ms"
          f"/token); vanilla GRPO {v_step:.2f} s/step for {v_tokens:.0f} ({v_step / v_tokens * 1e3:.2f} ms/token)")
    print(f"full step per generated token ratio (goal <= 3): {(full_step / full_tokens) / (v_step / v_tokens):.2f}")
    print(f"update (reference forward, policy loss, KL, aux loss) {update_rate:.0f} sequence tok/s (the rollouts' "
          f"{update_tokens:.0f} tokens a step, aux dialogues included, in micro-batches of {update_rows['exgrpo']}); "
          f"TRL's SFT trainer on the same sequences and micro-batches {sft_rate:.0f} tok/s")
    print(f"update vs SFT tokens/s ratio (goal >= 0.65): {update_rate / sft_rate:.2f}")
    rollout_per_step = rollout_seconds / (args.steps - 1)
    print(f"full ExGRPO step: rollout {rollout_per_step:.2f} s; scoring, policy loss, aux loss {full_step - rollout_per_step:.2f}"
          f" s; aux loss alone ~{full_step - lean_step:.2f} s (the method's own costs: the injected probe turns in "
          f"every sequence, and the aux loss)")


if __name__ == "__main__":
    main()
