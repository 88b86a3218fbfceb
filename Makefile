# The whole set-up is `make demo` or `make test` on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin
# Every install comes from the lock: exact versions of every package that test and demo install (a pip
# constraints file, made by `make lock`; the Dataflow worker image uses it too).
LOCK   := dataflow/constraints.txt
# Without the lock (make lock, make test-latest) two pins still hold. lxml: minimal-HTML bytes depend on
# the libxml2 its wheel bundles. torch on CPU-only machines: the local CPU build (a looser pin pulls
# several GB of CUDA packages); with a GPU, pip picks the CUDA build.
PINS   := lxml==6.1.3 $(if $(shell command -v nvidia-smi 2>/dev/null),,torch==2.13.0)
DEMO   := demo-output

.PHONY: setup browser test test-fast test-latest lock lint format demo bench clean

$(STAMP): pyproject.toml Makefile $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	# taming-transformers' metadata pulls torchvision + pytorch-lightning; we only use its torch modules.
	$(PY) -m pip install -q -c $(LOCK) --no-deps taming-transformers
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the page tests and the demo's screenshots: Debian's chromium + chromium-driver from
# apt, only when chromedriver is absent and apt-get exists (as root, else through sudo). Nothing else is
# downloaded; where it cannot be installed the browser tests skip, saying why.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromedriver >/dev/null || ! command -v apt-get >/dev/null || \
	  { echo "make browser: installing chromium and chromium-driver with apt-get (the browser tests and the demo's screenshots)" >&2; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } || \
	  echo "make: could not install chromium + chromium-driver; the browser tests will be skipped" >&2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest exits 5 when it collected nothing: a failure here, said plainly.
test: lint browser
	$(PY) -m pytest || { s=$$?; [ $$s -eq 5 ] && echo "make test: no tests were collected" >&2; exit $$s; }

test-fast: setup browser
	$(PY) -m pytest -m "not slow"

# The lock, made anew: a fresh venv with the newest releases pyproject.toml allows (plus PINS), frozen.
# Run on a CPU machine with CI's Python (3.11); refresh it when `make test-latest` passes.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV) && python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[test]' lxml==6.1.3 torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q --no-deps taming-transformers==0.0.1
	{ echo "# Exact versions of every package that make test / make demo install (pip constraints, CPython 3.11)."; \
	  echo "# Made by 'make lock'; used by the Makefile, .ci/run (through make) and dataflow/Dockerfile."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | sed -E 's/^([^=]+==[^+]+)\+.*/\1/'; \
	} > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	rm -rf $(LOCK_VENV)
	@echo "wrote $(LOCK); now make test, and commit it with what it fixes"

# The newest releases pyproject.toml allows (plus PINS), in a venv of their own, then the whole suite: tells
# when a new release breaks us before a fresh machine does. What differs from the lock is printed first.
LATEST := .venv-latest
test-latest: browser
	rm -rf $(LATEST) && python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade -e '.[test]' $(PINS)
	$(LATEST)/bin/python -m pip install -q --no-deps taming-transformers==0.0.1
	$(LATEST)/bin/python -m pip freeze --all --exclude-editable | sed -E 's/^([^=]+==[^+]+)\+.*/\1/' \
	  | sort > $(LATEST)/versions.txt
	@echo "newer than the lock (or not in it):"; grep -v '^#' $(LOCK) | sort | comm -13 - $(LATEST)/versions.txt
	CM3_UNLOCKED=1 $(LATEST)/bin/python -m pytest

# Web pages -> shards -> tokens -> a tiny model -> generated HTML and images, all on the bundled sample.
demo: setup browser
	rm -rf $(DEMO)
	$(BIN)/cm3-data run --output $(DEMO)/shards
	$(BIN)/cm3-data verify $(DEMO)/shards
	$(BIN)/cm3-data view $(DEMO)/shards --output $(DEMO)/view.html
	$(BIN)/cm3-train tokenizer --data $(DEMO)/shards --vocab-size 4000 --output $(DEMO)/tokenizer
	$(BIN)/cm3-train tokenize --data $(DEMO)/shards --tokenizer $(DEMO)/tokenizer --output $(DEMO)/tokens
	$(BIN)/cm3-train train --data $(DEMO)/tokens --preset tiny out=$(DEMO)/run seq_len=512 batch_size=8 \
	  max_steps=300 warmup_steps=30 lr=2e-3 eval_every=100 ckpt_every=100 log_every=25
	$(BIN)/cm3-generate $(DEMO)/run --output $(DEMO)/generate --num-samples 2 --temperature 0.9 --top-p 0.95 \
	  --prompt '{"mode": "unconditional_image"}' \
	  --prompt '{"mode": "conditional_image", "text": "A photo of a cat."}' \
	  --prompt '{"mode": "text_infill", "html": "<p>The public library reopened on <mask:0> after a renovation.</p>"}' \
	  --prompt '{"mode": "score", "prompt": "<p>The public library reopened on", "candidates": [" Monday after a renovation.", " the moon with a cat."]}' \
	  --prompt '{"mode": "entity", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"]}' \
	  --prompt '{"mode": "link", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"]}' \
	  --prompt '{"mode": "continue", "html": "<img"}' \
	  --prompt '{"mode": "summarize", "document": "The public library reopened on Monday after a renovation that took two years.", "size_hint": 16}'
	$(BIN)/cm3-generate $(DEMO)/run --output $(DEMO)/caption \
	  --prompt '{"mode": "causal_caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "masked_caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "image_infill", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png", "span": [128, 256]}' \
	  --prompt '{"mode": "caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png", "samples": 8, "top": 2}'
	printf '%s\n' \
	  '{"task": "summarization", "document": "The public library reopened on Monday after a renovation that took two years.", "summary": "Library reopens after renovation.", "size_hint": 12}' \
	  '{"task": "disambiguation", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"], "answer": "Cat"}' \
	  '{"task": "linking", "text": "Cats are small domesticated carnivores.", "mention": [0, 4], "candidates": ["Cat", "Library"], "answer": "Cat"}' \
	  > $(DEMO)/tasks.jsonl
	$(BIN)/cm3-generate eval $(DEMO)/run $(DEMO)/tasks.jsonl --output $(DEMO)/eval
	$(PY) -m pipeline.screenshot --output $(DEMO)/screenshots report=$(DEMO)/shards/_meta/report.html \
	  view=$(DEMO)/view.html generate=$(DEMO)/generate/index.html caption=$(DEMO)/caption/index.html
	@echo "Open $(DEMO)/shards/_meta/report.html, $(DEMO)/view.html, $(DEMO)/generate/index.html," \
	  "$(DEMO)/caption/index.html (PNGs of them in $(DEMO)/screenshots/)"

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LATEST) $(LOCK_VENV) build *.egg-info $(DEMO)
