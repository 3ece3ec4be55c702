"""The world's base student: a tiny Llama trained from scratch with a weak prior.

A tokenizer trained on the world's training text, then (ours) short-answer pretraining: the training
questions with their final answers only, no rationales. The result knows the answer format and some
shortcuts, so its zero-shot accuracy is low but not zero, like a small pretrained model's.
"""

from __future__ import annotations

from pathlib import Path

from exgrpo.data.answers import final_answer_sentence
from exgrpo.data.prompts import build_prompt
from exgrpo.models.tiny import build_tiny_model
from exgrpo.training.common import device_arguments
from exgrpo.world.generate import to_example
from exgrpo.world.probes import make_probe
from exgrpo.world.program import Problem, rationale


def tokenizer_corpus(train: list[Problem]) -> list[str]:
    """Training questions, rationales and probes: the text the student will read and write."""
    texts = []
    for problem in train:
        texts += [build_prompt(to_example(problem, "train")), rationale(problem)]
        for rule in ("R1", "R5", "R8", "R9"):
            spec = make_probe(problem, rule)
            if spec is not None:
                texts += [spec.question, spec.rationale]
    return texts


def build_base_student(out_dir: Path, train: list[Problem], hidden_size: int, num_layers: int, num_heads: int,
                       vocab_size: int, pretrain_epochs: float, learning_rate: float, batch_size: int,
                       seed: int) -> Path:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    initial = build_tiny_model(out_dir / "initial", texts=tokenizer_corpus(train), hidden_size=hidden_size,
                               num_layers=num_layers, num_heads=num_heads, vocab_size=vocab_size, seed=seed)
    if pretrain_epochs <= 0:
        return initial
    examples = [to_example(problem, "train") for problem in train]
    conversations = datasets.Dataset.from_list([{"messages": [
        {"role": "user", "content": build_prompt(example)},
        {"role": "assistant", "content": final_answer_sentence(example.answer, example.answer_type)}]}
        for example in examples])
    arguments = SFTConfig(output_dir=str(out_dir / "pretrain"), num_train_epochs=pretrain_epochs,
                          learning_rate=learning_rate, per_device_train_batch_size=batch_size, seed=seed,
                          assistant_only_loss=True, report_to=[], save_strategy="no", logging_steps=50,
                          **device_arguments())
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(initial), args=arguments,
                         train_dataset=conversations, processing_class=AutoTokenizer.from_pretrained(initial))
    trainer.train()
    final = out_dir / "final"
    trainer.model.save_pretrained(final)
    trainer.processing_class.save_pretrained(final)
    return final
