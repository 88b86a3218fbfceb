# The whole set-up is `make demo` or `make test` on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CPU-only machines pin the local CPU build of torch; with a GPU, pip picks the CUDA build.
CONSTRAINTS := -c constraints.txt $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)

.PHONY: setup test test-fast lint format demo bench clean

$(STAMP): pyproject.toml constraints.txt constraints-cpu.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[test]'
	# taming-transformers' metadata pulls torchvision + pytorch-lightning; we only use its torch modules.
	$(PY) -m pip install -q --no-deps taming-transformers==0.0.1
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

demo: setup
	$(PY) -m pipeline.demo

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info demo-output
