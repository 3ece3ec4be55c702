"""ExGRPO against TRL's vanilla GRPO: time per generated token, and rollout speed against model.generate.

    python benchmarks/exgrpo_step.py [--steps 6] [--tokens 32] [--questions 4] [--k 2]

One process, the same tiny Llama student (4 layers, hidden 256, untrained), the same questions, and the
same number of generated tokens per rollout (EOS suppressed with min_new_tokens): ExGRPO rolls out k
probes then the question (scenario A: k + 1 turns of --tokens) or k' probes then the question (B);
vanilla GRPO answers the question in one turn of the same mean length. Prints:
- seconds per generated (trained) token, ExGRPO / vanilla (goal <= 1.2);
- ExGRPO rollout tokens/s against plain batched `model.generate` on exactly the same contexts, turn by
  turn (goal >= 0.8): the cost of the rollout machinery (masks, log-probabilities, turn bookkeeping);
- for reference, plain `model.generate` on the single-turn prompts: dialogues are longer contexts, and
  on a CPU every generated token attends over all of them.
The first step of each run is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, TrainerCallback

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from exgrpo.config import TrainConfig  # noqa: E402
from exgrpo.evaluation.generation import load_model_and_tokenizer  # noqa: E402
from exgrpo.models.tiny import build_tiny_model  # noqa: E402
from exgrpo.training.train import build_trainer, grpo_arguments  # noqa: E402


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


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter() - self._start)


class RecordingSampler:
    """Wraps the trainer's sampler: times each turn and keeps its contexts for the plain-generate replay."""

    def __init__(self, inner: Any, log: list[tuple[list[list[int]], int, float]]) -> None:
        self.inner, self.log, self.eos_ids = inner, log, inner.eos_ids

    def ready(self) -> Any:
        return self.inner.ready()

    def sample(self, contexts: list[list[int]], keys: list[int] | None = None) -> list[tuple[list[int], list[float]]]:
        start = time.perf_counter()
        result = self.inner.sample(contexts, keys=keys)
        self.log.append((contexts, sum(len(tokens) for tokens, _ in result), time.perf_counter() - start))
        return result


def trained_tokens_per_step(trainer: Any, batch: int) -> float:
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    return statistics.mean(lengths[1:]) * batch


def run_vanilla(config: TrainConfig, batch: int) -> tuple[float, float]:
    from trl import GRPOTrainer

    from exgrpo.training.dialogues import load_ei_questions
    from exgrpo.training.exgrpo import questions_dataset

    timer = StepTimer()
    trainer = GRPOTrainer(model=config.model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                          args=grpo_arguments(config), train_dataset=questions_dataset(load_ei_questions(config.ei_path())),
                          processing_class=AutoTokenizer.from_pretrained(config.model), callbacks=[timer])
    trainer.train()
    return statistics.mean(timer.times[1:]), trained_tokens_per_step(trainer, batch)


def run_exgrpo(config: TrainConfig, batch: int) -> tuple[float, float, list[tuple[list[list[int]], int, float]]]:
    timer, turns = StepTimer(), []
    trainer = build_trainer(config, callbacks=[timer])
    make_sampler = trainer.make_sampler
    trainer.make_sampler = lambda: RecordingSampler(make_sampler(), turns)
    trainer.train()
    return statistics.mean(timer.times[1:]), trained_tokens_per_step(trainer, batch), turns


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
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = args.questions * 8
    k_partial = args.k // 2
    mean_turns = ((args.k + 1) + (k_partial + 1)) / 2  # 4 A and 4 B rollouts per question
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model_path = build_tiny_model(root / "tiny", hidden_size=256, num_layers=4, num_heads=4)
        common = {"model": str(model_path), "ei_data": write_ei(root / "ei.jsonl", args.questions * 2),
                  "max_steps": args.steps, "questions_per_step": args.questions, "report_to": ["none"],
                  "logging_steps": 1, "save_steps": 10_000, "beta": 0.0}
        vanilla_tokens = int(args.tokens * mean_turns)
        vanilla = run_vanilla(TrainConfig(**common, output_dir=root / "vanilla", max_new_tokens=vanilla_tokens,
                                          generation_kwargs={"min_new_tokens": vanilla_tokens},
                                          exgrpo={"k": 0, "rollouts_full": 8, "rollouts_partial": 0}), batch)
        exgrpo = run_exgrpo(TrainConfig(**common, output_dir=root / "exgrpo", max_new_tokens=args.tokens,
                                        generation_kwargs={"min_new_tokens": args.tokens},
                                        exgrpo={"k": args.k, "k_partial": k_partial, "rollouts_full": 4,
                                                "rollouts_partial": 4, "aux_weight": 0.1}), batch)
        model, tokenizer = load_model_and_tokenizer(str(model_path))
        turns = exgrpo[2][args.k + 1 :]  # skip the warm-up step's turns
        ours = sum(n for _, n, _ in turns) / sum(seconds for _, _, seconds in turns)
        plain = sum(n for _, n, _ in turns) / sum(plain_generate_seconds(model, tokenizer, c, args.tokens)
                                                   for c, _, _ in turns)
        single = [tokenizer.apply_chat_template([{"role": "user", "content": f"Is {i} times 2 even?"}],
                                                add_generation_prompt=True, return_dict=False) for i in range(batch)]
        single_rate = batch * args.tokens / plain_generate_seconds(model, tokenizer, single, args.tokens)
    (v_step, v_tokens), (e_step, e_tokens, _) = vanilla, exgrpo
    print(f"tiny llama (4 x 256), {args.questions} questions x 8 rollouts per step, k = {args.k}, k' = {k_partial}, "
          f"{args.tokens} tokens per turn (vanilla: {vanilla_tokens} per completion), {args.steps - 1} timed steps")
    print(f"vanilla GRPO : {v_step:6.2f} s/step, {v_tokens:6.0f} generated tokens/step, {v_step / v_tokens * 1e3:5.2f} ms/token")
    print(f"ExGRPO       : {e_step:6.2f} s/step, {e_tokens:6.0f} generated tokens/step, {e_step / e_tokens * 1e3:5.2f} ms/token")
    print(f"time per generated token, ExGRPO / vanilla (goal <= 1.2): {(e_step / e_tokens) / (v_step / v_tokens):.2f}")
    print(f"rollout {ours:.0f} tokens/s vs plain model.generate on the same contexts {plain:.0f} tokens/s: "
          f"ratio (goal >= 0.8) {ours / plain:.2f}")
    rollout_per_step = sum(seconds for _, _, seconds in turns) / (args.steps - 1)
    print(f"ExGRPO step breakdown: rollout {rollout_per_step:.2f} s, scoring + training {e_step - rollout_per_step:.2f} s "
          f"(sequences carry the injected probe turns; plus the auxiliary SFT loss)")
    print(f"(plain model.generate on the single-turn prompts: {single_rate:.0f} tokens/s)")


if __name__ == "__main__":
    main()
