# Two-command quick start: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test test-slow test-all lint docs format bench clean

venv: $(STAMP)

# Rebuilt when pyproject.toml changes. torch is installed first and pinned to the CPU
# wheel (override with `make TORCH=...`); skipped when the venv already imports torch.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: venv
	$(BIN)/npo demo --out results

# Static checks, the default test suite, then the documentation (it renders the notebooks
# the suite executed).
test: lint
	$(BIN)/python -m pytest -m "not slow and not gpu" -p no:cacheprovider --durations=15
	$(MAKE) --no-print-directory docs SPHINXOPTS="-W --keep-going -n -q"

test-slow: venv
	$(BIN)/python -m pytest -m "slow and not gpu" -p no:cacheprovider

test-all: venv
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
