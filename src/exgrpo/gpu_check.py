"""`exgrpo gpu-check` (`make gpu-check`): the GPU path end to end on a real shape with random weights, in
minutes: LoRA SFT steps, ExGRPO steps (transformers generation), a batch of eval generation, in bf16.

Each stage runs the stages' own code (run_sft, build_trainer, make_generator) on a model folder, as a real run
does, and reports pass/fail, tokens/s and peak memory; the JSON it writes is what `estimate.gpu_check` reads
to turn a run's token counts into hours. Without CUDA the same code runs on the `tiny` shape on the CPU (its
test). vLLM and DeepSpeed are reported as not exercised unless installed.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import random
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exgrpo.config import SFTStageConfig, TrainConfig
from exgrpo.files import atomic_write_json, replace_marked_section
from exgrpo.generation.generators import make_generator
from exgrpo.models.shapes import build_shaped_model
from exgrpo.rl.train import build_trainer
from exgrpo.training.sft import run_sft

WORDS = ["the", "number", "of", "apples", "each", "basket", "holds", "is", "twice", "what", "remains", "after", "she", "gives", "away", "three", "then", "adds", "five", "more", "so", "we", "compute", "total", "per", "day", "across", "weeks", "and", "divide", "by", "price"]


@dataclass
class StageResult:
    stage: str
    passed: bool
    seconds: float  # the whole stage, loading included
    timed_seconds: float  # the part the rate is measured on (warm-up step left out)
    tokens: int  # in that part: trained tokens (SFT), generated tokens (ExGRPO, eval)
    tokens_per_s: float | None
    peak_memory_gib: float | None
    detail: str = ""
    error: str | None = None


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_ei_data(path: Path, questions: int, probes: int = 5, seed: int = 0) -> Path:
    """EI records about as long as real ones (a 60-word question, a 150-word rationale, 60-word probe answers)."""
    rng = random.Random(seed)
    records = []
    for i in range(questions):
        probe_records = [{"rule": f"R{j}", "rule_name": "x", "id": f"q{i}#R{j}", "question": sentence(rng, 30) + "?",
                          "choices": [], "answer": "yes", "answer_type": "yes_no",
                          "teacher_response": sentence(rng, 60) + " The answer is yes.", "student_solved": None}
                         for j in range(1, probes + 1)]
        records.append({"schema_version": 1, "id": f"q{i}", "question": sentence(rng, 60) + "?", "answer": "12",
                        "answer_type": "number", "source": "gpu-check", "choices": None, "location": "",
                        "teacher_response": sentence(rng, 150) + " The answer is 12.", "probes": probe_records,
                        "difficulty": {}})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class Memory:
    """Peak memory of a stage: allocated CUDA memory, or on a CPU the process's peak resident set (which
    only grows: later stages report the largest so far)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def reset(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        import resource

        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def step_timer() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self.started)

    return StepTimer()


def check_sft(model: Path, root: Path, steps: int, lora: dict[str, Any]) -> tuple[float, int, str]:
    config = SFTStageConfig(model=str(model), ei_data=write_ei_data(root / "ei.jsonl", 16), output_dir=root / "sft",
                            max_steps=steps, per_device_batch_size=4, max_length=1024, lora=lora, dtype="bfloat16",
                            report_to=["none"], logging_steps=1, save_steps=10_000, merge_adapter=False)
    timer = step_timer()
    log = json.loads((run_sft(config, callbacks=[timer]).parent / "log_history.json").read_text())
    seen = [entry["num_tokens"] for entry in log if "num_tokens" in entry]  # TRL: tokens trained on so far
    tokens = int(seen[-1] - seen[0]) if len(seen) >= 2 else 0
    return sum(timer.times[1:]), tokens, f"{steps} steps of 4 examples, LoRA r {lora['r']}"


def check_exgrpo(model: Path, root: Path, steps: int, lora: dict[str, Any], turn_tokens: int) -> tuple[float, int, str]:
    settings = {"k": 2, "k_partial": 1, "rollouts_full": 4, "rollouts_partial": 4, "aux_weight": 0.1}
    config = TrainConfig(model=str(model), ei_data=write_ei_data(root / "ei.jsonl", 16), output_dir=root / "exgrpo",
                         max_steps=steps, questions_per_step=2, max_new_tokens=turn_tokens, lora=lora, dtype="bfloat16",
                         generation_kwargs={"min_new_tokens": turn_tokens}, exgrpo=settings, beta=0.04,
                         report_to=["none"], logging_steps=1, save_steps=10_000)
    timer = step_timer()
    build_trainer(config, callbacks=[timer]).train()
    # Every turn runs to its budget (min_new_tokens): A rollouts decode k + 1 turns, B rollouts k' + 1.
    generated = config.questions_per_step * (4 * 3 + 4 * 2) * turn_tokens
    timed = timer.times[1:]
    return sum(timed), generated * len(timed), (f"{steps} steps of 2 questions x 4+4 rollouts (k 2, k' 1), "
                                                f"{turn_tokens} tokens a turn, KL to the reference, aux loss")


