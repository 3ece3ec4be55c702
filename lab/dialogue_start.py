"""Issue 36 item 6: does an RL start need probe dialogues in its SFT data? Measured on the format RL rolls out.

    python lab/dialogue_start.py [--runs runs/rl-gate] [--out lab/records/rl-gate/dialogue_start.json]

METHOD.md (Stage 2, ours) adds probe dialogues to the SFT data because "a student that never saw the dialogue format
scores near zero on it". The gate measured the single-turn side (docs/rl.md: with dialogues minus without, -5.5 on
world_val). This measures the other side: each EI-SFT model (`ei`: one dialogue per question; `ei_nodialogue`: none)
answers the gate's RL questions greedily in ExGRPO's scenario A: k = 2 of the question's kept probes, each answered
by the student itself with the turn budget the gate's RL used, then the question with the answer budget; and the
same questions single-turn. Both models trained on these questions (the same ones), so this is not held-out: it
asks whether the start can follow the dialogue RL will put it in, which is what RL needs from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `lab` as a package

from exgrpo.data.answers import check_example  # noqa: E402
from exgrpo.data.prompts import build_prompt  # noqa: E402
from exgrpo.evaluation.metrics import bootstrap_mean_of_means  # noqa: E402
from exgrpo.files import atomic_write_text  # noqa: E402
from exgrpo.generation.generators import TransformersGenerator  # noqa: E402
from exgrpo.training.dialogues import EIQuestion, dialogue_messages, load_ei_questions, sample_probes  # noqa: E402

MODELS = {"ei": "EI-SFT with one probe dialogue per question", "ei_nodialogue": "EI-SFT without probe dialogues"}
PROBES = 2  # the gate's k
TURN_TOKENS = 240  # the gate's auto per-turn budget (runs/rl-gate/exgrpo/train/budgets.json)
ANSWER_TOKENS = 256  # the evaluation's budget, which the final answer is never below


def answer_dialogues(generator: TransformersGenerator, questions: list[EIQuestion], probes: int) -> list[bool]:
    """Scenario A, greedy: the student answers each probe turn, then the question; right or wrong per question."""
    drawn = [sample_probes(question, probes, "dialogue-start") for question in questions]
    conversations: list[list[dict[str, str]]] = [[] for _ in questions]
    for turn in range(probes + 1):
        for i, chosen in enumerate(drawn):
            if turn < len(chosen):
                conversations[i].append({"role": "user", "content": build_prompt(chosen[turn][0])})
            elif turn == len(chosen):
                conversations[i].append({"role": "user", "content": questions[i].prompt})
        # Probe turns and final answers have their own budgets: one generate call each.
        for final, budget in ((False, TURN_TOKENS), (True, ANSWER_TOKENS)):
            rows = [i for i, chosen in enumerate(drawn) if (turn == len(chosen) if final else turn < len(chosen))]
            if rows:
                for i, generation in zip(rows, generator.generate([conversations[i] for i in rows], budget), strict=True):
                    conversations[i].append({"role": "assistant", "content": generation.text})
    return [check_example(conversation[-1]["content"], question.example).correct
            for conversation, question in zip(conversations, questions, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/rl-gate"))
    parser.add_argument("--out", type=Path, default=Path("lab/records/rl-gate/dialogue_start.json"))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    questions = [q for q in load_ei_questions(args.runs / "ei" / "probe" / "ei.jsonl") if q.probes]
    scores: dict[str, dict[str, list[bool]]] = {}
    for name in MODELS:
        generator = TransformersGenerator.from_pretrained(str(args.runs / name / "sft" / "final"),
                                                          batch_size=args.batch_size, dtype="float32")
        single = generator.generate([dialogue_messages([], q, with_answers=False) for q in questions], ANSWER_TOKENS)
        scores[name] = {"single_turn": [check_example(g.text, q.example).correct for g, q in zip(single, questions,
                                                                                                   strict=True)],
                        "dialogue": answer_dialogues(generator, questions, PROBES)}
        print(name, {key: round(100 * float(np.mean(value)), 1) for key, value in scores[name].items()}, flush=True)
    differences = {}
    for form in ("single_turn", "dialogue"):
        # Paired: the bootstrap of the per-question differences (same questions, both models).
        paired = np.asarray(scores["ei"][form], float) - np.asarray(scores["ei_nodialogue"][form], float)
        differences[form] = bootstrap_mean_of_means([paired]).as_percent()
    record = {"questions": len(questions), "probes": PROBES, "turn_tokens": TURN_TOKENS, "answer_tokens": ANSWER_TOKENS,
              "dtype": "float32", "models": MODELS, "scores": scores, "with_minus_without": differences}
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(differences, indent=1))


if __name__ == "__main__":
    main()