def check_eval(model: Path, batch: int, new_tokens: int) -> tuple[float, int, str]:
    generator = make_generator(str(model), "transformers", batch, "bfloat16")
    rng = random.Random(1)
    conversations = [[{"role": "user", "content": sentence(rng, 60) + "?"}] for _ in range(batch)]
    generator.generate(conversations[:2], 4)  # warm-up
    started = time.perf_counter()
    generations = generator.generate(conversations, new_tokens)
    return time.perf_counter() - started, sum(g.num_tokens for g in generations), \
        f"{batch} prompts in one batch, {new_tokens} new tokens each"


def run_stage(name: str, memory: Memory, work: Callable[[], tuple[float, int, str]]) -> StageResult:
    memory.reset()
    started = time.perf_counter()
    try:
        timed, tokens, detail = work()
    except Exception as error:  # a failed stage is a result to report, and the other stages still run
        return StageResult(name, False, time.perf_counter() - started, 0.0, 0, None, memory.peak_gib(),
                           error=f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
    rate = tokens / timed if timed > 0 and tokens > 0 else None
    return StageResult(name, rate is not None, time.perf_counter() - started, timed, tokens, rate, memory.peak_gib(),
                       detail, None if rate is not None else "no tokens were timed")


def not_exercised() -> list[str]:
    missing = []
    for package, what in (("vllm", "vLLM generation (use_vllm, eval backend vllm)"),
                          ("deepspeed", "DeepSpeed ZeRO (configs/accelerate/zero*.yaml)")):
        if importlib.util.find_spec(package) is None:
            missing.append(f"{what}: {package} is not installed here")
    return missing


def run_gpu_check(shape: str | None, out: Path, steps: int = 4, log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    shape = shape or ("qwen2.5-1.5b" if cuda else "tiny")
    device = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA)"
    lora = {"r": 32, "alpha": 64, "dropout": 0.05}
    memory = Memory(cuda)
    stages: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="exgrpo-gpu-check-") as scratch:
        root = Path(scratch)
        log(f"building a random {shape} model on {device}")
        started = time.perf_counter()
        model, parameters = build_shaped_model(shape, root / "model", "cuda" if cuda else "cpu")
        log(f"{parameters / 1e9:.2f} B parameters, built and saved in {time.perf_counter() - started:.0f} s")
        turn_tokens, eval_tokens = (64, 256) if cuda else (16, 32)
        for name, work in (("LoRA SFT", lambda: check_sft(model, root, steps, lora)),
                           ("ExGRPO", lambda: check_exgrpo(model, root, steps, lora, turn_tokens)),
                           ("eval generation", lambda: check_eval(model, 64 if cuda else 8, eval_tokens))):
            log(f"{name} ...")
            stages.append(run_stage(name, memory, work))
            log(f"{name}: {'passed' if stages[-1].passed else 'FAILED'} in {stages[-1].seconds:.0f} s")
    rates = {stage.stage: stage.tokens_per_s for stage in stages}
    result = {
        "schema_version": 1, "device": device, "shape": shape, "parameters": parameters, "dtype": "bfloat16",
        "torch": torch.__version__, "cuda": torch.version.cuda, "passed": all(s.passed for s in stages),
        "stages": [asdict(stage) for stage in stages],
        "throughput": {"sft_tokens_per_s": rates["LoRA SFT"], "exgrpo_tokens_per_s": rates["ExGRPO"],
                       "generate_tokens_per_s": rates["eval generation"]},
        "not_exercised": not_exercised(),
    }
    atomic_write_json(out, result)
    return result


RESULTS_BEGIN, RESULTS_END = "<!-- gpu-check results: written by benchmarks/gpu_doc.py -->", "<!-- end of gpu-check results -->"


def results_markdown(result: dict[str, Any]) -> str:
    """The measured table of one check, for docs/gpu.md."""
    lines = [f"Measured on **{result['device']}**: shape `{result['shape']}` ({result['parameters'] / 1e9:.2f} B "
             f"parameters, random weights), {result['dtype']}, torch {result['torch']} (CUDA {result['cuda']}).", "",
             "| stage | result | tokens/s | peak memory (GiB) | seconds | what ran |", "|---|---|---:|---:|---:|---|"]
    for stage in result["stages"]:
        rate, peak = stage["tokens_per_s"], stage["peak_memory_gib"]
        lines.append(f"| {stage['stage']} | {'pass' if stage['passed'] else 'FAIL'} | "
                     f"{'' if rate is None else f'{rate:,.0f}'} | {'' if peak is None else f'{peak:.1f}'} | "
                     f"{stage['seconds']:.0f} | {stage['detail']} |")
    lines += [""] + [f"Not exercised: {line}." for line in result["not_exercised"]]
    return "\n".join(lines)


def write_results_section(doc: Path, result: dict[str, Any]) -> None:
    """Replace the results section of `doc` (between its markers) with this check's table."""
    replace_marked_section(doc, RESULTS_BEGIN, RESULTS_END, results_markdown(result))
